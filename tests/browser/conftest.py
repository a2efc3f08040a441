"""Headless Chromium for the browser tests: one browser per session, a fresh context per test,
signed in by copying a Django session cookie (fast) unless a test drives the login form.

Every page fails its test on a JavaScript error or a console error, unless the test says
which console messages it expects (e.g. the 404 of a page it is not allowed to see).

No page can be acted on before its scripts have run (READY_GATE)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

# Playwright's sync API keeps an event loop on the main thread; Django would then refuse ORM
# calls from test code (SynchronousOnlyOperation), although nothing here is actually async.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from playwright.sync_api import (  # noqa: E402
    Browser,
    BrowserContext,
    Page,
    expect,
    sync_playwright,
)

CHROMIUM = os.environ.get("CDP_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
TIMEOUT_MS = 10_000
expect.set_options(timeout=TIMEOUT_MS)

# The pages' scripts are modules, so deferred: they run once the document is parsed AND the
# stylesheets in its head have loaded, just before DOMContentLoaded. Until then the elements are
# in the DOM but have no behaviour: a select with data-autosubmit changes without submitting
# (the flaky privacy audit filter: the audit log's own stylesheet, not yet in the fresh context's
# cache, held app.js back while select_option acted). Playwright waits for an element to be
# visible and enabled, not for scripts (and select_option and fill not even for a rendered
# frame, so blocking="render" does not help), hence every document of every context counts as
# hidden until its DOMContentLoaded. A constructed stylesheet is used: no DOM or attribute change,
# and the Content-Security-Policy allows it.
READY_GATE = """
(() => {
  const gate = new CSSStyleSheet();
  gate.replaceSync('* { visibility: hidden !important; }');
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, gate];
  document.addEventListener('DOMContentLoaded', () => {
    document.adoptedStyleSheets = document.adoptedStyleSheets.filter((sheet) => sheet !== gate);
  }, { once: true });
})();
"""


@pytest.fixture(scope="session")
def browser(django_db_setup: Any, live_server: Any) -> Iterator[Browser]:
    # Set up after (so torn down before) the test database and the live server: Chromium's
    # keep-alive sockets pin server threads that hold database connections, and the test
    # database cannot be dropped while they are open.
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        new_context = browser.new_context

        def gated_context(**options: Any) -> BrowserContext:
            # contexts a test opens itself (a second user) are gated too
            ctx = new_context(**options)
            ctx.add_init_script(script=READY_GATE)
            return ctx

        browser.new_context = gated_context  # type: ignore[method-assign]
        yield browser
        browser.close()


class ConsoleWatch:
    """Collects JS errors and console errors of every page of a context."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def attach(self, page: Page) -> None:
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on(
            "console",
            lambda msg: (
                self.errors.append(f"console.{msg.type}: {msg.text} ({msg.location})")
                if msg.type == "error"
                else None
            ),
        )

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def console() -> ConsoleWatch:
    return ConsoleWatch()


@pytest.fixture
def context(browser: Browser, console: ConsoleWatch) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.on("page", console.attach)
    yield ctx
    ctx.close()
    problems = console.unexpected()
    assert not problems, "errors in the browser console:\n" + "\n".join(problems)


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def login_as(live_server: Any, context: BrowserContext) -> Callable[[Any], None]:
    """Sign the browser context in as `user` without going through the form."""

    def do(user: Any) -> None:
        client = Client()
        client.force_login(user)
        session_id = client.cookies[settings.SESSION_COOKIE_NAME].value
        context.clear_cookies()
        context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": session_id, "url": live_server.url}]
        )

    return do


@pytest.fixture
def screenshot() -> Callable[[Page, str], Path]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def shoot(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return shoot
