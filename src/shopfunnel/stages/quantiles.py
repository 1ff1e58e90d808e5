"""Quantiles the way NumPy's default (``method="linear"``) gives them, from a few order
statistics: what the stage model's thresholds need (:mod:`shopfunnel.stages.status`,
:mod:`shopfunnel.stages.gaps`) when the sample is too large to gather in one place.

For a sample of ``n`` values sorted ascending as ``x[0] ≤ … ≤ x[n-1]``, the quantile at ``q``
is read at the *virtual index* ``v = (n - 1) q``: with ``i = floor(v)`` and ``g = v - i`` it is
``x[i] + (x[i+1] - x[i]) g`` (written ``x[i+1] - (x[i+1] - x[i]) (1 - g)`` when ``g ≥ 0.5``,
as NumPy does, so that the result is bit for bit NumPy's); at ``v ≥ n - 1`` it is ``x[n-1]``.
Only ``x[i]`` and ``x[i+1]`` are needed: :func:`linear_quantiles` asks for those ranks and
nothing else. On Spark they come from :func:`shopfunnel.stages.spark_placement` as exact
order statistics, so the thresholds equal the embedded engine's.

A *sample* here is either a NumPy array or anything with ``len()`` and a
``quantile(qs)`` method (:class:`RankedSample`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np


class RankedSample(Protocol):
    """A sample that knows its size and gives quantiles (NumPy's linear method)."""

    def __len__(self) -> int: ...

    def quantile(self, qs: Sequence[float]) -> np.ndarray: ...


def quantiles(sample: Any, qs: Sequence[float]) -> np.ndarray:
    """``np.quantile(sample, qs)`` for an array; ``sample.quantile(qs)`` for a
    :class:`RankedSample`."""
    if hasattr(sample, "quantile"):
        return np.asarray(sample.quantile(qs), dtype=float)
    return np.quantile(np.asarray(sample, dtype=float), list(qs))


def ranks_needed(n: int, qs: Sequence[float]) -> list[int]:
    """The ranks (0-based, ascending) whose values :func:`linear_quantiles` reads."""
    prev, nxt, _ = _indexes(n, qs)
    return sorted({int(r) for r in np.concatenate([prev, nxt])})


def linear_quantiles(
    n: int, qs: Sequence[float], values_at: Callable[[list[int]], dict[int, float]]
) -> np.ndarray:
    """The quantiles at ``qs`` of a sample of ``n`` values (``n ≥ 1``), given
    ``values_at(ranks)``: the value at each rank of the sorted sample (see the module
    docstring). Equal to ``np.quantile(sample, qs)``."""
    if n < 1:
        raise ValueError("a quantile needs at least one value")
    prev, nxt, gamma = _indexes(n, qs)
    at = values_at(ranks_needed(n, qs))
    a = np.array([at[int(r)] for r in prev], dtype=float)
    b = np.array([at[int(r)] for r in nxt], dtype=float)
    diff = b - a
    out = a + diff * gamma
    np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5)
    return out


def _indexes(n: int, qs: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NumPy's neighbouring ranks and weight for each quantile (``_get_indexes``)."""
    virtual = (n - 1) * np.asarray(qs, dtype=float)
    prev = np.floor(virtual)
    nxt = prev + 1
    above = virtual >= n - 1
    prev[above] = n - 1
    nxt[above] = n - 1
    below = virtual < 0
    prev[below] = 0
    nxt[below] = 0
    gamma = virtual - prev  # where prev == nxt the weight does not matter
    return prev.astype(np.int64), nxt.astype(np.int64), gamma


class RanksFound:
    """A :class:`RankedSample` known by its size ``n`` and the values at the ranks
    :func:`ranks_needed` names for the quantiles it will be asked (found elsewhere: on
    Spark, :func:`shopfunnel.stages.spark_placement.samples_on_spark`)."""

    def __init__(self, n: int, values: dict[int, float]):
        self.n, self.values = n, values

    def __len__(self) -> int:
        return self.n

    def quantile(self, qs: Sequence[float]) -> np.ndarray:
        return linear_quantiles(self.n, qs, lambda ranks: {r: self.values[r] for r in ranks})
