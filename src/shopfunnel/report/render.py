"""Sections → one self-contained HTML page.

The page carries plotly.js exactly once (in a single ``<script>``); each chart is a
``<div>`` plus its figure as JSON in a ``<script type="application/json">``, drawn by one
loop at the end of the page. Nothing is fetched from the network. Templates are Jinja2
with autoescaping on; figure JSON is escaped so no string in it can close its script.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jinja2
import pandas as pd
import plotly.io as pio
from markupsafe import Markup

from shopfunnel import format as fmt
from shopfunnel.report.blocks import Block, Chart, Findings, KeyFigures, Section, Table, Text
from shopfunnel.report.charts import CONFIG

_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def script_safe_json(text: str) -> str:
    """JSON text that cannot end or confuse the ``<script>`` element it sits in.

    ``<``, ``>`` and ``&`` only occur inside JSON strings, where ``\\u003c`` and friends
    mean the same characters, so the parsed value is unchanged.
    """
    for char, escaped in _JSON_ESCAPES.items():
        text = text.replace(char, escaped)
    return text


@cache
def plotly_js() -> str:
    """The plotly.js bundle shipped with the installed plotly package (no CDN)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().replace("</script", "<\\/script")


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("shopfunnel.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
    )
    return env


def _table_view(table: Table) -> dict[str, Any]:
    frame = table.frame
    columns = []
    for col in frame.columns:
        kind = table.formats.get(str(col))
        numeric = kind in fmt.FORMATTERS or pd.api.types.is_numeric_dtype(frame[col])
        columns.append({"label": str(col).replace("_", " "), "align": "num" if numeric else "txt"})
    kinds = [table.formats.get(str(c)) for c in frame.columns]
    rows = [
        [fmt.cell(v, k) for v, k in zip(row, kinds, strict=True)]
        for row in frame.itertuples(index=False)
    ]
    return {
        "kind": "table",
        "columns": columns,
        "rows": rows,
        "caption": table.caption,
        "collapsed": table.collapsed,
    }


def _block_view(block: Block, ids: Iterator[int]) -> dict[str, Any]:
    if isinstance(block, Chart):
        spec = pio.to_json(block.figure, validate=False, pretty=False, engine="orjson")
        return {
            "kind": "chart",
            "dom_id": f"chart-{next(ids)}",
            "caption": block.caption,
            "spec_json": Markup(script_safe_json(spec)),
        }
    if isinstance(block, Table):
        return _table_view(block)
    if isinstance(block, KeyFigures):
        return {"kind": "keyfigures", "entries": block.items}
    if isinstance(block, Findings):
        return {
            "kind": "findings",
            "entries": block.items,
            "heading": block.heading,
            "tone": block.tone,
        }
    if isinstance(block, Text):
        return {"kind": "text", "text": block.text}
    raise TypeError(f"cannot render a {type(block).__name__} block")


def _section_view(section: Section, ids: Iterator[int]) -> dict[str, Any]:
    return {
        "id": section.id,
        "title": section.title,
        "lead": section.lead,
        "note": section.note,
        "blocks": [] if section.note else [_block_view(b, ids) for b in section.blocks],
    }


def render_section(section: Section) -> str:
    """One section as an HTML fragment (charts need the page's plotly.js to draw)."""
    template = environment().get_template("macros.html.j2")
    return str(template.module.section(_section_view(section, itertools.count(1))))  # type: ignore[attr-defined]


def render_page(
    sections: Iterable[Section], *, title: str, source: str = "", version: str = ""
) -> str:
    """The whole report page: every section, plotly.js once, the drawing loop."""
    ids = itertools.count(1)
    views = [_section_view(s, ids) for s in sections]
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            title=title,
            source=source or "a shopfunnel store",
            version=version,
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            sections=views,
            plotly_js=Markup(plotly_js()),
            plotly_config=Markup(script_safe_json(json.dumps(CONFIG))),
        )
    )
