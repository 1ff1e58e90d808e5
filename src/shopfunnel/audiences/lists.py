"""Audiences: lists of people to reach, and exports that ad platforms accept.

An audience is a DataFrame with one row per person (``person_id`` plus whatever the list is
about). Exports turn it into the file a platform takes:

- ``csv``: the audience as it is, for the store's own e-mail tool; the contact columns
  (``email``, ``phone``) only when asked for (``contacts=True``, ``--contacts``);
- ``meta``: Meta Custom Audiences columns ``EMAIL``, ``PHONE``, ``EXTERN_ID``; email trimmed and
  lower-cased, phone reduced to digits with the country code and no leading zeros, all three
  SHA-256 (lower-case hex; ``EXTERN_ID`` is the person id, hashed too: a guest's person id
  can be their e-mail);
- ``google``: Google Ads Customer Match columns ``Email``, ``Phone``; email as for Meta, phone
  in E.164 *with* the ``+`` before hashing (so the digests differ from Meta's), SHA-256.

Files meant for ad platforms never carry a contact in clear. Contact details come from the
events: the latest non-empty ``email`` and ``phone`` in a person's event ``properties``
(Segment ``identify`` traits, order webhooks and order exports put them there). A phone is
usable only with its country code (``+44 …`` or ``0044 …``; a ``(0)`` trunk prefix is
dropped). A person with neither is dropped from platform exports, which match on contact
details only; when that leaves nobody, :class:`NoContactsError` says so and why instead of an
empty file.
"""

from __future__ import annotations

import hashlib
import itertools
import operator
import re
from collections.abc import Iterable
from typing import Any, Literal

import pandas as pd

from shopfunnel.durations import parse_duration_seconds
from shopfunnel.errors import ConfigError, ShopfunnelError
from shopfunnel.store.store import Store
from shopfunnel.store.summary import spark_events

Platform = Literal["csv", "meta", "google"]
PLATFORMS: tuple[str, ...] = ("csv", "meta", "google")
CONTACT_COLUMNS = ("email", "phone")


class NoContactsError(ShopfunnelError):
    """A Meta or Google export would be empty: no person of the audience has a usable contact."""


def sha256_hex(text: str) -> str:
    """SHA-256 of the UTF-8 text as lower-case hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_email(email: str | None) -> str | None:
    """Trimmed and lower-cased; ``+tags`` and dots are kept (neither platform strips them)."""
    if email is None or not str(email).strip():
        return None
    return str(email).strip().lower()


def normalize_phone(phone: str | None, platform: Literal["meta", "google"]) -> str | None:
    """Digits with the country code; Meta drops the ``+`` (``16505550123``), Google keeps it
    (``+16505550123``). A number without a country code cannot be matched and gives None."""
    if phone is None:
        return None
    text = str(phone).strip().replace("(0)", "")
    digits = re.sub(r"\D", "", text)
    if text.startswith("00"):
        digits = digits[2:]
    elif not text.startswith("+"):
        return None
    digits = digits.lstrip("0")
    if len(digits) < 8:
        return None
    return digits if platform == "meta" else "+" + digits


def contacts(store: Store) -> pd.DataFrame:
    """Each person's latest email and phone seen in event properties."""
    return store.db.df(
        """
        SELECT person_id,
               arg_max(json_extract_string(properties, '$.email'), ts)
                   FILTER (WHERE nullif(json_extract_string(properties, '$.email'), '') IS NOT NULL) AS email,
               arg_max(json_extract_string(properties, '$.phone'), ts)
                   FILTER (WHERE nullif(json_extract_string(properties, '$.phone'), '') IS NOT NULL) AS phone
        FROM events WHERE properties IS NOT NULL
        GROUP BY person_id
        """
    )


