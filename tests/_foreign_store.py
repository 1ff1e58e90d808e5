"""A store shopfunnel's sample generator did not make: GA4 event names, no order values,
a few to many sessions a day over months, and incidents planted by hand.

Independent of :mod:`shopfunnel.sample` on purpose, so the diagnosis is checked on data
its own generator did not shape. Each session walks page_view → view_item → add_to_cart →
begin_checkout → add_shipping_info → add_payment_info → purchase, moving on with a fixed
probability per step (the ``rates``), changed during a planted incident. Optionally each
session carries a ``browser`` property, weekends convert differently at every step, and
every day's rates scatter around their mean (a store's mix and habits changing day to day:
extra-binomial noise, with no incident).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

STEPS = [
    "page_view",
    "view_item",
    "add_to_cart",
    "begin_checkout",
    "add_shipping_info",
    "add_payment_info",
    "purchase",
]
RATES = [0.7, 0.5, 0.7, 0.9, 0.85, 0.8]  # into view_item, add_to_cart, …, purchase


@dataclass(frozen=True)
class Planted:
    """From ``start`` for ``days`` days, sessions on ``device`` (None: all) that reach the
    step before ``into`` move on to ``into`` with probability ``rate``."""

    into: str
    start: date
    days: float
    rate: float
    device: str | None = None
    browser: str | None = None
    hour: int = 0  # the incident starts at this hour of ``start`` (UTC)

    @property
    def begin(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, self.hour)

    @property
    def finish(self) -> datetime:
        return self.begin + timedelta(days=self.days)


@dataclass
class ForeignStore:
    sessions_per_day: float = 15.0
    days: int = 180
    start: date = date(2024, 1, 1)
    mobile_share: float = 0.6
    seed: int = 0
    planted: list[Planted] = field(default_factory=list)
    browsers: dict[str, float] | None = None  # share of sessions per browser property
    weekend_factor: float = 1.0  # multiplier on every step's rate at weekends
    daily_noise: float = 0.0  # sd of each day's log-odds shift of every step (no incident)

    def events(self) -> pd.DataFrame:
        rng = np.random.default_rng(self.seed)
        rows = []
        persons = max(int(self.sessions_per_day * self.days / 5), 1)
        names = list(self.browsers or {})
        shares = np.array(list((self.browsers or {}).values()), dtype=float)
        for d in range(self.days):
            day = self.start + timedelta(days=d)
            shift = (
                rng.normal(0.0, self.daily_noise, len(RATES))
                if self.daily_noise
                else np.zeros(len(RATES))
            )
            factor = self.weekend_factor if day.weekday() >= 5 else 1.0
            day_rates = [_shifted(r * factor, x) for r, x in zip(RATES, shift, strict=True)]
            for s in range(int(rng.poisson(self.sessions_per_day))):
                person = f"p{int(rng.integers(persons))}"
                device = "mobile" if rng.random() < self.mobile_share else "desktop"
                browser = (
                    names[int(rng.choice(len(names), p=shares / shares.sum()))] if names else None
                )
                t = datetime(day.year, day.month, day.day) + timedelta(
                    seconds=int(rng.integers(86_000))
                )
                session = f"{person}-{d}-{s}"
                props = json.dumps({"browser": browser}) if browser else None
                for k, event in enumerate(STEPS):
                    if k:
                        rate = day_rates[k - 1]
                        for inc in self.planted:
                            if (
                                inc.into == event
                                and inc.begin <= t < inc.finish
                                and inc.device in (None, device)
                                and inc.browser in (None, browser)
                            ):
                                rate = inc.rate
                        if rng.random() >= rate:
                            break
                    rows.append(
                        {
                            "event_id": f"{session}-{k}",
                            "ts": t + timedelta(seconds=20 * k),
                            "event": event,
                            "anonymous_id": person,
                            "session_id": session,
                            "device": device,
                            "country": "DE" if rng.random() < 0.5 else "FR",
                            "properties": props,
                        }
                    )
        return pd.DataFrame(rows)


def _shifted(rate: float, log_odds: float) -> float:
    rate = min(max(rate, 1e-6), 1 - 1e-6)
    x = np.log(rate / (1 - rate)) + log_odds
    return float(1 / (1 + np.exp(-x)))
