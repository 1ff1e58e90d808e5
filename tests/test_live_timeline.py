"""Live appends: a timeline extended by sorted deltas counts what a rebuilt one counts.

The reference is a timeline built from scratch over the same store after the same loads
(itself checked against the SQL path in ``test_timeline``). Random append sequences mix
new visitors, old visitors coming back, identify events that stitch anonymous ids seen in
earlier appends (and that change a device's earliest user), visits split across appends,
duplicates of earlier events, and compactions at random points.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from conftest import log
from shopfunnel.funnel.api import Step, funnel
from shopfunnel.funnel.engine import LocalEngine
from shopfunnel.store import live, segments
from shopfunnel.store import timeline as tl_mod
from shopfunnel.store.store import Store
from test_timeline import ALPHABET, CHANNELS, T0, assert_same, plans

ANONS = [f"a{i}" for i in range(6)]
USERS = ["u0", "u1", "u2"]


@st.composite
def appends(draw, max_batches: int = 4, max_events: int = 10):
    """Batches of events in load order; every batch after the first is an append."""
    batches = []
    serial = 0
    for b in range(draw(st.integers(2, max_batches))):
        rows = []
        for _ in range(draw(st.integers(1, max_events))):
            # later batches mostly come later in time, and sometimes reach back
            minute = 20 * b + draw(st.integers(-25, 25)) * draw(st.sampled_from([1, 2]))
            rows.append(
                {
                    "event_id": f"e{serial}",
                    "anonymous_id": draw(st.sampled_from(ANONS)),
                    "user_id": draw(st.sampled_from([None, None, None, *USERS])),
                    "ts": pd.Timestamp(T0) + pd.Timedelta(minutes=minute),
                    "event": draw(st.sampled_from(ALPHABET)),
                    "session_id": draw(st.sampled_from([None, None, None, "client-s"])),
                    "channel": CHANNELS[abs(minute) % 3],
                }
            )
            serial += 1
        if batches and draw(st.booleans()):  # an earlier event sent again
            rows.append(draw(st.sampled_from(batches[-1])))
        batches.append(rows)
    return batches


def rebuilt(store: Store) -> LocalEngine:
    """An engine over a timeline built from the store's events now (no delta)."""
    columns = {row[0]: row[1] for row in store.db.rows("DESCRIBE events")}
    tl = tl_mod.build(store.db, "events", '"person_id"', columns, key="reference")
    return LocalEngine(store, timeline=tl)


def run_appends(path: str, batches: list[list[dict]], compact_after: set[int]) -> Store:
    store = Store(path)
    store.load(pd.DataFrame(batches[0]))
    funnel(store, ["a"], allow_unknown=True)  # a funnel keeps the timeline: loads extend it
    for i, rows in enumerate(batches[1:], 1):
        store.load(pd.DataFrame(rows))
        assert tl_mod.is_current(store), "the delta chain must reach every load"
        if i in compact_after:
            live.compact(store)
    return store


def converted(store: Store, steps: list[str], **kw) -> list[str]:
    """The persons who reached the last of ``steps``."""
    result = funnel(store, [*steps, "__never__"], allow_unknown=True, **kw)
    return sorted(result.dropped(len(steps))["person_id"])


def tied_channels(store: Store) -> bool:
    """Whether a person has events at one instant with different channels.

    The store gives an event the channel of its session's first event, so two sessions of
    one person can put different channels on the same instant. Which of such tied rows
    gives a step its breakdown value (or meets a channel filter first) is not defined, on
    any path: a rebuilt timeline may order the ties either way.
    """
    return bool(
        store.db.scalar(
            "SELECT count(*) FROM (SELECT person_id, ts FROM events GROUP BY person_id, ts "
            "HAVING count(DISTINCT coalesce(CAST(channel AS VARCHAR), '')) > 1)"
        )
    )


def uses_channel(steps, kw) -> bool:
    where = [s for s in steps if isinstance(s, Step) and s.where]
    where += [e for e, *_ in kw.get("exclusions", []) if isinstance(e, Step) and e.where]
    return kw.get("by") == "channel" or bool(where)


def check_same_as_rebuilt(batches, plan, data) -> None:
    steps, kw = plan
    compact_after = data.draw(st.sets(st.integers(1, len(batches) - 1), max_size=2))
    note(f"steps={steps} kw={kw} compact_after={compact_after}")
    for b in batches:
        note(pd.DataFrame(b).to_string())
    in_memory = data.draw(st.booleans())
    with tempfile.TemporaryDirectory() as tmp:
        store = run_appends(
            ":memory:" if in_memory else os.path.join(tmp, "s.duckdb"), batches, compact_after
        )
        with store:
            assume(not (uses_channel(steps, kw) and tied_channels(store)))
            incremental = funnel(store, steps, allow_unknown=True, **kw)
            reference = funnel(store, steps, engine=rebuilt(store), allow_unknown=True, **kw)
            assert_same(reference, incremental)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=appends(), plan=plans(), data=st.data())
