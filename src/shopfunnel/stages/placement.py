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

Events are aggregated in DuckDB (one row per person, one per order, one per visit that starts
with a return); the rules above are applied in NumPy over those compact tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from shopfunnel.durations import parse_duration_seconds
from shopfunnel.errors import ConfigError
from shopfunnel.model import Model, load_model
from shopfunnel.stages.gaps import gone_gap_days, store_gap, usual_gap_days
from shopfunnel.stages.status import (
    GONE,
    LAPSED,
    NEVER,
    STATUSES,
    THRESHOLD_COLUMNS,
    classify,
    explain,
    later_evidence,
    return_gaps,
    stage_thresholds,
)
from shopfunnel.store.db import quote_ident
from shopfunnel.store.store import Store

NOT_SEEN = "not seen"
ORDER_EVENT = "purchase"

_US_PER_DAY = 86_400 * 1_000_000
_NEVER = NEVER

PERSON_COLUMNS = [
    "person_id", "stage", "stage_index", "status", "entered_stage_at", "days_in_stage",
    "last_event_at", "days_since_last_event", "first_channel", "orders", "revenue",
    "last_order_at", "days_since_last_order", "stalled_after_days", "lapsed_after_days",
    "gone_after_days",
]


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
    persons: pd.DataFrame
    thresholds: pd.DataFrame
    lapsed_after_days: float
    lapsed_source: str
    model: Model = field(repr=False)
    customer_gone_after_days: float = math.nan

    def status_notes(self) -> list[str]:
        """How the statuses were judged, in words, with the numbers (:func:`status.explain`)."""
        return explain(self.thresholds, self.model.placement, self.lapsed_after_days,
                       self.customer_gone_after_days, self.lapsed_source)

    def __repr__(self) -> str:
        return (
            f"StagePlacement(as_of={self.as_of}, persons={len(self.persons)}, "
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
    model = model or load_model()
    rules = model.placement
    lookback_s = parse_duration_seconds(lookback if lookback is not None else rules.lookback)
    end = _resolve_as_of(store, as_of)
    n_stages = len(model.stages)
    if end is None:
        return _empty_placement(model, lookback_s)
    start = end - timedelta(seconds=lookback_s)

    base, orders, visits = _rows(store, model, start, end, rules.visit_gap_seconds)
    o_rows = pd.Index(base["person_id"]).get_indexer(orders["person_id"])
    orders, o_rows = orders[o_rows >= 0], o_rows[o_rows >= 0]
    first = _first_evidence(model, base, orders, o_rows)
    n = len(first)
    reached = first < _NEVER
    stage_idx = n_stages - 1 - np.argmax(reached[:, ::-1], axis=1)
    entered = first[np.arange(n), stage_idx]
    end_us = _micros(pd.Series([end]))[0]

    v_rows = pd.Index(base["person_id"]).get_indexer(visits["person_id"])
    keep = v_rows >= 0
    gaps = return_gaps(first, v_rows[keep], _micros(visits["ts"])[keep],
                       visits["gap_us"].to_numpy(dtype=float)[keep])
    later = later_evidence(first)
    movers = ((first < later) & (later < _NEVER)).sum(axis=0)
    thresholds = stage_thresholds(model.stage_names, movers, gaps, rules)

    n_orders, revenue, first_order, last_order = _order_stats(orders, o_rows, n)
    gap = store_gap(orders["gap_us"].to_numpy(dtype=float) / _US_PER_DAY, rules)
    customer = n_orders > 0
    span_days = np.where(customer, (last_order - first_order) / _US_PER_DAY, np.nan)
    usual_gap, _ = usual_gap_days(n_orders, span_days, gap, rules)
    gone_gap = gone_gap_days(n_orders, span_days, gap, rules)

    days_in_stage = (end_us - entered) / _US_PER_DAY
    idle = (end_us - _micros(base["last_event_at"])) / _US_PER_DAY
    since_order = np.where(customer, (end_us - last_order) / _US_PER_DAY, np.nan)
    stage_stalled = thresholds["stalled_after_days"].to_numpy(dtype=float)[stage_idx]
    stage_gone = thresholds["gone_after_days"].to_numpy(dtype=float)[stage_idx]
    status = classify(customer, idle, stage_stalled, stage_gone, since_order, usual_gap,
                      gone_gap)

    names = np.array(model.stage_names, dtype=object)
    persons = pd.DataFrame(
        {
            "person_id": base["person_id"].to_numpy(),
            "stage": names[stage_idx],
            "stage_index": stage_idx.astype(np.int64),
            "status": status.astype(object),
            "entered_stage_at": _to_ts(entered),
            "days_in_stage": days_in_stage,
            "last_event_at": base["last_event_at"].to_numpy(),
            "days_since_last_event": idle,
            "first_channel": base["first_channel"].to_numpy(),
            "orders": n_orders,
            "revenue": revenue,
            "last_order_at": _to_ts(last_order),
            "days_since_last_order": since_order,
            "stalled_after_days": np.where(customer, np.nan, stage_stalled),
            "lapsed_after_days": usual_gap,
            "gone_after_days": np.where(customer, gone_gap, stage_gone),
        }
    )
    # Rows come ordered by person_id; a stable sort by stage keeps that order within a stage.
    persons = persons.take(np.argsort(stage_idx, kind="stable")).reset_index(drop=True)
    return StagePlacement(
        as_of=end,
        lookback_days=lookback_s / 86_400,
        persons=persons,
        thresholds=thresholds,
        lapsed_after_days=gap.days,
        lapsed_source=gap.source,
        model=model,
        customer_gone_after_days=gap.gone_days,
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


def stage_summary(
    store: Store,
    *,
    model: Model | None = None,
    as_of: datetime | date | str | None = None,
    lookback: str | float | None = None,
    placed: StagePlacement | None = None,
) -> pd.DataFrame:
    """Persons per stage, conversion between consecutive stages, and counts by status.

    One row per stage, in the model's order: ``reached`` (persons whose stage is this one or
    a later one), ``at_stage`` (persons whose stage is this one), ``conversion_from_previous``
    (``reached`` / the previous stage's ``reached``; empty for the first stage or when the
    previous stage has nobody), ``conversion_from_start`` (``reached`` / the first stage's
    ``reached``), ``active``, ``stalled``, ``lapsed`` and ``gone`` (persons at this stage
    with that status), ``returning`` (movers who came back to move on),
    ``stalled_after_days`` and ``gone_after_days`` (the thresholds for prospects at the
    stage) and ``threshold_source`` (where they came from). Pass ``placed`` to reuse a
    :func:`placement`.
    """
    placed = placed or placement(store, model=model, as_of=as_of, lookback=lookback)
    model = placed.model
    p = placed.persons
    n_stages = len(model.stages)
    at = np.bincount(p["stage_index"].to_numpy(dtype=np.int64), minlength=n_stages)
    reached = np.cumsum(at[::-1])[::-1]
    prev = np.concatenate([[np.nan], reached[:-1]]).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        from_prev = np.where(prev > 0, reached / prev, np.nan)
        from_start = np.where(reached[0] > 0, reached / max(reached[0], 1), np.nan)
    out = pd.DataFrame(
        {
            "stage": model.stage_names,
            "reached": reached.astype(np.int64),
            "at_stage": at.astype(np.int64),
            "conversion_from_previous": from_prev,
            "conversion_from_start": from_start,
        }
    )
    status = p["status"].to_numpy(dtype=object)
    code = np.select([status == s for s in STATUSES], list(range(len(STATUSES))), 0)
    cells = p["stage_index"].to_numpy(dtype=np.int64) * len(STATUSES) + code
    counts = np.bincount(cells, minlength=n_stages * len(STATUSES)).reshape(n_stages, -1)
    for j, s in enumerate(STATUSES):
        out[s] = counts[:, j].astype(np.int64)
    for column in ("returning", "stalled_after_days", "gone_after_days"):
        out[column] = placed.thresholds[column].to_numpy()
    out["threshold_source"] = placed.thresholds["source"].to_numpy()
    return out


def stage_transitions(
    store: Store,
    start: datetime | date | str,
    end: datetime | date | str,
    *,
    model: Model | None = None,
    lookback: str | float | None = None,
) -> pd.DataFrame:
    """Each person's state at ``start`` and at ``end``: columns ``person_id``, ``from``, ``to``.

    A state is the person's stage, or ``lapsed`` for a customer whose status is lapsed or
    gone, or
    ``not seen`` when they have no event in the lookback period before that date (new
    persons at ``start``; persons whose every event has fallen out of the period at
    ``end``). Both dates are placed with :func:`placement`, so each uses the thresholds
    the data held at that date. Persons not seen at either date are left out.
    """
    model = model or load_model()
    t0, t1 = _timestamp(start, "start"), _timestamp(end, "end")
    if t1 <= t0:
        raise ConfigError(f"the end ({t1}) must be after the start ({t0}): swap --from and --to")
    a = _states(placement(store, model=model, as_of=t0, lookback=lookback).persons)
    b = _states(placement(store, model=model, as_of=t1, lookback=lookback).persons)
    both = pd.concat([a.rename("from"), b.rename("to")], axis=1).fillna(NOT_SEEN)
    both.index.name = "person_id"
    return both.reset_index().sort_values("person_id", kind="stable").reset_index(drop=True)


def stage_flow(
    store: Store,
    start: datetime | date | str,
    end: datetime | date | str,
    *,
    model: Model | None = None,
    lookback: str | float | None = None,
) -> pd.DataFrame:
    """A transition matrix: persons by state at ``start`` (rows) and at ``end`` (columns).

    States are ``not seen``, the stages in order, then ``lapsed`` (see
    :func:`stage_transitions`); every state appears as a row and as a column, so the
    matrix is square. The index is named ``from`` and the columns ``to``. The cell
    (Interest, Decision) counts persons at Interest at ``start`` and at Decision at ``end``;
    the column ``lapsed`` shows who fell back to lapsed.
    """
    model = model or load_model()
    moves = stage_transitions(store, start, end, model=model, lookback=lookback)
    states = [NOT_SEEN, *model.stage_names, LAPSED]
    matrix = (
        pd.crosstab(moves["from"], moves["to"])
        .reindex(index=states, columns=states, fill_value=0)
        .astype(np.int64)
    )
    matrix.index.name = "from"
    matrix.columns.name = "to"
    return matrix


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
    p = place_persons(store, model=model, as_of=as_of, lookback=lookback)
    keep = np.ones(len(p), dtype=bool)
    if stage is not None:
        keep &= (p["stage_index"] == model.stage_index(stage)).to_numpy()
    if status is not None:
        keep &= (p["status"] == status.strip().lower()).to_numpy()
    return p[keep].reset_index(drop=True)


# -- the rules, over compact tables -----------------------------------------------------------
def _first_evidence(
    model: Model, base: pd.DataFrame, orders: pd.DataFrame, o_rows: np.ndarray
) -> np.ndarray:
    """Persons x stages matrix of first-evidence times (µs; ``_NEVER`` when none)."""
    n_stages = len(model.stages)
    first = np.full((len(base), n_stages), _NEVER, dtype=np.int64)
    for k in range(n_stages):
        if f"s{k}" in base:
            first[:, k] = _micros(base[f"s{k}"])
    first[:, 0] = np.minimum(first[:, 0], _micros(base["first_ts"]))  # any event is a visit
    o_ts = _micros(orders["ts"])
    o_seq = orders["n"].to_numpy(dtype=np.int64)
    for k, stage in enumerate(model.stages):
        if stage.min_orders is not None:
            hit = o_seq == stage.min_orders
            np.minimum.at(first[:, k], o_rows[hit], o_ts[hit])
    return first


def _order_stats(
    orders: pd.DataFrame, o_rows: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per person: order count, revenue, first and last order time (µs; ``_NEVER`` if none)."""
    o_ts = _micros(orders["ts"])
    n_orders = np.bincount(o_rows, minlength=n).astype(np.int64)
    revenue = np.bincount(o_rows, weights=orders["value"].to_numpy(dtype=float), minlength=n)
    first_order = np.full(n, _NEVER, dtype=np.int64)
    last_order = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first_order, o_rows, o_ts)
    np.maximum.at(last_order, o_rows, o_ts)
    last_order[n_orders == 0] = _NEVER
    return n_orders, revenue, first_order, last_order


# -- queries (aggregate in the engine) ------------------------------------------------------
def _rows(store: Store, model: Model, start: datetime, end: datetime, visit_gap_s: float
          ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The compact tables the rules read: persons, orders, returning visits. A Spark
    source (:class:`shopfunnel.store.spark.SparkEvents`) computes the same rows on Spark."""
    if hasattr(store, "placement_rows"):
        return store.placement_rows(model.event_stage(), start, end, visit_gap_s, ORDER_EVENT)
    return (_person_rows(store, model, start, end), _order_rows(store, start, end),
            _visit_rows(store, start, end, visit_gap_s))


def _person_rows(store: Store, model: Model, start: datetime, end: datetime) -> pd.DataFrame:
    """One row per person with an event in the period, in one scan: first and last event in
    the period, first-touch channel (all events up to ``end``), and ``s{k}``: the first event
    of stage k in the period, for each stage that has events."""
    mapping = model.event_stage()
    params: list[Any] = []
    if mapping:
        stage_map = "SELECT * FROM (VALUES " + ", ".join(["(?, ?)"] * len(mapping)) + ") m(event, stage)"
        params += [v for pair in mapping.items() for v in pair]
    else:
        stage_map = "SELECT CAST(NULL AS VARCHAR) AS event, CAST(NULL AS INTEGER) AS stage WHERE false"
    stage_cols = ""
    for k in sorted(set(mapping.values())):
        stage_cols += f", min(ts) FILTER (WHERE ts > ? AND stage = ?) AS {quote_ident(f's{k}')}"
    stage_params: list[Any] = []
    for k in sorted(set(mapping.values())):
        stage_params += [start, k]
    return store.db.df(
        f"""
        WITH m AS ({stage_map})
        SELECT person_id,
               min(ts) FILTER (WHERE ts > ?) AS first_ts,
               max(ts) AS last_event_at,
               arg_min(channel, struct_pack(t := ts, id := event_id)) AS first_channel
               {stage_cols}
        FROM events LEFT JOIN m USING (event)
        WHERE ts <= ?
        GROUP BY person_id
        HAVING count(*) FILTER (WHERE ts > ?) > 0
        ORDER BY person_id
        """,
        [*params, start, *stage_params, end, start],
    )


def _order_rows(store: Store, start: datetime, end: datetime) -> pd.DataFrame:
    """One row per order in the period: person, time, value, its number n for the person,
    and the gap since the person's previous order (microseconds, empty for the first)."""
    return store.db.df(
        """
        WITH o AS (
            SELECT coalesce(order_id, 'event:' || event_id) AS oid,
                   arg_min(person_id, struct_pack(t := ts, id := event_id)) AS person_id,
                   min(ts) AS ts,
                   coalesce(CAST(arg_min(value, struct_pack(t := ts, id := event_id)) AS DOUBLE), 0)
                       AS value
            FROM events WHERE event = ? AND ts > ? AND ts <= ?
            GROUP BY oid
        )
        SELECT person_id, ts, value,
               row_number() OVER w AS n,
               epoch_us(ts) - epoch_us(lag(ts) OVER w) AS gap_us
        FROM o WINDOW w AS (PARTITION BY person_id ORDER BY ts, oid)
        """,
        [ORDER_EVENT, start, end],
    )


def _visit_rows(store: Store, start: datetime, end: datetime, visit_gap_s: float) -> pd.DataFrame:
    """One row per visit in the period that starts with a return: the person, the time of the
    visit's first event and the gap since the person's previous event in the period
    (microseconds, more than ``visit_gap_s`` seconds)."""
    return store.db.df(
        """
        SELECT person_id, ts, gap_us FROM (
            SELECT person_id, ts,
                   epoch_us(ts) - epoch_us(lag(ts) OVER (PARTITION BY person_id ORDER BY ts))
                       AS gap_us
            FROM events WHERE ts > ? AND ts <= ?
        )
        WHERE gap_us > ?
        """,
        [start, end, int(round(visit_gap_s * 1_000_000))],
    )


# -- helpers --------------------------------------------------------------------------------
def _states(p: pd.DataFrame) -> pd.Series:
    """The flow state: the stage, or ``lapsed`` for a customer who is lapsed or gone."""
    slipped = p["status"].isin([LAPSED, GONE]) & (p["orders"] > 0)
    state = p["stage"].where(~slipped, LAPSED)
    return pd.Series(state.to_numpy(), index=p["person_id"].to_numpy())


def _resolve_as_of(store: Store, as_of: datetime | date | str | None) -> datetime | None:
    if as_of is not None:
        return _timestamp(as_of, "as_of")
    if hasattr(store, "latest_event_time"):  # a Spark source
        return store.latest_event_time()
    latest = store.db.scalar("SELECT max(ts) FROM events")
    return None if latest is None else pd.Timestamp(latest).to_pydatetime()


def _timestamp(value: datetime | date | str, what: str) -> datetime:
    """A naive UTC datetime; a date (or a date-only string) means the end of that day."""
    if isinstance(value, str):
        text = value.strip()
        try:
            ts = pd.Timestamp(text)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"{what} {value!r} is not a date: write e.g. 2024-03-15 or 2024-03-15T12:00"
            ) from exc
        if len(text) == 10:  # a date alone
            ts = ts + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    elif isinstance(value, datetime):
        ts = pd.Timestamp(value)
    elif isinstance(value, date):
        ts = pd.Timestamp(value) + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    else:
        raise ConfigError(f"{what} {value!r} is not a date or a datetime")
    if ts is pd.NaT:
        raise ConfigError(f"{what} {value!r} is not a date")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def _micros(values: pd.Series) -> np.ndarray:
    """Microseconds since the epoch; a missing time becomes the "never" sentinel."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    stamps = pd.to_datetime(values).to_numpy().astype("datetime64[us]")
    out = stamps.astype(np.int64)
    out[np.isnat(stamps)] = _NEVER
    return out


def _to_ts(micros: np.ndarray) -> np.ndarray:
    out = micros.astype("datetime64[us]")
    out[micros == _NEVER] = np.datetime64("NaT")
    return out


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
    return StagePlacement(
        as_of=None, lookback_days=lookback_s / 86_400, persons=persons, thresholds=thresholds,
        lapsed_after_days=math.nan, lapsed_source="no events", model=model,
    )
