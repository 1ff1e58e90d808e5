"""Funnels checked against independent references on randomized logs.

* ordered mode against ClickHouse's own ``windowFunnel`` (chDB) and a brute force that
  tries every subsequence of each person's events;
* strict and any-order modes against brute forces written from the definitions;
* invariants: counts never increase along the funnel, a longer window never lowers a
  count, ordered ≥ strict.
Logs have no equal timestamps within a person (the tie rule has its own hand tests).
Each example holds up to 20 persons, each an independent log: 50 examples against chDB
check about 500 person logs while paying the per-call cost only 50 times.
"""

from __future__ import annotations

from datetime import datetime
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopfunnel.funnel.api import funnel

STEPS = ["a", "b", "c", "d"]
ALPHABET = ["a", "b", "c", "d", "x"]
T0_US = int(datetime(2024, 1, 1).timestamp()) * 1_000_000
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def logs(draw, max_persons: int = 20, max_events: int = 9):
    """A DataFrame of persons, each with distinct integer-second timestamps (in µs)."""
    rows = []
    for p in range(draw(st.integers(1, max_persons))):
        k = draw(st.integers(1, max_events))
        times = draw(st.lists(st.integers(0, 40), min_size=k, max_size=k, unique=True))
        for t in times:
            rows.append((f"p{p}", T0_US + t * 1_000_000, draw(st.sampled_from(ALPHABET))))
    df = pd.DataFrame(rows, columns=["anonymous_id", "t", "event"])
    df["ts"] = pd.to_datetime(df["t"], unit="us")
    return df


windows = st.sampled_from([1, 3, 5, 10, 20, 60])


def per_person(df: pd.DataFrame):
    for _, g in df.sort_values("t").groupby("anonymous_id"):
        yield list(zip(g["t"].tolist(), g["event"].tolist(), strict=True))


def step_counts(levels: list[int], n: int) -> list[int]:
    return [sum(1 for lv in levels if lv >= k) for k in range(1, n + 1)]


def _anywhere(t_us: int) -> bool:
    return True


def brute_ordered(events, steps, window_us, anchor_ok=_anywhere) -> int:
    """The longest k such that some subsequence matches steps 1..k within the window
    (and starts at a time ``anchor_ok`` accepts: a trend period)."""
    for k in range(len(steps), 0, -1):
        for idx in combinations(range(len(events)), k):
            if (
                all(events[i][1] == steps[j] for j, i in enumerate(idx))
                and (events[idx[-1]][0] - events[idx[0]][0] <= window_us)
                and (anchor_ok(events[idx[0]][0]))
            ):
                return k
    return 0


def brute_strict(events, steps, window_us, anchor_ok=_anywhere) -> int:
    """As ordered, and every event between two chosen steps repeats the earlier step."""
    for k in range(len(steps), 0, -1):
        for idx in combinations(range(len(events)), k):
            if not all(events[i][1] == steps[j] for j, i in enumerate(idx)):
                continue
            if events[idx[-1]][0] - events[idx[0]][0] > window_us:
                continue
            if not anchor_ok(events[idx[0]][0]):
                continue
            if all(
                events[m][1] == steps[j]
                for j in range(k - 1)
                for m in range(idx[j] + 1, idx[j + 1])
            ):
                return k
    return 0


def brute_any(events, steps, window_us, anchor_ok=_anywhere) -> int:
    """Most distinct steps in a window anchored at a step event."""
    best = 0
    for t0, e in events:
        if e in steps and anchor_ok(t0):
            seen = {e2 for t, e2 in events if t0 <= t <= t0 + window_us and e2 in steps}
            best = max(best, len(seen))
    return best


