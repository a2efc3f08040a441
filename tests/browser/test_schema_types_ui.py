"""Values sent with mixed types, in headless Chromium against a live server: the schema page
lists each mixed path with its types' shares and links each type to an event that sent it
(the debugger opens on exactly that event); the segment builder says how a value is compared,
warns on a trait seen with mixed types, and counts a number sent as text as a number; nested
traits by their dotted path (address.city).

Events go through the real collector and are processed with the pipeline's queue, as a worker
would. Full-page screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import Page, expect

from tests.browser.test_csp import WATCH
from tests.fixtures import Tenant, send_events

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# the one event that sent age as text: the schema page's "text" pill links to it
AGE_AS_TEXT = "msg-age-as-text"


@pytest.fixture
def mixed_ages(tenant_a: Tenant) -> None:
    """Three profiles with an age (40, "40", 31), one with an address, and two orders whose
    revenue came as 60 and "60"."""
    send_events(
        Client(),
        tenant_a,
        {"type": "identify", "userId": "u-num", "traits": {"age": 40}},
        {"type": "identify", "userId": "u-text", "messageId": AGE_AS_TEXT, "traits": {"age": "40"}},
        {"type": "identify", "userId": "u-young", "traits": {"age": 31}},
        {"type": "identify", "userId": "u-berlin", "traits": {"address": {"city": "Berlin"}}},
        {
            "type": "track",
            "userId": "u-num",
            "event": "Order Completed",
            "properties": {"revenue": 60},
        },
        {
            "type": "track",
            "userId": "u-text",
            "event": "Order Completed",
            "properties": {"revenue": "60"},
        },
    )


def no_csp_violations(page: Page) -> None:
    assert page.evaluate("window.__csp") == []


def test_schema_shows_mixed_types_and_links_to_an_event_of_each(
    live_server: Any,
    page: Page,
    tenant_a: Tenant,
    mixed_ages: None,
    login_as: Any,
    screenshot: Any,
    console: Any,
) -> None:
    page.add_init_script(WATCH)
    login_as(tenant_a.users["analyst"])
    page.goto(f"{live_server.url}/schema/")

    mixed = page.locator("#schema-mixed")
    expect(mixed.locator("h2")).to_have_text("2 paths with mixed types")
    age = mixed.locator("tbody tr", has=page.locator("code", has_text=re.compile(r"^age$")))
    expect(age).to_have_count(1)
    expect(age).to_contain_text("Trait")
    expect(age.locator("svg.type-bar rect")).to_have_count(2)
    expect(age.locator("svg.type-bar")).to_have_attribute(
        "aria-label", "number 66.7 %, text 33.3 %"
    )
    pills = age.locator(".type-share")
    expect(pills).to_have_text(["number 66.7 %", "text 33.3 % (all numeric)"])
    expect(age.locator(".pill.warn")).to_have_text("mixed types")
    revenue = mixed.locator("tbody tr", has_text="revenue")
    expect(revenue).to_contain_text("Order Completed")
    expect(revenue.locator(".type-share")).to_have_count(2)

    # nested traits are listed by their dotted path under the identify calls
    identify = page.locator("tr.schema-event", has_text="all identify calls")
    expect(identify.locator(".pill.warn")).to_have_text("1 mixed")
    identify.click()
    traits = page.locator("tr.props-row", has_text="address.city")
    expect(traits).to_be_visible()
    city = traits.locator("tr", has=page.locator("code", has_text=re.compile(r"^address\.city$")))
    expect(city.locator(".type-share")).to_have_text(["text 100 %"])
    expect(city).to_contain_text('"Berlin"')
    no_csp_violations(page)
    shot = screenshot(page, "80-schema-mixed-types")
    mixed.screenshot(path=str(shot.with_name("80b-schema-mixed-card.png")))

    # the text pill opens the debugger on the one event that sent "40"
    text_link = age.locator(".type-share.t-string a")
    expect(text_link).to_have_attribute("title", "Open the newest event that sent text here")
    text_link.click()
    expect(page).to_have_url(
        f"{live_server.url}/debugger/?source={tenant_a.source.pk}&message_id={AGE_AS_TEXT}"
    )
    expect(page.locator("#filter-message")).to_have_value(AGE_AS_TEXT)
    expect(page.locator("#linked-filters")).to_be_visible()
    rows = page.locator("#event-list .event-row")
    expect(rows).to_have_count(1)
    expect(page.locator("#events-count")).to_have_text("1")
    expect(rows.locator(".event-who")).to_have_text("u-text")
    rows.locator(".event-head").click()
    payload = rows.locator("pre.payload")
    expect(payload).to_contain_text(f'"messageId": "{AGE_AS_TEXT}"')
    expect(payload).to_contain_text('"age": "40"')
    no_csp_violations(page)
    screenshot(page, "81-debugger-one-event")

    # clearing the filter shows every event of the source again
    page.fill("#filter-message", "")
    expect(rows).to_have_count(6)
    expect(page.locator("#linked-filters")).to_be_hidden()

    # back on the schema page: each segment of the bar has its type's colour, the one its
    # pill's swatch shows (the pills are the bar's legend)
    page.go_back()
    expect(pills).to_have_count(2)
    fills = age.locator("svg.type-bar rect").evaluate_all(
        "rects => rects.map((r) => getComputedStyle(r).fill)"
    )
    marks = pills.locator(".swatch").evaluate_all(
        "swatches => swatches.map((s) => getComputedStyle(s).backgroundColor)"
    )
    assert fills == marks and len(set(fills)) == 2, (fills, marks)


def test_builder_explains_comparisons_and_warns_on_mixed_types(
    live_server: Any,
    page: Page,
    tenant_a: Tenant,
    mixed_ages: None,
    login_as: Any,
    screenshot: Any,
    console: Any,
) -> None:
    page.add_init_script(WATCH)
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/segments/new/")
    expect(page.locator("#preview-meta")).to_contain_text("Add a condition")
    page.fill("#segment-name", "Over 35")

    # age ≥ 35: the profile that sent "40" counts like the one that sent 40; 31 does not
    page.locator("#rule-tree > .rule-group > .group-foot .add-trait").click()
    trait = page.locator(".rule-cond[data-kind=trait]")
    # the trait list suggests nested paths too, by their dotted path
    trait.locator(".cond-trait").focus()
    expect(page.locator("[role=option]", has_text="address.city").first).to_be_visible()
    expect(page.locator("[role=option]", has_text="age").first).to_be_visible()
    trait.locator(".cond-trait").fill("age")
    trait.locator(".cond-trait").press("Tab")
    trait.locator(".cond-op").select_option("gte")
    expect(trait.locator(".cond-op option:checked")).to_have_text("≥")
    trait.locator(".cond-value").fill("35")
    warning = trait.locator(".cond-warning")
    expect(warning).to_be_visible()
    expect(warning).to_have_attribute("role", "note")
    expect(warning).to_have_text(
        "age was sent as number 66.7 %, text 33.3 %. "
        "All of its text reads as numbers, so number comparisons include it."
    )
    expect(trait.locator(".cond-how")).to_have_text(
        'compared as a number; text such as "60" counts as 60'
    )
    count = page.locator("#preview-count")
    expect(count).to_have_text("2")
    sample = page.locator("#preview-sample a")
    expect(sample).to_have_count(2)
    assert sorted(sample.all_inner_texts()) == ["u-num", "u-text"]
    no_csp_violations(page)
    screenshot(page, "82-builder-mixed-type-warning")

    # a nested text trait: no warning, compared exactly as text
    trait.locator(".cond-trait").fill("address.city")
    trait.locator(".cond-trait").press("Tab")
    trait.locator(".cond-op").select_option("eq")
    trait.locator(".cond-value").fill("Berlin")
    expect(count).to_have_text("1")
    expect(warning).to_be_hidden()
    expect(trait.locator(".cond-how")).to_have_text(
        "compared as text, exactly (case and spaces count)"
    )
    page.locator("#json-panel summary").click()
    expect(page.locator("#rule-json")).to_contain_text('"trait": "address.city"')
    no_csp_violations(page)
    screenshot(page, "83-builder-nested-text-trait")
