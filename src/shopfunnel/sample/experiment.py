"""An A/B test run on the sample store, with a known (planted) effect, so that the
experiment analysis can be checked against the truth.

From ``start`` (default: the sample's first day) each visitor's first session on or after
it records an ``experiment_exposure`` (properties ``experiment`` and ``variant``: ``"0"`` is
control) at the session's first event. The variant is drawn per visitor with ``weights``
from a random stream of its own, so planting an experiment leaves every other draw of the
sample as it was. Variant ``"1"``'s sessions from ``start`` on have ``effect`` added to the
log-odds of reaching ``step`` (default ``purchase``: the step after ``add_payment_info``, a
better checkout); ``effect=0`` is an A/A test.

The exposures are extra rows: a sample with an experiment has its ``n_events`` events plus
one exposure per exposed visitor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shopfunnel.errors import ConfigError
from shopfunnel.sample.incidents import LEVELS, to_datetime
from shopfunnel.store.schema import EXPOSURE_EVENT


@dataclass(frozen=True)
class PlantedExperiment:
    """An experiment on the sample store (see the module docstring). ``effect`` is in
    log-odds at ``step``: 0.3 raises a 60% step rate to about 67%."""

    key: str = "checkout-v2"
    effect: float = 0.0
    step: str = "purchase"
    start: str | date | datetime | None = None
    weights: tuple[float, ...] = (0.5, 0.5)

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key.strip():
            raise ConfigError(f"experiment key={self.key!r}: use a non-empty name")
        if self.step not in LEVELS[1:]:
            raise ConfigError(
                f"experiment step {self.step!r} is not a funnel step of the "
                f"sample: use one of {', '.join(LEVELS[1:])}"
            )
        if not np.isfinite(self.effect):
            raise ConfigError(f"experiment effect={self.effect!r}: use a number of log-odds")
        w = np.asarray(self.weights, dtype=float)
        if len(w) < 2 or (w < 0).any() or abs(w.sum() - 1) > 1e-6:
            raise ConfigError(
                f"experiment weights={self.weights!r}: one share per variant "
                "(at least 2), summing to 1"
            )
        if self.start is not None:
            to_datetime(self.start, what="experiment start")


@dataclass(frozen=True)
class ActiveExperiment:
    """A :class:`PlantedExperiment` placed on a sample's time line (days from its span start)."""

    experiment: PlantedExperiment
    begin: float
    column: int  # the step's column in the sessions' log-odds (0 = view_item)

    def draw(self, rng: np.random.Generator, visitors: int) -> np.ndarray:
        """Each visitor's variant, from a child stream (the parent stream is not advanced)."""
        child = rng.spawn(1)[0]
        cdf = np.cumsum(self.experiment.weights)
        return np.minimum(np.searchsorted(cdf, child.random(visitors), side="right"), len(cdf) - 1)

    def apply(self, logit: np.ndarray, start: np.ndarray, variant: np.ndarray) -> None:
        """Add the effect to variant 1's sessions that start on or after the experiment."""
        logit[(start >= self.begin) & (variant == 1), self.column] += self.experiment.effect

    def exposures(
        self, table: pa.Table, s: dict[str, np.ndarray], row_session: np.ndarray
    ) -> pa.Table:
        """One exposure row per visitor, copied from the first event of their first session
        on or after the start (rows of ``table`` belong to sessions ``row_session``)."""
        n_sessions = len(s["start"])
        after = np.flatnonzero(s["start"] >= self.begin)
        order = after[np.lexsort((s["number"][after], s["visitor"][after]))]
        _, first = np.unique(s["visitor"][order], return_index=True)
        exposed = np.zeros(n_sessions, dtype=bool)
        exposed[order[first]] = True
        candidates = np.flatnonzero(exposed[row_session])
        _, first_row = np.unique(row_session[candidates], return_index=True)
        rows = candidates[first_row]
        picked = table.take(pa.array(rows, pa.int64()))
        variant = s["variant"][row_session[rows]]
        texts = [
            json.dumps({"experiment": self.experiment.key, "variant": str(v)})
            for v in range(len(self.experiment.weights))
        ]
        columns = {name: picked[name] for name in table.column_names}
        columns["event_id"] = pc.binary_join_element_wise(picked["event_id"], "x", "")
        columns["event"] = pa.array([EXPOSURE_EVENT] * len(rows), pa.string())
        columns["properties"] = pc.take(pa.array(texts, pa.string()), pa.array(variant))
        exposure_rows = pa.Table.from_pydict(columns, schema=table.schema)
        both = pa.concat_tables([exposure_rows, table])
        return both.take(pc.sort_indices(both, [("ts", "ascending")]))


def activate(
    experiment: PlantedExperiment | None, sample_start: datetime, days: int, span_start: datetime
) -> ActiveExperiment | None:
    """Place ``experiment`` on the sample's span; it must start inside the sample."""
    if experiment is None:
        return None
    if not isinstance(experiment, PlantedExperiment):
        raise ConfigError(f"experiment={experiment!r}: use a PlantedExperiment")
    begin = sample_start if experiment.start is None else to_datetime(experiment.start)
    end = sample_start.toordinal() + days
    if not sample_start <= begin < datetime.fromordinal(end):
        raise ConfigError(
            f"experiment start {begin:%Y-%m-%d %H:%M} is outside the sample "
            f"({sample_start:%Y-%m-%d} for {days} days)"
        )
    return ActiveExperiment(
        experiment, (begin - span_start).total_seconds() / 86_400, LEVELS.index(experiment.step) - 1
    )


def count_exposures(table: pa.Table) -> int:
    """Rows of ``table`` that are exposures (not part of the sample's ``n_events``)."""
    return int(pc.sum(pc.equal(table["event"], EXPOSURE_EVENT)).as_py() or 0)


EXPERIMENT_SYNTAX = "KEY[:EFFECT[:START]], e.g. checkout-v2:1.0:2024-02-01"


def parse_experiment(spec: str) -> PlantedExperiment:
    """A planted experiment from its text form ``KEY[:EFFECT[:START]]`` (EFFECT in log-odds at
    the purchase step, default 0; START a UTC date, default the sample's first day)."""
    key, _, rest = spec.strip().partition(":")
    effect_text, _, start = rest.partition(":")
    try:
        effect = float(effect_text) if effect_text.strip() else 0.0
    except ValueError:
        raise ConfigError(
            f"--experiment {spec!r}: EFFECT {effect_text!r} is not a number; "
            f"write {EXPERIMENT_SYNTAX}"
        ) from None
    return PlantedExperiment(key=key.strip(), effect=effect, start=start.strip() or None)
