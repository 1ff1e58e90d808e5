"""One person's journey: everything the store knows about them, in the order it happened.

The view support and marketing open first. :func:`find_persons` turns what they have (a
person id, a customer id, a cookie id, an e-mail) into person ids; :func:`person_journey`
assembles, for one person id (``person_id`` after identity stitching, see
:mod:`shopfunnel.store.store`):

- ``summary``: first and last event, events, sessions, orders, revenue (sum of the order
  values), refunded (sum of the refund values), whether the person is identified (has a
  customer id), first and last channel (of their earliest and latest event), and the stage
  they have reached (the furthest stage with evidence over their whole history,
  :mod:`shopfunnel.stages.history`);
- ``identities``: the customer ids (``user_id``) on their events and every anonymous id
  (cookie, device) seen on them, with when each was first and last seen, how many events
  carry it, and how it belongs to the person: ``customer id``, ``stitched`` (the anonymous
  id was seen with the customer id, ``linked_at`` is the first such event, and its earlier
  events count as the customer's), ``anonymous`` (never identified), or ``shared device``
  (the anonymous id is stitched to another person: only the events carrying this
  person's customer id are theirs);
- ``contacts`` (personal data, ADR 0118): the e-mails and phones their events carry
  (``properties.email``, ``properties.phone``), trimmed, first and last seen. Present only
  when asked (``contacts=True``); never written to a log;
- ``sessions``: one row per session (``session_id``) of their events: start, end, events,
  the channel, device and landing page of its first event, orders and revenue in it;
- ``events``: their events in time order (the latest ``events_limit``), with the products
  (``item_name`` or ``item_id`` × quantity), value, currency and order id;
- ``stages`` and ``stage_changes``: the first evidence of each stage and the instants the
  furthest stage moved forward (:mod:`shopfunnel.stages.history`);
- ``orders``: the orders whose first purchase event is theirs (the store's ``orders`` view
  restricted to them): time, value, currency, channel, device, refunded, products, coupons;
- ``experiments``: exposures per experiment (:func:`~shopfunnel.experiments.exposures.person_exposures`);
- ``codes``, ``referrals``, ``draws``: the programs' view of them (offer codes and their
  status, referral ledger rows as referred or referrer, giveaway entries);
- ``audiences`` and ``flows``: saved-audience stays and flow messages, read from the
  ``audience_members`` and ``flow_sends`` tables when the store has them (the audiences
  package writes them); a store without them gives empty tables and a note.

Times are UTC. Nothing is written to the store.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from shopfunnel.errors import ConfigError
from shopfunnel.experiments.exposures import person_exposures
from shopfunnel.model import Model, load_model
from shopfunnel.programs.codes import person_codes
from shopfunnel.programs.giveaways import person_draws
from shopfunnel.programs.referrals import person_referrals
from shopfunnel.stages.history import stage_changes, stage_evidence
from shopfunnel.stages.orders import ORDER_EVENT
from shopfunnel.store.db import json_pointer, quote_ident
from shopfunnel.store.erase import find_persons as persons_by_email
from shopfunnel.store.store import Store

DEFAULT_EVENTS_LIMIT = 500
REFUND_EVENT = "refund"
# The tables the audiences package keeps (read when present): table -> wanted columns.
# table -> (the time its rows are ordered by, the columns shown)
AUDIENCE_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "audience_members": ("entered_at", ("audience", "entered_at", "exited_at")),
    "flow_sends": (
        "trigger_at",
        ("flow", "trigger_event", "trigger_at", "due_at", "sent_at", "held_out"),
    ),
}
# each table of a journey as the faces title it, and the event columns they show
PART_TITLES: dict[str, str] = {
    "identities": "Identities: anonymous ids stitched to the customer",
    "contacts": "Contacts (personal data)",
    "stage_changes": "Stage changes",
    "sessions": "Sessions",
    "orders": "Orders",
    "events": "Events, in order",
    "audiences": "Saved audiences",
    "flows": "Flow messages",
    "experiments": "Experiment exposures",
    "codes": "Offer codes",
    "referrals": "Referrals",
    "draws": "Giveaway draws",
}
EVENT_COLUMNS_SHOWN = [
    "ts",
    "event",
    "session_id",
    "channel",
    "device",
    "page",
    "products",
    "value",
    "currency",
    "order_id",
]
PRODUCTS_SQL = (
    "array_to_string(list_transform(items, lambda it: coalesce(it.item_name, it.item_id, '?') "
    "|| ' ×' || CAST(coalesce(it.quantity, 1) AS VARCHAR)), ', ')"
)


@dataclass(frozen=True)
class PersonMatch:
    """A person found by a search: the ``person_id`` and how the query matched it
    (``person id``, ``customer id``, ``anonymous id`` or ``e-mail``)."""

    person_id: str
    matched_by: str


@dataclass(frozen=True)
class Journey:
    """One person's journey (every part defined in the module docstring)."""

    person_id: str
    summary: dict[str, Any]
    identities: pd.DataFrame
    sessions: pd.DataFrame
    events: pd.DataFrame
    stages: pd.DataFrame
    stage_changes: pd.DataFrame
    orders: pd.DataFrame
    experiments: pd.DataFrame
    codes: pd.DataFrame
    referrals: pd.DataFrame
    draws: pd.DataFrame
    audiences: pd.DataFrame
    flows: pd.DataFrame
    contacts: pd.DataFrame | None = None
    notes: tuple[str, ...] = field(default=())

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by name, in the order the faces show them (contacts only when present);
        titles in :data:`PART_TITLES`."""
        out = {"identities": self.identities}
        if self.contacts is not None:
            out["contacts"] = self.contacts
        out.update(
            stage_changes=self.stage_changes,
            sessions=self.sessions,
            orders=self.orders,
            events=self.events,
            audiences=self.audiences,
            flows=self.flows,
            experiments=self.experiments,
            codes=self.codes,
            referrals=self.referrals,
            draws=self.draws,
        )
        return out

    def shown_tables(self) -> dict[str, pd.DataFrame]:
        """:meth:`tables` as the faces show them: the events with :data:`EVENT_COLUMNS_SHOWN`,
        and every time as text to the second (:func:`shopfunnel.format.instant`)."""
        from shopfunnel.format import instant

        out = {}
        for name, frame in self.tables().items():
            frame = frame[EVENT_COLUMNS_SHOWN] if name == "events" else frame.copy()
            for column in frame.columns:
                if pd.api.types.is_datetime64_any_dtype(frame[column]):
                    frame[column] = [instant(v) for v in frame[column]]
            out[name] = frame
        return out

    def to_dict(self) -> dict[str, Any]:
        """The journey as JSON-ready data: the summary, notes and every table as records."""
        return {
            "person_id": self.person_id,
            "summary": {k: _plain(v) for k, v in self.summary.items()},
            "notes": list(self.notes),
            **{name: _records(frame) for name, frame in self.tables().items()},
            "stages": _records(self.stages),
        }


def find_persons(
    store: Store, query: str, *, by: Literal["id", "email"] = "id"
) -> list[PersonMatch]:
    """The persons a support query names, best match first.

    ``by="id"``: the person id itself when the store has it; else the persons whose events
    carry it as a customer id (``user_id``); else as an anonymous id (a cookie id from a
    ticket); empty when none. ``by="email"``: every person whose events carry the e-mail in
    ``properties.email`` or as a customer or anonymous id, compared trimmed and lower-cased
    (as erasing does, :func:`shopfunnel.store.erase.find_persons`).
    """
    if by not in ("id", "email"):
        raise ConfigError(f"by={by!r} is not valid: search by id or email")
    if not query.strip():
        raise ConfigError("the search is empty: give a person id, a customer id or an e-mail")
    if by == "email":
        return [PersonMatch(p, "e-mail") for p in persons_by_email(store, email=query)]
    db = store.db
    if db.rows("SELECT 1 FROM events WHERE person_id = ? LIMIT 1", [query]):
        return [PersonMatch(query, "person id")]
    for column, how in (("user_id", "customer id"), ("anonymous_id", "anonymous id")):
        rows = db.rows(
            f"SELECT DISTINCT person_id FROM events WHERE {quote_ident(column)} = ? ORDER BY 1",
            [query],
        )
        if rows:
            return [PersonMatch(r[0], how) for r in rows]
    return []


def person_journey(
    store: Store,
    person_id: str,
    *,
    contacts: bool = False,
    events_limit: int = DEFAULT_EVENTS_LIMIT,
    model: Model | None = None,
) -> Journey:
    """The journey of ``person_id`` (module docstring). ``contacts=True`` adds the e-mails
    and phones (personal data: ask only to show them to someone allowed to see them).
    ``events_limit`` keeps the latest that many events (1 to 100,000). A person the store
    does not have raises ConfigError."""
    if not isinstance(events_limit, int) or not 1 <= events_limit <= 100_000:
        raise ConfigError(f"events_limit={events_limit!r} is not valid: use 1 to 100000")
    model = model or load_model()
    notes: list[str] = []
    with _person_events(store, person_id) as name:
        mine = quote_ident(name)
        if not store.db.rows(f"SELECT 1 FROM {mine} LIMIT 1"):
            raise ConfigError(
                f"no person {person_id!r} in the store: search by customer id, anonymous id or "
                "e-mail (`shopfunnel person --email ADDRESS`), or list persons with `shopfunnel persons`"
            )
        identities = _identities(store, mine, person_id)
        sessions = _sessions(store, mine)
        events, total = _events(store, mine, events_limit)
        found_contacts = _contacts(store, mine) if contacts else None
        stages = stage_evidence(store, person_id, model=model, source=name)
        orders = _orders(store, mine, person_id)
        summary = _summary(store, mine, person_id, orders)
        exposures = person_exposures(store, person_id, source=name)
    if total > len(events):
        notes.append(f"showing the latest {len(events):,} of {total:,} events")
    audiences, flows, missing = _audience_tables(store, person_id)
    notes += [
        f"no {table} table in this store (no saved audiences or flows yet)" for table in missing
    ]
    reached = stages.dropna(subset=["reached_at"])
    summary["stage"] = reached["stage"].iloc[-1] if len(reached) else None
    summary["identified"] = bool((identities["kind"] == "customer id").any())
    return Journey(
        person_id=person_id,
        summary=summary,
        identities=identities,
        sessions=sessions,
        events=events,
        stages=stages,
        stage_changes=stage_changes(stages),
        orders=orders,
        experiments=exposures,
        codes=person_codes(store, person_id),
        referrals=person_referrals(store, person_id),
        draws=person_draws(store, person_id),
        audiences=audiences,
        flows=flows,
        contacts=found_contacts,
        notes=tuple(notes),
    )


# -- parts ------------------------------------------------------------------------------------
@contextmanager
def _person_events(store: Store, person_id: str) -> Iterator[str]:
    """The person's events, read once and registered for the block; yields the (unquoted)
    name."""
    name = f"__journey_{uuid.uuid4().hex}"
    store.db.register(name, store.db.arrow("SELECT * FROM events WHERE person_id = ?", [person_id]))
    try:
        yield name
    finally:
        store.db.unregister(name)


def _identities(store: Store, mine: str, person_id: str) -> pd.DataFrame:
    columns = ["kind", "id", "first_seen", "last_seen", "events", "linked_at"]
    frame = store.db.df(
        f"""
        WITH users AS (
            SELECT 'customer id' AS kind, user_id AS id, min(ts) AS first_seen, max(ts) AS last_seen,
                   count(*) AS events, CAST(NULL AS TIMESTAMP) AS linked_at
            FROM {mine} WHERE user_id IS NOT NULL GROUP BY user_id),
        devices AS (
            SELECT anonymous_id AS id, min(ts) AS first_seen, max(ts) AS last_seen, count(*) AS events,
                   min(ts) FILTER (WHERE user_id IS NOT NULL) AS linked_at
            FROM {mine} WHERE anonymous_id NOT IN (SELECT id FROM users) GROUP BY anonymous_id)
        SELECT * FROM users
        UNION ALL
        SELECT CASE WHEN i.person_id IS NULL THEN 'anonymous'
                    WHEN i.person_id = ? THEN 'stitched' ELSE 'shared device' END,
               d.id, d.first_seen, d.last_seen, d.events, d.linked_at
        FROM devices d LEFT JOIN identities i ON i.anonymous_id = d.id
        """,
        [person_id],
    )
    order = {"customer id": 0, "stitched": 1, "shared device": 2, "anonymous": 3}
    frame = frame.sort_values(
        ["kind", "first_seen", "id"],
        key=lambda c: c.map(order) if c.name == "kind" else c,
        kind="stable",
    )
    return frame[columns].reset_index(drop=True)


def _contacts(store: Store, mine: str) -> pd.DataFrame:
    return store.db.df(
        f"""
        SELECT kind, value, min(ts) AS first_seen, max(ts) AS last_seen FROM (
            SELECT 'email' AS kind, trim(json_extract_string(properties, ?)) AS value, ts FROM {mine}
            UNION ALL
            SELECT 'phone', trim(json_extract_string(properties, ?)), ts FROM {mine})
        WHERE value IS NOT NULL AND value <> ''
        GROUP BY kind, value ORDER BY kind, first_seen, value
        """,
        [json_pointer("email"), json_pointer("phone")],
    )


def _sessions(store: Store, mine: str) -> pd.DataFrame:
    return store.db.df(
        f"""
        SELECT session_id, min(ts) AS started_at, max(ts) AS ended_at, count(*) AS events,
               arg_min(channel, (ts, event_id)) AS channel, arg_min(device, (ts, event_id)) AS device,
               arg_min(page, (ts, event_id)) AS landing_page,
               count(DISTINCT order_id) FILTER (WHERE event = ?) AS orders,
               coalesce(sum(value) FILTER (WHERE event = ?), 0)::DOUBLE AS revenue
        FROM {mine} GROUP BY session_id ORDER BY started_at, session_id
        """,
        [ORDER_EVENT, ORDER_EVENT],
    )


def _events(store: Store, mine: str, limit: int) -> tuple[pd.DataFrame, int]:
    total = int(store.db.scalar(f"SELECT count(*) FROM {mine}") or 0)
    frame = store.db.df(
        f"""
        SELECT * FROM (
            SELECT ts, event, session_id, anonymous_id, channel, device, page,
                   {PRODUCTS_SQL} AS products, value::DOUBLE AS value, currency, order_id, event_id
            FROM {mine} ORDER BY ts DESC, event_id DESC LIMIT ?)
        ORDER BY ts, event_id
        """,
        [limit],
    )
    frame["products"] = frame["products"].replace("", None)
    return frame, total


def _orders(store: Store, mine: str, person_id: str) -> pd.DataFrame:
    """The store's ``orders`` view for one person, with products and coupons: the same
    definitions over the events of the person's order ids only."""
    frame = store.db.df(
        f"""
        WITH ids AS (SELECT DISTINCT order_id FROM {mine}
                     WHERE event = ? AND order_id IS NOT NULL),
        ev AS (SELECT * FROM events WHERE order_id IN (SELECT order_id FROM ids)
               AND event IN (?, ?))
        SELECT order_id, arg_min(person_id, ts) AS person_id, min(ts) AS ts,
               sum(value) FILTER (WHERE event = ?)::DOUBLE AS value, arg_min(currency, ts) AS currency,
               arg_min(channel, ts) AS channel, arg_min(device, ts) AS device,
               coalesce(sum(value) FILTER (WHERE event = ?), 0)::DOUBLE AS refunded,
               arg_min({PRODUCTS_SQL}, ts) FILTER (WHERE event = ?) AS products,
               string_agg(DISTINCT nullif(trim(json_extract_string(properties, ?)), ''), ', ')
                   AS coupons
        FROM ev GROUP BY order_id HAVING count(*) FILTER (WHERE event = ?) > 0
        ORDER BY ts, order_id
        """,
        [
            ORDER_EVENT,
            ORDER_EVENT,
            REFUND_EVENT,
            ORDER_EVENT,
            REFUND_EVENT,
            ORDER_EVENT,
            json_pointer("coupon"),
            ORDER_EVENT,
        ],
    )
    frame = frame[frame["person_id"] == person_id].drop(columns="person_id")
    frame["products"] = frame["products"].replace("", None)
    return frame.reset_index(drop=True)


