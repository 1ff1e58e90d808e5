"""The diagnosis's memory (ADR 0180): it runs under the bulk steps' DuckDB cap and gives the
same diagnosis under a tight cap; the year's sessions, which serve only
the lasting-incident scan, are dropped before the rest of the diagnosis runs."""

from __future__ import annotations

import json

import pytest

from _synthetic import Sim, simulate
from shopfunnel.diagnosis import diagnose as diagnose_module
from shopfunnel.diagnosis.diagnose import diagnose
from shopfunnel.store import session_facts
from shopfunnel.store import timeline as timeline_store
from shopfunnel.store.memory import BULK_MEMORY_ENV
from shopfunnel.store.store import Store


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """120 days of sessions (a year's window wider than the 90-day one) with a planted
    incident, and the timeline sorted, so the sessions come from the timeline."""
    path = tmp_path_factory.mktemp("diagmem") / "shop.duckdb"
    s = Store(path)
    s.load(
        simulate(
            Sim(seed=7, days=120, sessions_per_day=150, broken=[(100, 3, "mobile", "purchase")])
        )
    )
    timeline_store.of_store(s, pieces=True)
    s.close()
    return path


def _as_json(result) -> str:
    return json.dumps(result.to_dict(), sort_keys=True, default=str)


def _limit(store: Store) -> str:
    return str(store.db.scalar("SELECT current_setting('memory_limit')"))


def test_the_diagnosis_under_a_tight_cap_equals_the_uncapped_one(shop, monkeypatch):
    with Store(shop) as s:
        assert session_facts.usable_timeline(s) is not None  # the timeline path is tested
        monkeypatch.setenv(BULK_MEMORY_ENV, "64GB")  # above the default: DuckDB's own
        free = diagnose(s, model={})
        monkeypatch.setenv(BULK_MEMORY_ENV, "24MB")
        capped = diagnose(s, model={})
    assert not any(" skipped: " in n or "failed on this data" in n for n in capped.notes)
    assert len(free.findings) > 0
    assert _as_json(capped) == _as_json(free)


def test_the_cap_holds_while_the_diagnosis_runs_and_the_earlier_limit_comes_back(shop, monkeypatch):
    seen: list[str] = []
    real = diagnose_module.find_incidents

    def spy(levels, *args, **kwargs):
        seen.append(_limit(levels.store))
        return real(levels, *args, **kwargs)

    monkeypatch.setattr(diagnose_module, "find_incidents", spy)
    monkeypatch.setenv(BULK_MEMORY_ENV, "300MB")
    with Store(shop) as s:
        before = _limit(s)
        diagnose(s, model={})
        assert _limit(s) == before
    assert seen == ["286.1 MiB"]  # 300MB as DuckDB shows it


def test_the_years_sessions_are_dropped_before_the_run_scan(shop, monkeypatch):
    """The lasting scan reads the year's sessions; everything after it reads only the
    window's, so only that table is left when the run scan starts."""
    tables: list[list[str]] = []
    real = diagnose_module.find_incidents

    def spy(levels, *args, **kwargs):
        tables.append(
            [
                r[0]
                for r in levels.db.rows(
                    "SELECT table_name FROM duckdb_tables() WHERE temporary "
                    "AND starts_with(table_name, '__sf_levels_')"
                )
            ]
        )
        return real(levels, *args, **kwargs)

    monkeypatch.setattr(diagnose_module, "find_incidents", spy)
    with Store(shop) as s:
        diagnose(s, model={})
    assert len(tables) == 1
    assert len(tables[0]) == 1
