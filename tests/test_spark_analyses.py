"""Every analysis on Spark gives the store's numbers, from the same raw files.

Spark reads the raw events (no ``person_id``: devices, sign-ins, no sessions for some),
applies the store's load rules (:class:`shopfunnel.store.spark.SparkEvents`), and the
analyses run on it; the reference is a DuckDB Store loaded from the same file and the
local engine. Compared exactly: stages and statuses of every person, the stage summary and
flow, the orders table, retention (summary, purchase and activity cohorts), RFM scores and
groups, funnels with filters, exclusions, optional steps and a held property — on the
sample store and on randomized logs with stitched identities. The command line's
``--engine spark`` is checked against ``--db`` on the same data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from shopfunnel.customers import retention as ret
from shopfunnel.customers.rfm import rfm_group_summary, rfm_table
from shopfunnel.funnel.api import funnel
from shopfunnel.funnel.syntax import Step
from shopfunnel.stages.placement import placement
from shopfunnel.stages.summary import stage_flow, stage_summary
from shopfunnel.store.store import Store
from shopfunnel.store.summary import person_ids

pytest.importorskip("pyspark")

from shopfunnel.funnel.spark import SparkEngine  # noqa: E402
from shopfunnel.store.spark import SparkEvents  # noqa: E402
from spark_samples import raw_and_store  # noqa: E402
from test_spark_store_rules import raw_log  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
]


@pytest.fixture(scope="module")
def sample(spark, tmp_path_factory):
    """The sample store's raw file, the DuckDB store loaded from it (on disk, for the
    command line) and the same file on Spark."""
    with raw_and_store(spark, tmp_path_factory.mktemp("spark_analyses"), 25_000, seed=5) as made:
        yield made


def assert_same(got: pd.DataFrame, expected: pd.DataFrame, **kwargs) -> None:
    """Frames equal, where a missing text is missing whichever way pandas holds it (None in
    an object column from DuckDB, NaN in a string column from Arrow)."""

    def nones(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        for col in df.columns:
            if df[col].dtype == object or pd.api.types.is_string_dtype(df[col]):
                df[col] = df[col].astype(object).where(df[col].notna(), None)
        return df

    pd.testing.assert_frame_equal(nones(got), nones(expected), **kwargs)


def by_person(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("person_id", kind="stable").reset_index(drop=True)


def assert_same_placement(store, events, **kwargs) -> None:
    local, remote = placement(store, **kwargs), placement(events, **kwargs)
    assert local.as_of == remote.as_of
    assert_same(remote.persons, local.persons, check_dtype=False)
    assert_same(remote.thresholds, local.thresholds)
    assert (remote.lapsed_after_days, remote.customer_gone_after_days) == pytest.approx(
        (local.lapsed_after_days, local.customer_gone_after_days), nan_ok=True, rel=0, abs=0
    )
    assert_same(stage_summary(events, placed=remote), stage_summary(store, placed=local))


def assert_same_customers(store, events) -> None:
    # one row order for both (a float sum depends on it; neither engine fixes it)
    local_orders = store.table("orders").sort_values("order_id").reset_index(drop=True)
    remote_orders = (
        events.table("orders")[local_orders.columns].sort_values("order_id").reset_index(drop=True)
    )
    assert_same(remote_orders, local_orders, check_dtype=False)
    if local_orders.empty:
        return
    assert ret.retention_summary(remote_orders) == ret.retention_summary(local_orders)
    for period in ("week", "month"):
        assert_same(
            ret.cohort_retention(remote_orders, period=period),
            ret.cohort_retention(local_orders, period=period),
        )
        local_activity = ret.activity_retention(
            ret.active_periods(store, period=period), period=period
        )
        assert_same(
            ret.activity_retention(events.active_periods(period), period=period), local_activity
        )
        # cohort counts aggregated on Spark, assembled by the store's function
        assert_same(
            ret.store_activity_retention(events, period=period), local_activity, check_dtype=False
        )
    local_rfm = rfm_table(local_orders, persons=person_ids(store))
    remote_rfm = rfm_table(remote_orders, persons=events.person_ids())
    assert_same(by_person(remote_rfm), by_person(local_rfm))
    assert_same(rfm_group_summary(remote_rfm), rfm_group_summary(local_rfm))


# -- the sample store -------------------------------------------------------------------------
def test_stages_and_statuses_of_every_person_equal_the_store(sample) -> None:
    _, _, store, events = sample
    placed = placement(store)
    assert placed.persons["stage"].nunique() >= 4 and placed.persons["status"].nunique() >= 3
    assert_same_placement(store, events)
    assert_same_placement(store, events, as_of="2024-02-15", lookback="30d")


def test_stage_flow_equals_the_store(sample) -> None:
    _, _, store, events = sample
    local = stage_flow(store, "2024-02-01", "2024-03-01")
    assert local.to_numpy().sum() > 1000
    assert_same(stage_flow(events, "2024-02-01", "2024-03-01"), local)


def test_orders_retention_and_rfm_equal_the_store(sample) -> None:
    _, _, store, events = sample
    assert len(store.table("orders")) > 100
    assert_same_customers(store, events)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"exclusions": ["remove_from_cart"], "order": "ordered"},
        {"optional_steps": [2], "open_entry": True, "count_by": "session"},
        {"hold": "item_id"},
        {"by": "device", "attribution": "per_step", "order": "strict"},
    ],
)
def test_funnels_with_filters_exclusions_and_held_items_equal_the_store(sample, kwargs) -> None:
    _, _, store, events = sample
    steps = [
        Step("view_item", where={"device": ["mobile", "desktop"]}),
        "add_to_cart",
        "begin_checkout",
        "purchase",
    ]
    local = funnel(store, steps, window="3d", **kwargs)
    remote = funnel(events, steps, window="3d", **kwargs)  # SparkEvents: counted on Spark
    assert local.steps["persons"].iloc[0] > 100
    times = "hold" not in kwargs  # tie order between held units: hash order (ADR 0090)
    cols = [c for c in local.steps.columns if times or "seconds" not in c]
    assert_same(remote.steps[cols], local.steps[cols])
    if local.breakdown is not None:
        assert_same(remote.breakdown, local.breakdown)


def test_heavy_persons_are_the_stores_persons_with_that_many_events(sample) -> None:
    _, _, store, events = sample
    expected = store.db.df(
        "SELECT person_id, count(*) AS events FROM events GROUP BY person_id "
        "HAVING count(*) >= 40 ORDER BY events DESC, person_id"
    )
    got = (
        events.heavy_persons(40)
        .sort_values(["events", "person_id"], ascending=[False, True])
        .reset_index(drop=True)
    )
    assert len(expected) > 0
    assert_same(got, expected, check_dtype=False)


# -- the command line -------------------------------------------------------------------------
def cli_json(*args: str) -> object:
    from shopfunnel.cli import app

    result = CliRunner().invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    # floats to 9 significant digits: a sum of order values depends on the order of the
    # rows, which neither DuckDB's nor Spark's aggregate fixes
    return json.loads(result.stdout, parse_float=lambda text: float(f"{float(text):.9g}"))


@pytest.mark.parametrize(
    "command",
    [
        ["funnel", "--steps", "view_item,add_to_cart,purchase", "--by", "channel"],
        ["stages"],
        ["flow", "--from", "2024-02-01", "--to", "2024-03-01"],
        ["retention", "--view", "all"],
        ["rfm", "--by-group"],
    ],
)
def test_every_command_with_engine_spark_prints_what_the_store_gives(sample, command) -> None:
    path, db, _, _ = sample
    local = cli_json(*command, "--db", db)
    remote = cli_json(*command, "--engine", "spark", "--events", path)
    assert remote == local


def test_a_table_of_raw_events_gives_the_stores_numbers_and_leaves_no_copy(spark, sample) -> None:
    import os

    path, db, _, _ = sample
    spark.read.parquet(path).createOrReplaceTempView("lake_raw_events")
    cache = Path(os.environ["SHOPFUNNEL_SPARK_CACHE"])
    before = set(cache.iterdir()) if cache.exists() else set()
    for command in (["stages"], ["funnel", "--steps", "view_item,add_to_cart,purchase"]):
        remote = cli_json(*command, "--engine", "spark", "--table", "lake_raw_events")
        assert remote == cli_json(*command, "--db", db)
    # the prepared copy of the table lived for one command
    assert set(cache.iterdir()) == before


def test_events_without_engine_spark_are_refused_with_what_to_do(sample) -> None:
    from shopfunnel.cli import app

    path, db, _, _ = sample
    result = CliRunner().invoke(app, ["stages", "--db", db, "--events", path])
    assert result.exit_code != 0
    assert "--engine spark" in result.output


# -- randomized logs with stitched identities -------------------------------------------------
def with_orders(raw: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``raw_log`` with order ids and values on purchases (a few orders refunded later, a
    few purchases without an order id), so every customer analysis has orders."""
    rng = np.random.default_rng(seed)
    raw = raw.copy()
    buy = raw["event"] == "purchase"
    raw["order_id"] = None
    raw["value"] = None
    raw.loc[buy, "order_id"] = [
        f"o{i}" if rng.random() < 0.9 else None for i in range(int(buy.sum()))
    ]
    raw.loc[buy, "value"] = rng.integers(5, 300, int(buy.sum())).astype(float)
    refunds = raw[buy & raw["order_id"].notna()].sample(frac=0.2, random_state=seed).copy()
    refunds["event"] = "refund"
    refunds["event_id"] = "r" + refunds["event_id"]
    refunds["ts"] = refunds["ts"] + pd.Timedelta(days=3)
    refunds["value"] = -refunds["value"]
    raw = pd.concat([raw, refunds], ignore_index=True)
    raw["value"] = raw["value"].astype(float)
    return raw


