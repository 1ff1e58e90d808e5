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

    heavy_dies: BaseException | None = None  # the first scan (heavy persons) meets a dead JVM
    made: list[dict] = []  # the keyword arguments each source was made with

    def __init__(self, df: object, **kwargs: object) -> None:
        self.on_spark = True
        FakeEvents.made.append(kwargs)

    def heavy_persons(self, n: int):
        import pandas as pd

        if FakeEvents.heavy_dies is not None:
            raise FakeEvents.heavy_dies

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
    FakeEvents.heavy_dies = None
    FakeEvents.made = []


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


def test_a_spark_found_dead_only_when_closing_still_says_give_it_more_memory(fake_spark) -> None:
    """A JVM that died at the end of the analysis (or whose death the analysis did not
    meet) is found by the closing: that too is said, not py4j's traceback."""
    FakeEvents.dead = True
    with (
        pytest.raises(ShopfunnelError, match="SHOPFUNNEL_SPARK_DRIVER_MEMORY") as info,
        engine.open_source("unused.duckdb", "spark", events="events.parquet"),
    ):
        pass
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    assert FakeEvents.closed == 1


def test_an_analysis_error_is_not_hidden_by_a_failed_closing(fake_spark) -> None:
    FakeEvents.dead = True
    with (
        pytest.raises(KeyError, match="no_such_column"),
        engine.open_source("unused.duckdb", "spark", events="events.parquet"),
    ):
        raise KeyError("no_such_column")
    assert FakeEvents.closed == 1


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
    assert engine.spark_died(engine.SparkDiedError())
    assert not engine.spark_died(ValueError("bad date"))


def test_a_spark_that_dies_in_its_first_scan_says_give_it_more_memory(fake_spark) -> None:
    """The heavy-person scan is the first job: at 100M events on a small driver the JVM
    died there, before the analysis began, and the user saw the lost connection."""
    died = ConnectionRefusedError(111, "Connection refused")
    FakeEvents.heavy_dies = died
    with (
        pytest.raises(ShopfunnelError, match="SHOPFUNNEL_SPARK_DRIVER_MEMORY") as info,
        engine.open_source("unused.duckdb", "spark", events="events.parquet"),
    ):
        pytest.fail("the analysis must not start")
    assert info.value.__cause__ is died
    assert FakeEvents.closed == 1


def test_prepared_events_are_read_again_not_kept_in_the_jvm(fake_spark) -> None:
    """Events from the prepared Parquet are not persisted (ADR 0187); a table, whose rules
    run on every read, still is."""
    with engine.open_source("unused.duckdb", "spark", events="events.parquet"):
        pass
    assert FakeEvents.made == [{"persist": False}]


class Server:
    """A socket server as PySpark's accumulator server: ``handle_error`` runs inside the
    ``except`` of the failed request and prints its traceback."""

    def __init__(self) -> None:
        self.printed: list[str] = []

    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        self.printed.append(type(sys.exc_info()[1]).__name__)

    def fail(self, exc: BaseException) -> None:
        try:
            raise exc
        except BaseException:
            self.handle_error(None, ("127.0.0.1", 1))


def test_the_accumulator_server_is_quiet_when_the_jvm_goes_away_but_not_otherwise() -> None:
    """A dead JVM made PySpark's accumulator thread print an EOFError traceback after the
    command's own "Spark stopped… give it more memory" (checked by killing the JVM of a
    report at 10M events)."""
    from shopfunnel.store.spark import quiet_when_jvm_gone

    server = Server()
    quiet_when_jvm_gone(server)
    server.fail(EOFError())
    server.fail(ConnectionResetError())
    assert server.printed == []
    server.fail(ValueError("bad update"))
    assert server.printed == ["ValueError"]
