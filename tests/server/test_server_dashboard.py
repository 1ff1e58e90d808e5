"""The dashboard: admin login, secure cookies, escaped event data, CSV person lists."""

from __future__ import annotations

import csv
import io

from server.kit import ADMIN, ADMIN_PASSWORD, WRITE_KEY, LiveServer, basic

SCRIPT = "<script>alert('x')</script>"


def _events():
    out = []
    for p in range(6):
        seq = ["page_view", "view_item", "add_to_cart", "purchase"][: 1 + p % 4]
        for i, name in enumerate(seq):
            e = {
                "event_id": f"p{p}-{i}",
                "ts": 1709287200 + p * 3600 + i * 60,
                "event": name,
                "anonymous_id": f"a{p}",
                "properties": {"note": SCRIPT},
            }
            if name == "purchase":
                e.update(order_id=f"o{p}", value=10 + p, currency="EUR")
            out.append(e)
    return out


def login(live: LiveServer) -> None:
    r = live.client.post("/login", data={"password": ADMIN_PASSWORD}, follow_redirects=False)
    assert r.status_code == 303


def test_pages_need_the_admin_login_and_the_session_cookie_is_httponly_and_samesite(live):
    assert live.client.get("/funnel", follow_redirects=False).headers["location"] == "/login"
    bad = live.client.post("/login", data={"password": "not-the-password"})
    assert bad.status_code == 401 and "Wrong password" in bad.text
    r = live.client.post("/login", data={"password": ADMIN_PASSWORD}, follow_redirects=False)
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert "secure" not in cookie  # plain HTTP on loopback only (local use)
    assert live.client.get("/funnel").status_code == 200


# logging out needs no login: it ends a session, if there is one
PUBLIC_PAGES = {"/login", "/logout", "/static/plotly.min.js", "/static/{name}"}


def test_every_dashboard_page_sends_a_visitor_to_the_login(live):
    from fastapi.routing import APIRoute

    from shopfunnel.server import analysis_pages, dashboard, funnel_pages, journey, programs

    routers = [dashboard, funnel_pages, analysis_pages, journey, programs]
    pages = [
        (method, r.path)
        for module in routers
        for r in module.router.routes
        if isinstance(r, APIRoute) and r.path not in PUBLIC_PAGES
        for method in r.methods
    ]
    assert len(pages) >= 14  # the pages of the dashboard, the person page and the programs page
    for method, path in pages:
        r = live.client.request(method, path, follow_redirects=False)
        assert (r.status_code, r.headers.get("location")) == (303, "/login"), (method, path)


def test_a_page_shows_a_failed_read_on_its_own_template_with_422(live):
    login(live)
    r = live.client.get("/funnel", params={"steps": "view_item", "window": "not-a-window"})
    assert r.status_code == 422 and "<form" in r.text and "not-a-window" in r.text
    r = live.client.get("/experiments", params={"name": "x", "engine": "neither"})
    assert r.status_code == 422 and "frequentist or bayesian" in r.text


def test_session_cookies_are_secure_off_loopback(tmp_path):
    with LiveServer(tmp_path / "s.duckdb", cookie_secure=True) as live:
        r = live.client.post("/login", data={"password": ADMIN_PASSWORD}, follow_redirects=False)
        assert "secure" in r.headers["set-cookie"].lower()


def test_logging_out_ends_the_session(live):
    login(live)
    page = live.client.get("/")
    token = page.text.split('name="csrf" value="')[1].split('"')[0]
    live.client.post("/logout", data={"csrf": token})
    assert live.client.get("/", follow_redirects=False).status_code == 303


def test_event_data_is_escaped_on_every_page(live):
    live.send("/v1/batch", {"batch": _events()})
    live.flush()
    login(live)
    for path in (
        "/",
        "/events",
        "/persons",
        "/funnel",
        "/stages",
        "/retention",
        "/diagnosis",
        "/stages?stage=Decision&status=active&start=2024-03-01&end=2024-03-02",
        f"/funnel?steps=page_view,{SCRIPT}&by=channel",
    ):
        r = live.client.get(path)
        assert r.status_code in (200, 422), path
        assert SCRIPT not in r.text, path
        assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in live.client.get("/events").text


