"""Quantiles from order statistics (shopfunnel.stages.quantiles) are NumPy's, to the bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopfunnel.stages.quantiles import linear_quantiles, quantiles, ranks_needed


class SortedValues:
    """A sample gathered here, giving its quantiles through linear_quantiles (the
    independent reference is np.quantile)."""

    def __init__(self, values: np.ndarray):
        self._sorted = np.sort(np.asarray(values, dtype=float))

    def __len__(self) -> int:
        return len(self._sorted)

    def quantile(self, qs: list[float]) -> np.ndarray:
        return linear_quantiles(
            len(self._sorted), qs, lambda ranks: {r: float(self._sorted[r]) for r in ranks}
        )


values = st.lists(
    st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=60,
)
qs = st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=4)


@given(values, qs)
def test_the_quantiles_of_the_sorted_values_are_numpys(xs, q) -> None:
    expected = np.quantile(np.array(xs), q)
    got = SortedValues(np.array(xs)).quantile(q)
    assert got.tobytes() == expected.tobytes()


@given(st.lists(st.integers(min_value=1, max_value=2**45), min_size=1, max_size=40), qs)
def test_microseconds_read_as_days_give_numpys_quantile_of_the_days(us, q) -> None:
    days = np.array(us, dtype=float) / 86_400_000_000
    ordered = sorted(us)
    got = linear_quantiles(
        len(us), q, lambda ranks: {r: float(ordered[r]) / 86_400_000_000 for r in ranks}
    )
    assert got.tobytes() == np.quantile(days, q).tobytes()


def test_only_the_two_neighbouring_ranks_are_read() -> None:
    asked: list[list[int]] = []

    def values_at(ranks: list[int]) -> dict[int, float]:
        asked.append(ranks)
        return {r: float(r * r) for r in ranks}

    got = linear_quantiles(101, [0.8, 0.95], values_at)
    assert asked == [[80, 81, 95, 96]]
    assert got.tolist() == pytest.approx([6400.0, 9025.0])
    assert ranks_needed(1, [0.0, 0.5, 1.0]) == [0]
    assert ranks_needed(5, [1.0]) == [4]


def test_an_array_or_a_ranked_sample_gives_the_same_quantiles() -> None:
    xs = np.array([5.0, 1.0, 3.0, 9.0, 7.0, 2.0])
    assert quantiles(xs, [0.8, 0.95]).tolist() == quantiles(SortedValues(xs), [0.8, 0.95]).tolist()
    with pytest.raises(ValueError):
        linear_quantiles(0, [0.5], lambda ranks: {})
