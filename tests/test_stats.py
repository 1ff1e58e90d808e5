"""Statistics checked against hand calculation, published tables and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from shopfunnel.diagnosis.stats import (
    benjamini_hochberg,
    binomial_lower_tail,
    fisher_exact_p,
    holm,
    newcombe_interval,
    odds_ratio,
    poisson_lower_tail,
    poisson_upper_tail,
    two_proportion_ztest,
    wald_difference_interval,
    wilson_interval,
)
from shopfunnel.errors import ConfigError


def test_wilson_interval_matches_newcombe_1998_example_81_of_263():
    low, high = wilson_interval(81, 263)
    assert low == pytest.approx(0.2553, abs=5e-5)
    assert high == pytest.approx(0.3662, abs=5e-5)


def test_wilson_interval_for_zero_successes_starts_at_zero_and_is_not_empty():
    # 0/10 at 95%: upper = z²/(n + z²) = 3.8415/13.8415 = 0.2775 (hand calculation)
    low, high = wilson_interval(0, 10)
    assert low == 0.0
    assert high == pytest.approx(0.27753, abs=5e-5)


def test_wilson_interval_of_empty_group_is_nan_not_an_error():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_confidence_outside_0_1_is_a_config_error_naming_the_value():
    with pytest.raises(ConfigError, match="95"):
        wilson_interval(1, 2, confidence=95)


def test_pooled_two_proportion_z_matches_hand_calculation():
    # 56/70 vs 48/80: pooled p = 104/150 = 0.693333; se = sqrt(p(1-p)(1/70+1/80)) = 0.0754663
    # z = 0.2 / 0.0754663 = 2.65017; two-sided p = 2·(1 - Φ(2.65017)) = 0.008045
    t = two_proportion_ztest(56, 70, 48, 80)
    assert t.z == pytest.approx(2.65017, abs=1e-4)
    assert t.p_value == pytest.approx(0.008045, abs=1e-5)
    assert two_proportion_ztest(48, 80, 56, 70, alternative="less").p_value == pytest.approx(
        0.008045 / 2, abs=1e-5
    )


def test_pooled_z_squared_equals_scipy_chi_square_without_continuity_correction():
    table = [[30, 170], [50, 150]]
    chi2 = sps.chi2_contingency(table, correction=False)
    t = two_proportion_ztest(30, 200, 50, 200)
    assert t.z**2 == pytest.approx(chi2.statistic)
    assert t.p_value == pytest.approx(chi2.pvalue)


def test_ztest_without_variation_is_nan():
    assert math.isnan(two_proportion_ztest(0, 10, 0, 20).p_value)
    assert math.isnan(two_proportion_ztest(1, 0, 0, 20).z)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "low", "high"),
    [  # Newcombe (1998), Statistics in Medicine 17:873, Table II, method 10
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (5, 56, 0, 29, -0.0381, 0.1926),
    ],
)
def test_newcombe_interval_matches_the_papers_table(x1, n1, x2, n2, low, high):
    lo, hi = newcombe_interval(x1, n1, x2, n2)
    assert lo == pytest.approx(low, abs=5e-5)
    assert hi == pytest.approx(high, abs=5e-5)


def test_wald_difference_interval_matches_newcombe_method_1():
    lo, hi = wald_difference_interval(56, 70, 48, 80)
    assert lo == pytest.approx(0.0575, abs=5e-5)
    assert hi == pytest.approx(0.3425, abs=5e-5)


def test_odds_ratio_and_woolf_interval_match_hand_calculation():
    # OR = 10·40/(20·30) = 0.6667; se = sqrt(1/10+1/20+1/30+1/40) = 0.456435
    # CI = exp(ln 0.6667 ± 1.959964·0.456435) = (0.27251, 1.63090); z = -0.88833, p = 0.37436
    r = odds_ratio(10, 20, 30, 40)
    assert r.estimate == pytest.approx(2 / 3)
    assert r.ci_low == pytest.approx(0.27251, abs=1e-4)
    assert r.ci_high == pytest.approx(1.63090, abs=1e-4)
    assert r.p_value == pytest.approx(0.37436, abs=1e-4)
    assert r.method == "woolf"


def test_odds_ratio_with_small_counts_uses_fisher_exact_like_scipy():
    r = odds_ratio(1, 9, 4, 2)
    assert r.method == "fisher"
    assert r.p_value == pytest.approx(sps.fisher_exact([[1, 9], [4, 2]]).pvalue)


def test_odds_ratio_with_a_zero_cell_adds_one_half_everywhere():
    # (0.5·20.5)/(10.5·5.5) = 0.177489
    r = odds_ratio(0, 10, 5, 20)
    assert r.corrected
    assert r.estimate == pytest.approx(0.5 * 20.5 / (10.5 * 5.5))


def test_odds_ratio_of_an_empty_row_is_nan():
    assert math.isnan(odds_ratio(0, 0, 5, 20).estimate)


@given(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30), st.integers(0, 30))
def test_fisher_exact_agrees_with_scipy(a, b, c, d):
    if a + b + c + d == 0:
        return
    assert fisher_exact_p(a, b, c, d) == pytest.approx(
        sps.fisher_exact([[a, b], [c, d]]).pvalue, rel=1e-6, abs=1e-12
    )


def test_benjamini_hochberg_matches_hand_calculation_and_keeps_input_order():
    # sorted 0.005, 0.01, 0.03, 0.04 → 0.02, 0.02, 0.04, 0.04
    q = benjamini_hochberg([0.01, 0.04, 0.03, 0.005])
    assert q == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_benjamini_hochberg_agrees_with_scipy_and_skips_nan():
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.2, 40)
    assert benjamini_hochberg(p) == pytest.approx(sps.false_discovery_control(p, method="bh"))
    q = benjamini_hochberg([0.01, float("nan"), 0.02])
    assert math.isnan(q[1])
    assert q[[0, 2]] == pytest.approx([0.02, 0.02])


def test_holm_matches_hand_calculation():
    # sorted 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 → max so far 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_is_capped_at_one():
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])


def test_tails_agree_with_scipy_at_integer_counts():
    assert poisson_lower_tail(3, 2.0) == pytest.approx(sps.poisson.cdf(3, 2.0))
    assert poisson_upper_tail(3, 2.0) == pytest.approx(sps.poisson.sf(2, 2.0))
    assert binomial_lower_tail(3, 10, 0.5) == pytest.approx(sps.binom.cdf(3, 10, 0.5))
    assert binomial_lower_tail(0, 20, 0.1) == pytest.approx(0.9**20)


def test_tails_at_the_edges():
    assert poisson_lower_tail(0, 0.0) == 1.0
    assert poisson_upper_tail(0, 5.0) == 1.0
    assert poisson_upper_tail(2, 0.0) == 0.0
    assert binomial_lower_tail(10, 10, 0.3) == 1.0


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_adjusted_p_values_are_never_below_the_raw_ones_and_holm_is_stricter_than_bh(p):
    p = np.array(p)
    bh, hm = benjamini_hochberg(p), holm(p)
    assert np.all(bh >= p - 1e-12) and np.all(hm >= bh - 1e-12)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(bh[order]) >= -1e-12) and np.all(np.diff(hm[order]) >= -1e-12)
