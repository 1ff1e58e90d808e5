"""Spark on the raw files counts what a Store loaded from the same files counts.

The store stitches anonymous ids to users, derives sessions and channels and drops
duplicate events as it loads (:mod:`shopfunnel.store.store`); Spark reading the raw files
applies the same rules (:mod:`shopfunnel.store.spark_rules`). Checked event by event (person,
session, channel) on randomized logs with stitched identities, and funnel by funnel on the
sample store's raw file against the store loaded from it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopfunnel.funnel.api import funnel
from shopfunnel.sample import generate_sample
from shopfunnel.store.store import Store

pyspark = pytest.importorskip("pyspark")

from shopfunnel.funnel.spark import SparkEngine  # noqa: E402
from shopfunnel.store import spark_rules  # noqa: E402
from shopfunnel.store.spark_rules import canonical_events  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
]

T0 = datetime(2024, 3, 1, tzinfo=UTC)
REFERRERS = [
    None,
    "https://www.google.com/search?q=x",
    "https://shop.example/p/1",
    "https://l.facebook.com/x",
    "https://news.example.org/a",
]
UTMS = [
    (None, None, None),
    ("google", "cpc", "brand"),
    ("newsletter", "email", "may"),
    ("facebook", "paid_social", "retarget"),
    (None, "organic", None),
]


def raw_log(
    seed: int, persons: int = 40, *, given: bool = False, repeats: bool = True
) -> pd.DataFrame:
    """Devices (anonymous ids) of users who sign in on some events, visits split by gaps
    around the 30-minute timeout, UTM values and referrers on some first events, a few
    given session ids and channels, and repeated rows (the same event twice).

    ``given``: every row has a session id and a channel (a collector's export), which
    skips the session and channel rules on Spark; ``repeats=False``: no repeated row."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(persons):
        user = f"u{p}" if rng.random() < 0.5 else None
        for d in range(int(rng.integers(1, 4))):
            anon = f"a{p}-{d}"
            t = T0 + timedelta(minutes=int(rng.integers(0, 5000)))
            for _ in range(int(rng.integers(1, 9))):
                t += timedelta(seconds=int(rng.choice([10, 600, 1799, 1800, 1801, 7200])))
                utm = UTMS[int(rng.integers(len(UTMS)))]
                row = {
                    "event_id": f"e{len(rows)}",
                    "ts": t,
                    "event": str(rng.choice(["page_view", "view_item", "add_to_cart", "purchase"])),
                    "anonymous_id": anon,
                    "user_id": user if user and rng.random() < 0.3 else None,
                    "utm_source": utm[0],
                    "utm_medium": utm[1],
                    "utm_campaign": utm[2],
                    "referrer": REFERRERS[int(rng.integers(len(REFERRERS)))],
                    "page": "https://shop.example/p/2",
                    "session_id": f"given-{p}" if given or rng.random() < 0.05 else None,
                    "channel": "email" if given or rng.random() < 0.05 else None,
                }
                if given:  # a few sessions per device, some shared by two devices
                    row["session_id"] = f"given-{p}-{int(rng.integers(0, 3))}"
                    row["channel"] = str(rng.choice(["email", "direct", "paid_search"]))
                rows.append(row)
                if repeats and rng.random() < 0.05:
                    rows.append(dict(row))  # the same event delivered twice
    return pd.DataFrame(rows)


def store_events(df: pd.DataFrame) -> pd.DataFrame:
    with Store(":memory:") as store:
        store.load(df)
        return store.events(["event_id", "person_id", "session_id", "channel"])


def spark_events(spark, df: pd.DataFrame, tmp_path) -> pd.DataFrame:
    path = tmp_path / "raw.parquet"
    df.to_parquet(path, index=False)
    out = canonical_events(spark.read.parquet(str(path)))
    return out.select("event_id", "person_id", "session_id", "channel").toArrow().to_pandas()


def by_event(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("event_id").reset_index(drop=True).astype(object).where(df.notna(), None)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10_000))
def test_every_event_gets_the_stores_person_session_and_channel(spark, tmp_path, seed: int) -> None:
    assert_same_as_the_store(spark, tmp_path, raw_log(seed))


@pytest.mark.parametrize("repeats", [True, False], ids=["repeated rows", "no repeated row"])
def test_given_sessions_and_channels_skip_their_rules_and_keep_the_stores_values(
    spark, tmp_path, repeats: bool
) -> None:
    assert_same_as_the_store(spark, tmp_path, raw_log(11, given=True, repeats=repeats))


def test_stitching_joined_without_broadcast_gives_the_same_persons(
    spark, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(spark_rules, "BROADCAST_STITCHING", 0)
    assert_same_as_the_store(spark, tmp_path, raw_log(12, given=True))


def test_a_hash_collision_of_two_ids_only_takes_the_exact_path(
    spark, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(spark_rules, "_repeated_ids", lambda df: True)
    assert_same_as_the_store(spark, tmp_path, raw_log(13, given=True, repeats=False))


def test_repeated_ids_are_found_by_their_hash(spark) -> None:
    unique = spark.createDataFrame([("a",), ("b",), ("c",)], "event_id string")
    repeated = spark.createDataFrame([("a",), ("b",), ("a",)], "event_id string")
    assert not spark_rules._repeated_ids(unique)
    assert spark_rules._repeated_ids(repeated)


def assert_same_as_the_store(spark, tmp_path, raw: pd.DataFrame) -> None:
    expected = by_event(store_events(raw))
    got = by_event(spark_events(spark, raw, tmp_path))
    assert len(got) == len(expected) == raw["event_id"].nunique()
    for col in ("person_id", "session_id", "channel"):
        mismatched = (got[col] != expected[col]).sum()
        assert mismatched == 0, (
            col,
            got[got[col] != expected[col]].head(),
            expected[got[col] != expected[col]].head(),
        )


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The sample store's raw file (devices, sign-ins, no person_id) and the store loaded
    from it."""
    path = tmp_path_factory.mktemp("raw") / "sample.parquet"
    table = generate_sample(60_000, seed=7)
    assert "person_id" not in table.column_names and "user_id" in table.column_names
    pq.write_table(table, path)
    store = Store(":memory:")
    store.load(str(path))
    yield str(path), store
    store.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"order": "strict"},
        {"order": "any"},
        {"count_by": "session"},
        {"by": "channel"},
        {"by": "channel", "attribution": "last"},
        {"trend": "week"},
    ],
)
def test_spark_on_the_raw_file_equals_the_store_built_from_it(spark, sample, kwargs) -> None:
    path, store = sample
    steps = ["view_item", "add_to_cart", "begin_checkout", "purchase"]
    local = funnel(store, steps, **kwargs)
    remote = funnel(SparkEngine(spark, path), steps, **kwargs)
    pd.testing.assert_frame_equal(remote.steps, local.steps)
    if kwargs.get("by"):
        pd.testing.assert_frame_equal(remote.breakdown, local.breakdown)
    if kwargs.get("trend"):
        pd.testing.assert_frame_equal(remote.trend, local.trend)


def test_the_raw_file_as_it_is_counts_devices_not_persons(spark, sample) -> None:
    path, store = sample
    steps = ["view_item", "purchase"]
    stitched = funnel(SparkEngine(spark, path), steps).steps["persons"].tolist()
    devices = funnel(SparkEngine(spark, path, store_rules=False), steps).steps["persons"].tolist()
    assert stitched == funnel(store, steps).steps["persons"].tolist()
    assert devices[0] > stitched[0]  # signed-in users have several devices
