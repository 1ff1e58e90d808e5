"""The HTML report: section builders, the page, and the `shopfunnel report` command."""

from __future__ import annotations

import importlib.util
import json
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from shopfunnel.cli import app
from shopfunnel.report import build as build_module
from shopfunnel.report import (
    build_report,
    make_report,
    render_page,
    render_section,
    write_report,
)
from shopfunnel.report import sections as S
from shopfunnel.report.blocks import Findings, KeyFigures, Section, Table, Tactic, Text
from shopfunnel.report.render import plotly_js, script_safe_json
from shopfunnel.store.store import Store

EVIL = "<script>alert('x')</script>"
# Analyses still being built on other branches; their sections are notes until they land.
NOT_INSTALLED = {
    sid
    for sid, module in [("diagnosis", "shopfunnel.diagnosis.diagnose")]
    if importlib.util.find_spec(module) is None
}
STEPS = ["page_view", "view_item", "add_to_cart", "begin_checkout", "purchase"]


def shop_events(persons: int = 200, days: int = 42, seed: int = 1) -> pd.DataFrame:
    """A small shop: each person walks the five steps, continuing with fixed odds."""
    rng = np.random.default_rng(seed)
    go_on = [0.6, 0.4, 0.6, 0.5]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = []
    for p in range(persons):
        t = start + timedelta(minutes=int(rng.integers(0, days * 24 * 60)))
        channel = ["organic search", "paid social", "email", "direct"][p % 4]
        device = ["mobile", "desktop"][p % 2]
        visits = 1 + int(rng.random() < 0.2)
        for visit in range(visits):
            for k, step in enumerate(STEPS):
                if k > 0 and rng.random() > go_on[k - 1]:
                    break
                t += timedelta(minutes=float(rng.exponential(5)))
                row = {
                    "ts": t,
                    "event": step,
                    "anonymous_id": f"p{p}",
                    "user_id": f"u{p}" if k >= 3 else None,
                    "channel": channel,
                    "device": device,
                    "utm_campaign": EVIL if p == 3 else "spring",
                }
                if step == "purchase":
                    row.update(
                        order_id=f"o{p}-{visit}",
                        value=round(float(rng.gamma(2, 40)), 2),
                        currency="USD",
                    )
                rows.append(row)
            t += timedelta(days=float(rng.exponential(10)))
    frame = pd.DataFrame(rows)
    frame["event_id"] = [f"e{i}" for i in range(len(frame))]
    return frame


@pytest.fixture
def shop(store: Store) -> Store:
    store.load(shop_events())
    return store


def steps_frame(persons: list[int]) -> pd.DataFrame:
    p = np.array(persons, dtype=float)
    prev = np.concatenate([[p[0]], p[:-1]])
    with np.errstate(invalid="ignore", divide="ignore"):
        return _steps_frame(p, prev, persons)


def _steps_frame(p: np.ndarray, prev: np.ndarray, persons: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "step": range(1, len(p) + 1),
            "name": STEPS[: len(p)],
            "event": STEPS[: len(p)],
            "persons": persons,
            "conversion_from_previous": p / prev,
            "conversion_from_start": p / p[0],
            "drop_off": prev - p,
            "drop_off_rate": 1 - p / prev,
            "median_seconds_from_previous": [np.nan] + [120.0] * (len(p) - 1),
            "p90_seconds_from_previous": [np.nan] + [3600.0] * (len(p) - 1),
        }
    )


def test_script_safe_json_parses_back_to_the_same_value() -> None:
    value = {"text": "</script><b>&amp;</b>\u2028", "n": [1, 2]}
    safe = script_safe_json(json.dumps(value))
    assert "<" not in safe and ">" not in safe and "&" not in safe
    assert json.loads(safe) == value


# -- section builders -------------------------------------------------------------------
def test_steps_section_draws_persons_per_step_and_names_the_biggest_loss() -> None:
    section = S.steps_section(steps_frame([1000, 500, 100, 80, 60]))
    assert section.note is None
    funnel, drop = section.charts
    assert list(funnel.figure.data[0].x) == [1000, 500, 100, 80, 60]
    # losses 50%, 80%, 20%, 25%: view_item → add_to_cart is the worst
    assert list(np.round(drop.figure.data[0].y, 4)) == [0.5, 0.8, 0.2, 0.25]
    assert "view_item → add_to_cart: 80.0%" in drop.caption
    table = next(b for b in section.blocks if isinstance(b, Table))
    assert table.formats["from first step"] == "pct"
    assert list(table.frame["people"]) == [1000, 500, 100, 80, 60]


