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
