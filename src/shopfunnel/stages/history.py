"""One person's way through the stages, over their whole history.

The rules are those of :mod:`shopfunnel.stages.placement`, applied to one person's events
without a lookback period (a support view wants the whole story, not the last year):

- **evidence of a stage**: the person's first event among the stage's events, or, for a
  stage with ``min_orders = N``, the time of their N-th order; any event at all is evidence
  of the first stage. An *order* is a distinct ``order_id`` among ``purchase`` events (a
  purchase without an order id is an order of its own), at the time of its first purchase
  event, and it belongs to the person of that event (the store's ``orders`` view);
- **the stage at a time** is the furthest stage with evidence at or before that time
  (stages are cumulative: a purchase straight from an e-mail reaches Decision too).

A **stage change** is an instant at which the furthest stage moves forward: the time of the
evidence, the stage before and after, the evidence (an event name, or ``order #N``) and the
stages passed over on the way (reached at that same instant without evidence of their own
before). Evidence of several stages at one instant is one change, to the furthest of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from shopfunnel.model import Model, load_model
from shopfunnel.stages.orders import ORDER_EVENT
from shopfunnel.store.db import quote_ident

if TYPE_CHECKING:
    from shopfunnel.store.store import Store

STAGE_COLUMNS = ["stage", "stage_index", "reached_at", "evidence"]
CHANGE_COLUMNS = ["at", "from_stage", "to_stage", "evidence", "skipped"]


def stage_evidence(
    store: Store, person_id: str, *, model: Model | None = None, source: str = "events"
) -> pd.DataFrame:
    """One row per stage of the model, in order: ``stage``, ``stage_index``, ``reached_at``
    (the first evidence of the stage, NaT when none) and ``evidence`` (the event name, or
    ``order #N``; empty when none). Rules in the module docstring.

    ``source`` names a table or view holding the person's events (the store's ``events``, or
    a copy of just theirs that a caller has registered); the orders are completed from the
    store's events (an order's first purchase event may be someone else's)."""
    model = model or load_model()
    mapping = model.event_stage()
    rel = quote_ident(source)
    first = store.db.df(
        f"SELECT event, min(ts) AS ts FROM {rel} WHERE person_id = ? AND list_contains(?, event) "
        "GROUP BY event",
        [person_id, list(mapping) or [""]],
    )
    any_event = store.db.rows(
        f"SELECT arg_min(event, (ts, event_id)), min(ts) FROM {rel} WHERE person_id = ?",
        [person_id],
    )[0]
    orders = store.db.df(
        f"""
        WITH mine AS (SELECT order_id, event_id, person_id, ts FROM {rel}
                      WHERE person_id = ? AND event = ?),
        ev AS (
            SELECT 'event:' || event_id AS oid, person_id, ts, event_id FROM mine
            WHERE order_id IS NULL
            UNION ALL
            SELECT order_id, person_id, ts, event_id FROM events
            WHERE event = ? AND order_id IN (SELECT order_id FROM mine))
        SELECT ts, row_number() OVER (ORDER BY ts, oid) AS n FROM (
            SELECT oid, arg_min(person_id, (ts, event_id)) AS person_id, min(ts) AS ts
            FROM ev GROUP BY oid)
        WHERE person_id = ? ORDER BY n
        """,
        [person_id, ORDER_EVENT, ORDER_EVENT, person_id],
    )
    rows = []
    for k, stage in enumerate(model.stages):
        candidates: list[tuple[pd.Timestamp, str]] = []
        for row in first.itertuples(index=False):
            if mapping.get(row.event) == k:
                candidates.append((pd.Timestamp(row.ts), str(row.event)))
        if k == 0 and any_event[1] is not None:
            candidates.append((pd.Timestamp(any_event[1]), str(any_event[0])))
        if stage.min_orders is not None and len(orders) >= stage.min_orders:
            nth = orders.iloc[stage.min_orders - 1]
            candidates.append((pd.Timestamp(nth["ts"]), f"order #{stage.min_orders}"))
        when, why = min(candidates) if candidates else (pd.NaT, "")
        rows.append({"stage": stage.name, "stage_index": k, "reached_at": when, "evidence": why})
    out = pd.DataFrame(rows, columns=STAGE_COLUMNS)
    out["reached_at"] = pd.to_datetime(out["reached_at"])
    return out


def stage_changes(evidence: pd.DataFrame) -> pd.DataFrame:
    """The stage changes (module docstring) from :func:`stage_evidence`'s table, in time
    order: ``at``, ``from_stage`` (empty for the first), ``to_stage``, ``evidence`` and
    ``skipped`` (the stages passed over, comma-separated)."""
    reached = evidence.dropna(subset=["reached_at"])
    changes = []
    furthest = -1
    names = evidence["stage"].tolist()
    for at, group in reached.sort_values(["reached_at", "stage_index"]).groupby(
        "reached_at", sort=True
    ):
        top = int(group["stage_index"].max())
        if top <= furthest:
            continue
        reached_before = set(reached.loc[reached["reached_at"] <= at, "stage_index"])
        skipped = [names[k] for k in range(furthest + 1, top) if k not in reached_before]
        row = group[group["stage_index"] == top].iloc[0]
        changes.append(
            {
                "at": at,
                "from_stage": names[furthest] if furthest >= 0 else "",
                "to_stage": names[top],
                "evidence": row["evidence"],
                "skipped": ", ".join(skipped),
            }
        )
        furthest = top
    out = pd.DataFrame(changes, columns=CHANGE_COLUMNS)
    out["at"] = pd.to_datetime(out["at"])
    return out
