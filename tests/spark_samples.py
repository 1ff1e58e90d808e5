"""The sample store's raw file, the DuckDB store loaded from it and the same file on Spark:
what the Spark tests compare (Spark on the raw files against the store built from them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow.parquet as pq

from shopfunnel.sample import generate_sample
from shopfunnel.store.store import Store


@contextmanager
def raw_and_store(spark: Any, folder: Any, n_events: int, seed: int) -> Iterator[tuple]:
    """``(path, db, store, events)``: the raw Parquet file of ``n_events`` sample events,
    the DuckDB file loaded from it, that store opened read-only, and the file on Spark
    (:class:`shopfunnel.store.spark.SparkEvents`). Both are closed on leaving."""
    from shopfunnel.store.spark import SparkEvents

    path = folder / "sample.parquet"
    pq.write_table(generate_sample(n_events, seed=seed), path)
    db = folder / "sample.duckdb"
    with Store(str(db)) as loading:
        loading.load(str(path))
    store = Store(str(db), read_only=True)
    events = SparkEvents(str(path), spark=spark)
    try:
        yield str(path), str(db), store, events
    finally:
        store.close()
        events.close()