def abandoned_carts(
    store: Store,
    *,
    after: str | float = "1h",
    lookback: str | float = "30d",
    as_of: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """People who put something in the cart and did not buy.

    A person is listed when their latest ``add_to_cart`` in the ``lookback`` period before
    ``as_of`` (default: the last event in the store) is at least ``after`` old and no
    ``purchase`` of theirs follows it. ``cart_value`` is the value of the items added since
    their last purchase (or the start of the lookback) less the items removed since, by
    ``item_id``: ``price × quantity`` per item, or the event ``value`` where an event has no
    items. Sorted by cart value, largest first.

    Columns: person_id, user_id, carted_at, cart_value, items (names), device, channel,
    email, phone.
    """
    after_s = parse_duration_seconds(after)
    lookback_s = parse_duration_seconds(lookback)
    end = store.db.scalar("SELECT max(ts) FROM events") if as_of is None else pd.Timestamp(as_of)
    if end is None:
        return pd.DataFrame(columns=_CART_COLUMNS)
    end = pd.Timestamp(end).tz_localize(None) if pd.Timestamp(end).tzinfo else pd.Timestamp(end)
    start = end - pd.Timedelta(seconds=lookback_s)
    cart_events = store.db.df(
        """
        WITH bounds AS (
            SELECT person_id,
                   max(ts) FILTER (WHERE event = 'add_to_cart') AS last_cart,
                   max(ts) FILTER (WHERE event = 'purchase') AS last_purchase
            FROM events WHERE ts >= ? AND ts <= ? GROUP BY person_id
        ),
        abandoners AS (
            SELECT * FROM bounds
            WHERE last_cart IS NOT NULL AND last_cart <= ?
              AND (last_purchase IS NULL OR last_purchase < last_cart)
        )
        SELECT e.person_id, e.user_id, e.ts, e.event, CAST(e.value AS DOUBLE) AS value, e.items,
               e.device, e.channel
        FROM events e JOIN abandoners a USING (person_id)
        WHERE e.event IN ('add_to_cart', 'remove_from_cart') AND e.ts >= ? AND e.ts <= ?
          AND (a.last_purchase IS NULL OR e.ts > a.last_purchase)
        ORDER BY e.person_id, e.ts
        """,
        [start, end, end - pd.Timedelta(seconds=after_s), start, end],
    )
    if cart_events.empty:
        return pd.DataFrame(columns=_CART_COLUMNS)
    rows = [
        _cart_row(person, group) for person, group in cart_events.groupby("person_id", sort=False)
    ]
    carts = pd.DataFrame(rows)
    carts = carts.merge(contacts(store), on="person_id", how="left")
    return carts.sort_values(["cart_value", "person_id"], ascending=[False, True]).reset_index(
        drop=True
    )[_CART_COLUMNS]


_CART_COLUMNS = [
    "person_id",
    "user_id",
    "carted_at",
    "cart_value",
    "items",
    "device",
    "channel",
    "email",
    "phone",
]


def _cart_row(person: str, events: pd.DataFrame) -> dict[str, object]:
    kept, value = _cart_lines(events)
    adds = events[events["event"] == "add_to_cart"]
    last = adds.iloc[-1]
    return {
        "person_id": person,
        "user_id": events["user_id"].dropna().iloc[-1] if events["user_id"].notna().any() else None,
        "carted_at": last["ts"],
        "cart_value": value,
        "items": ", ".join(kept),
        "device": last["device"],
        "channel": last["channel"],
    }


def _cart_lines(events: pd.DataFrame) -> tuple[list[str], float]:
    """The names of the items still in the cart, and its value, from a person's
    ``add_to_cart`` and ``remove_from_cart`` events in time order (rule in
    :func:`abandoned_carts`)."""
    return _fold_cart(
        zip(
            events["event"].tolist(),
            events["items"].tolist(),
            events["value"].tolist(),
            strict=True,
        )
    )


def _fold_cart(rows: Iterable[tuple[str, object, object]]) -> tuple[list[str], float]:
    """:func:`_cart_lines` over ``(event, items, value)`` rows in time order (plain values,
    no DataFrame per person: a flow's thousands of persons are folded in one loop)."""
    lines: dict[str, tuple[str, float]] = {}
    loose_value = 0.0
    for event, raw, value in rows:
        sign = 1 if event == "add_to_cart" else -1
        # a cart event without items reads as None, NaN or pd.NA (a column of only nulls)
        items: list[Any] = (
            list(raw)  # type: ignore[call-overload]
            if isinstance(raw, list | tuple) or hasattr(raw, "tolist")
            else []
        )
        if items:
            for item in items:
                key = item.get("item_id") or item.get("item_name") or "?"
                name = item.get("item_name") or key
                amount = float(item.get("price") or 0.0) * float(item.get("quantity") or 1)
                _, current = lines.get(key, (name, 0.0))
                lines[key] = (name, max(0.0, current + sign * amount))
        elif value is not None and not pd.isna(value):
            loose_value = max(0.0, loose_value + sign * float(value))  # type: ignore[arg-type]
    kept = [name for name, amount in lines.values() if amount > 0]
    return kept, round(sum(amount for _, amount in lines.values()) + loose_value, 2)


def left_behind(
    store: Store, person_ids: list[str], *, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """What each person left behind at ``end``: ``cart_items`` (names, comma-separated) and
    ``cart_value`` of the cart they hold (the items added since their last purchase, or
    since ``start``, less those removed, as in :func:`abandoned_carts`), and the last
    product they viewed at or before ``end``: ``last_viewed_item`` (its name, else its id),
    ``last_viewed_category`` and ``last_viewed_at``. One row per person of ``person_ids``."""
    columns = [
        "person_id",
        "cart_items",
        "cart_value",
        "last_viewed_item",
        "last_viewed_category",
        "last_viewed_at",
    ]
    people = pd.DataFrame({"person_id": pd.Series(list(dict.fromkeys(person_ids)), dtype=object)})
    if people.empty:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    db = store.db
    db.register("__left_behind_persons", people)
    try:
        cart_events = db.df(
            """
            WITH bought AS (
                SELECT e.person_id, max(e.ts) AS last_purchase FROM events e
                JOIN __left_behind_persons p USING (person_id)
                WHERE e.event = 'purchase' AND e.ts <= ? GROUP BY e.person_id
            )
            SELECT e.person_id, e.ts, e.event, CAST(e.value AS DOUBLE) AS value, e.items
            FROM events e JOIN __left_behind_persons p USING (person_id)
            LEFT JOIN bought b USING (person_id)
            WHERE e.event IN ('add_to_cart', 'remove_from_cart') AND e.ts >= ? AND e.ts <= ?
              AND (b.last_purchase IS NULL OR e.ts > b.last_purchase)
            ORDER BY e.person_id, e.ts
            """,
            [end, start, end],
        )
        viewed = db.df(
            """
            SELECT e.person_id,
                   arg_max(coalesce(e.items[1].item_name, e.items[1].item_id), e.ts) AS last_viewed_item,
                   arg_max(e.items[1].item_category, e.ts) AS last_viewed_category,
                   max(e.ts) AS last_viewed_at
            FROM events e JOIN __left_behind_persons p USING (person_id)
            WHERE e.event = 'view_item' AND e.ts <= ? GROUP BY e.person_id
            """,
            [end],
        )
    finally:
        db.unregister("__left_behind_persons")
    # rows come ordered by person, then time: one pass folds each person's run of rows
    rows = zip(
        cart_events["person_id"].tolist(),
        cart_events["event"].tolist(),
        cart_events["items"].tolist(),
        cart_events["value"].tolist(),
        strict=True,
    )
    carts = pd.DataFrame(
        [
            {
                "person_id": person,
                **dict(
                    zip(
                        ("cart_items", "cart_value"),
                        _fold_cart(row[1:] for row in run),
                        strict=True,
                    )
                ),
            }
            for person, run in itertools.groupby(rows, key=operator.itemgetter(0))
        ],
        columns=["person_id", "cart_items", "cart_value"],
    )
    carts["cart_items"] = carts["cart_items"].map(", ".join)
    out = people.merge(carts, on="person_id", how="left").merge(viewed, on="person_id", how="left")
    out["cart_items"] = out["cart_items"].fillna("")
    out["cart_value"] = pd.to_numeric(out["cart_value"]).fillna(0.0)
    return out[columns]


def profiles(store: Store, person_ids: list[str], *, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per person of ``person_ids`` (in that order) from their events at or before
    ``as_of``: ``first_seen``, ``last_seen``, ``orders`` (distinct order ids of purchases)
    and ``revenue`` (sum of purchase values, refunds not subtracted)."""
    people = pd.DataFrame({"person_id": pd.Series(list(person_ids), dtype=object)})
    if people.empty:
        return people.assign(
            first_seen=pd.Series([], dtype="datetime64[us]"),
            last_seen=pd.Series([], dtype="datetime64[us]"),
            orders=0,
            revenue=0.0,
        )
    if getattr(store, "on_spark", False):  # the same rows from Spark SQL
        return _profile_rows(people, spark_events(store).profiles(list(people["person_id"]), as_of))
    store.db.register("__profile_persons", people)
    try:
        found = store.db.df(
            """
            SELECT e.person_id, min(e.ts) AS first_seen, max(e.ts) AS last_seen,
                   count(DISTINCT e.order_id) FILTER (WHERE e.event = 'purchase') AS orders,
                   coalesce(sum(CAST(e.value AS DOUBLE)) FILTER (WHERE e.event = 'purchase'), 0)
                       AS revenue
            FROM events e JOIN __profile_persons p USING (person_id)
            WHERE e.ts <= ? GROUP BY e.person_id
            """,
            [as_of],
        )
    finally:
        store.db.unregister("__profile_persons")
    return _profile_rows(people, found)


def _profile_rows(people: pd.DataFrame, found: pd.DataFrame) -> pd.DataFrame:
    out = people.merge(found, on="person_id", how="left")
    out["orders"] = out["orders"].fillna(0).astype("int64")
    out["revenue"] = out["revenue"].fillna(0.0).astype(float)
    return out


def export_audience(
    audience: pd.DataFrame, platform: Platform, *, contacts: bool = False
) -> pd.DataFrame:
    """The audience in the columns and hashing the platform expects (see module docstring).

    ``contacts`` applies to ``csv``: without it the ``email`` and ``phone`` columns are left
    out. Platform files always hash them. Raises :class:`NoContactsError` when a platform file
    would have no row, with the counts that say why.
    """
    if platform not in PLATFORMS:
        raise ConfigError(f"platform {platform!r} is not known: use one of {', '.join(PLATFORMS)}")
    if platform == "csv":
        if contacts:
            return audience.copy()
        return audience.drop(columns=[c for c in CONTACT_COLUMNS if c in audience.columns])
    for col in CONTACT_COLUMNS:
        if col not in audience.columns:
            audience = audience.assign(**{col: None})

    def present(value: object) -> str | None:
        return (
            None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
        )

    emails = [normalize_email(present(e)) for e in audience["email"]]
    phones = [normalize_phone(present(p), platform) for p in audience["phone"]]
    hashed_email = pd.Series([None if e is None else sha256_hex(e) for e in emails], dtype=object)
    hashed_phone = pd.Series([None if p is None else sha256_hex(p) for p in phones], dtype=object)
    if platform == "meta":
        extern = [sha256_hex(str(p)) for p in audience["person_id"]]
        out = pd.DataFrame({"EMAIL": hashed_email, "PHONE": hashed_phone, "EXTERN_ID": extern})
    else:
        out = pd.DataFrame({"Email": hashed_email, "Phone": hashed_phone})
    keep = hashed_email.notna() | hashed_phone.notna()
    if not keep.any():
        raise NoContactsError(_why_no_contacts(audience, platform))
    return out[keep.to_numpy()].reset_index(drop=True)


def _why_no_contacts(audience: pd.DataFrame, platform: str) -> str:
    name = {"meta": "Meta", "google": "Google"}[platform]
    n = len(audience)
    if n == 0:
        return f"the audience is empty (0 persons): no {name} file written"
    raw_phones = audience["phone"].notna().sum()
    reasons = [f"none of the {n} person(s) has an e-mail"]
    reasons.append(
        f"{raw_phones} phone number(s) lack a country code (write them as +<code> …)"
        if raw_phones
        else "none has a phone number"
    )
    return (
        f"no {name} file written: {name} matches people on contacts only, and "
        f"{' and '.join(reasons)}. Collect e-mails with shopfunnel.identify() traits, the "
        "order webhooks or an order export (docs/server.md)."
    )
