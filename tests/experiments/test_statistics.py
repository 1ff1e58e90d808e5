"""The experiment statistics against independent references: hand calculation, SciPy's own
Welch test and χ² test, numerical integration, a regression slope, a bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from shopfunnel.errors import ConfigError
from shopfunnel.experiments import (
    Adjusted,
    Mean,
    Proportion,
    Ratio,
    bayesian_test,
    compare_arms,
    cuped_theta,
    srm_check,
    welch_t_test,
)


def mean_of(values: np.ndarray) -> Mean:
    return Mean(len(values), float(values.sum()), float((values**2).sum()))


def test_absolute_difference_of_proportions_by_hand() -> None:
    r = welch_t_test(Proportion(1000, 100), Proportion(1000, 120), difference="absolute")
    se = math.sqrt(0.12 * 0.88 / 1000 + 0.10 * 0.90 / 1000)  # p(1-p)/n per arm
    assert r.expected == pytest.approx(0.02)
    assert r.standard_error == pytest.approx(se)
    assert r.ci_upper - r.expected == pytest.approx(r.expected - r.ci_lower)
    # 1998 degrees of freedom: the t quantile is within 0.1% of the normal's 1.96
    assert (r.ci_upper - r.expected) / se == pytest.approx(1.96, rel=1e-3)


def test_relative_difference_uses_the_delta_method_by_hand() -> None:
    r = welch_t_test(Proportion(1000, 100), Proportion(1000, 120), difference="relative")
    va, vb, ma, mb = 0.09, 0.1056, 0.10, 0.12
    assert r.expected == pytest.approx(0.2)
    assert r.standard_error**2 == pytest.approx(vb / (ma**2 * 1000) + va * mb**2 / (ma**4 * 1000))


def test_welch_p_value_and_dof_equal_scipy_on_raw_values() -> None:
    rng = np.random.default_rng(3)
    a = np.where(rng.random(900) < 0.05, rng.lognormal(4, 0.6, 900), 0.0)
    b = np.where(rng.random(1100) < 0.06, rng.lognormal(4, 0.6, 1100), 0.0)
    r = welch_t_test(mean_of(a), mean_of(b), difference="absolute")
    reference = stats.ttest_ind(b, a, equal_var=False)
    assert r.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert r.degrees_of_freedom == pytest.approx(reference.df, rel=1e-9)
    assert r.expected == pytest.approx(b.mean() - a.mean())


def test_chance_to_win_and_risks_equal_integrals_of_the_posterior() -> None:
    r = bayesian_test(Proportion(2000, 200), Proportion(2000, 226), difference="relative")
    mu, sigma = r.expected, r.standard_error
    density = stats.norm(mu, sigma).pdf
    lo, hi = mu - 12 * sigma, mu + 12 * sigma
    assert r.chance_to_win == pytest.approx(integrate.quad(density, 0, hi)[0], abs=1e-9)
    assert r.risk_control == pytest.approx(
        integrate.quad(lambda x: x * density(x), 0, hi)[0], abs=1e-9
    )
    assert r.risk_treatment == pytest.approx(
        integrate.quad(lambda x: -x * density(x), lo, 0)[0], abs=1e-9
    )
    assert (r.ci_lower, r.ci_upper) == pytest.approx(
        tuple(stats.norm(mu, sigma).ppf([0.025, 0.975]))
    )


def test_lower_is_better_swaps_chance_to_win_and_risks() -> None:
    a, b = Proportion(4000, 120), Proportion(4100, 98)  # refunds fell
    higher = bayesian_test(a, b)
    lower = bayesian_test(a, b, better="lower")
    assert lower.chance_to_win == pytest.approx(1 - higher.chance_to_win)
    assert lower.chance_to_win > 0.9
    assert (lower.risk_control, lower.risk_treatment) == (
        higher.risk_treatment,
        higher.risk_control,
    )


def test_srm_equals_scipy_chisquare() -> None:
    users = [3000, 3100, 2950]
    r = srm_check(users)
    assert r.p_value == pytest.approx(stats.chisquare(users).pvalue)
    weighted = srm_check([8000, 2100], [0.8, 0.2])
    assert weighted.p_value == pytest.approx(stats.chisquare([8000, 2100], [8080, 2020]).pvalue)


def test_srm_warns_below_one_in_a_thousand() -> None:
    assert not srm_check([5000, 5100]).mismatch
    assert srm_check([5000, 5400]).p_value < 0.001
    assert srm_check([5000, 5400]).mismatch


def test_srm_without_units_says_so() -> None:
    r = srm_check([0, 0])
    assert r.error and math.isnan(r.p_value) and not r.mismatch


def test_cuped_theta_is_the_regression_slope_of_post_on_pre() -> None:
    rng = np.random.default_rng(5)
    pre_a, pre_b = rng.gamma(2, 10, 3000), rng.gamma(2, 10, 3000)
    post_a = 0.7 * pre_a + rng.normal(0, 8, 3000)
    post_b = 0.7 * pre_b + rng.normal(1, 8, 3000)
    a = Adjusted(mean_of(post_a), mean_of(pre_a), float((post_a * pre_a).sum()))
    b = Adjusted(mean_of(post_b), mean_of(pre_b), float((post_b * pre_b).sum()))
    pre, post = np.concatenate([pre_a, pre_b]), np.concatenate([post_a, post_b])
    assert cuped_theta(a, b) == pytest.approx(np.polyfit(pre, post, 1)[0], rel=1e-9)
    plain = welch_t_test(a.post, b.post, difference="absolute")
    adjusted = compare_arms(a, b, difference="absolute")
    # the adjustment removes the share of variance the pre-period explains: 1 - ρ²
    rho = np.corrcoef(pre, post)[0, 1]
    assert adjusted.standard_error / plain.standard_error == pytest.approx(
        math.sqrt(1 - rho**2), rel=0.02
    )
    assert adjusted.ci_lower < 1 < adjusted.ci_upper


def test_cuped_without_pre_period_variance_is_the_plain_test() -> None:
    post_a, post_b = Mean(100, 50, 80), Mean(100, 60, 90)
    a = Adjusted(post_a, Mean(100, 0, 0), 0.0)
    b = Adjusted(post_b, Mean(100, 0, 0), 0.0)
    assert compare_arms(a, b, min_units=2) == compare_arms(post_a, post_b, min_units=2)


def test_ratio_delta_method_standard_error_agrees_with_a_bootstrap() -> None:
    rng = np.random.default_rng(9)
    orders = rng.poisson(0.3, 4000).astype(float)
    revenue = np.array([rng.lognormal(4, 0.5, int(k)).sum() for k in orders])
    ratio = Ratio(4000, mean_of(revenue), mean_of(orders), float((revenue * orders).sum()))
    assert ratio.mean == pytest.approx(revenue.sum() / orders.sum())
    picks = rng.integers(0, 4000, (2000, 4000))
    boot = revenue[picks].sum(axis=1) / orders[picks].sum(axis=1)
    assert math.sqrt(ratio.variance / 4000) == pytest.approx(boot.std(), rel=0.1)


@pytest.mark.parametrize("engine", ["frequentist", "bayesian"])
def test_no_conversions_in_control_is_refused_not_raised(engine: str) -> None:
    r = compare_arms(Proportion(1000, 0), Proportion(1000, 12), engine=engine)
    assert "no conversions in control" in r.error
    assert math.isnan(r.expected) and math.isnan(r.ci_upper)
    assert r.to_dict()["expected"] is None


def test_zero_variance_is_refused() -> None:
    r = compare_arms(Mean(500, 5000, 50000), Mean(500, 5200, 60000), difference="absolute")
    assert "zero variance in control" in r.error


def test_minimum_sample_guard_names_the_arm_and_the_threshold() -> None:
    r = compare_arms(Proportion(1000, 100), Proportion(40, 5), min_units=100)
    assert r.error.startswith("minimum sample: treatment has 40 units")
    assert compare_arms(Proportion(1000, 100), Proportion(40, 5), min_units=40).error is None


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Proportion(100, 101),
        lambda: Proportion(-1, 0),
        lambda: Proportion(10.5, 1),
        lambda: Mean(100, 50, 20),  # sum of squares below sum²/n = 25
        lambda: Mean(10, float("nan"), 1),
        lambda: compare_arms(Proportion(100, 1), Mean(100, 1, 1)),
        lambda: compare_arms(Proportion(100, 1), Proportion(100, 2), engine="magic"),
        lambda: compare_arms(Proportion(100, 1), Proportion(100, 2), difference="ratio"),
        lambda: compare_arms(Proportion(100, 1), Proportion(100, 2), confidence=95),
        lambda: compare_arms(Proportion(100, 1), Proportion(100, 2), min_units=1),
        lambda: srm_check([100, 100], [0.5]),
        lambda: srm_check([100, -1]),
    ],
)
def test_impossible_inputs_raise_config_error(bad) -> None:
    with pytest.raises(ConfigError):
        bad()
