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
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from shopfunnel.store import summary
from shopfunnel.store.store import Store


@dataclass
class Context:
    """The store, the model, and analysis results shared by several sections.

    ``once(key, compute)`` returns the cached result under ``key``, computing it the first
    time; a result started with :meth:`start` is waited for. ``orders`` and ``currency``
    are the shared tables most sections read.
    """

    store: Store
    model: Any = None
    cache: dict[str, Any] = field(default_factory=dict)
    average_order_value: float | None = None
    _pool: ThreadPoolExecutor | None = field(default=None, repr=False)

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
            try:
                return compute(twin)
            finally:
                twin.db.close()

        self.cache[key] = self._pool.submit(run)
        return True

    @contextmanager
    def background(self) -> Iterator[Context]:
        """Allow :meth:`start` inside the block; on leaving, wait for what was started."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="report") as pool:
            self._pool = pool
            try:
                yield self
            finally:
                self._pool = None

    @property
    def currency(self) -> str:
        """The currency most orders carry (:func:`summary.main_currency`)."""
        return self.once("currency", lambda: summary.main_currency(self.store))

    @property
    def orders(self) -> pd.DataFrame:
        """The store's ``orders`` table, read once."""
        return self.once("orders", lambda: self.store.table("orders"))


def second_connection(store: Any) -> Store | None:
    """``store`` on a second DuckDB connection to the same database (the same data, its own
    temporary tables), for another thread; None when it has none to give."""
    if not isinstance(store, Store) or getattr(store, "on_spark", False):
        return None
    twin = copy.copy(store)
    twin.db = store.db.cursor()
    return twin
