"""The HTML report: one self-contained file a store owner can open offline.

>>> html = build_report(store)              # the page as a string
>>> write_report(store, "report.html")      # or straight to a file

The diagnosis and its recommendations come first, then the funnel, its breakdowns and
trend, time to convert, stages, cohorts and RFM groups. Plotly's JavaScript is embedded
once per page; nothing is loaded from the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shopfunnel.report.blocks import Findings, Section
from shopfunnel.report.build import Progress, ReportBuild, build_sections
from shopfunnel.report.render import render_page, render_section
from shopfunnel.store.store import Store


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("shopfunnel")
    except Exception:  # not installed (running from a checkout)
        return ""


@dataclass(frozen=True)
class Report:
    """A built report: the page, what went missing (section id → reason), seconds per
    section, and the top findings as one line each (for a terminal)."""

    html: str
    problems: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    top_findings: list[str] = field(default_factory=list)


def make_report(
    store: Store,
    *,
    title: str | None = None,
    model: Any = None,
    progress: Progress | None = None,
    average_order_value: float | None = None,
) -> Report:
    """Build the report of ``store``, keeping the sections that could not be computed.

    ``average_order_value`` prices the diagnosis's findings when given (the CLI's ``--aov``;
    see :mod:`shopfunnel.diagnosis.order_value`)."""
    built = build_sections(
        store, model=model, progress=progress, average_order_value=average_order_value
    )
    if progress is not None:
        progress("writing the page")
    html = render_page(
        built.sections,
        title=title or "Your sales funnel",
        source=_source(store),
        version=_version(),
    )
    return Report(html, dict(built.problems), dict(built.seconds), top_findings(built.sections))


def top_findings(sections: list[Section]) -> list[str]:
    """The diagnosis cards as lines, incidents first, each finding once:
    ``1. headline (USD 1,234 at stake) → tactic, tactic``. An incident is marked
    ``incident:`` instead of its rank, so the numbered lines read 1, 2, 3 in order."""
    lines, seen = [], set()
    for section in sections:
        for block in section.blocks if section.note is None else ():
            if isinstance(block, Findings):
                for f in block.items:
                    if f.rank in seen:
                        continue
                    seen.add(f.rank)
                    money = f" ({f.revenue_at_stake} at stake)" if f.revenue_at_stake else ""
                    tactics = ", ".join(t.name for t in f.tactics)
                    lead = "incident:" if block.tone == "incident" else f"{f.rank}."
                    lines.append(
                        f"{lead} {f.headline}{money}" + (f" → {tactics}" if tactics else "")
                    )
    return lines


def build_report(
    store: Store,
    *,
    title: str | None = None,
    model: Any = None,
    progress: Progress | None = None,
    average_order_value: float | None = None,
) -> str:
    """The report of ``store`` as one HTML page (a string).

    ``model`` is the store's funnel model (steps, stages); the defaults are used when it is
    None. ``progress`` is called with each section's title as work on it starts. A section
    the data cannot support shows a short note instead.
    """
    return make_report(
        store, title=title, model=model, progress=progress, average_order_value=average_order_value
    ).html


def write_report(
    store: Store,
    path: str | Path,
    *,
    title: str | None = None,
    model: Any = None,
    progress: Progress | None = None,
    average_order_value: float | None = None,
) -> Path:
    """Write the report of ``store`` to ``path`` (UTF-8) and return the path."""
    target = Path(path)
    html = build_report(
        store, title=title, model=model, progress=progress, average_order_value=average_order_value
    )
    target.write_text(html, encoding="utf-8")
    return target


def _source(store: Store) -> str:
    if getattr(store, "on_spark", False):
        return "events on Spark"
    return "an in-memory store" if store.path == ":memory:" else Path(store.path).name


__all__ = [
    "Report",
    "ReportBuild",
    "Section",
    "build_report",
    "build_sections",
    "make_report",
    "render_page",
    "render_section",
    "top_findings",
    "write_report",
]
