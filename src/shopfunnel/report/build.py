"""Run the analyses on a store and turn each result into its section.

Every section is built by one small function here: it calls the analysis, then the pure
builder in :mod:`shopfunnel.report.sections`. A section that fails (an analysis not
installed, data that cannot support it) becomes a short note, and the failure is kept in
:attr:`ReportBuild.problems` so tests and the CLI can say what went missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from shopfunnel.errors import ConfigError, ShopfunnelError, spark_died
from shopfunnel.report import context
from shopfunnel.report import sections as S
from shopfunnel.report.blocks import Section, unavailable
from shopfunnel.report.context import Context
from shopfunnel.store import person_index, summary
from shopfunnel.store.memory import give_back_memory, release_cached_blocks
from shopfunnel.store.store import Store

Progress = Callable[[str], None]


@dataclass
class ReportBuild:
    """What building the report did: the sections, problems met, seconds per section."""

    sections: list[Section] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


daily_activity = summary.daily_activity  # the report's activity table (kept for callers)


def _overview(ctx: Context) -> Section:
    info = ctx.store.info(timeline_pass=True)  # one pass, shared with the daily activity
    revenue = summary.revenue(ctx.store) if info.get("orders") else None
    return S.overview_section(info, revenue, ctx.currency)


def _activity(ctx: Context) -> Section:
    return S.activity_section(daily_activity(ctx.store), incident_spans(ctx.cache.get("findings")))


def incident_spans(findings: pd.DataFrame | None) -> pd.DataFrame | None:
    """The findings that have dates (incidents), as ``start``, ``end``, ``label`` rows."""
    if findings is None or len(findings) == 0 or "start" not in findings.columns:
        return None
    dated = findings[findings["start"].notna()]
    if "end" not in dated.columns:
        dated = dated.assign(end=dated["start"])
    labels = []
    for row in dated.to_dict("records"):
        parts = [
            str(row[c])
            for c in ("segment", "step")
            if c in row and row[c] is not None and str(row[c]) not in ("", "nan", "None")
        ]
        labels.append(" · ".join(parts) or str(row.get("kind", "incident")))
    return pd.DataFrame(
        {"start": dated["start"].to_numpy(), "end": dated["end"].to_numpy(), "label": labels}
    )


# -- analyses (shared ones computed once, by the context) --------------------------------
def _diagnosis(ctx: Context) -> Section:
    result = ctx.diagnosis()
    ctx.cache["findings"] = result.findings
    start, end = getattr(result, "start", None), getattr(result, "end", None)
    period = ""
    if start is not None and end is not None:
        # ``end`` is exclusive (midnight after the last day)
        period = f"{start:%Y-%m-%d} to {end - pd.Timedelta(microseconds=1):%Y-%m-%d}"
    value = getattr(result, "order_value", None)
    return S.diagnosis_section(
        result.findings,
        currency=ctx.currency,
        period=period,
        notes=list(getattr(result, "notes", []) or []),
        priced=value is None or value.source != "none",
        pricing=value.note() if value is not None else "",
        incidents=result.incident_table() if hasattr(result, "incident_table") else None,
    )


def _checkout(ctx: Context) -> Section:
    result = ctx.diagnosis()
    return S.checkout_section(result.checkout, [n for n in result.notes if "checkout journey" in n])


def _steps(ctx: Context) -> Section:
    return S.steps_section(ctx.funnel().steps)


def _by_channel(ctx: Context) -> Section:
    return S.breakdown_section(ctx.funnel().breakdown, "channel")


def _by_device(ctx: Context) -> Section:
    from shopfunnel.funnel.api import funnel

    result = funnel(ctx.store, **ctx.funnel_args(), by="device")
    breakdown = result.breakdown
    result.release()  # its units, kept on Spark for drill-downs this section does not make
    return S.breakdown_section(breakdown, "device")


def _trend(ctx: Context) -> Section:
    return S.trend_section(ctx.funnel().trend, period=context.TREND)


def _time(ctx: Context) -> Section:
    result = ctx.funnel()
    return S.time_to_convert_section(result.steps, result.time_to_convert())


def _stages(ctx: Context) -> Section:
    return S.stage_funnel_section(ctx.stage_summary())


def _distribution(ctx: Context) -> Section:
    return S.stage_distribution_section(ctx.stage_summary(), ctx.placement().status_notes())


def _flow(ctx: Context) -> Section:
    from shopfunnel.stages.summary import stage_flow

    placed = ctx.placements()
    if placed is None:
        return S.stage_flow_section(None)
    start, end, at_start, at_end = placed
    flow = stage_flow(
        ctx.store,
        start.to_pydatetime(),
        end.to_pydatetime(),
        placed=(at_start, at_end),
        **ctx.model_args(),
    )
    return S.stage_flow_section(
        flow, start=start.strftime("%Y-%m-%d"), end=end.strftime("%Y-%m-%d")
    )


def _cohorts(ctx: Context) -> Section:
    from shopfunnel.customers.retention import store_retention

    result = store_retention(ctx.store, orders=ctx.orders)
    return S.cohort_section(result.matrix, period=result.period)


def _rfm(ctx: Context) -> Section:
    from shopfunnel.customers.rfm import rfm_group_summary, rfm_table

    orders = ctx.orders
    if len(orders) == 0:
        return S.rfm_section(None)
    return S.rfm_section(rfm_group_summary(rfm_table(orders)), currency=ctx.currency)


# The seed's example offer, and free shipping from about the median order value.
WHATIF_TIERS = ((100.0, 0.05), (300.0, 0.10))


def nice_threshold(value: float) -> float:
    """``value`` rounded to a threshold a shop would print: 5s below 50, 10s below 200, else 25s."""
    step = 5.0 if value < 50 else 10.0 if value < 200 else 25.0
    return max(step, round(value / step) * step)


def _whatif(ctx: Context) -> Section:
    from shopfunnel.diagnosis.whatif import Tier, free_shipping, tiered_discount

    orders = ctx.orders
    if len(orders) == 0:
        return S.whatif_section([])
    median = float(pd.to_numeric(orders["value"], errors="coerce").median())
    if not median > 0:  # NaN too: orders without values
        return S.whatif_section([], no_values=True)
    policies = [
        tiered_discount(ctx.store, [Tier(t, r) for t, r in WHATIF_TIERS]),
        free_shipping(ctx.store, nice_threshold(median)),
    ]
    return S.whatif_section(policies, currency=ctx.currency)


# Experiments shown in the report: the most recently exposed first.
REPORT_EXPERIMENTS = 5


def _experiments(ctx: Context) -> Section | None:
    """The store's experiments, or no section at all when it has none."""
    from shopfunnel.store.schema import EXPOSURE_EVENT

    # a store without exposures never imports the analysis (SciPy: most of a second)
    if not summary.has_event(ctx.store, EXPOSURE_EVENT):
        return None
    if getattr(ctx.store, "on_spark", False):
        raise ConfigError(
            "experiments are analysed from a store, not on Spark: load the events "
            "(shopfunnel load) and run shopfunnel report --db, or shopfunnel experiment"
        )
    from shopfunnel.experiments import analyze_experiment, list_experiments

    listed = list_experiments(ctx.store)
    if listed.empty:
        return None
    names = list(listed["experiment"])[:REPORT_EXPERIMENTS]
    return S.experiments_section([analyze_experiment(ctx.store, name) for name in names])


