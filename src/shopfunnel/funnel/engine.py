"""The funnel engine: one interface, and the local engine (DuckDB + a numba kernel).

A :class:`FunnelPlan` says *what* to count (steps, window, order, units, breakdown,
trend); an engine turns it into :class:`EngineOutput`: per counted unit (a person, a
session, or a person × trend period) and step, when the step was first reached, the
previous step's time and the attempt's anchor in that attempt, and the breakdown code on
the step's and the anchor's event. :mod:`shopfunnel.funnel.result` builds every table
from that, so a Spark or ClickHouse engine only has to produce the same arrays.

:class:`LocalEngine` lets DuckDB read and filter the events (only rows that match a step
or an exclusion; every row of the person in strict mode), encode each row's step as a
small integer, hash the person and sort by (person, time, step). It streams the sorted
rows as Arrow batches and runs :func:`shopfunnel.funnel.kernel.run_units` on each batch,
carrying the last, possibly incomplete, person over to the next batch, so memory is
bounded by DuckDB's sort (which spills to disk) plus one batch. Persons are identified by
DuckDB's 64-bit ``hash`` of the id: two persons collide with probability about
``persons² / 2⁶⁵`` (below one in a million at ten million persons).

Over a store, most funnels skip the SQL: the store's :mod:`shopfunnel.store.timeline` holds the
events already sorted by (person, time) as integer arrays, and a compiled pass picks the
plan's rows from it (ADR 0021). Both paths end in :func:`count_arrays`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shopfunnel.errors import ConfigError, InputError
from shopfunnel.funnel.kernel import (
    ANY,
    NONE,
    ORDERED,
    STRICT,
    boundaries,
    boundaries2,
    count_segments,
    run_units,
)
from shopfunnel.store import schema
from shopfunnel.store.db import Database, json_pointer, quote_ident, quote_literal
from shopfunnel.store.timeline import DIMENSIONS as TIMELINE_DIMENSIONS
from shopfunnel.store.timeline import Timeline, can_filter, period_starts
from shopfunnel.store.timeline import build as build_timeline
from shopfunnel.store.timeline import chunks as timeline_chunks
from shopfunnel.store.timeline import of_store as timeline_of_store
from shopfunnel.store.timeline import select as select_timeline

Order = Literal["ordered", "strict", "any"]
CountBy = Literal["person", "session"]
Trend = Literal["day", "week", "month"]
ITEM_FIELDS = schema.ITEM_FIELDS
BATCH_ROWS = 4_000_000
TIMELINE_CHUNK_ROWS = 8_000_000  # timeline rows a thread selects and counts at a time


@dataclass(frozen=True)
class StepCondition:
    """An event name plus property filters (column or property → value or list of values)."""

    event: str
    where: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class FunnelPlan:
    """Everything an engine needs to count a funnel (validated by :func:`funnel`)."""

    steps: tuple[StepCondition, ...]
    window_us: int
    order: Order = "ordered"
    count_by: CountBy = "person"
    exclusions: tuple[tuple[StepCondition, int, int], ...] = ()  # (condition, from, to) 1-based
    hold: str | None = None
    optional: tuple[bool, ...] = ()
    open_entry: bool = False
    by: str | None = None
    trend: Trend | None = None
    attribution: str = "first"  # which codes a breakdown reads (the anchor's or the step's)


@dataclass
class EngineOutput:
    """Per counted unit (and trend period) and step: the raw facts every table is built from.

    Arrays of shape (units, steps) hold int64 microseconds (``NONE`` = not reached) or
    int32 breakdown codes (``-1`` = no value); ``labels[code]`` is the breakdown value.
    """

    owner: np.ndarray  # uint64 hash of the person (or session)
    period: np.ndarray  # int64 µs start of the trend period (0 without a trend)
    reached: np.ndarray
    prev: np.ndarray
    anchor: np.ndarray
    sattr: np.ndarray
    aattr: np.ndarray
    totals: np.ndarray
    labels: list[str]
    lookup: Callable[[np.ndarray], pd.DataFrame] = field(repr=False)


def coded_conditions(
    plan: FunnelPlan,
) -> tuple[list[tuple[int, StepCondition]], list[str], bool, int]:
    """The codes every engine gives rows: step k is ``k`` (1-based), exclusion j is ``-j``,
    any other event ``n + 1``. Also the event names in code order and whether one name
    appears in several conditions (then a row may carry several codes)."""
    coded: list[tuple[int, StepCondition]] = [
        (-(j + 1), ex[0]) for j, ex in enumerate(plan.exclusions)
    ] + [(i + 1, s) for i, s in enumerate(plan.steps)]
    names = [c.event for _, c in coded]
    return coded, names, len(set(names)) < len(names), len(plan.steps) + 1


def require_sessions(columns: Any) -> None:
    """Counting by session needs a ``session_id`` column."""
    if "session_id" not in columns:
        raise ConfigError("count_by='session' needs a session_id column in the events")


def timeline_fits(plan: FunnelPlan, tl: Timeline | None = None) -> bool:
    """Whether the plan can run on a timeline (``tl``'s, when given): no held property;
    step and exclusion filters and the breakdown only on the timeline's columns."""
    conditions = [*plan.steps, *(c for c, _, _ in plan.exclusions)]
    if plan.hold is not None:
        return False
    if tl is None:
        return all(key in TIMELINE_DIMENSIONS for c in conditions for key, _ in c.where)
    if plan.by is not None and plan.by not in tl.dims:
        return False
    if not all(can_filter(tl, c.where) for c in conditions):
        return False
    return plan.count_by != "session" or (tl.session is not None and tl.sessions_nested)


def timeline_rows(plan: FunnelPlan, tl: Timeline, start: int = 0, stop: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The plan's rows of the timeline (rows ``start..stop``), coded and ordered as
    :meth:`LocalEngine.build_sql` orders them: owner, µs, step code and the rows' indices
    in the timeline counted from ``start``."""
    coded, _, _, other = coded_conditions(plan)
    codes: dict[str, list[tuple[int, tuple[tuple[str, Any], ...]]]] = {}
    for k, cond in coded:
        codes.setdefault(cond.event, []).append((k, cond.where))
    # rows before a unit's first possible anchor take part in no attempt
    anchor_max = 0 if plan.order == "any" else len(plan.steps) if plan.open_entry else 1
    return select_timeline(tl, codes, other=other if plan.order == "strict" else None,
                           by_session=plan.count_by == "session", anchor_max=anchor_max,
                           start=start, stop=stop)


class FunnelEngine(Protocol):
    """What an engine does: count a plan over a source."""

    def run(self, plan: FunnelPlan) -> EngineOutput: ...


class LocalEngine:
    """DuckDB reads, filters, encodes and sorts; the numba kernel walks each person.

    ``timeline``: None (default) uses the timeline for a store and SQL for other sources;
    True builds a timeline of any source on the first funnel and keeps it in this engine
    (worth it when one engine counts many funnels); False always uses SQL; a
    :class:`~shopfunnel.store.timeline.Timeline` is used as given. Plans a timeline cannot hold
    (property filters, ``hold``, a breakdown by another column) run by SQL either way.
    """

    def __init__(self, source: Any, *, batch_rows: int = BATCH_ROWS,
                 memory_limit: str | None = None, timeline: bool | Timeline | None = None):
        self.batch_rows = batch_rows
        self._owned = False
        from shopfunnel.store.store import Store

        self._store = source if isinstance(source, Store) else None
        # the timeline pays for itself when funnels are counted again and again: by
        # default for a store (kept beside it), on request for other sources
        self.use_timeline = self._store is not None if timeline is None else bool(timeline)
        self._timeline: Timeline | None = timeline if isinstance(timeline, Timeline) else None
        if isinstance(source, Store):
            self.db = source.db
            self.relation = "events"
        else:
            self.db = Database(":memory:")
            self._owned = True
            if memory_limit:
                self.db.execute(f"SET memory_limit = {quote_literal(memory_limit)}")
            if isinstance(source, str | Path):
                path = str(source)
                if not Path(path).exists():
                    raise InputError(
                        f"no file {path!r}: give a Parquet file, a Store or a DataFrame"
                    )
                if not path.endswith(".parquet"):
                    raise InputError(
                        f"{path!r} is not a Parquet file: load other files into a Store first "
                        "(`shopfunnel ingest`) or pass a DataFrame"
                    )
                self.relation = f"read_parquet({quote_literal(path)})"
            elif isinstance(source, pd.DataFrame | pa.Table) or hasattr(source, "to_arrow"):
                data = source.to_arrow() if hasattr(source, "to_arrow") else source
                self.db.register("__funnel_src", data)
                self.relation = "__funnel_src"
            else:
                raise InputError(
                    f"cannot count a funnel over a {type(source).__name__}: give a Store, a "
                    "pandas or Polars DataFrame of events, or a Parquet file path"
                )
        described = self.db.rows(f"DESCRIBE SELECT * FROM {self.relation}")
        self.columns = {row[0]: row[1] for row in described}
        for needed in ("ts", "event"):
            if needed not in self.columns:
                raise InputError(
                    f"the events have no {needed!r} column; columns: {sorted(self.columns)}"
                )
        if "person_id" in self.columns:
            self.person = quote_ident("person_id")
        else:
            who = [quote_ident(c) for c in ("anonymous_id", "user_id") if c in self.columns]
            if not who:
                raise InputError(
                    "the events need a person_id, anonymous_id or user_id column to know who "
                    f"did each event; columns: {sorted(self.columns)}"
                )
            if len(who) > 1 and self._never_null("anonymous_id", source):
                who = who[:1]  # reading user_id too would only cost time
            self.person = f"coalesce({', '.join(who)})" if len(who) > 1 else who[0]

    @staticmethod
    def _never_null(column: str, source: Any) -> bool:
        """Whether ``column`` has no nulls, from Parquet statistics or Arrow null counts."""
        try:
            if isinstance(source, str | Path):
                import pyarrow.parquet as pq

                meta = pq.ParquetFile(str(source)).metadata
                idx = meta.schema.names.index(column)
                for g in range(meta.num_row_groups):
                    stats = meta.row_group(g).column(idx).statistics
                    if stats is None or not stats.has_null_count or stats.null_count:
                        return False
                return True
            if isinstance(source, pd.DataFrame):
                return not bool(source[column].isna().any())
            if isinstance(source, pa.Table):
                return source.column(column).null_count == 0
        except (ValueError, KeyError, OSError):
            return False
        return False

    # -- SQL ----------------------------------------------------------------------------
    def _value(self, key: str, params: list[Any], *, scalar_items: bool = True) -> str:
        """A SQL expression for a column, an item field or a ``properties`` key."""
        if key in self.columns and key not in ("items", "properties"):
            return quote_ident(key)
        if key in ITEM_FIELDS and "items" in self.columns:
            if scalar_items:
                return f"items[1].{key}"
            return f"list_transform(items, lambda x: x.{key})"
        if "properties" in self.columns:
            params.append(json_pointer(key))
            return "json_extract_string(properties, ?)"
        raise ConfigError(
            f"{key!r} is not a column of the events and they have no properties to look it up "
            f"in; use one of: {', '.join(sorted(self.columns))}"
        )

    def _condition(self, cond: StepCondition, params: list[Any]) -> str:
        parts = ["event = ?"]
        params.append(cond.event)
        for key, value in cond.where:
            values = list(value) if isinstance(value, list | tuple | set) else [value]
            if key in ITEM_FIELDS and key not in self.columns and "items" in self.columns:
                expr = self._value(key, params, scalar_items=False)
                parts.append(f"list_has_any({expr}, [{', '.join('?' * len(values))}])")
                params.extend(values)
                continue
            expr = self._value(key, params)
            if value is None:
                parts.append(f"{expr} IS NULL")
            else:
                parts.append(f"CAST({expr} AS VARCHAR) IN ({', '.join('?' * len(values))})")
                params.extend(str(v) for v in values)
        return "(" + " AND ".join(parts) + ")"

    def build_sql(self, plan: FunnelPlan) -> tuple[str, list[Any]]:
        """The one query: (owner, [unit,] t, code[, attr][, period]) sorted for the kernel."""
        coded, names, overlap, other = coded_conditions(plan)
        if plan.count_by == "session":
            require_sessions(self.columns)
            owner_col = quote_ident("session_id")
        else:
            owner_col = self.person
        params: list[Any] = []
        select = [f"hash({owner_col}) AS o", "epoch_us(ts) AS t"]
        if overlap:
            items = [f"CASE WHEN {self._condition(c, params)} THEN {k} END" for k, c in coded]
            select.append(f"list_filter([{', '.join(items)}], lambda x: x IS NOT NULL) AS l")
        else:
            whens = " ".join(f"WHEN {self._condition(c, params)} THEN {k}" for k, c in coded)
            select.append(f"CAST(CASE {whens} ELSE {other} END AS TINYINT) AS c")
        if plan.hold is not None:
            item_field = plan.hold in ITEM_FIELDS and plan.hold not in self.columns
            if item_field and "items" in self.columns:
                hold_expr = f"unnest({self._value(plan.hold, params, scalar_items=False)})"
            else:
                hold_expr = self._value(plan.hold, params)
            select.append(f"CAST({hold_expr} AS VARCHAR) AS hv")
        if plan.by is not None:
            # a fixed-width hash travels through the sort far cheaper than a string;
            # the few distinct hashes are mapped back to values after the pass
            by_params: list[Any] = []
            by_expr = f"CAST({self._value(plan.by, by_params)} AS VARCHAR)"
            params.extend(by_params * 2)
            select.append(f"CASE WHEN {by_expr} IS NULL THEN 0 ELSE hash({by_expr}) END AS a")
        if plan.trend:
            select.append(f"epoch_us(date_trunc('{plan.trend}', ts)) AS p")
        where = [f"{owner_col} IS NOT NULL", "ts IS NOT NULL"]
        if plan.order != "strict":
            distinct = list(dict.fromkeys(names))
            where.append(f"event IN ({', '.join('?' * len(distinct))})")
            params.extend(distinct)
        rows = f"SELECT {', '.join(select)} FROM {self.relation} WHERE {' AND '.join(where)}"
        keep = ["o", "t", *(["hv"] if plan.hold is not None else []), *(["a"] if plan.by is not None else []),
                *(["p"] if plan.trend else [])]
        if overlap:
            rows = (
                f"SELECT {', '.join(keep)}, CAST(unnest(CASE WHEN len(l) = 0 THEN [{other}] "
                f"ELSE l END) AS TINYINT) AS c FROM ({rows})"
            )
        outer_where = ["TRUE"]
        if plan.order != "strict":
            outer_where.append(f"c <> {other}")
        if plan.hold is not None:
            outer_where.append("hv IS NOT NULL")
        cols = ["o", *(["hash(o, hv) AS u"] if plan.hold is not None else []), "t", "c",
                *(["a"] if plan.by is not None else []), *(["p"] if plan.trend else [])]
        order = ["o", *(["u"] if plan.hold is not None else []), "t", "c"]
        sql = (
            f"SELECT {', '.join(cols)} FROM ({rows}) WHERE {' AND '.join(outer_where)} "
            f"ORDER BY {', '.join(order)}"
        )
        return sql, params

    # -- running ------------------------------------------------------------------------
    def timeline(self) -> Timeline:
        """The source's timeline (see :mod:`shopfunnel.store.timeline`): a store's is kept beside
        it and rebuilt after a load; another source's is built once per engine."""
        if self._store is not None and self._timeline is None:
            return timeline_of_store(self._store)
        if self._timeline is None:
            self._timeline = build_timeline(self.db, self.relation, self.person, self.columns,
                                            key="engine")
        return self._timeline

    def run(self, plan: FunnelPlan) -> EngineOutput:
        if self.use_timeline and timeline_fits(plan):
            tl = self.timeline()
            if timeline_fits(plan, tl):
                return self._run_timeline(plan, tl)
        sql, params = self.build_sql(plan)
        n = len(plan.steps)
        reader = self.db.connection.sql(sql, params=params).to_arrow_reader(self.batch_rows)
        labels: dict[int, int] = {}
        parts: list[tuple[np.ndarray, ...]] = []
        totals = np.zeros(n, dtype=np.int64)
        carry: pa.Table | None = None
        threads = default_threads()
        pool = ThreadPoolExecutor(max_workers=threads)

        def process(table: pa.Table, final: bool) -> pa.Table | None:
            if not final:
                # keep the last owner for the next batch: it may continue there
                o = _np(table.column("o"), np.uint64)
                cut = int(np.searchsorted(o, o[-1], side="left")) if len(o) else 0
                if cut == 0:
                    return table
                rest, table = table.slice(cut), table.slice(0, cut)
            else:
                rest = None
            if table.num_rows == 0:
                return rest
            part, tot = count_batch(table, plan, labels, pool=pool, threads=threads)
            totals[:] += tot
            parts.append(part)
            return rest

        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for batch in reader:  # DuckDB hands over small batches: gather ~batch_rows first
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= self.batch_rows:
                table = pa.Table.from_batches(pending).combine_chunks()
                if carry is not None and carry.num_rows:
                    table = pa.concat_tables([carry, table]).combine_chunks()
                carry = process(table, final=False)
                pending, pending_rows = [], 0
        tail = [carry] if carry is not None and carry.num_rows else []
        if pending:
            tail.append(pa.Table.from_batches(pending))
        if tail:
            process(pa.concat_tables(tail).combine_chunks(), final=True)
        pool.shutdown()
        return self._output(plan, parts, totals, self._label_values(plan, list(labels)))

    def _run_timeline(self, plan: FunnelPlan, tl: Timeline) -> EngineOutput:
        """The same pass over the timeline's rows of this plan (no SQL, no sort), in
        chunks of whole persons on every core: first each chunk's rows are selected,
        then each chunk's kernel writes into its slice of one set of result arrays (no
        concatenation of per-chunk results)."""
        threads = default_threads()
        size = min(TIMELINE_CHUNK_ROWS, -(-len(tl) // threads))

        def select(rows: tuple[int, int]) -> Units:
            o, t, c, idx = timeline_rows(plan, tl, *rows)
            attr = tl.read(f"dim_{plan.by}", *rows)[idx] if plan.by is not None else None
            period = period_starts(t, plan.trend) if plan.trend else None
            return prepare_units(plan, o, None, t, c, attr, period)

        with ThreadPoolExecutor(max_workers=threads) as pool:
            chunks = list(pool.map(select, timeline_chunks(tl, size)))
            starts = np.cumsum([0] + [ch.n_seg for ch in chunks])
            out = empty_results(plan, int(starts[-1]))
            owner = np.empty(int(starts[-1]), dtype=np.uint64)

            def run(i: int) -> np.ndarray:
                part = tuple(a[starts[i]:starts[i + 1]] for a in out)
                tot = run_prepared(plan, chunks[i], part)
                ch = chunks[i]
                owner[starts[i]:starts[i + 1]] = ch.o[ch.unit_starts[:-1][part[0]]]
                chunks[i] = None  # type: ignore[call-overload]  # free the rows
                return tot

            totals = np.sum(list(pool.map(run, range(len(chunks)))), axis=0,
                            dtype=np.int64) if chunks else np.zeros(len(plan.steps), np.int64)
        labels = tl.labels.get(plan.by, []) if plan.by is not None else []
        return self._output(plan, [entered(plan, owner, out)], totals, list(labels))

    def _output(self, plan: FunnelPlan, parts: list[tuple[np.ndarray, ...]],
                totals: np.ndarray, labels: list[str]) -> EngineOutput:
        n = len(plan.steps)
        if len(parts) == 1:
            arrays = list(parts.pop())
        elif parts:
            # one field at a time, dropping the pieces as we go: peak = results + one field
            pieces = [list(p) for p in parts]
            parts.clear()
            arrays = []
            for i in range(len(pieces[0])):
                arrays.append(np.concatenate([p[i] for p in pieces]))
                for p in pieces:
                    p[i] = None
        else:
            arrays = [np.zeros(0, np.uint64), np.zeros(0, np.int64)] + [
                np.zeros((0, n), np.int64)] * 3
        if len(arrays) == 5:
            no_codes = np.broadcast_to(np.int32(-1), (len(arrays[0]), n))
            arrays += [no_codes, no_codes]
        owner, period, reached, prev, anchor, sattr, aattr = arrays
        if plan.hold is not None:
            owner, period, reached, prev, anchor, sattr, aattr = _first_per_owner(
                owner, period, reached, prev, anchor, sattr, aattr)
        return EngineOutput(owner, period, reached, prev, anchor, sattr, aattr, totals,
                            labels, self._lookup(plan))

    def _label_values(self, plan: FunnelPlan, hashes: list[int]) -> list[str]:
        """The breakdown values behind their hashes, in code order."""
        if not hashes or plan.by is None:
            return []
        params: list[Any] = []
        expr = f"CAST({self._value(plan.by, params)} AS VARCHAR)"
        # codes are only read on step events, so only their values need a name
        names = list(dict.fromkeys(s.event for s in plan.steps))
        rows = self.db.rows(
            f"SELECT DISTINCT hash(v), v FROM (SELECT {expr} AS v FROM {self.relation} "
            f"WHERE event IN ({', '.join('?' * len(names))})) WHERE v IS NOT NULL",
            params + names)
        values = {int(h): v for h, v in rows}
        return [values.get(h, "?") for h in hashes]

    def _lookup(self, plan: FunnelPlan) -> Callable[[np.ndarray], pd.DataFrame]:
        """A function from owner hashes to their ids (person_id, and session_id by session)."""

        def lookup(hashes: np.ndarray) -> pd.DataFrame:
            wanted = pa.table({"h": pa.array(np.asarray(hashes, dtype=np.uint64))})
            self.db.register("__funnel_owners", wanted)
            try:
                if plan.count_by == "session":
                    sql = (
                        f"SELECT hash(session_id) AS h, session_id, any_value({self.person}) "
                        f"AS person_id FROM {self.relation} WHERE hash(session_id) IN "
                        "(SELECT h FROM __funnel_owners) GROUP BY session_id"
                    )
                else:
                    sql = (
                        f"SELECT DISTINCT hash({self.person}) AS h, {self.person} AS person_id "
                        f"FROM {self.relation} WHERE hash({self.person}) IN "
                        "(SELECT h FROM __funnel_owners)"
                    )
                return self.db.df(sql)
            finally:
                self.db.unregister("__funnel_owners")

        return lookup


def count_batch(table: pa.Table, plan: FunnelPlan, labels: dict[int, int], *,
                pool: ThreadPoolExecutor | None = None, threads: int = 1
                ) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Run the kernel over ``table``, whole units only, sorted for the kernel: columns
    ``o`` (owner hash)[, ``u`` (unit hash, with ``hold``)], ``t`` (µs), ``c`` (step code)
    [, ``a`` (breakdown value hash, 0 = none)][, ``p`` (trend period µs)].

    Returns the units that entered the funnel as ``(owner, period, reached, prev, anchor
    [, sattr, aattr])`` (the codes only with a breakdown; ``labels`` maps value hashes to
    codes and grows) and the per-step totals. Chunks of units run on ``pool`` when
    ``threads`` > 1. Every engine calls this, so the pass is the same everywhere.
    """
    return count_arrays(
        plan, _np(table.column("o"), np.uint64),
        _np(table.column("u"), np.uint64) if plan.hold is not None else None,
        _np(table.column("t"), np.int64), _np(table.column("c"), np.int8),
        _encode_hashes(_np(table.column("a"), np.uint64), labels) if plan.by is not None else None,
        _np(table.column("p"), np.int64) if plan.trend else None,
        pool=pool, threads=threads)


@dataclass
class Units:
    """Rows ready for the kernel: sorted by (owner[, unit], t, c), with the row where
    each unit starts and the output row (segment) where each unit's results go."""

    o: np.ndarray
    t: np.ndarray
    c: np.ndarray
    attr: np.ndarray
    period: np.ndarray
    unit_starts: np.ndarray
    seg_offsets: np.ndarray

    @property
    def n_seg(self) -> int:
        return int(self.seg_offsets[-1])


def prepare_units(plan: FunnelPlan, o: np.ndarray, u: np.ndarray | None, t: np.ndarray,
                  c: np.ndarray, attr: np.ndarray | None, period: np.ndarray | None) -> Units:
    """Unit boundaries and segment offsets (one segment per unit, or per unit and trend
    period of an attempt's start) for the arrays of :func:`count_arrays`."""
    n = len(plan.steps)
    mode = {"ordered": ORDERED, "strict": STRICT, "any": ANY}[plan.order]
    t = _readonly(t)
    c = _readonly(c)
    unit_starts = boundaries2(o, u) if u is not None else boundaries(o)
    if attr is None:
        attr = np.full(len(o), -1, dtype=np.int32)
    else:
        attr = np.ascontiguousarray(attr, dtype=np.int32)
    if period is not None:
        period = _readonly(period)
        seg_counts = count_segments(unit_starts, c, period, n, mode, plan.open_entry)
    else:
        period = _readonly(np.zeros(1, dtype=np.int64))
        seg_counts = np.ones(len(unit_starts) - 1, dtype=np.int64)
    seg_offsets = np.zeros(len(seg_counts) + 1, dtype=np.int64)
    np.cumsum(seg_counts, out=seg_offsets[1:])
    return Units(o, t, c, attr, period, unit_starts, seg_offsets)


def empty_results(plan: FunnelPlan, n_seg: int) -> tuple[np.ndarray, ...]:
    """Uninitialised (seg_unit, seg_period, reached, prev, anchor, sattr, aattr) for
    ``n_seg`` segments (:func:`run_prepared` fills every row; the codes have no rows
    without a breakdown)."""
    n = len(plan.steps)
    # the kernel writes no codes into empty arrays: only the ones the breakdown reads
    n_step = n_seg if plan.by is not None and plan.attribution != "first" else 0
    n_anchor = n_seg if plan.by is not None and plan.attribution == "first" else 0
    return (np.empty(n_seg, dtype=np.int64), np.zeros(n_seg, dtype=np.int64),
            np.empty((n_seg, n), dtype=np.int64), np.empty((n_seg, n), dtype=np.int64),
            np.empty((n_seg, n), dtype=np.int64), np.empty((n_step, n), dtype=np.int32),
            np.empty((n_anchor, n), dtype=np.int32))


def run_prepared(plan: FunnelPlan, units: Units, out: tuple[np.ndarray, ...], *,
                 pool: ThreadPoolExecutor | None = None, threads: int = 1) -> np.ndarray:
    """Run the kernel over ``units``, writing each segment into ``out`` (from
    :func:`empty_results`, ``units.n_seg`` rows; ``seg_unit`` is the unit's index in
    ``units``); returns the per-step totals."""
    n = len(plan.steps)
    mode = {"ordered": ORDERED, "strict": STRICT, "any": ANY}[plan.order]
    optional = np.array(plan.optional or (False,) * n, dtype=np.bool_)
    excl_from = np.array([a - 1 for _, a, _ in plan.exclusions] or [0], dtype=np.int64)
    excl_to = np.array([b - 1 for _, _, b in plan.exclusions] or [0], dtype=np.int64)
    seg_unit, seg_period, reached, prev, anchor, sattr, aattr = out
    n_units = len(units.unit_starts) - 1
    n_chunks = max(1, min(n_units, threads if pool is not None else 1))
    tot = np.zeros((n_chunks, n), dtype=np.int64)

    def chunk(ci: int) -> None:
        run_units(units.unit_starts, units.seg_offsets, units.t, units.c, units.attr,
                  units.period, n, plan.window_us, mode, optional, plan.open_entry,
                  excl_from, excl_to, bool(plan.trend),
                  ci * n_units // n_chunks, (ci + 1) * n_units // n_chunks, ci,
                  seg_unit, seg_period, reached, prev, anchor, sattr, aattr, tot)

    if n_chunks == 1 or pool is None:
        chunk(0)
    else:
        list(pool.map(chunk, range(n_chunks)))
    return tot.sum(axis=0)


def entered(plan: FunnelPlan, owner: np.ndarray, out: tuple[np.ndarray, ...]
            ) -> tuple[np.ndarray, ...]:
    """``(owner, period, reached, prev, anchor[, sattr, aattr])`` of the segments that
    entered the funnel (the codes only with a breakdown); no copy when all entered."""
    _, seg_period, reached, prev, anchor, sattr, aattr = out
    keep = reached[:, 0] != NONE if not plan.open_entry and plan.order != "any" else (
        (reached != NONE).any(axis=1))
    if keep.all():  # every unit entered (the timeline leaves out those who cannot)
        keep = slice(None)
    if plan.by is not None:
        kept = reached[keep]

        def codes(m: np.ndarray) -> np.ndarray:  # one the attribution does not read: -1
            return m[keep] if m.shape[0] else np.broadcast_to(np.int32(-1), kept.shape)

        return (owner[keep], seg_period[keep], kept, prev[keep], anchor[keep],
                codes(sattr), codes(aattr))
    # no breakdown: don't hold codes that are all -1 (memory at 100M)
    return owner[keep], seg_period[keep], reached[keep], prev[keep], anchor[keep]


def count_arrays(plan: FunnelPlan, o: np.ndarray, u: np.ndarray | None, t: np.ndarray,
                 c: np.ndarray, attr: np.ndarray | None, period: np.ndarray | None, *,
                 pool: ThreadPoolExecutor | None = None, threads: int = 1
                 ) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """:func:`count_batch` over arrays: owner hashes ``o`` (and unit hashes ``u`` with
    ``hold``), µs ``t``, step codes ``c``, int32 breakdown codes ``attr`` (-1 = none)
    and trend period starts ``period``, sorted by (owner[, unit], t, c)."""
    units = prepare_units(plan, o, u, t, c, attr, period)
    out = empty_results(plan, units.n_seg)
    totals = run_prepared(plan, units, out, pool=pool, threads=threads)
    owner = units.o[units.unit_starts[:-1][out[0]]]
    return entered(plan, owner, out), totals


def _np(column: pa.ChunkedArray, dtype: Any) -> np.ndarray:
    if column.num_chunks == 1:
        arr = column.chunk(0).to_numpy(zero_copy_only=False)
    else:
        arr = column.to_numpy()
    return arr.astype(dtype, copy=False)


def _readonly(arr: np.ndarray) -> np.ndarray:
    """The kernels are compiled once for read-only inputs (what Arrow hands over)."""
    arr = np.ascontiguousarray(arr)
    arr.flags.writeable = False
    return arr


def _encode_hashes(hashes: np.ndarray, labels: dict[int, int]) -> np.ndarray:
    """Global int32 codes for value hashes, growing ``labels`` (hash 0 = no value → -1)."""
    codes, uniques = pd.factorize(hashes)
    remap = np.array([-1 if int(u) == 0 else labels.setdefault(int(u), len(labels))
                      for u in uniques] or [0], dtype=np.int32)
    return remap[codes]


def _encode(column: pa.ChunkedArray, labels: dict[str, int]) -> np.ndarray:
    """Global int32 codes for a string column, growing ``labels`` (null → -1)."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    remap = np.array(
        [labels.setdefault(v, len(labels)) for v in encoded.dictionary.to_pylist()] or [0],
        dtype=np.int32,
    )
    idx = encoded.indices.to_numpy(zero_copy_only=False)
    if encoded.indices.null_count:
        valid = ~np.asarray(encoded.indices.is_null().to_numpy(zero_copy_only=False))
        out = np.full(len(idx), -1, dtype=np.int32)
        out[valid] = remap[idx[valid].astype(np.int64)]
        return out
    return remap[idx.astype(np.int64)]


def _first_per_owner(owner: np.ndarray, period: np.ndarray, *mats: np.ndarray
                     ) -> tuple[np.ndarray, ...]:
    """Collapse several units of one owner (held values) into one row per (owner, period):
    per step, the unit that reached it first."""
    if len(owner) == 0:
        return (owner, period, *mats)
    reached = mats[0]
    keys = pd.DataFrame({"o": owner, "p": period})
    group = keys.groupby(["o", "p"], sort=False).ngroup().to_numpy()
    n_groups = int(group.max()) + 1
    first_rows = pd.Series(np.arange(len(owner))).groupby(group).first().to_numpy()
    outs = [m[first_rows].copy() for m in mats]
    for k in range(reached.shape[1]):
        r = reached[:, k]
        masked = np.where(r == NONE, np.iinfo(np.int64).max, r)
        order = np.lexsort((masked, group))
        first = np.full(n_groups, -1, dtype=np.int64)
        seen_group = group[order]
        starts = np.r_[True, seen_group[1:] != seen_group[:-1]]
        first[seen_group[starts]] = order[starts]
        for out, m in zip(outs, mats, strict=True):
            out[:, k] = m[first, k]
    return (owner[first_rows], period[first_rows], *outs)


def default_threads() -> int:
    """Kernel threads: one per core."""
    return os.cpu_count() or 1


__all__: Sequence[str] = ["EngineOutput", "FunnelEngine", "FunnelPlan", "LocalEngine",
                          "StepCondition", "count_batch"]