def test_person_lists_download_as_csv_matching_the_store(live):
    live.send("/v1/batch", {"batch": _events()})
    live.flush()
    login(live)
    rows = list(csv.DictReader(io.StringIO(live.client.get("/persons.csv").text)))
    assert sorted(r["person_id"] for r in rows) == [f"a{p}" for p in range(6)]
    assert {r["person_id"]: float(r["revenue"]) for r in rows}["a3"] == 13.0
    staged = live.client.get(
        "/v1/stages/persons", params={"stage": "Purchase", "format": "csv"}, headers=ADMIN
    )
    assert staged.headers["content-type"].startswith("text/csv")
    buyers = [r["person_id"] for r in csv.DictReader(io.StringIO(staged.text))]
    purchasers = live.sql(
        "SELECT DISTINCT person_id FROM events WHERE event = 'purchase' ORDER BY 1"
    )
    assert sorted(buyers) == [r[0] for r in purchasers] == ["a3"]


def test_the_stages_page_and_api_show_every_status_and_how_it_was_judged(live):
    live.send("/v1/batch", {"batch": _events()})
    live.flush()
    login(live)
    page = live.client.get("/stages")
    assert page.status_code == 200
    for text in (
        "gone after",
        "stalled after",
        "Prospects (no order)",
        "Customers: lapsed",
        "<option>gone</option>",
    ):
        assert text in page.text, text
    data = live.client.get("/v1/stages", headers=ADMIN).json()
    assert {"active", "stalled", "lapsed", "gone", "gone_after_days"} <= set(data["rows"][0])
    assert data["notes"][0].startswith("Prospects (no order)")
    statuses = {}
    for status in ("active", "stalled", "lapsed", "gone"):
        r = live.client.get("/v1/stages/persons", params={"status": status}, headers=ADMIN)
        assert r.status_code == 200, status
        statuses.update({row["person_id"]: row["status"] for row in r.json()["rows"]})
    everyone = live.client.get("/v1/stages/persons", headers=ADMIN).json()["rows"]
    assert statuses == {row["person_id"]: row["status"] for row in everyone}
    bad = live.client.get("/v1/stages/persons", params={"status": "asleep"}, headers=ADMIN)
    assert bad.status_code == 422


def test_the_json_funnel_matches_a_hand_count(live):
    live.send("/v1/batch", {"batch": _events()})
    live.flush()
    r = live.client.get(
        "/v1/funnel", params={"steps": "page_view,view_item,add_to_cart,purchase"}, headers=ADMIN
    )
    assert r.status_code == 200
    # persons p0..p5 reach 1 + p % 4 steps: step k is reached by those with p % 4 >= k - 1
    assert [s["persons"] for s in r.json()["steps"]] == [6, 4, 2, 1]
    assert (
        live.client.get(
            "/v1/funnel", params={"steps": "page_view"}, headers=basic(WRITE_KEY)
        ).status_code
        == 401
    )
    bad = live.client.get(
        "/v1/funnel", params={"steps": "page_view", "window": "soon"}, headers=ADMIN
    )
    assert bad.status_code == 422 and "soon" in bad.text
    huge = live.client.get(
        "/v1/funnel", params={"steps": "page_view", "window": "99999999999999d"}, headers=ADMIN
    )
    assert huge.status_code == 422 and "3650d" in huge.text


