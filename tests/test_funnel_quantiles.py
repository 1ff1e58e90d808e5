"""The funnel's median and 90th percentile of seconds between steps are numpy's, to the bit."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from shopfunnel.funnel.tables import median_and_p90

seconds = st.one_of(
    st.floats(0, 1e7, allow_nan=False, width=64),
    st.sampled_from([0.0, 1.0, 1.5, 60.0, 3600.0]),  # ties, as real durations have
)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@given(arrays(np.float64, st.integers(1, 300), elements=seconds))
def test_median_and_90th_percentile_equal_numpys(d):
    median, p90 = median_and_p90(d.copy())
    assert _same(median, float(np.median(d)))
    assert _same(p90, float(np.percentile(d, 90)))


def test_a_nan_gives_nan_as_numpy_does():
    d = np.array([1.0, math.nan, 3.0])
    assert all(math.isnan(v) for v in median_and_p90(d))


def test_one_value_and_two_values():
    assert median_and_p90(np.array([7.0])) == (7.0, 7.0)
    assert median_and_p90(np.array([1.0, 3.0])) == (2.0, 2.8)
