"""The segment builder's suggestion lists and a segment's page in headless Chromium: picking a
trait and one of its values with the keyboard, the count out of every live profile, track
events apart from pages; the size chart from the first publication with its entries and
exits, and the members table paged and searched without reloading the page.

Screenshots at 1280x900: /tmp/seg_builder.png (the builder with a suggestion list open) and
/tmp/seg_detail.png (a segment with 60 members), also kept in test-artifacts/screenshots/."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.utils import timezone
from playwright.sync_api import Page, ViewportSize, expect

from profiles.pipeline import queue
from segments import services
from segments.models import Membership, SegmentVersion
from tests.fixtures import Tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PEOPLE = 60
PLANS = ["pro", "pro", "pro", "free", "free", "trial"]  # 30 pro, 20 free, 10 trial
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}


def send(live_server: Any, write_key: str, events: list[dict[str, Any]]) -> None:
    for event in events:
        event.setdefault("messageId", f"msg-{uuid.uuid4()}")
    answer = requests.post(
        f"{live_server.url}/v1/batch", json={"batch": events}, auth=(write_key, ""), timeout=30
    )
    assert answer.status_code == 200, answer.text


@pytest.fixture
def people(live_server: Any, tenant_a: Tenant) -> None:
    """60 customers (one of them Ada Lovelace) on three plans, their orders in two
    currencies, and the pages and screens they viewed."""
    events: list[dict[str, Any]] = []
    for i in range(PEOPLE):
        name = "Ada Lovelace" if i == PEOPLE - 1 else f"Person {i:02d}"
        first, last = name.split(" ", 1)
        events.append(
            {
                "type": "identify",
                "userId": f"user-{i:02d}",
                "traits": {
                    "email": f"{first.lower()}.{last.lower()}@example.com",
                    "first_name": first,
                    "last_name": last,
                    "plan": PLANS[i % len(PLANS)],
                    "address": {"city": "Berlin" if i % 2 else "Lyon"},
                },
            }
        )
        if i % 3 == 0:
            events.append(
                {
                    "type": "track",
                    "userId": f"user-{i:02d}",
                    "event": "Order Completed",
                    "properties": {"revenue": 20 + i, "currency": "EUR" if i % 2 else "USD"},
                }
            )
        events.append({"type": "page", "userId": f"user-{i:02d}", "name": "Pricing"})
    events.append({"type": "screen", "userId": "user-00", "name": "Home"})
    send(live_server, tenant_a.write_key, events)
    queue.drain(batch_size=500)


def root_add(page: Page, what: str) -> None:
    page.locator("#rule-tree > .rule-group > .group-foot").locator(f".add-{what}").click()


def shoot(page: Page, screenshot: Any, path: str, name: str, full_page: bool = False) -> None:
    page.screenshot(path=path, full_page=full_page)
    screenshot(page, name)


def test_builder_suggests_names_and_values_by_keyboard(
    live_server: Any, page: Page, tenant_a: Tenant, people: None, login_as: Any, screenshot: Any
) -> None:
    page.set_viewport_size(VIEWPORT)
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/segments/new/")
    page.fill("#segment-name", "Pro plan")

    # a new trait condition: the list of traits opens, traits as sent apart from computed ones
    root_add(page, "trait")
    name = page.locator(".rule-cond[data-kind=trait] .cond-trait")
    expect(name).to_be_focused()
    listbox = page.locator(".suggest-list[role=listbox]")
    expect(listbox).to_be_visible()
    expect(name).to_have_attribute("role", "combobox")
    expect(name).to_have_attribute("aria-expanded", "true")
    expect(name).to_have_attribute("aria-controls", listbox.get_attribute("id") or "")
    expect(listbox.locator(".suggest-heading")).to_have_text(["Traits, as sent", "Computed traits"])
    plan = listbox.locator("[role=option][data-value=plan]")
    expect(plan.locator(".suggest-kind")).to_have_text("trait")
    expect(plan.locator(".suggest-label")).to_have_text("Plan")
    expect(plan.locator(".suggest-key")).to_have_text("plan")
    city = listbox.locator("[role=option][data-value='address.city']")
    expect(city.locator(".suggest-label")).to_have_text("Address › city")
    orders = listbox.locator("[role=option][data-value=order_count]")
    expect(orders.locator(".suggest-kind")).to_have_text("computed trait")
    expect(orders.locator(".suggest-label")).to_have_text("Orders")
    shoot(page, screenshot, "/tmp/seg_builder.png", "90-builder-suggestions")

    # Esc closes the list; typing opens it again, narrowed
    name.press("Escape")
    expect(listbox).to_have_count(0)
    expect(name).to_have_attribute("aria-expanded", "false")
    name.press_sequentially("pla")
    expect(listbox.locator("[role=option]").first).to_have_attribute("data-value", "plan")
    # ↓ makes the first option active (announced through aria-activedescendant), Enter picks
    name.press("ArrowDown")
    active = listbox.locator("[role=option].active")
    expect(active).to_have_attribute("data-value", "plan")
    expect(active).to_have_attribute("aria-selected", "true")
    expect(name).to_have_attribute("aria-activedescendant", active.get_attribute("id") or "")
    name.press("Enter")
    expect(name).to_have_value("plan")
    expect(listbox).to_have_count(0)

    # on to the value: the plans seen, most frequent first
    name.press("Tab")
    expect(page.locator(".rule-cond[data-kind=trait] .cond-op")).to_be_focused()
    page.keyboard.press("Tab")
    value = page.locator(".rule-cond[data-kind=trait] .cond-value")
    expect(value).to_be_focused()
    options = listbox.locator("[role=option]")
    expect(options).to_have_count(3)
    expect(listbox.locator(".suggest-heading")).to_have_text(["Values seen, most frequent first"])
    assert [o.get_attribute("data-value") for o in options.all()] == ["pro", "free", "trial"]
    expect(options.first.locator(".suggest-note")).to_have_text("30 profiles")
    value.press("ArrowDown")
    value.press("ArrowDown")
    value.press("ArrowUp")
    value.press("Enter")
    expect(value).to_have_value("pro")
    # the count, out of every live profile
    expect(page.locator("#preview-count")).to_have_text("30")
    expect(page.locator("#preview-line")).to_have_text("30 of 60 (50 %)")
    # the sample names people by name and email, not by device ids
    sample = page.locator("#preview-sample li").first
    expect(sample.locator("a")).to_have_text(re.compile(r"^(Person \d\d|Ada Lovelace)$"))
    expect(sample.locator(".sample-detail")).to_have_text(re.compile(r"@example\.com$"))

    # events: track events to pick from; pages and screens listed apart, not pickable
    root_add(page, "event")
    event = page.locator(".rule-cond[data-kind=event] .cond-event")
    expect(event).to_be_focused()
    expect(listbox.locator(".suggest-heading")).to_have_text(
        [
            "Track events",
            "Pages (event conditions count track events only)",
            "Screens (event conditions count track events only)",
        ]
    )
    expect(listbox).not_to_contain_text("null")
    pricing = listbox.locator("[role=option][data-value=Pricing]")
    expect(pricing).to_have_attribute("aria-disabled", "true")
    expect(pricing.locator(".suggest-kind")).to_have_text("page")
    order = listbox.locator("[role=option][data-value='Order Completed']")
    expect(order.locator(".suggest-kind")).to_have_text("event (track)")
    expect(order.locator(".suggest-note")).to_have_text("seen 20×")
    screenshot(page, "91-builder-event-suggestions")
    event.press("ArrowDown")
    event.press("ArrowDown")  # the pages cannot be chosen: back to the only track event
    expect(listbox.locator("[role=option].active")).to_have_attribute(
        "data-value", "Order Completed"
    )
    event.press("Enter")
    expect(event).to_have_value("Order Completed")
    # pro customers with an order: a third of them
    expect(page.locator("#preview-line")).to_have_text("10 of 60 (17 %)")

    # a property filter suggests the event's properties, then their values
    page.locator(".rule-cond[data-kind=event] .add-where").click()
    prop = page.locator(".where-property")
    expect(prop).to_be_focused()
    expect(listbox.locator("[role=option][data-value=currency] .suggest-kind")).to_have_text(
        "property"
    )
    prop.press_sequentially("curr")
    prop.press("ArrowDown")
    prop.press("Enter")
    expect(prop).to_have_value("currency")
    prop.press("Tab")
    page.keyboard.press("Tab")
    where_value = page.locator(".where-row .cond-value")
    expect(where_value).to_be_focused()
    expect(listbox.locator("[role=option]")).to_have_count(2)
    where_value.press("ArrowDown")
    where_value.press("Enter")
    expect(where_value).not_to_have_value("")
    expect(page.locator("#preview-line")).to_have_text(re.compile(r"^\d+ of 60 \(\d+ %\)$"))


def test_segment_page_with_sixty_members(
    live_server: Any, page: Page, tenant_a: Tenant, people: None, login_as: Any, screenshot: Any
) -> None:
    segment = services.segment_create(
        workspace=tenant_a.workspace,
        name="Customers",
        rule={"trait": "plan", "op": "exists"},
        publish=True,
    )
    # history: first published 9 days ago, the members entering over the days since, three of
    # them leaving for a while in between
    now = timezone.now()
    published = now - timedelta(days=9)
    SegmentVersion.objects.filter(segment=segment).update(published_at=published)
    members = list(Membership.objects.filter(segment=segment).order_by("profile_id"))
    for i, stay in enumerate(members):
        stay.entered_at = now - timedelta(days=i % 10, minutes=i)
        stay.save(update_fields=["entered_at"])
    for stay in members[:3]:
        Membership.objects.create(
            segment=segment,
            profile_id=stay.profile_id,
            version=1,
            entered_at=published + timedelta(hours=1),
            exited_at=now - timedelta(days=5),
        )
    page.set_viewport_size(VIEWPORT)
    login_as(tenant_a.users["owner"])
    page.goto(f"{live_server.url}/segments/{segment.pk}/")

    # the chart starts on the day of the first publication: no leading zeros
    points = page.locator("#size-svg circle.point")
    expect(points).to_have_count(10)
    first_day = published.date().isoformat()
    expect(points.first).to_have_attribute("data-date", first_day)
    assert int(points.first.get_attribute("data-size") or 0) > 0
    expect(points.last).to_have_attribute("data-size", str(PEOPLE))
    bars = page.locator("#size-bars .bar-pair")
    expect(bars).to_have_count(10)
    left = page.locator("#size-bars .bar-pair[data-exited='3']")
    expect(left).to_have_count(1)
    expect(left.locator("rect.bar.down title")).to_contain_text("3 left")
    expect(page.locator("#size-bars")).to_have_attribute("aria-label", re.compile("entered"))
    expect(page.locator("#size-summary")).to_contain_text("since it was published on")
    # hovering a day's bars tells its entries and exits
    day = bars.evaluate_all("pairs => pairs.findIndex((p) => p.dataset.exited === '3')")
    page.locator("#size-bars rect.hit").nth(day).hover()
    expect(page.locator("#size-bars-tip")).to_contain_text("−3 left")
    shot = screenshot(page, "93-segment-size-card")
    page.locator("#size-card").screenshot(path=str(shot.with_name("93b-size-card.png")))
    page.mouse.move(0, 0)
    expect(page.locator("#size-bars-tip")).to_be_hidden()
    # the same numbers as a table
    page.locator("#size-table summary").click()
    rows = page.locator("#size-table tbody tr")
    expect(rows).to_have_count(10)
    expect(rows.last).to_have_attribute("data-date", first_day)
    page.locator("#size-table summary").click()

    # the members table: 25 a page, paged and searched in place
    table = page.locator("#members-table tbody tr")
    expect(table).to_have_count(25)
    expect(page.locator("#members .pager")).to_contain_text("Page 1 of 3 · 1–25 of 60")
    first_row = table.first.get_attribute("data-profile")
    expect(table.first.locator(".member-detail")).to_have_text(re.compile(r"@example\.com$"))
    page.evaluate("document.getElementById('segment-name').value = 'Customers (edited)'")
    shoot(page, screenshot, "/tmp/seg_detail.png", "92-segment-page", full_page=True)
    page.locator("#members").screenshot(path=str(shot.with_name("93c-members-card.png")))
    page.locator("#members .pager a[rel=next]").click()
    expect(page.locator("#members .pager")).to_contain_text("Page 2 of 3 · 26–50 of 60")
    expect(table).to_have_count(25)
    assert table.first.get_attribute("data-profile") != first_row
    expect(page).to_have_url(re.compile(r"\?page=2$"))
    # the page was not reloaded: the unsaved name is still there
    expect(page.locator("#segment-name")).to_have_value("Customers (edited)")
    page.fill("#members-q", "lovelace")
    expect(table).to_have_count(1)
    expect(table.first.locator("a")).to_have_text("Ada Lovelace")
    expect(table.first.locator(".member-detail")).to_have_text("ada.lovelace@example.com")
    expect(page.locator("#members-matches")).to_have_text("1 member matches “lovelace”.")
    expect(page.locator("#members .pager")).to_have_count(0)
    page.fill("#members-q", "nobody-like-this")
    expect(page.locator("#members-no-match")).to_be_visible()
    page.fill("#members-q", "")
    expect(table).to_have_count(25)
    expect(page.locator("#members .pager")).to_contain_text("Page 1 of 3")

    # the export's columns: the default traits ticked, the link follows the choice
    export = page.locator("#export-csv")
    expect(export).to_have_attribute(
        "href", f"/api/v1/segments/{segment.pk}/export/?traits=email,first_name,last_name"
    )
    page.locator("#export-columns summary").click()
    page.locator("#export-traits input[value='address.city']").check()
    page.locator("#export-traits input[value='last_name']").uncheck()
    expect(page.locator("#export-count")).to_have_text("3")
    expect(export).to_have_attribute(
        "href", f"/api/v1/segments/{segment.pk}/export/?traits=address.city,email,first_name"
    )
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(
        path=str(shot.with_name("93d-export-columns.png")),
        clip={"x": 0, "y": 0, "width": 1280, "height": 480},
    )
    page.keyboard.press("Escape")
    expect(page.locator("#export-columns")).not_to_have_attribute("open", "")
    with page.expect_download() as download:
        export.click()
    with open(download.value.path(), encoding="utf-8") as f:
        header = f.readline().strip()
    assert header == "profile_id,user_id,entered_at,address.city,email,first_name"
