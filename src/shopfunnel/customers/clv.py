"""Customer lifetime value: BG/NBD for how often and how long, Gamma-Gamma for how much.

Both models are fitted by maximum likelihood with SciPy (parameters optimised in log
space with L-BFGS-B; why not a library: ``docs/adr/0010-clv-own-scipy-mle.md``). They
follow the estimator shape: settings in the constructor, ``fit()`` returns ``self``,
fitted values end in ``_``, results are DataFrames.

Pipeline::

    summary = summary_from_orders(orders, calibration_end="1997-09-30", time_unit="W")
    bgnbd = BetaGeoModel().fit(summary)
    spend = GammaGammaModel().fit(summary[summary.frequency > 0])
    table = customer_value(summary, bgnbd, spend, horizon=52)

References: Fader, Hardie & Lee (2005), "Counting your customers the easy way: an
alternative to the Pareto/NBD model", Marketing Science 24(2) (BG/NBD; the
likelihood is their eq. 6, the conditional expectation eq. 10, P(alive) from their
technical note); Fader & Hardie (2013), "The Gamma-Gamma model of monetary value".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import betaln, gammaln, hyp2f1

from shopfunnel._time import naive_utc, naive_utc_timestamp
from shopfunnel.errors import ConfigError, InputError

TimeUnit = Literal["D", "W"]
_UNIT_DAYS = {"D": 1.0, "W": 7.0}


def summary_from_orders(
    orders: pd.DataFrame,
    *,
    calibration_end: str | pd.Timestamp | None = None,
    time_unit: TimeUnit = "W",
    person_col: str = "person_id",
    ts_col: str = "ts",
    value_col: str = "value",
) -> pd.DataFrame:
    """Per customer: ``frequency``, ``recency``, ``T`` and ``monetary_value`` (the RFM
    summary BG/NBD and Gamma-Gamma take).

    Definitions (those of Fader, Hardie & Lee 2005):

    * Orders after ``calibration_end`` (a date; orders *on* that day count) are left out.
      Default: the day of the last order in ``orders``.
    * Purchases are counted by calendar day: several orders on one day are one purchase
      whose value is their sum.
    * ``frequency`` (x): purchase days after the first one (repeat purchases).
    * ``recency`` (t_x): time from the first purchase day to the last, in ``time_unit``
      (``"W"`` weeks of 7 days, ``"D"`` days); 0 when ``frequency`` is 0.
    * ``T``: time from the first purchase day to ``calibration_end``, in ``time_unit``.
    * ``monetary_value``: mean value of the repeat purchase days (the first day is left
      out, as the Gamma-Gamma model asks); 0 when ``frequency`` is 0.
    * ``first_purchase``, ``last_purchase``: the days; ``orders`` and ``revenue``: all
      orders and their total value up to ``calibration_end``, first day included.

    Rows are indexed by ``person_col``, sorted by it.
    """
    if time_unit not in _UNIT_DAYS:
        raise ConfigError(f"time_unit={time_unit!r} is not valid: use 'W' (weeks) or 'D' (days)")
    missing = [c for c in (person_col, ts_col, value_col) if c not in orders.columns]
    if missing:
        raise InputError(
            f"the orders table has no column(s) {missing}: it needs {person_col}, {ts_col} "
            f"and {value_col} (as Store.table('orders') gives)"
        )
    days = naive_utc(orders[ts_col]).dt.normalize()
    frame = pd.DataFrame(
        {
            "person": orders[person_col].astype(str).to_numpy(),
            "day": days.to_numpy(),
            "value": pd.to_numeric(orders[value_col], errors="coerce")
            .fillna(0.0)
            .astype(float)
            .to_numpy(),
        }
    )
    end = (
        frame["day"].max()
        if calibration_end is None
        else naive_utc_timestamp(calibration_end).normalize()
    )
    frame = frame[frame["day"] <= end]
    columns = [
        "frequency",
        "recency",
        "T",
        "monetary_value",
        "first_purchase",
        "last_purchase",
        "orders",
        "revenue",
    ]
    if frame.empty:
        return pd.DataFrame(columns=columns).rename_axis(person_col)
    per_order = frame.groupby("person").agg(orders=("value", "size"), revenue=("value", "sum"))
    daily = frame.groupby(["person", "day"], as_index=False)["value"].sum()
    daily = daily.sort_values(["person", "day"])
    g = daily.groupby("person")
    first = g["day"].transform("min")
    daily["repeat_value"] = daily["value"].where(daily["day"] != first)
    out = pd.DataFrame(
        {
            "first_purchase": g["day"].min(),
            "last_purchase": g["day"].max(),
            "frequency": g["day"].size() - 1,
            "repeat_total": daily.groupby("person")["repeat_value"].sum(),
        }
    )
    unit = pd.Timedelta(days=_UNIT_DAYS[time_unit])
    out["recency"] = (out["last_purchase"] - out["first_purchase"]) / unit
    out["T"] = (end - out["first_purchase"]) / unit
    out["monetary_value"] = np.where(
        out["frequency"] > 0, out["repeat_total"] / out["frequency"].clip(lower=1), 0.0
    )
    out = out.join(per_order)
    out["frequency"] = out["frequency"].astype("int64")
    out.index.name = person_col
    return out[columns]


# -- BG/NBD ----------------------------------------------------------------------------------


def _fit_log_params(
    nll: Callable[[np.ndarray], float], n_params: int, initial: np.ndarray | None
) -> optimize.OptimizeResult:
    """Minimise ``nll`` over log-parameters; if L-BFGS-B does not report convergence from
    the first start, try two more starts and keep the best."""
    x0 = np.zeros(n_params) if initial is None else np.log(initial)
    bounds = [(-15.0, 15.0)] * n_params
    options = {"ftol": 1e-13, "gtol": 1e-9, "maxiter": 2000}
    best = optimize.minimize(nll, x0, method="L-BFGS-B", bounds=bounds, options=options)
    if not best.success:
        for start in (x0 + 0.5, x0 - 0.5):
            res = optimize.minimize(nll, start, method="L-BFGS-B", bounds=bounds, options=options)
            if res.fun < best.fun:
                best = res
    return best


def _grouped(summary: pd.DataFrame, cols: list[str]) -> tuple[np.ndarray, ...]:
    """Unique rows of ``cols`` with their counts: the likelihood is a weighted sum."""
    missing = [c for c in cols if c not in summary.columns]
    if missing:
        raise InputError(
            f"the summary has no column(s) {missing}: build it with summary_from_orders()"
        )
    counted = summary.groupby(cols, sort=False).size().reset_index(name="__n")
    return tuple(counted[c].to_numpy(dtype=float) for c in cols) + (
        counted["__n"].to_numpy(dtype=float),
    )


def bgnbd_log_likelihood(
    params: tuple[float, float, float, float],
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,
) -> np.ndarray:
    """Each customer's BG/NBD log-likelihood (Fader, Hardie & Lee 2005, eq. 6).

    ``L = B(a, b+x)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+T)^(r+x))
    + 1{x>0} · B(a+1, b+x-1)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+t_x)^(r+x))``.
    """
    r, alpha, a, b = params
    x, t_x, T = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return a1 + a2 + np.logaddexp(a3, a4)


@dataclass
class BetaGeoModel:
    """The BG/NBD model (beta-geometric / negative binomial distribution).

    While alive, a customer buys as a Poisson process with rate λ ~ Gamma(r, α); after
    each purchase they drop out with probability p ~ Beta(a, b). Fitted on a summary from
    :func:`summary_from_orders` (columns ``frequency``, ``recency``, ``T``).

    Fitted attributes: ``params_`` (Series r, alpha, a, b), ``log_likelihood_`` (total
    over customers), ``n_customers_``, ``converged_`` (the optimiser's verdict) and
    ``summary`` (a DataFrame of the parameters). α is in the summary's time unit, and so
    is every horizon given to the predictions.

    ``initial`` optionally gives starting values (r, α, a, b); the default start is
    r = a = b = 1 and α = a tenth of the longest ``T``.
    """

    initial: tuple[float, float, float, float] | None = None

    def fit(self, summary: pd.DataFrame) -> BetaGeoModel:
        """Maximum-likelihood fit; returns ``self``."""
        x, t_x, T, n = _grouped(summary, ["frequency", "recency", "T"])
        if n.sum() == 0:
            raise InputError("no customers to fit the BG/NBD model on: the summary is empty")
        if np.any(t_x > T) or np.any(x < 0):
            raise InputError(
                "the summary has recency > T or negative frequency: rebuild it "
                "with summary_from_orders()"
            )
        scale = max(float(np.max(T)), 1.0) / 10.0

        def nll(log_params: np.ndarray) -> float:
            r, alpha, a, b = np.exp(log_params)
            ll = bgnbd_log_likelihood((r, alpha * scale, a, b), x, t_x, T)
            return -float(np.sum(n * ll)) / n.sum()

        initial = None if self.initial is None else np.array(self.initial) / [1, scale, 1, 1]
        res = _fit_log_params(nll, 4, initial)
        r, alpha, a, b = np.exp(res.x)
        self.params_ = pd.Series({"r": r, "alpha": alpha * scale, "a": a, "b": b})
        self.log_likelihood_ = float(
            np.sum(n * bgnbd_log_likelihood(tuple(self.params_), x, t_x, T))
        )
        self.n_customers_ = int(n.sum())
        self.converged_ = bool(res.success)
        return self

    @property
    def summary(self) -> pd.DataFrame:
        """The fitted parameters as a DataFrame (``parameter``, ``value``)."""
        self._check_fitted()
        return self.params_.rename("value").rename_axis("parameter").reset_index()

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise ConfigError("the model is not fitted yet: call .fit(summary) first")

    def probability_alive(
        self, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """P(alive | x, t_x, T) = 1 / (1 + 1{x>0} · a/(b+x-1) · ((α+T)/(α+t_x))^(r+x)).

        A customer with no repeat purchase is alive with probability 1 in this model
        (they cannot have dropped out before their first repeat purchase).
        """
        self._check_fitted()
        r, alpha, a, b = self.params_
        x, t_x, T = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = (
                np.log(a) - np.log(b + x - 1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
            )
        odds = np.where(x > 0, np.exp(np.minimum(log_ratio, 700.0)), 0.0)
        return 1.0 / (1.0 + odds)

    def expected_purchases(
        self, t: float, frequency: np.ndarray, recency: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """Expected number of purchases in the next ``t`` time units, given the history
        (FHL 2005, eq. 10)::

            E[Y(t) | x, t_x, T] = (a+b+x-1)/(a-1)
                · [1 - ((α+T)/(α+T+t))^(r+x) · ₂F₁(r+x, b+x; a+b+x-1; t/(α+T+t))]
                / (1 + 1{x>0} · a/(b+x-1) · ((α+T)/(α+t_x))^(r+x))

        ``t`` is in the summary's time unit. The formula divides by a − 1, so a fitted
        a of exactly 1 has no value here (it never happens in practice).
        """
        self._check_fitted()
        r, alpha, a, b = self.params_
        x, t_x, T = (np.asarray(v, dtype=float) for v in (frequency, recency, T))
        z = t / (alpha + T + t)
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
        term = 1.0 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp
        numer = (a + b + x - 1) / (a - 1) * term
        return numer * self.probability_alive(x, t_x, T)

    def expected_purchases_new_customer(self, t: float) -> float:
        """E[X(t)] for a customer just acquired (FHL 2005, eq. 9)."""
        self._check_fitted()
        r, alpha, a, b = self.params_
        z = t / (alpha + t)
        return float(
            (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, z))
        )


# -- Gamma-Gamma -----------------------------------------------------------------------------


def gamma_gamma_log_likelihood(
    params: tuple[float, float, float], frequency: np.ndarray, monetary_value: np.ndarray
) -> np.ndarray:
    """Each customer's Gamma-Gamma log-likelihood of the mean spend ``m`` over ``x``
    repeat purchases: the log density of m given x (Fader & Hardie 2013)::

        log L = lnΓ(px+q) - lnΓ(px) - lnΓ(q) + q ln γ + (px-1) ln m + px ln x
                - (px+q) ln(γ + x m)
    """
    p, q, gamma = params
    x, m = np.asarray(frequency, dtype=float), np.asarray(monetary_value, dtype=float)
    return (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(gamma)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(gamma + x * m)
    )


@dataclass
class GammaGammaModel:
    """The Gamma-Gamma spend model: a purchase's value ~ Gamma(p, ν) with ν ~ Gamma(q, γ)
    across customers; independent of the purchase process.

    Fitted on customers with ``frequency > 0`` and ``monetary_value > 0`` (others are left
    out, and counted in ``n_excluded_``). Fitted attributes: ``params_`` (Series p, q,
    gamma), ``log_likelihood_`` (Σ log density of each customer's mean spend),
    ``n_customers_``, ``converged_``, ``summary``.
    """

    initial: tuple[float, float, float] | None = None

    def fit(self, summary: pd.DataFrame) -> GammaGammaModel:
        """Maximum-likelihood fit; returns ``self``."""
        x, m, n = _grouped(summary, ["frequency", "monetary_value"])
        keep = (x > 0) & (m > 0)
        self.n_excluded_ = int(n[~keep].sum())
        x, m, n = x[keep], m[keep], n[keep]
        if n.sum() < 2:
            raise InputError(
                "too few customers with a repeat purchase to fit the Gamma-Gamma spend model "
                f"({int(n.sum())}); it needs customers with frequency > 0"
            )
        scale = float(np.average(m, weights=n))

        def nll(log_params: np.ndarray) -> float:
            p, q, g = np.exp(log_params)
            return -float(np.sum(n * gamma_gamma_log_likelihood((p, q, g * scale), x, m))) / n.sum()

        initial = None if self.initial is None else np.array(self.initial) / [1, 1, scale]
        res = _fit_log_params(nll, 3, initial)
        p, q, g = np.exp(res.x)
        self.params_ = pd.Series({"p": p, "q": q, "gamma": g * scale})
        self.log_likelihood_ = float(
            np.sum(n * gamma_gamma_log_likelihood(tuple(self.params_), x, m))
        )
        self.n_customers_ = int(n.sum())
        self.converged_ = bool(res.success)
        return self

    @property
    def summary(self) -> pd.DataFrame:
        """The fitted parameters as a DataFrame (``parameter``, ``value``)."""
        if not hasattr(self, "params_"):
            raise ConfigError("the model is not fitted yet: call .fit(summary) first")
        return self.params_.rename("value").rename_axis("parameter").reset_index()

    def expected_average_value(
        self, frequency: np.ndarray, monetary_value: np.ndarray
    ) -> np.ndarray:
        """E[spend per purchase | x, m] = p(γ + x m) / (p x + q - 1): a weighted mean of
        the population mean p γ/(q-1) and the customer's own mean ``m``. A customer with
        no repeat purchase gets the population mean, or NaN when q ≤ 1 (then it is
        infinite)."""
        if not hasattr(self, "params_"):
            raise ConfigError("the model is not fitted yet: call .fit(summary) first")
        p, q, gamma = self.params_
        x = np.asarray(frequency, dtype=float)
        m = np.where(x > 0, np.asarray(monetary_value, dtype=float), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = p * (gamma + x * m) / (p * x + q - 1)
        # with q ≤ 1 the population mean spend is infinite: no estimate for x = 0
        return np.where(p * x + q - 1 > 0, value, np.nan)


# -- per-customer value ----------------------------------------------------------------------


def customer_value(
    summary: pd.DataFrame,
    purchases: BetaGeoModel,
    spend: GammaGammaModel | None,
    *,
    horizon: float,
) -> pd.DataFrame:
    """Per customer: ``p_alive``, ``expected_purchases`` over the next ``horizon`` time
    units (the summary's unit), ``expected_average_value`` and
    ``expected_value = expected_purchases × expected_average_value`` (undiscounted money
    over the horizon). The summary's columns are kept; rows sorted by expected value,
    highest first (by expected purchases when there is no value).

    ``spend=None`` (e.g. too few repeat buyers to fit Gamma-Gamma) leaves the two value
    columns NaN rather than failing, so the purchase predictions still come out.
    """
    if horizon <= 0:
        raise ConfigError(f"horizon={horizon!r} must be positive (in the summary's time unit)")
    x, t_x, T = summary["frequency"], summary["recency"], summary["T"]
    out = summary.copy()
    out["p_alive"] = purchases.probability_alive(x, t_x, T)
    out["expected_purchases"] = purchases.expected_purchases(horizon, x, t_x, T)
    if spend is None:
        out["expected_average_value"] = np.nan
    else:
        out["expected_average_value"] = spend.expected_average_value(x, summary["monetary_value"])
    out["expected_value"] = out["expected_purchases"] * out["expected_average_value"]
    key = "expected_purchases" if spend is None else "expected_value"
    return out.sort_values(key, ascending=False, kind="stable")


def holdout_check(
    orders: pd.DataFrame,
    *,
    calibration_end: str | pd.Timestamp,
    observation_end: str | pd.Timestamp | None = None,
    time_unit: TimeUnit = "W",
    max_frequency: int = 7,
) -> pd.DataFrame:
    """Does BG/NBD fit this store? Fit on orders up to ``calibration_end``, predict the
    holdout period (the day after it to ``observation_end``, default the last order's
    day) and compare with what happened, by calibration frequency (FHL 2005, figure 4).

    Only customers whose first purchase is in the calibration period are counted. Per
    ``frequency`` (repeat purchase days in calibration, the last row holding
    ``max_frequency`` and more): ``customers``, ``actual`` (mean purchase days in the
    holdout) and ``predicted`` (mean of :meth:`BetaGeoModel.expected_purchases` over the
    holdout length); the last row, ``frequency = "all"``, is over every customer.
    """
    summary = summary_from_orders(orders, calibration_end=calibration_end, time_unit=time_unit)
    model = BetaGeoModel().fit(summary)
    cal_end = naive_utc_timestamp(calibration_end).normalize()
    days = naive_utc(orders["ts"]).dt.normalize()
    obs_end = (
        days.max() if observation_end is None else naive_utc_timestamp(observation_end).normalize()
    )
    if obs_end <= cal_end:
        raise ConfigError(
            f"observation_end {obs_end.date()} must be after calibration_end {cal_end.date()}"
        )
    holdout = pd.DataFrame(
        {"person": orders["person_id"].astype(str).to_numpy(), "day": days.to_numpy()}
    )
    holdout = holdout[(holdout["day"] > cal_end) & (holdout["day"] <= obs_end)]
    actual = holdout.drop_duplicates().groupby("person").size()
    length = (obs_end - cal_end) / pd.Timedelta(days=_UNIT_DAYS[time_unit])
    table = pd.DataFrame(
        {
            "frequency": summary["frequency"].clip(upper=max_frequency),
            "actual": actual.reindex(summary.index, fill_value=0).to_numpy(),
            "predicted": model.expected_purchases(
                length, summary["frequency"], summary["recency"], summary["T"]
            ),
        }
    )
    by_x = (
        table.groupby("frequency")
        .agg(
            customers=("actual", "size"), actual=("actual", "mean"), predicted=("predicted", "mean")
        )
        .reset_index()
    )
    by_x["frequency"] = by_x["frequency"].astype(str)
    by_x.loc[by_x["frequency"] == str(max_frequency), "frequency"] = f"{max_frequency}+"
    total = pd.DataFrame(
        [
            {
                "frequency": "all",
                "customers": len(table),
                "actual": table["actual"].mean(),
                "predicted": table["predicted"].mean(),
            }
        ]
    )
    return pd.concat([by_x, total], ignore_index=True)