def _programs(ctx: Context) -> Section | None:
    """The store's offers, referrals and draws (:func:`programs_overview`, as the dashboard
    shows them), or no section when it runs none. Programs live in a store's own tables,
    never in the events: on Spark there are none to show."""
    if getattr(ctx.store, "on_spark", False):
        return None
    from shopfunnel.programs.overview import programs_overview

    overview = programs_overview(ctx.store)
    if overview.empty:
        return None
    return S.programs_section(overview, currency=ctx.currency)


# -- the plan ---------------------------------------------------------------------------
PLAN: list[tuple[str, str, Callable[[Context], Section | None]]] = [
    ("overview", "Your store at a glance", _overview),
    ("diagnosis", "What to fix first", _diagnosis),
    ("stages", "The five stages", _stages),
    ("steps", "Step by step: where people drop off", _steps),
    ("checkout", "The checkout, step by step", _checkout),
    ("by-channel", "Conversion by channel", _by_channel),
    ("by-device", "Conversion by device", _by_device),
    ("trend", "Conversion over time", _trend),
    ("time", "Time to convert", _time),
    ("distribution", "Where people stand now", _distribution),
    ("flow", "How people moved between stages", _flow),
    ("cohorts", "Do customers come back?", _cohorts),
    ("rfm", "Customer groups (RFM)", _rfm),
    ("whatif", "What would an offer cost?", _whatif),
    ("experiments", "Experiments", _experiments),
    ("programs", "Programs: offers, referrals, giveaways", _programs),
    ("activity", "Daily activity", _activity),
]


