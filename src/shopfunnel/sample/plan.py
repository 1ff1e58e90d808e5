"""A sample's parameters resolved once: the period, weekday weights, traffic sources and
the incidents translated into days from the start of the simulated span."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from shopfunnel.errors import ConfigError
from shopfunnel.sample import model as m
from shopfunnel.sample.experiment import ActiveExperiment, PlantedExperiment, activate
from shopfunnel.sample.incidents import (
    CheckoutFailure,
    ConversionDrop,
    Incident,
    PaymentOutage,
    TrafficSpike,
    to_datetime,
)

# Visitors simulated per block (plus the block's share of any traffic spike).
BLOCK_VISITORS = 20_000


@dataclass(frozen=True)
class Plan:
    seed: int
    start: datetime
    days: int
    span_start: datetime
    weekday_of_day: np.ndarray  # weekday (0=Mon) of each day of the span
    day_weight: np.ndarray  # arrival weight of each day of the span
    failures: tuple[tuple[float, float, int, int], ...]  # begin, end (days), device, level
    outages: tuple[tuple[float, float], ...]
    # begin, end (days), level, keep, device, channel, country (indices; -1: any)
    drops: tuple[tuple[float, float, int, float, int, int, int], ...]
    spikes: tuple[
        tuple[float, float, int, int, float], ...
    ]  # begin, end, channel, source, mean extra
    sources: tuple[tuple[str | None, str | None, str | None, str | None], ...]
    source_channel: np.ndarray
    source_cdf: np.ndarray  # channel index + within-channel cumulative weight
    abandoned_cart_source: int
    tag: str  # short hash of start, days and incidents, part of every event_id
    experiment: ActiveExperiment | None = None

    @property
    def window(self) -> tuple[float, float]:
        return float(m.WARMUP_DAYS), float(m.WARMUP_DAYS + self.days)


def make_plan(
    seed: int,
    start: str | date | datetime,
    days: int,
    incidents: Sequence[Incident],
    experiment: PlantedExperiment | None = None,
) -> Plan:
    """Check the arguments and resolve everything the blocks share."""
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed={seed!r} is not valid: use a whole number ≥ 0")
    if not isinstance(days, int | np.integer) or days < 1:
        raise ConfigError(f"days={days!r} is not valid: use a whole number of days ≥ 1")
    t0 = to_datetime(start)
    if t0 != datetime(t0.year, t0.month, t0.day):
        raise ConfigError(f"start={start!r} must be a date (midnight UTC), e.g. 2024-01-01")
    span_start = t0 - timedelta(days=m.WARMUP_DAYS)
    span_days = m.WARMUP_DAYS + int(days)
    weekdays = np.array([(span_start + timedelta(days=d)).weekday() for d in range(span_days)])
    day_weight = m.WEEKDAY_WEIGHT[weekdays]

    sources: list[tuple[str | None, str | None, str | None, str | None]] = []
    source_channel: list[int] = []
    cdf: list[float] = []
    for c, channel in enumerate(m.CHANNELS):
        combos = m.SOURCES[channel]
        w = np.array([x[4] for x in combos])
        for combo, cum in zip(combos, np.cumsum(w) / w.sum(), strict=True):
            sources.append(combo[:4])
            source_channel.append(c)
            cdf.append(c + cum)
        cdf[-1] = c + 1.0
    abandoned = len(sources)
    sources.append(m.ABANDONED_CART_SOURCE)
    source_channel.append(m.CHANNELS.index("email"))

    def days_from_span(t: datetime) -> float:
        return (t - span_start).total_seconds() / 86_400

    end = t0 + timedelta(days=int(days))
    failures: list[tuple[float, float, int, int]] = []
    outages: list[tuple[float, float]] = []
    drops: list[tuple[float, float, int, float, int, int, int]] = []
    spikes: list[tuple[float, float, int, int, float]] = []
    for inc in incidents:
        if not isinstance(inc, CheckoutFailure | PaymentOutage | TrafficSpike | ConversionDrop):
            raise ConfigError(
                f"{inc!r} is not an incident: use CheckoutFailure, PaymentOutage, TrafficSpike "
                "or ConversionDrop"
            )
        if inc.end <= t0 or inc.begin >= end:
            raise ConfigError(
                f"the {inc} falls outside the sample ({t0:%Y-%m-%d} for {days} days): move it "
                "inside, or change --start/--days"
            )
        if isinstance(inc, CheckoutFailure):
            failures.append(
                (
                    days_from_span(inc.begin),
                    days_from_span(inc.end),
                    m.DEVICES.index(inc.device),
                    inc.level,
                )
            )
        elif isinstance(inc, PaymentOutage):
            outages.append((days_from_span(inc.begin), days_from_span(inc.end)))
        elif isinstance(inc, ConversionDrop):
            seg = dict(inc.segment)
            drops.append(
                (
                    days_from_span(inc.begin),
                    days_from_span(inc.end),
                    inc.level,
                    float(inc.keep),
                    m.DEVICES.index(seg["device"]) if "device" in seg else -1,
                    m.CHANNELS.index(seg["channel"]) if "channel" in seg else -1,
                    m.COUNTRIES.index(seg["country"]) if "country" in seg else -1,
                )
            )
        elif isinstance(inc, TrafficSpike):
            ch = m.CHANNELS.index(inc.channel)
            utm_source, utm_medium, _, referrer, _ = m.SOURCES[inc.channel][0]
            src = len(sources)
            sources.append((utm_source, utm_medium, inc.campaign, referrer))
            source_channel.append(ch)
            b, e = days_from_span(inc.begin), days_from_span(inc.end)
            # The channel's usual new visitors in the window, per block, times (multiplier - 1).
            lo, hi = max(int(np.floor(b)), 0), min(int(np.ceil(e)), span_days)
            share = day_weight[lo:hi].sum() / day_weight.sum() * (e - b) / max(hi - lo, 1e-9)
            extra = BLOCK_VISITORS * m.NEW_MIX[ch] * share * (inc.multiplier - 1.0)
            spikes.append((b, e, ch, src, float(extra)))

    return Plan(
        seed=int(seed),
        start=t0,
        days=int(days),
        span_start=span_start,
        weekday_of_day=weekdays,
        day_weight=day_weight,
        failures=tuple(failures),
        outages=tuple(outages),
        drops=tuple(drops),
        spikes=tuple(spikes),
        sources=tuple(sources),
        source_channel=np.array(source_channel),
        source_cdf=np.array(cdf),
        abandoned_cart_source=abandoned,
        tag=hashlib.sha1(
            f"{t0.isoformat()}|{int(days)}|{sorted(map(repr, incidents))}".encode()
            + (b"" if experiment is None else repr(experiment).encode())
        ).hexdigest()[:4],
        experiment=activate(experiment, t0, int(days), span_start),
    )
