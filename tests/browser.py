"""Headless Chromium for browser tests, through Playwright (a pytest plugin module).

Playwright cannot download its own browsers here, so tests drive Debian's ``chromium``
(installed by ``make browser``). Two fixtures:

- ``chromium``: one browser for the test session (skips the test, naming the fix, when
  ``/usr/bin/chromium`` is not installed);
- ``open_page``: ``open_page(url, allow=("http://127.0.0.1",))`` opens a fresh page and
  returns a :class:`PageProbe` that records console errors, uncaught page errors, dialogs
  (``alert``…) and every request the page tried outside ``allow`` (those are blocked, so a page that
  works in the test works offline).

Use it from a test module by requesting the fixtures; ``tests/conftest.py`` loads this
module as a plugin.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("SHOPFUNNEL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


@dataclass
class PageProbe:
    """A page and what it did while loading: console errors, page errors, blocked requests."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """Everything that went wrong, one line each (empty for a clean page)."""
        return (
            [f"console error: {m}" for m in self.console_errors]
            + [f"page error: {m}" for m in self.page_errors]
            + [f"network request: {u}" for u in self.blocked_requests]
            + [f"dialog: {m}" for m in self.dialogs]
        )


def require_chromium() -> None:
    """Skip locally without Chromium; in CI (CI set) a missing browser is a failure, so the
    browser tests can never pass by not running."""
    if Path(CHROMIUM).exists():
        return
    message = (
        f"no Chromium at {CHROMIUM}: install it with `make browser` (apt-get install chromium)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def open_page(chromium: Any) -> Iterator[Callable[..., PageProbe]]:
    contexts: list[Any] = []

    def _open(
        url: str | Path,
        *,
        allow: Sequence[str] = (),
        viewport: tuple[int, int] = (1280, 900),
        wait_until: str = "load",
    ) -> PageProbe:
        target = url.resolve().as_uri() if isinstance(url, Path) else url
        context = chromium.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        contexts.append(context)
        page = context.new_page()
        probe = PageProbe(page)
        page.on(
            "console", lambda m: probe.console_errors.append(m.text) if m.type == "error" else None
        )
        page.on("pageerror", lambda e: probe.page_errors.append(str(e)))

        def _dialog(dialog: Any) -> None:
            probe.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", _dialog)
        allowed = tuple(LOCAL_SCHEMES) + tuple(allow)

        def _route(route: Any) -> None:
            request_url = route.request.url
            if request_url.startswith(allowed):
                route.continue_()
            else:
                probe.blocked_requests.append(request_url)
                route.abort()

        page.route("**/*", _route)
        page.goto(target, wait_until=wait_until)
        return probe

    yield _open
    for context in contexts:
        context.close()
