"""Frequentist comparison: Welch's two-sided t-test with a confidence interval.

Equal to GrowthBook's ``gbstats.frequentist.tests.TwoSidedTTest`` on the same sufficient
statistics (tests/experiments/test_gbstats_reference.py). With the difference ``Δ`` and its
variance ``V`` from :mod:`shopfunnel.experiments.difference`:

- ``t = Δ / √V``;
- degrees of freedom by Welch–Satterthwaite on the arms' per-unit variances:
  ``(v_b/n_b + v_a/n_a)² / (v_b²/(n_b²(n_b-1)) + v_a²/(n_a²(n_a-1)))``;
- ``p_value = 2·P(T > |t|)`` for Student's T with those degrees of freedom;
- the interval ``Δ ± t_{1-α/2}·√V`` with ``α = 1 - confidence``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from scipy import stats

from shopfunnel.experiments import difference as diff
from shopfunnel.experiments.difference import DEFAULT_MIN_UNITS, NAN, Difference
from shopfunnel.experiments.statistics import Statistic


@dataclass(frozen=True)
class FrequentistResult:
    """A two-sided Welch t-test of treatment against control.

    ``expected`` is the estimated difference (relative: ``0.05`` is +5%), ``ci_lower`` and
    ``ci_upper`` its confidence interval, ``p_value`` the two-sided p-value of "no difference".
    When the data cannot support the test, ``error`` says why and every number is NaN.
    """

    expected: float
    ci_lower: float
    ci_upper: float
    p_value: float
    standard_error: float
    degrees_of_freedom: float
    difference: Difference
    confidence: float
    error: str | None = None

    engine = "frequentist"

    def significant(self) -> bool:
        """True when the interval excludes 0 (``p_value < 1 - confidence``)."""
        return self.error is None and self.p_value < 1 - self.confidence

    def to_dict(self) -> dict[str, object]:
        """Plain values for JSON: NaN becomes None."""
        out: dict[str, object] = {"engine": self.engine}
        out.update(
            {
                k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(self).items()
            }
        )
        return out


def welch_dof(control: Statistic, treatment: Statistic) -> float:
    va, na, vb, nb = control.variance, control.n, treatment.variance, treatment.n
    return (vb / nb + va / na) ** 2 / (vb**2 / (nb**2 * (nb - 1)) + va**2 / (na**2 * (na - 1)))


def welch_t_test(
    control: Statistic,
    treatment: Statistic,
    *,
    difference: Difference = "relative",
    confidence: float = 0.95,
    min_units: int = DEFAULT_MIN_UNITS,
) -> FrequentistResult:
    """Two-sided Welch t-test of ``treatment`` against ``control`` (definitions in the
    module docstring). Options outside their ranges raise ConfigError; data that cannot
    support the test (see :func:`~shopfunnel.experiments.difference.refusal`) gives a result
    with ``error`` set and NaN numbers."""
    diff.check_options(difference, confidence, "higher", min_units)
    diff.check_pair(control, treatment)
    reason = diff.refusal(control, treatment, difference, min_units)
    if reason is not None:
        return FrequentistResult(NAN, NAN, NAN, NAN, NAN, NAN, difference, confidence, reason)
    estimate = diff.point_estimate(control, treatment, difference)
    se = math.sqrt(diff.variance(control, treatment, difference))
    dof = welch_dof(control, treatment)
    p_value = float(2 * stats.t.sf(abs(estimate / se), dof))
    half = float(stats.t.ppf(1 - (1 - confidence) / 2, dof)) * se
    return FrequentistResult(
        estimate, estimate - half, estimate + half, p_value, se, dof, difference, confidence
    )
