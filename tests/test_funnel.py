"""Hand-written funnels, one rule each, over tiny event logs built in the test."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pandas as pd
import pytest

from conftest import log
from shopfunnel.errors import ConfigError, InputError
from shopfunnel.funnel.api import Step, funnel

DAY = 24 * 60  # minutes
T0 = datetime(2024, 3, 1, 12, 0, 0)


def counts(df: pd.DataFrame, steps, **kw) -> list[int]:
    return funnel(df, steps, **kw).steps["persons"].tolist()


def us_log(*rows: tuple) -> pd.DataFrame:
    """Events as (person, microseconds after T0, event[, extra]) with exact timestamps."""
    recs = []
    for person, micros, event, *rest in rows:
        rec = {"anonymous_id": person, "ts": T0 + timedelta(microseconds=micros), "event": event}
        if rest:
            rec.update(rest[0])
        recs.append(rec)
    df = pd.DataFrame(recs)
    df["ts"] = df["ts"].astype("datetime64[us]")
    return df


# -- ordered ----------------------------------------------------------------------------
def test_ordered_funnel_ignores_events_between_steps():
    df = log(("p", 0, "a"), ("p", 1, "x"), ("p", 2, "y"), ("p", 3, "b"), ("p", 4, "c"))
    assert counts(df, ["a", "b", "c"]) == [1, 1, 1]


def test_steps_done_out_of_order_do_not_count():
    df = log(("p", 0, "b"), ("p", 1, "a"), ("q", 0, "a"), ("q", 1, "c"), ("q", 2, "b"))
    assert counts(df, ["a", "b", "c"]) == [2, 1, 0]


def test_window_includes_its_end_exactly():
    week = 7 * 86_400 * 1_000_000
    df = us_log(("p", 0, "a"), ("p", week, "b"))
    assert counts(df, ["a", "b"], window="7d") == [1, 1]


def test_window_excludes_one_microsecond_past_its_end():
    week = 7 * 86_400 * 1_000_000
    df = us_log(("p", 0, "a"), ("p", week + 1, "b"))
    assert counts(df, ["a", "b"], window="7d") == [1, 0]


def test_window_is_anchored_at_step_one_not_at_the_previous_step():
    df = log(("p", 0, "a"), ("p", 5 * DAY, "b"), ("p", 8 * DAY, "c"))
    assert counts(df, ["a", "b", "c"], window="7d") == [1, 1, 0]


def test_repeated_step_one_restarts_the_window_at_the_latest_start():
    df = log(("p", 0, "a"), ("p", 6 * DAY, "a"), ("p", 8 * DAY, "b"))
    assert counts(df, ["a", "b"], window="7d") == [1, 1]


def test_a_later_attempt_that_goes_further_counts():
    df = log(
        ("p", 0, "a"),
        ("p", 1, "b"),  # first attempt stops at step 2
        ("p", 20 * DAY, "a"),
        ("p", 20 * DAY + 1, "b"),
        ("p", 20 * DAY + 2, "c"),
    )
    result = funnel(df, ["a", "b", "c"])
    assert result.steps["persons"].tolist() == [1, 1, 1]
    # the time to step 3 comes from the attempt that reached it
    assert result.steps["median_seconds_from_previous"].tolist()[1:] == [60.0, 60.0]


def test_equal_timestamps_are_taken_in_step_order():
    df = log(("p", 0, "c"), ("p", 0, "b"), ("p", 0, "a"))
    assert counts(df, ["a", "b", "c"]) == [1, 1, 1]


def test_equal_timestamps_match_clickhouse_window_funnel():
    chdb = pytest.importorskip("chdb")
    df = log(
        ("p", 0, "c"),
        ("p", 0, "b"),
        ("p", 0, "a"),
        ("q", 0, "b"),
        ("q", 0, "a"),
        ("q", 5, "c"),
        ("r", 1, "b"),
        ("r", 0, "a"),
        ("r", 1, "a"),
        ("r", 1, "c"),
    )
    frame = df.assign(t=df["ts"].astype("int64") // 1000)[["anonymous_id", "t", "event"]]  # noqa: F841, E501
    got = chdb.query(
        "SELECT anonymous_id, windowFunnel(3600000000)(toUInt64(t), event = 'a', event = 'b', "
        "event = 'c') AS level FROM Python(frame) GROUP BY anonymous_id ORDER BY anonymous_id",
        "DataFrame",
    )
    levels = got["level"].tolist()
    expected = [sum(1 for lv in levels if lv >= k) for k in (1, 2, 3)]
    assert counts(df, ["a", "b", "c"], window="1h") == expected


def test_one_event_can_match_two_steps():
    df = log(("p", 0, "view_item", {"channel": "email"}), ("p", 1, "purchase"))
    steps = [Step("view_item"), Step("view_item", where={"channel": "email"}), "purchase"]
    assert counts(df, steps) == [1, 1, 1]


# -- strict -----------------------------------------------------------------------------
def test_strict_funnel_breaks_when_another_event_comes_between_steps():
    df = log(("p", 0, "a"), ("p", 1, "x"), ("p", 2, "b"))
    assert counts(df, ["a", "b"], order="strict") == [1, 0]
    assert counts(df, ["a", "b"], order="ordered") == [1, 1]


def test_strict_funnel_allows_a_reload_of_the_step_just_reached():
    df = log(("p", 0, "a"), ("p", 1, "a"), ("p", 2, "b"), ("p", 3, "b"), ("p", 4, "c"))
    assert counts(df, ["a", "b", "c"], order="strict") == [1, 1, 1]


def test_strict_funnel_counts_a_later_uninterrupted_attempt():
    # ClickHouse's strict_order gives level 1 for `a x a b`; shopfunnel considers every attempt
    df = log(("p", 0, "a"), ("p", 1, "x"), ("p", 2, "a"), ("p", 3, "b"))
    assert counts(df, ["a", "b"], order="strict") == [1, 1]


def test_strict_funnel_breaks_on_a_repeat_of_an_earlier_step():
    df = log(("p", 0, "a"), ("p", 1, "b"), ("p", 2, "a"), ("p", 3, "c"))
    assert counts(df, ["a", "b", "c"], order="strict") == [1, 1, 0]


def test_strict_funnel_takes_other_events_at_the_same_instant_after_the_step():
    df = log(("p", 0, "a"), ("p", 1, "x"), ("p", 1, "b"))
    assert counts(df, ["a", "b"], order="strict") == [1, 1]


# -- any order --------------------------------------------------------------------------
def test_any_order_counts_distinct_steps_within_the_window():
    df = log(
        ("p", 0, "c"),
        ("p", 1, "a"),
        ("p", 2, "b"),
        ("q", 0, "b"),
        ("q", 8 * DAY, "a"),
        ("r", 0, "c"),
        ("r", 1, "c"),
    )
    assert counts(df, ["a", "b", "c"], order="any", window="7d") == [3, 1, 1]


# -- exclusions -------------------------------------------------------------------------
def test_exclusion_between_steps_stops_the_attempt_there():
    df = log(
        ("p", 0, "a"),
        ("p", 1, "b"),
        ("p", 2, "refund"),
        ("p", 3, "c"),
        ("q", 0, "refund"),
        ("q", 1, "a"),
        ("q", 2, "b"),
        ("q", 3, "c"),
    )
    assert counts(df, ["a", "b", "c"], exclusions=["refund"]) == [2, 2, 1]


def test_exclusion_only_applies_between_its_steps():
    df = log(("p", 0, "a"), ("p", 1, "refund"), ("p", 2, "b"), ("p", 3, "c"))
    assert counts(df, ["a", "b", "c"], exclusions=[("refund", 2, 3)]) == [1, 1, 1]
    assert counts(df, ["a", "b", "c"], exclusions=[("refund", 1, 2)]) == [1, 0, 0]


def test_exclusion_does_not_spoil_a_later_clean_attempt():
    df = log(("p", 0, "a"), ("p", 1, "refund"), ("p", 2, "b"), ("p", 3, "a"), ("p", 4, "b"))
    assert counts(df, ["a", "b"], exclusions=["refund"]) == [1, 1]


def test_exclusion_at_the_same_instant_as_a_step_comes_before_it():
    df = log(("p", 0, "a"), ("p", 1, "b"), ("p", 1, "refund"))
    assert counts(df, ["a", "b"], exclusions=["refund"]) == [1, 0]


# -- hold a property constant -----------------------------------------------------------
def test_hold_requires_the_same_value_at_every_step():
    df = log(
        ("p", 0, "view_item", {"order_id": "X"}),
        ("p", 1, "add_to_cart", {"order_id": "Y"}),
        ("p", 2, "purchase", {"order_id": "Y"}),
        ("q", 0, "view_item", {"order_id": "Z"}),
        ("q", 1, "add_to_cart", {"order_id": "Z"}),
        ("q", 2, "purchase", {"order_id": "Z"}),
    )
    steps = ["view_item", "add_to_cart", "purchase"]
    assert counts(df, steps) == [2, 2, 2]
    assert counts(df, steps, hold="order_id") == [2, 1, 1]


def test_hold_on_an_item_field_matches_any_item_of_the_event():
    item = lambda i: [{"item_id": i, "item_category": "shoes"}]  # noqa: E731
    store_df = log(
        ("p", 0, "view_item", {"items": item("A")}),
        ("p", 1, "add_to_cart", {"items": item("B") + item("A")}),
        ("q", 0, "view_item", {"items": item("A")}),
        ("q", 1, "add_to_cart", {"items": item("B")}),
    )
    from shopfunnel.store.store import Store

    with Store(":memory:") as store:
        store.load(store_df)
        assert counts(store, ["view_item", "add_to_cart"], hold="item_id") == [2, 1]
        assert counts(
            store, [Step("view_item", where={"item_category": "shoes"}), "add_to_cart"]
        ) == [2, 2]


# -- optional steps and open entry ------------------------------------------------------
def test_optional_step_may_be_skipped():
    df = log(("p", 0, "a"), ("p", 1, "c"), ("q", 0, "a"), ("q", 1, "b"), ("q", 2, "c"))
    assert counts(df, ["a", "b", "c"]) == [2, 1, 1]
    assert counts(df, ["a", "b", "c"], optional_steps=[2]) == [2, 1, 2]


def test_open_funnel_lets_persons_enter_at_any_step():
    df = log(("p", 0, "b"), ("p", 1, "c"), ("q", 0, "a"), ("q", 1, "b"))
    assert counts(df, ["a", "b", "c"]) == [1, 1, 0]
    assert counts(df, ["a", "b", "c"], open_entry=True) == [1, 2, 1]


# -- sessions and persons ---------------------------------------------------------------
def test_sessions_are_counted_apart_and_attempts_do_not_cross_them():
    df = log(
        ("p", 0, "a", {"session_id": "s1"}),
        ("p", 60, "b", {"session_id": "s2"}),
        ("p", 61, "a", {"session_id": "s2"}),
        ("p", 62, "b", {"session_id": "s2"}),
        ("q", 0, "a", {"session_id": "s3"}),
        ("q", 90, "b", {"session_id": "s4"}),
    )
    assert counts(df, ["a", "b"]) == [2, 2]
    assert counts(df, ["a", "b"], count_by="session") == [3, 1]


# -- breakdown --------------------------------------------------------------------------
def _attribution_log() -> pd.DataFrame:
    return log(
        ("p", 0, "a", {"channel": "email"}),
        ("p", 1, "b", {"channel": "direct"}),
        ("q", 0, "a", {"channel": "email"}),
        ("r", 0, "a", {"channel": "direct"}),
        ("r", 1, "b", {"channel": "direct"}),
    )


def _table(result) -> dict[tuple[str, int], int]:
    bd = result.breakdown
    return {(v, s): p for v, s, p in zip(bd["channel"], bd["step"], bd["persons"], strict=True)}


def test_breakdown_first_touch_uses_the_value_on_the_step_one_event():
    got = _table(funnel(_attribution_log(), ["a", "b"], by="channel", attribution="first"))
    assert got == {("email", 1): 2, ("email", 2): 1, ("direct", 1): 1, ("direct", 2): 1}


def test_breakdown_last_touch_uses_the_value_on_the_furthest_step():
    got = _table(funnel(_attribution_log(), ["a", "b"], by="channel", attribution="last"))
    assert got == {("direct", 1): 2, ("direct", 2): 2, ("email", 1): 1, ("email", 2): 0}


def test_breakdown_per_step_uses_each_steps_own_value():
    got = _table(funnel(_attribution_log(), ["a", "b"], by="channel", attribution="per_step"))
    assert got == {("email", 1): 2, ("email", 2): 0, ("direct", 1): 1, ("direct", 2): 2}


def test_breakdown_folds_the_long_tail_into_other():
    df = log(
        *[
            (f"p{i}", 0, "a", {"channel": c})
            for i, c in enumerate(["x", "x", "x", "y", "y", "z", None])
        ]
    )
    bd = funnel(df, ["a"], by="channel", top=2).breakdown
    assert dict(zip(bd["channel"], bd["persons"], strict=True)) == {"x": 3, "y": 2, "other": 2}


def test_breakdown_by_a_property_key():
    df = log(("p", 0, "a", {"properties": '{"plan": "pro"}'}), ("q", 0, "a"))
    from shopfunnel.store.store import Store

    with Store(":memory:") as store:
        store.load(df)
        bd = funnel(store, ["a"], by="plan").breakdown
    assert dict(zip(bd["plan"], bd["persons"], strict=True)) == {"pro": 1, "(none)": 1}


def test_breakdown_by_a_property_named_like_a_column_of_the_table_keeps_both():
    # a property called "name" must not overwrite the steps' names (nor they its values)
    df = log(("p", 0, "a", {"properties": '{"name": "ann"}'}), ("p", 1, "b"), ("q", 0, "a"))
    from shopfunnel.store.store import Store

    with Store(":memory:") as store:
        store.load(df)
        result = funnel(store, ["a", "b"], by="name")
    bd = result.breakdown
    assert result.by_column == "name (by)"
    assert bd["name"].tolist() == ["a", "b", "a", "b"]
    assert set(zip(bd["name (by)"], bd["step"], bd["persons"], strict=True)) == {
        ("ann", 1, 1),
        ("ann", 2, 1),
        ("(none)", 1, 1),
        ("(none)", 2, 0),
    }


# -- trend, times, drill-down, totals ---------------------------------------------------
def test_trend_counts_attempts_by_the_week_they_started():
    df = log(
        ("p", 0, "a"),
        ("p", 1, "b"),
        ("p", 7 * DAY, "a"),
        ("q", 7 * DAY, "a"),
        ("q", 7 * DAY + 1, "b"),
    )
    tr = funnel(df, ["a", "b"], trend="week").trend
    rows = {
        (str(p.date()), s): n
        for p, s, n in zip(tr["period"], tr["step"], tr["persons"], strict=True)
    }
    # T0 is Friday 2024-03-01: its week starts Monday 2024-02-26
    assert rows == {
        ("2024-02-26", 1): 1,
        ("2024-02-26", 2): 1,
        ("2024-03-04", 1): 2,
        ("2024-03-04", 2): 1,
    }


def test_time_to_convert_median_p90_and_histogram():
    df = log(
        *[
            row
            for i, m in enumerate([1, 2, 3, 4, 100])
            for row in ((f"p{i}", 0, "a"), (f"p{i}", m, "b"))
        ]
    )
    result = funnel(df, ["a", "b"])
    assert result.steps["median_seconds_from_previous"].iloc[1] == 180.0
    assert result.steps["p90_seconds_from_previous"].iloc[1] == pytest.approx(60 * (4 + 0.6 * 96))
    hist = result.time_to_convert()
    assert hist["persons"].sum() == 5
    assert dict(zip(hist["bin"], hist["persons"], strict=True))["1m–5m"] == 4  # 1, 2, 3, 4 min
    assert result.time_to_convert(2)["persons"].tolist() == hist["persons"].tolist()


def test_dropped_lists_the_persons_who_stopped_after_step_k():
    df = log(
        ("p", 0, "a"),
        ("p", 1, "b"),
        ("q", 0, "a"),
        ("q", 3, "a"),
        ("r", 0, "a"),
        ("r", 1, "b"),
        ("r", 2, "c"),
    )
    result = funnel(df, ["a", "b", "c"])
    d1 = result.dropped(1)
    assert d1["person_id"].tolist() == ["q"]
    assert d1["reached_at"].iloc[0] == pd.Timestamp("2024-03-01 12:00:00")
    assert result.dropped(2)["person_id"].tolist() == ["p"]
    with pytest.raises(ConfigError, match="from 1 to 2"):
        result.dropped(3)


def test_total_conversions_count_every_attempt_not_every_person():
    df = log(("p", 0, "a"), ("p", 1, "b"), ("p", 60, "a"), ("p", 61, "b"), ("q", 0, "a"))
    result = funnel(df, ["a", "b"])
    assert result.steps["persons"].tolist() == [2, 1]
    assert result.total_conversions["conversions"].tolist() == [3, 2]


def test_counts_never_increase_and_drop_off_adds_up():
    df = log(("p", 0, "a"), ("p", 1, "b"), ("q", 0, "a"), ("r", 0, "b"))
    s = funnel(df, ["a", "b"]).steps
    assert s["drop_off"].tolist() == [0, 1]
    assert s["conversion_from_previous"].tolist() == [1.0, 0.5]
    assert s["drop_off_rate"].tolist() == [0.0, 0.5]


# -- sources and output -----------------------------------------------------------------
def test_funnel_over_the_store_uses_stitched_persons(store):
    store.load(
        log(
            ("anon1", 0, "a"),
            ("anon1", 1, "login", {"user_id": "u1"}),
            ("anon2", 2, "b", {"user_id": "u1"}),
        )
    )
    assert counts(store, ["a", "b"]) == [1, 1]
    assert funnel(store, ["a", "b", "c"], allow_unknown=True).dropped(2)["person_id"].tolist() == [
        "u1"
    ]


def test_funnel_over_a_parquet_file(tmp_path):
    path = tmp_path / "events.parquet"
    log(("p", 0, "a"), ("p", 1, "b"), ("q", 0, "a")).to_parquet(path)
    assert counts(str(path), ["a", "b"]) == [2, 1]


def test_to_dict_is_json_with_a_steps_list():
    data = funnel(
        log(("p", 0, "a", {"channel": "email"}), ("p", 1, "b")), ["a", "b"], by="channel"
    ).to_dict()
    text = json.dumps(data, allow_nan=False)
    assert [(s["step"], s["event"], s["persons"]) for s in json.loads(text)["steps"]] == [
        (1, "a", 1),
        (2, "b", 1),
    ]


def test_repr_and_html_show_each_step():
    result = funnel(log(("p", 0, "view_item"), ("p", 1, "purchase")), ["view_item", "purchase"])
    assert "purchase" in repr(result) and "100.0%" in repr(result)
    assert "<table" in result._repr_html_()


def test_an_empty_result_still_has_one_row_per_step():
    s = funnel(log(("p", 0, "x")), ["a", "b"], allow_unknown=True).steps
    assert s["persons"].tolist() == [0, 0]
    assert s["conversion_from_start"].isna().all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"order": "sideways"}, "ordered, strict, any"),
        ({"count_by": "cookie"}, "person or session"),
        ({"window": "7 fortnights"}, "unit"),
        ({"optional_steps": [1]}, "from 2 to"),
        ({"exclusions": [("x", 2, 1)]}, "1 ≤ from < to"),
        ({"trend": "hour"}, "day, week, month"),
        ({"attribution": "middle"}, "first, last, per_step"),
        ({"order": "any", "exclusions": ["x"]}, "ordered or strict"),
        ({"by": "no_such_column"}, "not a column"),
    ],
)
def test_bad_arguments_say_what_is_allowed(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        funnel(log(("p", 0, "a"), ("p", 1, "b"), ("p", 2, "c")), ["a", "b", "c"], **kwargs)


def test_a_source_without_persons_is_refused():
    with pytest.raises(InputError, match="person_id, anonymous_id or user_id"):
        funnel(pd.DataFrame({"ts": [T0], "event": ["a"]}), ["a"])


def test_a_misspelt_event_key_or_breakdown_is_refused_with_the_closest_names():
    from shopfunnel.errors import UnknownNameError

    events = log(
        ("p", 0, "view_item", {"properties": '{"cart_id": "c1"}', "channel": "email"}),
        ("p", 1, "purchase"),
    )
    with pytest.raises(UnknownNameError, match="'purchase'"):
        funnel(events, ["view_item", "purchse"])
    with pytest.raises(UnknownNameError, match="'channel'"):
        funnel(events, ["view_item", "purchase"], by="chanel")
    with pytest.raises(UnknownNameError, match="'cart_id'"):
        funnel(events, ["view_item", "purchase"], hold="cartid")
    with pytest.raises(UnknownNameError, match="'cart_id'"):
        funnel(events, [Step("view_item", where={"cart_idd": "c1"}), "purchase"])
    with pytest.raises(UnknownNameError, match="no event is named 'refund'"):
        funnel(events, ["view_item", "purchase"], exclusions=["refund"])
    # the docs' own example, on a store without carts: named, with what would happen
    no_carts = log(
        ("p", 0, "view_item", {"properties": '{"order_id": "o1"}'}), ("p", 1, "purchase")
    )
    with pytest.raises(UnknownNameError, match="held property 'cart_id'.*no attempt would count"):
        funnel(no_carts, ["view_item", "purchase"], hold="cart_id")
    with pytest.raises(UnknownNameError, match="breakdown 'chanel'.*under '\\(none\\)'"):
        funnel(events, ["view_item", "purchase"], by="chanel")
    # said to be intended: counted, the missing step reaches nobody
    assert funnel(events, ["view_item", "refund"], allow_unknown=True).steps[
        "persons"
    ].tolist() == [1, 0]
    # a property key present on some event, an item field and a column are known
    assert funnel(events, ["view_item", "purchase"], hold="cart_id").steps["persons"].tolist() == [
        1,
        0,
    ]
    assert funnel(events, ["view_item", "purchase"], by="channel").steps["persons"].tolist() == [
        1,
        1,
    ]
