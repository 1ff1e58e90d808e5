"""Read an experiment from the store: the split, then each metric, treatment against control.

:func:`analyze_experiment` is what every face calls (CLI ``shopfunnel experiment show``,
the report, the dashboard), with the same defaults, so they show the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shopfunnel.errors import ConfigError
from shopfunnel.experiments import metrics as mx
from shopfunnel.experiments.compare import Engine, compare_arms
from shopfunnel.experiments.difference import DEFAULT_MIN_UNITS, Difference
from shopfunnel.experiments.exposures import experiment_units, exposure_counts, units_view
from shopfunnel.experiments.srm import SrmResult, srm_check
from shopfunnel.experiments.statistics import Statistic

if TYPE_CHECKING:
    import pandas as pd

    from shopfunnel.store.store import Store

DEFAULT_METRICS: tuple[mx.Metric, ...] = (
    mx.conversion("purchase"),
    mx.conversion("purchase", from_event="begin_checkout"),
    mx.revenue_per_visitor(),
    mx.average_order_value(),
    mx.refund_rate(),
)
RESULT_COLUMNS = [
    "metric",
    "variant",
    "control",
    "n_control",
    "n_variant",
    "control_mean",
    "variant_mean",
    "expected",
    "ci_lower",
    "ci_upper",
    "p_value",
    "chance_to_win",
    "risk_control",
    "risk_treatment",
    "error",
]


@dataclass(frozen=True)
class ExperimentReport:
    """One experiment read from the store.

    ``variants``: persons per variant (``variant``, ``persons``, ``first_exposure``,
    ``last_exposure``); ``control``: the variant the others are compared with;
    ``multiple_exposures``: persons left out for seeing several variants; ``srm``: the
    sample-ratio check of the persons per variant against ``weights``; ``results``: one row
    per metric and non-control variant (:data:`RESULT_COLUMNS`; the engine's columns are
    filled, the other engine's are NaN).
    """

    experiment: str
    engine: Engine
    difference: Difference
    window: str | float | None
    control: str
    variants: pd.DataFrame
    multiple_exposures: int
    srm: SrmResult
    results: pd.DataFrame = field(repr=False)


def choose_control(variants: Sequence[str], control: str | None) -> str:
    """``control`` if given (it must be a variant), else ``"0"``, else ``"control"``, else
    the first variant in sorted order."""
    if control is not None:
        if control not in variants:
            raise ConfigError(
                f"control={control!r} is not a variant of this experiment: use "
                f"one of {', '.join(map(repr, variants))}"
            )
        return control
    for name in ("0", "control"):
        if name in variants:
            return name
    return sorted(variants)[0]


def compare_variants(
    stats: Mapping[str, Statistic],
    metric: mx.Metric,
    control: str,
    *,
    engine: Engine,
    difference: Difference,
    confidence: float,
    min_units: int,
) -> list[dict[str, object]]:
    """One row per non-control variant (:data:`RESULT_COLUMNS`)."""
    rows = []
    for variant in sorted(stats):
        if variant == control:
            continue
        a, b = stats.get(control), stats[variant]
        row: dict[str, object] = dict.fromkeys(RESULT_COLUMNS, float("nan"))
        row.update(
            metric=metric.name,
            variant=variant,
            control=control,
            n_variant=b.n,
            variant_mean=b.unadjusted_mean,
        )
        if a is None:
            row.update(n_control=0, error="no units in control for this metric")
        else:
            row.update(n_control=a.n, control_mean=a.unadjusted_mean)
            result = compare_arms(
                a,
                b,
                engine=engine,
                difference=difference,
                confidence=confidence,
                better=metric.better,
                min_units=min_units,
            )
            row.update({k: v for k, v in result.to_dict().items() if k in RESULT_COLUMNS})
            row = {k: (float("nan") if v is None and k != "error" else v) for k, v in row.items()}
        rows.append(row)
    return rows


def analyze_experiment(
    store: Store,
    experiment: str,
    metrics: Sequence[mx.Metric] = DEFAULT_METRICS,
    *,
    control: str | None = None,
    engine: Engine = "frequentist",
    difference: Difference = "relative",
    window: str | float | None = "7d",
    cuped_days: float | None = None,
    weights: Sequence[float] | None = None,
    confidence: float = 0.95,
    min_units: int = DEFAULT_MIN_UNITS,
) -> ExperimentReport:
    """Read ``experiment`` from the store's exposures and compare each variant with control
    on each metric (definitions: :mod:`shopfunnel.experiments.metrics`).

    ``window`` bounds what counts after each person's exposure (``"7d"``; None for no
    limit); ``cuped_days`` adds CUPED with that many days before exposure as covariate
    (metrics that support it; the others are read plainly); ``weights`` are the intended
    shares of the variants in sorted order, for the SRM check (default equal). A variant
    without enough data gets a row whose ``error`` says why, not an exception.
    """
    import pandas as pd

    counts, multiple = exposure_counts(store, experiment)
    if counts.empty:
        raise ConfigError(
            f"no exposures to experiment {experiment!r} in the store: "
            "`shopfunnel experiment list` shows the experiments it has"
        )
    names = [str(v) for v in counts["variant"]]
    chosen = choose_control(names, control)
    srm = srm_check([int(n) for n in counts["persons"]], weights)
    rows: list[dict[str, object]] = []
    with units_view(store, experiment_units(store, experiment)) as units_sql:
        for metric in metrics:
            stats = mx.variant_statistics(
                store,
                units_sql,
                [],
                metric,
                window=window,
                cuped_days=cuped_days if metric.supports_cuped else None,
            )
            rows += compare_variants(
                stats,
                metric,
                chosen,
                engine=engine,
                difference=difference,
                confidence=confidence,
                min_units=min_units,
            )
    return ExperimentReport(
        experiment,
        engine,
        difference,
        window,
        chosen,
        counts,
        multiple,
        srm,
        pd.DataFrame(rows, columns=RESULT_COLUMNS),
    )