def _summary(store: Store, mine: str, person_id: str, orders: pd.DataFrame) -> dict[str, Any]:
    first, last, events, sessions, first_channel, last_channel = store.db.rows(
        "SELECT min(ts), max(ts), count(*), count(DISTINCT session_id), "
        "arg_min(channel, (ts, event_id)), arg_max(channel, (ts, event_id)) "
        f"FROM {mine}",
    )[0]
    return {
        "person_id": person_id,
        "first_seen": pd.Timestamp(first),
        "last_seen": pd.Timestamp(last),
        "events": int(events),
        "sessions": int(sessions),
        "orders": len(orders),
        "revenue": float(orders["value"].fillna(0).sum()),
        "refunded": float(orders["refunded"].fillna(0).sum()),
        "currency": orders["currency"].dropna().mode().iloc[0]
        if orders["currency"].notna().any()
        else "",
        "first_channel": first_channel,
        "last_channel": last_channel,
    }


def _audience_tables(store: Store, person_id: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The hook to the audiences package's tables: each read when the store has it, with
    the wanted columns it has; a missing table gives an empty frame and its name."""
    frames, missing = [], []
    for table, (order, wanted) in AUDIENCE_TABLES.items():
        have = {
            r[0]
            for r in store.db.rows(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
            )
        }
        columns = [c for c in wanted if c in have]
        if "person_id" not in have or order not in have:
            frames.append(pd.DataFrame(columns=list(wanted)))
            missing.append(table)
            continue
        cols = ", ".join(quote_ident(c) for c in columns)
        frames.append(
            store.db.df(
                f"SELECT {cols} FROM {quote_ident(table)} WHERE person_id = ? "
                f"ORDER BY {quote_ident(order)}, {cols}",
                [person_id],
            )
        )
    audiences, flows = frames
    if "exited_at" in audiences.columns:
        audiences["member_now"] = audiences["exited_at"].isna()
    return audiences, flows, missing


def _plain(value: Any) -> Any:
    """A summary value as JSON takes it: times as ISO text, NaT as null."""
    if value is pd.NaT:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    import json

    return json.loads(frame.to_json(orient="records", date_format="iso"))