def test_a_funnel_over_a_live_timeline_equals_one_over_a_rebuilt_timeline(batches, plan, data):
    check_same_as_rebuilt(batches, plan, data)


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=appends(max_batches=6, max_events=16), plan=plans(), data=st.data())
def test_many_live_append_sequences_count_as_a_rebuild(batches, plan, data) -> None:
    check_same_as_rebuilt(batches, plan, data)


# -- identity stitching across appends ------------------------------------------------
def test_an_identify_in_a_later_load_moves_the_visitors_earlier_rows_to_the_user(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    store.load(log(("anon", 0, "view"), ("anon", 1, "cart"), ("other", 0, "view")))
    assert funnel(store, ["view", "cart", "buy"], allow_unknown=True).steps["persons"].tolist() == [
        2,
        1,
        0,
    ]
    # the visitor signs in as "amy" and buys: amy did all three steps
    store.load(
        log(
            ("anon", 2, "login", {"user_id": "amy"}),
            ("anon", 3, "buy"),
        ).assign(event_id=["n1", "n2"])
    )
    tl = LocalEngine(store).timeline()
    assert tl.side is not None, "the append must extend the timeline, not rebuild it"
    result = funnel(store, ["view", "cart", "buy"])
    assert result.steps["persons"].tolist() == [2, 1, 1]
    assert converted(store, ["view", "cart", "buy"]) == ["amy"]


def test_a_device_whose_earlier_user_appears_later_moves_to_that_user(tmp_path) -> None:
    # the earliest user id of a shared device owns its anonymous events (store.py)
    store = Store(tmp_path / "s.duckdb")
    store.load(log(("dev", 10, "view"), ("dev", 11, "login", {"user_id": "bea"})))
    funnel(store, ["view"])
    store.load(log(("dev", 1, "login", {"user_id": "amy"})).assign(event_id="n1"))
    assert converted(store, ["view"]) == ["amy"]
    assert_same(
        funnel(store, ["view", "login"], engine=rebuilt(store)), funnel(store, ["view", "login"])
    )


def test_later_anonymous_events_of_an_identified_visitor_belong_to_the_user(store) -> None:
    store.load(log(("anon", 0, "view"), ("anon", 1, "login", {"user_id": "amy"})))
    store.load(log(("anon", 90, "buy")).assign(event_id="later"))
    assert store.db.rows("SELECT DISTINCT person_id FROM events") == [("amy",)]


# -- sessions across loads ------------------------------------------------------------
def test_a_visit_split_across_two_files_is_one_session(tmp_path) -> None:
    first, second = tmp_path / "monday.csv", tmp_path / "monday-late.csv"
    log(
        ("v", 0, "view", {"utm_source": "newsletter", "utm_medium": "email"}), ("v", 10, "cart")
    ).to_csv(first, index=False)
    # the visit goes on 10 minutes later in the next file; a new visit an hour after
    log(("v", 20, "checkout"), ("v", 90, "view")).assign(event_id=["x1", "x2"]).to_csv(
        second, index=False
    )
    with Store(tmp_path / "s.duckdb") as store:
        store.load(first)
        store.load(second)
        sessions = store.db.rows(
            "SELECT session_id, list(event ORDER BY ts), any_value(channel) FROM events "
            "GROUP BY 1 ORDER BY min(ts)"
        )
    assert [s[1] for s in sessions] == [["view", "cart", "checkout"], ["view"]]
    assert sessions[0][2] == "email"  # the continued visit keeps its landing channel
    assert sessions[1][2] == "direct"


def test_sessions_split_across_loads_count_once_on_the_live_timeline(tmp_path) -> None:
    store = Store(tmp_path / "s.duckdb")
    store.load(log(("v", 0, "view"), ("w", 0, "view")))
    assert funnel(store, ["view", "cart"], count_by="session", allow_unknown=True).steps[
        "persons"
    ].tolist() == [2, 0]
    store.load(log(("v", 5, "cart"), ("w", 45, "cart")).assign(event_id=["n1", "n2"]))
    assert LocalEngine(store).timeline().side is not None
    # v's cart continues its visit; w's comes after 45 minutes: a new session
    assert funnel(store, ["view", "cart"], count_by="session").steps["persons"].tolist() == [2, 1]


# -- the delta's life: segments, compaction, crashes ------------------------------------
def small_store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "s.duckdb")
    store.load(log(("p", 0, "a"), ("q", 0, "a"), ("q", 1, "b")))
    funnel(store, ["a", "b"])
    store.load(log(("p", 2, "b"), ("r", 0, "a")).assign(event_id=["n1", "n2"]))
    return store


def test_compaction_folds_the_delta_into_a_new_base_and_deletes_the_segments(tmp_path):
    store = small_store(tmp_path)
    delta = tmp_path / "s.duckdb.timeline.delta"
    assert [p.name for p in delta.iterdir()] == ["000000000002.npz"]
    new = live.compact(store)
    assert new is not None and new.side is None and len(new) == 5
    assert new.key == tl_mod.store_key(store.db)
    assert list(delta.iterdir()) == []
    assert funnel(store, ["a", "b"]).steps["persons"].tolist() == [3, 2]
    store.close()
    with Store(tmp_path / "s.duckdb", read_only=True) as again:  # read back, as is
        assert LocalEngine(again).timeline().side is None


