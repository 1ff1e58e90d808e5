"""Numbers that cannot disagree with themselves, over random logs (hypothesis), for every
order mode and counting unit, on both the SQL and the timeline path:

- the steps table and the total conversions do not depend on ``trend`` or ``by``;
- no count exceeds the events behind it: persons reaching step k are at most the units
  with an event of step k, and conversions of step k at most its events (in any order:
  at most the units whose events fill k step slots);
- a breakdown's persons add up to the steps' persons (one value per unit and step);
- every trend period counts at most the units of the plain funnel, and at least one
  period holds each unit that reached a step.
"""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from shopfunnel.funnel.api import funnel
from shopfunnel.funnel.engine import LocalEngine
from test_funnel_reference import STEPS, brute_any, brute_ordered, brute_strict, step_counts
from test_funnel_reference import logs as reference_logs
from test_timeline import CHANNELS, logs

# Period boundaries inside the logs: a Monday (day and week) and the 1st of a month.
BOUNDARIES = [pd.Timestamp("2024-01-29"), pd.Timestamp("2024-02-01")]


@st.composite
def boundary_logs(draw, max_persons: int = 8, max_events: int = 8):
    """Events within three hours of a day, week or month boundary, so that attempts of
    one unit start in several periods and reach the same later events."""
    rows = []
    for p in range(draw(st.integers(1, max_persons))):
        edge = draw(st.sampled_from(BOUNDARIES))
        for _ in range(draw(st.integers(1, max_events))):
            minute = draw(st.integers(-180, 180))
            rows.append(
                {
                    "anonymous_id": f"p{p}",
                    "ts": edge + pd.Timedelta(minutes=minute),
                    "event": draw(st.sampled_from(["a", "b", "c", "d", "x"])),
                    "session_id": f"s{p}{draw(st.sampled_from('ab'))}",
                    "channel": CHANNELS[abs(minute) % 3],
                }
            )
    return pd.DataFrame(rows)


STEP_SETS = [["a", "b", "c"], ["a", "b", "a", "c"], ["b", "a"], ["a", "b", "c", "d"]]


@st.composite
def settings_(draw):
    order = draw(st.sampled_from(["ordered", "strict", "any"]))
    steps = draw(st.sampled_from(STEP_SETS))
    kw = {
        "order": order,
        "window": draw(st.sampled_from(["5m", "1h", "1d", "30d"])),
        "count_by": draw(st.sampled_from(["person", "session"])),
        "open_entry": order != "any" and draw(st.booleans()),
    }
    if order != "any" and draw(st.booleans()):
        kw["exclusions"] = ["x"]
    if order != "any" and len(steps) > 2 and draw(st.booleans()):
        kw["optional_steps"] = [2]
    return steps, kw


def count(df: pd.DataFrame, steps: list[str], timeline: bool, **kw):
    # random logs may lack a step's event: that step counts nobody, on purpose
    return funnel(df, steps, engine=LocalEngine(df, timeline=timeline), allow_unknown=True, **kw)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    df=st.one_of(logs(), boundary_logs()),
    plan=settings_(),
    timeline=st.booleans(),
    trend=st.sampled_from(["day", "week", "month"]),
    attribution=st.sampled_from(["first", "last", "per_step"]),
)
def test_totals_hold_whatever_trend_and_breakdown_add(
    df, plan, timeline, trend, attribution
) -> None:
    steps, kw = plan
    note(f"steps={steps} kw={kw} timeline={timeline}")
    plain = count(df, steps, timeline, **kw)
    trended = count(df, steps, timeline, trend=trend, **kw)
    broken = count(df, steps, timeline, by="channel", attribution=attribution, **kw)
    both = count(df, steps, timeline, by="channel", attribution=attribution, trend=trend, **kw)
    for other in (trended, broken, both):
        pd.testing.assert_frame_equal(other.steps, plain.steps)
        pd.testing.assert_frame_equal(other.total_conversions, plain.total_conversions)
    pd.testing.assert_frame_equal(both.breakdown, broken.breakdown)
    pd.testing.assert_frame_equal(both.trend, trended.trend)
    total = trended.trend_with_total().query("period == 'total'")
    assert total["persons"].tolist() == plain.steps["persons"].tolist()

    unit = "anonymous_id" if kw["count_by"] == "person" else "session_id"
    known = df[df[unit].notna()]
    persons = plain.steps["persons"].tolist()
    conversions = plain.total_conversions["conversions"].tolist()
    for k, event in enumerate(steps):
        if kw["order"] == "any":  # row k counts units that did any k of the steps
            # an event fills every step slot it matches (a step named twice: two slots)
            slots = known["event"].map(lambda e: steps.count(e)).groupby(known[unit]).sum()
            assert persons[k] <= int((slots >= k + 1).sum())
            continue
        rows = known[known["event"] == event]
        assert persons[k] <= rows[unit].nunique()
        assert persons[k] <= conversions[k] <= len(rows)

    by_value = broken.breakdown.groupby("step")["persons"].sum()
    assert by_value.reindex(range(1, len(steps) + 1), fill_value=0).tolist() == persons

    per_period = trended.trend.groupby("step")["persons"].max()
    for k, reached in enumerate(persons, start=1):
        assert per_period.get(k, 0) <= reached
        if reached:
            assert trended.trend[trended.trend["step"] == k]["persons"].sum() >= reached


