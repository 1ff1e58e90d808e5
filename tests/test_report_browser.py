"""The report opens in headless Chromium offline, with every chart drawn and no errors."""

from __future__ import annotations

import pandas as pd
import pytest

from shopfunnel.report import make_report, render_page
from shopfunnel.report import sections as S
from shopfunnel.sample import generate_sample
from shopfunnel.store.store import Store
from test_report import EVIL, NOT_INSTALLED, steps_frame

pytestmark = pytest.mark.browser


ALL_DRAWN = (
    "() => [...document.querySelectorAll('div.plot')].every(d => d.querySelector('svg.main-svg'))"
)


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory) -> tuple:
    with Store(":memory:") as store:
        store.load(generate_sample(60_000, seed=3))
        report = make_report(store, title="Browser test shop")
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(report.html, encoding="utf-8")
    return report, path


def test_report_opens_offline_with_every_chart_drawn_and_no_console_errors(
    open_page, sample_report
) -> None:
    report, path = sample_report
    assert set(report.problems) == NOT_INSTALLED
    probe = open_page(path)
    page = probe.page
    expected = report.html.count('<div class="plot"')
    assert expected >= 12 and page.locator("div.plot").count() == expected
    page.wait_for_function(ALL_DRAWN, timeout=20_000)
    drawn = page.evaluate(
        "() => [...document.querySelectorAll('div.plot')].map(d => d.querySelectorAll('.main-svg').length)"
    )
    assert all(n > 0 for n in drawn), drawn
    assert probe.problems == []

    shot = path.with_name("report.png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    print(f"screenshot: {shot}")


@pytest.mark.parametrize("width", [1280, 390])
def test_report_layout_reads_top_down_without_sideways_scrolling(
    open_page, sample_report, width
) -> None:
    _, path = sample_report
    probe = open_page(path, viewport=(width, 900))
    page = probe.page
    page.wait_for_function(ALL_DRAWN, timeout=20_000)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    nav = page.evaluate(
        "() => [...document.querySelectorAll('nav a')].map(a => a.getAttribute('href').slice(1))"
    )
    tops = page.evaluate(
        "() => [...document.querySelectorAll('main > section')].map(s => [s.id, s.getBoundingClientRect().top])"
    )
    assert [sid for sid, _ in tops] == nav and nav[:2] == ["overview", "diagnosis"]
    assert [top for _, top in tops] == sorted(top for _, top in tops)
    sizes = page.evaluate(
        "() => [...document.querySelectorAll('div.plot')].map(d => [d.clientWidth, d.clientHeight])"
    )
    assert all(w >= min(300, width - 100) and h >= 200 for w, h in sizes), sizes
    shot = path.with_name(f"report-{width}.png")
    page.screenshot(path=str(shot), full_page=False)
    assert probe.problems == []


def test_event_data_in_charts_and_tables_never_runs_as_script(open_page, tmp_path) -> None:
    steps = steps_frame([10, 5, 2])
    steps["name"] = [EVIL, "<img src=x onerror=alert(2)>", "b"]
    findings = pd.DataFrame({"rank": [1], "evidence": [EVIL], "tactics": [[EVIL]], "step": [EVIL]})
    path = tmp_path / "evil.html"
    path.write_text(
        render_page([S.diagnosis_section(findings), S.steps_section(steps)], title=EVIL),
        encoding="utf-8",
    )
    probe = open_page(path)
    probe.page.wait_for_function(
        "() => [...document.querySelectorAll('div.plot')].every(d => d.querySelector('svg.main-svg'))",
        timeout=15_000,
    )
    assert probe.page.title() == EVIL
    assert probe.problems == []