def test_the_funnel_api_and_page_take_filters_exclusions_optional_steps_and_open_entry(live):
    live.send("/v1/batch", {"batch": _events()})
    live.flush()

    def counts(**params: str) -> list[int]:
        r = live.client.get(
            "/v1/funnel",
            params={"steps": "page_view,view_item,add_to_cart,purchase", **params},
            headers=ADMIN,
        )
        assert r.status_code == 200, r.text
        return [s["persons"] for s in r.json()["steps"]]

    assert counts(steps="page_view[anonymous_id=a1|a2],view_item") == [2, 2]
    assert counts(open="true") == [6, 4, 2, 1]
    assert counts(steps="page_view,add_to_cart,view_item,purchase", optional="2") == [6, 2, 4, 1]
    assert counts(exclude="view_item:1-2", steps="page_view,add_to_cart") == [6, 0]
    bad = live.client.get("/v1/funnel", params={"steps": "view_item[a=1"}, headers=ADMIN)
    assert bad.status_code == 422 and "expected" in bad.text
    login(live)
    page = live.client.get(
        "/funnel",
        params={"steps": "page_view,view_item", "exclude": "purchase", "optional": "", "open": "1"},
    )
    assert page.status_code == 200 and 'name="exclude"' in page.text and "checked" in page.text
    typo = live.client.get("/v1/funnel", params={"steps": "page_view,purchse"}, headers=ADMIN)
    assert typo.status_code == 422 and "'purchase'" in typo.text
    meant = live.client.get(
        "/v1/funnel", params={"steps": "page_view,refund", "allow_unknown": "true"}, headers=ADMIN
    )
    assert meant.status_code == 200 and [s["persons"] for s in meant.json()["steps"]] == [6, 0]


def test_password_guessing_from_one_address_backs_off(live):
    from shopfunnel.server.limits import LoginGuard

    live.state.login_guard = LoginGuard(clock=lambda: 0.0)  # no wait elapses during the test
    for i in range(12):
        live.client.post("/login", data={"password": f"guess-{i}-xxxx"})
    # five free failures, then waits that double: a new browser on this address waits too
    r = live.client.post("/login", data={"password": ADMIN_PASSWORD}, follow_redirects=False)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    api = live.client.get("/v1/info", headers={"Authorization": "Bearer another-guess"})
    assert api.status_code == 429 and "Retry-After" in api.headers


def test_the_admin_creates_a_write_key_on_the_keys_page_and_it_works_at_once(live):
    login(live)
    page = live.client.get("/keys")
    token = page.text.split('name="csrf" value="')[1].split('"')[0]
    assert live.client.post("/keys", data={"name": "web", "csrf": "forged"}).status_code == 403
    created = live.client.post("/keys", data={"name": "web", "csrf": token})
    key = created.text.split("<code>")[1].split("</code>")[0]
    assert (
        key.startswith("sfk_") and f'data-write-key="{key}"' in created.text
    )  # the snippet to paste
    ok = live.client.post(
        "/v1/batch",
        json={
            "batch": [
                {"event_id": "k1", "ts": 1709287200, "event": "page_view", "anonymous_id": "a"}
            ]
        },
        headers=basic(key),
    )
    assert ok.status_code == 200
    assert key not in live.client.get("/keys").text  # shown once only


def test_the_diagnosis_page_and_api_show_the_same_findings_and_notes(live):
    from markupsafe import escape

    live.send("/v1/batch", {"batch": _events()})
    live.flush()
    api = live.client.get("/v1/diagnosis", headers=ADMIN)
    assert api.status_code == 200
    body = api.json()
    assert {"findings", "notes", "sessions", "orders"} <= set(body)
    assert body["notes"], "a store this small cannot support every analysis: the notes say which"
    login(live)
    page = live.client.get("/diagnosis")
    assert page.status_code == 200
    for text in [f["title"] for f in body["findings"]] + body["notes"]:
        assert str(escape(str(text))) in page.text


def test_the_diagnosis_page_lists_incidents_with_ongoing_and_what_they_cost(tmp_path):
    from datetime import date

    from _foreign_store import ForeignStore, Planted
    from shopfunnel.store.store import Store

    db = tmp_path / "s.duckdb"
    with Store(db) as store:  # a payment fall that has not ended, in a store without order values
        store.load(
            ForeignStore(
                sessions_per_day=100,
                days=120,
                seed=4,
                planted=[Planted("purchase", date(2024, 3, 20), 42, 0.4)],
            ).events()
        )
    with LiveServer(db) as live:
        login(live)
        page = live.client.get("/diagnosis").text
    incidents = page.split("<h2>Incidents</h2>")[1].split("<h2>")[0]
    assert "ongoing" in incidents and "purchase" in incidents
    assert "persons lost" in incidents and "p adjusted" in incidents
