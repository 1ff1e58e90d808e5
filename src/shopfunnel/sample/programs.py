"""The sample store's programs: a coupon offer its repeat buyers redeem, and a referral
programme that brings new visitors.

Everything is decided from the block's *sessions* and its full event arrays (never from the
rows a size limit keeps), so a smaller sample stays a prefix of a larger one; the random
draws come from their own stream ``(seed, block, 101)``, so the simulation itself is
unchanged.

**The offer** (:data:`OFFER_NAME`, the seed's tiers: 5% off from $100, 10% off from $300,
on the order value before the discount). Its period starts ``days // 4`` days after the
sample's start and lasts ``max(days // 4, 1)`` days (days 30–60 of the default 120).
*Holders* are the visitors with a purchase in the sample before the period starts (the
store's customers then); each holds one code. A holder's first purchase inside the period
whose value reaches $100 carries the code with probability :data:`P_REDEEM`: its
``properties`` gain ``coupon`` and ``discount``, and its ``value`` (and its refund's, if
refunded) becomes the value less the discount (cents rounded half up). Other purchases are
unchanged.

**Referrals.** Every customer has a referral code. A visitor whose first session comes from
the ``referral`` channel is, with probability :data:`P_REFERRED`, a referred friend instead:
the session's events get ``utm_source=referral_program``, ``utm_medium=referral``,
``utm_campaign=refer_a_friend``, no referrer and the channel ``referral program``, and its
first event carries ``properties.referral_code``: the code of a customer whose first
purchase came before that session and who was simulated before the friend (so a cut sample
holds every referrer of its friends), drawn so that the earliest customers refer most
(index ``⌊n·u²⌋`` among the n eligible, by first purchase). A customer's later session from
the ``referral`` channel carries their *own* code with probability :data:`P_SELF` (a
self-referral the programme must refuse).

Codes are derived from the seed and the person (:func:`sample_code`), so the codes the store
records after loading (:func:`offer_codes_for`, :func:`referral_codes_for`) are the ones the
events carry. They are not secret: the sample is public.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shopfunnel.sample import model as m
from shopfunnel.sample.events import PURCHASE, REFUND, US_PER_DAY
from shopfunnel.sample.plan import Plan

OFFER_NAME = "spring-tiers"
OFFER_TIERS = "100:5,300:10"
OFFER_PREFIX = "SPRING-"
REFERRAL_PREFIX = "REF-"
P_REDEEM = 0.6
P_REFERRED = 0.5
P_SELF = 0.3
REFERRAL_CHANNEL = "referral program"
REFERRAL_SOURCE = ("referral_program", "referral", "refer_a_friend", None)
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def sample_code(seed: int, prefix: str, person_id: str) -> str:
    """The sample's code of ``person_id``: ``prefix`` and 10 Crockford base-32 characters
    of BLAKE2b(seed, prefix, person)."""
    digest = int.from_bytes(
        hashlib.blake2b(f"{seed}|{prefix}|{person_id}".encode(), digest_size=8).digest(), "big"
    )
    return prefix + "".join(_ALPHABET[(digest >> (5 * i)) & 31] for i in range(10))


def offer_period(start: datetime, days: int) -> tuple[datetime, datetime]:
    """The sample offer's period ``[starts_at, ends_at)`` for a sample from ``start``."""
    begins = start + timedelta(days=days // 4)
    return begins, begins + timedelta(days=max(days // 4, 1))


def offer_codes_for(seed: int, persons: list[str]) -> dict[str, str]:
    """The sample offer's code of each person."""
    return {p: sample_code(seed, OFFER_PREFIX, p) for p in persons}


def referral_codes_for(seed: int, persons: list[str]) -> dict[str, str]:
    """The sample's referral code of each person."""
    return {p: sample_code(seed, REFERRAL_PREFIX, p) for p in persons}


def _with(text: str | None, **values: object) -> str:
    """A properties JSON object text with ``values`` added at the end."""
    extra = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in values.items())
    return "{" + extra + "}" if not text else text[:-1] + ", " + extra + "}"


def _first_of_each(keys: np.ndarray, order_by: np.ndarray) -> np.ndarray:
    """Positions of the first row of each key when rows are ordered by ``order_by``."""
    order = np.lexsort((order_by, keys))
    _, first = np.unique(keys[order], return_index=True)
    return order[first]


def apply_programs(
    plan: Plan,
    block: int,
    s: dict[str, np.ndarray],
    ev: dict[str, np.ndarray],
    sel: np.ndarray,
    columns: dict[str, pa.Array],
) -> dict[str, pa.Array]:
    """The block's columns with the programs' coupons and referrals written in (see the
    module docstring). ``ev`` holds every event of the block; ``sel`` the rows written."""
    rng = np.random.default_rng([plan.seed, block, 101])
    n_vis = int(s["visitor"].max()) + 1 if len(s["visitor"]) else 0
    u_redeem, u_refer, u_pick = rng.random(n_vis), rng.random(n_vis), rng.random(n_vis)
    u_self = rng.random(len(s["visitor"]))
    w0, w1 = (int(d * US_PER_DAY) for d in plan.window)
    visitor = s["visitor"]
    codes: dict[tuple[str, int], str] = {}

    def code(prefix: str, v: int) -> str:
        if (prefix, v) not in codes:
            codes[prefix, v] = sample_code(
                plan.seed, prefix, f"u{plan.seed}-{v + block * 1_000_000}"
            )
        return codes[prefix, v]

    # Purchases inside the sample (the store's orders), and each visitor's first.
    is_buy = (ev["type"] == PURCHASE) & (ev["ts"] >= w0) & (ev["ts"] < w1)
    b_sess, b_ts = ev["sess"][is_buy], ev["ts"][is_buy]
    first_buy = np.full(n_vis, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_buy, visitor[b_sess], b_ts)

    # The offer: holders' first purchase of $100 or more inside the period.
    start_us = w0 + (plan.days // 4) * US_PER_DAY
    end_us = start_us + max(plan.days // 4, 1) * US_PER_DAY
    gross = s["value_cents"][b_sess]
    cand = np.flatnonzero(
        (b_ts >= start_us)
        & (b_ts < end_us)
        & (first_buy[visitor[b_sess]] < start_us)
        & (gross >= 100_00)
    )
    cand = cand[_first_of_each(visitor[b_sess[cand]], b_ts[cand])] if len(cand) else cand
    cand = cand[u_redeem[visitor[b_sess[cand]]] < P_REDEEM]
    redeemed_sess = b_sess[cand]
    rate = np.where(gross[cand] >= 300_00, 0.10, 0.05)
    discount = np.floor(gross[cand] * rate + 0.5).astype(np.int64)

    # Referrals: referred first sessions and customers' own links.
    referral = m.CHANNELS.index("referral")
    start_us_s = np.round(s["start"] * US_PER_DAY).astype(np.int64)
    customers = np.flatnonzero(first_buy < np.iinfo(np.int64).max)
    by_first = customers[np.argsort(first_buy[customers], kind="stable")]
    first_sorted = first_buy[by_first]
    friend = np.flatnonzero(
        (s["number"] == 0)
        & (s["channel"] == referral)
        & (start_us_s >= w0)
        & (u_refer[visitor] < P_REFERRED)
    )
    # A referrer is a visitor simulated before the friend (a lower index), so a sample cut
    # at a visitor holds every referrer of the friends it holds.
    bought_before = np.searchsorted(first_sorted, start_us_s[friend], side="left")
    picked = []
    for x, k in zip(friend.tolist(), bought_before.tolist(), strict=True):
        eligible = by_first[:k][by_first[:k] < visitor[x]]
        picked.append(
            int(eligible[int(len(eligible) * u_pick[visitor[x]] ** 2)]) if len(eligible) else -1
        )
    referrer = np.array(picked, dtype=np.int64)
    friend, referrer = friend[referrer >= 0], referrer[referrer >= 0]
    own = np.flatnonzero(
        (s["number"] > 0)
        & (s["channel"] == referral)
        & (first_buy[visitor] < start_us_s)
        & (u_self < P_SELF)
    )
    marked_sess = np.concatenate([friend, own])
    code_of = {
        x: code(REFERRAL_PREFIX, r) for x, r in zip(friend.tolist(), referrer.tolist(), strict=True)
    }
    code_of.update({x: code(REFERRAL_PREFIX, int(visitor[x])) for x in own.tolist()})

    # Write them into the rows of this table.
    sess, etype = ev["sess"][sel], ev["type"][sel]
    if len(redeemed_sess) == 0 and len(marked_sess) == 0:
        return columns
    props = columns["properties"]
    texts: dict[int, str] = {}
    value_cents: dict[int, int] = {}
    off = dict(zip(redeemed_sess.tolist(), discount.tolist(), strict=True))
    gross_of = dict(zip(redeemed_sess.tolist(), gross[cand].tolist(), strict=True))
    for row in np.flatnonzero(
        np.isin(sess, redeemed_sess) & ((etype == PURCHASE) | (etype == REFUND))
    ).tolist():
        x = int(sess[row])
        value_cents[row] = gross_of[x] - off[x]
        if etype[row] == PURCHASE:
            texts[row] = _with(
                props[row].as_py(),
                coupon=code(OFFER_PREFIX, int(visitor[x])),
                discount=off[x] / 100,
            )
    in_marked = np.isin(sess, marked_sess)
    rows = np.flatnonzero(in_marked)
    if len(rows):
        for row in rows[_first_of_each(sess[rows], rows)].tolist():
            texts[row] = _with(props[row].as_py(), referral_code=code_of[int(sess[row])])
    out = dict(columns)
    if texts:
        mask = np.zeros(len(sel), dtype=bool)
        where = np.array(sorted(texts))
        mask[where] = True
        out["properties"] = pc.replace_with_mask(
            props, pa.array(mask), pa.array([texts[r] for r in where.tolist()], pa.string())
        )
    if value_cents:
        from decimal import Decimal

        mask = np.zeros(len(sel), dtype=bool)
        where = np.array(sorted(value_cents))
        mask[where] = True
        new = pa.array(
            [Decimal(value_cents[r]) / 100 for r in where.tolist()], pa.decimal128(18, 2)
        )
        out["value"] = pc.replace_with_mask(columns["value"], pa.array(mask), new)
    if in_marked.any():
        flag = pa.array(in_marked)
        for name, value in zip(
            ("utm_source", "utm_medium", "utm_campaign", "referrer"), REFERRAL_SOURCE, strict=True
        ):
            out[name] = pc.if_else(flag, pa.scalar(value, pa.string()), columns[name])
        out["channel"] = pc.if_else(
            flag, pa.scalar(REFERRAL_CHANNEL, pa.string()), columns["channel"]
        )
    return out
