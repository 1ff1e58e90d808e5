"""Holdouts: a fixed share of an audience never receives the message (a flow, an offer),
so the message's lift can be read against the persons it did not reach.

Who is held out is decided by :func:`~shopfunnel.experiments.assignment.in_holdout`
(GrowthBook's hash of ``"holdout:" + key`` and the person id): sticky, the same in every
process, nested as the share grows. Audiences, flows and offers call it before sending.
:func:`holdout_lift` reads the lift afterwards: the persons who were messaged (treatment)
against those held out (control), on any experiment metric counted from when each person
entered the audience.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from shopfunnel.errors import ConfigError
from shopfunnel.experiments import metrics as mx
from shopfunnel.experiments.assignment import in_holdout
from shopfunnel.experiments.compare import Engine, Result, compare_arms, refused
from shopfunnel.experiments.difference import DEFAULT_MIN_UNITS, Difference
from shopfunnel.experiments.exposures import units_view
from shopfunnel.experiments.srm import SrmResult, srm_check

if TYPE_CHECKING:
    import pandas as pd

    from shopfunnel.store.store import Store

HELD_OUT, MESSAGED = "held_out", "messaged"


@dataclass(frozen=True)
class HoldoutLift:
    """The messaged persons against the held-out ones on ``metric``: ``held_out`` and
    ``messaged`` count the persons, ``srm`` checks the split against ``share``, ``result``
    is the comparison (treatment = messaged; its ``error`` says when there is none)."""

    key: str
    share: float
    metric: str
    held_out: int
    messaged: int
    srm: SrmResult
    result: Result


def split_audience(key: str, persons: pd.DataFrame, share: float) -> pd.DataFrame:
    """``persons`` (``person_id``, ``entered_at``) with a ``variant`` column: ``held_out``
    where :func:`in_holdout` says so, else ``messaged``."""
    missing = {"person_id", "entered_at"} - set(persons.columns)
    if missing:
        raise ConfigError(
            f"the audience needs columns person_id and entered_at (when each "
            f"person entered it); missing: {sorted(missing)}"
        )
    out = persons[["person_id", "entered_at"]].copy()
    out["person_id"] = out["person_id"].astype(str)
    out["variant"] = [HELD_OUT if in_holdout(key, p, share) else MESSAGED for p in out["person_id"]]
    return out


def holdout_lift(
    store: Store,
    key: str,
    share: float,
    persons: pd.DataFrame,
    metric: mx.Metric,
    *,
    window: str | float | None = "7d",
    engine: Engine = "frequentist",
    difference: Difference = "relative",
    confidence: float = 0.95,
    min_units: int = DEFAULT_MIN_UNITS,
    since: datetime | None = None,
) -> HoldoutLift:
    """The lift of a message over its holdout on ``metric``, counted within ``window`` of
    each person's ``entered_at`` (``persons`` has ``person_id`` and ``entered_at``; give
    ``since`` instead of ``entered_at`` when everyone entered at once)."""
    import pandas as pd

    frame = persons.copy()
    if since is not None:
        frame["entered_at"] = pd.Timestamp(since)
    audience = split_audience(key, frame, share)
    units = pd.DataFrame(
        {
            "person_id": audience["person_id"],
            "variant": audience["variant"],
            "exposed_at": pd.to_datetime(audience["entered_at"], utc=True).dt.tz_localize(None),
        }
    )
    with units_view(store, units) as units_sql:
        stats = mx.variant_statistics(store, units_sql, [], metric, window=window)
    held, sent = (int((audience["variant"] == v).sum()) for v in (HELD_OUT, MESSAGED))
    control, treatment = stats.get(HELD_OUT), stats.get(MESSAGED)
    if control is None or treatment is None:
        result = refused(
            engine,
            difference,
            confidence,
            "nobody in the holdout or nobody messaged: nothing to compare",
        )
    else:
        result = compare_arms(
            control,
            treatment,
            engine=engine,
            difference=difference,
            confidence=confidence,
            better=metric.better,
            min_units=min_units,
        )
    return HoldoutLift(
        key, share, metric.name, held, sent, srm_check([held, sent], [share, 1 - share]), result
    )
