"""Retention counted in the store gives the table the pandas functions give.

:func:`shopfunnel.customers.retention.store_activity_retention` counts persons by cohort and
period in DuckDB instead of reading one row per person and period into pandas; on random
logs (persons, days across week and month ends, an ``as_of`` before or after the data) it
must equal :func:`activity_retention` over :func:`active_periods`, which is checked by hand
in tests/test_retention.py, both from the timeline and by SQL.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import T0, log
from shopfunnel.customers import retention as ret
from shopfunnel.store.store import Store

DAY = 24 * 60  # minutes


@st.composite
def logs(draw) -> list[tuple]:
    n = draw(st.integers(min_value=1, max_value=30))
    return [
        (draw(st.sampled_from("abcdef")), draw(st.integers(0, 120 * DAY)), "page_view")
        for _ in range(n)
    ]


_SHARED: list[Store] = []


def fresh(rows: list[tuple]) -> Store:
    if not _SHARED:
        _SHARED.append(Store(":memory:"))
    s = _SHARED[0]
    frame = log(*rows)
    frame["ts"] = frame["ts"].dt.tz_localize(None)
    s.db.execute("DELETE FROM events")
    s.db.register("__rows", frame)
    try:
        s.db.execute(
            "INSERT INTO events (event_id, ts, event, anonymous_id, person_id) "
            "SELECT event_id, ts, event, anonymous_id, anonymous_id FROM __rows"
        )
    finally:
        s.db.unregister("__rows")
    s._bump_generation()
    return s


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=logs(),
    period=st.sampled_from(["week", "month"]),
    as_of_day=st.one_of(st.none(), st.integers(-10, 150)),
)
def test_activity_retention_in_the_store_equals_the_pandas_table(rows, period, as_of_day) -> None:
    s = fresh(rows)
    as_of = None if as_of_day is None else (T0 + timedelta(days=as_of_day)).replace(tzinfo=None)
    want = ret.activity_retention(ret.active_periods(s, period=period), period=period, as_of=as_of)
    got = ret.store_activity_retention(s, period=period, as_of=as_of)  # from the timeline
    pd.testing.assert_frame_equal(got, want)
    with pytest.MonkeyPatch.context() as mp:  # and by SQL, when there is no timeline
        mp.setattr(ret, "_activity_counts_timeline", lambda *a: None)
        pd.testing.assert_frame_equal(
            ret.store_activity_retention(s, period=period, as_of=as_of), want
        )


def test_an_empty_store_has_no_activity_cohorts(store) -> None:
    got = ret.store_activity_retention(store, period="week")
    assert got.empty and list(got.columns) == ["cohort", "period", "cohort_size", "active", "rate"]


@settings(max_examples=80, deadline=None)
@given(
    days=st.lists(st.integers(-40_000, 40_000), min_size=1, max_size=50),
    period=st.sampled_from(["week", "month"]),
)
def test_period_numbers_are_the_calendar_periods_pandas_gives(days, period) -> None:
    """The timeline path numbers weeks and months with integer arithmetic and a day table;
    their starts must be pandas' ISO weeks (from Monday) and calendar months, also before
    1970."""
    import numpy as np

    d = np.array(days, dtype=np.int64)
    starts = ret._ordinal_starts(ret.period_ordinals(d, period), period)
    freq = {"week": "W-SUN", "month": "M"}[period]
    want = pd.PeriodIndex(d.astype("datetime64[D]"), freq=freq).start_time
    assert list(pd.DatetimeIndex(starts)) == list(want)


def time_between_orders_recipe(orders: pd.DataFrame) -> pd.Series:
    """The pandas recipe the NumPy gaps replaced: sort by person and time, diff per person."""
    frame = ret._orders_frame(orders).sort_values(["person_id", "ts"], kind="stable")
    gaps = frame.groupby("person_id")["ts"].diff().dropna()
    return (gaps / pd.Timedelta(days=1)).rename("days").reset_index(drop=True)


@settings(max_examples=80, deadline=None)
@given(
    orders=st.lists(
        st.tuples(
            st.sampled_from(["b", "a", "ü", "a2", "10"]),
            st.integers(0, 400 * DAY * 60 * 1_000_000),  # µs after T0
        ),
        max_size=30,
    )
)
def test_gaps_between_orders_are_the_pandas_recipes(orders) -> None:
    book = pd.DataFrame(
        {
            "person_id": [p for p, _ in orders],
            "ts": [
                pd.Timestamp(T0).tz_localize(None) + pd.Timedelta(microseconds=us)
                for _, us in orders
            ],
            "value": 1.0,
        }
    )
    pd.testing.assert_series_equal(
        ret.time_between_orders(book), time_between_orders_recipe(book), check_index_type=False
    )