def test_steps_section_is_a_note_when_nobody_started_or_there_are_no_steps() -> None:
    assert S.steps_section(steps_frame([0, 0, 0])).note
    assert S.steps_section(pd.DataFrame()).note
    assert S.steps_section(None).note


def test_diagnosis_shows_the_top_findings_by_rank_with_tactics_and_audience() -> None:
    findings = pd.DataFrame(
        {
            "rank": [2, 1, 3],
            "kind": ["segment_gap", "benchmark", "period_change"],
            "stage": ["purchase", "decision", "interest"],
            "step": ["purchase", "add_to_cart", "view_item"],
            "segment": ["device=mobile", None, None],
            "metric": ["conversion_from_previous"] * 3,
            "value": [0.2, 0.05, 0.4],
            "reference": [0.4, 0.145, 0.48],
            "gap": [-0.2, -0.095, -0.08],
            "p_value": [0.0001, 0.01, 0.2],
            "revenue_at_stake": [5000.0, 9000.0, 100.0],
            "evidence": ["mobile checkout converts half as often", "few add to cart", "dip"],
            "tactics": [
                [
                    {"key": "guest", "name": "Guest checkout", "why": "forced accounts lose 26%"},
                    {"name": "More payment options", "why": ""},
                ],
                "live chat; tiered discounts",
                [],
            ],
            "audience": [
                {"stage": "decision", "status": "stalled", "device": "mobile"},
                "product viewers",
                None,
            ],
            "title": ["Mobile checkout converts at 20.0% against 40.0%", None, None],
        }
    )
    section = S.diagnosis_section(
        findings,
        top=2,
        currency="USD",
        period="2024-01-01 to 2024-03-31",
        notes=["step 'search' is not measured"],
    )
    cards = next(b for b in section.blocks if isinstance(b, Findings)).items
    assert [c.rank for c in cards] == [1, 2]
    assert cards[0].headline == "Conversion from previous at add_to_cart: 5.0% against 14.5%"
    assert [t.name for t in cards[0].tactics] == ["live chat", "tiered discounts"]
    assert cards[1].tactics == (
        Tactic("Guest checkout", "forced accounts lose 26%"),
        Tactic("More payment options"),
    )
    assert cards[1].headline == "Mobile checkout converts at 20.0% against 40.0%"
    assert cards[0].revenue_at_stake == "USD 9,000"
    assert cards[1].audience == "stalled people at the decision stage (device = mobile)"
    assert cards[0].audience == "product viewers"
    assert S.audience_of(
        {"stage": "decision", "device": "mobile", "between": ["2024-03-12", "2024-03-14"]}
    ) == ("people at the decision stage (device = mobile, between 2024-03-12 to 2024-03-14)")
    assert "2024-01-01 to 2024-03-31" in section.lead
    tables = [b for b in section.blocks if isinstance(b, Table)]
    assert len(tables[0].frame) == 3 and tables[0].collapsed
    assert list(tables[1].frame.iloc[:, 0]) == ["step 'search' is not measured"]


def test_a_store_without_findings_says_so_in_words() -> None:
    empty = S.diagnosis_section(pd.DataFrame(columns=["rank", "kind"]))
    assert isinstance(empty.blocks[0], Text) and "No significant weak spot" in empty.blocks[0].text
    assert S.diagnosis_section(None).note


def test_overview_counts_and_average_order_value() -> None:
    info = {
        "events": 1234,
        "persons": 10,
        "sessions": 20,
        "orders": 4,
        "first_event": "2024-01-01T00:00:00",
        "last_event": "2024-02-01T00:00:00",
    }
    figures = S.overview_section(info, revenue=100.0, currency="EUR").blocks[0]
    assert isinstance(figures, KeyFigures)
    by_label = {f.label: f for f in figures.items}
    assert by_label["Events"].value == "1,234"
    assert by_label["Revenue"].detail == "average order EUR 25.00"
    assert S.overview_section({"events": 0}).note