def default_model() -> Any:
    """The model in ``./shopfunnel.toml``, or the defaults."""
    from shopfunnel.model import load_model

    return load_model()


def _failure_note(exc: BaseException) -> str:
    if isinstance(exc, ShopfunnelError):
        return f"Not enough data for this section: {exc}"
    return f"This section could not be computed ({type(exc).__name__}: {exc})."


# Sections that show the diagnosis; with the daily activity (which shades its incidents)
# they are computed after the others, so the diagnosis, started first in the background,
# runs while the others are built.
SHOW_DIAGNOSIS = frozenset({"diagnosis", "checkout"})
AFTER_DIAGNOSIS = SHOW_DIAGNOSIS | {"activity"}

# The shared tables of the context (:class:`Context`'s cache keys) each section reads. Once
# no section still to compute reads one, it is dropped (ADR 0181): at 100M events the
# placements of 14.5 million persons, the funnel and the diagnosis need not all be held at
# once. (``currency`` and ``findings`` are small and kept.)
READS: dict[str, frozenset[str]] = {
    "diagnosis": frozenset({"diagnosis"}),
    "checkout": frozenset({"diagnosis"}),
    "stages": frozenset({"placements", "placement", "stage_summary"}),
    "distribution": frozenset({"placements", "placement", "stage_summary"}),
    "flow": frozenset({"placements"}),
    "steps": frozenset({"funnel"}),
    "by-channel": frozenset({"funnel"}),
    "trend": frozenset({"funnel"}),
    "time": frozenset({"funnel"}),
    "cohorts": frozenset({"orders"}),
    "rfm": frozenset({"orders"}),
    "whatif": frozenset({"orders"}),
}
DROPPABLE = frozenset().union(*READS.values())
# The order the sections are computed in (the page keeps PLAN's): the sections that read one
# shared table one after another, so it can be dropped after the last of them.
COMPUTE_ORDER = (
    "overview",
    "stages",
    "distribution",
    "flow",
    "steps",
    "by-channel",
    "trend",
    "time",
    "by-device",
    "cohorts",
    "rfm",
    "whatif",
    "experiments",
    "programs",
    "diagnosis",
    "checkout",
    "activity",
)


def compute_order(plan: list[str], *, diagnosis_first: bool) -> list[str]:
    """The sections of ``plan`` in the order they are computed: :data:`COMPUTE_ORDER`
    (sections it does not name after those it does, in plan order) with the sections that
    show the diagnosis last, so a diagnosis in the background runs beside the others, or,
    when it runs in its turn (``diagnosis_first``), first, before the other sections hold
    their tables; the daily activity, which shades the diagnosis's incidents, after it."""
    rank = {sid: i for i, sid in enumerate(COMPUTE_ORDER)}
    ordered = sorted(plan, key=lambda sid: rank.get(sid, len(rank)))
    shows = [sid for sid in ordered if sid in SHOW_DIAGNOSIS]
    rest = [sid for sid in ordered if sid not in AFTER_DIAGNOSIS]
    activity = [sid for sid in ordered if sid in AFTER_DIAGNOSIS - SHOW_DIAGNOSIS]
    return shows + rest + activity if diagnosis_first else rest + shows + activity


def drop_unread(ctx: Context, still: list[str]) -> bool:
    """Drop the context's shared tables that none of the sections ``still`` to compute
    reads (:data:`READS`); True when one was dropped. A diagnosis still running in the
    background is kept."""
    wanted = frozenset().union(*(READS.get(sid, frozenset()) for sid in still))
    dropped = False
    for key in DROPPABLE - wanted:
        value = ctx.cache.get(key)
        if value is None or (isinstance(value, Future) and not value.done()):
            continue
        del ctx.cache[key]
        release(value)
        dropped = True
    return dropped


def release(value: Any) -> None:
    """Let go of what a shared table dropped by :func:`drop_unread` keeps on Spark: the
    funnel's units and the placements' facts stay persisted for their drill-downs until
    released (ADR 0192). Tuples (the two placements) are walked; a table from the store
    keeps nothing."""
    if isinstance(value, tuple | list):
        for item in value:
            release(item)
        return
    let_go = getattr(value, "release", None)
    if callable(let_go):
        let_go()


