"""CLV models checked against the papers' CDNOW results, direct formulas and simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shopfunnel.customers.clv import (
    BetaGeoModel,
    GammaGammaModel,
    bgnbd_log_likelihood,
    customer_value,
    summary_from_orders,
)
from shopfunnel.errors import ConfigError, InputError
from shopfunnel.ingest.datasets import cdnow_orders


@pytest.fixture(scope="module")
def cdnow_calibration() -> pd.DataFrame:
    """CDNOW sample, 39-week calibration (1997-01-01 to 1997-09-30), times in weeks."""
    return summary_from_orders(cdnow_orders("sample"), calibration_end="1997-09-30", time_unit="W")


@pytest.fixture(scope="module")
def bgnbd(cdnow_calibration: pd.DataFrame) -> BetaGeoModel:
    return BetaGeoModel().fit(cdnow_calibration)


def test_cdnow_calibration_summary_has_the_papers_customer_counts(cdnow_calibration):
    # FHL (2005): 2,357 customers; Fader & Hardie (2013): 946 of them made a repeat purchase
    # in the calibration period.
    assert len(cdnow_calibration) == 2357
    assert int((cdnow_calibration["frequency"] > 0).sum()) == 946
    first = cdnow_calibration.loc["1"]  # the first customer in Hardie's spreadsheet
    assert (first["frequency"], round(first["recency"], 2), round(first["T"], 2)) == (
        2,
        30.43,
        38.86,
    )


def test_bgnbd_params_match_fader_hardie_lee_2005(bgnbd):
    expected = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    for name, value in expected.items():
        assert bgnbd.params_[name] == pytest.approx(value, rel=0.01), name


def test_bgnbd_log_likelihood_matches_fader_hardie_lee_2005(bgnbd):
    assert bgnbd.log_likelihood_ == pytest.approx(-9582.4, abs=0.1)


def test_bgnbd_conditional_expectation_matches_fader_hardie_lee_2005(bgnbd):
    # FHL (2005), section 5: a customer with x = 2, t_x = 30.43, T = 38.86 is expected to
    # make 1.226 purchases in the next 39 weeks.
    assert bgnbd.expected_purchases(39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=0.001)


def test_gamma_gamma_params_match_fader_hardie_2013(cdnow_calibration):
    repeaters = cdnow_calibration[cdnow_calibration["frequency"] > 0]
    model = GammaGammaModel().fit(repeaters)
    expected = {"p": 6.25, "q": 3.74, "gamma": 15.44}
    for name, value in expected.items():
        assert model.params_[name] == pytest.approx(value, rel=0.01), name
    assert model.n_customers_ == 946


def test_gamma_gamma_ignores_customers_without_repeat_purchases(cdnow_calibration):
    everyone = GammaGammaModel().fit(cdnow_calibration)
    repeaters = GammaGammaModel().fit(cdnow_calibration[cdnow_calibration["frequency"] > 0])
    assert everyone.n_excluded_ == 2357 - 946
    np.testing.assert_allclose(everyone.params_, repeaters.params_, rtol=1e-6)


def test_bgnbd_log_likelihood_equals_the_papers_formula_written_directly():
    r, alpha, a, b = 0.5, 3.0, 0.8, 2.5
    B = math.gamma
    for x, t_x, T in [(0, 0.0, 10.0), (1, 4.0, 10.0), (3, 9.5, 20.0)]:
        beta = lambda p, q: B(p) * B(q) / B(p + q)  # noqa: E731
        common = B(r + x) * alpha**r / B(r)
        direct = beta(a, b + x) / beta(a, b) * common / (alpha + T) ** (r + x)
        if x > 0:
            direct += beta(a + 1, b + x - 1) / beta(a, b) * common / (alpha + t_x) ** (r + x)
        ours = bgnbd_log_likelihood(
            (r, alpha, a, b), np.array([x]), np.array([t_x]), np.array([T])
        )[0]
        assert ours == pytest.approx(math.log(direct), rel=1e-10)


def test_bgnbd_fit_recovers_the_parameters_of_simulated_customers():
    rng = np.random.default_rng(7)
    r, alpha, a, b = 0.5, 6.0, 0.7, 2.0
    n, T = 6000, 52.0
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    rows = []
    for i in range(n):
        t, times = 0.0, []
        while True:
            t += rng.exponential(1 / lam[i])
            if t > T:
                break
            times.append(t)
            if rng.random() < p[i]:
                break
        rows.append((len(times), times[-1] if times else 0.0))
    # a first purchase at time 0 starts each customer; the simulated ones are repeats
    summary = pd.DataFrame(rows, columns=["frequency", "recency"]).assign(T=T)
    fit = BetaGeoModel().fit(summary).params_
    assert fit["r"] == pytest.approx(r, rel=0.15)
    assert fit["alpha"] == pytest.approx(alpha, rel=0.2)
    assert fit["a"] == pytest.approx(a, rel=0.25)
    assert fit["b"] == pytest.approx(b, rel=0.3)


def test_p_alive_is_one_without_repeat_purchases_and_falls_with_silence(bgnbd):
    assert bgnbd.probability_alive(0, 0.0, 30.0) == pytest.approx(1.0)
    recent, quiet = bgnbd.probability_alive(
        np.array([3, 3]), np.array([29.0, 5.0]), np.array([30.0, 30.0])
    )
    assert 0 < quiet < recent < 1


def test_expected_purchases_of_a_customer_seen_at_birth_equal_the_unconditional_ones(bgnbd):
    assert bgnbd.expected_purchases(26, 0, 0.0, 0.0) == pytest.approx(
        bgnbd.expected_purchases_new_customer(26), rel=1e-9
    )


def test_summary_counts_purchase_days_and_averages_repeat_days_only():
    orders = pd.DataFrame(
        {
            "person_id": ["a", "a", "a", "a", "b", "c"],
            "ts": pd.to_datetime(
                [
                    "2024-01-01 09:00",
                    "2024-01-01 18:00",
                    "2024-01-15 10:00",
                    "2024-01-29 00:00",
                    "2024-01-08 00:00",
                    "2024-03-01 00:00",
                ]
            ),
            "value": [10.0, 5.0, 20.0, 40.0, 7.0, 99.0],
        }
    )
    s = summary_from_orders(orders, calibration_end="2024-02-05", time_unit="W")
    assert list(s.index) == ["a", "b"]  # c's order is after the calibration end
    a = s.loc["a"]
    assert a["frequency"] == 2  # three purchase days: two orders on Jan 1 are one
    assert a["recency"] == pytest.approx(4.0)  # Jan 1 → Jan 29
    assert a["T"] == pytest.approx(5.0)  # Jan 1 → Feb 5
    assert a["monetary_value"] == pytest.approx(30.0)  # mean of 20 and 40; Jan 1 left out
    assert (a["orders"], a["revenue"]) == (4, 75.0)
    b = s.loc["b"]
    assert (b["frequency"], b["recency"], b["monetary_value"]) == (0, 0.0, 0.0)
    assert b["T"] == pytest.approx(4.0)
    days = summary_from_orders(orders, calibration_end="2024-02-05", time_unit="D")
    assert days.loc["a", "T"] == pytest.approx(35.0)


def test_customer_value_is_expected_purchases_times_expected_spend(cdnow_calibration, bgnbd):
    spend = GammaGammaModel().fit(cdnow_calibration)
    table = customer_value(cdnow_calibration, bgnbd, spend, horizon=39)
    assert len(table) == 2357
    np.testing.assert_allclose(
        table["expected_value"], table["expected_purchases"] * table["expected_average_value"]
    )
    assert table["expected_value"].is_monotonic_decreasing
    # a customer with no repeat purchase expects the population mean spend p·γ/(q−1)
    p, q, g = spend.params_
    one_timer = table[table["frequency"] == 0].iloc[0]
    assert one_timer["expected_average_value"] == pytest.approx(p * g / (q - 1))


def test_unfitted_model_and_bad_summary_give_clear_errors():
    with pytest.raises(ConfigError, match="fit"):
        BetaGeoModel().probability_alive(1, 1.0, 2.0)
    with pytest.raises(InputError, match="summary_from_orders"):
        BetaGeoModel().fit(pd.DataFrame({"frequency": [1]}))
    with pytest.raises(InputError, match="repeat purchase"):
        GammaGammaModel().fit(pd.DataFrame({"frequency": [0], "monetary_value": [0.0]}))
    with pytest.raises(ConfigError, match="time_unit"):
        summary_from_orders(pd.DataFrame({"person_id": [], "ts": [], "value": []}), time_unit="M")  # type: ignore[arg-type]


def test_gamma_gamma_likelihood_is_a_density_of_the_mean_spend():
    from scipy.integrate import quad

    from shopfunnel.customers.clv import gamma_gamma_log_likelihood

    for x in (1, 3, 10):
        total, _ = quad(
            lambda m, x=x: math.exp(
                gamma_gamma_log_likelihood((6.25, 3.74, 15.44), np.array([x]), np.array([m]))[0]
            ),
            0,
            np.inf,
        )
        assert total == pytest.approx(1.0, abs=1e-6)


def test_gamma_gamma_fit_recovers_the_parameters_of_simulated_spend():
    rng = np.random.default_rng(11)
    p, q, gamma = 4.0, 3.0, 20.0
    n = 5000
    nu = rng.gamma(q, 1 / gamma, n)
    x = rng.integers(1, 8, n)
    means = np.array([rng.gamma(p, 1 / nu[i], x[i]).mean() for i in range(n)])
    fit = GammaGammaModel().fit(pd.DataFrame({"frequency": x, "monetary_value": means}))
    assert fit.params_["p"] == pytest.approx(p, rel=0.1)
    assert fit.params_["q"] == pytest.approx(q, rel=0.15)
    assert fit.params_["gamma"] == pytest.approx(gamma, rel=0.2)


def test_holdout_check_compares_predicted_and_actual_holdout_purchases():
    from shopfunnel.customers.clv import holdout_check

    orders = cdnow_orders("sample")
    table = holdout_check(orders, calibration_end="1997-09-30").set_index("frequency")
    assert table.loc["all", "customers"] == 2357
    assert list(table.index[:3]) == ["0", "1", "2"] and table.index[-2] == "7+"
    # actual: repeat purchase days from 1997-10-01 to 1998-06-30, counted by hand here
    days = orders.assign(day=orders["ts"].dt.normalize()).drop_duplicates(["person_id", "day"])
    in_holdout = int((days["day"] > "1997-09-30").sum())
    assert table.loc["all", "actual"] * 2357 == pytest.approx(in_holdout)
    # predicted: the model's conditional expectation over the 39-week holdout
    summary = summary_from_orders(orders, calibration_end="1997-09-30")
    model = BetaGeoModel().fit(summary)
    expected = model.expected_purchases(
        39, summary["frequency"], summary["recency"], summary["T"]
    ).mean()
    assert table.loc["all", "predicted"] == pytest.approx(expected)
    # the model tracks the holdout within 15% overall on CDNOW
    assert table.loc["all", "predicted"] == pytest.approx(table.loc["all", "actual"], rel=0.15)
