"""Retention metrics on hand-made order books, computed by hand in the comments."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from shopfunnel.customers import retention as ret


def orders_of(*rows: tuple) -> pd.DataFrame:
    """(person, day, value[, refunded]) → an orders table like Store.table('orders')."""
    records = []
    for i, (person, day, value, *rest) in enumerate(rows):
        records.append(
            {
                "order_id": f"o{i}",
                "person_id": person,
                "ts": pd.Timestamp(day),
                "value": value,
                "refunded": rest[0] if rest else 0.0,
            }
        )
    return pd.DataFrame(records)


BOOK = orders_of(
    ("a", "2024-01-05", 10.0),
    ("a", "2024-02-10", 20.0),
    ("a", "2024-04-01", 30.0),
    ("b", "2024-01-20", 40.0),
    ("c", "2024-02-03", 5.0),
    ("c", "2024-02-20", 15.0, 15.0),
    ("c", "2024-03-15", 25.0),
)


def test_monthly_cohorts_share_of_customers_ordering_in_each_later_month():
    cohorts = ret.cohort_retention(BOOK, period="month")
    got = {(r.cohort, r.period): (r.cohort_size, r.active) for r in cohorts.itertuples()}
    # January: a and b; a orders again in February and April. February: c, again in March.
    assert got == {
        ("2024-01-01", 0): (2, 2),
        ("2024-01-01", 1): (2, 1),
        ("2024-01-01", 2): (2, 0),
        ("2024-01-01", 3): (2, 1),
        ("2024-02-01", 0): (1, 1),
        ("2024-02-01", 1): (1, 1),
        ("2024-02-01", 2): (1, 0),
    }
    matrix = ret.cohort_matrix(cohorts)
    assert list(matrix.columns) == ["cohort", "cohort_size", "0", "1", "2", "3"]
    assert matrix.loc[0, ["0", "1", "2", "3"]].tolist() == [1.0, 0.5, 0.0, 0.5]
    assert matrix.loc[1, ["0", "1", "2"]].tolist() == [1.0, 1.0, 0.0]
    assert math.isnan(matrix.loc[1, "3"])  # May 2024 has not been observed: NaN, not 0


def test_periods_after_as_of_are_not_reported():
    cohorts = ret.cohort_retention(BOOK, period="month", as_of="2024-02-15")
    assert cohorts["period"].max() == 1
    assert set(cohorts["cohort"]) == {"2024-01-01", "2024-02-01"}


def test_weekly_cohorts_start_on_monday():
    book = orders_of(("x", "2024-01-07", 1.0), ("x", "2024-01-08", 1.0))  # Sunday, Monday
    cohorts = ret.cohort_retention(book, period="week")
    assert cohorts[["cohort", "period", "active"]].values.tolist() == [
        ["2024-01-01", 0, 1],
        ["2024-01-01", 1, 1],
    ]


def test_activity_retention_counts_any_event_after_the_first_visit():
    events = pd.DataFrame(
        {
            "person_id": ["p", "p", "q", "q"],
            "ts": pd.to_datetime(["2024-01-30", "2024-02-02", "2024-01-01", "2024-01-31"]),
        }
    )
    cohorts = ret.activity_retention(events, period="month")
    assert cohorts[["cohort", "period", "cohort_size", "active"]].values.tolist() == [
        ["2024-01-01", 0, 2, 2],
        ["2024-01-01", 1, 2, 1],
    ]


def test_repeat_purchase_rate_is_customers_with_two_orders_over_customers():
    assert ret.repeat_purchase_rate(BOOK) == pytest.approx(2 / 3)
    same_day = orders_of(("a", "2024-01-01", 1.0), ("a", "2024-01-01", 2.0), ("b", "2024-01-01", 3))
    assert ret.repeat_purchase_rate(same_day) == pytest.approx(1 / 2)
    assert math.isnan(
        ret.repeat_purchase_rate(pd.DataFrame({"person_id": [], "ts": [], "value": []}))
    )


def test_time_between_orders_lists_each_consecutive_gap_in_days():
    # a: Jan 5 → Feb 10 = 36 d, Feb 10 → Apr 1 = 51 d (2024 is a leap year);
    # c: Feb 3 → Feb 20 = 17 d, Feb 20 → Mar 15 = 24 d.
    assert sorted(ret.time_between_orders(BOOK)) == [17.0, 24.0, 36.0, 51.0]
    dist = ret.time_between_orders_distribution(BOOK).set_index("bucket")["gaps"]
    assert dist["14–30 d"] == 2 and dist["30–60 d"] == 2 and dist.sum() == 4


def test_orders_per_customer_distribution():
    table = ret.orders_per_customer(BOOK)
    assert table.values.tolist() == [[1, 1, pytest.approx(1 / 3)], [3, 2, pytest.approx(2 / 3)]]


def test_summary_figures_match_the_hand_calculation():
    s = ret.retention_summary(BOOK)
    assert (s.customers, s.orders, s.revenue, s.repeat_customers) == (3, 7, 145.0, 2)
    assert s.orders_per_customer == pytest.approx(7 / 3)
    assert s.median_days_between_orders == pytest.approx(30.0)  # (24 + 36) / 2
    assert s.mean_days_between_orders == pytest.approx(32.0)
    assert s.average_order_value == pytest.approx(145 / 7)
    assert s.revenue_per_customer == pytest.approx(145 / 3)
    assert (s.refunded_orders, s.refund_rate) == (1, pytest.approx(1 / 7))
    assert s.refunded_value_share == pytest.approx(15 / 145)
    assert set(s.to_dict()) >= {"repeat_purchase_rate", "average_order_value", "refund_rate"}


def test_nobody_ordering_twice_gives_nan_gaps_not_an_error():
    s = ret.retention_summary(orders_of(("a", "2024-01-01", 5.0), ("b", "2024-01-02", 5.0)))
    assert s.repeat_purchase_rate == 0.0
    assert math.isnan(s.median_days_between_orders)
    assert (
        ret.time_between_orders_distribution(orders_of(("a", "2024-01-01", 5.0)))["share"]
        .isna()
        .all()
    )


def test_cohort_retention_from_a_store_matches_the_orders_table(store):
    from shopfunnel.ingest.datasets import load_dataset

    load_dataset("cdnow", store, kind="sample")
    cohorts = ret.cohort_retention(store.table("orders"), period="month")
    # every customer's first order is in Q1 1997 (how the CDNOW panel was drawn)
    assert set(cohorts["cohort"]) == {"1997-01-01", "1997-02-01", "1997-03-01"}
    assert cohorts.groupby("cohort")["cohort_size"].first().sum() == 2357
    assert (cohorts["rate"] <= 1).all()


def test_bad_period_is_a_config_error():
    from shopfunnel.errors import ConfigError

    with pytest.raises(ConfigError, match="month"):
        ret.cohort_retention(BOOK, period="day")  # type: ignore[arg-type]


def test_zoned_times_are_read_as_utc_by_every_customer_analysis():
    from shopfunnel.customers.clv import summary_from_orders
    from shopfunnel.customers.rfm import rfm_table
    from shopfunnel.customers.winback import lapsed_customers

    # 00:30 in Paris on Feb 1 is 23:30 UTC on Jan 31: the January cohort, the January day
    zoned = BOOK.assign(ts=BOOK["ts"].dt.tz_localize("UTC").dt.tz_convert("Europe/Paris"))
    pd.testing.assert_frame_equal(ret.cohort_retention(zoned), ret.cohort_retention(BOOK))
    pd.testing.assert_frame_equal(
        rfm_table(zoned, as_of="2024-04-02T00:00:00+00:00"), rfm_table(BOOK, as_of="2024-04-02")
    )
    pd.testing.assert_frame_equal(summary_from_orders(zoned), summary_from_orders(BOOK))
    pd.testing.assert_frame_equal(
        lapsed_customers(zoned, as_of="2024-06-30"), lapsed_customers(BOOK, as_of="2024-06-30")
    )
    edge = orders_of(("z", "2024-01-31 23:30", 1.0))
    edge_zoned = edge.assign(ts=edge["ts"].dt.tz_localize("UTC").dt.tz_convert("Europe/Paris"))
    assert ret.cohort_retention(edge_zoned)["cohort"].tolist() == ["2024-01-01"]


def test_the_cli_the_report_and_the_dashboard_use_the_same_retention(tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from conftest import log
    from shopfunnel.cli import app
    from shopfunnel.customers.retention import store_retention
    from shopfunnel.report import build as report_build
    from shopfunnel.server import queries
    from shopfunnel.store.store import Store

    # orders over 40 days: every face picks weekly cohorts
    rows = [
        (f"p{i % 5}", i * 60 * 24 * 2, "purchase", {"order_id": f"o{i}", "value": 10.0 + i})
        for i in range(20)
    ]
    path = str(tmp_path / "r.duckdb")
    with Store(path) as store:
        store.load(log(*rows))
        shared = store_retention(store)
        assert shared.period == "week"
        served = queries.retention(store)
        assert served["period"] == "week"
        assert served["summary"] == shared.summary.to_dict()
        section = report_build._cohorts(report_build.Context(store))
        assert "week" in str(section.__dict__)
    out = CliRunner().invoke(app, ["retention", "--db", path, "--format", "json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["summary"] == json.loads(json.dumps(shared.summary.to_dict()))
    assert len(data["cohorts"]) == len(shared.cohorts)
