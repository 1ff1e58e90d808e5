"""Small, pure statistics for proportions and counts.

Every function takes counts (never raw events) and returns plain floats or small
frozen dataclasses, so the diagnosis can aggregate in the database and reason here.
Where the counts cannot support a number (an empty group, a zero denominator), the
result is ``nan`` rather than an exception: a report built on it still renders.

Conventions: ``confidence`` is two-sided (0.95 gives the 2.5% and 97.5% quantiles);
p-values are two-sided unless ``alternative`` says otherwise.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special

Alternative = Literal["two-sided", "less", "greater"]


def scipy_stats():
    """``scipy.stats``, imported when first used (it takes most of a second to import; a
    diagnosis starts importing it in the background: :func:`import_in_background`)."""
    from scipy import stats

    return stats


def import_in_background() -> None:
    """Start importing ``scipy.stats`` on another thread, so the import overlaps the
    queries that come first (they run in DuckDB and numba, without the GIL)."""
    import sys
    import threading

    if "scipy.stats" not in sys.modules:
        threading.Thread(
            target=scipy_stats, name="shopfunnel-import-scipy-stats", daemon=True
        ).start()


NAN = float("nan")


@functools.lru_cache(maxsize=64)
def _z(confidence: float) -> float:
    # cached: a diagnosis asks for the same quantile hundreds of times, at 0.3 ms each
    if not 0 < confidence < 1:
        from shopfunnel.errors import ConfigError

        raise ConfigError(
            f"confidence={confidence!r} is not valid: use a number between 0 and 1, e.g. 0.95"
        )
    return float(scipy_stats().norm.ppf(0.5 + confidence / 2))


def _p_from_z(z: float, alternative: Alternative) -> float:
    if math.isnan(z):
        return NAN
    if alternative == "less":
        return float(scipy_stats().norm.cdf(z))
    if alternative == "greater":
        return float(scipy_stats().norm.sf(z))
    return float(2 * scipy_stats().norm.sf(abs(z)))


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``successes / n``.

    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with ``p = successes/n``.
    Unlike the Wald interval it stays inside [0, 1] and is honest for small ``n`` and for
    proportions near 0 or 1. ``n = 0`` gives ``(nan, nan)``.
    """
    z = _z(confidence)
    if n <= 0:
        return (NAN, NAN)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def one_sample_p(x: float, n: float, p0: float) -> float:
    """Two-sided p-value of the score test of ``x/n`` against a fixed rate ``p0``.

    ``z = (x/n - p0) / sqrt(p0(1-p0)/n)``; it rejects at 5% exactly when the 95% Wilson
    interval excludes ``p0``. ``n = 0`` or ``p0`` at 0 or 1 gives ``nan``.
    """
    if n <= 0 or not 0 < p0 < 1:
        return NAN
    z = (x / n - p0) / math.sqrt(p0 * (1 - p0) / n)
    return _p_from_z(z, "two-sided")


@dataclass(frozen=True)
class ZTest:
    """A z statistic and its p-value."""

    z: float
    p_value: float


def two_proportion_ztest(
    x1: float, n1: float, x2: float, n2: float, alternative: Alternative = "two-sided"
) -> ZTest:
    """Pooled two-proportion z-test of ``p1 = x1/n1`` against ``p2 = x2/n2``.

    ``z = (p1 - p2) / sqrt(p(1-p)(1/n1 + 1/n2))`` with the pooled ``p = (x1+x2)/(n1+n2)``.
    ``alternative="less"`` tests ``p1 < p2``. Either group empty, or a pooled rate of 0 or
    1 (no variation at all), gives ``nan``.
    """
    if n1 <= 0 or n2 <= 0:
        return ZTest(NAN, NAN)
    p = (x1 + x2) / (n1 + n2)
    var = p * (1 - p) * (1 / n1 + 1 / n2)
    if var <= 0:
        return ZTest(NAN, NAN)
    z = (x1 / n1 - x2 / n2) / math.sqrt(var)
    return ZTest(z, _p_from_z(z, alternative))


def wald_difference_interval(
    x1: float, n1: float, x2: float, n2: float, confidence: float = 0.95
) -> tuple[float, float]:
    """Wald interval for ``p1 - p2``: ``d ± z·sqrt(p1(1-p1)/n1 + p2(1-p2)/n2)`` (unpooled)."""
    z = _z(confidence)
    if n1 <= 0 or n2 <= 0:
        return (NAN, NAN)
    p1, p2 = x1 / n1, x2 / n2
    half = z * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return (p1 - p2 - half, p1 - p2 + half)


