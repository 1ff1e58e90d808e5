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

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from shopfunnel.diagnosis.baselines import period_over_period, repeat_purchases, segment_gaps
from shopfunnel.diagnosis.benchmarks import compare_with_benchmarks, load_benchmarks
from shopfunnel.diagnosis.findings import FINDING_COLUMNS, finding, pct
from shopfunnel.diagnosis.incidents import INCIDENT_COLUMNS, IncidentSettings, find_incidents
from shopfunnel.diagnosis.level_shifts import LevelShiftSettings, as_incidents, find_level_shifts
from shopfunnel.diagnosis.order_value import OrderValue, given_aov, order_value
from shopfunnel.diagnosis.playbook import load_playbook
from shopfunnel.diagnosis.session_levels import DEFAULT_STEPS, SessionLevels
from shopfunnel.diagnosis.settings_sections import user_section
from shopfunnel.errors import ShopfunnelError
from shopfunnel.store.db import json_pointer


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


@dataclass
class Diagnosis:
    """The result of :func:`diagnose`.

    ``findings`` (one row per finding, ranked by revenue at stake; columns in
    :data:`shopfunnel.diagnosis.findings.FINDING_COLUMNS`) and the tables behind them:
    ``benchmarks``, ``periods``, ``segments``, ``incidents``, ``checkout``,
    ``correlations``, ``retention``. ``notes`` say what could not be measured and why.
    """

    findings: pd.DataFrame
    benchmarks: pd.DataFrame
    periods: pd.DataFrame
    segments: pd.DataFrame
    incidents: pd.DataFrame
    checkout: pd.DataFrame
    correlations: pd.DataFrame
    retention: pd.DataFrame
    start: datetime
    end: datetime
    sessions: int
    orders: int
    revenue: float
    average_order_value: float
    notes: list[str] = field(default_factory=list)
    order_value: OrderValue | None = None
    """Orders with a value and where the average order value came from (given, measured or
    none); findings are ranked by ``orders_at_stake`` when it is none."""

    def recommendations(self) -> pd.DataFrame:
        """One row per (finding, tactic), in finding rank order: what to do, for whom, why."""
        rows = []
        for f in self.findings.itertuples(index=False):
            for t in f.tactics or []:
                rows.append(
                    {
                        "rank": f.rank,
                        "tactic": t["name"],
                        "stage": f.stage,
                        "why": t["why"],
                        "finding": f.title,
                        "evidence": f.evidence,
                        "audience": f.audience,
                        "revenue_at_stake": f.revenue_at_stake,
                    }
                )
        return pd.DataFrame(
            rows,
            columns=[
                "rank",
                "tactic",
                "stage",
                "why",
                "finding",
                "evidence",
                "audience",
                "revenue_at_stake",
            ],
        )

    def incident_table(self) -> pd.DataFrame:
        """One row per incident as the faces show them, worst first: ``kind``, ``step``,
        ``segment``, ``start`` (a date, or a time when placed to the hour), ``end`` (the
        last day, the hour it ended, or ``"ongoing"``), ``rate_before`` and
        ``rate_during`` (the step's usual and observed conversion; for a traffic spike the
        usual and the extra sessions' purchase rate), ``persons_lost``, ``orders_lost``,
        ``revenue_lost`` (NaN when the orders carry no value) and ``p_adjusted`` (after
        the multiple-testing correction)."""
        columns = [
            "kind",
            "step",
            "segment",
            "start",
            "end",
            "rate_before",
            "rate_during",
            "persons_lost",
            "orders_lost",
            "revenue_lost",
            "p_adjusted",
        ]
        rows = []
        for r in self.incidents.to_dict("records"):
            start_time, end_time = (
                pd.Timestamp(r["start_time"]).to_pydatetime(),
                pd.Timestamp(r["end_time"]).to_pydatetime(),
            )
            spike = r["kind"] == "traffic_spike"
            if bool(r.get("ongoing")) and not spike:
                end: Any = "ongoing"
            elif end_time.hour or r.get("grain") == "hour":
                end = end_time
            else:
                end = r["end"]
            rows.append(
                {
                    "kind": str(r["kind"]).replace("_", " "),
                    "step": r["step"],
                    "segment": r["segment"],
                    "start": start_time
                    if start_time.hour or r.get("grain") == "hour"
                    else r["start"],
                    "end": end,
                    "rate_before": r["baseline_conversion_rate"] if spike else r["baseline_rate"],
                    "rate_during": r["extra_conversion_rate"] if spike else r["rate"],
                    "persons_lost": r.get("persons_lost"),
                    "orders_lost": r.get("orders_lost"),
                    "revenue_lost": r.get("revenue_lost"),
                    "p_adjusted": r.get("p_adjusted"),
                }
            )
        return pd.DataFrame(rows, columns=columns)

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready Python values (dates as ISO strings, NaN as None)."""

        def records(df: pd.DataFrame) -> list[dict[str, Any]]:
            return (
                json.loads(df.to_json(orient="records", date_format="iso", default_handler=str))
                if len(df)
                else []
            )

        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "sessions": self.sessions,
            "orders": self.orders,
            "revenue": self.revenue,
            "average_order_value": _none_if_nan(self.average_order_value),
            "average_order_value_source": self.order_value.source if self.order_value else None,
            "valued_orders": self.order_value.valued_orders if self.order_value else None,
            "findings": records(self.findings),
            "benchmarks": records(self.benchmarks),
            "periods": records(self.periods),
            "segments": records(self.segments),
            "incidents": records(self.incidents),
            "checkout": records(self.checkout),
            "correlations": records(self.correlations),
            "retention": records(self.retention),
            "notes": list(self.notes),
        }

    def __repr__(self) -> str:
        head = (
            f"Diagnosis({self.start:%Y-%m-%d} to {self.end:%Y-%m-%d}: {self.sessions:,} sessions, "
            f"{self.orders:,} orders, AOV {self.average_order_value:,.2f}; {len(self.findings)} findings)"
        )
        lines = [head]
        for f in self.findings.head(10).itertuples(index=False):
            money = (
                ""
                if f.revenue_at_stake is None or math.isnan(f.revenue_at_stake)
                else f" [{f.revenue_at_stake:,.0f} at stake]"
            )
            tactics = ", ".join(t["name"] for t in (f.tactics or []))
            lines.append(f"  {f.rank}. {f.title}{money} → {tactics or 'no tactic'}")
        if len(self.findings) > 10:
            lines.append(f"  … {len(self.findings) - 10} more")
        return "\n".join(lines)


def _none_if_nan(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _as_datetime(value: date | datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
    return datetime(value.year, value.month, value.day)


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
    """
    s = settings or DiagnoseSettings()
    benchmarks = load_benchmarks(model)
    playbook = load_playbook(model)
    notes: list[str] = []
    last = store.db.scalar("SELECT max(ts) FROM events")
    if as_of is None:
        end = (
            (datetime.combine(last.date(), datetime.min.time()) + timedelta(days=1))
            if last
            else datetime(1970, 1, 1)
        )
    else:
        end = _as_datetime(as_of) or datetime(1970, 1, 1)
    start = end - timedelta(days=s.lookback_days)
    properties = _segment_properties(s.segment_properties, user_section(model, "diagnosis"))
    # One scan of the events: the lasting-incident scan reads the last year (``wide``), the
    # other analyses the sessions of the lookback window, taken from it.
    long_start = end - timedelta(days=max(s.long_lookback_days, s.lookback_days))
    first = store.db.scalar("SELECT min(ts) FROM events")
    if first is not None and first < start:
        wide_levels = SessionLevels(
            store, DEFAULT_STEPS, start=long_start, end=end, properties=properties
        )
        levels = wide_levels.within(start, end)
        wide: SessionLevels | None = wide_levels
    else:  # no history before the window: the same sessions
        wide = None
        levels = SessionLevels(store, DEFAULT_STEPS, start=start, end=end, properties=properties)
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
        incidents = _with_losses(incidents, levels, totals, aov)
        rises = incidents[incidents["kind"] == "conversion_rise"]
        for r in rises.itertuples(index=False):
            notes.append(
                f"{r.step} conversion rose on {r.segment} from {pct(r.baseline_rate)} to {pct(r.rate)} "
                f"{_when(r)}: a tracking change, or a fix worth knowing about"
            )
        if len(incidents) and incidents["kind"].isin(["conversion_drop"]).any() and math.isnan(aov):
            notes.append(
                "revenue lost in incidents is not known: the orders carry no value (give --aov or "
                "[diagnosis] average_order_value to estimate it); persons and orders lost are given"
            )
        rows += _incident_findings(incidents, levels, totals)
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


