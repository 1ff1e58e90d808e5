"""The person and programs pages in headless Chromium, against a real server on loopback:
search by e-mail, the journey's parts, a non-admin refused, hostile values shown as text."""

from __future__ import annotations

import json

import pytest
from tests.conftest import log
from tests.journey.programs_store import XSS, programs_store
from tests.journey.stores import shopper_store

from server.kit import ADMIN_PASSWORD, LiveServer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    path = tmp_path_factory.mktemp("journey-browser") / "shop.duckdb"
    with shopper_store(str(path)) as store:
        item = {"item_id": "x", "item_name": XSS, "price": 1.0, "quantity": 1}
        store.load(
            log(
                (
                    XSS,
                    30,
                    "view_item",
                    {
                        "event_id": "xss-0",
                        "page": XSS,
                        "session_id": XSS,
                        "items": json.dumps([item]),
                    },
                )
            )
        )
    with LiveServer(path) as server:
        yield server


def log_in(open_page, url: str):
    probe = open_page(url + "/journey", allow=(url,))
    page = probe.page
    assert page.url.endswith("/login"), "the person page sends a visitor to the login"
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")
    return probe


def test_support_finds_a_customer_by_email_and_reads_her_journey(live, open_page, tmp_path) -> None:
    probe = log_in(open_page, live.url)
    page = probe.page
    page.goto(live.url + "/journey")
    page.fill("#person-search input[name=q]", "ann@example.com")
    page.select_option("#person-search select[name=by]", "email")
    page.click("#person-search button[type=submit]")
    page.wait_for_selector("#summary")
    assert "ann@example.com" not in page.url.lower(), "the e-mail never goes into a URL"
    assert page.locator("h1").inner_text() == "Person u-ann"
    assert "Retention" in page.locator("#summary").inner_text()
    identities = page.locator("[data-part=identities] tbody tr").all_inner_texts()
    assert [r.split("\t")[:2] for r in identities] == [
        ["customer id", "u-ann"],
        ["stitched", "a-phone"],
        ["stitched", "a-laptop"],
    ]
    changes = page.locator("[data-part=stage_changes] tbody tr td:nth-child(3)").all_inner_texts()
    assert changes == ["Awareness", "Interest", "Decision", "Purchase", "Retention"]
    sessions = page.locator("[data-part=sessions] tbody tr")
    assert sessions.count() == 3 and "email" in sessions.first.inner_text()
    assert "Mug ×2" in page.locator("[data-part=events]").inner_text()
    assert "Ann@Example.com" in page.locator("[data-part=contacts]").inner_text()
    page.wait_for_selector("#stage-chart .main-svg")  # the stage chart is drawn
    shot = tmp_path / "journey.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert probe.problems == []


def test_a_visitor_who_is_not_the_admin_is_refused(live, open_page) -> None:
    probe = open_page(live.url + "/journey?person=u-ann", allow=(live.url,))
    assert probe.page.url.endswith("/login")
    assert "u-ann" not in probe.page.content()
    posted = probe.page.request.post(
        live.url + "/journey", form={"q": "ann@example.com", "by": "email"}, max_redirects=0
    )
    assert posted.status == 303 and posted.headers["location"] == "/login"
    assert "Ann" not in posted.text()


def test_a_hostile_person_is_shown_as_text_and_never_runs(live, open_page) -> None:
    probe = log_in(open_page, live.url)
    page = probe.page
    page.goto(live.url + "/journey")
    page.fill("#person-search input[name=q]", XSS)
    page.click("#person-search button[type=submit]")
    page.wait_for_selector("#summary")
    assert page.locator("h1").inner_text() == f"Person {XSS}"
    assert XSS in page.locator("[data-part=events]").inner_text()
    assert page.evaluate("window.__pwned") is None
    assert probe.problems == []


def test_the_programs_page_shows_offers_referrals_and_a_checked_draw(tmp_path, open_page) -> None:
    path = tmp_path / "programs.duckdb"
    programs_store(str(path)).close()
    with LiveServer(path) as live:
        probe = log_in(open_page, live.url)
        page = probe.page
        page.goto(live.url + "/programs")
        row = page.locator("#offers-table tbody tr").first.inner_text().split("\t")
        assert row[0] == "spring" and row[4:7] == ["2", "1", "50.0%"]
        assert "payable now" in page.locator("#referral-totals").inner_text()
        page.click("#offers-table a")
        page.wait_for_selector("#offer-detail")
        assert XSS in page.inner_text("main") and page.evaluate("window.__pwned") is None
        page.goto(live.url + "/programs")
        page.click("#draws-table a")
        page.wait_for_selector("#draw-check")
        assert page.inner_text("#draw-check") == (
            "Re-drawn from the record: entrants match their digest; winners match."
        )
        assert page.locator("#draw-winners li").count() == 1
        assert probe.problems == []
