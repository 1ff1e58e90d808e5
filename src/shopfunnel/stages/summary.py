"""What placements add up to: persons per stage and status at one date
(:func:`stage_summary`), and how persons moved between two dates (:func:`stage_transitions`,
one row per person; :func:`stage_flow`, the matrix of counts).

Every count reads :class:`~shopfunnel.stages.placement.StagePlacement` (one placement per
date, :mod:`shopfunnel.stages.placement` defines stage and status); two placements of one
store are matched by the rank of each person id, without a table of ids in pandas.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shopfunnel._time import point_in_time
from shopfunnel.errors import ConfigError
from shopfunnel.model import Model, load_model
from shopfunnel.stages.person_facts import text_series
from shopfunnel.stages.placement import (
    PlacedCodes,
    StagePlacement,
    placement,
    placements,
)
from shopfunnel.stages.status import GONE, LAPSED, STATUSES
from shopfunnel.store.store import Store

NOT_SEEN = "not seen"


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
    n_stages = len(model.stages)
    counts = _stage_status_counts(placed, n_stages)
    at = counts.sum(axis=1)
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
    placed: tuple[StagePlacement, StagePlacement] | None = None,
) -> pd.DataFrame:
    """Each person's state at ``start`` and at ``end``: columns ``person_id``, ``from``, ``to``.

    A state is the person's stage, or ``lapsed`` for a customer whose status is lapsed or
    gone, or
    ``not seen`` when they have no event in the lookback period before that date (new
    persons at ``start``; persons whose every event has fallen out of the period at
    ``end``). Both dates are placed with :func:`placement`, so each uses the thresholds
    the data held at that date. Persons not seen at either date are left out. Pass
    ``placed`` (the placements at ``start`` and ``end``) to reuse them.
    """
    model, at_start, at_end = _at_both(store, start, end, model, lookback, placed)
    ids, a, b = _transition_codes(at_start, at_end)
    states = pa.array([NOT_SEEN, *model.stage_names, LAPSED], pa.string())
    order = pc.sort_indices(ids).to_numpy()  # by person_id (bytewise, as DuckDB and Python)
    return pd.DataFrame(
        {
            "person_id": text_series(ids.take(pa.array(order))),
            "from": states.take(pa.array(a[order])).to_pandas(),
            "to": states.take(pa.array(b[order])).to_pandas(),
        }
    )


def stage_flow(
    store: Store,
    start: datetime | date | str,
    end: datetime | date | str,
    *,
    model: Model | None = None,
    lookback: str | float | None = None,
    placed: tuple[StagePlacement, StagePlacement] | None = None,
) -> pd.DataFrame:
    """A transition matrix: persons by state at ``start`` (rows) and at ``end`` (columns).

    States are ``not seen``, the stages in order, then ``lapsed`` (see
    :func:`stage_transitions`); every state appears as a row and as a column, so the
    matrix is square. The index is named ``from`` and the columns ``to``. The cell
    (Interest, Decision) counts persons at Interest at ``start`` and at Decision at ``end``;
    the column ``lapsed`` shows who fell back to lapsed. Pass ``placed`` (the placements at
    ``start`` and ``end``, e.g. from :func:`placements`) to reuse them.
    """
    model, at_start, at_end = _at_both(store, start, end, model, lookback, placed)
    states = [NOT_SEEN, *model.stage_names, LAPSED]
    width = len(states)
    if at_start.frame is not None and at_end.frame is not None:  # placed on Spark
        from shopfunnel.stages.spark_placement import flow_counts

        counts = flow_counts(at_start, at_end, len(model.stages))
    else:
        _, a, b = _transition_codes(at_start, at_end)
        counts = np.bincount(a * width + b, minlength=width * width).reshape(width, width)
    matrix = pd.DataFrame(
        counts.astype(np.int64),
        index=pd.Index(states, name="from"),
        columns=pd.Index(states, name="to"),
    )
    return matrix


def _at_both(
    store: Store,
    start: datetime | date | str,
    end: datetime | date | str,
    model: Model | None,
    lookback: str | float | None,
    placed: tuple[StagePlacement, StagePlacement] | None,
) -> tuple[Model, StagePlacement, StagePlacement]:
    """The model and the placements at ``start`` and ``end`` (``placed``, or one pass)."""
    model = placed[1].model if placed is not None else model or load_model()
    t0, t1 = point_in_time(start, "start"), point_in_time(end, "end")
    if t1 <= t0:
        raise ConfigError(f"the end ({t1}) must be after the start ({t0}): swap --from and --to")
    at_start, at_end = (
        placed
        if placed is not None
        else placements(store, [t0, t1], model=model, lookback=lookback)
    )
    return model, at_start, at_end


def _stage_status_counts(placed: StagePlacement, n_stages: int) -> np.ndarray:
    """Persons by stage (rows) and status (columns, in STATUSES' order): from the codes
    when the placement has them, from its tally when placed on Spark, else from its
    persons table."""
    if placed.codes is not None:
        stage_index = placed.codes.stage_index.astype(np.int64)
        code = placed.codes.status.astype(np.int64)
        weight = None
    elif placed.tally is not None:
        stage_index = placed.tally["stage_index"].to_numpy(dtype=np.int64)
        code = _status_codes(placed.tally["status"])
        weight = placed.tally["persons"].to_numpy(dtype=np.int64)
    else:
        p = placed.persons
        stage_index = p["stage_index"].to_numpy(dtype=np.int64)
        code = _status_codes(p["status"])
        weight = None
    cells = stage_index * len(STATUSES) + code
    counts = np.bincount(cells, weights=weight, minlength=n_stages * len(STATUSES))
    return counts.astype(np.int64).reshape(n_stages, -1)


def _status_codes(status: pd.Series) -> np.ndarray:
    """Status labels as positions in STATUSES."""
    labels = status.to_numpy(dtype=object)
    return np.select([labels == s for s in STATUSES], list(range(len(STATUSES))), 0).astype(
        np.int64
    )


def _transition_codes(
    a: StagePlacement, b: StagePlacement
) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Every person placed at either date (ids, in no particular order) and their state at
    each as a position in ``[not seen, *stages, lapsed]``. Two placements over the same ids
    (the timeline's person index) are matched by rank; others by id through Arrow's hash
    table (no index of a million strings in pandas)."""
    ca, cb = a.codes, b.codes
    if ca is not None and cb is not None and ca.ids is cb.ids:
        n = len(ca.ids)
        from_state = np.zeros(n, dtype=np.int64)  # 0: not seen
        to_state = np.zeros(n, dtype=np.int64)
        from_state[ca.id_rank] = _coded_states(ca, len(a.model.stages))
        to_state[cb.id_rank] = _coded_states(cb, len(b.model.stages))
        either = np.flatnonzero((from_state > 0) | (to_state > 0))
        return (ca.ids.take(pa.array(either)), from_state[either], to_state[either])
    ids_a, ids_b = _arrow_ids(a.persons), _arrow_ids(b.persons)
    coded = pc.dictionary_encode(pa.concat_arrays([ids_a, ids_b]))
    codes = coded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    n = len(coded.dictionary)
    from_state = np.zeros(n, dtype=np.int64)  # 0: not seen
    to_state = np.zeros(n, dtype=np.int64)
    from_state[codes[: len(ids_a)]] = _state_codes(a.persons, len(a.model.stages))
    to_state[codes[len(ids_a) :]] = _state_codes(b.persons, len(b.model.stages))
    return coded.dictionary, from_state, to_state


def _coded_states(c: PlacedCodes, n_stages: int) -> np.ndarray:
    """:func:`_state_codes` from the codes."""
    slipped = c.customer & (
        (c.status == STATUSES.index(LAPSED)) | (c.status == STATUSES.index(GONE))
    )
    return np.where(slipped, n_stages + 1, c.stage_index.astype(np.int64) + 1)


def _state_codes(p: pd.DataFrame, n_stages: int) -> np.ndarray:
    """The flow state as a position: 1 + the stage, or ``n_stages + 1`` (lapsed) for a
    customer who is lapsed or gone."""
    slipped = (p["status"].isin([LAPSED, GONE]) & (p["orders"] > 0)).to_numpy(dtype=bool)
    return np.where(slipped, n_stages + 1, p["stage_index"].to_numpy(dtype=np.int64) + 1)


def _arrow_ids(p: pd.DataFrame) -> pa.Array:
    ids = p["person_id"]
    if len(ids) == 0:
        return pa.array([], pa.string())
    return pa.array(
        ids.to_numpy(dtype=object, na_value=None) if ids.dtype == object else ids, pa.string()
    )