def _with_losses(
    incidents: pd.DataFrame, levels: SessionLevels, totals: pd.DataFrame, aov: float
) -> pd.DataFrame:
    """The incident table with what each incident cost (docs/diagnosis.md, "What an incident
    cost"): ``persons_lost`` (conversions lost × distinct persons per session among the
    sessions that entered the step in the incident's segment and time), ``orders_lost``
    (conversions lost × the store's orders per session that reached the step; for a
    traffic spike, its missing purchases) and ``revenue_lost`` (orders lost × the average
    order value; NaN when the orders carry no value and none was given). Negative for a
    rise."""
    out = incidents.copy()
    for col in ("persons_lost", "orders_lost", "revenue_lost"):
        out[col] = pd.Series(dtype=float)
    if out.empty:
        return out
    names = levels.step_names
    K = len(levels.steps)
    persons, orders = [], []
    for r in out.to_dict("records"):
        lost = float(r["lost"]) if r["lost"] == r["lost"] else 0.0
        if r["kind"] == "traffic_spike":
            persons.append(lost * _ratio(levels, r, 0))
            orders.append(lost)
            continue
        k = names.index(r["step"])
        downstream = (
            1.0 if k == K else float(totals[f"n{K}"].sum()) / max(float(totals[f"n{k}"].sum()), 1.0)
        )
        persons.append(lost * _ratio(levels, r, k - 1))
        orders.append(lost * downstream)
    out["persons_lost"] = persons
    out["orders_lost"] = orders
    out["revenue_lost"] = out["orders_lost"] * aov
    return out


