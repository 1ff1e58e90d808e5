"""The difference between two arms, its variance, and when the data cannot give one.

Shared by both engines (GrowthBook's gbstats does the same): with control ``a`` and
treatment ``b``,

- absolute difference ``b̄ - ā``, variance ``var_b/n_b + var_a/n_a``;
- relative difference ``(b̄ - ā) / ā₀`` where ``ā₀`` is the control's unadjusted mean (the
  plain mean before CUPED), variance by the delta method
  ``var_b / (ā₀²·n_b) + var_a·b̄₀² / (ā₀⁴·n_a)``.

``var`` is each arm's per-unit variance (:mod:`shopfunnel.experiments.statistics`).
:func:`refusal` says why a comparison cannot be made, or None; both engines return a result
carrying that reason, with every number NaN, instead of raising.
"""

from __future__ import annotations

import math
from typing import Literal

from shopfunnel.errors import ConfigError
from shopfunnel.experiments.statistics import Statistic

Difference = Literal["relative", "absolute"]
Better = Literal["higher", "lower"]
NAN = float("nan")
DEFAULT_MIN_UNITS = 100


def check_options(difference: str, confidence: float, better: str, min_units: int) -> None:
    """Raise :class:`ConfigError` for an option outside its allowed values (a caller's mistake)."""
    if difference not in ("relative", "absolute"):
        raise ConfigError(f"difference={difference!r} is not known: use 'relative' or 'absolute'")
    if not (isinstance(confidence, int | float) and 0 < confidence < 1):
        raise ConfigError(
            f"confidence={confidence!r} is not valid: use a number between 0 and 1, e.g. 0.95"
        )
    if better not in ("higher", "lower"):
        raise ConfigError(
            f"better={better!r} is not known: use 'higher' (conversion, revenue) "
            "or 'lower' (refund rate, payment failures)"
        )
    if isinstance(min_units, bool) or not isinstance(min_units, int) or min_units < 2:
        raise ConfigError(
            f"min_units={min_units!r} is not valid: use a whole number ≥ 2 "
            "(a variance needs two units)"
        )


def check_pair(control: Statistic, treatment: Statistic) -> None:
    if type(control) is not type(treatment):
        raise ConfigError(
            f"control is a {type(control).__name__} and treatment a {type(treatment).__name__}: "
            "compare the same kind of statistic in both arms"
        )


def point_estimate(control: Statistic, treatment: Statistic, difference: Difference) -> float:
    diff = treatment.mean - control.mean
    return diff / control.unadjusted_mean if difference == "relative" else diff


def variance(control: Statistic, treatment: Statistic, difference: Difference) -> float:
    """Variance of :func:`point_estimate` (delta method for the relative difference)."""
    va, na, vb, nb = control.variance, control.n, treatment.variance, treatment.n
    if difference == "relative":
        ma, mb = control.unadjusted_mean, treatment.unadjusted_mean
        return vb / (ma**2 * nb) + va * mb**2 / (ma**4 * na)
    return vb / nb + va / na


def refusal(
    control: Statistic, treatment: Statistic, difference: Difference, min_units: int
) -> str | None:
    """Why the two arms cannot be compared, or None.

    In order: an arm with fewer than ``min_units`` units (the minimum-sample guard); for a
    relative difference, a control whose mean is 0 (nothing to divide by: no conversions in
    control); an arm whose variance is 0 or less (every unit has the same value, e.g. no
    conversions at all, so no spread to test against).
    """
    for name, arm in (("control", control), ("treatment", treatment)):
        if arm.n < min_units:
            return (
                f"minimum sample: {name} has {arm.n} units, fewer than the {min_units} "
                "required; wait for more data (or lower min_units knowingly)"
            )
    if difference == "relative" and (control.mean == 0 or control.unadjusted_mean == 0):
        return (
            "control's mean is 0 (no conversions in control): a relative difference "
            "divides by it; use the absolute difference or wait for more data"
        )
    for name, arm in (("control", control), ("treatment", treatment)):
        if not arm.variance > 0 or not math.isfinite(arm.variance):
            return (
                f"zero variance in {name}: every unit has the same value (e.g. no "
                "conversions, or all converted), so there is no spread to test against; "
                "wait for more data"
            )
    return None
