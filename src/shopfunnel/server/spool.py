"""The durable spool: an fsynced, append-only log of accepted events.

A batch is acknowledged only after its records are written to the current segment
file and ``fdatasync`` has returned, so an acknowledged event survives a crash of the
process (or the machine) right after the response. Writes are group-committed: one
thread takes every batch waiting at that moment, writes them in one ``write`` and
syncs once, so many concurrent requests share one sync.

Segments are JSON Lines files ``NNNNNNNN.jsonl`` in the spool folder. The background
writer (:mod:`shopfunnel.server.writer`) loads records into the store and then moves a
checkpoint (segment, byte offset) forward; fully loaded segments are deleted. On start,
everything after the checkpoint is read back (a torn last line — never acknowledged —
is cut off) and loaded again; the store ignores event ids it already holds, so a replay
after a crash adds each event exactly once.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("shopfunnel.server")

SEGMENT_BYTES = 64 * 1024 * 1024


@dataclass
class Chunk:
    """Records that are durable in the spool, waiting to be loaded: ``data`` is their
    JSON Lines, ``count`` how many, ``end`` where they end (segment, byte offset)."""

    data: bytes
    count: int
    end: tuple[int, int]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Append-only, group-committed, fsynced segments of JSON Lines records."""

    def __init__(
        self, directory: str | Path, *, segment_bytes: int = SEGMENT_BYTES, sync: bool = True
    ):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.sync = sync
        self._cond = threading.Condition()
        self._pending: list[tuple[int, bytes, concurrent.futures.Future[None]]] = []
        self._closed = False
        self._on_durable: Any = None
        self._segment, self._fd, self._size = -1, -1, 0
        self._thread: threading.Thread | None = None
        self._rotations: list[concurrent.futures.Future[tuple[tuple[int, int] | None, int]]] = []
        self._durable_end: tuple[int, int] | None = None

    # -- recovery ---------------------------------------------------------------------
    def segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.dir.glob("*.jsonl") if p.stem.isdigit())

    def path(self, segment: int) -> Path:
        return self.dir / f"{segment:08d}.jsonl"

    def checkpoint(self) -> tuple[int, int]:
        try:
            data = json.loads((self.dir / "checkpoint").read_text())
            return int(data["segment"]), int(data["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return (-1, 0)

    def set_checkpoint(self, end: tuple[int, int]) -> None:
        """Record that everything up to ``end`` is in the store; drop older segments."""
        tmp = self.dir / "checkpoint.tmp"
        tmp.write_text(json.dumps({"segment": end[0], "offset": end[1]}))
        os.replace(tmp, self.dir / "checkpoint")
        for seg in self.segments():
            if seg < end[0]:
                self.path(seg).unlink(missing_ok=True)

    def unloaded(self, chunk_bytes: int = 8 * 1024 * 1024) -> Iterator[Chunk]:
        """Read back every record after the checkpoint, cutting a torn last line off."""
        seg0, off0 = self.checkpoint()
        for seg in self.segments():
            if seg < seg0:
                continue
            start = off0 if seg == seg0 else 0
            with open(self.path(seg), "rb") as fh:
                data = fh.read()
            good_end = data.rfind(b"\n") + 1
            if good_end < len(data):
                log.warning(
                    "spool %s: cutting off a torn last record (%d bytes, never acknowledged)",
                    self.path(seg).name,
                    len(data) - good_end,
                )
                with open(self.path(seg), "r+b") as fh:
                    fh.truncate(good_end)
                    os.fsync(fh.fileno())
            pos = start
            while pos < good_end:
                cut = data.rfind(b"\n", pos, min(good_end, pos + chunk_bytes)) + 1
                if cut <= pos:
                    cut = data.index(b"\n", pos) + 1
                part = data[pos:cut]
                yield Chunk(part, part.count(b"\n"), (seg, cut))
                pos = cut
            if start >= good_end:
                yield Chunk(b"", 0, (seg, good_end))

    # -- appending --------------------------------------------------------------------
    def start(self, on_durable: Any) -> None:
        """Open a new segment and start the commit thread; ``on_durable(chunk)`` is
        called (on that thread) with each group of records once it is synced."""
        self._on_durable = on_durable
        existing = self.segments()
        self._open_segment((existing[-1] + 1) if existing else 0)
        self._thread = threading.Thread(target=self._run, name="spool-commit", daemon=True)
        self._thread.start()

    def _open_segment(self, number: int) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._segment = number
        self._fd = os.open(self.path(number), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size
        if self.sync:
            _fsync_dir(self.dir)

    def append(self, records: list[dict[str, Any]]) -> concurrent.futures.Future[None]:
        """Queue records; the future completes once they are durable on disk."""
        return self.append_lines(b"".join(orjson.dumps(r) + b"\n" for r in records), len(records))

    def append_lines(self, payload: bytes, count: int) -> concurrent.futures.Future[None]:
        """Queue ``count`` records already written as JSON Lines (each ending in a newline);
        the future completes once they are durable on disk."""
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the spool is closed")
            self._pending.append((count, payload, future))
            self._cond.notify()
        return future

    def rotate(self, timeout: float = 30.0) -> tuple[tuple[int, int] | None, int]:
        """Start a new segment for what is appended from now on. Returns where the records
        appended before end (segment, offset; None if nothing was appended since start) and
        the new segment's number. Once the checkpoint reaches that end, the segments below
        the new one hold only loaded records and :meth:`drop_before` may delete them
        (erasing a person does so)."""
        future: concurrent.futures.Future[tuple[tuple[int, int] | None, int]] = (
            concurrent.futures.Future()
        )
        with self._cond:
            if self._closed or self._thread is None:
                raise RuntimeError("the spool is not running")
            self._rotations.append(future)
            self._cond.notify()
        return future.result(timeout)

    def drop_before(self, segment: int) -> None:
        """Delete the segments numbered below ``segment`` (every record in them is loaded)."""
        for seg in self.segments():
            if seg < segment:
                self.path(seg).unlink(missing_ok=True)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed and not self._rotations:
                    self._cond.wait()
                rotations, self._rotations = self._rotations, []
                if not self._pending and self._closed:
                    for future in rotations:
                        future.set_exception(RuntimeError("the spool is closed"))
                    return
                batch, self._pending = self._pending, []
            if not batch:
                self._rotate(rotations)
                continue
            try:
                if self._size >= self.segment_bytes:
                    self._open_segment(self._segment + 1)
                data = b"".join(p for _, p, _ in batch)
                view = memoryview(data)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
                if self.sync:
                    os.fdatasync(self._fd)
                self._size += len(data)
            except OSError as exc:
                log.error("spool write failed: %s", exc)
                self._discard_partial_write()
                for _, _, fut in batch:
                    fut.set_exception(exc)
                self._rotate(rotations)
                continue
            self._durable_end = (self._segment, self._size)
            self._on_durable(Chunk(data, sum(n for n, _, _ in batch), (self._segment, self._size)))
            for _, _, fut in batch:
                fut.set_result(None)
            self._rotate(rotations)

    def _rotate(
        self, rotations: list[concurrent.futures.Future[tuple[tuple[int, int] | None, int]]]
    ) -> None:
        if not rotations:
            return
        end = self._durable_end
        try:
            self._open_segment(self._segment + 1)
        except OSError as exc:
            for future in rotations:
                future.set_exception(exc)
            return
        for future in rotations:
            future.set_result((end, self._segment))

    def _discard_partial_write(self) -> None:
        """After a failed write, cut the segment back to its last synced size so a torn
        record can never merge with the next one; if even that fails, start a new segment."""
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            try:
                self._open_segment(self._segment + 1)
            except OSError as exc:
                log.error("spool: cannot open a new segment either: %s", exc)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def discard_loaded(directory: str | Path) -> int:
    """With no server running: delete a spool whose every record is in the store (segments
    and checkpoint, so the next start begins a fresh spool); return the files removed.

    Loaded records stay in the current segment until a later checkpoint passes it, and they
    hold what the collector received (erasing a person must not leave them there). Raises
    :class:`~shopfunnel.errors.ConfigError` when some records are not loaded yet: starting
    ``shopfunnel serve`` once loads them.
    """
    from shopfunnel.errors import ConfigError

    folder = Path(directory)
    if not folder.is_dir():
        return 0
    spool = Spool(folder, sync=False)
    waiting = sum(chunk.count for chunk in spool.unloaded())
    if waiting:
        raise ConfigError(
            f"the spool {folder} holds {waiting} event(s) not yet in the store: start "
            "`shopfunnel serve` once (it loads them at start), stop it, then run this again"
        )
    removed = 0
    for seg in spool.segments():
        spool.path(seg).unlink(missing_ok=True)
        removed += 1
    for name in ("checkpoint", "checkpoint.tmp"):
        if (folder / name).exists():
            (folder / name).unlink()
            removed += 1
    return removed
