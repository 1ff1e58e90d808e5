"""The read side the dashboard and the JSON API share: every analysis they show.

Each function takes the server's read-only view of the store and returns plain data
(DataFrames or dicts); the dashboard renders them and the API serialises them, so both
always show the same numbers.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from shopfunnel.durations import parse_duration_seconds
from shopfunnel.errors import ConfigError
from shopfunnel.store.store import Store

MAX_LIMIT = 10_000


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ConfigError(f"limit={limit} is not valid: use 1 to {MAX_LIMIT}")
    return limit


def info(store: Store) -> dict[str, Any]:
    """:meth:`Store.info`, from one pass over the timeline when it is current (the server
    runs compiled code anyway; the counts are kept until the events change)."""
    return store.info(timeline_pass=True)


def recent_events(store: Store, limit: int = 100) -> pd.DataFrame:
    """The latest ``limit`` events, newest first."""
    from shopfunnel.store.summary import recent_events as latest

    return latest(store, check_limit(limit))


def persons(store: Store, limit: int = 1000) -> pd.DataFrame:
    """Persons with their first and last visit, sessions, orders and revenue, best customers first."""
    from shopfunnel.store.summary import top_persons

    return top_persons(store, check_limit(limit))


# -- analyses (each module is the team's; these only pick the inputs) ---------------------
MAX_WINDOW_SECONDS = 3650 * 86400
BREAKDOWNS = ("channel", "device", "country", "utm_source", "utm_medium", "utm_campaign")


def funnel(
    store: Store,
    steps: str,
    *,
    window: str = "7d",
    order: str = "ordered",
    by: str | None = None,
    count_by: str = "person",
    exclude: str = "",
    hold: str | None = None,
    optional: str = "",
    open_entry: bool = False,
    allow_unknown: bool = False,
) -> Any:
    """:func:`shopfunnel.funnel.funnel` over the store (a ``FunnelResult``), from the texts
    of a form or query string: ``steps`` in :mod:`shopfunnel.funnel.syntax`, ``exclude``
    exclusions separated by ``;``, ``optional`` step numbers separated by commas."""
    from shopfunnel.funnel.api import funnel as count_funnel
    from shopfunnel.funnel.syntax import parse_exclusion, parse_steps

    seconds = parse_duration_seconds(window)
    if not 0 < seconds <= MAX_WINDOW_SECONDS:
        raise ConfigError(
            f"window={window!r} is not valid here: give a duration above 0 and at most "
            "3650d, e.g. 30m, 7d"
        )
    if by is not None and by not in BREAKDOWNS:
        raise ConfigError(f"by={by!r} is not offered here: use one of {', '.join(BREAKDOWNS)}")
    if not steps.strip():
        raise ConfigError(
            "steps is empty: give event names separated by commas, e.g. "
            "page_view,view_item,add_to_cart,purchase"
        )
    step_list = parse_steps(steps)
    exclusions = [parse_exclusion(e, len(step_list)) for e in exclude.split(";") if e.strip()]
    try:
        optional_steps = [int(k) for k in optional.split(",") if k.strip()]
    except ValueError:
        raise ConfigError(
            f"optional={optional!r}: give step numbers separated by commas, e.g. 2,3"
        ) from None
    # a live store changes with every batch the collector writes: use the timeline when
    # it is current, and never make a request wait for it to be rebuilt (ADR 0021)
    from shopfunnel.funnel.engine import LocalEngine
    from shopfunnel.store.timeline import is_current

    engine = LocalEngine(store, timeline=is_current(store))
    return count_funnel(
        engine,
        step_list,
        window=window,
        order=order,
        by=by,
        count_by=count_by,
        exclusions=exclusions,
        hold=hold or None,
        optional_steps=optional_steps,
        open_entry=open_entry,
        allow_unknown=allow_unknown,
    )


def stage_summary(store: Store) -> pd.DataFrame:
    from shopfunnel.stages.summary import stage_summary as summary

    return summary(store)


def stage_overview(store: Store) -> dict[str, Any]:
    """Persons per stage with their statuses (``summary``) and how the statuses were judged,
    in words with the store's numbers (``notes``): one placement for both."""
    from shopfunnel.stages import placement
    from shopfunnel.stages import stage_summary as summary

    placed = placement(store)
    return {"summary": summary(store, placed=placed), "notes": placed.status_notes()}


def stage_persons(
    store: Store, stage: str | None = None, status: str | None = None
) -> pd.DataFrame:
    from shopfunnel.stages.placement import persons as placed

    return placed(store, stage, status)


def stage_flow(store: Store, start: str, end: str) -> pd.DataFrame:
    from shopfunnel.stages.summary import stage_flow as flow

    return flow(store, start, end).reset_index()


def shared(store: Store) -> Any:
    """The tables one request's pages share, each read once
    (:class:`shopfunnel.report.context.Context`, the report's own): pass it to the queries
    below that take ``shared``."""
    from shopfunnel.report.context import Context

    return Context(store)


def _orders(store: Store, shared: Any = None) -> pd.DataFrame:
    return shared.orders if shared is not None else store.table("orders")


def retention(store: Store, period: str | None = None, *, shared: Any = None) -> dict[str, Any]:
    """Store-wide retention figures and the cohort matrix (share of each first-order
    cohort ordering again k periods later), as :func:`store_retention` gives them.
    ``shared`` (:func:`shared`) reads the orders once with :func:`rfm_groups`."""
    from shopfunnel.customers.retention import store_retention

    if period not in (None, "month", "week"):
        raise ConfigError(f"period={period!r} is not valid: use month or week")
    orders = None if shared is None else shared.orders
    result = store_retention(store, period=period, orders=orders)  # type: ignore[arg-type]
    if result.summary is None:
        return {"summary": None, "cohorts": pd.DataFrame(), "period": result.period}
    matrix = result.matrix.copy()
    matrix.columns = [str(c) for c in matrix.columns]
    return {
        "summary": result.summary.to_dict(),
        "period": result.period,
        "cohorts": matrix.reset_index().rename(columns=str),
    }


def rfm(store: Store, *, shared: Any = None) -> pd.DataFrame:
    from shopfunnel.customers.rfm import rfm_table

    orders = _orders(store, shared)
    if orders.empty:
        return pd.DataFrame(columns=["person_id", "recency_days", "frequency", "monetary", "group"])
    return rfm_table(orders)


def rfm_groups(store: Store, *, shared: Any = None) -> pd.DataFrame:
    from shopfunnel.customers.rfm import rfm_group_summary

    table = rfm(store, shared=shared)
    if table.empty:
        return pd.DataFrame(columns=["group", "customers", "share", "revenue", "revenue_share"])
    return rfm_group_summary(table)


def diagnosis(store: Store) -> Any:
    """:func:`shopfunnel.diagnosis.diagnose.diagnose` over the store (a ``Diagnosis``)."""
    from shopfunnel.diagnosis.diagnose import diagnose

    return diagnose(store)
