"""The report opens in headless Chromium offline, with every chart drawn and no errors."""

from __future__ import annotations

import pandas as pd
import pytest

from shopfunnel.report import make_report, render_page
from shopfunnel.report import sections as S
from shopfunnel.sample import generate_sample
from shopfunnel.store import Store
from test_report import EVIL, NOT_INSTALLED, steps_frame

pytestmark = pytest.mark.browser


def test_report_opens_offline_with_every_chart_drawn_and_no_console_errors(open_page, tmp_path) -> None:
    with Store(":memory:") as store:
        store.load(generate_sample(60_000, seed=3))
        report = make_report(store, title="Browser test shop")
    assert set(report.problems) == NOT_INSTALLED
    path = tmp_path / "report.html"
    path.write_text(report.html, encoding="utf-8")

    probe = open_page(path)
    page = probe.page
    plots = page.locator("div.plot")
    expected = report.html.count('<div class="plot"')
    assert expected >= 12 and plots.count() == expected
    page.wait_for_function(
        "() => [...document.querySelectorAll('div.plot')].every(d => d.querySelector('svg.main-svg'))",
        timeout=15_000,
    )
    drawn = page.evaluate(
        "() => [...document.querySelectorAll('div.plot')].map(d => d.querySelectorAll('.main-svg').length)"
    )
    assert all(n > 0 for n in drawn), drawn
    assert probe.problems == []

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")


def test_event_data_in_charts_and_tables_never_runs_as_script(open_page, tmp_path) -> None:
    steps = steps_frame([10, 5, 2])
    steps["name"] = [EVIL, "<img src=x onerror=alert(2)>", "b"]
    findings = pd.DataFrame({"rank": [1], "evidence": [EVIL], "tactics": [[EVIL]], "step": [EVIL]})
    path = tmp_path / "evil.html"
    path.write_text(render_page([S.diagnosis_section(findings), S.steps_section(steps)], title=EVIL),
                    encoding="utf-8")
    probe = open_page(path)
    probe.page.wait_for_function(
        "() => [...document.querySelectorAll('div.plot')].every(d => d.querySelector('svg.main-svg'))",
        timeout=15_000,
    )
    assert probe.page.title() == EVIL
    assert probe.problems == []
