"""Diagnose a store: find the weakest stage and why, rank the gaps by money, say what to do.

:func:`diagnose` runs every analysis over one table of sessions
(:class:`shopfunnel.diagnosis.session_levels.SessionLevels`) and collects their findings:

- ``benchmark``: the store against published rates (:mod:`shopfunnel.diagnosis.benchmarks`);
- ``period_change`` / ``traffic_change``: the last weeks against the weeks before
  (:func:`shopfunnel.diagnosis.baselines.period_over_period`);
- ``retention``: the share of repeat orders, the last weeks against the weeks before
  (:func:`shopfunnel.diagnosis.baselines.repeat_purchases`);
- ``segment_gap``: a device, channel, campaign or country that converts worse at a step
  than the rest (:func:`shopfunnel.diagnosis.baselines.segment_gaps`);
- ``incident`` / ``traffic_spike``: a sudden drop or a spike that does not convert,
  located in time and segment (:mod:`shopfunnel.diagnosis.incidents`);
- ``checkout``: payment failures, checkout type and shipping cost (:mod:`shopfunnel.diagnosis.checkout`);
- ``correlation``: events and properties over-represented among sessions that dropped
  (:mod:`shopfunnel.diagnosis.correlation`).

Each finding gets the playbook's tactics for its stage and kind and an audience, and
the findings are ranked by revenue at stake (defined in :mod:`shopfunnel.diagnosis.findings`).
Every statistic and rule is written down in ``docs/diagnosis.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from shopfunnel.diagnosis.audience import as_naive_utc, audience_persons
from shopfunnel.diagnosis.baselines import period_over_period, repeat_purchases, segment_gaps
from shopfunnel.diagnosis.benchmarks import compare_with_benchmarks, load_benchmarks
from shopfunnel.diagnosis.findings import FINDING_COLUMNS, pct
from shopfunnel.diagnosis.incident_findings import incident_findings, when_text, with_losses
from shopfunnel.diagnosis.incident_table import INCIDENT_COLUMNS, as_incidents
from shopfunnel.diagnosis.incidents import IncidentSettings, find_incidents
from shopfunnel.diagnosis.level_shifts import LevelShiftSettings, find_level_shifts
from shopfunnel.diagnosis.order_value import given_aov, order_value
from shopfunnel.diagnosis.playbook import load_playbook
from shopfunnel.diagnosis.result import Diagnosis
from shopfunnel.diagnosis.session_levels import SessionLevels
from shopfunnel.diagnosis.settings_sections import user_section
from shopfunnel.diagnosis.stats import import_in_background
from shopfunnel.diagnosis.steps import DEFAULT_STEPS
from shopfunnel.errors import ShopfunnelError
from shopfunnel.store.memory import bulk_memory, give_back_memory

__all__ = ["DiagnoseSettings", "Diagnosis", "audience_persons", "diagnose"]


@dataclass(frozen=True)
class DiagnoseSettings:
    """How far back to look and how sure to be; defaults explained in docs/diagnosis.md."""

    lookback_days: int = 90
    long_lookback_days: int = 365
    period_days: int = 28
    alpha: float = 0.05
    min_relative_gap: float = 0.10
    tactics_per_finding: int = 3
    incidents: IncidentSettings = field(default_factory=IncidentSettings)
    level_shifts: LevelShiftSettings = field(default_factory=LevelShiftSettings)
    segment_properties: tuple[str, ...] | None = None
    """Session properties (keys of the events' ``properties``) to look for lasting
    incidents in besides device, channel and country, e.g. ``("browser",)``. None:
    ``[diagnosis] segment_properties`` from the model file, else none."""
    correlation: bool = True
    checkout: bool = True
    average_order_value: float | None = None
    """An estimate of the average order value (the CLI's ``--aov``) used for revenue at stake
    instead of the store's own; the only way to value findings when the orders carry no
    value. None: ``[diagnosis] average_order_value`` from the model file, else measured
    (:mod:`shopfunnel.diagnosis.order_value`)."""


def diagnose(
    store,
    *,
    model: Any = None,
    as_of: date | datetime | str | None = None,
    settings: DiagnoseSettings | None = None,
) -> Diagnosis:
    """Diagnose the store over the ``lookback_days`` before ``as_of``.

    ``as_of`` (exclusive) defaults to midnight after the last event; the period-over-period
    comparison uses the last ``period_days`` of that window. ``model`` is the model file
    (:func:`shopfunnel.model.load_model`, a dict or a path; None reads ``shopfunnel.toml``
    when there is one) for ``[benchmarks]`` and ``[playbook]``.
    A store too small or too short for an analysis gives no finding for it and a note.

    On a DuckDB store the diagnosis runs under :func:`~shopfunnel.store.memory.bulk_memory`'s
    cap: its tables of sessions and its scans of the events spill to disk past it instead of
    growing with the store (ADR 0180).
    """
    if getattr(store, "on_spark", False):
        return _diagnose(store, model=model, as_of=as_of, settings=settings)
    with bulk_memory(store.db):
        return _diagnose(store, model=model, as_of=as_of, settings=settings)


def _diagnose(
    store,
    *,
    model: Any,
    as_of: date | datetime | str | None,
    settings: DiagnoseSettings | None,
) -> Diagnosis:
    s = settings or DiagnoseSettings()
    import_in_background()  # scipy.stats, needed after the first queries
    benchmarks = load_benchmarks(model)
    playbook = load_playbook(model)
    notes: list[str] = []
    if getattr(store, "on_spark", False):  # shopfunnel.store.spark.SparkEvents
        first, last = store.event_span()
    else:
        first, last = store.db.rows("SELECT min(ts), max(ts) FROM events")[0]
    if as_of is None:
        end = (
            (datetime.combine(last.date(), datetime.min.time()) + timedelta(days=1))
            if last
            else datetime(1970, 1, 1)
        )
    else:
        end = as_naive_utc(as_of) or datetime(1970, 1, 1)
    start = end - timedelta(days=s.lookback_days)
    properties = _segment_properties(s.segment_properties, user_section(model, "diagnosis"))
    # One scan of the events: the lasting-incident scan reads the last year (``wide``), the
    # other analyses the sessions of the lookback window, taken from it.
    long_start = end - timedelta(days=max(s.long_lookback_days, s.lookback_days))
    if first is not None and first < start:
        wide_levels = SessionLevels(
            store, DEFAULT_STEPS, start=long_start, end=end, properties=properties
        )
        levels = wide_levels.within(start, end)
        wide: SessionLevels | None = wide_levels
    else:  # no history before the window: the same sessions
        wide = None
        levels = SessionLevels(store, DEFAULT_STEPS, start=start, end=end, properties=properties)
    give_back_memory()  # the sessions' arrays, now in DuckDB's tables
    try:
        if levels.sessions == 0:
            notes.append(
                f"no events between {start:%Y-%m-%d} and {end:%Y-%m-%d}: nothing to diagnose"
            )
        for missing in levels.missing_steps:
            notes.append(
                f"step {missing.name!r} is not measured: the store has no {missing.event!r} events"
            )
        totals = levels.counts()
        sessions = int(totals["n0"].sum()) if len(totals) else 0
        value = order_value(
            store,
            start,
            end,
            given=given_aov(s.average_order_value, user_section(model, "diagnosis")),
        )
        orders, revenue, aov = value.orders, value.revenue, value.average_order_value
        if value.source != "measured" or value.valued_orders < value.orders:
            notes.append(value.note())
        rows: list[dict] = []

        def attempt(name: str, fn, empty):
            # One analysis failing on odd data must not take the whole diagnosis (and the
            # report built on it) down: it leaves a note naming the error instead.
            try:
                return fn()
            except ShopfunnelError as exc:
                notes.append(f"{name} skipped: {exc}")
            except (ValueError, ArithmeticError, KeyError, IndexError) as exc:
                notes.append(
                    f"{name} failed on this data ({type(exc).__name__}: {exc}); please report it"
                )
            return empty

        # incidents first: their sessions are then left out of the other comparisons
        # the lasting scan first: falls longer than the run scan's runs are its to report, and
        # the run scan leaves their days out of its baselines and noise
        shifts = attempt(
            "long incident scan",
            lambda: find_level_shifts(wide or levels, s.level_shifts, properties=properties),
            pd.DataFrame(),
        )
        if wide is not None:  # the year's sessions serve the lasting scan alone (ADR 0180)
            wide.close()
            wide = None
            give_back_memory()
        longer = (
            shifts[
                (shifts["end"] - shifts["start"]).map(lambda d: d.days + 1) > s.incidents.max_days
            ]
            if len(shifts)
            else None
        )
        # (the run scan does not split by country or property: falls there are not left out)
        incidents = attempt(
            "incident scan",
            lambda: find_incidents(levels, s.incidents, known=longer),
            pd.DataFrame(columns=INCIDENT_COLUMNS),
        )
        if len(shifts):
            long = as_incidents(shifts, incidents, longest_short=s.incidents.max_days)
            if len(long):
                incidents = pd.concat([incidents, long], ignore_index=True).sort_values(
                    "z", ascending=False, ignore_index=True
                )
        incidents = with_losses(incidents, levels, totals, aov)
        rises = incidents[incidents["kind"] == "conversion_rise"]
        for r in rises.itertuples(index=False):
            notes.append(
                f"{r.step} conversion rose on {r.segment} from {pct(r.baseline_rate)} to {pct(r.rate)} "
                f"{when_text(r)}: a tracking change, or a fix worth knowing about"
            )
        if len(incidents) and incidents["kind"].isin(["conversion_drop"]).any() and math.isnan(aov):
            notes.append(
                "revenue lost in incidents is not known: the orders carry no value (give --aov or "
                "[diagnosis] average_order_value to estimate it); persons and orders lost are given"
            )
        rows += incident_findings(incidents, levels, totals)
        excluded = 0
        for r in incidents.to_dict("records"):
            if r["kind"] == "conversion_rise":
                continue
            seg = {
                k: r.get(k)
                for k in ("device", "channel", "campaign", "country", *properties)
                if isinstance(r.get(k), str)
            }
            if "other" in seg.values():
                continue
            excluded += levels.exclude(
                datetime.combine(r["start"], datetime.min.time()),
                datetime.combine(r["end"], datetime.min.time()) + timedelta(days=1),
                **seg,
            )
        if excluded:
            notes.append(
                f"{excluded:,} sessions inside the incidents found are left out of the other comparisons"
            )
        bench_table, f = attempt(
            "benchmarks",
            lambda: compare_with_benchmarks(
                levels, benchmarks, min_relative_gap=s.min_relative_gap
            ),
            ([], []),
        )
        rows += f
        period_table, f = attempt(
            "period over period",
            lambda: period_over_period(levels, end, s.period_days, alpha=s.alpha),
            ([], []),
        )
        rows += f
        retention_table, f = attempt(
            "repeat purchases",
            lambda: repeat_purchases(store, end, s.period_days, alpha=s.alpha),
            ([], []),
        )
        rows += f
        seg_table, f = attempt(
            "segments",
            lambda: segment_gaps(
                levels, None, None, alpha=s.alpha, min_relative_gap=s.min_relative_gap
            ),
            ([], []),
        )
        rows += f
        checkout_table = pd.DataFrame()
        if s.checkout:
            from shopfunnel.diagnosis.checkout import checkout_findings

            checkout_table, f, n = attempt(
                "checkout journey",
                lambda: checkout_findings(store, levels, alpha=s.alpha),
                (pd.DataFrame(), [], []),
            )
            rows += f
            notes += n
        correlations = pd.DataFrame()
        if s.correlation:
            from shopfunnel.diagnosis.correlation import correlation_findings

            correlations, f = attempt(
                "correlation analysis",
                lambda: correlation_findings(
                    store, levels, alpha=s.alpha, skip_keys=_covered_keys(rows)
                ),
                (pd.DataFrame(), []),
            )
            rows += f
        findings = _rank(rows, aov, playbook, s.tactics_per_finding)
    finally:
        levels.close()
        if wide is not None:
            wide.close()
    return Diagnosis(
        findings=findings,
        benchmarks=pd.DataFrame(bench_table),
        periods=pd.DataFrame(period_table),
        retention=pd.DataFrame(retention_table),
        segments=pd.DataFrame(seg_table),
        incidents=incidents,
        checkout=checkout_table,
        correlations=correlations,
        start=start,
        end=end,
        sessions=sessions,
        orders=orders,
        revenue=revenue,
        average_order_value=aov,
        notes=notes,
        order_value=value,
    )


def _segment_properties(given: tuple[str, ...] | None, section: dict[str, Any]) -> tuple[str, ...]:
    value = given if given is not None else section.get("segment_properties", ())
    if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
        raise ShopfunnelError(
            f"segment_properties={value!r} is not a list of property keys: write e.g. "
            'segment_properties = ["browser"] under [diagnosis]'
        )
    return tuple(value)


def _covered_keys(rows: list[dict]) -> set[str]:
    return {r["metric"] for r in rows if r["kind"] == "checkout" and r.get("metric")}


def _rank(rows: list[dict], aov: float, playbook, limit: int) -> pd.DataFrame:
    for r in rows:
        units, down = r.get("units_lost"), r.get("downstream_rate")
        orders = (
            max(float(units), 0.0) * float(down)
            if units is not None and down is not None
            else float("nan")
        )
        r["orders_at_stake"] = orders
        r["revenue_at_stake"] = orders * aov  # NaN when either is
        tactics = playbook.for_finding(r["kind"], r["stage"], r["step"], r["metric"], limit=limit)
        r["tactics"] = [
            {"key": t.key, "name": t.name, "stage": t.stage, "why": t.why} for t in tactics
        ]
    df = pd.DataFrame(rows, columns=FINDING_COLUMNS)
    if df.empty:
        return df
    # Without an average order value, orders at stake give the same order one would give.
    key = "orders_at_stake" if math.isnan(aov) else "revenue_at_stake"
    df["_nan"] = df[key].isna()
    df = df.sort_values(["_nan", key], ascending=[True, False], kind="stable").drop(columns="_nan")
    df["rank"] = range(1, len(df) + 1)
    return df.reset_index(drop=True)
