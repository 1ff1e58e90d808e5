"""``shopfunnel info`` lays out its tables as every other command (without pandas), and
names the importers' formats without importing them."""

from __future__ import annotations

import pandas as pd
from rich.console import Console

from shopfunnel.cli import data as cli_data
from shopfunnel.cli.output import rich_table
from shopfunnel.ingest import FORMATS


def test_the_format_names_in_the_help_are_the_importers() -> None:
    assert tuple(sorted(FORMATS)) == cli_data.FORMAT_NAMES


def text(renderable: object) -> str:
    console = Console(record=True, width=120, force_terminal=False)
    console.print(renderable)
    return console.export_text()


def test_info_tables_are_the_rich_tables_of_the_same_rows() -> None:
    cases = [
        (("events", "persons", "first_event"), [(10_000_000, 1_452_166, "2024-01-01T00:00:03")]),
        (("events", "persons", "first_event"), [(0, 0, None)]),
        (("event", "events"), [("page_view", 3_928_654), (None, 12), ("purchase", 7)]),
        (("channel", "sessions"), []),
    ]
    for columns, rows in cases:
        frame = pd.DataFrame(rows, columns=list(columns))
        want = text(rich_table(frame, title="t"))
        assert text(cli_data._small_table("t", columns, rows)) == want
