"""The diagnosis's sessions on Spark answer every read as the store's sessions table does.

On Spark the sessions stay on the cluster (``diagnosis/spark_levels.py``): each read of
``SessionLevels`` brings back a grouped result and the DuckDB path's SQL finishes it. The
reference is the DuckDB store loaded from the same raw file; each read is compared exactly
(revenue to 9 significant digits: a sum of floats depends on the order of its terms),
before and after exclusions, in a window taken by ``within``, with a session property.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from shopfunnel.diagnosis.session_levels import SessionLevels
from shopfunnel.diagnosis.steps import DEFAULT_STEPS

pytest.importorskip("pyspark")

from spark_samples import raw_and_store  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
]

START, END = datetime(2024, 1, 15), datetime(2024, 4, 20)


@pytest.fixture(scope="module")
def sample(spark, tmp_path_factory):
    folder = tmp_path_factory.mktemp("spark_levels")
    with raw_and_store(spark, folder, 30_000, seed=5) as (_path, _db, store, events):
        yield store, events


def same(remote: pd.DataFrame, local: pd.DataFrame) -> None:
    assert len(local) > 0
    pd.testing.assert_frame_equal(
        remote.reset_index(drop=True), local.reset_index(drop=True), check_exact=False, rtol=1e-9
    )


def every_read(levels: SessionLevels) -> dict[str, object]:
    """What the diagnosis reads from a sessions table, on either engine."""
    some = datetime(2024, 3, 1, 7)
    return {
        "span": (levels.first_day, levels.last_day, levels.sessions),
        "totals": levels.counts(),
        "by day": levels.counts(by=["device", "channel"], grain="day"),
        "by hour, folded": levels.counts(
            by=["campaign", "device"],
            grain="hour",
            start=some,
            end=some + timedelta(days=3),
            keep={"campaign": ["retargeting", "brand_search"]},
        ),
        "top": levels.counts(by=["campaign"], top={"campaign": 3}),
        "none kept": levels.counts(by=["campaign"], keep={"campaign": []}),
        "with excluded": levels.counts(by=["channel"], include_excluded=True),
        "top values": levels.top_values("campaign", 2),
        "persons per session": levels.persons_per_session(
            some, some + timedelta(days=20), 1, device="mobile"
        ),
    }


def assert_same_reads(remote: SessionLevels, local: SessionLevels) -> None:
    reads = [every_read(lv) for lv in (remote, local)]
    for name, expected in reads[1].items():
        if isinstance(expected, pd.DataFrame):
            same(reads[0][name], expected)  # type: ignore[arg-type]
        else:
            assert reads[0][name] == expected, name


# exclusions: a segment over whole days, then overlapping ones at odd times
RULES = [
    (datetime(2024, 2, 10), datetime(2024, 2, 20), {"device": "mobile"}),
    (datetime(2024, 2, 15, 3, 17), datetime(2024, 3, 2, 11), {"channel": "paid search"}),
    (datetime(2024, 3, 5), datetime(2024, 3, 9), {"channel": "email", "device": "desktop"}),
]
# a window that is neither whole hours nor whole days
WINDOW = (datetime(2024, 2, 1, 5, 30), datetime(2024, 4, 1, 17, 45, 1))


def test_every_read_of_the_sessions_equals_the_stores_before_and_after_exclusions(
    sample,
) -> None:
    store, events = sample
    remote = SessionLevels(events, DEFAULT_STEPS, start=START, end=END)
    local = SessionLevels(store, DEFAULT_STEPS, start=START, end=END)
    assert remote.spark is not None and local.spark is None
    windows = [lv.within(*WINDOW) for lv in (remote, local)]
    try:
        assert_same_reads(remote, local)
        assert_same_reads(*windows)
        for start, end, segment in RULES:
            marked = [lv.exclude(start, end, **segment) for lv in windows]
            assert marked[0] == marked[1] > 0
        assert_same_reads(*windows)
        left_out = [
            lv.counts(include_excluded=True)["n0"].sum() - lv.counts()["n0"].sum() for lv in windows
        ]
        assert left_out[0] == left_out[1] > 0
        # the kept sessions (what checkout and correlation read) are those the store keeps
        kept = windows[0].spark.kept().select("session_id").collect()  # type: ignore[union-attr]
        with SessionLevels(store, DEFAULT_STEPS, start=START, end=END, from_timeline=False) as sql:
            window = sql.within(*WINDOW)
            for start, end, segment in RULES:
                window.exclude(start, end, **segment)
            expected = store.db.rows(f"SELECT session_id FROM {window.table} WHERE NOT excluded")
            window.close()
        assert {r["session_id"] for r in kept} == {r[0] for r in expected}
    finally:
        for lv in (*windows, remote, local):
            lv.close()


def test_a_session_property_and_hostile_values_read_the_same_on_spark(sample) -> None:
    store, events = sample
    tables = [
        SessionLevels(events, DEFAULT_STEPS, properties=["checkout_type", 'it\'s "odd"']),
        SessionLevels(store, DEFAULT_STEPS, properties=["checkout_type", 'it\'s "odd"']),
    ]
    try:
        counts = [lv.counts(by=["checkout_type", 'it\'s "odd"'], grain="day") for lv in tables]
        same(counts[0], counts[1])
        assert set(counts[1]["checkout_type"]) > {"(none)"}
        marked = [lv.exclude(START, END, campaign='it\'s "none"') for lv in tables]
        assert marked == [0, 0]
        marked = [lv.exclude(START, END, checkout_type="guest") for lv in tables]
        assert marked[0] == marked[1] > 0
        same(*[lv.counts(by=["checkout_type"]) for lv in tables])
    finally:
        for lv in tables:
            lv.close()


def test_the_sessions_stay_on_spark_until_the_last_table_using_them_closes(sample) -> None:
    _, events = sample
    wide = SessionLevels(events, DEFAULT_STEPS, start=START, end=END)
    narrow = wide.within(START + timedelta(days=30), END)
    frame = wide.spark._kept.frame  # type: ignore[union-attr]
    assert frame.is_cached
    wide.close()
    assert frame.is_cached and narrow.counts()["n0"].sum() == narrow.sessions > 0
    narrow.close()
    assert not frame.is_cached
