"""The sample store's programs: its offer's result and its referral ledger equal direct SQL
over the events, written here without the programs' code; the coupons follow the tiers;
a smaller sample stays a prefix of a larger one, programs included."""

from __future__ import annotations

from datetime import datetime

import pytest

from shopfunnel.cli.programs import load_sample_programs
from shopfunnel.programs.offer_results import offer_result
from shopfunnel.programs.referrals import ReferralRule, referral_ledger
from shopfunnel.sample import generate_sample
from shopfunnel.sample import programs as sp
from shopfunnel.store.store import Store

SEED, N = 21, 400_000


@pytest.fixture(scope="module")
def shop():
    store = Store(":memory:")
    store.load(generate_sample(N, seed=SEED))
    load_sample_programs(store, seed=SEED)
    yield store
    store.close()


def test_the_offer_result_equals_direct_queries_of_the_events(shop):
    start, end = sp.offer_period(datetime(2024, 1, 1), 120)
    (
        issued,
        redeemed_codes,
        redeemed_orders,
        revenue,
        discount,
        comparable_orders,
        comparable_mean,
        comparable_persons,
        holder_orders,
        holder_gross,
    ) = shop.db.rows(
        """
        WITH codes AS (SELECT code, person_id FROM program_codes WHERE offer = ?),
        p AS (SELECT order_id, person_id, ts, CAST(value AS DOUBLE) AS value,
                     upper(trim(json_extract_string(properties, '$.coupon'))) AS coupon,
                     TRY_CAST(json_extract_string(properties, '$.discount') AS DOUBLE) AS discount
              FROM events WHERE event = 'purchase'),
        inside AS (SELECT * FROM p WHERE ts >= ? AND ts < ?),
        redeemed AS (SELECT inside.*, codes.person_id AS holder FROM inside JOIN codes ON inside.coupon = codes.code),
        holder_orders AS (SELECT * FROM inside WHERE person_id IN (SELECT person_id FROM codes)),
        comparable AS (SELECT * FROM holder_orders WHERE person_id NOT IN (SELECT holder FROM redeemed))
        SELECT (SELECT count(*) FROM codes), (SELECT count(DISTINCT coupon) FROM redeemed),
               (SELECT count(*) FROM redeemed), (SELECT sum(value) FROM redeemed),
               (SELECT sum(discount) FROM redeemed), (SELECT count(*) FROM comparable),
               (SELECT avg(value) FROM comparable), (SELECT count(DISTINCT person_id) FROM comparable),
               (SELECT count(*) FROM holder_orders),
               (SELECT sum(value + coalesce(discount, 0)) FROM holder_orders)
        """,
        [sp.OFFER_NAME, start, end],
    )[0]
    assert redeemed_orders >= 5  # the sample has redemptions to check
    r = offer_result(shop, sp.OFFER_NAME, gross_margin=0.5).summary
    assert (r["codes_issued"], r["codes_redeemed"], r["redeemed_orders"]) == (
        issued,
        redeemed_codes,
        redeemed_orders,
    )
    assert r["redemption_rate"] == pytest.approx(redeemed_codes / issued)
    assert r["revenue_redeemed"] == pytest.approx(revenue)
    assert r["discount_given"] == pytest.approx(discount) and r["cost"] == pytest.approx(discount)
    assert (r["comparable_orders"], r["comparable_persons"]) == (
        comparable_orders,
        comparable_persons,
    )
    assert r["mean_value_comparable"] == pytest.approx(comparable_mean)
    assert (r["holder_orders"], r["holder_gross_revenue"]) == (
        holder_orders,
        pytest.approx(holder_gross),
    )
    assert r["breakeven_uplift"] == pytest.approx(discount / (0.5 * holder_gross - discount))
    assert (r["reuses"], r["uses_outside_period"], r["redeemed_by_other"]) == (0, 0, 0)


def test_sample_coupons_take_the_tier_of_the_order_before_the_discount(shop):
    rows = shop.db.df(
        """SELECT list_sum([i.price * i.quantity for i in items]) AS gross, CAST(value AS DOUBLE) AS paid,
                  TRY_CAST(json_extract_string(properties, '$.discount') AS DOUBLE) AS discount
           FROM events WHERE event = 'purchase' AND json_extract_string(properties, '$.coupon') IS NOT NULL"""
    )
    rate = rows["gross"].map(lambda g: 0.10 if g >= 300 else 0.05 if g >= 100 else 0.0)
    assert (rows["gross"] >= 100).all()
    assert ((rows["discount"] - (rows["gross"] * rate)).abs() <= 0.0051).all()
    assert ((rows["paid"] + rows["discount"] - rows["gross"]).abs() < 0.001).all()


