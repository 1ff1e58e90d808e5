"""One period's per-person facts (:class:`PersonFacts`) and the conversions both of their
paths share: the timeline pass (:mod:`shopfunnel.stages.evidence`) and the SQL reference
(:mod:`shopfunnel.stages.evidence_sql`) build the same :class:`PersonFacts`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shopfunnel.stages.status import NEVER  # µs: no such event

_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class PersonFacts:
    """One period's facts, one row per person with an event in it (rows in no particular
    order). Times in µs since 1970; ``NEVER`` where there is none. Visits are sorted by row,
    then time. Text is kept as positions into small or shared arrays, and taken once, in
    the order the caller wants (:meth:`in_order`)."""

    ids: pa.Array  # person ids, sorted (every id of the store, or the period's)
    id_rank: np.ndarray  # each row's position in ``ids``: sorting by it sorts by person_id
    first_us: np.ndarray  # first event in the period
    last_us: np.ndarray  # last event in the period
    stage_first: np.ndarray  # persons × stages: first event of the stage in the period
    channel_code: np.ndarray  # first-touch channel up to the period's end (-1: none) ...
    channel_labels: pa.Array  # ... as a position in these labels
    visit_rows: np.ndarray  # per visit that starts with a return: the person's row here
    visit_starts: np.ndarray  # its first event (µs)
    visit_gaps: np.ndarray  # the gap since the person's previous event in the period (µs)
    hashes: np.ndarray | None = None  # hash(person_id) of each row, ascending (timeline path)

    def __len__(self) -> int:
        return len(self.first_us)

    def rows_of(self, person_ids: pd.Series, person_hashes: np.ndarray) -> np.ndarray:
        """The row of each person (-1 when not here), from their ids and hashes: by hash on
        the timeline path (no string is compared), by id on the SQL path."""
        if self.hashes is not None:
            if len(self.hashes) == 0:
                return np.full(len(person_hashes), -1, dtype=np.int64)
            at = np.minimum(np.searchsorted(self.hashes, person_hashes), len(self.hashes) - 1)
            return np.where(self.hashes[at] == person_hashes, at, -1).astype(np.int64)
        if len(person_ids) == 0 or len(self.ids) == 0:
            return np.full(len(person_ids), -1, dtype=np.int64)
        # the SQL path's rows are its ids, in order
        found = pc.index_in(arrow_text(person_ids), value_set=self.ids)
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)

    def in_order(self, order: np.ndarray, column: str) -> pd.Series:
        """A text column (``person_id`` or ``first_channel``) of the rows in ``order``, typed
        as DuckDB hands ``VARCHAR`` to pandas (``str``; ``object`` when no value is present)."""
        if column == "person_id":
            return text_series(self.ids.take(pa.array(self.id_rank[order], pa.int64())))
        codes = self.channel_code[order]
        return text_series(self.channel_labels.take(pa.array(codes, mask=codes < 0)))


def text_series(values: pa.Array) -> pd.Series:
    """An Arrow text column typed as DuckDB hands a ``VARCHAR`` column to pandas: ``str``,
    or ``object`` when no value is present."""
    if values.null_count == len(values):
        return pd.Series([None] * len(values), dtype=object)
    return values.to_pandas()


def arrow_text(values: pd.Series) -> pa.Array:
    """A pandas text column as an Arrow ``string`` array (missing values as nulls)."""
    if values.dtype == object:
        return pa.array(values.to_numpy(dtype=object, na_value=None), type=pa.string())
    return pa.array(values, type=pa.string())


def micros(values: pd.Series) -> np.ndarray:
    """Microseconds since the epoch; a missing time becomes ``NEVER``."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    stamps = pd.to_datetime(values).to_numpy().astype("datetime64[us]")
    out = stamps.astype(np.int64)
    out[np.isnat(stamps)] = NEVER
    return out


def epoch_us(value: datetime) -> int:
    """A naive UTC datetime as µs since 1970 (exact: no float on the way)."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def gap_us(visit_gap_s: float) -> int:
    """A visit gap in seconds as whole microseconds."""
    return int(round(visit_gap_s * 1_000_000))
