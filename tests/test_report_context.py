"""What the report's sections share is computed once and gives the figures each section
computed on its own before (the orders, the default funnel, the placements, the diagnosis);
the diagnosis built in the background on a second connection gives the same page as the
one built in order; the programs section shows :func:`programs_overview`'s figures."""

from __future__ import annotations

import json
import re

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from shopfunnel.customers.retention import store_retention
from shopfunnel.customers.rfm import rfm_group_summary, rfm_table
from shopfunnel.errors import ShopfunnelError
from shopfunnel.funnel.api import funnel
from shopfunnel.report import build as build_module
from shopfunnel.report import context as context_module
from shopfunnel.report import make_report
from shopfunnel.report import sections as S
from shopfunnel.report.blocks import Table, Text
from shopfunnel.report.charts import styled
from shopfunnel.report.context import Context, second_connection
from shopfunnel.report.render import render_page, render_section
from shopfunnel.stages.placement import placements
from shopfunnel.stages.summary import stage_summary
from shopfunnel.store.store import Store
from test_report import shop_events


@pytest.fixture
def shop(store: Store) -> Store:
    store.load(shop_events(persons=300, days=60, seed=3))
    return store


def _tables(section) -> list[pd.DataFrame]:
    return [b.frame for b in section.blocks if isinstance(b, Table)]


def _page(built) -> str:
    """The page without the minute it was generated."""
    html = render_page(built.sections, title="t")
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "", html)


def test_the_orders_table_is_read_once_for_every_section_that_shows_orders(shop, monkeypatch):
    from shopfunnel.store import summary

    reads = []
    read_orders = summary.orders

    def counted(store):
        reads.append("orders")
        return read_orders(store)

    monkeypatch.setattr(summary, "orders", counted)
    ctx = Context(shop)
    for sid, make in [
        ("cohorts", build_module._cohorts),
        ("rfm", build_module._rfm),
        ("whatif", build_module._whatif),
    ]:
        build_module._compute(ctx, sid, sid, make)  # (what-if: a note, no shipping known)
    assert reads == ["orders"]


def test_sections_reading_the_shared_orders_equal_sections_that_read_the_orders_themselves(
    shop,
) -> None:
    ctx = Context(shop)
    alone = store_retention(shop)  # reads the orders itself
    assert render_section(build_module._cohorts(ctx)) == render_section(
        S.cohort_section(alone.matrix, period=alone.period)
    )
    groups = rfm_group_summary(rfm_table(shop.table("orders")))
    assert render_section(build_module._rfm(ctx)) == render_section(
        S.rfm_section(groups, currency=ctx.currency)
    )
    # the orders view has no row order of its own: compare the rows by order
    pd.testing.assert_frame_equal(
        ctx.orders.sort_values("order_id", ignore_index=True),
        shop.table("orders").sort_values("order_id", ignore_index=True),
    )


def test_the_default_funnel_is_counted_once_and_equals_a_funnel_counted_alone(shop, monkeypatch):
    ctx = Context(shop)
    calls = []
    from shopfunnel.funnel import api

    real = api.funnel

    def counted(*args, **kwargs):
        calls.append(kwargs.get("by"))
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "funnel", counted)
    for make in (build_module._steps, build_module._by_channel, build_module._trend):
        make(ctx)
    build_module._time(ctx)
    assert calls == ["channel"]
    alone = funnel(shop, **ctx.funnel_args(), by="channel", trend="week")
    pd.testing.assert_frame_equal(ctx.funnel().steps, alone.steps)
    pd.testing.assert_frame_equal(ctx.funnel().breakdown, alone.breakdown)


def test_the_shared_placements_equal_placing_everyone_at_the_two_dates_alone(shop) -> None:
    ctx = Context(shop)
    start, end, at_start, at_end = ctx.placements()
    assert end - start == pd.Timedelta(days=context_module.FLOW_DAYS)
    alone_start, alone_end = placements(shop, [start.to_pydatetime(), end.to_pydatetime()])
    pd.testing.assert_frame_equal(at_end.persons, alone_end.persons)
    pd.testing.assert_frame_equal(at_start.persons, alone_start.persons)
    pd.testing.assert_frame_equal(ctx.stage_summary(), stage_summary(shop, placed=alone_end))


def test_a_second_connection_sees_the_same_data_and_keeps_its_own_temporary_tables(shop):
    twin = second_connection(shop)
    assert twin is not None
    try:
        assert twin.db.scalar("SELECT count(*) FROM events") == shop.db.scalar(
            "SELECT count(*) FROM events"
        )
        assert twin.db.scalar("SELECT current_setting('TimeZone')") == "UTC"
        twin.db.execute("CREATE TEMP TABLE only_here AS SELECT 1 AS x")
        assert twin.db.table_exists("only_here")
        assert not shop.db.table_exists("only_here")
    finally:
        twin.db.close()
    assert shop.db.scalar("SELECT count(*) FROM events") > 0  # the store's own connection lives


