"""One scheduled round: refresh the followed audiences, run the scheduled flows.

What ``shopfunnel serve`` does every ``schedule_interval_seconds`` (and what cron does with
``shopfunnel audience refresh`` and ``shopfunnel flow run`` without a server), judged at
the wall clock ``now`` (UTC):

1. every **followed** audience — one refreshed at least once before (``shopfunnel audience
   refresh NAME`` starts following it; ``audience delete`` or removing it from the model
   file stops) — is refreshed at ``now`` and its entries and exits are handed to the
   webhook outbox (:func:`shopfunnel.audiences.membership.publish`);
2. every flow with ``schedule = true`` (in the model file's ``[flows.NAME]``) is run at
   ``now`` (:func:`shopfunnel.audiences.flows.run_flow`): the persons due are marked sent
   and each message goes to the outbox as ``flow.due``.

The outbox's deliveries then go out on their own schedule (:func:`shopfunnel.webhooks.
deliver_due`). Each audience and each flow is done under ``lock`` (the server's store write
lock) on its own, so events keep loading between them; one that fails (a rule that no longer
fits the model, a clock that went back) is reported and the others still run.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from shopfunnel.audiences import tables
from shopfunnel.audiences.flow_definitions import all_flows
from shopfunnel.audiences.flows import FlowRun, run_flow
from shopfunnel.audiences.membership import Refresh, publish, refresh_audience
from shopfunnel.audiences.saved import all_audiences
from shopfunnel.errors import ShopfunnelError
from shopfunnel.model import Model, load_model
from shopfunnel.store.store import Store


@dataclass
class ScheduledRound:
    """What one round did: the refreshes (with how many changes went to the outbox), the
    flow runs, and the errors by audience or flow name."""

    now: pd.Timestamp
    refreshed: dict[str, Refresh] = field(default_factory=dict)
    published: dict[str, int] = field(default_factory=dict)
    flows: dict[str, FlowRun] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def sent(self) -> int:
        """Messages the flows marked sent in this round (held-out persons not counted)."""
        return sum(run.counts["due"] for run in self.flows.values() if run.recorded)


def followed_audiences(store: Store, model: Model | None = None) -> list[str]:
    """The audiences refreshed at least once that still exist, by name."""
    if not tables.has_table(store.db, "audience_refreshes"):
        return []
    refreshed = {n for (n,) in store.db.rows("SELECT DISTINCT audience FROM audience_refreshes")}
    return [a.name for a in all_audiences(store, model) if a.name in refreshed]


def scheduled_flows(model: Model | None = None) -> list[str]:
    """The flows with ``schedule = true``, in the order they are listed."""
    return [f.name for f in all_flows(model) if f.schedule]


def run_scheduled(
    store: Store,
    *,
    now: datetime | None = None,
    model: Model | None = None,
    lock: AbstractContextManager[Any] | None = None,
) -> ScheduledRound:
    """Refresh the followed audiences and run the scheduled flows at ``now`` (default: the
    wall clock, UTC); rules in the module docstring."""
    model = model or load_model()
    when = pd.Timestamp(now if now is not None else tables.utc_now())
    if when.tzinfo is not None:
        when = when.tz_convert("UTC").tz_localize(None)
    guard: Any = lock if lock is not None else nullcontext()
    done = ScheduledRound(when)
    with guard:
        audiences = followed_audiences(store, model)
    for name in audiences:
        try:
            with guard:
                done.refreshed[name] = refresh_audience(store, name, as_of=when, model=model)
                done.published[name] = publish(store, name)
        except ShopfunnelError as exc:
            done.errors[f"audience {name}"] = str(exc)
    for name in scheduled_flows(model):
        try:
            with guard:
                done.flows[name] = run_flow(store, name, now=when, model=model)
        except ShopfunnelError as exc:
            done.errors[f"flow {name}"] = str(exc)
    return done


def audiences_overview(
    store: Store, model: Model | None = None, *, changes: int = 50
) -> dict[str, pd.DataFrame]:
    """What the dashboard's audiences page shows: ``audiences`` (every audience, its rule, the
    members at its last refresh and whether the schedule follows it), ``flows`` (every flow,
    whether it is scheduled, how many were sent) and ``changes`` (the latest ``changes``
    entries and exits of every audience: audience, person_id, change, at)."""
    from shopfunnel.audiences.flows import flow_table
    from shopfunnel.audiences.membership import audience_changes
    from shopfunnel.audiences.saved import audience_table

    model = model or load_model()
    audiences = audience_table(store, model)
    audiences["members"] = pd.to_numeric(audiences["members"]).astype(
        "Int64"
    )  # NA: never refreshed
    audiences["followed"] = audiences["name"].isin(followed_audiences(store, model))
    flows = flow_table(store, model)
    latest = (
        audience_changes(store, None)
        .sort_values(["at", "audience", "person_id"], ascending=[False, True, True], kind="stable")
        .head(changes)
        .drop(columns="entry_id")
        .reset_index(drop=True)
    )
    return {"audiences": audiences, "flows": flows, "changes": latest}