def _ratio(levels: SessionLevels, r: dict, level: int) -> float:
    """Persons per session among the incident's sessions that reached ``level`` (1 when
    the window holds none: it lies outside the diagnosed period)."""
    seg = {
        k: r.get(k)
        for k in levels.segment_columns
        if isinstance(r.get(k), str) and r.get(k) != "other"
    }
    ratio = levels.persons_per_session(r["start_time"], r["end_time"], level, **seg)  # type: ignore[arg-type]
    return 1.0 if math.isnan(ratio) else ratio


def _when(r) -> str:
    """An incident's dates as the findings say them: days, hours when it was placed to the
    hour, or "since … (ongoing)"."""
    start_time, end_time = pd.Timestamp(r.start_time), pd.Timestamp(r.end_time)
    if bool(getattr(r, "ongoing", False)) and r.grain == "days":
        if start_time.hour:
            return f"since {start_time:%Y-%m-%d %H:00} UTC (ongoing)"
        return f"since {r.start:%Y-%m-%d} (ongoing)"
    if r.grain == "hour" or (r.grain == "days" and (start_time.hour or end_time.hour)):
        same_day = start_time.date() == (end_time - timedelta(seconds=1)).date()
        if same_day:
            return f"{start_time:%Y-%m-%d %H:%M}–{end_time:%H:%M} UTC"
        return f"{start_time:%Y-%m-%d %H:%M} to {end_time:%Y-%m-%d %H:%M} UTC"
    return f"{r.start:%Y-%m-%d}" + ("" if r.end == r.start else f" to {r.end:%Y-%m-%d}")


def _covered_keys(rows: list[dict]) -> set[str]:
    return {r["metric"] for r in rows if r["kind"] == "checkout" and r.get("metric")}


