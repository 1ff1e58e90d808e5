"""Who was exposed to which variant, read from the store's ``experiment_exposure`` events.

A **unit** of an experiment is a person (``person_id``, after identity stitching) with at
least one exposure to it. Their **exposure time** is their first exposure and their
**variant** the one they saw then. A person exposed to more than one variant (two devices
before they logged in, a bug) cannot be attributed to either: they are left out of every
metric and counted as ``multiple_exposures`` (GrowthBook does the same).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from shopfunnel.store.db import json_pointer, quote_ident
from shopfunnel.store.schema import EXPOSURE_EVENT

if TYPE_CHECKING:
    import pandas as pd

    from shopfunnel.store.store import Store

_EXPERIMENT = "json_extract_string(properties, ?)"

# The units of one experiment: person_id, variant, exposed_at (a CTE named ``units``).
UNITS_SQL = f"""
exposed AS (
    SELECT person_id, min(ts) AS exposed_at,
           arg_min({_EXPERIMENT}, ts) AS variant,
           count(DISTINCT {_EXPERIMENT}) AS variants
    FROM events
    WHERE event = ? AND {_EXPERIMENT} = ?
    GROUP BY person_id
),
units AS (SELECT person_id, variant, exposed_at FROM exposed WHERE variants = 1)
"""


def units_params(experiment: str) -> list[object]:
    """The parameters of :data:`UNITS_SQL`, in order."""
    variant, key = json_pointer("variant"), json_pointer("experiment")
    return [variant, variant, EXPOSURE_EVENT, key, experiment]


def list_experiments(store: Store) -> pd.DataFrame:
    """Every experiment with exposures in the store: ``experiment``, ``variants`` (sorted,
    comma-separated), ``persons`` exposed, ``first_exposure``, ``last_exposure``; newest
    first. Exposures without an ``experiment`` property are not listed."""
    key, variant = json_pointer("experiment"), json_pointer("variant")
    return store.db.df(
        f"""
        SELECT {_EXPERIMENT} AS experiment,
               string_agg(DISTINCT {_EXPERIMENT}, ',' ORDER BY {_EXPERIMENT}) AS variants,
               count(DISTINCT person_id) AS persons,
               min(ts) AS first_exposure, max(ts) AS last_exposure
        FROM events
        WHERE event = ? AND {_EXPERIMENT} IS NOT NULL
        GROUP BY 1 ORDER BY last_exposure DESC, experiment
        """,
        [key, variant, variant, EXPOSURE_EVENT, key],
    )


def exposure_counts(store: Store, experiment: str) -> tuple[pd.DataFrame, int]:
    """Persons per variant of ``experiment`` (``variant``, ``persons``, ``first_exposure``,
    ``last_exposure``, sorted by variant) and the number of persons left out for being
    exposed to more than one variant."""
    params = units_params(experiment)
    frame = store.db.df(
        f"""WITH {UNITS_SQL}
        SELECT variant, count(*) AS persons, min(exposed_at) AS first_exposure,
               max(exposed_at) AS last_exposure
        FROM units GROUP BY variant ORDER BY variant""",
        params,
    )
    multiple = store.db.scalar(
        f"WITH {UNITS_SQL} SELECT count(*) FROM exposed WHERE variants > 1", params
    )
    return frame, int(multiple or 0)


@contextmanager
def units_view(store: Store, units: Any) -> Iterator[str]:
    """Register ``units`` (an Arrow table or DataFrame with person_id, variant, exposed_at)
    for the duration of the block; yields the ``units`` CTE that reads it. Metrics computed
    one after another then share one computation of the units."""
    name = f"_units_{uuid.uuid4().hex}"
    store.db.register(name, units)
    try:
        yield f"units AS (SELECT person_id, variant, exposed_at FROM {quote_ident(name)})"
    finally:
        store.db.unregister(name)


def experiment_units(store: Store, experiment: str) -> Any:
    """The units of ``experiment`` as an Arrow table (person_id, variant, exposed_at)."""
    return store.db.arrow(
        f"WITH {UNITS_SQL} SELECT person_id, variant, exposed_at FROM units",
        units_params(experiment),
    )


def person_exposures(store: Store, person_id: str, *, source: str = "events") -> pd.DataFrame:
    """The experiments one person was exposed to: ``experiment``, ``variant`` (the variant
    of their first exposure: their variant as a unit), ``variants`` (every variant they saw,
    sorted, comma-separated), ``exposures`` (events), ``first_exposure``, ``last_exposure``
    and ``counted`` (False when they saw more than one variant and are left out of every
    metric, as in the module docstring); newest first."""
    key, variant = json_pointer("experiment"), json_pointer("variant")
    return store.db.df(
        f"""
        SELECT {_EXPERIMENT} AS experiment, arg_min({_EXPERIMENT}, (ts, event_id)) AS variant,
               string_agg(DISTINCT {_EXPERIMENT}, ',' ORDER BY {_EXPERIMENT}) AS variants,
               count(*) AS exposures, min(ts) AS first_exposure, max(ts) AS last_exposure,
               count(DISTINCT {_EXPERIMENT}) <= 1 AS counted
        FROM {quote_ident(source)}
        WHERE person_id = ? AND event = ? AND {_EXPERIMENT} IS NOT NULL
        GROUP BY 1 ORDER BY first_exposure DESC, experiment
        """,
        [key, variant, variant, variant, variant, person_id, EXPOSURE_EVENT, key],
    )