# -- the page ---------------------------------------------------------------------------
def page_of(*sections: Section) -> str:
    return render_page(list(sections), title="t")


def test_the_page_embeds_plotly_once_and_loads_nothing_from_the_network() -> None:
    charts = S.steps_section(steps_frame([100, 50, 10]))
    html = page_of(
        charts,
        S.activity_section(
            pd.DataFrame(
                {
                    "day": pd.to_datetime(["2024-01-01", "2024-01-02"]),
                    "sessions": [3, 4],
                    "orders": [1, 0],
                }
            )
        ),
    )
    assert html.count("window.Plotly = Plotly") == 1
    assert len(re.findall(r'<script type="application/json"', html)) == 3
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|@import", html)
    outside_plotly = html.replace(plotly_js(), "")
    assert len(outside_plotly) < len(html) - 1_000_000
    assert not re.search(r"https?://", outside_plotly)


def test_event_data_is_escaped_in_tables_cards_and_chart_data() -> None:
    steps = steps_frame([10, 5])
    steps["name"] = [EVIL, "b"]
    findings = pd.DataFrame(
        {
            "rank": [1],
            "evidence": [EVIL],
            "tactics": [[{"name": EVIL, "why": EVIL}]],
            "audience": [EVIL],
            "segment": [EVIL],
            "step": [EVIL],
        }
    )
    html = page_of(S.steps_section(steps), S.diagnosis_section(findings))
    assert EVIL not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    spec = re.search(
        r'<script type="application/json" id="chart-1-spec">(.*?)</script>', html, re.S
    ).group(1)
    assert json.loads(spec)["data"][0]["y"][0] == EVIL


def test_a_section_renders_on_its_own_as_a_fragment() -> None:
    fragment = render_section(Section("s", "Title <x>", lead="why", note="nothing yet"))
    assert fragment.startswith('<section id="s">')
    assert "Title &lt;x&gt;" in fragment and "nothing yet" in fragment


# -- from a store -----------------------------------------------------------------------
def test_every_section_of_a_sample_store_is_computed_and_the_diagnosis_comes_first(
    store: Store,
) -> None:
    from shopfunnel.sample import generate_sample

    store.load(generate_sample(30_000, seed=2))
    built = build_module.build_sections(store)
    assert set(built.problems) == NOT_INSTALLED
    ids = [s.id for s in built.sections]
    assert ids == [
        "overview",
        "diagnosis",
        "stages",
        "steps",
        "checkout",
        "by-channel",
        "by-device",
        "trend",
        "time",
        "distribution",
        "flow",
        "cohorts",
        "rfm",
        "whatif",
        "activity",
    ]
    assert {s.id for s in built.sections if s.note} == NOT_INSTALLED


def test_daily_activity_counts_sessions_and_orders_per_day_including_empty_days(
    store: Store,
) -> None:
    from conftest import log

    store.load(
        log(
            ("a", 0, "page_view"),
            ("a", 1, "purchase", {"order_id": "o1", "value": 5.0}),
            ("b", 2 * 60 * 24, "page_view"),
            ("c", 2 * 60 * 24 + 1, "page_view"),
        )
    )
    daily = build_module.daily_activity(store)
    assert [str(d)[:10] for d in daily["day"]] == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert list(daily["sessions"]) == [1, 0, 2]
    assert list(daily["orders"]) == [1, 0, 0]
    assert list(daily["revenue"].astype(float)) == [5.0, 0.0, 0.0]


def test_a_failing_section_becomes_a_note_and_is_reported(shop: Store, monkeypatch) -> None:
    def broken(ctx):
        raise RuntimeError("boom")

    monkeypatch.setattr(
        build_module, "PLAN", [("broken", "Broken", broken), *build_module.PLAN[:1]]
    )
    report = make_report(shop)
    assert report.problems["broken"] == "RuntimeError: boom"
    assert "could not be computed (RuntimeError: boom)" in report.html
    assert 'id="overview"' in report.html


