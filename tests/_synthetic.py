"""A tiny, fully controlled session simulator for diagnosis tests.

Independent of the product's sample generator on purpose: every rate here is a
known constant, so a test can say what the diagnosis must find. Sessions get a
device, channel and campaign, a furthest step drawn from per-step continuation
probabilities, and events up to that step (each session has a page_view first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

STEPS = [
    "view_item",
    "add_to_cart",
    "begin_checkout",
    "add_shipping_info",
    "add_payment_info",
    "purchase",
]
BASE = [0.5, 0.3, 0.55, 0.85, 0.9, 0.85]
START = datetime(2024, 1, 1)


@dataclass
class Sim:
    days: int = 84
    sessions_per_day: float = 1500
    seed: int = 0
    devices: dict = field(default_factory=lambda: {"mobile": 0.55, "desktop": 0.4, "tablet": 0.05})
    channels: dict = field(
        default_factory=lambda: {
            "Organic Search": 0.35,
            "Direct": 0.25,
            "Paid Social": 0.2,
            "Email": 0.1,
            "Paid Search": 0.1,
        }
    )
    # multiplier on every continuation probability, per device / channel
    device_quality: dict = field(
        default_factory=lambda: {"mobile": 0.9, "desktop": 1.05, "tablet": 1.0}
    )
    channel_quality: dict = field(
        default_factory=lambda: {
            "Organic Search": 1.05,
            "Direct": 1.0,
            "Paid Social": 0.8,
            "Email": 1.15,
            "Paid Search": 1.0,
        }
    )
    weekend_volume: float = 1.3
    weekend_quality: float = 1.0  # multiplier on every continuation probability at weekends
    broken: list = field(default_factory=list)  # (start_day, days, device, step_event)
    outages: list = field(default_factory=list)  # (start datetime, hours)
    spikes: list = field(
        default_factory=list
    )  # (start_day, days, campaign, channel, extra sessions per day)
    spike_conversion: float = 0.1  # multiplier on the spike's visit → product view rate
    extra_events: dict = field(
        default_factory=dict
    )  # event -> (p among converters, p among droppers) at add_to_cart


def simulate(sim: Sim) -> pd.DataFrame:
    rng = np.random.default_rng(sim.seed)
    day_idx = np.arange(sim.days)
    weekday = np.array([(START + timedelta(days=int(d))).weekday() for d in day_idx])
    lam = sim.sessions_per_day * np.where(weekday >= 5, sim.weekend_volume, 1.0)
    per_day = rng.poisson(lam)
    day = np.repeat(day_idx, per_day)
    n = len(day)
    secs = rng.integers(0, 86400, n)
    device = rng.choice(list(sim.devices), n, p=list(sim.devices.values()))
    channel = rng.choice(list(sim.channels), n, p=list(sim.channels.values()))
    campaign = np.where(channel == "Paid Social", rng.choice(["spring", "brand"], n), None).astype(
        object
    )
    spike_flag = np.zeros(n, bool)
    for start_day, ndays, camp, chan, extra in sim.spikes:
        m = int(extra * ndays)
        day = np.concatenate([day, rng.integers(start_day, start_day + ndays, m)])
        secs = np.concatenate([secs, rng.integers(0, 86400, m)])
        device = np.concatenate(
            [device, rng.choice(list(sim.devices), m, p=list(sim.devices.values()))]
        )
        channel = np.concatenate([channel, np.full(m, chan, dtype=object)])
        campaign = np.concatenate([campaign, np.full(m, camp, dtype=object)])
        spike_flag = np.concatenate([spike_flag, np.ones(m, bool)])
    n = len(day)
    q = np.array([sim.device_quality[d] for d in device]) * np.array(
        [sim.channel_quality[c] for c in channel]
    )
    wd = np.array([(START + timedelta(days=int(d))).weekday() for d in day])
    q = q * np.where(wd >= 5, sim.weekend_quality, 1.0)
    ts0 = np.array(
        [START + timedelta(days=int(d), seconds=int(s)) for d, s in zip(day, secs, strict=True)]
    )
    level = np.zeros(n, int)
    alive = np.ones(n, bool)
    for k, (event, p) in enumerate(zip(STEPS, BASE, strict=True)):
        pk = np.minimum(p * q, 0.98)
        if k == 0:
            pk = np.where(spike_flag, pk * sim.spike_conversion, pk)
        for start_day, ndays, dev, step in sim.broken:
            if step == event:
                pk = np.where(
                    (device == dev) & (day >= start_day) & (day < start_day + ndays), 0.0, pk
                )
        for start, hours in sim.outages:
            if event == "purchase":
                t = ts0 + timedelta(minutes=5 * k)
                pk = np.where((t >= start) & (t < start + timedelta(hours=hours)), 0.0, pk)
        alive &= rng.random(n) < pk
        level[alive] = k + 1
    rows = []
    for i in range(n):
        sid = f"s{i}"
        base = ts0[i]
        common = {
            "session_id": sid,
            "anonymous_id": f"p{i}",
            "device": device[i],
            "channel": channel[i],
            "utm_campaign": campaign[i],
        }
        rows.append({"ts": base, "event": "page_view", **common})
        for k in range(level[i]):
            ev = STEPS[k]
            rec = {"ts": base + timedelta(minutes=k + 1), "event": ev, **common}
            if ev == "purchase":
                rec["order_id"] = f"o{i}"
                rec["value"] = round(float(rng.lognormal(4.2, 0.6)), 2)
            rows.append(rec)
        if level[i] >= 2:
            for ev, (p_conv, p_drop) in sim.extra_events.items():
                if rng.random() < (p_conv if level[i] == len(STEPS) else p_drop):
                    rows.append(
                        {"ts": base + timedelta(minutes=1, seconds=30), "event": ev, **common}
                    )
    df = pd.DataFrame(rows)
    df["ts"] = pd.to_datetime(df["ts"]).dt.tz_localize("UTC")
    df["event_id"] = [f"e{i}" for i in range(len(df))]
    return df