def test_the_referral_ledger_equals_direct_queries_of_the_events(shop):
    rule = ReferralRule(reward=10, min_spend=30, cap_per_referrer=1)
    expected = shop.db.df(
        """
        WITH touch AS (
            SELECT person_id, arg_min(upper(trim(json_extract_string(properties, '$.referral_code'))), ts) AS code,
                   min(ts) AS t
            FROM events WHERE json_extract_string(properties, '$.referral_code') IS NOT NULL GROUP BY person_id),
        first_order AS (
            SELECT person_id, min(ts) AS ft, arg_min(CAST(value AS DOUBLE), ts) AS v
            FROM events WHERE event = 'purchase' GROUP BY person_id),
        devices AS (SELECT DISTINCT person_id, anonymous_id FROM events),
        shared AS (SELECT DISTINCT a.person_id AS x, b.person_id AS y FROM devices a
                   JOIN devices b ON a.anonymous_id = b.anonymous_id AND a.person_id <> b.person_id),
        j AS (SELECT touch.person_id, c.person_id AS referrer, touch.t, f.ft, f.v FROM touch
              LEFT JOIN program_referral_codes c ON c.code = touch.code
              LEFT JOIN first_order f ON f.person_id = touch.person_id),
        verdict AS (
            SELECT person_id, referrer, ft, CASE
                WHEN referrer IS NULL THEN 'refused: unknown code'
                WHEN referrer = person_id THEN 'refused: self-referral (same person)'
                WHEN EXISTS (SELECT 1 FROM shared WHERE x = person_id AND y = referrer) THEN 'refused: device'
                WHEN ft < t THEN 'refused: not a new customer (ordered before the referral)'
                WHEN ft IS NULL THEN 'pending: no order yet'
                WHEN v < 30 THEN 'refused: below the minimum spend (30)'
                ELSE 'eligible' END AS verdict FROM j)
        SELECT person_id, referrer, CASE WHEN verdict <> 'eligible' THEN verdict
            WHEN row_number() OVER (PARTITION BY referrer, verdict = 'eligible' ORDER BY ft, person_id) <= 1
            THEN 'payable: ' ELSE 'refused: cap reached (1 per referrer)' END AS verdict
        FROM verdict
        """
    )
    ledger = referral_ledger(shop, rule)
    got = {
        (r.referred_person_id, r.referrer_person_id, f"{r.status}: {r.reason}")
        for r in ledger.itertuples()
    }
    want = {(r.person_id, r.referrer, r.verdict) for r in expected.itertuples()}
    assert got == want
    kinds = {v.split(":")[0] + ":" + v.split(":")[1][:8] for _, _, v in want}
    assert {"payable: ", "pending: no orde", "refused: self-re", "refused: cap rea"} <= kinds
    assert ledger["reward"].sum() == 10 * sum(v == "payable: " for _, _, v in want)


def test_referred_visits_come_from_the_referral_program_channel(shop):
    channels = shop.db.rows(
        """SELECT DISTINCT s.channel FROM sessions s JOIN events e USING (session_id)
           WHERE json_extract_string(e.properties, '$.referral_code') IS NOT NULL"""
    )
    assert channels == [(sp.REFERRAL_CHANNEL,)]


def test_a_smaller_sample_holds_the_same_rows_programs_included():
    small = generate_sample(25_000, seed=4).to_pandas().set_index("event_id").sort_index()
    large = generate_sample(120_000, seed=4).to_pandas().set_index("event_id")
    same = large.loc[small.index]
    touched = small["properties"].fillna("").str.contains("coupon|referral_code")
    assert touched.any()
    assert small.astype(str).equals(same.astype(str))


def test_the_report_shows_the_offer_and_the_referrals_as_computed(shop):
    from shopfunnel.report import build as build_module
    from shopfunnel.report.blocks import Table, Text
    from shopfunnel.report.render import render_section

    section = build_module._programs(build_module.Context(shop))
    offers = next(b for b in section.blocks if isinstance(b, Table)).frame.set_index("offer")
    r = offer_result(shop, sp.OFFER_NAME).summary
    assert offers.loc[sp.OFFER_NAME, "redeemed"] == r["codes_redeemed"]
    assert offers.loc[sp.OFFER_NAME, "break-even uplift"] == pytest.approx(r["breakeven_uplift"])
    led = referral_ledger(shop)
    line = next(b for b in section.blocks if isinstance(b, Text)).text
    assert f"{len(led):,} referred person(s)" in line
    assert "Programs" in render_section(section)


def test_a_store_without_programs_has_no_programs_section(store):
    from shopfunnel.report import build as build_module

    assert build_module._programs(build_module.Context(store)) is None
