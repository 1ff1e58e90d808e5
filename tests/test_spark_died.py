"""When the Spark JVM dies during an analysis (out of memory at 100M events on a 4g local
driver), the command says so and what to do, instead of a traceback from the lost
connection. Fakes stand in for Spark: no JVM is started."""

from __future__ import annotations

import pytest

from shopfunnel.cli import engine
from shopfunnel.errors import ShopfunnelError


class FakeEvents:
    closed = 0
    dead = False  # a dead JVM: closing the session fails too

    def __init__(self, df: object) -> None:
        self.on_spark = True

    def heavy_persons(self, n: int):
        import pandas as pd

        return pd.DataFrame({"person_id": [], "events": []})

    def close(self) -> None:
        FakeEvents.closed += 1
        if FakeEvents.dead:
            raise ConnectionRefusedError(111, "Connection refused")


@pytest.fixture
def fake_spark(monkeypatch):
    from shopfunnel.store import spark, spark_cache

    monkeypatch.setattr(spark, "spark_session", lambda: object())
    monkeypatch.setattr(spark, "SparkEvents", FakeEvents)
    monkeypatch.setattr(spark_cache, "prepared_events", lambda s, events: object())
    FakeEvents.closed = 0
    FakeEvents.dead = False


@pytest.mark.parametrize(
    "died",
    [
        ConnectionRefusedError(111, "Connection refused"),
        RuntimeError(
            "An error occurred while calling o123.collect: java.lang.OutOfMemoryError: Java heap space"
        ),
        type("Py4JNetworkError", (Exception,), {})("Answer from Java side is empty"),
    ],
    ids=["connection refused", "out of memory", "py4j network"],
)
def test_a_dead_spark_says_give_it_more_memory(fake_spark, died) -> None:
    FakeEvents.dead = True
    with (
        pytest.raises(ShopfunnelError, match="SHOPFUNNEL_SPARK_DRIVER_MEMORY") as info,
        engine.open_source("unused.duckdb", "spark", events="events.parquet"),
    ):
        raise died
    assert info.value.__cause__ is died
    assert FakeEvents.closed == 1  # closed once; its own failure does not hide the reason


def test_an_analysis_error_on_spark_is_not_called_a_dead_spark(fake_spark) -> None:
    with (
        pytest.raises(KeyError, match="no_such_column"),
        engine.open_source("unused.duckdb", "spark", events="events.parquet"),
    ):
        raise KeyError("no_such_column")
    assert FakeEvents.closed == 1


def test_spark_died_reads_the_kind_of_failure() -> None:
    assert engine.spark_died(ConnectionResetError())
    assert engine.spark_died(Exception("Caused by: java.lang.OutOfMemoryError: GC overhead"))
    assert not engine.spark_died(ValueError("bad date"))
