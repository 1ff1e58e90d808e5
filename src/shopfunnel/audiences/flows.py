"""Flows: who is due a message now, and the record of what was sent.

A flow is a **trigger** (events; a person's latest one starts the flow), a **delay**, an
**exit rule** (events that end it), a **cooldown**, and optionally an **audience** the person
must be in. A run at ``now`` (default: the store's latest event; pass the wall clock on a
live store) lists a person as *due* when all of these hold:

1. **trigger**: their latest event named in ``trigger`` (and matching ``where``) at or
   before ``now`` is at ``t``, with ``t ≥ now − lookback`` (older triggers have expired);
2. **delay**: ``due_at = t + delay ≤ now`` — exactly ``delay`` later is due. With
   ``delay = "usual_gap"`` (win-back) the trigger is the customer's last order and
   ``due_at = t + gap_multiplier × their usual gap between orders``; they are due when
   the days since that order are strictly more (:mod:`shopfunnel.customers.winback`,
   :mod:`shopfunnel.stages.gaps`), i.e. exactly when they are lapsed;
3. **exit**: they have no event named in ``exit`` at a time in ``[t, now]`` (a purchase at
   the same instant as the cart counts; ``exit`` and ``trigger`` may not share an event);
4. **audience**: when the flow names one, they are in it at ``now``
   (:func:`shopfunnel.audiences.members`);
5. **once per trigger**: this flow has not already been sent to them for this trigger
   (the ``send_id``, SHA-256 of flow, person and ``t``, is not in ``flow_sends``);
6. **cooldown**: their last send of this flow was at least ``cooldown`` before ``due_at``
   (``due_at − last sent_at ≥ cooldown``). A trigger that falls due inside the cooldown is
   skipped for good, not sent when the cooldown ends: as a flow filter "has not been in
   this flow in the last 7 days" judged on entry.

A run (:func:`run_flow`) records each due person in ``flow_sends`` with ``sent_at = now``
unless ``dry_run``. With ``holdout`` > 0 a fixed share of persons
(:func:`shopfunnel.experiments.in_holdout` with key ``flow:<name>``) is recorded as
``held_out`` instead of being listed: they never receive this flow, and
:func:`shopfunnel.experiments.holdout_lift` compares them with those who did. Held-out sends
count for rules 5 and 6, so both groups are timed alike.

Each message a run records (not the held-out ones) also goes to the webhook outbox when the
store has an endpoint: topic ``flow.due``, key ``flow:<flow>:<send_id>``
(:func:`shopfunnel.webhooks.enqueue_flow_sends`), the due row as data, with e-mail and phone
only when the flow says ``contacts = true``. The outbox is written before the record, so a crash
between them lists the person again and the outbox still holds one message. A flow with
``schedule = true`` is run by the server on its schedule (:mod:`shopfunnel.audiences.schedule`).

Each due row says what the person left behind (:func:`shopfunnel.audiences.lists.left_behind`):
the items and value of the cart they hold, the last product they viewed. Contacts (e-mail,
phone) only when asked.

The flows themselves (fields, the built-in ones, the model file's ``[flows.NAME]``) are in
:mod:`shopfunnel.audiences.flow_definitions`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd

from shopfunnel.audiences import tables
from shopfunnel.audiences.definitions import seconds
from shopfunnel.audiences.evaluate import match_sql, orders_as_of, resolve_as_of
from shopfunnel.audiences.flow_definitions import USUAL_GAP, Flow, all_flows, get_flow
from shopfunnel.audiences.lists import contacts as contact_table
from shopfunnel.audiences.lists import left_behind
from shopfunnel.model import Model, load_model
from shopfunnel.store.store import Store

DUE_COLUMNS = [
    "send_id",
    "flow",
    "person_id",
    "trigger_event",
    "trigger_at",
    "due_at",
    "cart_items",
    "cart_value",
    "last_viewed_item",
    "last_viewed_category",
    "last_viewed_at",
]
SEND_COLUMNS = [
    "send_id",
    "flow",
    "person_id",
    "trigger_event",
    "trigger_at",
    "due_at",
    "sent_at",
    "held_out",
]


def send_id(flow: str, person_id: str, trigger_at: pd.Timestamp) -> str:
    """The id of one message: ``"s"`` + 32 hex digits of SHA-256(flow, person, trigger time);
    a flow is sent once per trigger, so it is the message's idempotency key."""
    text = "\x1f".join([flow, person_id, pd.Timestamp(trigger_at).isoformat()])
    return "s" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class FlowRun:
    """A run: the flow, ``now``, the persons due (``due``: :data:`DUE_COLUMNS`, plus
    ``email`` and ``phone`` when contacts were asked for), and how many candidates each
    rule stopped (``counts``: triggered, exited, not_in_audience, already_sent, cooling_down,
    held_out, due). ``recorded`` is False for a dry run."""

    flow: Flow
    now: pd.Timestamp | None
    due: pd.DataFrame
    counts: dict[str, int]
    recorded: bool


