"""Accessibility: the skip link and the sidebar that folds away below 900 px. The axe-core audit
of every kind of page runs in the crawl of tests/browser/test_csp.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.fixtures import Tenant

pytestmark = pytest.mark.browser


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
