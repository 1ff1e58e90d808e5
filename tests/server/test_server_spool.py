"""The spool: durable before acknowledged, rotated, checkpointed and read back after a crash."""

from __future__ import annotations

import threading

import orjson
import pytest

from shopfunnel.errors import ConfigError
from shopfunnel.server.spool import Chunk, Spool, discard_loaded


def records(start: int, n: int) -> list[dict]:
    return [{"event_id": f"e{i}", "pad": "x" * 100} for i in range(start, start + n)]


def ids(chunks: list[Chunk]) -> list[str]:
    return [orjson.loads(line)["event_id"] for c in chunks for line in c.data.splitlines()]


def test_appends_are_synced_in_order_rotated_and_dropped_once_loaded(tmp_path):
    spool = Spool(tmp_path, segment_bytes=2_000)
    durable: list[Chunk] = []
    spool.start(durable.append)
    for i in range(10):
        spool.append(records(i * 5, 5)).result(timeout=10)
    spool.close()
    assert ids(durable) == [f"e{i}" for i in range(50)]
    assert sum(c.count for c in durable) == 50
    assert len(spool.segments()) == 3  # 650-byte appends, rotated once a segment passes 2,000 bytes
    # load the first half: the checkpoint moves and fully loaded segments go away
    half = next(c for c in durable if sum(x.count for x in durable[: durable.index(c) + 1]) >= 25)
    spool.set_checkpoint(half.end)
    assert min(spool.segments()) == half.end[0]
    remaining = list(Spool(tmp_path).unloaded(chunk_bytes=500))
    loaded = ids(durable[: durable.index(half) + 1])
    assert ids(remaining) == [f"e{i}" for i in range(len(loaded), 50)]


def test_a_torn_last_line_is_cut_off_and_never_read(tmp_path):
    spool = Spool(tmp_path)
    spool.start(lambda chunk: None)
    spool.append(records(0, 3)).result(timeout=10)
    spool.close()
    segment = spool.path(spool.segments()[-1])
    with open(segment, "ab") as fh:
        fh.write(b'{"event_id": "torn", "pa')
    assert ids(list(Spool(tmp_path).unloaded())) == ["e0", "e1", "e2"]
    assert segment.read_bytes().endswith(b"}\n")


def test_concurrent_appends_share_syncs_and_all_complete(tmp_path):
    spool = Spool(tmp_path)
    durable: list[Chunk] = []
    spool.start(durable.append)
    done = []

    def writer(k: int) -> None:
        for j in range(20):
            spool.append(records(k * 1000 + j, 1)).result(timeout=10)
        done.append(k)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spool.close()
    assert sorted(done) == list(range(8))
    assert sum(c.count for c in durable) == 160 and len(set(ids(durable))) == 160
    assert len(durable) <= 160  # group commit: never more syncs than appends


def test_a_failed_write_is_cut_back_and_refused_so_later_records_stay_readable(
    tmp_path, monkeypatch
):
    import os as os_module

    from shopfunnel.server import spool as spool_module

    spool = Spool(tmp_path)
    spool.start(lambda chunk: None)
    spool.append(records(0, 2)).result(timeout=10)
    real_write = os_module.write
    calls = {"n": 0}

    def flaky_write(fd, data):
        calls["n"] += 1
        if calls["n"] == 1:
            real_write(fd, bytes(data)[:10])  # half a record reaches the disk …
            raise OSError(28, "No space left on device")  # … then the disk is full
        return real_write(fd, data)

    monkeypatch.setattr(spool_module.os, "write", flaky_write)
    failed = spool.append(records(2, 1))
    try:
        failed.result(timeout=10)
        raise AssertionError("the failed append was acknowledged")
    except OSError:
        pass
    spool.append(records(3, 1)).result(timeout=10)
    spool.close()
    assert ids(list(Spool(tmp_path).unloaded())) == ["e0", "e1", "e3"]


def test_a_rotation_starts_a_new_segment_and_says_where_the_earlier_records_end(tmp_path):
    spool = Spool(tmp_path)
    durable: list[Chunk] = []
    spool.start(durable.append)
    assert spool.rotate() == (None, 1)  # nothing appended yet: nothing to wait for
    spool.append(records(0, 3)).result(timeout=10)
    end, segment = spool.rotate()
    assert end == durable[-1].end and end[0] == 1 and segment == 2
    spool.append(records(3, 2)).result(timeout=10)
    assert durable[-1].end[0] == 2  # what comes after the rotation is in the new segment
    spool.set_checkpoint(end)
    spool.drop_before(segment)
    spool.close()
    assert spool.segments() == [2]
    assert ids(list(Spool(tmp_path).unloaded())) == ["e3", "e4"]


def test_discard_loaded_refuses_while_records_wait_and_clears_a_loaded_spool(tmp_path):
    spool = Spool(tmp_path)
    durable: list[Chunk] = []
    spool.start(durable.append)
    spool.append(records(0, 2)).result(timeout=10)
    spool.close()
    with pytest.raises(ConfigError, match="2 event"):
        discard_loaded(tmp_path)
    spool.set_checkpoint(durable[-1].end)
    assert discard_loaded(tmp_path) == 2  # the segment and the checkpoint
    assert list(tmp_path.iterdir()) == []