def due_now(
    store: Store,
    flow: str | Flow,
    *,
    now: datetime | date | str | None = None,
    model: Model | None = None,
    contacts: bool = False,
) -> FlowRun:
    """Who is due ``flow`` at ``now`` (rules in the module docstring), without recording
    anything."""
    return _run(store, flow, now=now, model=model, contacts=contacts, record=False)


def run_flow(
    store: Store,
    flow: str | Flow,
    *,
    now: datetime | date | str | None = None,
    model: Model | None = None,
    contacts: bool = False,
    dry_run: bool = False,
) -> FlowRun:
    """Who is due ``flow`` at ``now``, recorded as sent (held-out persons as held out) in
    ``flow_sends`` in one transaction, unless ``dry_run``."""
    return _run(store, flow, now=now, model=model, contacts=contacts, record=not dry_run)


def sends(store: Store, flow: str | None = None) -> pd.DataFrame:
    """The record of sends (:data:`SEND_COLUMNS`), of one flow or all, oldest first."""
    if not tables.has_table(store.db, "flow_sends"):
        return pd.DataFrame(columns=SEND_COLUMNS)
    where, params = ("WHERE flow = ?", [flow]) if flow is not None else ("", [])
    return store.db.df(
        f"SELECT {', '.join(SEND_COLUMNS)} FROM flow_sends {where} "
        "ORDER BY sent_at, flow, person_id",
        params,
    )


def flow_table(store: Store, model: Model | None = None) -> pd.DataFrame:
    """Every flow: name, source, trigger, exit, delay, cooldown, lookback, audience,
    holdout, schedule, description, and how many were sent and when last."""
    flows = all_flows(model)
    record = sends(store)
    sent = (
        record[~record["held_out"].astype(bool)]
        .groupby("flow")
        .agg(sent=("send_id", "size"), last_sent_at=("sent_at", "max"))
    )
    rows = [
        {
            "name": f.name,
            "source": f.source,
            "trigger": ", ".join(f.trigger),
            "exit": ", ".join(f.exit) or "–",
            "delay": f.delay_text,
            "cooldown": "none" if f.cooldown is None else str(f.cooldown),
            "lookback": str(f.lookback),
            "audience": f.audience or "",
            "holdout": f.holdout,
            "schedule": f.schedule,
            "description": f.description,
        }
        for f in flows
    ]
    frame = pd.DataFrame(rows).merge(sent, left_on="name", right_index=True, how="left")
    frame["sent"] = frame["sent"].fillna(0).astype(int)
    return frame


