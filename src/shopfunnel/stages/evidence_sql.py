"""The per-person facts by SQL over the events: the reference the timeline pass
(:mod:`shopfunnel.stages.evidence`) is tested against, and the path taken when the timeline
cannot serve. Spark computes the same two row sets
(:meth:`shopfunnel.store.spark.SparkEvents.person_frame`) and places everyone where they are
(:mod:`shopfunnel.stages.spark_placement`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from shopfunnel.model import Model
from shopfunnel.stages.person_facts import NEVER, PersonFacts, arrow_text, gap_us, micros
from shopfunnel.store.db import quote_ident
from shopfunnel.store.store import Store


def from_sql(
    store: Store, model: Model, start: datetime, end: datetime, visit_gap_s: float
) -> PersonFacts:
    """The facts of one period by SQL over the events (see the module docstring)."""
    return facts_from_rows(
        model, _person_rows(store, model, start, end), _visit_rows(store, start, end, visit_gap_s)
    )


def facts_from_rows(model: Model, base: pd.DataFrame, visits: pd.DataFrame) -> PersonFacts:
    """:class:`PersonFacts` from the rows of :func:`_person_rows` (sorted by person_id) and
    :func:`_visit_rows`."""
    n_stages = len(model.stages)
    stage_first = np.full((len(base), n_stages), NEVER, dtype=np.int64)
    for k in range(n_stages):
        if f"s{k}" in base:
            stage_first[:, k] = micros(base[f"s{k}"])
    rows = pd.Index(base["person_id"]).get_indexer(visits["person_id"])
    keep = rows >= 0
    rows, starts = rows[keep].astype(np.int64), micros(visits["ts"])[keep]
    gaps = visits["gap_us"].to_numpy(dtype=np.int64)[keep]
    order = np.lexsort((starts, rows))
    channel = pc.dictionary_encode(arrow_text(base["first_channel"]))
    return PersonFacts(
        ids=arrow_text(base["person_id"]),
        id_rank=np.arange(len(base), dtype=np.int64),  # ORDER BY person_id
        first_us=micros(base["first_ts"]),
        last_us=micros(base["last_event_at"]),
        stage_first=stage_first,
        channel_code=channel.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32),
        channel_labels=channel.dictionary,
        visit_rows=rows[order],
        visit_starts=starts[order],
        visit_gaps=gaps[order],
    )


def _person_rows(store: Store, model: Model, start: datetime, end: datetime) -> pd.DataFrame:
    """One row per person with an event in the period, in one scan: first and last event in
    the period, first-touch channel (all events up to ``end``), and ``s{k}``: the first event
    of stage k in the period, for each stage that has events."""
    mapping = model.event_stage()
    params: list[Any] = []
    if mapping:
        stage_map = (
            "SELECT * FROM (VALUES " + ", ".join(["(?, ?)"] * len(mapping)) + ") m(event, stage)"
        )
        params += [v for pair in mapping.items() for v in pair]
    else:
        stage_map = (
            "SELECT CAST(NULL AS VARCHAR) AS event, CAST(NULL AS INTEGER) AS stage WHERE false"
        )
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
        [start, end, gap_us(visit_gap_s)],
    )
