"""Bayesian comparison with GrowthBook's default (improper, flat) prior on the effect.

Equal to ``gbstats.bayesian.tests.EffectBayesianABTest`` with its default
``GaussianPrior(proper=False)``. Under a flat prior the posterior of the difference is
normal with the data's mean and variance (:mod:`shopfunnel.experiments.difference`):
``Δ ~ N(μ, σ²)`` with ``μ`` the observed difference and ``σ² = V``. Then

- ``chance_to_win = P(Δ > 0) = Φ(μ/σ)`` (for a metric where lower is better, ``P(Δ < 0)``);
- the credible interval is the ``α/2`` and ``1-α/2`` quantiles of ``N(μ, σ²)``;
- ``risk_control = E[max(Δ, 0)] = μ·Φ(μ/σ) + σ·φ(μ/σ)``: what choosing control is expected
  to lose (in the units of the difference: relative or absolute);
  ``risk_treatment = E[max(-Δ, 0)] = σ·φ(μ/σ) - μ·Φ(-μ/σ)``: what choosing treatment is
  expected to lose. For a lower-is-better metric the two are swapped.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from scipy import stats

from shopfunnel.experiments import difference as diff
from shopfunnel.experiments.difference import DEFAULT_MIN_UNITS, NAN, Better, Difference
from shopfunnel.experiments.statistics import Statistic


@dataclass(frozen=True)
class BayesianResult:
    """Posterior of treatment minus control (relative or absolute) under a flat prior.

    ``expected`` is the posterior mean, ``ci_lower``/``ci_upper`` the credible interval,
    ``chance_to_win`` the probability treatment is better, ``risk_control`` and
    ``risk_treatment`` the expected loss of choosing each arm. When the data cannot support a
    result, ``error`` says why and every number is NaN.
    """

    expected: float
    ci_lower: float
    ci_upper: float
    chance_to_win: float
    risk_control: float
    risk_treatment: float
    standard_error: float
    difference: Difference
    confidence: float
    error: str | None = None

    engine = "bayesian"

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


def risks(mu: float, sigma: float) -> tuple[float, float]:
    """``(E[max(Δ,0)], E[max(-Δ,0)])`` for ``Δ ~ N(mu, sigma²)``: the expected loss of choosing
    control and of choosing treatment."""
    z = mu / sigma
    density = sigma * float(stats.norm.pdf(z))
    return (mu * float(stats.norm.cdf(z)) + density, density - mu * float(stats.norm.cdf(-z)))


def bayesian_test(
    control: Statistic,
    treatment: Statistic,
    *,
    difference: Difference = "relative",
    confidence: float = 0.95,
    better: Better = "higher",
    min_units: int = DEFAULT_MIN_UNITS,
) -> BayesianResult:
    """Posterior of ``treatment`` minus ``control`` under GrowthBook's flat prior
    (definitions in the module docstring). Options outside their ranges raise ConfigError;
    data that cannot support a result gives one with ``error`` set and NaN numbers."""
    diff.check_options(difference, confidence, better, min_units)
    diff.check_pair(control, treatment)
    reason = diff.refusal(control, treatment, difference, min_units)
    if reason is not None:
        return BayesianResult(NAN, NAN, NAN, NAN, NAN, NAN, NAN, difference, confidence, reason)
    mu = diff.point_estimate(control, treatment, difference)
    sigma = math.sqrt(diff.variance(control, treatment, difference))
    alpha = 1 - confidence
    lower, upper = (float(q) for q in stats.norm.ppf([alpha / 2, 1 - alpha / 2], mu, sigma))
    up = float(stats.norm.sf(0, mu, sigma))
    risk_control, risk_treatment = risks(mu, sigma)
    if better == "lower":
        up = 1 - up
        risk_control, risk_treatment = risk_treatment, risk_control
    return BayesianResult(
        mu, lower, upper, up, risk_control, risk_treatment, sigma, difference, confidence
    )
