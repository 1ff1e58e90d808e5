"""What several sections of one report (or one dashboard request) share, computed once.

A :class:`Context` holds the store, the model and a cache of results: the orders table, the
default funnel with its channel breakdown and weekly trend, everyone's stage at two dates,
the diagnosis. The first section that needs one computes it; the others reuse it, so a
report reads the orders once and counts the funnel once however many sections show them.

The diagnosis, the slowest analysis and one that runs in DuckDB rather than in Python, can be
started in the background (:meth:`Context.start`) on a second connection to the same store
while the other sections are computed: the numbers are the same, the wall time shorter on a
machine with more than one core (ADR 0092).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from shopfunnel.store import summary
from shopfunnel.store.store import Store

# The model's default funnel when the model names none (the model's own defaults).
DEFAULT_STEPS = ("view_item", "add_to_cart", "begin_checkout", "purchase")
TREND = "week"
# The stage flow: from this many days before the latest event to it.
FLOW_DAYS = 30


@dataclass
class Context:
    """The store, the model, and analysis results shared by several sections.

    ``once(key, compute)`` returns the cached result under ``key``, computing it the first
    time; a result started with :meth:`start` is waited for (``background_seconds`` holds
    how long it took there). ``orders`` and ``currency`` are the shared tables most
    sections read.
    """

    store: Store
    model: Any = None
    cache: dict[str, Any] = field(default_factory=dict)
    average_order_value: float | None = None
    _pool: ThreadPoolExecutor | None = field(default=None, repr=False)
    _twins: list[Store] = field(default_factory=list, repr=False)
    background_seconds: dict[str, float] = field(default_factory=dict)

    def once(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = compute()
        value = self.cache[key]
        return value.result() if isinstance(value, Future) else value

    def start(self, key: str, compute: Callable[[Store], Any]) -> bool:
        """Compute ``compute(store)`` under ``key`` in the background, on a second
        connection to the store, while :meth:`background` is open. Returns False (and
        does nothing) outside it or when the store cannot give a second connection (a
        Spark store); :meth:`once` then computes it when first asked."""
        if self._pool is None or key in self.cache:
            return False
        twin = second_connection(self.store)
        if twin is None:
            return False

        def run() -> Any:
            started = time.perf_counter()
            try:
                return compute(twin)
            finally:
                self.background_seconds[key] = time.perf_counter() - started
                self._twins.remove(twin)
                twin.db.close()

        self._twins.append(twin)
        self.cache[key] = self._pool.submit(run)
        return True

    @contextmanager
    def background(self) -> Iterator[Context]:
        """Allow :meth:`start` inside the block; on leaving, wait for what was started (an
        error or Ctrl-C in the block interrupts its queries first rather than waiting)."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report") as pool:
            self._pool = pool
            try:
                yield self
            except BaseException:
                self._interrupt()
                raise
            finally:
                self._pool = None

    def _interrupt(self) -> None:
        """Stop what runs in the background: interrupt its queries until it has ended (a
        query that had not begun when interrupted is interrupted at the next round)."""
        started = [f for f in self.cache.values() if isinstance(f, Future)]
        while not all(f.done() for f in started):
            for twin in list(self._twins):
                with suppress(Exception):  # finished and closed meanwhile
                    twin.db.connection.interrupt()
            wait(started, timeout=0.05)

    @property
    def currency(self) -> str:
        """The currency most orders carry (:func:`summary.main_currency`)."""
        return self.once("currency", lambda: summary.main_currency(self.store))

    @property
    def orders(self) -> pd.DataFrame:
        """The store's ``orders`` table, read once (:func:`summary.orders`: through the copy
        kept beside the timeline when there is one)."""
        return self.once("orders", lambda: summary.orders(self.store))

    # -- the analyses several sections show ------------------------------------------------
    def model_args(self) -> dict[str, Any]:
        return {} if self.model is None else {"model": self.model}

    def funnel_args(self) -> dict[str, Any]:
        """The model's default funnel: its steps and conversion window (events the store
        does not record are counted as zero, not refused)."""
        section = getattr(self.model, "funnel", None)
        return {
            "steps": list(getattr(section, "steps", DEFAULT_STEPS)),
            "window": getattr(section, "window", "7d"),
            "allow_unknown": True,
        }

    def funnel(self) -> Any:
        """The default funnel with its breakdown by channel and :data:`TREND` trend (one
        run: the steps, the channels, the trend and the time to convert all read it)."""
        from shopfunnel.funnel.api import funnel

        return self.once(
            "funnel",
            lambda: funnel(self.store, **self.funnel_args(), by="channel", trend=TREND),
        )

    def placements(self) -> tuple[pd.Timestamp, pd.Timestamp, Any, Any] | None:
        """Everyone placed at the store's latest event and :data:`FLOW_DAYS` before it, from
        one pass over the events, as ``(start, end, at_start, at_end)``; None for a store
        without events. The stage sections use the second placement, the flow both."""
        from shopfunnel.stages.placement import placements

        def both() -> Any:
            last = summary.last_event_time(self.store)
            if last is None:
                return None
            end = pd.Timestamp(last)
            start = end - pd.Timedelta(days=FLOW_DAYS)
            at_start, at_end = placements(
                self.store, [start.to_pydatetime(), end.to_pydatetime()], **self.model_args()
            )
            return start, end, at_start, at_end

        return self.once("placements", both)

    def placement(self) -> Any:
        """Everyone placed at the store's latest event (:func:`placement`)."""
        from shopfunnel.stages.placement import placement

        placed = self.placements()
        if placed is None:  # an empty store
            return self.once("placement", lambda: placement(self.store, **self.model_args()))
        return placed[3]

    def stage_summary(self) -> pd.DataFrame:
        """Persons per stage and status at the latest event (:func:`stage_summary`)."""
        from shopfunnel.stages.summary import stage_summary

        return self.once(
            "stage_summary",
            lambda: stage_summary(self.store, placed=self.placement(), **self.model_args()),
        )

    def diagnose(self) -> Callable[[Store], Any]:
        """The diagnosis of a store with this context's model and order value."""
        from shopfunnel.diagnosis.diagnose import DiagnoseSettings, diagnose

        settings = DiagnoseSettings(average_order_value=self.average_order_value)
        model_args = self.model_args()
        return lambda store: diagnose(store, settings=settings, **model_args)

    def diagnosis(self) -> Any:
        """The store's diagnosis (:func:`~shopfunnel.diagnosis.diagnose.diagnose`), or the
        one started by :meth:`start_diagnosis`."""
        compute = self.diagnose()
        return self.once("diagnosis", lambda: compute(self.store))

    def start_diagnosis(self) -> bool:
        """Start the diagnosis in the background (see :meth:`start`). Its lazily imported
        parts are imported here first, so two threads never import the same modules."""
        import shopfunnel.diagnosis.checkout  # noqa: F401
        import shopfunnel.diagnosis.correlation  # noqa: F401
        import shopfunnel.store.session_facts  # noqa: F401
        from shopfunnel.diagnosis.stats import scipy_stats

        scipy_stats()

        return self.start("diagnosis", self.diagnose())


def second_connection(store: Any) -> Store | None:
    """``store`` on a second DuckDB connection to the same database (the same data, its own
    temporary tables), for another thread; None when it has none to give."""
    if not isinstance(store, Store) or getattr(store, "on_spark", False):
        return None
    twin = copy.copy(store)
    twin.db = store.db.cursor()
    return twin
