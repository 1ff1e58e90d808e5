"""The statistics of the lasting scan: segmenting a daily series into runs of constant
conversion, its over-dispersion, and placing a boundary to the hour.

Pure functions over counts (ADR 0067): :func:`segment` (optimal partitioning on the
binomial likelihood), :func:`series_dispersion` (φ), :func:`two_sample_z`,
:func:`refine_boundary` and :func:`hourly_information`.
:mod:`shopfunnel.diagnosis.level_shifts` applies them to a store's series.
"""

from __future__ import annotations

import math

import numpy as np

from shopfunnel.diagnosis.stats import robust_dispersion


def _loglik(n: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Binomial log-likelihood of ``r`` successes in ``n`` trials at the MLE rate."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 0, r / np.maximum(n, 1), 0.0)
        a = np.where(r > 0, r * np.log(np.where(p > 0, p, 1.0)), 0.0)
        b = np.where(n - r > 0, (n - r) * np.log(np.where(p < 1, 1 - p, 1.0)), 0.0)
    return a + b


def segment(
    entering: np.ndarray, reached: np.ndarray, *, penalty: float, min_days: int = 3
) -> list[tuple[int, int]]:
    """Runs ``[a, b)`` of days that minimise Σ −2·loglik(run) + penalty × (runs − 1),
    each at least ``min_days`` long (the whole series is one run when shorter).

    Optimal partitioning (Jackson et al. 2005) by dynamic programming over the cumulative
    counts; a quasi-likelihood with dispersion φ is the same problem with ``penalty`` × φ.
    """
    return segment_many(
        np.asarray(entering, dtype=float)[None, :],
        np.asarray(reached, dtype=float)[None, :],
        np.array([penalty], dtype=float),
        min_days=min_days,
    )[0]


def segment_many(
    entering: np.ndarray, reached: np.ndarray, penalties: np.ndarray, *, min_days: int = 3
) -> list[list[tuple[int, int]]]:
    """:func:`segment` of many series at once (rows of ``entering`` and ``reached``, each
    with its own penalty): one pass over the end day for all of them."""
    S, n_days = entering.shape
    if n_days < 2 * min_days:
        return [[(0, n_days)] for _ in range(S)]
    cn = np.concatenate([np.zeros((S, 1)), np.cumsum(entering, axis=1, dtype=float)], axis=1)
    cr = np.concatenate([np.zeros((S, 1)), np.cumsum(reached, axis=1, dtype=float)], axis=1)
    penalties = np.asarray(penalties, dtype=float)
    best = np.full((S, n_days + 1), np.inf)
    best[:, 0] = -penalties
    back = np.zeros((S, n_days + 1), dtype=np.int64)
    rows = np.arange(S)
    for b in range(min_days, n_days + 1):
        a = np.arange(0, b - min_days + 1)
        a = a[(a == 0) | (a >= min_days)]
        total = (
            best[:, a]
            - 2.0 * _loglik(cn[:, [b]] - cn[:, a], cr[:, [b]] - cr[:, a])
            + penalties[:, None]
        )
        i = np.argmin(total, axis=1)
        best[:, b], back[:, b] = total[rows, i], a[i]
    out: list[list[tuple[int, int]]] = []
    for s in range(S):
        runs: list[tuple[int, int]] = []
        end = n_days
        while end > 0:
            begin = int(back[s, end])
            runs.append((begin, end))
            end = begin
        out.append(runs[::-1])
    return out


def series_dispersion(entering: np.ndarray, reached: np.ndarray, window: int = 1) -> float:
    """Over-dispersion φ ≥ 1 of a daily series: the trimmed mean of each day's squared
    standardised difference from the pooled rate of the ``window`` days either side of it,
    over the same trimmed mean for a χ²₁ variable.

    The difference of a day's x conversions of n from n·p̂ (p̂ from the w neighbours'
    sessions) has binomial variance n·p(1−p)·(1 + n/w), which standardises it. Near
    neighbours keep a real change from touching more than a few days (2·``window`` per
    boundary), and trimming the largest 10% takes those out; weekday habits and a changing
    mix stay in φ. Days whose binomial variance is under 1 carry no information on it and
    are skipped: a series of a few sessions a day has φ = 1.
    """
    n = np.asarray(entering, dtype=float)
    r = np.asarray(reached, dtype=float)
    cn = np.concatenate([[0.0], np.cumsum(n)])
    cr = np.concatenate([[0.0], np.cumsum(r)])
    d = np.arange(len(n))
    lo, hi = np.clip(d - window, 0, len(n)), np.clip(d + window + 1, 0, len(n))
    wn = cn[hi] - cn[lo] - n
    wr = cr[hi] - cr[lo] - r
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(wn > 0, wr / wn, np.nan)
        var = n * p * (1 - p)
        scale = 1 + n / wn
    return float(
        robust_dispersion(r[None, :], (n * p)[None, :], var[None, :], (var * scale)[None, :])[0]
    )


def two_sample_z(n1: float, r1: float, n0: float, r0: float) -> float:
    """Two-sample binomial z of rate r1/n1 against r0/n0 (pooled variance)."""
    if n1 <= 0 or n0 <= 0:
        return 0.0
    p = (r1 + r0) / (n1 + n0)
    var = p * (1 - p) * (1 / n1 + 1 / n0)
    return 0.0 if var <= 0 else (r1 / n1 - r0 / n0) / math.sqrt(var)


def refine_boundary(entering: np.ndarray, reached: np.ndarray, before: float, after: float) -> int:
    """Where in a window of hourly counts a rate changes from ``before`` to ``after``: the
    cut ``h`` (0 … hours) maximising Σ_{i<h} loglik(before) + Σ_{i≥h} loglik(after)."""
    n = np.asarray(entering, dtype=float)
    r = np.asarray(reached, dtype=float)
    eps = 1e-6
    p0, p1 = min(max(before, eps), 1 - eps), min(max(after, eps), 1 - eps)
    gain = r * (math.log(p1) - math.log(p0)) + (n - r) * (math.log(1 - p1) - math.log(1 - p0))
    # score of cut h = Σ_{i≥h} gain_i
    tail = np.concatenate([np.cumsum(gain[::-1])[::-1], [0.0]])
    return int(np.argmax(tail))


def hourly_information(sessions_per_hour: float, before: float, after: float) -> float:
    """Sessions per hour × the smaller Kullback–Leibler divergence between Bernoulli
    ``before`` and ``after`` (nats): how much one hour tells the two rates apart. A change
    point is located to about 1 / this many hours."""
    eps = 1e-6
    p, q = min(max(before, eps), 1 - eps), min(max(after, eps), 1 - eps)

    def kl(a: float, b: float) -> float:
        return a * math.log(a / b) + (1 - a) * math.log((1 - a) / (1 - b))

    return sessions_per_hour * min(kl(p, q), kl(q, p))
