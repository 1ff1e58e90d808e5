"""The person and programs pages over HTTP: admin only, hostile ids and values shown as text,
the e-mail search by POST only, and the programs' figures as the programs compute them."""

from __future__ import annotations

import re
from html import unescape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape
from tests.journey.programs_store import XSS, programs_store
from tests.journey.stores import shopper_store

from server.kit import ADMIN, ADMIN_PASSWORD, WRITE_KEY, LiveServer, basic
from test_hostile_keys import NASTY, keys, values

# a person id carried as a cookie id, with markup, quotes and separators
hostile_ids = st.one_of(
    st.sampled_from([*NASTY, XSS, "a&person=b", "x#y", "?q=1"]), st.text(min_size=1, max_size=12)
).filter(lambda s: s.strip() == s and s != "")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    path = tmp_path_factory.mktemp("journey") / "shop.duckdb"
    shopper_store(str(path)).close()
    with LiveServer(path) as server:
        yield server


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def logged_in(live: LiveServer):
    import httpx

    client = httpx.Client(base_url=live.url, timeout=30)
    assert client.post("/login", data={"password": ADMIN_PASSWORD}).status_code == 303
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/journey").text).group(1)
    return client, csrf


@pytest.mark.parametrize("auth", [{}, basic(WRITE_KEY), {"Authorization": "Bearer wrong password"}])
def test_the_person_and_programs_pages_send_anyone_but_the_admin_to_the_login(live, auth) -> None:
    for method, path, data in (
        ("GET", "/journey?person=u-ann", None),
        ("GET", "/programs", None),
        ("POST", "/journey", {"q": "ann@example.com", "by": "email"}),
    ):
        r = live.client.request(method, path, headers=auth, data=data, follow_redirects=False)
        assert (r.status_code, r.headers["location"]) == (303, "/login"), (method, path)
        assert "Ann" not in r.text and "u-ann" not in r.text


def test_the_admin_sees_the_journey_with_contacts_from_a_cookie_id(live) -> None:
    r = live.client.get("/journey", params={"person": "a-phone"}, headers=ADMIN)
    assert r.status_code == 200
    text = text_of(r.text)
    assert "Person u-ann" in text and "stage reached Retention" in text
    assert "stitched a-phone" in text and "stitched a-laptop" in text
    assert "Ann@Example.com" in text  # the admin sees the contacts
    assert "Awareness Interest view_item" in text  # the second stage change
    assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_the_email_search_is_a_post_that_answers_with_the_journey(live) -> None:
    client, csrf = logged_in(live)
    try:
        r = client.post("/journey", data={"q": "ANN@example.com", "by": "email", "csrf": csrf})
        assert r.status_code == 200 and "Person u-ann" in text_of(r.text)
        assert "ANN@example.com" not in r.text, (
            "the e-mail searched for is not echoed into the form"
        )
        assert (
            client.post(
                "/journey", data={"q": "ann@example.com", "by": "email", "csrf": "x"}
            ).status_code
            == 403
        )
        missing = client.post(
            "/journey", data={"q": "nobody@example.com", "by": "email", "csrf": csrf}
        )
        assert missing.status_code == 422 and "no person with that e-mail" in text_of(missing.text)
        assert (
            client.post("/journey", data={"q": "u-ann", "by": "phone", "csrf": csrf}).status_code
            == 422
        )
    finally:
        client.close()


def test_an_unknown_person_is_a_clear_message(live) -> None:
    r = live.client.get("/journey", params={"person": "zed"}, headers=ADMIN)
    assert r.status_code == 422 and "no person with that id" in text_of(r.text)


@pytest.mark.slow
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(person=hostile_ids, key=keys, value=values)
def test_hostile_ids_keys_and_values_are_shown_as_text(live, person, key, value) -> None:
    """Whatever the ids, property keys, pages, product names and sessions hold, the page shows
    them as text: every one appears escaped, and the page holds no markup from the data."""
    batch = [
        {
            "event_id": f"h-{i}-{abs(hash((person, key, value)))}",
            "ts": 1709287200 + i * 60,
            "event": ev,
            "anonymous_id": person,
            "session_id": value,
            "page": value,
            "channel": value,
            "properties": {key: value, "email": value},
            "items": [{"item_id": value, "item_name": XSS, "price": 1.0, "quantity": 1}],
        }
        for i, ev in enumerate(["page_view", "view_item"])
    ]
    assert live.send("/v1/batch", {"batch": batch}).status_code == 200
    live.flush()
    r = live.client.get("/journey", params={"person": person}, headers=ADMIN)
    assert r.status_code == 200, r.text[-500:]
    html = r.text
    assert str(escape(person)) in html and str(escape(value)) in html
    assert str(escape(XSS + " ×1")) in html
    assert XSS not in html and "<img" not in html
    scripts = re.findall(r"<script[^>]*>", html)
    assert all(
        s.startswith(('<script src="/static/', '<script type="application/json"')) for s in scripts
    )


