"""Accessibility: axe-core (the engine behind Lighthouse's audit) on every kind of page — a
crawl from the overview like the CSP test's, one page per URL pattern — fails on any serious
or critical violation; the skip link and the sidebar that folds away below 900 px."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.browser.test_csp import SEEDS, SKIP, _data
from tests.fixtures import Tenant

pytestmark = pytest.mark.browser

RULES = {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}


def _pattern(path: str) -> str:
    """/segments/12/?page=2 -> /segments/N/: one page of each kind is enough."""
    return re.sub(r"\d+", "N", path.split("?")[0])


def test_no_serious_accessibility_violation_on_any_page(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, client: Any, console: Any
) -> None:
    console.allow(r"404 \(Not Found\).*no-such-page")
    _data(tenant_a, client)
    login_as(tenant_a.users["owner"])
    axe = Axe()
    base = live_server.url
    queue_: list[str] = ["/", *SEEDS]
    seen: set[str] = set()
    problems: list[str] = []
    while queue_ and len(seen) < 60:
        path = queue_.pop(0)
        if _pattern(path) in seen or path.startswith((*SKIP, "/admin/", "/api/docs/")):
            continue
        seen.add(_pattern(path))
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
        result = axe.run(page, options={"runOnly": RULES})
        for violation in result.response["violations"]:
            if violation["impact"] in ("serious", "critical"):
                targets = [str(node["target"]) for node in violation["nodes"][:3]]
                problems.append(f"{path}: {violation['id']} ({violation['help']}) at {targets}")
        for href in page.eval_on_selector_all(
            "a[href]", "els => els.map(e => e.getAttribute('href'))"
        ):
            target = urlsplit(urljoin(base + path, href))
            if target.netloc == urlsplit(base).netloc:
                queue_.append(target.path + (f"?{target.query}" if target.query else ""))
    assert not problems, "\n".join(problems)
    assert len(seen) >= 20, sorted(seen)


def test_the_skip_link_jumps_to_the_content(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any
) -> None:
    login_as(tenant_a.users["marketer"])
    page.goto(live_server.url + "/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()


def test_the_sidebar_folds_away_below_900_px(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any
) -> None:
    login_as(tenant_a.users["owner"])
    page.set_viewport_size({"width": 820, "height": 900})
    page.goto(live_server.url + "/")
    sidebar = page.locator("#sidebar")
    expect(sidebar).to_be_hidden()
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_have_attribute("aria-expanded", "false")
    menu.click()
    expect(sidebar).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "true")
    sidebar.get_by_role("link", name="Segments").click()
    expect(page).to_have_url(re.compile(r"/segments/$"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 820
    page.set_viewport_size({"width": 1280, "height": 900})
    expect(page.locator("#sidebar")).to_be_visible()
    expect(menu).to_be_hidden()