def newcombe_interval(
    x1: float, n1: float, x2: float, n2: float, confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``p1 - p2`` (Newcombe 1998, method 10).

    With Wilson intervals ``(l1, u1)`` and ``(l2, u2)`` for each proportion:
    ``low = d - sqrt((p1-l1)² + (u2-p2)²)``, ``high = d + sqrt((u1-p1)² + (p2-l2)²)``.
    Good coverage for small counts and rates near 0, where the Wald interval fails.
    """
    if n1 <= 0 or n2 <= 0:
        return (NAN, NAN)
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, confidence)
    l2, u2 = wilson_interval(x2, n2, confidence)
    d = p1 - p2
    return (
        d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


@dataclass(frozen=True)
class OddsRatio:
    """An odds ratio with its confidence interval and p-value.

    ``method`` says how the p-value was computed: ``"woolf"`` (z-test on the log odds
    ratio, consistent with the interval) or ``"fisher"`` (exact, for small counts).
    ``corrected`` is true when 0.5 was added to every cell because one was zero.
    """

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    method: str
    corrected: bool = False


def fisher_exact_p(a: int, b: int, c: int, d: int) -> float:
    """Two-sided Fisher exact p-value for the 2×2 table ``[[a, b], [c, d]]``.

    Sums the hypergeometric probabilities (margins fixed) of every table no more likely
    than the observed one (with a relative tolerance of 1e-7, as R does).
    """
    a, b, c, d = (int(v) for v in (a, b, c, d))
    n = a + b + c + d
    if n == 0:
        return NAN
    row1, col1 = a + b, a + c
    lo, hi = max(0, row1 + col1 - n), min(row1, col1)
    ks = np.arange(lo, hi + 1)
    probs = scipy_stats().hypergeom.pmf(ks, n, row1, col1)
    observed = scipy_stats().hypergeom.pmf(a, n, row1, col1)
    return float(min(1.0, probs[probs <= observed * (1 + 1e-7)].sum()))


def odds_ratio(
    a: float, b: float, c: float, d: float, confidence: float = 0.95, small_count: float = 5
) -> OddsRatio:
    """Odds ratio ``(a·d)/(b·c)`` of the 2×2 table ``[[a, b], [c, d]]`` with Woolf's interval.

    Rows are the two groups (e.g. has the feature / has not), columns the outcome
    (converted / dropped). Woolf: ``exp(ln OR ± z·sqrt(1/a + 1/b + 1/c + 1/d))``; when a
    cell is zero, 0.5 is added to every cell first (Haldane–Anscombe). The p-value is
    Fisher's exact test when any expected cell count is below ``small_count``, else the
    Wald z-test on ``ln OR`` (which agrees with the interval). An empty row or column
    (or a negative count) gives ``nan``.
    """
    z = _z(confidence)
    n = a + b + c + d
    if min(a, b, c, d) < 0 or min(a + b, c + d, a + c, b + d) <= 0:
        return OddsRatio(NAN, NAN, NAN, NAN, "none")
    corrected = min(a, b, c, d) == 0
    aa, bb, cc, dd = (v + 0.5 for v in (a, b, c, d)) if corrected else (a, b, c, d)
    log_or = math.log(aa * dd / (bb * cc))
    se = math.sqrt(1 / aa + 1 / bb + 1 / cc + 1 / dd)
    expected = min((a + b) * (a + c), (a + b) * (b + d), (c + d) * (a + c), (c + d) * (b + d)) / n
    if expected < small_count:
        p, method = fisher_exact_p(int(a), int(b), int(c), int(d)), "fisher"
    else:
        p, method = _p_from_z(log_or / se, "two-sided"), "woolf"
    return OddsRatio(
        math.exp(log_or), math.exp(log_or - z * se), math.exp(log_or + z * se), p, method, corrected
    )


def _as_array(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(pvalues, dtype=float)


def benjamini_hochberg(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values), in the input order.

    For the ``m`` non-missing p-values sorted ascending, ``q(i) = min over j ≥ i of
    p(j)·m/j``, capped at 1. Rejecting ``q < α`` controls the false discovery rate at α.
    NaN p-values stay NaN and do not count in ``m``.
    """
    p = _as_array(pvalues)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    vals = p[ok]
    order = np.argsort(vals)
    ranked = vals[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(q, 1.0)
    out[ok] = adjusted
    return out


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the input order.

    For the ``m`` non-missing p-values sorted ascending, ``adj(i) = max over j ≤ i of
    (m - j + 1)·p(j)``, capped at 1. Rejecting ``adj < α`` controls the family-wise error
    rate at α. NaN stays NaN.
    """
    p = _as_array(pvalues)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    vals = p[ok]
    order = np.argsort(vals)
    ranked = vals[order] * (m - np.arange(m))
    adj = np.minimum(np.maximum.accumulate(ranked), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adj
    out[ok] = adjusted
    return out


def poisson_lower_tail(k: float | np.ndarray, mu: float | np.ndarray) -> np.ndarray:
    """``P(X ≤ k)`` for ``X ~ Poisson(mu)``, continuous in ``k`` (regularised gamma ``Q(k+1, mu)``).

    Real ``k`` lets a quasi-Poisson test divide counts by a dispersion factor. ``mu = 0``
    gives 1.
    """
    k = np.asarray(k, dtype=float)
    mu = np.asarray(mu, dtype=float)
    with np.errstate(invalid="ignore"):
        out = special.gammaincc(np.maximum(k, 0) + 1, mu)
    return np.where(mu <= 0, 1.0, out)


def poisson_upper_tail(k: float | np.ndarray, mu: float | np.ndarray) -> np.ndarray:
    """``P(X ≥ k)`` for ``X ~ Poisson(mu)``, continuous in ``k`` (regularised gamma ``P(k, mu)``).

    ``k ≤ 0`` gives 1; ``mu = 0`` with ``k > 0`` gives 0.
    """
    k = np.asarray(k, dtype=float)
    mu = np.asarray(mu, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = special.gammainc(np.maximum(k, 1e-12), np.maximum(mu, 0))
    return np.where(k <= 0, 1.0, np.where(mu <= 0, 0.0, out))


def binomial_lower_tail(k: float, n: float, p: float) -> float:
    """``P(X ≤ k)`` for ``X ~ Binomial(n, p)``, continuous in ``k`` and ``n`` (regularised beta).

    Equals ``I_{1-p}(n - k, k + 1)``; ``k ≥ n`` gives 1, ``n = 0`` gives 1.
    """
    if n <= 0 or k >= n:
        return 1.0
    if k < 0:
        return 0.0
    if p <= 0:
        return 1.0
    if p >= 1:
        return 0.0
    return float(special.betainc(n - k, k + 1, 1 - p))


_TRIM = 0.9


@functools.lru_cache(maxsize=1)
def _trimmed_mean() -> float:
    """The mean of a chi-square(1) variable below its 90% quantile q:
    E[X; X < q] / 0.9 = F_3(q) / 0.9."""
    chi2 = scipy_stats().chi2
    return float(chi2.cdf(float(chi2.ppf(_TRIM, 1)), 3) / _TRIM)


def robust_dispersion(
    obs: np.ndarray,
    exp: np.ndarray,
    var: np.ndarray,
    residual_var: np.ndarray | None = None,
    skip: np.ndarray | None = None,
) -> np.ndarray:
    """Over-dispersion per series: the 90%-trimmed mean of Pearson residuals², over the
    same trimmed mean for a chi-square(1) variable; at least 1, at most 20.

    Trimming keeps incident days from inflating it; the trimmed mean is far less noisy
    than a median (about 80 daily residuals is all a series has). Days with a binomial
    variance ``var`` under 1 are skipped, and so are the days ``skip`` marks (those of the
    incidents the first pass found: a three-week outage is more than the trim can remove);
    ``residual_var`` (default ``var``) is the variance of obs − exp when ``exp`` is itself
    estimated.
    """
    rv = var if residual_var is None else residual_var
    usable = var >= 1.0 if skip is None else (var >= 1.0) & ~skip
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(usable, (obs - exp) ** 2 / rv, np.nan)
    phi = np.ones(r.shape[0])
    for i, row in enumerate(r):
        vals = np.sort(row[np.isfinite(row)])
        if len(vals) >= 7:
            keep = vals[: int(np.ceil(_TRIM * len(vals)))]
            phi[i] = keep.mean() / _trimmed_mean()
    return np.clip(phi, 1.0, 20.0)
