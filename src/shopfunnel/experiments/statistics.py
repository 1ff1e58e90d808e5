"""Sufficient statistics of one experiment arm: what a query hands over, and what the tests read.

An arm is summarised by a handful of sums over its units (persons), never by the units
themselves, so the store aggregates in SQL and the statistics stay small pure functions:

- :class:`Proportion` ``(n, conversions)``: a yes/no outcome per unit (converted, refunded).
  Mean ``conversions / n``; variance per unit ``p (1 - p)`` (GrowthBook's choice, no ``n - 1``).
- :class:`Mean` ``(n, sum, sum_squares)``: a number per unit (revenue per visitor).
  Mean ``sum / n``; variance per unit the sample variance ``(sum_squares - sum²/n) / (n - 1)``.
- :class:`Ratio` ``(n, numerator, denominator, sum_of_products)``: a ratio of two per-unit
  sums (average order value = revenue / orders). Mean ``Σnumerator / Σdenominator``;
  variance per unit by the delta method (see :attr:`Ratio.variance`).
- :class:`Adjusted` ``(post, pre, sum_of_products, theta)``: CUPED, the metric after exposure
  less ``theta`` times the same metric before exposure (see :func:`cuped`).

Every class exposes ``n``, ``mean`` (what is compared), ``unadjusted_mean`` (what a relative
difference divides by: the plain mean, before any CUPED adjustment) and ``variance`` (per
unit: the variance of the mean is ``variance / n``). Counts that cannot be true (more
conversions than units, a sum of squares below ``sum²/n``) raise :class:`ConfigError` when the
statistic is built: that is a caller's mistake, not data to reason about.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from shopfunnel.errors import ConfigError

# Rounding slack when checking that a sum of squares can belong to its sum (floats summed in SQL).
_SLACK = 1e-9


def _check_n(n: int, what: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"{what}: n={n!r} is not a count of units: use a whole number ≥ 0")


def _check_finite(value: float, name: str, what: str) -> None:
    if not math.isfinite(value):
        raise ConfigError(f"{what}: {name}={value!r} is not a finite number")


@dataclass(frozen=True)
class Proportion:
    """``conversions`` of ``n`` units had the outcome (0 ≤ conversions ≤ n)."""

    n: int
    conversions: float

    def __post_init__(self) -> None:
        _check_n(self.n, "proportion")
        _check_finite(self.conversions, "conversions", "proportion")
        if not 0 <= self.conversions <= self.n:
            raise ConfigError(
                f"proportion: conversions={self.conversions!r} with n={self.n}: conversions "
                "must be between 0 and n (each unit converts at most once)"
            )

    @property
    def sum(self) -> float:
        return float(self.conversions)

    @property
    def sum_squares(self) -> float:
        return float(self.conversions)  # a 0/1 value is its own square

    @property
    def mean(self) -> float:
        return self.conversions / self.n if self.n else 0.0

    @property
    def unadjusted_mean(self) -> float:
        return self.mean

    @property
    def variance(self) -> float:
        """``p (1 - p)``: the population variance of a 0/1 outcome (as gbstats)."""
        p = self.mean
        return p * (1 - p)


@dataclass(frozen=True)
class Mean:
    """``n`` units whose values sum to ``sum`` and whose squares sum to ``sum_squares``."""

    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        _check_n(self.n, "mean")
        _check_finite(self.sum, "sum", "mean")
        _check_finite(self.sum_squares, "sum_squares", "mean")
        floor = self.sum * self.sum / self.n if self.n else 0.0
        if self.sum_squares < 0 or self.sum_squares < floor - _SLACK * max(1.0, abs(floor)):
            raise ConfigError(
                f"mean: sum_squares={self.sum_squares!r} cannot belong to n={self.n}, "
                f"sum={self.sum!r}: the sum of squares is at least sum²/n = {floor:.6g}; "
                "check that the third number is the sum of the squared values"
            )
        if self.n == 0 and (self.sum or self.sum_squares):
            raise ConfigError("mean: n=0 with a non-zero sum: an arm without units sums to 0")

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else 0.0

    @property
    def unadjusted_mean(self) -> float:
        return self.mean

    @property
    def variance(self) -> float:
        """Sample variance ``(sum_squares - sum²/n) / (n - 1)``; 0 for fewer than two units."""
        if self.n <= 1:
            return 0.0
        return (self.sum_squares - self.sum * self.sum / self.n) / (self.n - 1)


Component = Proportion | Mean


def _covariance(n: int, sum_x: float, sum_y: float, sum_of_products: float) -> float:
    """Sample covariance ``(Σxy - Σx·Σy/n) / (n - 1)``; 0 for fewer than two units."""
    if n <= 1:
        return 0.0
    return (sum_of_products - sum_x * sum_y / n) / (n - 1)


@dataclass(frozen=True)
class Ratio:
    """A ratio metric: per unit a numerator ``m`` and a denominator ``d``; the arm's value is
    ``Σm / Σd`` (e.g. average order value: revenue over orders, both summed per person).

    ``numerator`` and ``denominator`` are the per-unit sums of ``m`` and ``d`` (with the same
    ``n`` as the ratio) and ``sum_of_products`` is ``Σ m·d`` over units.
    """

    n: int
    numerator: Component
    denominator: Component
    sum_of_products: float

    def __post_init__(self) -> None:
        _check_n(self.n, "ratio")
        _check_finite(self.sum_of_products, "sum_of_products", "ratio")
        if self.numerator.n != self.n or self.denominator.n != self.n:
            raise ConfigError(
                f"ratio: numerator n={self.numerator.n} and denominator n={self.denominator.n} "
                f"must both equal the ratio's n={self.n} (the same units)"
            )

    @property
    def mean(self) -> float:
        """``Σnumerator / Σdenominator``; 0 when the denominator sums to 0."""
        d = self.denominator.sum
        return self.numerator.sum / d if d else 0.0

    @property
    def unadjusted_mean(self) -> float:
        return self.mean

    @property
    def covariance(self) -> float:
        return _covariance(self.n, self.numerator.sum, self.denominator.sum, self.sum_of_products)

    @property
    def variance(self) -> float:
        """Delta-method variance per unit of ``m̄ / d̄``:
        ``var_m / d̄² - 2·cov(m, d)·m̄ / d̄³ + m̄²·var_d / d̄⁴`` (0 when ``d̄ = 0`` or ``n ≤ 1``)."""
        m, d = self.numerator.mean, self.denominator.mean
        if d == 0 or self.n <= 1:
            return 0.0
        return (
            self.numerator.variance / d**2
            - 2 * self.covariance * m / d**3
            + m**2 * self.denominator.variance / d**4
        )


@dataclass(frozen=True)
class Adjusted:
    """CUPED: a metric after exposure (``post``) adjusted by the same units' metric before
    exposure (``pre``): ``mean = post.mean - theta · pre.mean``.

    ``sum_of_products`` is ``Σ post·pre`` over units. ``theta`` is shared by the arms of one
    comparison and is set by :func:`cuped` (0 means no adjustment).
    """

    post: Component
    pre: Component
    sum_of_products: float
    theta: float = 0.0

    def __post_init__(self) -> None:
        _check_finite(self.sum_of_products, "sum_of_products", "adjusted")
        _check_finite(self.theta, "theta", "adjusted")
        if self.post.n != self.pre.n:
            raise ConfigError(
                f"adjusted: post n={self.post.n} and pre n={self.pre.n} must be equal "
                "(the pre-exposure value of the same units; a unit without history counts 0)"
            )
        if type(self.post) is not type(self.pre):
            raise ConfigError(
                "adjusted: post and pre must be the same kind (both Proportion or both Mean)"
            )

    @property
    def n(self) -> int:
        return self.post.n

    @property
    def mean(self) -> float:
        return self.post.mean - self.theta * self.pre.mean

    @property
    def unadjusted_mean(self) -> float:
        return self.post.mean

    @property
    def covariance(self) -> float:
        return _covariance(self.n, self.post.sum, self.pre.sum, self.sum_of_products)

    @property
    def variance(self) -> float:
        """``var_post + theta²·var_pre - 2·theta·cov(post, pre)`` per unit."""
        if self.n <= 1:
            return 0.0
        return (
            self.post.variance
            + self.theta**2 * self.pre.variance
            - 2 * self.theta * self.covariance
        )


Statistic = Proportion | Mean | Ratio | Adjusted


def _pooled(a: Component, b: Component, n: int) -> Component:
    if isinstance(a, Proportion) and isinstance(b, Proportion):
        return Proportion(n=n, conversions=a.conversions + b.conversions)
    if isinstance(a, Mean) and isinstance(b, Mean):
        return Mean(n=n, sum=a.sum + b.sum, sum_squares=a.sum_squares + b.sum_squares)
    raise ConfigError("adjusted: both arms must use the same kind of statistic")


def cuped_theta(control: Adjusted, treatment: Adjusted) -> float:
    """CUPED's ``theta = cov(post, pre) / var(pre)`` over both arms pooled (so it does not
    depend on the assignment); 0 when the pooled pre- or post-period variance is 0."""
    n = control.n + treatment.n
    post = _pooled(control.post, treatment.post, n)
    pre = _pooled(control.pre, treatment.pre, n)
    if pre.variance == 0 or post.variance == 0:
        return 0.0
    cov = _covariance(n, post.sum, pre.sum, control.sum_of_products + treatment.sum_of_products)
    return cov / pre.variance


def cuped(control: Adjusted, treatment: Adjusted) -> tuple[Statistic, Statistic]:
    """Both arms with the pooled :func:`cuped_theta` set; the plain ``post`` statistics when
    theta is 0 (no variance before or after exposure: nothing to adjust by)."""
    theta = cuped_theta(control, treatment)
    if theta == 0:
        return control.post, treatment.post
    return replace(control, theta=theta), replace(treatment, theta=theta)