@settings(
    max_examples=2,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)  # no shrinking: slow
@given(seed=st.integers(0, 10_000))
def test_random_logs_give_the_stores_stages_flow_retention_rfm_and_funnels(
    spark, tmp_path, seed: int
) -> None:
    raw = with_orders(raw_log(seed, persons=50), seed)
    path = tmp_path / f"raw{seed}.parquet"
    raw.to_parquet(path, index=False)
    with Store(":memory:") as store:
        store.load(raw)
        events = SparkEvents(str(path), spark=spark)
        try:
            assert_same_placement(store, events, lookback="30d")
            end = store.db.scalar("SELECT max(ts) FROM events")
            middle = (pd.Timestamp(end) - pd.Timedelta(days=2)).isoformat()
            assert_same(
                stage_flow(events, middle, pd.Timestamp(end).isoformat()),
                stage_flow(store, middle, pd.Timestamp(end).isoformat()),
            )
            assert_same_customers(store, events)
            steps = ["page_view", "view_item", "add_to_cart", "purchase"]
            engine = SparkEngine(spark, events.df)
            for kwargs in (
                {},
                {"order": "strict"},
                {"order": "any"},
                {"count_by": "session"},
                {"by": "channel", "attribution": "last"},
                {"exclusions": ["refund"]},
            ):
                local = funnel(store, steps, window="1h", **kwargs)
                remote = funnel(engine, steps, window="1h", **kwargs)
                assert_same(remote.steps, local.steps)
                if local.breakdown is not None:
                    assert_same(remote.breakdown, local.breakdown)
        finally:
            events.df.unpersist()
