"""The five-stage model: where every person stands, and whether they are moving.

Definitions (the model file's ``[[stages]]`` and ``[placement]`` sections set the names and
numbers; the defaults are shown). All times are UTC; ``as_of`` defaults to the store's
latest event, and the *lookback period* is ``(as_of - lookback, as_of]`` (365 days).

**Evidence of a stage.** A person has reached a stage at the first time, within the lookback
period, that they have one of the stage's events, or, for a stage with ``min_orders = N``,
the time of their N-th order. Any event at all counts as evidence of the *first* stage
(any tracked visit is awareness), so every person with an event in the period has a stage.
An *order* is a distinct ``order_id`` among ``purchase`` events (a purchase without an order
id is an order of its own); its time and value are those of its first purchase event, and it
belongs to the person of that event (as in the store's ``orders`` view).

**Stage.** A person's stage is the furthest stage (the last in the model's order) they have
reached in the period. Stages are cumulative: a person at stage *k* has "reached" every
stage before it, even one they skipped (a purchase straight from an e-mail reaches Decision).
``entered_stage_at`` is the time of their first evidence of that stage.

**Time at a stage, and who "moved on".** A person *passed through* stage *k* when their first
evidence of *k* came strictly before their first evidence of any later stage; their time at
*k* is the gap between the two. (Evidence of a later stage at the same instant or earlier
means *k* was skipped, and the person does not count for *k*.)

**Status**: customers (an order in the period) are *active*, *lapsed* or *gone* by the time
since their last order (:mod:`shopfunnel.stages.gaps`); everyone else is *active*, *stalled* or
*gone* by the time since their last visit, against how long the store's visitors stayed
away and still came back to move on from their stage (:mod:`shopfunnel.stages.status`, which
defines every threshold and its fallbacks).

The events are read as compact tables (one row per person, one per order, one per visit that
starts with a return): per person and visit from one compiled pass over the store's sorted
timeline, or by SQL when the timeline cannot serve (:mod:`shopfunnel.stages.evidence`), per
order by SQL (:mod:`shopfunnel.stages.orders`); the rules above are applied in NumPy over
those tables. What placements add up to (persons per stage and status, the flow between two
dates) is in :mod:`shopfunnel.stages.summary`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from shopfunnel._time import point_in_time
from shopfunnel.durations import parse_duration_seconds
from shopfunnel.errors import ConfigError
from shopfunnel.model import Model, load_model
from shopfunnel.stages.evidence import gather
from shopfunnel.stages.gaps import store_gap
from shopfunnel.stages.judge import judge, placed_persons
from shopfunnel.stages.orders import order_rows, order_stats
from shopfunnel.stages.person_facts import PersonFacts, micros
from shopfunnel.stages.persons_table import PERSON_COLUMNS, by_stage_then_id
from shopfunnel.stages.status import (
    STATUSES,
    THRESHOLD_COLUMNS,
    explain,
    movements,
    stage_thresholds,
)
from shopfunnel.store.memory import give_back_memory
from shopfunnel.store.store import Store

_US_PER_DAY = 86_400 * 1_000_000


@dataclass(frozen=True)
class PlacedCodes:
    """The persons of :attr:`StagePlacement.persons` as codes, one row per person in no
    particular order (the timeline's): what counts by stage and status and the stage flow
    need, without a text column and without sorting. ``ids[id_rank]`` is each row's
    ``person_id`` (``ids`` is shared by every placement of one store from the timeline, so
    two placements match persons by rank)."""

    stage_index: np.ndarray  # position in the model's stages
    status: np.ndarray  # position in STATUSES
    customer: np.ndarray  # at least one order in the period
    id_rank: np.ndarray
    ids: pa.Array

    def __len__(self) -> int:
        return len(self.stage_index)


@dataclass(frozen=True)
class StagePlacement:
    """Everyone placed in a stage at ``as_of``, with the thresholds the statuses came from.

    ``persons`` has one row per person (columns in :data:`PERSON_COLUMNS`); ``thresholds``
    one row per stage (:func:`shopfunnel.stages.status.stage_thresholds`): ``stage``, ``movers``
    (persons who passed through it), ``returning`` (movers who came back in a later visit
    to move on), ``stalled_after_days``, ``gone_after_days`` and ``source``. The store's
    gaps between orders: ``lapsed_after_days`` (usual gap), ``customer_gone_after_days``
    and ``lapsed_source``; customers with enough orders use their own.
    """

    as_of: datetime | None
    lookback_days: float
    thresholds: pd.DataFrame
    lapsed_after_days: float
    lapsed_source: str
    model: Model = field(repr=False)
    customer_gone_after_days: float = math.nan
    codes: PlacedCodes | None = field(default=None, repr=False, compare=False)
    make_persons: Callable[[], pd.DataFrame] | None = field(default=None, repr=False, compare=False)
    # placed on Spark (shopfunnel.stages.spark_placement): no per-person arrays here, but
    # the persons per stage and status (stage_index, status, persons) and the Spark
    # DataFrame of the persons table, which stays on the cluster until asked for
    tally: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    frame: Any = field(default=None, repr=False, compare=False)
    # the persisted Spark frames ``frame`` is read from, let go by :meth:`release`
    kept: list[Any] = field(default_factory=list, repr=False, compare=False)

    @cached_property
    def persons(self) -> pd.DataFrame:
        """One row per person (columns in :data:`PERSON_COLUMNS`), sorted by stage then
        ``person_id``; built on first use (counts by stage and the flow need only
        :attr:`codes`)."""
        assert self.make_persons is not None
        return self.make_persons()

    @classmethod
    def at(
        cls,
        end: datetime,
        lookback_s: float,
        model: Model,
        thresholds: pd.DataFrame,
        gap: Any,
        **found: Any,
    ) -> StagePlacement:
        """A placement at ``end`` with its stages' ``thresholds`` and the store's gap
        between orders (a :class:`shopfunnel.stages.gaps.StoreGap`); ``found`` holds
        what the engine gives (``codes`` and ``make_persons``, or ``tally``, ``frame``
        and ``make_persons``)."""
        return cls(
            as_of=end,
            lookback_days=lookback_s / 86_400,
            thresholds=thresholds,
            lapsed_after_days=gap.days,
            lapsed_source=gap.source,
            model=model,
            customer_gone_after_days=gap.gone_days,
            **found,
        )

    @property
    def count(self) -> int:
        """The number of persons placed."""
        if self.codes is not None:
            return len(self.codes)
        if self.tally is not None:
            return int(self.tally["persons"].sum())
        return len(self.persons)

    def release(self) -> None:
        """Let go of what a placement on Spark keeps there (its facts, persisted): the
        persons asked for after it are judged from the events again. Nothing to do for a
        placement made here."""
        while self.kept:
            self.kept.pop().unpersist()

    def status_notes(self) -> list[str]:
        """How the statuses were judged, in words, with the numbers (:func:`status.explain`)."""
        return explain(
            self.thresholds,
            self.model.placement,
            self.lapsed_after_days,
            self.customer_gone_after_days,
            self.lapsed_source,
        )

    def __repr__(self) -> str:
        return (
            f"StagePlacement(as_of={self.as_of}, "
            f"persons={self.count}, "
            f"stages={list(self.thresholds['stage'])})"
        )


# -- public API ---------------------------------------------------------------------------
def placement(
    store: Store,
    *,
    model: Model | None = None,
    as_of: datetime | date | str | None = None,
    lookback: str | float | None = None,
) -> StagePlacement:
    """Place every person with an event in the lookback period; see the module docstring.

    ``model`` defaults to :func:`shopfunnel.model.load_model` (``./shopfunnel.toml`` when
    present, else the defaults). ``lookback`` defaults to the model's ``[placement]
    lookback`` (365 days); ``as_of`` to the time of the store's latest event. A date without
    a time means the end of that day.
    """
    return placements(store, [as_of], model=model, lookback=lookback)[0]


def placements(
    store: Store,
    dates: Sequence[datetime | date | str | None],
    *,
    model: Model | None = None,
    lookback: str | float | None = None,
) -> list[StagePlacement]:
    """:func:`placement` at each of several dates (``None``: the latest event), from one
    pass over the store's events: the stage flow and the report place everyone at two
    dates for little more than the cost of one."""
    model = model or load_model()
    rules = model.placement
    lookback_s = parse_duration_seconds(lookback if lookback is not None else rules.lookback)
    ends: list[datetime | None] = []
    latest: list[datetime | None] = []
    for value in dates:
        if value is None:
            if not latest:
                latest.append(_resolve_as_of(store, None))
            ends.append(latest[0])
        else:
            ends.append(point_in_time(value, "as_of"))
    if getattr(store, "on_spark", False):  # placed on the cluster, counts come back
        from shopfunnel.stages.spark_placement import spark_placement

        return [
            _empty_placement(model, lookback_s)
            if end is None
            else spark_placement(store, model, lookback_s, end)
            for end in ends
        ]
    periods = sorted(
        {(end - timedelta(seconds=lookback_s), end) for end in ends if end is not None}
    )
    facts = dict(zip(periods, gather(store, model, periods, rules.visit_gap_seconds), strict=True))
    uses = Counter((end - timedelta(seconds=lookback_s), end) for end in ends if end is not None)
    out = []
    for end in ends:
        if end is None:
            out.append(_empty_placement(model, lookback_s))
            continue
        period = (end - timedelta(seconds=lookback_s), end)
        out.append(_place(store, model, lookback_s, end, facts[period]))
        uses[period] -= 1
        if not uses[period]:
            del facts[period]  # placed: its facts go (the persons table keeps what it needs)
            give_back_memory()
    return out


def _place(
    store: Store, model: Model, lookback_s: float, end: datetime, base: PersonFacts
) -> StagePlacement:
    """The stage model's rules (module docstring) over one period's facts and orders."""
    rules = model.placement
    start = end - timedelta(seconds=lookback_s)
    orders = order_rows(store, start, end)
    o_rows = base.rows_of(orders["person_id"], orders["h"].to_numpy(dtype=np.uint64))
    orders, o_rows = orders[o_rows >= 0], o_rows[o_rows >= 0]
    first = _first_evidence(model, base, orders, o_rows)
    stage_idx, entered, movers, gaps = movements(
        first, base.visit_rows, base.visit_starts, base.visit_gaps
    )
    end_us = micros(pd.Series([end]))[0]
    thresholds = stage_thresholds(model.stage_names, movers, gaps, rules)

    # the measures of orders, for the customers only (a few in a hundred persons): the
    # persons table spreads them over everyone when it is built
    c_rows, c_of_order = np.unique(o_rows, return_inverse=True)
    n_orders, revenue, first_order, last_order = order_stats(orders, c_of_order, len(c_rows))
    gap = store_gap(orders["gap_us"].to_numpy(dtype=float) / _US_PER_DAY, rules)
    stalled_at = thresholds["stalled_after_days"].to_numpy(dtype=float)
    gone_at = thresholds["gone_after_days"].to_numpy(dtype=float)
    judged = judge(
        rules, gap, end_us, stage_idx, base.last_us, stalled_at, gone_at, c_rows,
        n_orders, first_order, last_order,
    )  # fmt: skip
    status, customer = judged.status, judged.customer

    codes = PlacedCodes(
        stage_index=stage_idx.astype(np.int64, copy=False),
        status=status,
        customer=customer,
        id_rank=base.id_rank,
        ids=base.ids,
    )

    # the persons table needs the facts' ids, channels and last events only: the rest
    # (the persons × stages matrix, the visits) is not held for it
    none = np.zeros(0, dtype=np.int64)
    base = replace(
        base,
        first_us=none,
        stage_first=none.reshape(0, 1),
        visit_rows=none,
        visit_starts=none,
        visit_gaps=none,
        hashes=None,
    )
    del first

    def make_persons() -> pd.DataFrame:
        return placed_persons(
            model, base, by_stage_then_id(stage_idx, base.id_rank), stage_idx, entered,
            end_us, judged, c_rows, n_orders, revenue, last_order, stalled_at, gone_at,
        )  # fmt: skip

    return StagePlacement.at(
        end, lookback_s, model, thresholds, gap, codes=codes, make_persons=make_persons
    )


def place_persons(
    store: Store,
    *,
    model: Model | None = None,
    as_of: datetime | date | str | None = None,
    lookback: str | float | None = None,
) -> pd.DataFrame:
    """Every person with an event in the lookback period, placed in a stage with a status.

    One row per person: ``person_id``, ``stage`` (furthest stage reached in the period),
    ``stage_index`` (its position, 0 = first), ``status`` (active, stalled or gone for
    prospects; active, lapsed or gone for customers), ``entered_stage_at`` (first evidence
    of that stage), ``days_in_stage`` (``as_of`` minus that, in days), ``last_event_at``
    (latest event in the period) and ``days_since_last_event``, ``first_channel`` (the
    channel of the person's earliest event up to ``as_of``, ties by ``event_id``),
    ``orders`` and ``revenue`` (orders in the period and the sum of their values, refunds
    not subtracted), ``last_order_at`` and ``days_since_last_order``, and the thresholds
    the status was judged by: ``stalled_after_days`` (prospects: the stage's),
    ``lapsed_after_days`` (customers: their usual gap between orders) and
    ``gone_after_days`` (the stage's for prospects, the customer's for customers). Sorted
    by stage, then person.

    The exact rules for stage and status are in the module docstring (and docs/stages.md).
    """
    return placement(store, model=model, as_of=as_of, lookback=lookback).persons


def persons(
    store: Store,
    stage: str | None = None,
    status: str | None = None,
    *,
    model: Model | None = None,
    as_of: datetime | date | str | None = None,
    lookback: str | float | None = None,
) -> pd.DataFrame:
    """The persons of :func:`place_persons` at ``stage`` (name, any case) with ``status``
    (active, stalled, lapsed or gone).

    ``None`` means any. An unknown stage or status raises ConfigError listing the allowed
    values. This is the building block for audiences ("everyone stalled at Decision").
    """
    model = model or load_model()
    if stage is not None:
        model.stage_index(stage)
    if status is not None and status.strip().lower() not in STATUSES:
        raise ConfigError(f"status {status!r} is not valid: use one of {', '.join(STATUSES)}")
    placed = placement(store, model=model, as_of=as_of, lookback=lookback)
    if placed.frame is not None:  # on Spark: only the persons asked for come back
        from shopfunnel.stages.spark_placement import selected_persons

        return selected_persons(
            placed,
            None if stage is None else model.stage_index(stage),
            None if status is None else status.strip().lower(),
        )
    p = placed.persons
    keep = np.ones(len(p), dtype=bool)
    if stage is not None:
        keep &= (p["stage_index"] == model.stage_index(stage)).to_numpy()
    if status is not None:
        keep &= (p["status"] == status.strip().lower()).to_numpy()
    return p[keep].reset_index(drop=True)


# -- the rules, over compact tables -----------------------------------------------------------
def _first_evidence(
    model: Model, base: PersonFacts, orders: pd.DataFrame, o_rows: np.ndarray
) -> np.ndarray:
    """Persons x stages matrix of first-evidence times (µs; ``NEVER`` when none): the
    facts' own matrix, completed in place (each step takes a minimum: applying it twice,
    when two dates share one period's facts, changes nothing), not a copy of it."""
    first = base.stage_first
    first[:, 0] = np.minimum(first[:, 0], base.first_us)  # any event is a visit
    o_ts = micros(orders["ts"])
    o_seq = orders["n"].to_numpy(dtype=np.int64)
    for k, stage in enumerate(model.stages):
        if stage.min_orders is not None:
            hit = o_seq == stage.min_orders
            np.minimum.at(first[:, k], o_rows[hit], o_ts[hit])
    return first


# -- helpers --------------------------------------------------------------------------------
def _resolve_as_of(store: Store, as_of: datetime | date | str | None) -> datetime | None:
    if as_of is not None:
        return point_in_time(as_of, "as_of")
    if getattr(store, "on_spark", False):
        return store.latest_event_time()  # type: ignore[attr-defined]
    latest = store.db.scalar("SELECT max(ts) FROM events")
    return None if latest is None else pd.Timestamp(latest).to_pydatetime()


def _empty_placement(model: Model, lookback_s: float) -> StagePlacement:
    persons = pd.DataFrame({c: pd.Series([], dtype=object) for c in PERSON_COLUMNS})
    thresholds = pd.DataFrame(
        {
            "stage": model.stage_names,
            "movers": 0,
            "returning": 0,
            "stalled_after_days": np.nan,
            "gone_after_days": np.nan,
            "source": "no events",
        }
    )[THRESHOLD_COLUMNS]
    empty = np.zeros(0, dtype=np.int64)
    codes = PlacedCodes(
        stage_index=empty,
        status=empty,
        customer=np.zeros(0, dtype=bool),
        id_rank=empty,
        ids=pa.array([], pa.string()),
    )
    return StagePlacement(
        as_of=None,
        lookback_days=lookback_s / 86_400,
        thresholds=thresholds,
        lapsed_after_days=math.nan,
        lapsed_source="no events",
        model=model,
        codes=codes,
        make_persons=lambda: persons,
    )


_MOVED = ("NOT_SEEN", "stage_flow", "stage_summary", "stage_transitions")


def __getattr__(name: str) -> Any:
    """The summaries moved to :mod:`shopfunnel.stages.summary`; importing them from here, as
    before, still works (a late import: that module imports this one)."""
    if name in _MOVED:
        from shopfunnel.stages import summary

        return getattr(summary, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