def test_the_report_with_the_diagnosis_in_the_background_equals_the_report_built_in_order(
    shop, monkeypatch
) -> None:
    started = []
    real_start = Context.start

    def spy(self, key, compute):
        ok = real_start(self, key, compute)
        started.append((key, ok))
        return ok

    monkeypatch.setattr(Context, "start", spy)
    background = build_module.build_sections(shop)
    assert started == [("diagnosis", True)]
    monkeypatch.setattr(context_module, "second_connection", lambda store: None)
    in_order = build_module.build_sections(shop)
    assert [s.id for s in background.sections] == [s.id for s in in_order.sections]
    assert [s.id for s in background.sections][:2] == ["overview", "diagnosis"]
    assert background.problems == in_order.problems
    assert "diagnosis" not in background.problems
    assert _page(background) == _page(in_order)


def test_a_diagnosis_failing_in_the_background_leaves_a_note_in_both_its_sections(
    shop, monkeypatch
) -> None:
    def broken(self):
        def fail(store):
            raise ShopfunnelError("no sessions to diagnose")

        return fail

    monkeypatch.setattr(Context, "diagnose", broken)
    built = build_module.build_sections(shop)
    assert {"diagnosis", "checkout"} <= set(built.problems)
    notes = {s.id: s.note for s in built.sections if s.note}
    assert "no sessions to diagnose" in notes["diagnosis"]
    assert "no sessions to diagnose" in notes["checkout"]
    assert "activity" not in built.problems  # shown, without incident shading


def test_the_page_keeps_the_plan_order_though_diagnosis_sections_are_computed_last(
    shop, monkeypatch
) -> None:
    computed: list[str] = []

    def recorder(sid: str):
        return lambda ctx: computed.append(sid)

    plan = [(sid, title, recorder(sid)) for sid, title, _ in build_module.PLAN]
    monkeypatch.setattr(build_module, "PLAN", plan)
    built = build_module.build_sections(shop)
    late = [sid for sid, _, _ in plan if sid in build_module.AFTER_DIAGNOSIS]
    assert late == ["diagnosis", "checkout", "activity"]
    assert computed[-len(late) :] == late
    assert list(built.seconds) == [sid for sid, _, _ in plan]


def test_a_styled_figure_carries_the_whole_house_template() -> None:
    fig = styled(go.Figure(go.Bar(x=["a"], y=[1])))
    validated = go.Figure(go.Bar(x=["a"], y=[1]))
    validated.update_layout(template="plotly_white")
    assert fig.layout.template.to_plotly_json() == validated.layout.template.to_plotly_json()
    assert fig.layout.height == 360
    # the registered template is not changed through the figure
    fig.layout.template.layout.paper_bgcolor = "red"
    assert pio.templates["plotly_white"].layout.paper_bgcolor != "red"


def test_chart_json_is_the_figure_plotly_writes_with_whole_second_times_unpadded() -> None:
    fig = styled(
        go.Figure(
            go.Scatter(
                x=pd.to_datetime(["2024-01-01", "2024-01-08"]), y=[0.1, float("nan")], name="<b>"
            )
        )
    )
    page = make_page_with(fig)
    spec = json.loads(re.search(r'id="chart-1-spec">(.*?)</script>', page, re.S).group(1))
    reference = json.loads(pio.to_json(fig, validate=False, engine="json"))
    assert spec["data"][0]["x"] == ["2024-01-01T00:00:00", "2024-01-08T00:00:00"]
    assert reference["data"][0]["x"] == ["2024-01-01T00:00:00.000000", "2024-01-08T00:00:00.000000"]
    spec["data"][0]["x"] = reference["data"][0]["x"]
    assert spec == reference
    assert spec["data"][0]["y"] == [0.1, None]


def make_page_with(fig: go.Figure) -> str:
    from shopfunnel.report.blocks import Chart, Section

    return render_page([Section("s", "S", "", (Chart(fig),))], title="t")


def test_the_programs_section_shows_the_programs_overview_figures() -> None:
    from shopfunnel.cli.programs import load_sample_programs
    from shopfunnel.programs.overview import programs_overview
    from shopfunnel.sample import generate_sample

    with Store(":memory:") as store:
        store.load(generate_sample(120_000, seed=21))
        load_sample_programs(store, seed=21)
        overview = programs_overview(store)
        section = build_module._programs(Context(store))
    assert not overview.empty
    offers, by_decision = _tables(section)[:2]
    assert list(offers["offer"]) == list(overview.offers["offer"])
    assert list(offers["redeemed"]) == list(overview.offers["codes_redeemed"])
    pd.testing.assert_frame_equal(by_decision, overview.by_decision)
    totals = overview.referral_totals
    line = next(b for b in section.blocks if isinstance(b, Text)).text
    assert (
        f"{totals['referred']:,} referred person(s), {totals['ordered']:,} of whom ordered" in line
    )