def test_a_compaction_killed_before_its_rename_loses_nothing(tmp_path, monkeypatch) -> None:
    store = small_store(tmp_path)

    def killed(tmp: Path, folder: Path) -> None:
        raise KeyboardInterrupt  # the process dies with the new base half-way

    monkeypatch.setattr(tl_mod, "_replace", killed)
    with pytest.raises(KeyboardInterrupt):
        live.compact(store)
    monkeypatch.undo()
    store.close()
    with Store(tmp_path / "s.duckdb", read_only=True) as again:
        tl = LocalEngine(again).timeline()
        assert tl.side is not None  # the old base and its segment, not a rebuild
        assert funnel(again, ["a", "b"]).steps["persons"].tolist() == [3, 2]
    assert not list(tmp_path.glob("*.tmp"))


def test_a_funnel_keeps_reading_its_timeline_while_a_compaction_replaces_it(tmp_path):
    store = small_store(tmp_path)
    view = LocalEngine(store).timeline()
    before = view.read("t", 0, len(view)).copy()
    live.compact(store)  # renames a new, longer base into the same folder
    assert (view.read("t", 0, len(view)) == before).all()


def test_a_lost_segment_means_a_rebuild_with_the_same_numbers(tmp_path) -> None:
    store = small_store(tmp_path)
    for seg in (tmp_path / "s.duckdb.timeline.delta").iterdir():
        seg.unlink()  # a crash between the store's commit and the segment's write
    segments.forget(str(tmp_path / "s.duckdb"))
    store.close()
    with Store(tmp_path / "s.duckdb") as again:
        assert not tl_mod.is_current(again)
        assert funnel(again, ["a", "b"]).steps["persons"].tolist() == [3, 2]
        assert LocalEngine(again).timeline().side is None


def test_a_load_too_large_for_a_segment_leaves_the_timeline_to_be_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setattr(segments, "MAX_SEGMENT_ROWS", 1)
    store = small_store(tmp_path)
    assert not (tmp_path / "s.duckdb.timeline.delta").exists()
    assert not tl_mod.is_current(store)
    assert funnel(store, ["a", "b"]).steps["persons"].tolist() == [3, 2]


def test_a_store_whose_timeline_is_not_kept_writes_no_delta(tmp_path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        store.load(log(("p", 0, "a")))
        store.load(log(("p", 1, "b")).assign(event_id="n1"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.duckdb"]


def test_new_event_names_and_channels_in_a_delta_get_codes_of_their_own(tmp_path) -> None:
    store = small_store(tmp_path)
    store.load(
        log(("s", 3, "a", {"channel": "podcast"}), ("s", 4, "brand_new_step")).assign(
            event_id=["m1", "m2"]
        )
    )
    result = funnel(store, ["a", "brand_new_step"], by="channel")
    assert LocalEngine(store).timeline().side is not None
    assert result.steps["persons"].tolist() == [4, 1]
    assert_same(funnel(store, ["a", "brand_new_step"], by="channel", engine=rebuilt(store)), result)


def test_a_load_that_grows_the_delta_past_the_threshold_compacts_it(tmp_path, monkeypatch):
    monkeypatch.setattr(live, "COMPACT_MIN_ROWS", 3)
    store = small_store(tmp_path)  # a delta of 2 rows: kept
    assert len(list((tmp_path / "s.duckdb.timeline.delta").iterdir())) == 1
    store.load(log(("t", 0, "a"), ("t", 1, "b")).assign(event_id=["m1", "m2"]))
    # 4 delta rows: past the threshold, folded by the load
    assert list((tmp_path / "s.duckdb.timeline.delta").iterdir()) == []
    tl = LocalEngine(store).timeline()
    assert tl.side is None and tl.key == tl_mod.store_key(store.db)
    assert funnel(store, ["a", "b"]).steps["persons"].tolist() == [4, 3]


def test_a_segment_that_cannot_be_written_leaves_the_load_done_and_the_timeline_rebuilt(
    tmp_path, monkeypatch
):
    store = Store(tmp_path / "s.duckdb")
    store.load(log(("p", 0, "a"), ("q", 0, "a")))
    funnel(store, ["a"])

    def disk_full(self, folder):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(segments.Segment, "save", disk_full)
    result = store.load(log(("p", 1, "b")).assign(event_id="n1"))
    assert result.rows_added == 1  # the load itself is done
    monkeypatch.undo()
    assert not tl_mod.is_current(store)
    assert funnel(store, ["a", "b"]).steps["persons"].tolist() == [2, 1]


def test_readers_of_every_row_get_one_whole_timeline_with_the_fresh_rows(tmp_path) -> None:
    # retention and the stage evidence walk every row: they never see a masked base row
    store = small_store(tmp_path)
    assert LocalEngine(store).timeline().side is not None  # the funnel engine: two pieces
    whole = tl_mod.of_store(store)
    assert whole.side is None and len(whole) == 5 == store.info()["events"]
    assert list((tmp_path / "s.duckdb.timeline.delta").iterdir()) == []  # compacted
