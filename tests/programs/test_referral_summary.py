"""The referral summary per referrer equals a plain count over the ledger's rows."""

from __future__ import annotations

import math

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from shopfunnel.programs.referrals import summarize_ledger

STATUSES = ["paid", "payable", "pending", "refused", None]

row = st.fixed_dictionaries(
    {
        "referrer_person_id": st.sampled_from(["r1", "r2", "r3", "r'4", None]),
        "first_order_id": st.sampled_from(["o1", "o2", None]),
        "status": st.sampled_from(STATUSES),
        "reward": st.sampled_from([10.0, 2.5, 0.0, math.nan]),
    }
)


def _reference(rows: list[dict]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["referrer_person_id"] is None:
            continue
        s = out.setdefault(
            r["referrer_person_id"],
            {
                "referrals": 0,
                "customers": 0,
                "paid": 0,
                "payable": 0,
                "pending": 0,
                "refused": 0,
                "rewards_paid": 0.0,
                "rewards_payable": 0.0,
            },
        )
        s["referrals"] += 1
        s["customers"] += r["first_order_id"] is not None
        if r["status"] is not None:
            s[r["status"]] += 1
        reward = 0.0 if math.isnan(r["reward"]) else r["reward"]
        if r["status"] in ("paid", "payable"):
            s["rewards_" + r["status"]] += reward
    return out


@settings(deadline=None)
@given(st.lists(row, max_size=40))
def test_each_referrers_counts_and_rewards_are_the_sums_of_their_ledger_rows(rows):
    ledger = pd.DataFrame(
        rows, columns=["referrer_person_id", "first_order_id", "status", "reward"]
    ).astype({"referrer_person_id": "string", "first_order_id": "string", "status": "string"})
    summary = summarize_ledger(ledger)
    expected = _reference(rows)
    assert sorted(summary["referrer_person_id"]) == sorted(expected)
    for rec in summary.to_dict("records"):
        want = expected[rec["referrer_person_id"]]
        assert {k: rec[k] for k in want} == want
    # most rewarded first, then by referrer
    keys = list(
        zip(
            -summary["rewards_paid"],
            -summary["rewards_payable"],
            summary["referrer_person_id"],
            strict=True,
        )
    )
    assert keys == sorted(keys)
