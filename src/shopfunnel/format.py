"""How numbers read in every face (CLI, report, dashboard): one place, so each says
``12.5%``, ``1,234``, ``3h 20m`` and ``2024-03-01 12:00`` alike. Missing values read ``–``.

Pure functions of one value; no pandas needed (a pandas ``NA``/``NaT`` counts as missing).
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if type(value).__name__ in ("NAType", "NaTType"):
        return True
    try:
        return bool(value != value)  # NaN-like scalars (numpy, Decimal('NaN'))
    except (TypeError, ValueError):
        return False


def integer(value: Any) -> str:
    """``12,345``; ``–`` when missing."""
    return "–" if _missing(value) else f"{round(float(value)):,}"


def number(value: Any) -> str:
    """Up to two decimals for small numbers, thousands separators for large ones."""
    if _missing(value):
        return "–"
    v = float(value)
    if v != 0 and abs(v) < 1:
        return f"{v:.3g}"
    if abs(v) >= 1000 or float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:,.2f}"


def pct(value: Any, digits: int = 1, missing: str = "–") -> str:
    """A rate in [0, 1] as a percentage: ``0.125`` → ``12.5%``; ``missing`` for None/NaN
    (sentences say ``n/a``, tables a dash)."""
    return missing if _missing(value) else f"{float(value) * 100:.{digits}f}%"


def percentile(q: float) -> str:
    """The name of a quantile: ``0.9`` → ``p90``, ``0.5`` → ``median``."""
    return "median" if q == 0.5 else f"p{q * 100:g}"


def money(value: Any, currency: str = "") -> str:
    """``1,234`` (no cents from 1,000 up), ``12.50`` below; the currency code in front if given."""
    if _missing(value):
        return "–"
    v = float(value)
    text = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.2f}"
    return f"{currency} {text}".strip()


def duration(seconds: Any) -> str:
    """A duration for people: ``45s``, ``2m 16s``, ``12m``, ``3h 20m``, ``2d 4h``."""
    if _missing(seconds):
        return "–"
    s = float(seconds)
    if s < 60:
        return f"{s:.0f}s"
    if s < 600:
        m, sec = divmod(round(s), 60)
        return f"{m}m {sec}s" if sec else f"{m}m"
    if s < 3600:
        return f"{s / 60:.0f}m"
    if s < 86400:
        h, m = divmod(round(s / 60), 60)
        return f"{h}h {m}m" if m else f"{h}h"
    d, h = divmod(round(s / 3600), 24)
    return f"{d}d {h}h" if h else f"{d}d"


def p_value(value: Any) -> str:
    """``p < 0.001`` or ``p = 0.042``."""
    if _missing(value):
        return "–"
    v = float(value)
    return "p < 0.001" if v < 0.001 else f"p = {v:.3f}"


FORMATTERS = {
    "int": integer,
    "number": number,
    "pct": pct,
    "money": money,
    "duration": duration,
    "p": p_value,
}


def cell(value: Any, kind: str | None) -> str:
    """A table cell's text: by the column's declared format, else by the value's type."""
    if kind in FORMATTERS:
        return FORMATTERS[kind](value)
    if _missing(value):
        return "–"
    if isinstance(value, float) and not math.isfinite(value):
        return "–"
    if isinstance(value, float):
        return number(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, datetime | date):
        return timestamp(value)
    return str(value)


def timestamp(value: Any) -> str:
    """A date or time for people, to the minute (UTC): ``2024-03-01`` at midnight,
    ``2024-03-01 12:05`` otherwise; never microseconds."""
    if _missing(value):
        return "–"
    if isinstance(value, datetime):
        if (value.hour, value.minute, value.second, value.microsecond) == (0, 0, 0, 0):
            return value.strftime("%Y-%m-%d")
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# -- CSV that is safe to open in a spreadsheet -------------------------------------------------
# A cell starting with one of these is read as a formula by Excel, LibreOffice and Google
# Sheets (OWASP "CSV injection"): ``=HYPERLINK(...)`` in a person id, a page or an e-mail
# would run when the exported file is opened.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A text value as it is written to a CSV: with a leading apostrophe when it starts like
    a formula (``=``, ``+``, ``-``, ``@``, tab, carriage return), so a spreadsheet shows it
    as text. Anything that is not text (numbers, missing values) is returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(frame: Any) -> str:
    """A DataFrame as CSV text (header, no index) with every text cell passed through
    :func:`csv_cell`; numeric columns are written as numbers. The frame is not changed.

    Every CSV shopfunnel writes (CLI ``--format csv``, rejects files, API and dashboard
    downloads) goes through this function or :func:`csv_cell`."""
    safe = frame.copy(deep=False)
    for i, dtype in enumerate(safe.dtypes):
        if getattr(dtype, "kind", "O") not in "biufcmM":  # numbers and times are not text
            safe.isetitem(i, safe.iloc[:, i].map(csv_cell))
    return safe.to_csv(index=False)
