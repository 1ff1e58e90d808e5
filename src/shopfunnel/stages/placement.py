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

**Status** (checked in this order):

* **lapsed**: a customer (at least one order in the period) whose time since their last
  order is longer than their *usual gap between orders*. The usual gap is, for a person
  with at least ``own_gap_min_orders`` (3) orders, the ``lapsed_quantile`` (80th)
  percentile of an exponential distribution with the person's own mean gap (mean gap x
  -ln(1 - 0.8) = 1.61 x mean gap; the exponential is the gap distribution of a customer who
  buys at random at a steady rate, as BG/NBD assumes). For everyone else it is the store's
  80th percentile of all gaps between consecutive orders of the same person in the period,
  or ``lapsed_after`` (90 days) when the period holds fewer than ``min_gaps`` (20) gaps.
* **stalled**: not lapsed, and at their stage longer than is usual for it: ``days_in_stage``
  is greater than the ``stalled_quantile`` (80th) percentile of time at that stage among the
  persons who passed through it in the period, or ``stalled_after`` (30 days) when fewer
  than ``min_movers`` (20) passed through; never less than ``min_stalled_after`` when the
  model sets one (not set by default). The last stage has no next stage, so nobody is
  stalled there (they are active or lapsed).
* **active**: everyone else.

Percentiles interpolate linearly between data points (NumPy's default). Comparisons are
strict: exactly the usual time is not yet stalled or lapsed.

Events are aggregated in DuckDB (one row per person and stage, one row per order); the rules
above are applied in NumPy over those compact tables.
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
from shopfunnel.stages.gaps import store_gap, usual_gap_days
from shopfunnel.store.db import quote_ident
from shopfunnel.store.store import Store

STATUSES = ("active", "stalled", "lapsed")
NOT_SEEN = "not seen"
LAPSED = "lapsed"
ORDER_EVENT = "purchase"

_US_PER_DAY = 86_400 * 1_000_000
_NEVER = np.iinfo(np.int64).max

PERSON_COLUMNS = [
    "person_id", "stage", "stage_index", "status", "entered_stage_at", "days_in_stage",
    "last_event_at", "first_channel", "orders", "revenue", "last_order_at",
    "stalled_after_days", "lapsed_after_days",
]


@dataclass(frozen=True)
class StagePlacement:
    """Everyone placed in a stage at ``as_of``, with the thresholds the statuses came from.

    ``persons`` has one row per person (columns in :data:`PERSON_COLUMNS`); ``thresholds``
    one row per stage: ``stage``, ``movers`` (persons who passed through it),
    ``stalled_after_days`` and ``source`` (where that number came from).
    """

    as_of: datetime | None
    lookback_days: float
    persons: pd.DataFrame
    thresholds: pd.DataFrame
    lapsed_after_days: float
    lapsed_source: str
    model: Model = field(repr=False)

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

    base = _person_rows(store, model, start, end)
    orders = _order_rows(store, start, end)
    o_rows = pd.Index(base["person_id"]).get_indexer(orders["person_id"])
    orders, o_rows = orders[o_rows >= 0], o_rows[o_rows >= 0]
    first = _first_evidence(model, base, orders, o_rows)
    n = len(first)
    reached = first < _NEVER
    stage_idx = n_stages - 1 - np.argmax(reached[:, ::-1], axis=1)
    entered = first[np.arange(n), stage_idx]
    end_us = _micros(pd.Series([end]))[0]
    thresholds = _stalled_thresholds(model, first)
    stalled_after = thresholds["stalled_after_days"].to_numpy(dtype=float)
    n_orders, revenue, first_order, last_order = _order_stats(orders, o_rows, n)
    gap = store_gap(orders["gap_us"].to_numpy(dtype=float) / _US_PER_DAY, rules)
    store_gap_days, lapsed_source = gap.days, gap.source
    customer = n_orders > 0
    span_days = np.where(customer, (last_order - first_order) / _US_PER_DAY, np.nan)
    usual_gap, _ = usual_gap_days(n_orders, span_days, gap, rules)

    days_in_stage = (end_us - entered) / _US_PER_DAY
    since_order = np.where(customer, (end_us - last_order) / _US_PER_DAY, np.nan)
    with np.errstate(invalid="ignore"):
        lapsed = customer & (since_order > usual_gap)
        person_threshold = stalled_after[stage_idx]
        stalled = ~lapsed & (days_in_stage > person_threshold)
    status = np.where(lapsed, "lapsed", np.where(stalled, "stalled", "active"))

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
            "first_channel": base["first_channel"].to_numpy(),
            "orders": n_orders,
            "revenue": revenue,
            "last_order_at": _to_ts(last_order),
            "stalled_after_days": person_threshold,
            "lapsed_after_days": usual_gap,
        }
    )
    # Rows come ordered by person_id; a stable sort by stage keeps that order within a stage.
    persons = persons.take(np.argsort(stage_idx, kind="stable")).reset_index(drop=True)
    return StagePlacement(
        as_of=end,
        lookback_days=lookback_s / 86_400,
        persons=persons,
        thresholds=thresholds,
        lapsed_after_days=store_gap_days,
        lapsed_source=lapsed_source,
        model=model,
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
    ``stage_index`` (its position, 0 = first), ``status`` (active, stalled or lapsed),
    ``entered_stage_at`` (first evidence of that stage), ``days_in_stage`` (``as_of`` minus
    that, in days), ``last_event_at`` (latest event in the period), ``first_channel`` (the
    channel of the person's earliest event up to ``as_of``, ties by ``event_id``),
    ``orders`` and ``revenue`` (orders in the period and the sum of their values, refunds
    not subtracted), ``last_order_at``, and the thresholds the status was judged by:
    ``stalled_after_days`` (usual time at the stage) and ``lapsed_after_days`` (usual gap
    between orders; empty for non-customers). Sorted by stage, then person.

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
    ``reached``), ``active``, ``stalled`` and ``lapsed`` (persons at this stage with that
    status), ``stalled_after_days`` and ``threshold_source`` (the usual time at the stage
    and where it came from). Pass ``placed`` to reuse a :func:`placement`.
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
    out["stalled_after_days"] = placed.thresholds["stalled_after_days"].to_numpy()
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

    A state is the person's stage, or ``lapsed`` when their status is lapsed, or
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
    """The persons of :func:`place_persons` at ``stage`` (name, any case) with ``status``.

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


def _stalled_thresholds(model: Model, first: np.ndarray) -> pd.DataFrame:
    """Per stage: movers, the usual time at the stage in days, and where it came from."""
    rules = model.placement
    n_stages = len(model.stages)
    later = np.full_like(first, _NEVER)  # first evidence of any later stage
    for k in range(n_stages - 2, -1, -1):
        later[:, k] = np.minimum(later[:, k + 1], first[:, k + 1])
    floor = rules.min_stalled_after_seconds / 86_400
    rows = []
    for k, stage in enumerate(model.stages):
        if k == n_stages - 1:
            rows.append((stage.name, 0, math.nan, "last stage: never stalled"))
            continue
        moved = (first[:, k] < _NEVER) & (later[:, k] < _NEVER) & (first[:, k] < later[:, k])
        durations = (later[moved, k] - first[moved, k]) / _US_PER_DAY
        if len(durations) >= rules.min_movers:
            usual = float(np.quantile(durations, rules.stalled_quantile))
            source = f"data: {_pct(rules.stalled_quantile)} percentile of {len(durations)} movers"
        else:
            usual = rules.stalled_after_seconds / 86_400
            source = (
                f"default stalled_after: {len(durations)} movers, fewer than {rules.min_movers}"
            )
        if usual < floor:
            usual = floor
            source += f"; raised to min_stalled_after ({rules.min_stalled_after})"
        rows.append((stage.name, int(len(durations)), usual, source))
    return pd.DataFrame(rows, columns=["stage", "movers", "stalled_after_days", "source"])


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


# -- helpers --------------------------------------------------------------------------------
def _states(p: pd.DataFrame) -> pd.Series:
    state = p["stage"].where(p["status"] != LAPSED, LAPSED)
    return pd.Series(state.to_numpy(), index=p["person_id"].to_numpy())


def _resolve_as_of(store: Store, as_of: datetime | date | str | None) -> datetime | None:
    if as_of is not None:
        return _timestamp(as_of, "as_of")
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


def _pct(q: float) -> str:
    v = round(q * 100, 2)
    s = f"{v:g}"
    suffix = "th" if 10 <= v % 100 < 20 else {1: "st", 2: "nd", 3: "rd"}.get(int(v) % 10, "th")
    return s + suffix


def _empty_placement(model: Model, lookback_s: float) -> StagePlacement:
    persons = pd.DataFrame({c: pd.Series([], dtype=object) for c in PERSON_COLUMNS})
    thresholds = pd.DataFrame(
        {
            "stage": model.stage_names,
            "movers": 0,
            "stalled_after_days": np.nan,
            "source": "no events",
        }
    )
    return StagePlacement(
        as_of=None, lookback_days=lookback_s / 86_400, persons=persons, thresholds=thresholds,
        lapsed_after_days=math.nan, lapsed_source="no events", model=model,
    )
