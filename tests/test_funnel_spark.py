"""The Spark engine gives the local engine's tables exactly.

One local[2] SparkSession for the module (about 20–30 s to start). Every comparison runs
the same funnel through :class:`LocalEngine` (DuckDB + kernel) and :class:`SparkEngine`
over the same Parquet file and compares ``steps``, ``breakdown``, ``trend`` and
``total_conversions`` frame for frame. Logs: the sample store generator (~50k events,
time zone-aware timestamps) and randomized logs with naive timestamps, no two events of
a person at the same instant (so breakdown values never depend on how ties are ordered).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from shopfunnel.errors import InputError
from shopfunnel.funnel.api import Step, funnel
from shopfunnel.sample import generate_sample

pyspark = pytest.importorskip("pyspark")

from shopfunnel.funnel.spark import SparkEngine  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
]

SAMPLE_STEPS = ["view_item", "add_to_cart", "begin_checkout", "purchase"]
RANDOM_STEPS = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def sample_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("spark") / "sample.parquet"
    pq.write_table(generate_sample(50_000, seed=3), path)
    return str(path)


@pytest.fixture(scope="module")
def random_path(tmp_path_factory) -> str:
    """300 persons, 1–15 events each from a, b, c, d, x, distinct whole seconds within
    an hour, over three days; 1–3 sessions per person; a random channel per event."""
    rng = np.random.default_rng(11)
    t0 = int(datetime(2024, 3, 1).timestamp()) * 1_000_000
    rows = []
    for p in range(300):
        k = int(rng.integers(1, 16))
        day = int(rng.integers(0, 3))
        secs = np.sort(rng.choice(3600, size=k, replace=False))
        for s in secs:
            rows.append(
                {
                    "anonymous_id": f"p{p}",
                    "t": t0 + (day * 86400 + int(s)) * 1_000_000,
                    "event": str(
                        rng.choice(["a", "b", "c", "d", "x"], p=[0.3, 0.2, 0.2, 0.1, 0.2])
                    ),
                    "channel": str(rng.choice(["ads", "email", "organic"])),
                    "session_id": f"p{p}-s{int(s) // 1200}",
                }
            )
    df = pd.DataFrame(rows)
    df["ts"] = pd.to_datetime(df.pop("t"), unit="us")  # naive: Spark reads TIMESTAMP_NTZ
    path = tmp_path_factory.mktemp("spark") / "random.parquet"
    df.to_parquet(path, index=False)
    return str(path)


def both(spark, path: str, steps, **kwargs):
    local = funnel(path, steps, **kwargs)
    remote = funnel(SparkEngine(spark, path, store_rules=False), steps, **kwargs)
    return local, remote


def assert_same(local, remote, *, times: bool = True) -> None:
    cols = [c for c in local.steps.columns if times or "seconds" not in c]
    pd.testing.assert_frame_equal(remote.steps[cols], local.steps[cols])
    pd.testing.assert_frame_equal(remote.total_conversions, local.total_conversions)
    for name in ("breakdown", "trend"):
        mine, theirs = getattr(remote, name), getattr(local, name)
        assert (mine is None) == (theirs is None), name
        if mine is not None:
            pd.testing.assert_frame_equal(
                mine.reset_index(drop=True), theirs.reset_index(drop=True)
            )


@pytest.mark.parametrize("order", ["ordered", "strict", "any"])
@pytest.mark.parametrize("count_by", ["person", "session"])
def test_sample_log_by_channel_per_day_equals_local_engine(spark, sample_path, order, count_by):
    local, remote = both(
        spark,
        sample_path,
        SAMPLE_STEPS,
        window="2d",
        order=order,
        count_by=count_by,
        by="channel",
        trend="day",
    )
    assert local.steps["persons"].iloc[0] > 100  # a funnel with something in it
    assert_same(local, remote)


@pytest.mark.parametrize("order", ["ordered", "strict", "any"])
def test_random_logs_equal_local_engine(spark, random_path, order):
    local, remote = both(
        spark,
        random_path,
        RANDOM_STEPS,
        window="10m",
        order=order,
        by="channel",
        attribution="last",
    )
    assert local.steps["persons"].iloc[1] > 10
    assert_same(local, remote)


def test_random_logs_by_session_per_week_equal_local_engine(spark, random_path):
    assert_same(
        *both(
            spark,
            random_path,
            RANDOM_STEPS,
            window="30m",
            order="strict",
            count_by="session",
            trend="week",
            by="channel",
            attribution="per_step",
        )
    )


def test_exclusions_hold_optional_and_open_entry_equal_local_engine(
    spark, random_path, sample_path
):
    assert_same(
        *both(
            spark,
            random_path,
            RANDOM_STEPS,
            window="20m",
            exclusions=[("x", 1, 3)],
            optional_steps=[2],
        )
    )
    assert_same(
        *both(spark, random_path, RANDOM_STEPS, window="20m", open_entry=True, trend="month")
    )
    # held items: when several units of a person reach a step at one instant (items of one
    # purchase), which one's times are reported follows the unit hash order, which differs
    # between DuckDB and Spark; the counts do not depend on it
    assert_same(
        *both(
            spark,
            sample_path,
            ["view_item", "add_to_cart", "purchase"],
            window="7d",
            hold="item_id",
        ),
        times=False,
    )


def test_step_filters_on_items_and_columns_equal_local_engine(spark, sample_path):
    table = pq.read_table(sample_path, columns=["items", "device"]).to_pandas()
    category = next(
        items[0]["item_category"] for items in table["items"] if items is not None and len(items)
    )
    steps = [
        Step("view_item", where={"item_category": category}),
        Step("add_to_cart", where={"device": ["mobile", "tablet"]}),
        "purchase",
    ]
    local, remote = both(spark, sample_path, steps, window="3d", by="item_category")
    assert local.steps["persons"].iloc[0] > 0
    assert_same(local, remote)
    # a properties key as a filter and as the breakdown
    steps = [
        "add_to_cart",
        Step("begin_checkout", where={"checkout_type": ["guest", "account"]}),
        "purchase",
    ]
    local, remote = both(
        spark, sample_path, steps, window="3d", by="checkout_type", attribution="last"
    )
    assert local.steps["persons"].iloc[1] > 0
    assert set(local.breakdown["checkout_type"]) > {"guest", "(none)"}
    assert_same(local, remote)


def test_persons_split_across_tiny_arrow_batches_are_counted_once(spark, random_path):
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    old = spark.conf.get(key)
    spark.conf.set(key, "7")
    try:
        local = funnel(random_path, RANDOM_STEPS, window="10m", by="channel", trend="day")
        for batch_rows in (10, 1_000_000):  # carried over between blocks, or whole partition
            engine = SparkEngine(spark, random_path, batch_rows=batch_rows, store_rules=False)
            remote = funnel(
                None, RANDOM_STEPS, window="10m", by="channel", trend="day", engine=engine
            )
            assert_same(local, remote)
    finally:
        spark.conf.set(key, old)


def test_hand_made_log_gives_hand_counted_steps_and_dropped_persons(spark, tmp_path):
    # p1: a x a b -> strict reaches b (second attempt); p2: a b c; p3: a then b 2 h later
    rows = [
        ("p1", 0, "a"),
        ("p1", 1, "x"),
        ("p1", 2, "a"),
        ("p1", 3, "b"),
        ("p2", 0, "a"),
        ("p2", 5, "b"),
        ("p2", 6, "c"),
        ("p3", 0, "a"),
        ("p3", 120, "b"),
    ]
    df = pd.DataFrame(rows, columns=["person_id", "minutes", "event"])
    df["ts"] = pd.Timestamp("2024-03-01", tz="UTC") + pd.to_timedelta(df.pop("minutes"), unit="min")
    path = tmp_path / "hand.parquet"
    df.to_parquet(path, index=False)
    result = funnel(
        None,
        ["a", "b", "c"],
        window="1h",
        order="strict",
        engine=SparkEngine(spark, str(path), store_rules=False),
    )
    assert result.steps["persons"].tolist() == [3, 2, 1]
    dropped = result.dropped(1)
    assert dropped["person_id"].tolist() == ["p3"]
    assert dropped["reached_at"].tolist() == [pd.Timestamp("2024-03-01 00:00")]
    assert result.dropped(2)["person_id"].tolist() == ["p1"]


def test_a_funnel_nobody_enters_counts_zero_like_the_local_engine(spark, random_path):
    local, remote = both(
        spark,
        random_path,
        ["nothing_like_this", "a"],
        by="channel",
        allow_unknown=True,
        trend="day",
    )
    assert remote.steps["persons"].tolist() == [0, 0]
    assert_same(local, remote)


def test_a_pandas_frame_is_refused_with_a_pointer_to_the_local_engine(spark):
    with pytest.raises(InputError, match="local engine"):
        SparkEngine(spark, pd.DataFrame({"ts": [], "event": []}))


def test_a_person_with_a_million_events_is_counted_exactly_and_reported(spark, tmp_path):
    # one bot with 1M events (a, b, c over and over) among ordinary persons
    n = 1_000_000
    t0 = pd.Timestamp("2024-03-01")
    bot = pd.DataFrame(
        {
            "person_id": "bot",
            "ts": t0 + pd.to_timedelta(np.arange(n), unit="s"),
            "event": np.array(["a", "b", "x", "c"])[np.arange(n) % 4],
        }
    )
    rows = [(f"p{i}", i % 7, ev) for i in range(2_000) for ev in ("a", "b", "c")[: 1 + i % 3]]
    others = pd.DataFrame(rows, columns=["person_id", "minutes", "event"])
    others["ts"] = t0 + pd.to_timedelta(others.pop("minutes"), unit="min")
    df = pd.concat([bot, others], ignore_index=True)
    path = tmp_path / "heavy.parquet"
    df.to_parquet(path, index=False)
    engine = SparkEngine(spark, str(path), batch_rows=100_000)
    heavy = engine.heavy_persons(min_events=500_000)
    assert heavy.to_dict("records") == [{"person_id": "bot", "events": n}]
    for order in ("ordered", "strict"):
        remote = funnel(engine, ["a", "b", "c"], window="1h", order=order)
        local = funnel(str(path), ["a", "b", "c"], window="1h", order=order)
        pd.testing.assert_frame_equal(remote.steps, local.steps)
        assert remote.steps["persons"].tolist()[0] == 2_001