def test_an_event_reached_from_attempts_in_two_periods_counts_once_in_the_totals() -> None:
    # a at 23:00 and 01:00 (two days), b at 02:00: both attempts reach the same b
    df = pd.DataFrame(
        {
            "anonymous_id": ["p"] * 3,
            "event": ["a", "a", "b"],
            "ts": pd.to_datetime(["2024-01-01 23:00", "2024-01-02 01:00", "2024-01-02 02:00"]),
        }
    )
    for timeline in (False, True):
        plain = count(df, ["a", "b"], timeline, window="1d")
        daily = count(df, ["a", "b"], timeline, window="1d", trend="day")
        assert daily.total_conversions["conversions"].tolist() == [2, 1]
        assert daily.steps["median_seconds_from_previous"].tolist()[1] == 3600.0
        pd.testing.assert_frame_equal(daily.steps, plain.steps)
        # each day's attempts reach b: the trend says so, the totals do not add it twice
        assert daily.trend[daily.trend["step"] == 2]["persons"].tolist() == [1, 1]


# Logs of test_funnel_reference (40 seconds, distinct times per person) moved to straddle
# a period boundary: a Monday that starts a month, a Tuesday, a Thursday that starts one.
EDGES = [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02"), pd.Timestamp("2024-02-01")]


@st.composite
def straddling_logs(draw):
    df = draw(reference_logs())
    shift = int((draw(st.sampled_from(EDGES)) - pd.Timestamp("2024-01-01")).value // 1000)
    shift -= draw(st.integers(0, 40)) * 1_000_000
    df["t"] = df["t"] + shift
    df["ts"] = pd.to_datetime(df["t"], unit="us")
    # two sessions per person, split at a drawn second
    cut = draw(st.integers(0, 40))
    df["session_id"] = df["anonymous_id"] + ((df["t"] - df["t"].min()) // 1_000_000 > cut).map(
        {True: "b", False: "a"}
    )
    return df


BRUTE = {"ordered": brute_ordered, "strict": brute_strict, "any": brute_any}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    df=straddling_logs(),
    window_s=st.sampled_from([1, 5, 20, 60]),
    order=st.sampled_from(["ordered", "strict", "any"]),
    count_by=st.sampled_from(["person", "session"]),
    trend=st.sampled_from(["day", "week", "month"]),
    timeline=st.booleans(),
)
def test_each_period_counts_the_attempts_that_start_in_it(
    df, window_s, order, count_by, trend, timeline
) -> None:
    # reference: a brute force over every subsequence whose first event is in the period
    unit = "anonymous_id" if count_by == "person" else "session_id"
    result = count(
        df, STEPS, timeline, window=window_s, order=order, count_by=count_by, trend=trend
    )
    starts = df["ts"].dt.to_period({"day": "D", "week": "W-SUN", "month": "M"}[trend])
    expected = []
    for period in sorted(starts.unique()):
        start = period.start_time.value // 1000
        stop = (period.end_time.value // 1000) + 1

        def in_period(t_us: int, start: int = start, stop: int = stop) -> bool:
            return start <= t_us < stop

        levels = [
            BRUTE[order](
                list(zip(g["t"], g["event"], strict=True)), STEPS, window_s * 1_000_000, in_period
            )
            for _, g in df.sort_values("t").groupby(unit)
        ]
        counts = step_counts(levels, len(STEPS))
        if counts[0]:
            expected += [(pd.Timestamp(start, unit="us"), k + 1, c) for k, c in enumerate(counts)]
    got = list(result.trend[["period", "step", "persons"]].itertuples(index=False, name=None))
    assert got == expected
    # and the steps are the plain funnel's, which no sum of periods gives
    levels = [
        BRUTE[order](list(zip(g["t"], g["event"], strict=True)), STEPS, window_s * 1_000_000)
        for _, g in df.sort_values("t").groupby(unit)
    ]
    assert result.steps["persons"].tolist() == step_counts(levels, len(STEPS))