# -- the rules --------------------------------------------------------------------------------
def _run(
    store: Store, flow: str | Flow, *, now: Any, model: Model | None, contacts: bool, record: bool
) -> FlowRun:
    model = model or load_model()
    spec = flow if isinstance(flow, Flow) else get_flow(flow, model)
    when = resolve_as_of(store, now)
    columns = DUE_COLUMNS + (["email", "phone"] if contacts else [])
    empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    counts = dict.fromkeys(
        (
            "triggered",
            "exited",
            "not_in_audience",
            "already_sent",
            "cooling_down",
            "held_out",
            "due",
        ),
        0,
    )
    if when is None:
        return FlowRun(spec, None, empty, counts, False)
    triggered = _triggered(store, spec, when, model)
    counts["triggered"] = len(triggered)
    alive = ~triggered["exited"]
    counts["exited"] = int((~alive).sum())
    cand = triggered[alive]
    if spec.audience is not None and len(cand):
        from shopfunnel.audiences.saved import audience_members

        inside = set(audience_members(store, spec.audience, as_of=when, model=model)["person_id"])
        keep = cand["person_id"].isin(inside)
        counts["not_in_audience"] = int((~keep).sum())
        cand = cand[keep]
    cand = cand.assign(
        send_id=[
            send_id(spec.name, p, t)
            for p, t in zip(cand["person_id"], cand["trigger_at"], strict=True)
        ]
    )
    before = sends(store, spec.name)
    done = cand["send_id"].isin(set(before["send_id"]))
    counts["already_sent"] = int(done.sum())
    cand = cand[~done]
    if spec.cooldown is not None and len(before):
        last = before.groupby("person_id")["sent_at"].max()
        gap = cand["due_at"] - pd.to_datetime(cand["person_id"].map(last))
        cooling = gap < pd.Timedelta(seconds=seconds(spec.cooldown))  # NaT (never sent) is False
        counts["cooling_down"] = int(cooling.sum())
        cand = cand[~cooling.to_numpy()]
    held = _held_out(spec, cand["person_id"])
    counts["held_out"] = int(held.sum())
    counts["due"] = int((~held).sum())
    due = cand[~held.to_numpy()].assign(flow=spec.name)
    behind = left_behind(
        store,
        list(due["person_id"]),
        start=when - pd.Timedelta(seconds=seconds(spec.lookback)),
        end=when,
    )
    due = due.merge(behind, on="person_id", how="left")
    if contacts or (record and spec.contacts):
        due = due.merge(contact_table(store), on="person_id", how="left")
    due = due.sort_values(["due_at", "person_id"], kind="stable").reset_index(drop=True)
    if record and len(cand):
        # the outbox first, then the record: a crash between them leaves the sends
        # unrecorded, the next run finds them due again and the outbox keeps one of each
        _enqueue_sends(store, spec, due)
        _record(store, spec, cand, held, when)
    out = due[columns] if len(due) else empty
    return FlowRun(spec, when, out, counts, record and len(cand) > 0)


def _enqueue_sends(store: Store, spec: Flow, due: pd.DataFrame) -> int:
    """Hand the due rows to the webhook outbox (topic ``flow.due``, key
    ``flow:<flow>:<send_id>``) when the store has an endpoint; return how many were new.
    Contacts go in the body only when the flow says ``contacts = true``."""
    from shopfunnel.webhooks import enqueue_flow_sends, list_endpoints

    if due.empty or not len(list_endpoints(store)):
        return 0
    fields = DUE_COLUMNS + (["email", "phone"] if spec.contacts else [])
    return enqueue_flow_sends(store, spec.name, due[fields])


