"""Prepared events on Spark: the store's load rules applied once, kept as Parquet.

Applying the store's load rules (:func:`shopfunnel.store.spark_rules.canonical_events`:
duplicates, derived sessions, channel grouping, identity stitching) to raw events is most
of what a Spark command costs. :func:`prepared_events` does it once per source and writes
the result as Parquet under a cache directory; later runs read that instead.

The cache entry's key is a SHA-256 of:

- every source file's absolute path, size and modification time (ns) — a folder or glob
  counts each Parquet file in it, so an added, removed, rewritten or touched file gives a
  new key;
- the rules' version: the text of :mod:`shopfunnel.store.spark_rules`, the store's channel
  SQL (:func:`shopfunnel.store.channels.channel_sql`) and :data:`RULES_VERSION`;
- the session timeout.

An entry is complete when its ``_SUCCESS`` marker exists: a run stopped while writing
leaves a directory without one, which is never read and is replaced by the next run.
Only local files are cached (``--table`` and ``s3://`` sources are prepared on every
run: their files' sizes and times cannot be read cheaply here); a ``--table`` source is
prepared once per command into a temporary folder of the cache dir
(:func:`prepared_copy`).

The directory is ``SHOPFUNNEL_SPARK_CACHE`` (``off`` turns the cache off), else
``$XDG_CACHE_HOME/shopfunnel/spark`` (``~/.cache/shopfunnel/spark``);
:func:`clear_cache` empties it (``shopfunnel spark-cache clear`` on the command line).
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from shopfunnel.durations import parse_duration_seconds
from shopfunnel.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

RULES_VERSION = 1  # bump when the rules change in a way the module's text does not show
ENV = "SHOPFUNNEL_SPARK_CACHE"


def default_cache_dir() -> Path | None:
    """The cache directory: ``SHOPFUNNEL_SPARK_CACHE``, None when it is ``off``, else
    ``$XDG_CACHE_HOME/shopfunnel/spark`` (default ``~/.cache/shopfunnel/spark``)."""
    value = os.environ.get(ENV)
    if value is not None and value.strip().lower() in ("off", "0", "no", "false", ""):
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "shopfunnel" / "spark"


def source_files(events: str) -> list[Path]:
    """The Parquet files a local ``events`` path, folder or glob reads, sorted."""
    found: list[Path] = []
    for match in sorted(glob.glob(events)):
        path = Path(match)
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.is_file() and not p.name.startswith(("_", "."))
            )
        else:
            found.append(path)
    if not found:
        raise InputError(
            f"no Parquet file matches {events!r}: give a file, a folder or a "
            "glob such as 'events/*.parquet'"
        )
    return found


def rules_fingerprint() -> str:
    """A hash of the load rules' code: the Spark rules module and the store's channel SQL."""
    from shopfunnel.store import spark_rules
    from shopfunnel.store.channels import channel_sql

    h = hashlib.sha256(str(RULES_VERSION).encode())
    h.update(Path(spark_rules.__file__).read_bytes())
    h.update(channel_sql("a", "b", "c", "d", "e").encode())
    return h.hexdigest()


def cache_key(events: str, session_timeout: str | float = "30m") -> str:
    """The cache entry's name for ``events`` (see the module docstring)."""
    h = hashlib.sha256(rules_fingerprint().encode())
    h.update(repr(parse_duration_seconds(session_timeout)).encode())
    for path in source_files(events):
        st = path.stat()
        h.update(f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def prepared_events(
    spark: SparkSession,
    events: str,
    *,
    cache_dir: str | Path | None = None,
    session_timeout: str | float = "30m",
) -> DataFrame:
    """The events of ``events`` with the store's persons, sessions and channels, read from
    the cache when an entry for the same files and rules exists, else prepared, written
    there and read back. ``cache_dir`` None uses :func:`default_cache_dir`; with the cache
    off (or a remote path) the rules are applied on every run, as
    :func:`canonical_events` does."""
    from shopfunnel.store.spark import read_events
    from shopfunnel.store.spark_rules import canonical_events

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if root is None or "://" in events:
        return canonical_events(read_events(spark, events=events), session_timeout=session_timeout)
    entry = root / cache_key(events, session_timeout)
    if not (entry / "_SUCCESS").exists():
        raw = read_events(spark, events=events)
        if "person_id" in raw.columns:  # already prepared upstream: nothing to keep
            return raw
        shutil.rmtree(entry, ignore_errors=True)
        entry.parent.mkdir(parents=True, exist_ok=True)
        prepared = canonical_events(raw, session_timeout=session_timeout)
        # Spark writes _SUCCESS last, after every part file is in place
        prepared.write.mode("overwrite").parquet(str(entry))
    return spark.read.parquet(str(entry))


def clear_cache(cache_dir: str | Path | None = None) -> int:
    """Delete every prepared-events entry under ``cache_dir`` (default:
    :func:`default_cache_dir`); returns how many were deleted."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if root is None or not root.is_dir():
        return 0
    n = 0
    for entry in root.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
            n += 1
    return n


@contextmanager
def prepared_copy(
    df: DataFrame, *, cache_dir: str | Path | None = None, session_timeout: str | float = "30m"
) -> Iterator[DataFrame]:
    """Raw events of a source that cannot be keyed (a catalog table, ``--table``) with the
    store's load rules applied once for the time of one command: written as Parquet to a
    temporary folder of the cache dir, read from there by every query, and removed at the
    end (ADR 0190). Keeping them in Spark's memory instead (``persist``) ran a 4g local
    driver out of heap at 100M events (ADR 0187). Events that already have ``person_id``
    (prepared upstream) are given as they are: the rules apply nothing to them. Without a
    folder both the executors and this process see (a local master, or
    ``SHOPFUNNEL_SPARK_CACHE`` set), or with the cache off, the prepared events are kept on
    the executors' disks (``DISK_ONLY``) and dropped at the end."""
    import tempfile

    from pyspark import StorageLevel

    from shopfunnel.store.spark_reads import _shared_dir
    from shopfunnel.store.spark_rules import canonical_events

    if "person_id" in df.columns:
        yield df
        return
    prepared = canonical_events(df, session_timeout=session_timeout)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if root is None or "://" in str(root) or not _shared_dir(df):
        kept = prepared.persist(StorageLevel.DISK_ONLY)
        try:
            yield kept
        finally:
            kept.unpersist()
        return
    root.mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="table-", dir=root)
    try:
        prepared.write.mode("overwrite").parquet(folder)
        yield df.sparkSession.read.parquet(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
