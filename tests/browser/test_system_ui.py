"""The System page in Chromium: an admin reaches it from Settings, its throughput chart is
drawn (SVG, no console error) with the same numbers in a table, and the components show
whether the worker is alive."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from cdp import health
from profiles.pipeline import queue
from tests.fixtures import Tenant, post_collector

pytestmark = pytest.mark.browser


def test_an_admin_opens_the_system_page_from_settings(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, client: Any, screenshot: Any
) -> None:
    now = datetime.now(UTC).isoformat()
    events = [
        {"type": "track", "userId": f"u{i}", "event": "Signed Up", "timestamp": now}
        for i in range(5)
    ]
    response = post_collector(
        client, "/v1/batch", {"batch": [*events, {}]}, write_key=tenant_a.write_key
    )
    assert response.status_code == 200
    queue.drain()
    health.worker_heartbeat("celery@browser")
    health.beat_tick()
    login_as(tenant_a.users["admin"])
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server.url + "/settings/")
    page.locator("#system-settings").get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/system/$"))
    expect(page.get_by_role("heading", name="System", level=1)).to_be_visible()
    chart = page.locator("#sys-throughput svg[role=img]")
    expect(chart).to_have_attribute("aria-label", "Events processed per hour, last 24 hours")
    expect(chart.locator("rect.bar").first).to_be_attached()
    page.locator("#sys-throughput").get_by_text("Show as a table").click()
    expect(page.locator("#sys-throughput table tbody tr")).to_have_count(24)
    expect(page.locator("#sys-component-worker .pill")).to_have_text("OK")
    expect(page.locator("#sys-dead-failed_events .pill")).to_have_text("1")
    screenshot(page, "system")
