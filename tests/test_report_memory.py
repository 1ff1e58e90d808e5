"""The report's memory (ADR 0181): its sections are computed grouped by the shared table
they read, each shared table is dropped once no section still to compute reads it, and past
the size limit the diagnosis comes first; the page is the same as with nothing dropped."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from shopfunnel.report import build as build_module
from shopfunnel.report.build import (
    AFTER_DIAGNOSIS,
    PLAN,
    READS,
    SHOW_DIAGNOSIS,
    compute_order,
    drop_unread,
)
from shopfunnel.report.context import Context
from shopfunnel.store import person_index
from shopfunnel.store.store import Store
from test_report import shop_events
from test_report_context import _page

SECTIONS = [sid for sid, _, _ in PLAN]


@pytest.fixture
def shop(store: Store) -> Store:
    store.load(shop_events(persons=300, days=60, seed=3))
    return store


@pytest.mark.parametrize("first", [False, True])
def test_every_section_is_computed_once_and_the_activity_after_the_diagnosis(first) -> None:
    order = compute_order(SECTIONS, diagnosis_first=first)
    assert sorted(order) == sorted(SECTIONS)
    assert order.index("activity") > order.index("diagnosis")
    assert order[-1] == "activity"


def test_the_diagnosis_comes_first_in_its_turn_and_last_beside_the_others() -> None:
    first = compute_order(SECTIONS, diagnosis_first=True)
    assert set(first[:2]) == SHOW_DIAGNOSIS
    beside = compute_order(SECTIONS, diagnosis_first=False)
    assert set(beside[-3:]) == AFTER_DIAGNOSIS


@pytest.mark.parametrize("first", [False, True])
def test_the_readers_of_one_shared_table_are_computed_one_after_another(first) -> None:
    order = compute_order(SECTIONS, diagnosis_first=first)
    for key in {"placements", "funnel", "orders", "diagnosis"}:
        at = [i for i, sid in enumerate(order) if key in READS.get(sid, ())]
        assert at == list(range(at[0], at[-1] + 1)), (key, order)


def test_a_section_the_order_does_not_name_is_computed_before_the_diagnosis() -> None:
    order = compute_order(
        ["overview", "new-section", "diagnosis", "activity"], diagnosis_first=False
    )
    assert order == ["overview", "new-section", "diagnosis", "activity"]


def test_a_shared_table_is_dropped_once_no_section_still_to_compute_reads_it(shop) -> None:
    ctx = Context(shop)
    ctx.cache.update(
        {"orders": "o", "funnel": "f", "placements": "p", "currency": "USD", "findings": "x"}
    )
    assert drop_unread(ctx, ["flow", "steps", "cohorts"]) is False  # each still read
    assert drop_unread(ctx, ["steps", "cohorts"]) is True
    assert set(ctx.cache) == {"orders", "funnel", "currency", "findings"}
    assert drop_unread(ctx, []) is True
    assert set(ctx.cache) == {"currency", "findings"}  # small, kept


class Kept:
    """A result that keeps something on Spark until released (a funnel, a placement)."""

    def __init__(self) -> None:
        self.released = 0

    def release(self) -> None:
        self.released += 1


def test_a_dropped_table_lets_go_of_what_it_keeps_on_spark(shop) -> None:
    """The funnel's units and the placements' facts stay persisted on Spark for their
    drill-downs; dropped from the report, they are released (100M events: the report's
    JVM died holding every section's)."""
    ctx = Context(shop)
    funnel, at_start, at_end = Kept(), Kept(), Kept()
    ctx.cache.update({"funnel": funnel, "placements": ("start", "end", at_start, at_end)})
    assert drop_unread(ctx, ["steps"]) is True  # the placements go, the funnel stays
    assert (at_start.released, at_end.released, funnel.released) == (1, 1, 0)
    assert drop_unread(ctx, []) is True
    assert funnel.released == 1


def test_what_the_report_kept_on_spark_is_released_once_its_sections_are_made(
    shop, monkeypatch
) -> None:
    kept = Kept()

    def keeps(ctx):
        ctx.cache["findings"] = kept  # a table no section's reading lets drop
        return None

    monkeypatch.setattr(build_module, "PLAN", [("keeps", "Keeps", keeps)])
    build_module.build_sections(shop)
    assert kept.released == 1


def test_a_diagnosis_still_running_in_the_background_is_not_dropped(shop) -> None:
    ctx = Context(shop)
    running: Future = Future()
    ctx.cache["diagnosis"] = running
    assert drop_unread(ctx, []) is False
    assert ctx.cache["diagnosis"] is running
    running.set_result("done")
    assert drop_unread(ctx, []) is True


@pytest.mark.slow  # three reports
def test_the_page_is_the_same_with_the_shared_tables_kept_to_the_end(shop, monkeypatch) -> None:
    dropping = build_module.build_sections(shop)
    monkeypatch.setattr(build_module, "BACKGROUND_DIAGNOSIS_MAX_EVENTS", 10)
    in_turn = build_module.build_sections(shop)
    monkeypatch.setattr(build_module, "drop_unread", lambda ctx, still: False)
    kept = build_module.build_sections(shop)
    assert _page(dropping) == _page(kept)
    assert _page(in_turn) == _page(kept)


def test_after_the_stage_sections_the_person_index_is_let_go_and_mapped_again(
    tmp_path,
) -> None:
    from shopfunnel.store import timeline

    with Store(tmp_path / "shop.duckdb") as s:
        s.load(shop_events(persons=200, days=30, seed=4))
        timeline.of_store(s, pieces=True)
        first = person_index.of_store(s)
        assert first is not None
        assert person_index.of_store(s) is first  # kept in memory
        person_index.forget(s)
        again = person_index.of_store(s, build=False)  # from its file, not built
        assert again is not None and again is not first
        assert again.key == first.key
        assert list(again.ids.to_pylist()) == list(first.ids.to_pylist())


def test_released_to_a_lower_floor_duckdb_keeps_at_most_it_and_the_limit_comes_back(
    tmp_path,
) -> None:
    from shopfunnel.store.memory import release_cached_blocks

    with Store(tmp_path / "shop.duckdb") as s:
        s.load(shop_events(persons=3000, days=60, seed=5))
        limit = s.db.scalar("SELECT current_setting('memory_limit')")
        s.db.rows("SELECT count(DISTINCT person_id), sum(value) FROM events")
        release_cached_blocks(s.db, floor="4MB")
        held = s.db.scalar("SELECT sum(memory_usage_bytes) FROM duckdb_memory()")
        assert held <= 4_000_000
        assert s.db.scalar("SELECT current_setting('memory_limit')") == limit


def test_an_index_with_no_file_is_kept_in_memory(store: Store) -> None:
    store.load(shop_events(persons=50, days=10, seed=6))
    index = person_index.of_store(store)
    person_index.forget(store)  # an in-memory store: nothing to map it from again
    assert person_index.of_store(store, build=False) is index
