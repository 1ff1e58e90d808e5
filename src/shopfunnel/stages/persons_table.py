"""The persons table of a placement (:attr:`shopfunnel.stages.placement.StagePlacement.persons`):
one row per person, its columns (:data:`PERSON_COLUMNS`, defined in
:func:`shopfunnel.stages.placement.place_persons`) built from the placement's arrays, sorted by
stage, then ``person_id``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from shopfunnel.model import Model
from shopfunnel.stages.person_facts import PersonFacts
from shopfunnel.stages.status import NEVER, STATUSES

PERSON_COLUMNS = [
    "person_id",
    "stage",
    "stage_index",
    "status",
    "entered_stage_at",
    "days_in_stage",
    "last_event_at",
    "days_since_last_event",
    "first_channel",
    "orders",
    "revenue",
    "last_order_at",
    "days_since_last_order",
    "stalled_after_days",
    "lapsed_after_days",
    "gone_after_days",
]


def persons_frame(
    model: Model,
    base: PersonFacts,
    order: np.ndarray,
    stage_idx: np.ndarray,
    status: np.ndarray,
    entered: np.ndarray,
    idle: np.ndarray,
    end_us: int,
    days_in_stage: np.ndarray,
    n_orders: np.ndarray,
    revenue: np.ndarray,
    last_order: np.ndarray,
    since_order: np.ndarray,
    customer: np.ndarray,
    stage_stalled: np.ndarray,
    stage_gone: np.ndarray,
    usual_gap: np.ndarray,
    gone_gap: np.ndarray,
) -> pd.DataFrame:
    """The persons table of the placement's arrays (one value per facts row), rows in
    ``order``."""
    customer = customer[order]
    stage_stalled, stage_gone = stage_stalled[order], stage_gone[order]
    return pd.DataFrame(
        {
            "person_id": base.in_order(order, "person_id"),
            "stage": _labels(model.stage_names, stage_idx[order]),
            "stage_index": stage_idx[order].astype(np.int64),
            "status": _labels(list(STATUSES), status[order]),
            "entered_stage_at": _to_ts(entered[order]),
            "days_in_stage": days_in_stage[order],
            "last_event_at": _to_ts(base.last_us[order]),
            "days_since_last_event": idle[order],
            "first_channel": base.in_order(order, "first_channel"),
            "orders": n_orders[order],
            "revenue": revenue[order],
            "last_order_at": _to_ts(last_order[order]),
            "days_since_last_order": since_order[order],
            "stalled_after_days": np.where(customer, np.nan, stage_stalled),
            "lapsed_after_days": usual_gap[order],
            "gone_after_days": np.where(customer, gone_gap[order], stage_gone),
        },
        copy=False,  # the columns are new: no need to copy them into blocks
    )


def by_stage_then_id(stage_idx: np.ndarray, id_rank: np.ndarray) -> np.ndarray:
    """The row order of the persons table: by stage, then by ``person_id`` (``id_rank``
    holds distinct ranks; placing each row at its rank sorts them without a comparison
    sort, and the stable sort by stage is a radix sort)."""
    if len(id_rank) == 0:
        return np.zeros(0, dtype=np.int64)
    slot = np.full(int(id_rank.max()) + 1, -1, dtype=np.int64)
    slot[id_rank] = np.arange(len(id_rank))
    by_id = slot[slot >= 0]
    return by_id[np.argsort(stage_idx[by_id].astype(np.int16), kind="stable")]


def _labels(names: list[str], codes: np.ndarray) -> pd.Series:
    """Text column of ``names[codes]``, built in Arrow (no Python string per row)."""
    if len(codes) == 0:
        return pd.Series(np.array([], dtype=object))
    return pa.array(names, pa.string()).take(pa.array(codes)).to_pandas()


def _to_ts(micros: np.ndarray) -> np.ndarray:
    out = micros.astype("datetime64[us]")
    out[micros == NEVER] = np.datetime64("NaT")
    return out
