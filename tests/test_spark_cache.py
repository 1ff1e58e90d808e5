"""Prepared events on Spark are kept as Parquet and read back only while still true.

:func:`shopfunnel.store.spark_cache.prepared_events` applies the store's load rules once
per source; these tests check a cached read equals a cold run, and that a changed source
file or changed rules get a new entry instead of the stale one.
"""

from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest

from shopfunnel.sample import generate_sample

pyspark = pytest.importorskip("pyspark")

from shopfunnel.store import spark_cache  # noqa: E402
from shopfunnel.store.spark_rules import canonical_events  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
]
COLS = ["event_id", "person_id", "session_id", "channel", "event"]


def rows(df) -> list[tuple]:
    return sorted(tuple(r.values()) for r in df.select(*COLS).toArrow().to_pylist())


@pytest.fixture()
def raw(tmp_path):
    path = tmp_path / "raw.parquet"
    pq.write_table(generate_sample(3_000, seed=3), path)
    return path


def test_a_cached_read_equals_a_cold_run(spark, raw, tmp_path) -> None:
    cache = tmp_path / "cache"
    cold = rows(canonical_events(spark.read.parquet(str(raw))))
    first = rows(spark_cache.prepared_events(spark, str(raw), cache_dir=cache))
    entries = list(cache.iterdir())
    assert len(entries) == 1 and (entries[0] / "_SUCCESS").exists()
    second = rows(spark_cache.prepared_events(spark, str(raw), cache_dir=cache))
    assert first == cold and second == cold
    assert list(cache.iterdir()) == entries  # read, not written again


def test_a_changed_source_file_is_not_served_stale(spark, raw, tmp_path) -> None:
    cache = tmp_path / "cache"
    before = rows(spark_cache.prepared_events(spark, str(raw), cache_dir=cache))
    pq.write_table(generate_sample(2_000, seed=4), raw)
    st = raw.stat()
    os.utime(raw, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    after = rows(spark_cache.prepared_events(spark, str(raw), cache_dir=cache))
    assert after != before
    assert after == rows(canonical_events(spark.read.parquet(str(raw))))
    assert len(list(cache.iterdir())) == 2


def test_changed_rules_or_timeout_get_a_new_entry(spark, raw, tmp_path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    key = spark_cache.cache_key(str(raw))
    assert spark_cache.cache_key(str(raw), "10m") != key
    monkeypatch.setattr(spark_cache, "RULES_VERSION", spark_cache.RULES_VERSION + 1)
    assert spark_cache.cache_key(str(raw)) != key
    ten = rows(spark_cache.prepared_events(spark, str(raw), cache_dir=cache, session_timeout="1m"))
    assert ten == rows(canonical_events(spark.read.parquet(str(raw)), session_timeout="1m"))


def test_an_unfinished_entry_is_replaced_and_clear_empties_the_cache(spark, raw, tmp_path) -> None:
    cache = tmp_path / "cache"
    broken = cache / spark_cache.cache_key(str(raw))
    broken.mkdir(parents=True)
    (broken / "part-0.parquet").write_bytes(b"not parquet")  # a run stopped mid-write
    got = rows(spark_cache.prepared_events(spark, str(raw), cache_dir=cache))
    assert got == rows(canonical_events(spark.read.parquet(str(raw))))
    assert spark_cache.clear_cache(cache) == 1
    assert list(cache.iterdir()) == []


def test_the_cache_dir_follows_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SHOPFUNNEL_SPARK_CACHE", "off")
    assert spark_cache.default_cache_dir() is None
    monkeypatch.setenv("SHOPFUNNEL_SPARK_CACHE", str(tmp_path))
    assert spark_cache.default_cache_dir() == tmp_path
    monkeypatch.delenv("SHOPFUNNEL_SPARK_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert spark_cache.default_cache_dir() == tmp_path / "shopfunnel" / "spark"


def test_the_clear_command_empties_the_cache_dir(tmp_path) -> None:
    from typer.testing import CliRunner

    from shopfunnel.cli import app  # registers every command (application.app alone has none)

    (tmp_path / "abc").mkdir()
    (tmp_path / "abc" / "_SUCCESS").write_text("")
    result = CliRunner().invoke(app, ["spark-cache", "clear", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "deleted 1 prepared-events entry" in result.output
    assert list(tmp_path.iterdir()) == []
    shown = CliRunner().invoke(app, ["spark-cache", "path"], env={"SHOPFUNNEL_SPARK_CACHE": "off"})
    assert shown.output.strip() == "off"


# -- per-person and per-session rows reach Python through Parquet (ADR 0187) -------------------
def _sessions_frame(spark):
    from pyspark.sql import functions as F

    events = spark.createDataFrame(
        [(f"s{i % 37}", f"p{i % 11}", i * 1_000_000, None if i % 5 else "x") for i in range(400)],
        "session_id string, person_id string, us long, note string",
    )
    return events.groupBy("session_id").agg(
        F.first("person_id").alias("person_id"),
        F.min("us").alias("started_us"),
        F.count(F.lit(1)).alias("events"),
        F.max("note").alias("note"),
    )


def test_large_results_come_back_through_parquet_with_every_row(
    spark, tmp_path, monkeypatch
) -> None:
    """``arrow_rows`` gives the rows ``toArrow()`` gives, same columns and types, without the
    driver gathering them: Spark writes them in the cache dir, which is left clean."""
    from shopfunnel.store.spark_reads import arrow_rows

    cache = tmp_path / "cache"
    monkeypatch.setenv(spark_cache.ENV, str(cache))
    frame = _sessions_frame(spark)
    got, expected = arrow_rows(frame), frame.toArrow()
    assert got.column_names == expected.column_names == frame.columns
    assert got.schema.types == expected.schema.types
    assert sorted(got.to_pylist(), key=str) == sorted(expected.to_pylist(), key=str)
    assert got.num_rows == 37
    assert list(cache.iterdir()) == []  # the temporary folder is removed


def test_large_results_with_the_cache_off_are_collected_by_the_driver(spark, monkeypatch) -> None:
    from shopfunnel.store.spark_reads import arrow_rows

    monkeypatch.setenv(spark_cache.ENV, "off")
    frame = _sessions_frame(spark)
    writes = []
    monkeypatch.setattr(type(frame), "write", property(lambda self: writes.append(1)))
    assert arrow_rows(frame).num_rows == 37
    assert writes == []


def test_an_empty_large_result_keeps_its_columns(spark, tmp_path, monkeypatch) -> None:
    from shopfunnel.store.spark_reads import arrow_rows

    monkeypatch.setenv(spark_cache.ENV, str(tmp_path / "cache"))
    frame = _sessions_frame(spark).where("events < 0")
    got = arrow_rows(frame)
    assert got.num_rows == 0 and got.column_names == frame.columns


def test_on_a_cluster_without_a_named_cache_dir_the_driver_collects(spark, monkeypatch) -> None:
    """The default cache dir is this machine's: executors elsewhere would write their own."""
    from shopfunnel.store import spark_reads

    monkeypatch.delenv(spark_cache.ENV, raising=False)
    frame = _sessions_frame(spark)
    assert spark_reads._shared_dir(frame)  # local[2]
    monkeypatch.setattr(frame.sparkSession.conf, "get", lambda key, default=None: "yarn")
    assert not spark_reads._shared_dir(frame)
