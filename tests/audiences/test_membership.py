"""Membership history across refreshes: enter, leave, re-enter with a new entry id; each
entry reaches the webhook outbox once; saved audiences in the store."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
from tests.conftest import T0, log

from shopfunnel.audiences.membership import (
    CHANGE_COLUMNS,
    audience_changes,
    audience_history,
    current_members,
    publish,
    refresh_audience,
    refreshes,
)
from shopfunnel.audiences.saved import (
    audience_members,
    audience_table,
    create_audience,
    delete_audience,
    get_audience,
)
from shopfunnel.errors import ConfigError
from shopfunnel.model import Model, model_from_dict
from shopfunnel.store.store import Store
from shopfunnel.webhooks import add_endpoint

MODEL = Model()
HOUR = 60


def at(minutes: float) -> pd.Timestamp:
    return pd.Timestamp(T0).tz_localize(None) + pd.Timedelta(minutes=minutes)


def expected_id(audience: str, person: str, entered_at: pd.Timestamp, earlier: int) -> str:
    text = f"{audience}\x1f{person}\x1f{entered_at.isoformat()}\x1f{earlier}"
    return "m" + hashlib.sha256(text.encode()).hexdigest()[:32]


def cart_story(store: Store) -> None:
    """a carts at 0, buys at 3h, carts again at 5h; b carts at 2h and never buys."""
    store.load(
        log(
            ("a", 0, "add_to_cart"),
            ("b", 2 * HOUR, "add_to_cart"),
            ("a", 3 * HOUR, "purchase", {"order_id": "o1", "value": 10}),
            ("a", 5 * HOUR, "add_to_cart"),
            ("clock", 8 * HOUR, "page_view"),
        )
    )


def test_enter_leave_and_reenter_make_two_entries_with_different_ids(store: Store) -> None:
    cart_story(store)
    first = refresh_audience(store, "abandoned-carts", as_of=at(1 * HOUR), model=MODEL)
    assert (first.members, first.entered, first.exited) == (1, 1, 0)
    second = refresh_audience(
        store, "abandoned-carts", as_of=at(4 * HOUR), model=MODEL
    )  # a bought, b in
    assert list(second.changes[["person_id", "change"]].itertuples(index=False, name=None)) == [
        ("a", "exit"),
        ("b", "enter"),
    ]
    third = refresh_audience(
        store, "abandoned-carts", as_of=at(6 * HOUR), model=MODEL
    )  # a carted again
    assert list(third.changes[["person_id", "change"]].itertuples(index=False, name=None)) == [
        ("a", "enter")
    ]

    rows = audience_history(store, "abandoned-carts")
    a_rows = rows[rows["person_id"] == "a"].reset_index(drop=True)
    assert list(a_rows["entered_at"]) == [at(HOUR), at(6 * HOUR)]
    assert a_rows["exited_at"][0] == at(4 * HOUR) and pd.isna(a_rows["exited_at"][1])
    assert list(a_rows["entry_id"]) == [
        expected_id("abandoned-carts", "a", at(HOUR), 0),
        expected_id("abandoned-carts", "a", at(6 * HOUR), 1),
    ]
    # the exit carries the id of the entry it ends
    exit_row = second.changes[second.changes["change"] == "exit"].iloc[0]
    assert exit_row["entry_id"] == a_rows["entry_id"][0]
    assert sorted(current_members(store, "abandoned-carts")["person_id"]) == ["a", "b"]


def test_refreshing_again_at_the_same_time_changes_nothing(store: Store) -> None:
    cart_story(store)
    refresh_audience(store, "abandoned-carts", as_of=at(4 * HOUR), model=MODEL)
    again = refresh_audience(store, "abandoned-carts", as_of=at(4 * HOUR), model=MODEL)
    assert again.changes.empty and again.members == 1
    assert len(audience_history(store, "abandoned-carts")) == 1


def test_the_history_only_moves_forward(store: Store) -> None:
    cart_story(store)
    refresh_audience(store, "abandoned-carts", as_of=at(4 * HOUR), model=MODEL)
    with pytest.raises(ConfigError, match="only moves forward"):
        refresh_audience(store, "abandoned-carts", as_of=at(3 * HOUR), model=MODEL)
    assert len(refreshes(store, "abandoned-carts")) == 1


def test_changes_since_a_time_list_entries_and_exits_in_order(store: Store) -> None:
    cart_story(store)
    for hours in (1, 4, 6):
        refresh_audience(store, "abandoned-carts", as_of=at(hours * HOUR), model=MODEL)
    since = audience_changes(store, "abandoned-carts", since=at(4 * HOUR))
    assert list(since.columns) == CHANGE_COLUMNS
    assert list(since[["person_id", "change", "at"]].itertuples(index=False, name=None)) == [
        ("a", "exit", at(4 * HOUR)),
        ("b", "enter", at(4 * HOUR)),
        ("a", "enter", at(6 * HOUR)),
    ]
    assert len(audience_changes(store, "abandoned-carts")) == 4


def test_each_entry_reaches_the_webhook_outbox_once(store: Store) -> None:
    cart_story(store)
    add_endpoint(store, "https://hooks.example.com/in", secret="whsec_test_secret_0123")
    refresh_audience(store, "abandoned-carts", as_of=at(1 * HOUR), model=MODEL)
    assert publish(store, "abandoned-carts") == 1
    assert publish(store, "abandoned-carts") == 0  # nothing unpublished
    refresh_audience(store, "abandoned-carts", as_of=at(4 * HOUR), model=MODEL)
    refresh_audience(store, "abandoned-carts", as_of=at(6 * HOUR), model=MODEL)
    assert publish(store, "abandoned-carts") == 3  # a exit, b enter, a enter again
    keys = [k for (k,) in store.db.rows("SELECT idempotency_key FROM webhook_outbox ORDER BY 1")]
    ids = audience_history(store, "abandoned-carts")
    expected = sorted(
        [f"audience:abandoned-carts:{e}:enter" for e in ids["entry_id"]]
        + [f"audience:abandoned-carts:{e}:exit" for e in ids[ids["exited_at"].notna()]["entry_id"]]
    )
    assert keys == expected
    # a crash after enqueuing and before marking: publishing again adds nothing
    store.db.execute("UPDATE audience_refreshes SET published = false")
    assert publish(store, "abandoned-carts") == 0


def test_without_an_endpoint_changes_are_not_queued_or_replayed_later(store: Store) -> None:
    cart_story(store)
    refresh_audience(store, "abandoned-carts", as_of=at(1 * HOUR), model=MODEL)
    assert publish(store, "abandoned-carts") == 0
    add_endpoint(store, "https://hooks.example.com/in", secret="whsec_test_secret_0123")
    refresh_audience(store, "abandoned-carts", as_of=at(4 * HOUR), model=MODEL)
    assert publish(store, "abandoned-carts") == 2  # only the second refresh's changes


# -- saved audiences in the store -----------------------------------------------------------
def test_a_created_audience_is_kept_evaluated_and_deleted_with_its_history(store: Store) -> None:
    cart_story(store)
    create_audience(
        store,
        "carts-no-buyers",
        {"kind": "all", "of": ["abandoned-carts", {"kind": "not", "rule": {"kind": "orders"}}]},
        description="carts of people who never bought",
        model=MODEL,
    )
    assert get_audience(store, "carts-no-buyers", MODEL).source == "store"
    assert list(
        audience_members(store, "carts-no-buyers", as_of=at(6 * HOUR), model=MODEL)["person_id"]
    ) == ["b"]
    refresh_audience(store, "carts-no-buyers", as_of=at(6 * HOUR), model=MODEL)
    table = audience_table(store, MODEL).set_index("name")
    assert table.loc["carts-no-buyers", "members"] == 1
    assert delete_audience(store, "carts-no-buyers", model=MODEL) == 1
    assert audience_history(store, "carts-no-buyers").empty
    with pytest.raises(ConfigError, match="no audience 'carts-no-buyers'"):
        get_audience(store, "carts-no-buyers", MODEL)


def test_create_refuses_taken_names_unknown_references_and_loops(store: Store) -> None:
    create_audience(store, "mine", {"kind": "orders"}, model=MODEL)
    with pytest.raises(ConfigError, match="exists already \\(a built-in audience\\)"):
        create_audience(store, "vip", {"kind": "orders"}, model=MODEL)
    with pytest.raises(ConfigError, match="exists already \\(kept in the store\\)"):
        create_audience(store, "mine", {"kind": "orders"}, model=MODEL)
    with pytest.raises(
        ConfigError, match="refers to 'vipp', which does not exist \\(did you mean vip"
    ):
        create_audience(store, "x", {"kind": "all", "of": ["vipp"]}, model=MODEL)
    with pytest.raises(ConfigError, match="refers to itself"):
        create_audience(store, "loop", {"kind": "not", "rule": "loop"}, model=MODEL)
    with pytest.raises(ConfigError, match="name 'Big Spenders' is not valid"):
        create_audience(store, "Big Spenders", {"kind": "orders"}, model=MODEL)
    assert [a for (a,) in store.db.rows("SELECT name FROM audiences")] == ["mine"]


def test_delete_refuses_built_ins_model_audiences_and_ones_in_use(store: Store) -> None:
    model = model_from_dict({"audiences": {"declared": {"kind": "orders"}}}, source="shop.toml")
    create_audience(store, "base", {"kind": "orders"}, model=model)
    create_audience(store, "user", {"kind": "any", "of": ["base"]}, model=model)
    with pytest.raises(ConfigError, match="built-in"):
        delete_audience(store, "vip", model=model)
    with pytest.raises(ConfigError, match="declared in shop.toml"):
        delete_audience(store, "declared", model=model)
    with pytest.raises(ConfigError, match="user is made of 'base'"):
        delete_audience(store, "base", model=model)


def test_a_name_in_both_the_model_file_and_the_store_is_an_error_naming_both(store: Store) -> None:
    create_audience(store, "twice", {"kind": "orders"}, model=MODEL)
    model = model_from_dict({"audiences": {"twice": {"kind": "orders"}}}, source="shop.toml")
    with pytest.raises(ConfigError, match="defined both in shop.toml and in the store"):
        audience_table(store, model)