def _incident_findings(
    incidents: pd.DataFrame, levels: SessionLevels, totals: pd.DataFrame
) -> list[dict]:
    out = []
    K = len(levels.steps)
    names = levels.step_names
    for r in incidents.itertuples(index=False):
        if r.kind == "conversion_rise":
            continue
        when = _when(r)
        where = "" if r.segment == "all traffic" else f" on {r.segment}"
        seg = {
            k: v
            for k, v in (
                ("device", r.device),
                ("channel", r.channel),
                ("campaign", r.campaign),
                ("country", getattr(r, "country", None)),
            )
            if isinstance(v, str)
        }
        if r.kind == "traffic_spike":
            extra = r.sessions - r.expected_sessions
            out.append(
                finding(
                    kind="traffic_spike",
                    stage="awareness",
                    step="visit",
                    segment=r.segment,
                    metric="sessions",
                    value=r.sessions,
                    reference=r.expected_sessions,
                    gap=extra,
                    p_value=r.p_adjusted,
                    units_lost=max(r.lost, 0.0),
                    downstream_rate=1.0,
                    entering=r.sessions,
                    start=r.start,
                    end=r.end,
                    title=f"Traffic spike that did not convert{where}, {when}",
                    evidence=(
                        f"{int(r.sessions):,} sessions{where} {when} against {r.expected_sessions:,.0f} usual for those weekdays; "
                        f"the {extra:,.0f} extra sessions bought at {pct(r.extra_conversion_rate, 2)} against the usual "
                        f"{pct(r.baseline_conversion_rate, 2)} (z = {r.z:.1f})."
                    ),
                    audience={"stage": "awareness", **seg, "between": [str(r.start), str(r.end)]},
                )
            )
            continue
        k = names.index(r.step)
        step = levels.steps[k - 1]
        downstream = (
            1.0 if k == K else float(totals[f"n{K}"].sum()) / max(float(totals[f"n{k}"].sum()), 1.0)
        )
        out.append(
            finding(
                kind="incident",
                stage=step.stage,
                step=step.name,
                segment=r.segment,
                metric=f"{names[k - 1]} → {names[k]}",
                value=r.rate,
                reference=r.baseline_rate,
                gap=r.rate - r.baseline_rate,
                p_value=r.p_adjusted,
                units_lost=max(r.lost, 0.0),
                downstream_rate=downstream,
                entering=r.entering,
                start=r.start,
                end=r.end,
                title=f"{names[k - 1].capitalize()} → {names[k]} {'fell' if r.grain == 'days' else 'collapsed'}{where}, {when}",
                evidence=(
                    f"{int(r.observed):,} of {int(r.entering):,} sessions{where} went from {names[k - 1]} to {names[k]} {when} "
                    f"({pct(r.rate)}), against {r.expected:,.0f} expected from the same segment's "
                    + ("usual level " if r.grain == "days" else "surrounding weeks ")
                    + f"({pct(r.baseline_rate)}); z = {r.z:.1f}, "
                    + (
                        "found by segmenting the whole series (a lasting change)."
                        if r.grain == "days"
                        else f"found on the {r.grain} scan."
                    )
                ),
                audience={
                    "stage": step.audience_stage,
                    **seg,
                    "between": [str(r.start), str(r.end)],
                },
            )
        )
    return out


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


def audience_persons(
    store,
    audience: dict[str, Any],
    *,
    model: Any = None,
    as_of: date | datetime | str | None = None,
    with_status: bool = True,
) -> pd.DataFrame:
    """The persons a finding's ``audience`` names: who to show the tactic to.

    Starts from the stage model's persons at ``audience["stage"]`` (and ``status``, unless
    ``with_status=False``: "everyone at Decision" is wider than "stalled at Decision"),
    then keeps those with a session in the segment (``device``, ``channel``, ``campaign``;
    within ``between`` dates when given) and, for a ``filter`` such as
    ``payment_failed=true`` or ``shipping_cost>0``, with an event whose property matches.
    Columns are those of :func:`shopfunnel.stages.persons`; hand them to
    :func:`shopfunnel.audiences.export_audience` for an ad platform.
    """
    from shopfunnel.model import Model
    from shopfunnel.stages.placement import persons

    m = model if isinstance(model, Model) else None
    p = persons(
        store,
        audience.get("stage"),
        audience.get("status") if with_status else None,
        model=m,
        as_of=as_of,
    )
    cond: list[str] = []
    params: list[Any] = []
    for col, ev_col in (("device", "device"), ("channel", "channel"), ("campaign", "utm_campaign")):
        if isinstance(audience.get(col), str):
            cond.append(f"{ev_col} = ?")
            params.append(audience[col])
    between = audience.get("between")
    if between:
        cond.append("ts >= ? AND ts < ?")
        params += [
            _as_datetime(str(between[0])),
            (_as_datetime(str(between[1])) or datetime(1970, 1, 1)) + timedelta(days=1),
        ]
    flt = audience.get("filter")
    if isinstance(flt, str) and ("=" in flt or ">" in flt):
        op = ">" if ">" in flt and "=" not in flt else "="
        key, value = (x.strip() for x in flt.split(op, 1))
        path = json_pointer(key)
        if op == ">":
            cond.append("TRY_CAST(json_extract_string(properties, ?) AS DOUBLE) > ?")
            params += [path, float(value)]
        else:
            cond.append("json_extract_string(properties, ?) = ?")
            params += [path, value]
    if not cond or p.empty:
        return p
    ids = store.db.df(f"SELECT DISTINCT person_id FROM events WHERE {' AND '.join(cond)}", params)
    return p[p["person_id"].isin(set(ids["person_id"]))].reset_index(drop=True)
