"""The report on Spark shows the store's numbers, from the same raw files.

Spark reads the sample store's raw events (no ``person_id``), applies the store's load
rules, and the report's shared inputs (the orders, the funnel with its channel breakdown
and weekly trend, everyone's stage at two dates, the diagnosis, the overview's counts and
the daily activity) are computed from it; the reference is the DuckDB Store loaded from the
same file. Compared: the report Context's tables, and every section's tables, key figures,
findings and chart data (floats within a relative 1e-9: a sum of order values depends on
the order of the rows, which neither engine fixes, so RFM revenues differ in the last
bits) — not the HTML bytes.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from shopfunnel.report.blocks import Chart, Table
from shopfunnel.report.build import build_sections
from shopfunnel.report.context import Context
from shopfunnel.store import summary

pytest.importorskip("pyspark")

from spark_samples import raw_and_store  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
]


@pytest.fixture(scope="module")
def sample(spark, tmp_path_factory):
    """The sample store's raw file, the DuckDB store loaded from it, the file on Spark."""
    with raw_and_store(spark, tmp_path_factory.mktemp("spark_report"), 30_000, seed=7) as made:
        yield made


def plain(value: object) -> object:
    """``value`` as JSON-like data with floats to 9 significant digits (NaN as None)."""
    if isinstance(value, pd.DataFrame):
        frame = value.reset_index() if not isinstance(value.index, pd.RangeIndex) else value
        return {
            "columns": [str(c) for c in frame.columns],
            "rows": plain(frame.to_dict("split")["data"]),
        }
    if isinstance(value, pd.Series):
        return plain(value.to_frame())
    if isinstance(value, Chart):
        return {"chart": plain(value.figure.to_plotly_json()["data"]), "caption": value.caption}
    if isinstance(value, Table):
        return {"table": plain(value.frame), "caption": value.caption}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict) and "bdata" in value and "dtype" in value:  # plotly's arrays
        import base64

        import numpy as np

        return plain(np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy arrays and scalars
        return plain(value.tolist())
    if isinstance(value, float):
        return None if math.isnan(value) else float(f"{value:.9g}")
    if value is None or value is pd.NaT or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, int | str | bool):
        return value
    return str(value)


def assert_close(got: object, expected: object, where: str = "") -> None:
    """``got`` equals ``expected`` (as :func:`plain` gives them), floats within a relative
    1e-9; the message names where they first differ."""
    if isinstance(expected, float) and isinstance(got, float | int):
        assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12), (where, got, expected)
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys(), (where, got, expected)
        for key in expected:
            assert_close(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), (where, got, expected)
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert_close(g, e, f"{where}[{i}]")
    else:
        assert got == expected, (where, got, expected)


def by_order_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("order_id", kind="stable").reset_index(drop=True)


def test_report_context_tables_on_spark_equal_the_stores(sample) -> None:
    _, _, store, events = sample
    local, remote = Context(store), Context(events)
    assert len(local.orders) > 50
    assert plain(by_order_id(remote.orders)) == plain(by_order_id(local.orders))
    assert remote.currency == local.currency
    assert plain(remote.store.info()) == plain(local.store.info(timeline_pass=True))
    assert plain(summary.daily_activity(events)) == plain(summary.daily_activity(store))
    assert summary.last_event_time(events) == summary.last_event_time(store)
    assert summary.has_event(events, "purchase") and not summary.has_event(events, "nope")
    assert summary.event_count(events) == summary.event_count(store)
    f_local, f_remote = local.funnel(), remote.funnel()
    assert plain(f_remote.steps) == plain(f_local.steps)
    assert plain(f_remote.breakdown) == plain(f_local.breakdown)
    assert plain(f_remote.trend) == plain(f_local.trend)
    assert plain(f_remote.time_to_convert()) == plain(f_local.time_to_convert())
    assert plain(remote.stage_summary()) == plain(local.stage_summary())
    s_local, s_remote = local.placements(), remote.placements()
    assert s_remote[:2] == s_local[:2]
    assert plain(remote.diagnosis().to_dict()) == plain(local.diagnosis().to_dict())


def test_every_report_section_on_spark_shows_the_stores_numbers(sample) -> None:
    _, _, store, events = sample
    local = build_sections(store)
    events.df.count()  # the source's own events, kept for the test's many reads
    before = _persisted(events.df.sparkSession)
    remote = build_sections(events)
    # the funnel's units, the placements' facts and the diagnosis's sessions were kept on
    # Spark while the sections read them; the page made, nothing of them is left (ADR 0192)
    assert _persisted(events.df.sparkSession) <= before
    assert local.problems == {}
    assert remote.problems == {}
    assert [s.id for s in remote.sections] == [s.id for s in local.sections]
    assert {"overview", "diagnosis", "stages", "flow", "cohorts", "rfm", "whatif"} <= {
        s.id for s in local.sections
    }
    for got, expected in zip(remote.sections, local.sections, strict=True):
        assert_close(plain(got), plain(expected), got.id)


def _persisted(spark) -> set[int]:
    """The ids of the RDDs Spark holds persisted blocks of."""
    return {info.id() for info in spark.sparkContext._jsc.sc().getRDDStorageInfo()}


def test_report_with_engine_spark_writes_the_page(sample, tmp_path) -> None:
    from shopfunnel.cli import app

    path, _, _, _ = sample
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        app, ["report", "--engine", "spark", "--events", path, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert "events on Spark" in html and "What to fix first" in html
    assert "left out" not in result.output


def test_report_refuses_events_without_engine_spark(tmp_path) -> None:
    from shopfunnel.cli import app

    result = CliRunner().invoke(
        app, ["report", "--events", str(tmp_path / "x.parquet"), "--out", str(tmp_path / "r.html")]
    )
    assert result.exit_code != 0
    assert "--engine spark" in result.output


def test_json_helper_rounds_floats_and_keeps_text() -> None:
    assert plain({"a": 1.0000000001, "b": "x", "c": float("nan")}) == {
        "a": 1.0,
        "b": "x",
        "c": None,
    }
    assert json.dumps(plain(pd.DataFrame({"x": [1.5]})))


def test_assert_close_tolerates_last_bits_only() -> None:
    assert_close({"r": [620.9000000000001]}, {"r": [620.8999999999999]})
    with pytest.raises(AssertionError, match="r"):
        assert_close({"r": [620.91]}, {"r": [620.9]})
    with pytest.raises(AssertionError):
        assert_close({"g": "loyal"}, {"g": "champions"})
