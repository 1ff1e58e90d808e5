"""What a report section is made of: small typed blocks, rendered by one Jinja template.

Section builders never write HTML by hand. They return a :class:`Section` holding blocks
(a chart, a table, key figures, findings, a paragraph); the template renders each kind with
autoescaping on, so event data (a campaign called ``<script>``) is always shown as text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
import plotly.graph_objects as go

ColumnFormat = Literal["int", "pct", "money", "number", "duration", "p", "text"]


@dataclass(frozen=True)
class Chart:
    """A Plotly figure; the page draws it with the one embedded copy of plotly.js."""

    figure: go.Figure
    caption: str = ""


@dataclass(frozen=True)
class Table:
    """A DataFrame shown as an HTML table. ``formats`` maps a column to how its values read."""

    frame: pd.DataFrame
    formats: dict[str, ColumnFormat] = field(default_factory=dict)
    caption: str = ""
    collapsed: bool = False


@dataclass(frozen=True)
class Figure:
    """One headline number: ``label`` above, ``value`` big, ``detail`` small below."""

    label: str
    value: str
    detail: str = ""


@dataclass(frozen=True)
class KeyFigures:
    """A row of headline numbers."""

    items: tuple[Figure, ...]


@dataclass(frozen=True)
class Tactic:
    """A tactic from the playbook, and why it fits the finding."""

    name: str
    why: str = ""


@dataclass(frozen=True)
class Finding:
    """One diagnosis finding as the store owner reads it."""

    rank: int
    headline: str
    stage: str
    revenue_at_stake: str
    evidence: str
    tactics: tuple[Tactic, ...]
    audience: str
    significance: str = ""


@dataclass(frozen=True)
class Findings:
    """Findings shown as cards, under an optional ``heading``."""

    items: tuple[Finding, ...]
    heading: str = ""
    tone: str = "rank"


@dataclass(frozen=True)
class Text:
    """A plain paragraph."""

    text: str


Block = Chart | Table | KeyFigures | Findings | Text


@dataclass(frozen=True)
class Section:
    """A titled part of the report.

    ``lead`` says in one or two sentences what the section shows and how to read it.
    ``note`` is set when the data cannot support the section: the page shows the note
    instead of the blocks, so a thin store still gets a report.
    """

    id: str
    title: str
    lead: str = ""
    blocks: tuple[Block, ...] = ()
    note: str | None = None

    @property
    def charts(self) -> list[Chart]:
        return [b for b in self.blocks if isinstance(b, Chart)]


def unavailable(id: str, title: str, note: str, lead: str = "") -> Section:
    """A section that shows only a short note saying why it is empty."""
    return Section(id=id, title=title, lead=lead, note=note)


def kind_of(block: Any) -> str:
    """The template macro name for a block."""
    return type(block).__name__.lower()
