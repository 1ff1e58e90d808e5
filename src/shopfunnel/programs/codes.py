"""Unique codes per person: issued unguessable, used once, read back from purchases.

**A code** is ``PREFIX`` + 10 characters drawn with :mod:`secrets` from Crockford's
base-32 alphabet (digits and capitals without I, L, O, U, which read like 1, 0 and V):
50 random bits, about 10^15 possible codes, so guessing one among a million issued takes
about a billion tries. Codes are unique across every offer and the referral programme
(each table's primary key, and a check against the other before writing); a person has
at most one code per offer.

**A use** is a ``purchase`` whose coupon field holds the code: ``properties.coupon``
(GA4's ``coupon`` parameter lands there on import; the WooCommerce and Shopify importers
write the order's discount codes there, comma-separated). Codes are compared trimmed and
upper-cased. One order is one use, however many purchase events it has.

**One use each**: of the uses inside the offer's period ``[starts_at, ends_at)``, the
earliest (by time, then order id) is the code's **redemption**; any later one is a
**reuse** that the checkout should have refused, and a use before or after the period is
**outside the period**. Only redemptions count in an offer's result; the others are
listed so the store can see a leak.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

import pandas as pd

from shopfunnel.errors import ConfigError
from shopfunnel.programs.tables import ensure_tables, has_table
from shopfunnel.store.db import json_pointer
from shopfunnel.store.store import Store

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 10
USES = ("redeemed", "reused", "outside_period")


def new_code(prefix: str = "") -> str:
    """A fresh code: ``prefix`` (upper-cased) and :data:`CODE_LENGTH` random characters."""
    return normalize_code(prefix) + "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(code: str) -> str:
    """A code as it is compared: trimmed and upper-cased."""
    return str(code).strip().upper()


def check_prefix(prefix: str) -> str:
    """A code prefix: up to 12 letters, digits or ``-``."""
    prefix = normalize_code(prefix)
    if len(prefix) > 12 or any(not (c.isascii() and (c.isalnum() or c == "-")) for c in prefix):
        raise ConfigError(
            f"code prefix {prefix!r} is not valid: up to 12 letters, digits or '-', e.g. SPRING-"
        )
    return prefix


def taken_codes(store: Store, codes: list[str]) -> set[str]:
    """Which of ``codes`` already exist, as an offer code or a referral code."""
    if not codes:
        return set()
    frame = pd.DataFrame({"code": codes})
    store.db.register("__new_codes", frame)
    try:
        return {
            r[0]
            for r in store.db.rows(
                "SELECT code FROM __new_codes WHERE code IN (SELECT code FROM program_codes) "
                "OR code IN (SELECT code FROM program_referral_codes)"
            )
        }
    finally:
        store.db.unregister("__new_codes")


def fresh_codes(store: Store, n: int, prefix: str = "") -> list[str]:
    """``n`` new codes, none already in the store and all different."""
    prefix = check_prefix(prefix)
    codes: list[str] = []
    while len(codes) < n:
        batch = list(dict.fromkeys(new_code(prefix) for _ in range(n - len(codes))))
        taken = taken_codes(store, batch) | set(codes)
        codes += [c for c in batch if c not in taken]
    return codes


def insert_codes(store: Store, table: str, rows: pd.DataFrame) -> None:
    """Write ``rows`` (the table's columns) in one transaction, refusing any code that is
    already in the store or given twice (nothing is written then)."""
    if table not in ("program_codes", "program_referral_codes"):
        raise ValueError(table)
    dupes = rows["code"][rows["code"].duplicated()].tolist()
    taken = taken_codes(store, rows["code"].tolist())
    if dupes or taken:
        bad = sorted(set(dupes) | taken)
        raise ConfigError(
            f"code(s) {bad[:5]} already exist (or are given twice): every code must "
            "be unique across offers and referrals; nothing was written"
        )
    store.db.register("__rows", rows)
    try:
        with store.db.transaction():
            cols = ", ".join(rows.columns)
            store.db.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM __rows")
    finally:
        store.db.unregister("__rows")


def issue_codes(
    store: Store,
    offer: str,
    persons: list[str],
    *,
    prefix: str = "",
    issued_at: datetime | None = None,
) -> pd.DataFrame:
    """Give each of ``persons`` a code for ``offer`` unless they have one; return the codes
    of those persons (``person_id``, ``code``, ``issued_at``), old and new, by person."""
    ensure_tables(store)
    have = set(offer_codes(store, offer)["person_id"])
    new = sorted(set(persons) - have)
    if new:
        when = issued_at or datetime.now().replace(microsecond=0)
        codes = fresh_codes(store, len(new), prefix)
        insert_codes(
            store,
            "program_codes",
            pd.DataFrame({"code": codes, "offer": offer, "person_id": new, "issued_at": when}),
        )
    out = offer_codes(store, offer)
    return out[out["person_id"].isin(set(persons))].reset_index(drop=True)


def import_codes(
    store: Store, offer: str, codes: pd.DataFrame, *, issued_at: datetime | None = None
) -> int:
    """Record codes made elsewhere (a platform's discount codes): ``codes`` has
    ``person_id`` and ``code``. A person who already holds a code for the offer, or a code
    that exists, is refused with nothing written. Returns the number of codes added."""
    ensure_tables(store)
    missing = {"person_id", "code"} - set(codes.columns)
    if missing:
        raise ConfigError(
            f"the codes table needs columns person_id and code (missing {sorted(missing)})"
        )
    rows = pd.DataFrame(
        {
            "code": codes["code"].map(normalize_code),
            "offer": offer,
            "person_id": codes["person_id"].astype(str),
            "issued_at": issued_at or datetime.now().replace(microsecond=0),
        }
    )
    if (rows["code"] == "").any():
        raise ConfigError("a code is empty: every row needs a code")
    holders = set(offer_codes(store, offer)["person_id"]) & set(rows["person_id"])
    if rows["person_id"].duplicated().any() or holders:
        raise ConfigError(
            f"a person may hold one code per offer: {sorted(holders)[:5] or 'a person is listed twice'}"
        )
    insert_codes(store, "program_codes", rows)
    return len(rows)


def offer_codes(store: Store, offer: str) -> pd.DataFrame:
    """The codes of ``offer``: ``person_id``, ``code``, ``issued_at``, by person."""
    if not has_table(store, "program_codes"):
        return pd.DataFrame(columns=["person_id", "code", "issued_at"])
    return store.db.df(
        "SELECT person_id, code, issued_at FROM program_codes WHERE offer = ? ORDER BY person_id",
        [offer],
    )


def coupon_orders_sql() -> tuple[str, list[Any]]:
    """SQL (and its parameters) of one row per order whose purchase carries a coupon:
    ``order_id``, ``ts`` (first purchase event), ``person_id`` (the buyer), ``value``
    (purchase value), ``discount`` and ``shipping`` (``properties.discount`` and
    ``properties.shipping`` summed, NULL when absent) and ``coupons`` (the codes, normalized).
    """
    coupon = "json_extract_string(properties, ?)"
    sql = f"""
        SELECT order_id, min(ts) AS ts, arg_min(person_id, ts) AS person_id,
               sum(value)::DOUBLE AS value,
               sum(TRY_CAST(json_extract_string(properties, ?) AS DOUBLE)) AS discount,
               sum(TRY_CAST(json_extract_string(properties, ?) AS DOUBLE)) AS shipping,
               list_distinct(flatten(list(list_filter(list_transform(
                   string_split(coalesce({coupon}, ''), ','), lambda x: upper(trim(x))), lambda x: x <> '')))) AS coupons
        FROM events
        WHERE event = 'purchase' AND order_id IS NOT NULL AND order_id IN (
            SELECT order_id FROM events WHERE event = 'purchase' AND nullif({coupon}, '') IS NOT NULL)
        GROUP BY order_id"""
    return sql, [
        json_pointer("discount"),
        json_pointer("shipping"),
        json_pointer("coupon"),
        json_pointer("coupon"),
    ]


def code_uses(store: Store, offer: str, starts_at: datetime, ends_at: datetime) -> pd.DataFrame:
    """Every order that carries a code of ``offer``, one row per (order, code):
    ``code``, ``holder_person_id``, ``order_id``, ``ts``, ``person_id`` (the buyer),
    ``value``, ``discount``, ``shipping`` and ``use`` (``redeemed``, ``reused`` or
    ``outside_period``, defined in the module docstring), by time."""
    columns = [
        "code",
        "holder_person_id",
        "order_id",
        "ts",
        "person_id",
        "value",
        "discount",
        "shipping",
        "use",
    ]
    if not has_table(store, "program_codes"):
        return pd.DataFrame(columns=columns)
    orders_sql, params = coupon_orders_sql()
    return store.db.df(
        f"""
        WITH o AS ({orders_sql}),
        used AS (
            SELECT c.code, c.person_id AS holder_person_id, o.order_id, o.ts, o.person_id,
                   o.value, o.discount, o.shipping, o.ts >= ? AND o.ts < ? AS inside
            FROM o, unnest(o.coupons) AS u(code) JOIN program_codes c ON c.code = u.code
            WHERE c.offer = ?)
        SELECT code, holder_person_id, order_id, ts, person_id, value, discount, shipping,
               CASE WHEN NOT inside THEN 'outside_period'
                    WHEN row_number() OVER (PARTITION BY code, inside ORDER BY ts, order_id) = 1
                    THEN 'redeemed' ELSE 'reused' END AS use
        FROM used ORDER BY ts, order_id, code
        """,
        [*params, starts_at, ends_at, offer],
    )[columns]


def code_status(store: Store, code: str, *, at: datetime | None = None) -> dict[str, Any]:
    """What a checkout should do with ``code`` at time ``at`` (default: now):
    ``status`` is ``unknown`` (no such code), ``not_started`` or ``expired`` (outside the
    offer's period), ``used`` (redeemed already: one use each) or ``valid``; with the
    ``offer``, the ``holder_person_id`` and, when used, the ``order_id`` that redeemed it."""
    code = normalize_code(code)
    found = (
        store.db.rows(
            "SELECT c.offer, c.person_id, o.starts_at, o.ends_at FROM program_codes c "
            "JOIN program_offers o ON o.name = c.offer WHERE c.code = ?",
            [code],
        )
        if has_table(store, "program_codes") and has_table(store, "program_offers")
        else []
    )
    if not found:
        return {
            "code": code,
            "status": "unknown",
            "offer": None,
            "holder_person_id": None,
            "order_id": None,
        }
    offer, holder, starts_at, ends_at = found[0]
    uses = code_uses(store, offer, starts_at, ends_at)
    redeemed = uses[(uses["code"] == code) & (uses["use"] == "redeemed")]
    when = at or datetime.now()
    status = (
        "used"
        if len(redeemed)
        else "not_started"
        if when < starts_at
        else "expired"
        if when >= ends_at
        else "valid"
    )
    return {
        "code": code,
        "status": status,
        "offer": offer,
        "holder_person_id": holder,
        "order_id": redeemed["order_id"].iloc[0] if len(redeemed) else None,
    }


def person_codes(store: Store, person_id: str) -> pd.DataFrame:
    """The offer codes one person holds: ``offer``, ``code``, ``issued_at``, and what a
    checkout would do with each now (:func:`code_status`): ``status`` and the ``order_id``
    that redeemed it (by anyone: a code used by another person shows here too); by offer."""
    columns = ["offer", "code", "issued_at", "status", "order_id"]
    if not has_table(store, "program_codes"):
        return pd.DataFrame(columns=columns)
    held = store.db.df(
        "SELECT offer, code, issued_at FROM program_codes WHERE person_id = ? ORDER BY offer, code",
        [person_id],
    )
    statuses = [code_status(store, code) for code in held["code"]]
    held["status"] = [s["status"] for s in statuses]
    held["order_id"] = [s["order_id"] for s in statuses]
    return held[columns]
