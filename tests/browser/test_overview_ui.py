"""The overview in Chromium: people land on it, its cards and charts are drawn (SVG, no
console error), the range switch redraws the events chart, each chart has its table and its
link, and an RFM cell opens the explorer filtered on its segment; the profile page's activity
chart and its timeline's filters."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from profiles.computed.services import builtin_traits_refresh
from profiles.models import Profile
from profiles.pipeline import queue
from tests.fixtures import Tenant, post_collector

pytestmark = pytest.mark.browser


def _shop(tenant: Tenant, client: Any) -> None:
    now = datetime.now(UTC)
    events: list[dict[str, Any]] = []
    for i in range(12):
        user = f"u{i}"
        first = now - timedelta(days=60 - i * 4)
        events.append(
            {
                "type": "identify",
                "userId": user,
                "traits": {"email": f"{user}@x.io", "first_name": f"Person{i}"},
                "timestamp": first.isoformat(),
            }
        )
        for k in range(i % 4 + 1):
            at = first + timedelta(days=k * 3)
            events.append(
                {
                    "type": "track",
                    "userId": user,
                    "event": "Order Completed",
                    "properties": {"revenue": 10 + k},
                    "timestamp": at.isoformat(),
                }
            )
            events.append(
                {"type": "page", "userId": user, "name": "Home", "timestamp": at.isoformat()}
            )
    response = post_collector(client, "/v1/batch", {"batch": events}, write_key=tenant.write_key)
    assert response.status_code == 200
    queue.drain()
    builtin_traits_refresh(workspace_id=tenant.workspace.pk)


def test_people_land_on_the_overview_with_its_charts(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, client: Any, settings: Any
) -> None:
    settings.CDP_OVERVIEW_INLINE = True
    _shop(tenant_a, client)
    login_as(tenant_a.users["marketer"])
    page.goto(live_server.url + "/")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    profiles = page.locator(".ov-card", has=page.get_by_text("Profiles", exact=True))
    expect(profiles.locator(".stat-value")).to_have_text("12")
    events = page.locator("#ov-events_by_type")
    expect(events.locator("svg[role=img]")).to_have_attribute(
        "aria-label", re.compile("last 30 days")
    )
    expect(events.locator("polygon.band").first).to_be_attached()
    events.get_by_role("button", name="90 days").click()
    expect(events.locator("svg[role=img]")).to_have_attribute(
        "aria-label", re.compile("last 90 days")
    )
    expect(events.get_by_role("button", name="90 days")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#ov-new_returning svg[role=img]")).to_be_visible()
    # the table behind a chart
    events.get_by_text("Show as a table").click()
    expect(events.locator("table tbody tr").first).to_be_visible()
    # an RFM cell opens the explorer on its segment
    cell = page.locator("#ov-rfm a.heat-cell").first
    expect(cell).to_have_attribute("aria-label", re.compile(r"\d"))
    cell.click()
    expect(page).to_have_url(re.compile(r"/profiles/\?rfm="))


def test_the_profile_page_pictures_the_activity_and_filters_the_timeline(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, client: Any
) -> None:
    _shop(tenant_a, client)
    profile = Profile.objects.get(workspace=tenant_a.workspace, traits__first_name="Person11")
    login_as(tenant_a.users["owner"])
    page.goto(f"{live_server.url}/profiles/{profile.pk}/")
    expect(page.locator("#activity-weeks svg[role=img]")).to_have_attribute(
        "aria-label", "Events per week by type"
    )
    expect(page.locator("#activity-months rect.bar").first).to_be_attached()
    timeline = page.locator("#timeline")
    expect(timeline.locator("li.event-row")).to_have_count(9)  # identify, 4 orders, 4 pages
    page.locator("#timeline-filters select[name=event]").select_option("Order Completed")
    expect(timeline.locator("li.event-row")).to_have_count(4)
    expect(page.locator("#timeline-filters select[name=type]")).to_have_value("track")
    first = timeline.locator("li.event-row").first
    first.locator(".event-head").click()
    expect(first.locator("table.props").first).to_contain_text("revenue")
    expect(first.locator("details.raw-json pre")).to_be_hidden()
    first.get_by_text("Raw JSON").click()
    expect(first.locator("details.raw-json pre")).to_contain_text('"messageId"')


def test_the_overview_fills_in_when_its_first_figures_are_ready(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, client: Any, settings: Any
) -> None:
    from cdp import overview

    settings.CDP_OVERVIEW_INLINE = False
    _shop(tenant_a, client)
    login_as(tenant_a.users["owner"])
    page.goto(live_server.url + "/")
    expect(page.locator("#ov-waiting")).to_be_visible()
    expect(page.locator("#ov-rfm")).to_contain_text("Computing")
    overview.refresh(tenant_a.workspace.pk)  # what the task does
    expect(page.locator("#ov-waiting")).to_be_hidden(timeout=15_000)
    expect(page.locator("#ov-rfm a.heat-cell").first).to_be_visible()
