"""A store shopfunnel's sample generator did not make: GA4 event names, no order values,
a few to many sessions a day over months, and incidents planted by hand.

Independent of :mod:`shopfunnel.sample` on purpose, so the diagnosis is checked on data
its own generator did not shape. Each session walks page_view → view_item → add_to_cart →
begin_checkout → add_shipping_info → add_payment_info → purchase, moving on with a fixed
probability per step (the ``rates``), changed during a planted incident.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

STEPS = ["page_view", "view_item", "add_to_cart", "begin_checkout", "add_shipping_info",
         "add_payment_info", "purchase"]
RATES = [0.7, 0.5, 0.7, 0.9, 0.85, 0.8]  # into view_item, add_to_cart, …, purchase


@dataclass(frozen=True)
class Planted:
    """From ``start`` for ``days`` days, sessions on ``device`` (None: all) that reach the
    step before ``into`` move on to ``into`` with probability ``rate``."""

    into: str
    start: date
    days: int
    rate: float
    device: str | None = None


@dataclass
class ForeignStore:
    sessions_per_day: float = 15.0
    days: int = 180
    start: date = date(2024, 1, 1)
    mobile_share: float = 0.6
    seed: int = 0
    planted: list[Planted] = field(default_factory=list)

    def events(self) -> pd.DataFrame:
        rng = np.random.default_rng(self.seed)
        rows = []
        persons = max(int(self.sessions_per_day * self.days / 5), 1)
        for d in range(self.days):
            day = self.start + timedelta(days=d)
            for s in range(int(rng.poisson(self.sessions_per_day))):
                person = f"p{int(rng.integers(persons))}"
                device = "mobile" if rng.random() < self.mobile_share else "desktop"
                t = datetime(day.year, day.month, day.day) + timedelta(seconds=int(rng.integers(86_000)))
                session = f"{person}-{d}-{s}"
                for k, event in enumerate(STEPS):
                    if k:
                        rate = RATES[k - 1]
                        for inc in self.planted:
                            if (inc.into == event and inc.start <= day < inc.start + timedelta(days=inc.days)
                                    and inc.device in (None, device)):
                                rate = inc.rate
                        if rng.random() >= rate:
                            break
                    rows.append({"event_id": f"{session}-{k}", "ts": t + timedelta(seconds=20 * k),
                                 "event": event, "anonymous_id": person, "session_id": session,
                                 "device": device, "country": "DE" if rng.random() < 0.5 else "FR"})
        return pd.DataFrame(rows)