def build_sections(
    store: Store,
    *,
    model: Any = None,
    progress: Progress | None = None,
    average_order_value: float | None = None,
) -> ReportBuild:
    """Compute every section of the report, in page order. ``average_order_value`` prices
    the diagnosis's findings (see :mod:`shopfunnel.diagnosis.order_value`).

    The diagnosis runs in the background on a second connection to the store while the
    sections that do not show it are computed (ADR 0092); the page order is :data:`PLAN`'s."""
    ctx = Context(
        store,
        model if model is not None else default_model(),
        average_order_value=average_order_value,
    )
    plan = list(PLAN)
    by_id = {sid: (title, make) for sid, title, make in plan}
    done: dict[str, tuple[Section | None, float, str | None]] = {}
    ready_timeline(store, progress)
    with ctx.background():
        beside = any(sid in SHOW_DIAGNOSIS for sid in by_id) and _diagnose_beside(store)
        if beside:
            ctx.start_diagnosis()
        order = compute_order(list(by_id), diagnosis_first=not beside)
        for i, sid in enumerate(order):
            title, make = by_id[sid]
            if progress is not None:
                progress(title)
            done[sid] = _compute(ctx, sid, title, make)
            if drop_unread(ctx, order[i + 1 :]):
                if "placements" not in ctx.cache and isinstance(store, Store):
                    # the placements held the person index; a later reader maps it again
                    person_index.forget(store)
                give_back_memory()
            if not beside and isinstance(store, Store) and not getattr(store, "on_spark", False):
                # nothing runs beside: DuckDB's cached blocks of the store file go too (ADR 0181)
                release_cached_blocks(store.db, floor=ALONE_FLOOR)
    for value in ctx.cache.values():  # the page is made of the sections' tables now
        release(value)
    out = ReportBuild()
    for sid, _, _ in plan:
        section, seconds, problem = done[sid]
        # a section whose analysis ran in the background: the seconds it took there
        out.seconds[sid] = max(seconds, ctx.background_seconds.get(sid, 0.0))
        if problem is not None:
            out.problems[sid] = problem
        if section is not None:  # a section with nothing to show in any store (experiments)
            out.sections.append(section)
    return out


# Up to this many events the diagnosis runs in the background beside the other sections
# (ADR 0092); past it, in its turn: at 100M events the report held 10.3 GB with the two at
# once and 8.8 GB in turn, in the same 73 s (the diagnosis alone: 6.2 GB; session 8).
BACKGROUND_DIAGNOSIS_MAX_EVENTS = 30_000_000
# What DuckDB may keep while its cached blocks are released between sections when nothing
# runs beside them (at 100M events the store's default floor, 256MB, kept 244 MB of blocks).
ALONE_FLOOR = "32MB"


def _diagnose_beside(store: Store) -> bool:
    """Whether the diagnosis may run beside the other sections (a store of at most
    :data:`BACKGROUND_DIAGNOSIS_MAX_EVENTS` events)."""
    if not isinstance(store, Store) or getattr(store, "on_spark", False):
        return True  # Context.start decides (a store without a second connection: in order)
    return int(store.db.scalar("SELECT count(*) FROM events")) <= BACKGROUND_DIAGNOSIS_MAX_EVENTS


def ready_timeline(store: Store, progress: Progress | None = None) -> None:
    """Build the store's sorted timeline and person index first, when its events changed
    since they were built (a report right after a load), saying so through ``progress``.
    The funnel and stage sections would build them anyway; built before the diagnosis
    starts, the diagnosis reads sessions from the timeline instead of grouping every event
    in SQL, which it does rather than wait for a build (at 10M events just loaded,
    `diagnose` alone took 11.3 s by SQL and 8.2 s after a funnel had sorted them, on a
    loaded machine). The timeline is built as the funnel builds it (a live delta stays a
    delta). A store whose timeline cannot be built (more event names than it codes) goes
    on without one."""
    if getattr(store, "on_spark", False) or not isinstance(store, Store):
        return
    from shopfunnel.store import timeline

    if timeline.is_current(store):
        return
    if progress is not None:
        progress("sorting the events (once per load)")
    try:
        timeline.of_store(store, pieces=True)
    except OSError:
        return
    person_index.of_store(store)


def _compute(
    ctx: Context, sid: str, title: str, make: Callable[[Context], Section | None]
) -> tuple[Section | None, float, str | None]:
    """One section, the seconds it took, and the problem that made it a note (if any)."""
    started = time.perf_counter()
    problem = None
    try:
        section = make(ctx)
    except Exception as exc:  # a failing section must not sink the whole report
        if spark_died(exc):  # but a dead Spark fails every section after it: stop here
            raise
        problem = f"{type(exc).__name__}: {exc}"
        section = unavailable(sid, title, _failure_note(exc))
    return section, time.perf_counter() - started, problem
