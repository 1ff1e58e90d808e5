"""End to end in headless Chromium: a store page with the snippet, then the dashboard."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from server.kit import ADMIN_PASSWORD, WRITE_KEY, LiveServer

pytestmark = pytest.mark.browser
XSS = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'


def shop_page(collector: str) -> bytes:
    return f"""<!doctype html><html><head><title>Mug shop</title></head><body><h1>Mug</h1>
<script>
window.shopfunnel = window.shopfunnel || {{q: []}};
["track", "identify", "page", "flush"].forEach(function (m) {{
  window.shopfunnel[m] = window.shopfunnel[m] || function () {{ window.shopfunnel.q.push([m, arguments]); }};
}});
</script>
<script src="{collector}/sdk.js" data-write-key="{WRITE_KEY}" async></script>
</body></html>""".encode()


@pytest.fixture
def shop() -> Iterator[tuple[str, list[bytes]]]:
    pages: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(pages[0])

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", pages
    server.shutdown()
    server.server_close()


@pytest.fixture
def browser(chromium):
    """The session's Chromium (tests/browser.py): one Playwright per process, since a second
    sync Playwright cannot start while the first one's loop runs."""
    return chromium


def test_a_storefront_visit_lands_in_the_store_and_the_dashboard_funnel(tmp_path, shop, browser):
    shop_url, pages = shop
    with LiveServer(tmp_path / "shop.duckdb", allowed_origins=(shop_url,)) as live:
        pages.append(shop_page(live.url))
        page = browser.new_page()
        page.goto(
            f"{shop_url}/product/mug?utm_source=newsletter&utm_medium=email&utm_campaign=spring"
        )
        page.wait_for_function(
            "window.shopfunnel && typeof window.shopfunnel.pending === 'function'"
        )
        page.evaluate(
            """(note) => {
            shopfunnel.track('view_item', {value: 12.5, currency: 'EUR',
                             items: [{item_id: 'mug-1', item_name: 'Mug', price: 12.5, quantity: 1}]});
            shopfunnel.track('add_to_cart', {value: 25, currency: 'EUR',
                             items: [{item_id: 'mug-1', item_name: 'Mug', price: 12.5, quantity: 2}], note: note});
            shopfunnel.flush();
        }""",
            XSS,
        )
        page.wait_for_function("window.shopfunnel.pending() === 0", timeout=15_000)
        anonymous_id = page.evaluate("shopfunnel.anonymousId()")
        page.goto(f"{shop_url}/checkout")  # a second page: a new batch, same visit, no UTM
        page.wait_for_function(
            "window.shopfunnel && typeof window.shopfunnel.pending === 'function'"
        )
        page.evaluate("""() => {
            shopfunnel.identify('cust-7');
            shopfunnel.track('purchase', {order_id: 'o-1', value: 25, currency: 'EUR'});
            shopfunnel.flush();
        }""")
        page.wait_for_function("window.shopfunnel.pending() === 0", timeout=15_000)

        rows = live.sql(
            "SELECT event, anonymous_id, session_id, channel, utm_campaign, person_id "
            "FROM events ORDER BY ts, event_id"
        )
        assert sorted(r[0] for r in rows) == sorted(
            ["page_view", "view_item", "add_to_cart", "page_view", "identify", "purchase"]
        )
        assert {r[1] for r in rows} == {anonymous_id}
        assert {r[5] for r in rows} == {"cust-7"}, "identify links the whole visit to the customer"
        assert len({r[2] for r in rows}) == 1, "one visit, one session"
        assert {r[3] for r in rows} == {"email"}, (
            "the session's channel comes from the landing page's UTM"
        )
        assert rows[0][0] == "page_view" and rows[0][4] == "spring"  # the landing page's UTM
        assert live.sql("SELECT order_id, person_id, value FROM orders") == [
            ("o-1", "cust-7", pytest.approx(25))
        ]

        admin = browser.new_page()
        admin.goto(live.url + "/funnel")
        assert admin.url.endswith("/login")
        admin.fill("input[name=password]", ADMIN_PASSWORD)
        admin.click("button[type=submit]")
        admin.goto(live.url + "/funnel?steps=page_view,view_item,add_to_cart,purchase&window=1d")
        admin.wait_for_selector("#funnel-chart .main-svg")
        table = admin.locator("table").first
        persons = [int(c) for c in table.locator("tbody tr td:nth-child(4)").all_inner_texts()]
        assert persons == [1, 1, 1, 1]
        shot = tmp_path / "dashboard-funnel.png"
        admin.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000

        admin.goto(live.url + "/events")
        shown = admin.locator("table").inner_text()
        assert (
            "<script>window.__pwned=1</script>" in shown and "<img src=x onerror=" in shown
        )  # text …
        assert admin.evaluate("window.__pwned") is None  # … never run