def test_a_person_id_made_of_markup_is_shown_as_text(live) -> None:
    live.send(
        "/v1/batch",
        {
            "batch": [
                {
                    "event_id": "xss-1",
                    "ts": 1709287200,
                    "event": "page_view",
                    "anonymous_id": XSS,
                    "page": XSS,
                }
            ]
        },
    )
    live.flush()
    html = live.client.get("/journey", params={"person": XSS}, headers=ADMIN).text
    assert html.count(str(escape(XSS))) >= 3 and XSS not in html and "<img" not in html


def test_the_persons_page_links_each_person_to_their_journey(live) -> None:
    r = live.client.get("/persons", headers=ADMIN)
    assert 'href="/journey?person=u-ann"' in r.text


def test_the_programs_page_shows_the_offer_referrals_and_draw_as_the_programs_compute_them(
    tmp_path,
) -> None:
    from shopfunnel.programs.giveaways import verify_draw
    from shopfunnel.programs.offer_results import offer_result
    from shopfunnel.programs.referrals import referral_ledger

    path = tmp_path / "programs.duckdb"
    with programs_store(str(path)) as store:
        result = offer_result(store, "spring").summary
        ledger = referral_ledger(store)
        winner = verify_draw(store, "spring-draw")["recorded"][0]
    assert (result["codes_issued"], result["codes_redeemed"], result["discount_given"]) == (
        2,
        1,
        6.0,
    )
    assert ledger[["referred_person_id", "status"]].values.tolist() == [["f", "payable"]]
    with LiveServer(path) as live:
        page = live.client.get("/programs", headers=ADMIN).text
        text = text_of(page)
        row = re.search(r'<table id="offers-table">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
        cells = [unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)]
        assert text_of(cells[0]).strip() == "spring" and cells[3:7] == [
            "all",
            "2",
            "1",
            "50.0%",
        ]  # audience, codes, redeemed, rate
        assert "EUR 6.00" in cells  # the discount given
        assert "referred persons 1" in text and "payable now 1 · EUR 10.00" in text
        assert "payable 1" in text_of(
            re.search(r'id="referral-decisions">(.*?)</div>', page, re.S).group(1)
        )
        detail = live.client.get("/programs", params={"offer": "spring"}, headers=ADMIN).text
        assert "OFF-F" in detail and str(escape(XSS)) in detail and XSS not in detail
        draw = text_of(
            live.client.get("/programs", params={"draw": "spring-draw"}, headers=ADMIN).text
        )
        assert "entrants match their digest; winners match" in draw and winner in draw
        assert (
            live.client.get("/programs", params={"offer": "nope"}, headers=ADMIN).status_code == 422
        )


def test_the_json_api_gives_the_journey_and_searches_by_email_in_the_body(live) -> None:
    r = live.client.get("/v1/persons/a-laptop/journey", params={"events": 2}, headers=ADMIN)
    assert r.status_code == 200
    data = r.json()
    assert data["person_id"] == "u-ann" and [e["event"] for e in data["events"]] == [
        "purchase",
        "refund",
    ]
    assert data["contacts"][0]["value"] == "Ann@Example.com"
    assert live.client.get("/v1/persons/zed/journey", headers=ADMIN).json() == {"matches": []}
    found = live.client.post(
        "/v1/persons/search", json={"email": " ann@EXAMPLE.com"}, headers=ADMIN
    )
    assert found.json() == {"rows": [{"person_id": "u-ann", "matched_by": "e-mail"}]}
    for auth in ({}, basic(WRITE_KEY)):
        assert live.client.get("/v1/persons/u-ann/journey", headers=auth).status_code == 401
        assert (
            live.client.post(
                "/v1/persons/search", json={"email": "a@b.c"}, headers=auth
            ).status_code
            == 401
        )
    assert (
        live.client.post("/v1/persons/search", json={"email": "x"}, headers=ADMIN).status_code
        == 422
    )


def test_nothing_of_a_search_or_a_journey_is_logged(live, caplog) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    client, csrf = logged_in(live)
    try:
        client.post("/journey", data={"q": "ann@example.com", "by": "email", "csrf": csrf})
        client.get("/journey", params={"person": "u-ann"})
        client.post("/journey", data={"q": "nobody@example.com", "by": "email", "csrf": csrf})
    finally:
        client.close()
    live.client.post("/v1/persons/search", json={"email": "ann@example.com"}, headers=ADMIN)
    # the server's records (the test's own HTTP client logs its requests: not the server's)
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    text = "\n".join(f"{r.name} {r.getMessage()}" for r in server).lower()
    assert "ann@example.com" not in text and "nobody@example.com" not in text
    assert "u-ann" not in text