def ours(df, window_s, order="ordered", steps=STEPS) -> list[int]:
    # random logs may lack a step's event: that step counts nobody, on purpose
    return (
        funnel(df, steps, window=window_s, order=order, allow_unknown=True)
        .steps["persons"]
        .tolist()
    )


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=logs(), window_s=windows)
def test_ordered_counts_equal_clickhouse_window_funnel(df, window_s):
    chdb = pytest.importorskip("chdb")
    frame = df[["anonymous_id", "t", "event"]]  # noqa: F841 (read by chDB)
    conds = ", ".join(f"event = '{s}'" for s in STEPS)
    got = chdb.query(
        f"SELECT windowFunnel({window_s * 1_000_000})(toUInt64(t), {conds}) AS level "
        "FROM Python(frame) GROUP BY anonymous_id",
        "DataFrame",
    )
    assert ours(df, window_s) == step_counts(got["level"].tolist(), len(STEPS))


@SETTINGS
@given(df=logs(), window_s=windows)
def test_ordered_counts_equal_a_brute_force_over_all_subsequences(df, window_s):
    levels = [brute_ordered(ev, STEPS, window_s * 1_000_000) for ev in per_person(df)]
    assert ours(df, window_s) == step_counts(levels, len(STEPS))


@SETTINGS
@given(df=logs(), window_s=windows)
def test_strict_counts_equal_a_brute_force_over_all_subsequences(df, window_s):
    levels = [brute_strict(ev, STEPS, window_s * 1_000_000) for ev in per_person(df)]
    assert ours(df, window_s, "strict") == step_counts(levels, len(STEPS))


@SETTINGS
@given(df=logs(), window_s=windows)
def test_any_order_counts_equal_a_brute_force(df, window_s):
    levels = [brute_any(ev, STEPS, window_s * 1_000_000) for ev in per_person(df)]
    assert ours(df, window_s, "any") == step_counts(levels, len(STEPS))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=logs(), short=windows, longer=windows)
def test_counts_never_increase_and_a_longer_window_never_lowers_them(df, short, longer):
    short, longer = min(short, longer), max(short, longer)
    for order in ("ordered", "strict", "any"):
        a, b = ours(df, short, order), ours(df, longer, order)
        assert all(x >= y for x, y in zip(a, a[1:], strict=False))
        assert all(y >= x for x, y in zip(a, b, strict=True))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=logs(), window_s=windows)
def test_ordered_is_never_below_strict(df, window_s):
    ordered, strict = ours(df, window_s), ours(df, window_s, "strict")
    assert all(o >= s for o, s in zip(ordered, strict, strict=True))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=logs(), window_s=windows)
def test_trend_periods_add_up_to_the_whole_at_step_one_and_breakdown_sums_to_total(df, window_s):
    df = df.assign(channel=np.where(df["t"] // 1_000_000 % 2 == 0, "email", "direct"))
    whole = funnel(df, STEPS, window=window_s, by="channel", trend="day", allow_unknown=True)
    assert whole.steps["persons"].tolist() == ours(df, window_s)
    bd = whole.breakdown.groupby("step")["persons"].sum()
    assert bd.reindex(range(1, 5), fill_value=0).tolist() == whole.steps["persons"].tolist()
    per_day = whole.trend[whole.trend["step"] == 1]["persons"].sum()
    assert per_day >= whole.steps["persons"].iloc[0]


def test_batches_split_at_person_boundaries_give_the_same_counts():
    from shopfunnel.funnel.engine import LocalEngine

    rng = np.random.default_rng(3)
    n = 20_000
    df = pd.DataFrame(
        {
            "anonymous_id": [f"p{i}" for i in rng.integers(0, 2_000, n)],
            "t": T0_US + rng.integers(0, 3 * 86_400, n) * 1_000_000,
            "event": rng.choice(ALPHABET, n),
        }
    )
    df["ts"] = pd.to_datetime(df["t"], unit="us")
    whole = funnel(df, STEPS, window="1d", allow_unknown=True).steps["persons"].tolist()
    small = (
        funnel(df, STEPS, window="1d", allow_unknown=True, engine=LocalEngine(df, batch_rows=777))
        .steps["persons"]
        .tolist()
    )
    assert small == whole
    levels = [brute_ordered(ev, STEPS, 86_400_000_000) for ev in per_person(df) if len(ev) <= 14]
    assert len(levels) > 0
