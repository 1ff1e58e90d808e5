"""Every CSV shopfunnel writes is safe to open in a spreadsheet: a text cell that starts
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return would be read as a formula
(OWASP "CSV injection"), so it is written with a leading apostrophe. Numbers stay numbers.

The server's CSV answers are checked in tests/server/test_server_security.py.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from shopfunnel.cli import app
from shopfunnel.cli.output import Format, emit
from shopfunnel.format import csv_cell, csv_text

FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\tx=1", "\r=1"]


@pytest.mark.parametrize("text", FORMULAS)
def test_a_text_cell_that_a_spreadsheet_would_run_gets_a_leading_apostrophe(text):
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["plain", "a=b", " =1", "", "café@x", 12, -3.5, None])
def test_other_cells_and_numbers_are_left_as_they_are(value):
    assert csv_cell(value) is value


@given(st.text())
def test_no_written_text_cell_starts_like_a_formula(text):
    cell = csv_cell(text)
    assert not cell[:1] or cell[:1] not in "=+-@\t\r"
    assert cell.removeprefix("'") == text or cell == text


def test_csv_text_neutralises_text_columns_and_keeps_negative_numbers():
    frame = pd.DataFrame(
        {"person_id": ["=cmd|' /C calc'!A0", "a1"], "revenue": [-5.0, 3.0], "orders": [1, 2]}
    )
    rows = list(csv.reader(io.StringIO(csv_text(frame))))
    assert rows == [
        ["person_id", "revenue", "orders"],
        ["'=cmd|' /C calc'!A0", "-5.0", "1"],
        ["a1", "3.0", "2"],
    ]
    assert frame["person_id"][0].startswith("=")  # the caller's frame is not changed


def test_cli_csv_output_is_neutralised(tmp_path):
    out = tmp_path / "people.csv"
    emit(pd.DataFrame({"email": ["@evil", "ok@shop.example"]}), Format.csv, out)
    assert list(csv.reader(io.StringIO(out.read_text(), newline=""))) == [
        ["email"],
        ["'@evil"],
        ["ok@shop.example"],
    ]


def test_the_rejects_file_of_an_ingest_is_neutralised(tmp_path: Path):
    path = tmp_path / "events.csv"
    path.write_text(
        "event_id,ts,event,anonymous_id\ne1,2024-03-01T12:00:00Z,page_view,a\ne2,=1+1,page_view,a\n"
    )
    rejects = tmp_path / "rejects.csv"
    result = CliRunner().invoke(
        app,
        [
            "ingest",
            str(path),
            "--db",
            str(tmp_path / "s.duckdb"),
            "--on-error",
            "skip",
            "--rejects",
            str(rejects),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(rejects.read_text(), newline="")))
    assert [(r["line"], r["column"], r["value"]) for r in rows] == [("3", "ts", "'=1+1")]
