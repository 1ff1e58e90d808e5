"""Printing results: one place decides how a table, a record or a finding list is shown.

Every command that prints results takes ``--format table|json|csv`` and ``--out FILE``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shopfunnel.errors import ShopfunnelError
from shopfunnel.format import csv_text

if TYPE_CHECKING:
    import pandas as pd

def _width() -> int | None:
    """The terminal's width, or, when the output is a file or a pipe, wide enough that a
    table is never cut (Rich's default there is 80 columns). ``COLUMNS`` wins."""
    if os.environ.get("COLUMNS") or sys.stdout.isatty():
        return None
    return 200


console = Console(width=_width())
err_console = Console(stderr=True)
TERMINAL_ROWS = 50  # rows of a long table shown on a terminal; --limit and --out give more


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


# Use as ``Annotated[Format, FORMAT_OPTION] = Format.table``.
FORMAT_OPTION = typer.Option("--format", "-f", help="table (for people), json or csv (for scripts).")
OUT_OPTION = typer.Option("--out", "-o", help="Write to this file instead of the terminal.")
DB_OPTION = typer.Option("--db", help="The store: a DuckDB file.", envvar="SHOPFUNNEL_DB")


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return str(value)


def is_frame(data: Any) -> bool:
    """True for a pandas DataFrame (without importing pandas: no frame exists before it)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(data, pandas.DataFrame)


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready records of a frame: NaN becomes null, timestamps ISO text."""
    return orjson.loads(df.to_json(orient="records", date_format="iso"))


def to_json(data: Any) -> str:
    """JSON text (indented by 2) for a DataFrame (as a list of records), a dict or a list.

    Frames are encoded by pandas' C writer and everything else by orjson: a per-customer
    table of a million rows takes about a second, not a minute."""
    if is_frame(data):
        return data.to_json(orient="records", date_format="iso", indent=2)
    return orjson.dumps(data, default=_json_default,
                        option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
                        | orjson.OPT_NON_STR_KEYS).decode()


def rich_table(df: pd.DataFrame, title: str | None = None, formats: Mapping[str, Callable[..., str]] | None = None) -> Table:
    """A Rich table of a DataFrame, numbers right-aligned."""
    import pandas as pd

    formats = formats or {}
    table = Table(title=title, header_style="bold")
    for col in df.columns:
        numeric = pd.api.types.is_numeric_dtype(df[col])
        table.add_column(str(col), justify="right" if numeric else "left")
    for row in df.itertuples(index=False):
        cells = []
        for col, value in zip(df.columns, row, strict=True):
            if col in formats:
                cells.append(formats[col](value))
            elif value is None or (isinstance(value, float) and pd.isna(value)):
                cells.append("–")
            elif isinstance(value, float):
                cells.append(f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}")
            elif isinstance(value, int):
                cells.append(f"{value:,}")
            else:
                cells.append(str(value))
        table.add_row(*(Text(c) for c in cells))  # data is text, never Rich markup
    return table


def emit(
    data: pd.DataFrame | dict[str, Any] | list[Any],
    fmt: Format,
    out: Path | None = None,
    *,
    table: Callable[[], Any] | None = None,
) -> None:
    """Print or write ``data`` in ``fmt``. ``table`` renders it for people when given."""
    if fmt == Format.json:
        text = to_json(data)
    elif fmt == Format.csv:
        import pandas as pd

        frame: Any = data if is_frame(data) else pd.json_normalize(data)
        text = csv_text(frame)
    else:
        if out is not None:
            text = data.to_string(index=False) if is_frame(data) else to_json(data)  # type: ignore[union-attr]
        else:
            if table is None and is_frame(data) and len(data) > TERMINAL_ROWS:
                console.print(rich_table(data.head(TERMINAL_ROWS)))  # type: ignore[union-attr]
                err_console.print(
                    f"showing the first {TERMINAL_ROWS:,} of {len(data):,} rows: write them all "
                    "with --out FILE (and --format csv or json)")
                return
            renderable = table() if table is not None else (
                rich_table(data) if is_frame(data) else to_json(data)
            )
            console.print(renderable)
            return
    if out is not None:
        Path(out).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        err_console.print(f"wrote {out}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn shopfunnel's errors into a clear message and exit code 1, not a traceback."""
    try:
        yield
    except ShopfunnelError as exc:
        err_console.print("[bold red]error:[/] ", end="")
        err_console.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from exc
