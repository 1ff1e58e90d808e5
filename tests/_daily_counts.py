"""Daily funnel counts drawn directly, without events: a store of any traffic, from ten
sessions a day to a hundred thousand, for a year, in milliseconds.

Independent of :mod:`shopfunnel.sample` and of the store: per day, sessions are Poisson,
split over device × channel × country cells by fixed shares, and each cell's sessions
pass the steps as a chain of binomial draws. Rates may change at weekends and scatter
from day to day (extra-binomial noise on the log-odds, the same for every cell that
day), and incidents set a step's rate in one segment for a span of days. The result has
the columns :func:`shopfunnel.diagnosis.level_shifts.shifts_from_counts` reads.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

STEPS = [
    ("Product view", "view_item"),
    ("Add to cart", "add_to_cart"),
    ("Checkout", "begin_checkout"),
    ("Shipping info", "add_shipping_info"),
    ("Payment info", "add_payment_info"),
    ("Purchase", "purchase"),
]
RATES = (0.7, 0.5, 0.7, 0.9, 0.85, 0.8)
SHARES = {
    "device": {"mobile": 0.6, "desktop": 0.35, "tablet": 0.05},
    "channel": {"Organic Search": 0.4, "Direct": 0.3, "Paid Social": 0.2, "Email": 0.1},
    "country": {"DE": 0.5, "FR": 0.3, "NL": 0.2},
}


@dataclass(frozen=True)
class Change:
    """From day ``start`` (0 = the first day) for ``days`` days, step ``k`` (1 … 6) is
    passed with probability ``rate`` by the sessions of ``segment`` (e.g. {"device":
    "mobile"}; empty: everyone)."""

    k: int
    start: int
    days: int
    rate: float
    segment: dict = field(default_factory=dict)


@dataclass
class DailyCounts:
    sessions_per_day: float
    days: int = 365
    seed: int = 0
    first_day: date = date(2024, 1, 1)
    weekend_factor: float = 1.0
    daily_noise: float = 0.0
    changes: list[Change] = field(default_factory=list)
    rates: tuple[float, ...] = RATES

    @property
    def last_day(self) -> date:
        return self.first_day + timedelta(days=self.days - 1)

    def cells(self) -> pd.DataFrame:
        rng = np.random.default_rng(self.seed)
        keys = list(itertools.product(*(list(v) for v in SHARES.values())))
        share = np.array(
            [np.prod([SHARES[d][v] for d, v in zip(SHARES, key, strict=True)]) for key in keys]
        )
        C, K, D = len(keys), len(self.rates), self.days
        n = rng.multinomial(rng.poisson(self.sessions_per_day, D), share)  # (D, C)
        weekday = np.array([(self.first_day + timedelta(days=d)).weekday() for d in range(D)])
        base = np.log(np.array(self.rates) / (1 - np.array(self.rates)))
        logit = (
            base[None, :] + rng.normal(0.0, self.daily_noise, (D, K))
            if self.daily_noise
            else np.tile(base, (D, 1))
        )
        p = 1 / (1 + np.exp(-logit))
        p = np.where((weekday >= 5)[:, None], np.minimum(p * self.weekend_factor, 0.999), p)
        p = np.repeat(p[:, None, :], C, axis=1)  # (D, C, K)
        for ch in self.changes:
            cells = np.array(
                [
                    all(dict(zip(SHARES, key, strict=True))[d] == v for d, v in ch.segment.items())
                    for key in keys
                ]
            )
            p[ch.start : ch.start + ch.days, cells, ch.k - 1] = ch.rate
        counts = np.zeros((D, C, K + 1), dtype=np.int64)
        counts[:, :, 0] = n
        for k in range(1, K + 1):
            counts[:, :, k] = rng.binomial(counts[:, :, k - 1], p[:, :, k - 1])
        days = pd.to_datetime([self.first_day + timedelta(days=d) for d in range(D)])
        frame = pd.DataFrame(
            {
                **{dim: np.tile([key[i] for key in keys], D) for i, dim in enumerate(SHARES)},
                "period": np.repeat(days, C),
                **{f"n{k}": counts[:, :, k].ravel() for k in range(K + 1)},
            }
        )
        return frame[frame["n0"] > 0].reset_index(drop=True)
