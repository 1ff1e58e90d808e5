"""The local engine: DuckDB and the sorted timeline feeding the shared counting pass.

The plan and the answer are in :mod:`shopfunnel.funnel.plan`; the pass every engine runs
(kernel over sorted rows) is :mod:`shopfunnel.funnel.passes`. This module holds the two ways
the local engine gets the rows there.

**SQL.** :class:`LocalEngine` lets DuckDB read and filter the events (only rows that match a
step or an exclusion; every row of the person in strict mode), encode each row's step as a
small integer, hash the person and sort by (person, time, step). It streams the sorted rows as
Arrow batches and runs :func:`shopfunnel.funnel.passes.count_batch` on each batch, carrying
the last, possibly incomplete, person over to the next batch, so memory is bounded by DuckDB's
sort (which spills to disk) plus one batch. Persons are identified by DuckDB's 64-bit
``hash`` of the id: two persons collide with probability about ``persons² / 2⁶⁵`` (below one
in a million at ten million persons).

**Timeline.** Over a store, most funnels skip the SQL: the store's
:mod:`shopfunnel.store.timeline` holds the events already sorted by (person, time) as integer
arrays, and a compiled pass picks the plan's rows from it (ADR 0021; the path is
:mod:`shopfunnel.funnel.timeline_path`). Both paths end in
:func:`shopfunnel.funnel.passes.count_arrays`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from shopfunnel.errors import ConfigError, InputError
from shopfunnel.frames import is_pandas_frame
from shopfunnel.funnel.passes import (
    _np,
    count_batch,
    default_threads,
    first_per_owner,
)
from shopfunnel.funnel.plan import (
    EngineOutput,
    FunnelEngine,
    FunnelPlan,
    StepCondition,
    coded_conditions,
    require_sessions,
)
from shopfunnel.funnel.timeline_path import count_timeline, timeline_fits
from shopfunnel.store import schema
from shopfunnel.store.db import Database, json_pointer, quote_ident, quote_literal
from shopfunnel.store.timeline import Timeline
from shopfunnel.store.timeline import build as build_timeline
from shopfunnel.store.timeline import of_store as timeline_of_store

if TYPE_CHECKING:
    import pandas as pd

ITEM_FIELDS = schema.ITEM_FIELDS
BATCH_ROWS = 4_000_000


class LocalEngine:
    """DuckDB reads, filters, encodes and sorts; the numba kernel walks each person.

    ``timeline``: None (default) uses the timeline for a store and SQL for other sources;
    True builds a timeline of any source on the first funnel and keeps it in this engine
    (worth it when one engine counts many funnels); False always uses SQL; a
    :class:`~shopfunnel.store.timeline.Timeline` is used as given. Plans a timeline cannot hold
    (property filters, ``hold``, a breakdown by another column) run by SQL either way.
    """

    def __init__(
        self,
        source: Any,
        *,
        batch_rows: int = BATCH_ROWS,
        memory_limit: str | None = None,
        timeline: bool | Timeline | None = None,
    ):
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
            elif (
                is_pandas_frame(source)
                or isinstance(source, pa.Table)
                or hasattr(source, "to_arrow")
            ):
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
            if is_pandas_frame(source):
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
        keep = [
            "o",
            "t",
            *(["hv"] if plan.hold is not None else []),
            *(["a"] if plan.by is not None else []),
            *(["p"] if plan.trend else []),
        ]
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
        cols = [
            "o",
            *(["hash(o, hv) AS u"] if plan.hold is not None else []),
            "t",
            "c",
            *(["a"] if plan.by is not None else []),
            *(["p"] if plan.trend else []),
        ]
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
            return timeline_of_store(self._store, pieces=True)
        if self._timeline is None:
            self._timeline = build_timeline(
                self.db, self.relation, self.person, self.columns, key="engine"
            )
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
        """The same pass over the timeline's rows of this plan (:func:`count_timeline`)."""
        return self._output(plan, *count_timeline(plan, tl))

    def _output(
        self,
        plan: FunnelPlan,
        parts: list[tuple[np.ndarray, ...]],
        totals: np.ndarray,
        labels: list[str],
    ) -> EngineOutput:
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
                    p[i] = None  # type: ignore[call-overload]  # free the piece
        else:
            arrays = [np.zeros(0, np.uint64), np.zeros(0, np.int64)] + [
                np.zeros((0, n), np.int64)
            ] * 3
        if len(arrays) == 5:
            no_codes = np.broadcast_to(np.int32(-1), (len(arrays[0]), n))
            arrays += [no_codes, no_codes]
        owner, period, reached, prev, anchor, sattr, aattr = arrays
        if plan.hold is not None:
            owner, period, reached, prev, anchor, sattr, aattr = first_per_owner(
                owner, period, reached, prev, anchor, sattr, aattr
            )
        return EngineOutput(
            owner, period, reached, prev, anchor, sattr, aattr, totals, labels, self._lookup(plan)
        )

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
            params + names,
        )
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


__all__: Sequence[str] = [
    "EngineOutput",
    "FunnelEngine",
    "FunnelPlan",
    "LocalEngine",
    "StepCondition",
    "count_batch",
    "timeline_fits",
]
