"""Small vectorised random draws and ragged-array helpers shared by the simulation."""

from __future__ import annotations

import numpy as np

from shopfunnel.sample import model as m


def choice(rng: np.random.Generator, p: np.ndarray, size: int) -> np.ndarray:
    """Draw ``size`` indices with probabilities proportional to ``p``."""
    cdf = np.cumsum(p) / np.sum(p)
    cdf[-1] = 1.0
    return np.searchsorted(cdf, rng.random(size), side="right")


def grouped_choice(rng: np.random.Generator, cdf: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Pick an index per row from a concatenated CDF whose group g spans (g, g + 1]."""
    return np.searchsorted(cdf, group + rng.random(len(group)), side="left")


def within(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows repeated ``counts`` times: the owner index and the index within it."""
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(len(owner)) - starts[owner]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def hour_fraction(rng: np.random.Generator, size: int) -> np.ndarray:
    return (choice(rng, m.HOUR_WEIGHT, size) + rng.random(size)) / 24.0
