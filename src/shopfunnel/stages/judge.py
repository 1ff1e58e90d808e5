"""Each placed person's status and their row of the persons table: the rules of
:mod:`shopfunnel.stages.placement` once the stages' thresholds and the store's gap between
orders are known. The embedded engine applies them to every person at once
(:func:`shopfunnel.stages.placement.placement`), Spark's executors to each batch of persons
(:mod:`shopfunnel.stages.spark_placement`): both call these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shopfunnel.model import Model
from shopfunnel.stages.gaps import gone_gap_days, usual_gap_days
from shopfunnel.stages.person_facts import PersonFacts
from shopfunnel.stages.persons_table import persons_frame
from shopfunnel.stages.status import NEVER, classify_codes

_US_PER_DAY = 86_400 * 1_000_000


def placed_persons(
    model: Model,
    base: PersonFacts,
    order: np.ndarray,
    stage_idx: np.ndarray,
    entered: np.ndarray,
    end_us: int,
    judged: Judged,
    c_rows: np.ndarray,
    n_orders: np.ndarray,
    revenue: np.ndarray,
    last_order: np.ndarray,
    stalled_at: np.ndarray,
    gone_at: np.ndarray,
) -> pd.DataFrame:
    """The persons table (:data:`PERSON_COLUMNS`) of placed persons, rows in ``order``: the
    facts' ids, channels and last events, the stage and when it was entered, the statuses
    (:func:`judge`), the customers' (rows ``c_rows``) orders, revenue and last order, and
    each stage's thresholds. Both engines build it with this."""
    n = len(stage_idx)

    def spread(values: np.ndarray, empty: float | int) -> np.ndarray:
        full = np.full(n, empty, dtype=values.dtype)
        full[c_rows] = values
        return full

    return persons_frame(
        model,
        base,
        order,
        stage_idx,
        judged.status,
        entered,
        (end_us - base.last_us) / _US_PER_DAY,
        end_us,
        (end_us - entered) / _US_PER_DAY,
        spread(n_orders, 0),
        spread(revenue, 0.0),
        spread(last_order, NEVER),
        spread(judged.since_order, np.nan),
        judged.customer,
        stalled_at[stage_idx],
        gone_at[stage_idx],
        spread(judged.usual_gap, np.nan),
        spread(judged.gone_gap, np.nan),
    )


@dataclass(frozen=True)
class Judged:
    """The statuses of a placement's persons (:func:`judge`): ``status`` (positions in
    :data:`STATUSES`) and ``customer`` one per person; ``usual_gap``, ``gone_gap`` (days)
    and ``since_order`` (days since the last order) one per customer, in ``c_rows``' order."""

    status: np.ndarray
    customer: np.ndarray
    usual_gap: np.ndarray
    gone_gap: np.ndarray
    since_order: np.ndarray


def judge(
    rules: Any,
    gap: Any,
    end_us: int,
    stage_idx: np.ndarray,
    last_us: np.ndarray,
    stalled_at: np.ndarray,
    gone_at: np.ndarray,
    c_rows: np.ndarray,
    n_orders: np.ndarray,
    first_order: np.ndarray,
    last_order: np.ndarray,
) -> Judged:
    """Each person's status at ``end_us`` (module docstring): prospects by the days since
    their last event (``last_us``) against their stage's thresholds (``stalled_at`` and
    ``gone_at``, one per stage), the customers (rows ``c_rows``, with their order count and
    first and last order) by the days since their last order against their usual gap
    (their own, or the store's ``gap``, a :class:`shopfunnel.stages.gaps.StoreGap`). The
    embedded engine and Spark's executors (:mod:`shopfunnel.stages.spark_placement`) both
    judge with this."""
    n = len(stage_idx)
    span_days = (last_order - first_order) / _US_PER_DAY
    usual_gap, _ = usual_gap_days(n_orders, span_days, gap, rules)
    gone_gap = gone_gap_days(n_orders, span_days, gap, rules)
    since_order = (end_us - last_order) / _US_PER_DAY
    customer = np.zeros(n, dtype=bool)
    customer[c_rows] = True
    idle = (end_us - last_us) / _US_PER_DAY
    # everyone as a prospect, then the customers as customers (the rules are per person)
    status = classify_codes(
        customer, idle, stalled_at[stage_idx], gone_at[stage_idx], np.nan, np.nan, np.nan
    )
    status[c_rows] = classify_codes(
        np.ones(len(c_rows), dtype=bool),
        idle[c_rows],
        np.nan,
        np.nan,
        since_order,
        usual_gap,
        gone_gap,
    )
    return Judged(status, customer, usual_gap, gone_gap, since_order)