def test_a_spark_that_dies_in_a_section_stops_the_report_instead_of_noting_each_section(
    shop: Store, monkeypatch
) -> None:
    """Every query after a dead JVM fails too: the report stops with the reason rather than
    go on to a page of notes and a traceback from closing the session (100M events, 4g)."""
    died = ConnectionRefusedError(111, "Connection refused")
    after: list[str] = []

    def dies(ctx):
        raise died

    def later(ctx):
        after.append("computed")

    monkeypatch.setattr(build_module, "PLAN", [("dies", "Dies", dies), ("later", "Later", later)])
    with pytest.raises(ConnectionRefusedError) as info:
        make_report(shop)
    assert info.value is died
    assert after == []


def test_build_report_of_an_empty_store_still_renders(store: Store) -> None:
    html = build_report(store, title="Empty shop")
    assert "<title>Empty shop</title>" in html
    assert "no events yet" in html


def test_write_report_writes_one_utf8_file(shop: Store, tmp_path) -> None:
    path = write_report(shop, tmp_path / "r.html", title="Café")
    text = path.read_text(encoding="utf-8")
    assert "<title>Café</title>" in text and text.rstrip().endswith("</html>")


def test_report_command_writes_the_file_and_says_where(tmp_path) -> None:
    db = tmp_path / "shop.duckdb"
    with Store(db) as s:
        s.load(shop_events(persons=50))
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "--db", str(db), "-o", str(out), "--title", "Shop"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and out.exists()
    assert "<title>Shop</title>" in out.read_text(encoding="utf-8")


