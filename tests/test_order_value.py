"""Stores whose orders carry no value: the checkout steps they have, findings ranked by
orders at stake, and an average order value the owner gives (--aov) to price them.

Every count is worked out from the tiny logs built here."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from _synthetic import Sim, simulate
from shopfunnel.cli import app
from shopfunnel.diagnosis.checkout import checkout_findings
from shopfunnel.diagnosis.diagnose import DiagnoseSettings, diagnose
from shopfunnel.diagnosis.order_value import check_aov, given_aov, order_value
from shopfunnel.diagnosis.session_levels import SessionLevels
from shopfunnel.errors import ConfigError
from shopfunnel.report import make_report
from shopfunnel.report import sections as S
from shopfunnel.store.store import Store

T = pd.Timestamp("2024-03-01", tz="UTC")


def sessions(*groups: tuple[int, list[str]], value: float | None = None) -> pd.DataFrame:
    """``(count, events)`` groups: ``count`` sessions, each with these events in order; a
    purchase gets an order id and ``value``."""
    rows, i = [], 0
    for count, events in groups:
        for _ in range(count):
            for k, event in enumerate(events):
                row = {
                    "ts": T + pd.Timedelta(minutes=5 * i, seconds=k),
                    "event": event,
                    "anonymous_id": f"p{i}",
                    "session_id": f"s{i}",
                    "device": "mobile" if i % 2 else "desktop",
                }
                if event == "purchase":
                    row.update(order_id=f"o{i}", value=value)
                if event == "add_payment_info_failed":
                    row.update(
                        event="add_payment_info", properties=json.dumps({"payment_failed": True})
                    )
                rows.append(row)
            i += 1
    frame = pd.DataFrame(rows)
    frame["event_id"] = [f"e{k}" for k in range(len(frame))]
    return frame


def journey_of(store: Store) -> tuple[pd.DataFrame, list[str]]:
    with SessionLevels(store) as levels:
        journey, _, notes = checkout_findings(store, levels)
    return journey, notes


# -- the checkout steps the store has -----------------------------------------------------------
def test_a_store_without_begin_checkout_shows_shipping_payment_and_purchase(store) -> None:
    store.load(
        sessions(
            (10, ["page_view", "add_to_cart", "add_shipping_info"]),
            (6, ["page_view", "add_shipping_info", "add_payment_info"]),
            (4, ["page_view", "add_shipping_info", "add_payment_info", "purchase"]),
            (5, ["page_view", "add_to_cart"]),  # never entered checkout
        )
    )
    journey, notes = journey_of(store)
    overall = journey[journey["device"] == "all"].set_index("step")
    assert list(overall.index) == ["shipping info", "payment info", "purchase"]
    assert list(overall["sessions"]) == [20, 10, 4]
    assert list(overall["share_of_checkouts"]) == pytest.approx([1.0, 0.5, 0.2])
    assert any("records no begin_checkout; the journey shows the steps it has" in n for n in notes)


def test_a_later_step_counts_for_the_earlier_ones_and_payment_failures_get_a_row(store) -> None:
    # 3 sessions skipped add_shipping_info on the way to payment: they still reached shipping.
    store.load(
        sessions(
            (5, ["begin_checkout"]),
            (3, ["begin_checkout", "add_payment_info", "purchase"]),
            (2, ["begin_checkout", "add_shipping_info", "add_payment_info_failed"]),
            (2, ["begin_checkout", "add_shipping_info", "add_payment_info_failed", "purchase"]),
        )
    )
    journey, _ = journey_of(store)
    overall = journey[journey["device"] == "all"].set_index("step")
    assert list(overall.index) == [
        "checkout",
        "shipping info",
        "payment info",
        "payment failed",
        "purchase",
    ]
    assert list(overall["sessions"]) == [12, 7, 7, 4, 5]
    by_device = journey[journey["device"] == "mobile"].set_index("step")["sessions"]
    assert (
        by_device.sum() + journey[journey["device"] == "desktop"]["sessions"].sum()
        == overall["sessions"].sum()
    )


def test_a_payment_failed_event_counts_as_a_failure_and_as_reaching_payment(store) -> None:
    store.load(
        sessions(
            (4, ["add_shipping_info", "payment_failed"]),
            (6, ["add_shipping_info", "add_payment_info", "purchase"]),
        )
    )
    journey, notes = journey_of(store)
    overall = journey[journey["device"] == "all"].set_index("step")["sessions"]
    assert overall.to_dict() == {
        "shipping info": 10,
        "payment info": 10,
        "payment failed": 4,
        "purchase": 6,
    }
    assert not any("payment failures not measured" in n for n in notes)


def test_a_store_that_records_only_purchases_has_no_journey_and_says_why(store) -> None:
    store.load(sessions((5, ["page_view", "purchase"])))
    journey, notes = journey_of(store)
    assert journey.empty
    assert notes == [
        "checkout journey: the store records none of begin_checkout, add_shipping_info, "
        "add_payment_info, so the checkout cannot be followed step by step"
    ]
    section = S.checkout_section(journey, notes)
    assert section.note.startswith("the store records none of begin_checkout")


def test_the_report_section_shows_the_steps_as_shares_by_device(store) -> None:
    store.load(sessions((6, ["add_shipping_info"]), (4, ["add_shipping_info", "purchase"])))
    journey, notes = journey_of(store)
    section = S.checkout_section(journey, notes)
    (table,) = [b for b in section.blocks if type(b).__name__ == "Table"]
    assert list(table.frame.columns) == [
        "device",
        "sessions in checkout",
        "shipping info",
        "purchase",
    ]
    first = table.frame.iloc[0]
    assert first["device"] == "all" and first["sessions in checkout"] == 10
    assert first["purchase"] == pytest.approx(0.4)


# -- orders without values ------------------------------------------------------------------------
def test_an_order_value_counts_only_orders_that_carry_one(store) -> None:
    frame = sessions((2, ["purchase"]), value=10.0)
    frame.loc[1, "value"] = 30.0
    more = sessions((1, ["purchase"]))
    more["order_id"], more["session_id"], more["event_id"] = "o-none", "s-none", "e-none"
    store.load(pd.concat([frame, more], ignore_index=True))
    start, end = (
        pd.Timestamp("2024-01-01").to_pydatetime(),
        pd.Timestamp("2025-01-01").to_pydatetime(),
    )
    value = order_value(store, start, end)
    assert (value.orders, value.valued_orders, value.revenue) == (3, 2, 40.0)
    assert value.average_order_value == 20.0 and value.source == "measured"
    assert "1 of 3 orders carry no value" in value.note()
    given = order_value(store, start, end, given=55)
    assert (given.average_order_value, given.source, given.measured) == (55.0, "given", 20.0)


@pytest.mark.parametrize("bad", [0, -3, "abc", float("nan"), float("inf"), True])
def test_an_average_order_value_must_be_a_positive_number(bad) -> None:
    with pytest.raises(ConfigError, match="is not valid: give the store's average order value"):
        check_aov(bad)


def test_the_model_files_diagnosis_section_gives_the_average_order_value() -> None:
    assert given_aov(None, {"average_order_value": 45}) == 45.0
    assert given_aov(30, {"average_order_value": 45}) == 30.0  # --aov wins
    assert given_aov(None, {}) is None
    with pytest.raises(ConfigError, match=r"\[diagnosis\] has unknown key\(s\) aov"):
        given_aov(None, {"aov": 45})


@pytest.fixture(scope="module")
def valueless_store(tmp_path_factory):
    """A GA4-named store without order values and without begin_checkout, with a weak
    mobile checkout: findings to rank."""
    frame = simulate(
        Sim(
            seed=3,
            days=42,
            sessions_per_day=250,
            device_quality={"mobile": 0.75, "desktop": 1.05, "tablet": 1.0},
        )
    )
    frame = frame[frame["event"] != "begin_checkout"].assign(value=None)
    path = tmp_path_factory.mktemp("novalue") / "shop.duckdb"
    with Store(path) as s:
        s.load(frame)
    return path


def test_without_order_values_findings_are_ranked_by_orders_at_stake_and_say_why(
    valueless_store,
) -> None:
    with Store(valueless_store, read_only=True) as s:
        d = diagnose(s, model={})
    f = d.findings
    assert len(f) >= 2
    assert f["revenue_at_stake"].isna().all() and math.isnan(d.average_order_value)
    expected = (f["units_lost"].clip(lower=0) * f["downstream_rate"]).tolist()
    assert f["orders_at_stake"].tolist() == pytest.approx(expected)
    ranked = f["orders_at_stake"].dropna().tolist()
    assert ranked == sorted(ranked, reverse=True)
    assert d.order_value.source == "none" and d.order_value.valued_orders == 0
    assert any(
        f"none of the {d.orders:,} orders in the window carries a value" in n and "--aov" in n
        for n in d.notes
    )
    assert d.to_dict()["average_order_value_source"] == "none"
    json.dumps(d.to_dict(), allow_nan=False)


def test_an_average_order_value_prices_the_findings_without_reordering_them(
    valueless_store,
) -> None:
    with Store(valueless_store, read_only=True) as s:
        plain = diagnose(s, model={})
        priced = diagnose(s, model={}, settings=DiagnoseSettings(average_order_value=40.0))
        from_file = diagnose(s, model={"diagnosis": {"average_order_value": 40.0}})
    assert list(priced.findings["title"]) == list(plain.findings["title"])
    assert priced.findings["revenue_at_stake"].tolist() == pytest.approx(
        (priced.findings["orders_at_stake"] * 40.0).tolist()
    )
    assert priced.average_order_value == 40.0 and priced.order_value.source == "given"
    assert from_file.findings["revenue_at_stake"].tolist() == pytest.approx(
        priced.findings["revenue_at_stake"].tolist()
    )
    assert any("estimated with the average order value given, 40.00" in n for n in priced.notes)


def test_cli_diagnose_takes_aov_and_says_when_orders_carry_no_value(valueless_store) -> None:
    runner = CliRunner()
    plain = runner.invoke(app, ["diagnose", "--db", str(valueless_store), "--top", "3"])
    assert plain.exit_code == 0, plain.output
    assert "orders carry no value: ranked by orders at stake" in plain.output
    assert "orders at stake first" in plain.output and "≈" in plain.output
    priced = runner.invoke(
        app, ["diagnose", "--db", str(valueless_store), "--aov", "40", "--format", "json"]
    )
    data = json.loads(priced.output)
    assert data["average_order_value"] == 40.0 and data["average_order_value_source"] == "given"
    assert data["findings"][0]["revenue_at_stake"] == pytest.approx(
        data["findings"][0]["orders_at_stake"] * 40
    )
    bad = runner.invoke(app, ["diagnose", "--db", str(valueless_store), "--aov", "0"])
    assert bad.exit_code == 1 and "--aov 0.0 is not valid" in bad.output


def test_the_report_ranks_by_orders_shows_the_checkout_steps_and_prices_with_aov(
    valueless_store,
) -> None:
    with Store(valueless_store, read_only=True) as s:
        plain = make_report(s, model=None)
        priced = make_report(s, model=None, average_order_value=40.0)
    assert not plain.problems, plain.problems
    assert "Revenue at stake is missing because the store&#39;s orders carry no value" in plain.html
    assert "orders at stake" in plain.top_findings[0]
    assert "The checkout, step by step" in plain.html and "shipping info" in plain.html
    assert "the store records no begin_checkout" in plain.html
    assert "orders carry no value, so no offer can be priced" in plain.html
    assert "orders at stake" not in priced.top_findings[0] and "at stake" in priced.top_findings[0]