def _triggered(store: Store, spec: Flow, now: pd.Timestamp, model: Model) -> pd.DataFrame:
    """Per person with a trigger in the lookback: trigger_event, trigger_at, due_at (≤ now),
    and whether an exit event came at or after the trigger (``exited``)."""
    start = now - pd.Timedelta(seconds=seconds(spec.lookback))
    if spec.delay == USUAL_GAP:
        return _lapsed_triggers(store, spec, now, start, model)
    params: list[Any] = []
    cond = match_sql(spec.trigger, spec.where, params)
    ripe = now - pd.Timedelta(seconds=seconds(spec.delay))
    exit_sql = "false"
    exit_params: list[Any] = []
    if spec.exit:
        exit_sql = (
            f"EXISTS (SELECT 1 FROM events e WHERE e.person_id = t.person_id AND e.event IN "
            f"({', '.join('?' * len(spec.exit))}) AND e.ts >= t.trigger_at AND e.ts <= ?)"
        )
        exit_params = [*spec.exit, now]
    frame = store.db.df(
        f"""
        WITH t AS (
            SELECT person_id, max(ts) AS trigger_at, arg_max(event, ts) AS trigger_event
            FROM events WHERE {cond} AND ts >= ? AND ts <= ? GROUP BY person_id
        )
        SELECT person_id, trigger_event, trigger_at, {exit_sql} AS exited FROM t
        WHERE trigger_at <= ? ORDER BY person_id
        """,
        [*params, start, now, *exit_params, ripe],
    )
    frame["trigger_at"] = pd.to_datetime(frame["trigger_at"])
    frame["due_at"] = frame["trigger_at"] + pd.Timedelta(seconds=seconds(spec.delay))
    frame["exited"] = frame["exited"].astype(bool)
    return frame[["person_id", "trigger_event", "trigger_at", "due_at", "exited"]]


def _lapsed_triggers(
    store: Store, spec: Flow, now: pd.Timestamp, start: pd.Timestamp, model: Model
) -> pd.DataFrame:
    from shopfunnel.customers.winback import lapsed_customers

    orders = orders_as_of(store, now)
    columns = ["person_id", "trigger_event", "trigger_at", "due_at", "exited"]
    if orders.empty:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    lapsed = lapsed_customers(
        orders, rule="gap", as_of=now, gap_multiplier=spec.gap_multiplier, placement=model.placement
    )
    lapsed = lapsed[pd.to_datetime(lapsed["last_order"]) >= start]
    frame = pd.DataFrame(
        {
            "person_id": lapsed["person_id"].astype(str).to_numpy(),
            "trigger_event": "purchase",
            "trigger_at": pd.to_datetime(lapsed["last_order"]).to_numpy(),
            "due_at": (
                pd.to_datetime(lapsed["last_order"])
                + pd.to_timedelta(lapsed["expected_gap_days"] * spec.gap_multiplier, unit="D")
            ).to_numpy(),
            "exited": False,
        }
    )
    return frame.sort_values("person_id").reset_index(drop=True)


def _held_out(spec: Flow, persons: pd.Series) -> pd.Series:
    if spec.holdout <= 0:
        return pd.Series(False, index=persons.index)
    from shopfunnel.experiments import in_holdout

    key = f"flow:{spec.name}"
    return persons.map(lambda p: in_holdout(key, p, spec.holdout)).astype(bool)


def _record(
    store: Store, spec: Flow, cand: pd.DataFrame, held: pd.Series, now: pd.Timestamp
) -> None:
    rows = pd.DataFrame(
        {
            "send_id": cand["send_id"].to_numpy(),
            "flow": spec.name,
            "person_id": cand["person_id"].to_numpy(),
            "trigger_event": cand["trigger_event"].to_numpy(),
            "trigger_at": pd.to_datetime(cand["trigger_at"]).to_numpy(),
            "due_at": pd.to_datetime(cand["due_at"]).to_numpy(),
            "sent_at": now,
            "held_out": held.to_numpy(),
        }
    )
    db = store.db
    tables.ensure_tables(db)
    db.register("__flow_sends_new", rows)
    try:
        with db.transaction():
            db.execute(
                f"INSERT INTO flow_sends ({', '.join(SEND_COLUMNS)}) "
                f"SELECT {', '.join(SEND_COLUMNS)} FROM __flow_sends_new n "
                "WHERE NOT EXISTS (SELECT 1 FROM flow_sends s WHERE s.send_id = n.send_id)"
            )
    finally:
        db.unregister("__flow_sends_new")