def test_report_command_on_a_missing_store_fails_with_a_clear_message(tmp_path) -> None:
    result = CliRunner().invoke(
        app, ["report", "--db", str(tmp_path / "none.duckdb"), "-o", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 1
    assert "no store at" in result.output
    assert not (tmp_path / "r.html").exists()


# -- stages, cohorts, RFM ---------------------------------------------------------------
STAGES = ["Awareness", "Interest", "Decision", "Purchase", "Retention"]


def stage_summary_frame(at_stage: list[int]) -> pd.DataFrame:
    reached = np.cumsum(at_stage[::-1])[::-1]
    return pd.DataFrame(
        {
            "stage": STAGES,
            "reached": reached,
            "at_stage": at_stage,
            "conversion_from_previous": [np.nan, *(reached[1:] / reached[:-1])],
            "conversion_from_start": reached / reached[0],
            "active": at_stage,
            "stalled": [0] * 5,
            "lapsed": [0] * 5,
        }
    )


def test_stage_funnel_draws_persons_who_reached_each_stage_in_order() -> None:
    section = S.stage_funnel_section(stage_summary_frame([500, 300, 120, 60, 20]))
    (chart,) = section.charts
    assert list(chart.figure.data[0].y) == STAGES
    assert list(chart.figure.data[0].x) == [1000, 500, 200, 80, 20]


def test_stage_distribution_stacks_statuses_per_stage() -> None:
    summary = stage_summary_frame([5, 4, 3, 2, 1]).assign(
        active=[3, 2, 1, 1, 1], stalled=[2, 2, 2, 0, 0], lapsed=[0, 0, 0, 1, 0]
    )
    (chart,) = S.stage_distribution_section(summary).charts
    assert [t.name for t in chart.figure.data] == ["active", "stalled", "lapsed"]
    assert list(chart.figure.data[1].y) == [2, 2, 2, 0, 0]
    assert chart.figure.layout.barmode == "stack"


def test_stage_distribution_shows_gone_the_thresholds_and_how_statuses_were_judged() -> None:
    from shopfunnel.report.blocks import Table, Text

    summary = stage_summary_frame([5, 4, 3, 2, 1]).assign(
        active=[1, 1, 1, 1, 1],
        stalled=[1, 1, 1, 0, 0],
        lapsed=[0, 0, 0, 1, 0],
        gone=[3, 2, 1, 0, 0],
        stalled_after_days=[2.0, 1.0, 0.5, 3.0, 2.0],
        gone_after_days=[9.0, 8.0, 4.0, 9.0, 9.0],
    )
    section = S.stage_distribution_section(summary, ["Prospects (no order): stalled = ..."])
    (chart,) = section.charts
    assert [t.name for t in chart.figure.data] == ["active", "stalled", "lapsed", "gone"]
    (table,) = [b for b in section.blocks if isinstance(b, Table)]
    assert list(table.frame["gone after"]) == [
        9 * 86400,
        8 * 86400,
        4 * 86400,
        9 * 86400,
        9 * 86400,
    ]
    assert table.formats["gone after"] == "duration"
    assert [b.text for b in section.blocks if isinstance(b, Text)] == [
        "Prospects (no order): stalled = ..."
    ]


def test_stage_flow_links_every_nonzero_cell_from_start_state_to_end_state() -> None:
    states = ["not seen", "Awareness", "Purchase", "lapsed"]
    flow = pd.DataFrame(0, index=pd.Index(states, name="from"), columns=pd.Index(states, name="to"))
    flow.loc["not seen", "Awareness"] = 7
    flow.loc["Awareness", "Purchase"] = 2
    flow.loc["Purchase", "lapsed"] = 1
    (chart,) = S.stage_flow_section(flow, start="2024-01-01", end="2024-01-31").charts
    link = chart.figure.data[0].link
    labels = chart.figure.data[0].node.label
    pairs = {
        (labels[s], labels[t]): v
        for s, t, v in zip(link.source, link.target, link.value, strict=True)
    }
    assert [a.text for a in chart.figure.layout.annotations] == ["2024-01-01", "2024-01-31"]
    assert pairs == {
        ("not seen", "Awareness"): 7,
        ("Awareness", "Purchase"): 2,
        ("Purchase", "lapsed"): 1,
    }
    assert S.stage_flow_section(flow * 0).note


def test_cohort_heatmap_leaves_out_period_zero_and_keeps_unobserved_cells_empty() -> None:
    matrix = pd.DataFrame(
        {
            "cohort": ["2024-01-01", "2024-02-01"],
            "cohort_size": [10, 4],
            "0": [1.0, 1.0],
            "1": [0.3, 0.25],
            "2": [0.1, np.nan],
        }
    )
    (chart,) = S.cohort_section(matrix).charts
    heat = chart.figure.data[0]
    assert list(heat.x) == ["+1", "+2"]
    assert list(heat.y) == ["2024-01-01 (n=10)", "2024-02-01 (n=4)"]
    assert list(heat.text[1]) == ["25%", ""]
    low = matrix.assign(**{"1": [0.03, 0.004], "2": [0.01, np.nan]})
    assert list(S.cohort_section(low).charts[0].figure.data[0].text[1]) == ["0.4%", ""]
    assert S.cohort_section(matrix[["cohort", "cohort_size", "0"]]).note


def test_rfm_shows_share_of_customers_and_of_revenue_for_groups_with_customers() -> None:
    groups = pd.DataFrame(
        {
            "group": ["champions", "at_risk", "dormant"],
            "customers": [2, 0, 6],
            "share": [0.25, 0.0, 0.75],
            "revenue": [800.0, 0.0, 200.0],
            "revenue_share": [0.8, 0.0, 0.2],
        }
    )
    (chart,) = S.rfm_section(groups).charts
    assert list(chart.figure.data[0].x) == ["champions", "dormant"]
    assert list(chart.figure.data[1].y) == [0.8, 0.2]
    assert S.rfm_section(groups.assign(customers=0)).note


def test_incidents_are_shown_apart_with_their_period_and_shaded_on_daily_activity() -> None:
    findings = pd.DataFrame(
        {
            "rank": [1, 2],
            "kind": ["incident", "benchmark"],
            "step": ["purchase", "add_to_cart"],
            "segment": ["device=mobile", None],
            "metric": ["conversion", "conversion"],
            "value": [0.1, 0.05],
            "reference": [0.5, 0.145],
            "start": [pd.Timestamp("2024-02-03"), pd.NaT],
            "end": [pd.Timestamp("2024-02-06"), pd.NaT],
        }
    )
    incidents, ranked = [b for b in S.diagnosis_section(findings).blocks if isinstance(b, Findings)]
    assert incidents.tone == "incident" and [c.rank for c in incidents.items] == [1]
    assert incidents.items[0].headline.endswith("(2024-02-03 to 2024-02-06)")
    assert [c.rank for c in ranked.items] == [1, 2]
    assert "(" not in ranked.items[1].headline
    spans = build_module.incident_spans(findings)
    assert list(spans["label"]) == ["device=mobile · purchase"]
    daily = pd.DataFrame(
        {"day": pd.date_range("2024-02-01", periods=10), "sessions": range(10), "orders": range(10)}
    )
    (chart,) = S.activity_section(daily, spans).charts
    spans_drawn = {(pd.Timestamp(s.x0), pd.Timestamp(s.x1)) for s in chart.figure.layout.shapes}
    assert spans_drawn == {(pd.Timestamp("2024-02-02 12:00"), pd.Timestamp("2024-02-06 12:00"))}


# -- breakdown, trend, time to convert ----------------------------------------------------
def long_funnel(key: str, groups: dict[str, list[int]]) -> pd.DataFrame:
    rows = [
        {key: g, "step": i + 1, "persons": n}
        for g, counts in groups.items()
        for i, n in enumerate(counts)
    ]
    return pd.DataFrame(rows)


def test_breakdown_compares_first_to_last_step_conversion_per_value() -> None:
    frame = long_funnel(
        "device", {"mobile": [400, 100, 8], "desktop": [200, 80, 12], "tablet": [0, 0, 0]}
    )
    section = S.breakdown_section(frame, "device")
    (chart,) = section.charts
    bars = dict(zip(chart.figure.data[0].y, chart.figure.data[0].x, strict=True))
    assert bars == {"mobile": pytest.approx(0.02), "desktop": pytest.approx(0.06)}
    # overall 20 / 600; the line sits there
    assert chart.figure.layout.shapes[0].x0 == pytest.approx(20 / 600)
    assert section.id == "by-device"
    assert S.breakdown_section(frame.drop(columns="device"), "device").note


def test_trend_draws_conversion_per_period_and_needs_two_periods() -> None:
    frame = long_funnel("period", {"2024-01-01": [100, 10], "2024-01-08": [50, 10]})
    (chart,) = S.trend_section(frame).charts
    assert list(chart.figure.data[0].y) == [0.1, 0.2]
    assert list(chart.figure.data[1].y) == [100, 50]
    assert S.trend_section(frame[frame["period"] == "2024-01-01"]).note


def test_time_to_convert_shows_median_and_p90_per_transition() -> None:
    (chart,) = S.time_to_convert_section(steps_frame([100, 50, 10])).charts
    median, p90 = chart.figure.data
    assert list(median.x) == ["page_view → view_item", "view_item → add_to_cart"]
    assert list(median.y) == [120.0, 120.0] and list(p90.y) == [3600.0, 3600.0]
    assert list(median.text) == ["2m", "2m"]
    no_times = steps_frame([100, 0]).assign(
        median_seconds_from_previous=np.nan, p90_seconds_from_previous=np.nan
    )
    assert S.time_to_convert_section(no_times).note


def test_time_to_convert_histogram_is_trimmed_to_the_bins_that_have_people() -> None:
    hist = pd.DataFrame({"bin": ["0s–10s", "10s–1m", "1m–5m", "5m–15m"], "persons": [0, 3, 0, 5]})
    charts = S.time_to_convert_section(steps_frame([100, 50]), hist).charts
    assert len(charts) == 2
    assert list(charts[1].figure.data[0].x) == ["10s–1m", "1m–5m", "5m–15m"]
    assert list(charts[1].figure.data[0].y) == [3, 0, 5]


def test_report_command_takes_the_funnel_steps_from_the_model_file(tmp_path) -> None:
    db = tmp_path / "shop.duckdb"
    with Store(db) as s:
        s.load(shop_events(persons=60))
    model = tmp_path / "model.toml"
    model.write_text(
        '[funnel]\nsteps = ["page_view", "purchase"]\nwindow = "30d"\n', encoding="utf-8"
    )
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        app, ["report", "--db", str(db), "-o", str(out), "--model", str(model)]
    )
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert "page_view → purchase" in html and "add_to_cart → begin_checkout" not in html
    bad = CliRunner().invoke(
        app, ["report", "--db", str(db), "-o", str(out), "--model", str(tmp_path / "no.toml")]
    )
    assert bad.exit_code == 1 and "does not exist" in bad.output


def test_top_findings_read_as_one_line_each() -> None:
    from shopfunnel.report import top_findings

    findings = pd.DataFrame(
        {
            "rank": [1],
            "title": ["Cart abandonment is 78% against 70%"],
            "revenue_at_stake": [1234.0],
            "tactics": [[{"name": "Free shipping"}, {"name": "Live chat"}]],
        }
    )
    lines = top_findings([S.diagnosis_section(findings, currency="USD"), S.steps_section(None)])
    assert lines == [
        "1. Cart abandonment is 78% against 70% (USD 1,234 at stake) → Free shipping, Live chat"
    ]


def test_an_incident_ranked_low_is_still_shown_before_the_ranked_findings_marked_not_numbered() -> (
    None
):
    findings = pd.DataFrame(
        {
            "rank": [1, 2, 3],
            "kind": ["benchmark", "segment_gap", "incident"],
            "title": ["a", "b", "Checkout collapsed on mobile, 2024-03-12 to 2024-03-14"],
            "start": [None, None, pd.Timestamp("2024-03-12").date()],
            "end": [None, None, pd.Timestamp("2024-03-14").date()],
        }
    )
    section = S.diagnosis_section(findings, top=2)
    incidents, ranked = [b for b in section.blocks if isinstance(b, Findings)]
    assert [c.headline for c in incidents.items] == [
        "Checkout collapsed on mobile, 2024-03-12 to 2024-03-14"
    ]
    assert [c.rank for c in ranked.items] == [1, 2]
    from shopfunnel.report import top_findings

    assert top_findings([section]) == [
        "incident: Checkout collapsed on mobile, 2024-03-12 to 2024-03-14",
        "1. a",
        "2. b",
    ]


def test_a_planted_incident_leads_the_report_and_is_shaded_on_daily_activity(store: Store) -> None:
    from shopfunnel.sample import generate_sample, parse_incident

    incident = parse_incident("checkout-failure:2024-03-12:3:mobile")
    store.load(generate_sample(120_000, seed=1, incidents=[incident]))
    built = build_module.build_sections(store)
    assert built.problems == {}
    diagnosis = next(s for s in built.sections if s.id == "diagnosis")
    first = next(b for b in diagnosis.blocks if isinstance(b, Findings))
    assert first.tone == "incident"
    headline = first.items[0].headline
    assert "mobile" in headline and "2024-03-1" in headline
    activity = next(s for s in built.sections if s.id == "activity")
    (chart,) = activity.charts
    starts = {pd.Timestamp(shape.x0).normalize() for shape in chart.figure.layout.shapes}
    assert any(abs((s - pd.Timestamp("2024-03-12")).days) <= 1 for s in starts), starts


def test_whatif_shows_share_cost_and_break_even_per_offer() -> None:
    from types import SimpleNamespace

    offer = SimpleNamespace(
        policy="tiered discount (5% off from 100)",
        summary={
            "orders": 200,
            "orders_affected": 50,
            "share_affected": 0.25,
            "cost": 1234.0,
            "cost_share_of_revenue": 0.04,
            "breakeven_uplift": 0.0417,
            "breakeven_extra_orders": 8.3,
        },
        tiers=pd.DataFrame({"threshold": [100.0], "orders_within_reach": [12]}),
        notes=[],
    )
    section = S.whatif_section([offer], currency="USD")
    figures = {
        f.label: f for f in next(b for b in section.blocks if isinstance(b, KeyFigures)).items
    }
    assert (
        figures["Orders that qualify"].value == "25.0%"
        and figures["Orders that qualify"].detail == "50 of 200"
    )
    assert figures["Cost on past orders"].value == "USD 1,234"
    assert figures["To break even"].value == "+4.2% orders"
    assert figures["Just below a threshold"].value == "12"
    assert S.whatif_section([]).note


def test_free_shipping_threshold_is_a_round_number_near_the_median_order() -> None:
    assert [build_module.nice_threshold(v) for v in (23.0, 77.4, 143.0, 260.0, 1.0)] == [
        25.0,
        80.0,
        140.0,
        250.0,
        5.0,
    ]