def test_make_report_gives_the_same_top_findings_with_the_diagnosis_in_the_background(
    shop, monkeypatch
) -> None:
    background = make_report(shop)
    monkeypatch.setattr(context_module, "second_connection", lambda store: None)
    assert make_report(shop).top_findings == background.top_findings


def test_a_dashboard_request_sharing_a_context_reads_the_orders_once_for_the_same_figures(
    shop, monkeypatch
) -> None:
    from shopfunnel.server import queries

    alone = queries.retention(shop), queries.rfm_groups(shop)
    from shopfunnel.store import summary

    reads = []
    read_orders = summary.orders
    monkeypatch.setattr(summary, "orders", lambda s: reads.append("orders") or read_orders(s))
    request = queries.shared(shop)
    together = queries.retention(shop, shared=request), queries.rfm_groups(shop, shared=request)
    assert reads == ["orders"]
    pd.testing.assert_series_equal(
        pd.Series(together[0]["summary"]), pd.Series(alone[0]["summary"])
    )
    pd.testing.assert_frame_equal(together[0]["cohorts"], alone[0]["cohorts"])
    pd.testing.assert_frame_equal(together[1], alone[1])


def test_an_error_while_the_diagnosis_runs_interrupts_its_queries_instead_of_waiting(
    shop, monkeypatch
) -> None:
    import threading

    running = threading.Event()

    def slow_diagnosis(self):
        def run(store):
            running.set()
            # a streaming query of minutes, in constant memory, unless interrupted
            return store.db.scalar("SELECT max(hash(range)) FROM range(100000000000)")

        return run

    monkeypatch.setattr(Context, "diagnose", slow_diagnosis)
    ctx = Context(shop)
    with pytest.raises(KeyboardInterrupt), ctx.background():
        assert ctx.start_diagnosis()
        running.wait(5)
        raise KeyboardInterrupt
    with pytest.raises(Exception, match="(?i)interrupt"):
        ctx.diagnosis()


def test_the_diagnosis_seconds_are_those_it_took_in_the_background(shop, monkeypatch) -> None:
    import time

    real = Context.diagnose

    def slow(self):
        compute = real(self)

        def run(store):
            time.sleep(0.3)  # a lower bound on the background run, whatever the machine
            return compute(store)

        return run

    monkeypatch.setattr(Context, "diagnose", slow)
    built = build_module.build_sections(shop)
    assert "diagnosis" not in built.problems
    assert built.seconds["diagnosis"] >= 0.3


def test_a_report_without_the_diagnosis_sections_does_not_diagnose(shop, monkeypatch) -> None:
    started = []
    monkeypatch.setattr(Context, "start", lambda self, key, compute: started.append(key))
    plan = [p for p in build_module.PLAN if p[0] not in build_module.SHOW_DIAGNOSIS]
    monkeypatch.setattr(build_module, "PLAN", plan)
    built = build_module.build_sections(shop)
    assert started == []
    assert "activity" in [s.id for s in built.sections]


def test_a_report_right_after_a_load_sorts_the_events_before_the_diagnosis_starts(
    shop, monkeypatch
) -> None:
    """The diagnosis reads its sessions from the timeline only when it is ready (it does not
    wait for a build): the report builds it first, as its funnel would anyway."""
    from shopfunnel.store import session_facts, timeline

    assert not timeline.is_current(shop)  # just loaded: nothing sorted yet
    seen = []
    real = Context.start_diagnosis

    def spy(self):
        seen.append(session_facts.usable_timeline(self.store) is not None)
        return real(self)

    monkeypatch.setattr(Context, "start_diagnosis", spy)
    steps = []
    build_module.build_sections(shop, progress=steps.append)
    assert seen == [True]
    assert steps[0] == "sorting the events (once per load)"


def test_past_the_size_limit_the_diagnosis_runs_in_its_turn_with_the_same_page(
    shop, monkeypatch
) -> None:
    """A large store's report computes the diagnosis in order, not beside the other
    sections (memory); the page is the same."""
    started = []
    real_start = Context.start

    def spy(self, key, compute):
        started.append(key)
        return real_start(self, key, compute)

    monkeypatch.setattr(Context, "start", spy)
    beside = build_module.build_sections(shop)
    assert started == ["diagnosis"]
    monkeypatch.setattr(build_module, "BACKGROUND_DIAGNOSIS_MAX_EVENTS", 10)
    in_turn = build_module.build_sections(shop)
    assert started == ["diagnosis"]  # not started the second time
    assert _page(in_turn) == _page(beside)
