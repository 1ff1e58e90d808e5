"""One entry point for comparing two arms: pick the engine, get a result that never raises
on data (an ``error`` with NaN numbers instead).

``compare_arms(control, treatment, engine="frequentist"|"bayesian", difference="relative"|
"absolute")`` takes two sufficient statistics of the same kind
(:mod:`shopfunnel.experiments.statistics`); for CUPED, pass two :class:`Adjusted` and the
shared theta is set here (pooled over both arms, :func:`cuped`).
"""

from __future__ import annotations

from typing import Literal

from shopfunnel.errors import ConfigError
from shopfunnel.experiments.bayesian import BayesianResult, bayesian_test
from shopfunnel.experiments.difference import (
    DEFAULT_MIN_UNITS,
    Better,
    Difference,
    check_options,
)
from shopfunnel.experiments.frequentist import FrequentistResult, welch_t_test
from shopfunnel.experiments.statistics import Adjusted, Statistic, cuped

Engine = Literal["frequentist", "bayesian"]
Result = FrequentistResult | BayesianResult


def refused(engine: Engine, difference: Difference, confidence: float, reason: str) -> Result:
    """The engine's result carrying ``reason`` and NaN numbers (nothing to compare)."""
    nan = float("nan")
    if engine == "bayesian":
        return BayesianResult(nan, nan, nan, nan, nan, nan, nan, difference, confidence, reason)
    return FrequentistResult(nan, nan, nan, nan, nan, nan, difference, confidence, reason)


def compare_arms(
    control: Statistic,
    treatment: Statistic,
    *,
    engine: Engine = "frequentist",
    difference: Difference = "relative",
    confidence: float = 0.95,
    better: Better = "higher",
    min_units: int = DEFAULT_MIN_UNITS,
) -> Result:
    """Compare ``treatment`` with ``control``.

    ``engine="frequentist"``: Welch's two-sided t-test (:func:`welch_t_test`): ``expected``,
    ``ci_lower``, ``ci_upper``, ``p_value``. ``engine="bayesian"``: GrowthBook's flat-prior
    posterior (:func:`bayesian_test`): ``expected``, the credible interval, ``chance_to_win``,
    ``risk_control``, ``risk_treatment``. ``difference="relative"`` gives the lift
    ``(treatment - control) / control`` (0.05 is +5%), ``"absolute"`` the plain difference.
    Arms with fewer than ``min_units`` units, a control mean of 0 (relative) or zero variance
    give a result whose ``error`` says why, with NaN numbers. ``better="lower"`` marks a
    metric where less is better (refund rate) for the Bayesian chance to win and risks.
    """
    check_options(difference, confidence, better, min_units)
    if isinstance(control, Adjusted) and isinstance(treatment, Adjusted):
        control, treatment = cuped(control, treatment)
    if engine == "frequentist":
        return welch_t_test(
            control, treatment, difference=difference, confidence=confidence, min_units=min_units
        )
    if engine == "bayesian":
        return bayesian_test(
            control,
            treatment,
            difference=difference,
            confidence=confidence,
            better=better,
            min_units=min_units,
        )
    raise ConfigError(f"engine={engine!r} is not known: use 'frequentist' or 'bayesian'")
