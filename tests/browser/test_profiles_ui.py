"""The profile explorer in headless Chromium against a live server: search, the 360° page
(identities, identity graph, traits, computed traits, timeline), splitting a merge, identity
conflicts, and the identity rules form.

Events go through the real collector over HTTP and are processed with the pipeline's queue, as
a worker would. Full-page screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
from django.utils import timezone
from playwright.sync_api import Page, expect

from profiles.computed.services import (
    builtin_traits_refresh,
    computed_trait_create,
    computed_trait_refresh,
)
from profiles.models import Identity, IdentityRules, Profile, ProfileMerge
from profiles.pipeline import queue
from tests.fixtures import Tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PRODUCTS = [
    ("sku-1017", "Trail Running Shoes", 129.0),
    ("sku-2203", "Merino Base Layer", 79.5),
    ("sku-0440", "Headlamp 400lm", 39.9),
    ("sku-3120", "Ultralight Tent", 349.0),
]


def send(live_server: Any, write_key: str, events: list[dict[str, Any]]) -> None:
    for event in events:
        event.setdefault("messageId", f"msg-{uuid.uuid4()}")
    answer = requests.post(
        f"{live_server.url}/v1/batch", json={"batch": events}, auth=(write_key, ""), timeout=10
    )
    assert answer.status_code == 200, answer.text


def at(now: datetime, days: float, hour: int = 10) -> str:
    moment = (now - timedelta(days=days)).replace(hour=hour, minute=12, second=0, microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def ada_laptop(now: datetime) -> list[dict[str, Any]]:
    """Ada on her laptop: anonymous browsing, sign-up, shopping and three orders."""
    anon = "a1f3c2d0-laptop"
    events: list[dict[str, Any]] = [
        {
            "type": "page",
            "anonymousId": anon,
            "name": "Home",
            "timestamp": at(now, 58),
            "properties": {"path": "/", "referrer": "https://www.google.com/"},
        },
        {
            "type": "page",
            "anonymousId": anon,
            "name": "Trail running",
            "timestamp": at(now, 58, 11),
            "properties": {"path": "/c/trail-running"},
        },
        {
            "type": "identify",
            "anonymousId": anon,
            "userId": "u-ada-1815",
            "timestamp": at(now, 57),
            "traits": {
                "email": "Ada.Lovelace@Example.com",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "phone": "+44 20 7946 0958",
                "plan": "plus",
                "company": "Analytical Engines Ltd",
                "address": {"city": "London", "country": "GB"},
            },
        },
        {
            "type": "track",
            "userId": "u-ada-1815",
            "event": "Signed Up",
            "timestamp": at(now, 57),
            "properties": {"method": "email"},
        },
    ]
    day = 56.0
    for round_ in range(6):
        for sku, name, price in PRODUCTS:
            events.append(
                {
                    "type": "track",
                    "userId": "u-ada-1815",
                    "event": "Product Viewed",
                    "timestamp": at(now, day, 9 + round_ % 8),
                    "properties": {"product_id": sku, "name": name, "price": price},
                }
            )
            day -= 1.6
        if round_ in (1, 3, 5):
            sku, name, price = PRODUCTS[round_ % len(PRODUCTS)]
            events.append(
                {
                    "type": "track",
                    "userId": "u-ada-1815",
                    "event": "Product Added",
                    "timestamp": at(now, day + 0.5, 18),
                    "properties": {"product_id": sku, "price": price, "quantity": 1},
                }
            )
            events.append(
                {
                    "type": "track",
                    "userId": "u-ada-1815",
                    "event": "Order Completed",
                    "timestamp": at(now, day + 0.4, 19),
                    "properties": {
                        "order_id": f"ord-{4410 + round_}",
                        "revenue": price,
                        "currency": "EUR",
                        "products": [{"product_id": sku}],
                    },
                }
            )
    events.append(
        {
            "type": "group",
            "userId": "u-ada-1815",
            "groupId": "acct-analytical",
            "timestamp": at(now, 20),
            "traits": {"name": "Analytical Engines Ltd", "seats": 12},
        }
    )
    return events


def ada_phone(now: datetime) -> list[dict[str, Any]]:
    """Ada's phone, anonymous at first: a second profile until she signs in on it."""
    return [
        {
            "type": "screen",
            "anonymousId": "7d0e-ios-phone",
            "name": "Home",
            "timestamp": at(now, 9),
            "context": {"device": {"id": "dev-ios-8f2a", "model": "iPhone15,3"}},
        },
        {
            "type": "track",
            "anonymousId": "7d0e-ios-phone",
            "event": "Product Viewed",
            "timestamp": at(now, 9, 12),
            "properties": {"product_id": "sku-3120", "price": 349.0},
            "context": {"device": {"id": "dev-ios-8f2a"}},
        },
    ]


def ada_signs_in_on_phone(now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "type": "identify",
            "anonymousId": "7d0e-ios-phone",
            "userId": "u-ada-1815",
            "timestamp": at(now, 2),
            "messageId": "ios-login-5521",
            "context": {"device": {"id": "dev-ios-8f2a"}},
        },
        {
            "type": "track",
            "userId": "u-ada-1815",
            "anonymousId": "7d0e-ios-phone",
            "event": "Push Notification Opened",
            "timestamp": at(now, 1),
            "properties": {"campaign": "winter-sale"},
        },
    ]


def others(now: datetime) -> list[dict[str, Any]]:
    people = [
        ("u-ben-22", "ben.okafor@example.org", "Ben Okafor", 3),
        ("u-chloe-7", "chloe.martin@example.fr", "Chloé Martin", 12),
        ("u-dev-301", "devi.rao@example.in", "Devi Rao", 30),
    ]
    events: list[dict[str, Any]] = []
    for index, (user, email, name, days) in enumerate(people):
        events.append(
            {
                "type": "identify",
                "userId": user,
                "anonymousId": f"anon-{user}",
                "timestamp": at(now, days),
                "traits": {"email": email, "name": name},
            }
        )
        for n in range(index + 2):
            events.append(
                {
                    "type": "track",
                    "userId": user,
                    "event": "Order Completed",
                    "timestamp": at(now, days - 0.2 * n, 15),
                    "properties": {"revenue": 25 + 10 * n, "order_id": f"{user}-{n}"},
                }
            )
    events.append(
        {
            "type": "page",
            "anonymousId": "4c1b-visitor",
            "name": "Pricing",
            "timestamp": at(now, 0.5),
        }
    )
    return events


def shared_ipad(now: datetime) -> list[dict[str, Any]]:
    """Two family members on one iPad: the default limit (one user_id) refuses the merge."""
    return [
        {
            "type": "identify",
            "userId": "u-sam",
            "anonymousId": "family-ipad-01",
            "timestamp": at(now, 6),
            "traits": {"name": "Sam Keller", "email": "sam@keller.example"},
        },
        {
            "type": "identify",
            "userId": "u-kim",
            "anonymousId": "family-ipad-01",
            "timestamp": at(now, 4),
            "traits": {"name": "Kim Keller", "email": "kim@keller.example"},
            "messageId": "ipad-login-kim",
        },
    ]


@pytest.fixture
def world(live_server: Any, tenant_a: Tenant) -> dict[str, Any]:
    now = timezone.now()
    key = tenant_a.write_key
    send(live_server, key, ada_laptop(now))
    send(live_server, key, ada_phone(now) + others(now))
    queue.drain(batch_size=500)
    send(live_server, key, ada_signs_in_on_phone(now))
    queue.drain(batch_size=500)
    send(live_server, key, shared_ipad(now)[:1])
    queue.drain(batch_size=500)
    send(live_server, key, shared_ipad(now)[1:])
    queue.drain(batch_size=500)
    trait = computed_trait_create(
        workspace=tenant_a.workspace,
        actor=None,
        data={
            "key": "products_viewed_30d",
            "name": "Products viewed (30 days)",
            "aggregation": "count",
            "event": "Product Viewed",
            "window_days": 30,
        },
    )
    computed_trait_refresh(trait=trait)
    builtin_traits_refresh(workspace_id=tenant_a.workspace.pk)

    def owner(kind: str, value: str) -> Profile:
        return Identity.objects.get(workspace=tenant_a.workspace, type=kind, value=value).profile

    return {
        "ada": owner("user_id", "u-ada-1815"),
        "merge": ProfileMerge.objects.get(
            workspace=tenant_a.workspace, message_id="ios-login-5521"
        ),
        "sam": owner("user_id", "u-sam"),
        "kim": owner("user_id", "u-kim"),
    }


def test_search_and_the_360_page(
    live_server: Any,
    page: Page,
    tenant_a: Tenant,
    world: dict[str, Any],
    login_as: Any,
    screenshot: Any,
) -> None:
    ada = world["ada"]
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/profiles/")
    expect(page.locator(".sidebar nav a.active")).to_have_text("Profiles")
    rows = page.locator("#profiles-table tbody tr")
    expect(rows).to_have_count(7)  # Ada, Ben, Chloé, Devi, the visitor, Sam, Kim
    expect(page.locator("#profile-stats [data-stat=merged] .stat-value")).to_have_text("1")
    screenshot(page, "20-profiles-list")

    page.fill("#profile-search", "ada.lovelace@example.com")
    page.press("#profile-search", "Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Ada Lovelace")
    expect(rows.first.locator(".chip").first).to_contain_text("u-ada-1815")
    screenshot(page, "21-profiles-search")

    rows.first.locator("a").first.click()
    expect(page).to_have_url(f"{live_server.url}/profiles/{ada.pk}/")
    expect(page.locator("h1")).to_have_text("Ada Lovelace")
    headline = page.locator("#profile-headline")
    expect(headline.locator("[data-stat=orders] .stat-value")).to_have_text("3")
    identities = page.locator("#identities-table")
    for value in (
        "u-ada-1815",
        "ada.lovelace@example.com",
        "+442079460958",
        "a1f3c2d0-laptop",
        "7d0e-ios-phone",
        "dev-ios-8f2a",
    ):
        expect(identities).to_contain_text(value)
    expect(page.locator("#traits-table")).to_contain_text("Analytical Engines Ltd")
    expect(page.locator("#computed-table")).to_contain_text("Products viewed (30 days)")
    expect(page.locator("#computed-table")).to_contain_text("RFM segment")

    # the identity graph: one node per identifier, coloured by type, with a legend
    nodes = page.locator("#graph-svg g.node")
    expect(nodes).to_have_count(Identity.objects.filter(profile=ada).count())
    expect(page.locator("#graph-svg line.edge").first).to_be_attached()
    expect(page.locator("#graph-legend")).to_contain_text("email")
    email_node = page.locator("#graph-svg g.node[data-type=email]")
    expect(email_node.locator("title")).to_have_text("email:ada.lovelace@example.com")
    email_node.hover()
    expect(page.locator(".graph-tip")).to_contain_text("ada.lovelace@example.com")

    # the timeline: 25 events, then the rest on "Load more"
    timeline = page.locator("#timeline .event-row")
    expect(timeline).to_have_count(25)
    expect(page.locator("#timeline-status")).to_contain_text(f"of {ada.event_count}")
    assert ada.event_count > 25
    expect(timeline.first.locator(".event-name")).to_have_text("Push Notification Opened")
    expect(timeline.first.locator(".event-props")).to_contain_text("campaign: winter-sale")
    page.click("#timeline-more")
    expect(timeline).to_have_count(min(ada.event_count, 50))
    while page.locator("#timeline-more").is_visible():
        page.click("#timeline-more")
    expect(timeline).to_have_count(ada.event_count)
    expect(timeline.last.locator(".event-name")).to_have_text("Home")
    order = timeline.filter(has_text="Order Completed").first
    order.locator(".event-head").click()
    expect(order.locator("pre.payload")).to_contain_text('"currency": "EUR"')
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "22-profile-360")


def test_split_a_merge(
    live_server: Any,
    page: Page,
    tenant_a: Tenant,
    world: dict[str, Any],
    login_as: Any,
    screenshot: Any,
) -> None:
    ada, merge = world["ada"], world["merge"]
    login_as(tenant_a.users["admin"])
    page.goto(f"{live_server.url}/profiles/merges/")
    log = page.locator("#merges-log")
    expect(log).to_contain_text("ios-login-5521")
    expect(log).to_contain_text("Shared device id")  # the phone's device id came along
    screenshot(page, "23-merges-log")

    # the phone's old profile id leads to Ada, with a notice
    page.goto(f"{live_server.url}/profiles/{merge.loser_id}/")
    expect(page).to_have_url(f"{live_server.url}/profiles/{ada.pk}/")
    expect(page.locator(".msg.info")).to_contain_text(f"Profile #{merge.loser_id} was merged")

    row = page.locator(f"#merges-table tr[data-merge='{merge.pk}']")
    expect(row).to_contain_text("ios-login-5521")
    expect(row).to_contain_text("Active")
    messages: list[str] = []

    def accept(dialog: Any) -> None:
        messages.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    row.get_by_role("button", name="Split").click()
    expect(page.locator(".msg.success")).to_contain_text(
        f"Merge split: profile #{merge.loser_id} is separate again"
    )
    assert messages and "Split profile" in messages[0]
    # "4 Dec 2026, 22:03 UTC" in the reader's zone (cdp/present.py)
    split_at = r"\d{1,2} \w{3} \d{4}, \d\d:\d\d \S+"
    expect(row).to_contain_text(re.compile(rf"Split\s*{split_at} by admin@alpha"))
    expect(row.get_by_role("button", name="Split")).to_have_count(0)
    expect(page.locator("#identities-table")).not_to_contain_text("7d0e-ios-phone")
    expect(page.locator("#graph-svg a.node-link")).to_have_count(2)  # the phone's, now apart
    expect(page.locator("#timeline .event-row")).to_have_count(25)
    screenshot(page, "24-profile-after-split")

    assert Profile.objects.get(pk=merge.loser_id).merged_into_id is None
    page.goto(f"{live_server.url}/profiles/?q=7d0e-ios-phone")
    expect(page.locator("#profiles-table tbody tr")).to_have_count(1)
    page.goto(f"{live_server.url}/profiles/?q=u-ada-1815")
    expect(page.locator("#profiles-table tbody tr")).to_have_count(1)
    page.goto(f"{live_server.url}/profiles/{merge.loser_id}/")
    expect(page.locator("#identities-table")).to_contain_text("7d0e-ios-phone")
    expect(page.locator("#identities-table")).not_to_contain_text("u-ada-1815")


def test_shared_device_conflict(
    live_server: Any,
    page: Page,
    tenant_a: Tenant,
    world: dict[str, Any],
    login_as: Any,
    screenshot: Any,
) -> None:
    sam, kim = world["sam"], world["kim"]
    login_as(tenant_a.users["analyst"])
    page.goto(f"{live_server.url}/profiles/")
    page.click("#profile-stats a")  # the conflict count
    expect(page).to_have_url(f"{live_server.url}/profiles/conflicts/")
    table = page.locator("#conflicts-table")
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("anonymous_id:family-ipad-01")
    expect(table).to_contain_text("Limit exceeded")
    expect(table).to_contain_text("ipad-login-kim")
    screenshot(page, "25-conflicts")
    page.click("#conflict-filters >> text=Split apart")
    expect(page.locator("#conflicts-table")).to_have_count(0)
    expect(page.locator(".empty")).to_contain_text("No conflicts of this kind")
    page.click("#conflict-filters >> text=Limit exceeded")
    page.locator(f"#conflicts-table a[href='/profiles/{kim.pk}/']").click()

    expect(page.locator("h1")).to_have_text("Kim Keller")
    conflicts = page.locator("#profile-conflicts-table")
    expect(conflicts).to_contain_text("anonymous_id:family-ipad-01")
    expect(conflicts.locator(f"a[href='/profiles/{sam.pk}/']")).to_have_text("Sam Keller")
    # the shared iPad belongs to Sam: drawn dashed in Kim's graph, linking to Sam
    foreign = page.locator("#graph-svg a.node-link")
    expect(foreign).to_have_count(1)
    expect(foreign).to_have_attribute("href", f"/profiles/{sam.pk}/")
    expect(foreign.locator("title")).to_contain_text("anonymous_id:family-ipad-01")
    expect(page.locator("#graph-svg line.edge.cross")).to_have_count(1)
    expect(page.locator("#graph-legend")).to_contain_text("other profile")
    expect(page.locator("#timeline .event-row")).to_have_count(1)
    screenshot(page, "26-profile-with-conflict")
    foreign.locator("circle").last.click()
    expect(page).to_have_url(f"{live_server.url}/profiles/{sam.pk}/")


def test_identity_rules_form(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, screenshot: Any, console: Any
) -> None:
    login_as(tenant_a.users["admin"])
    page.goto(f"{live_server.url}/settings/")
    page.click("#identity-settings a")
    expect(page).to_have_url(f"{live_server.url}/settings/identity/")
    expect(page.locator(".sidebar nav a.active")).to_have_text("Settings")

    order = page.locator("#priority-list li")
    expect(order).to_have_count(5)
    expect(order.first).to_have_attribute("data-type", "user_id")
    page.get_by_role("button", name="Move email up").click()
    expect(order.first).to_have_attribute("data-type", "email")
    expect(page.locator("#priority-input")).to_have_value(
        "email,user_id,phone,device_id,anonymous_id"
    )
    page.get_by_role("button", name="Remove device_id").click()
    expect(order).to_have_count(4)
    page.fill("#limit-email", "0")
    page.fill("#limit-phone", "2")
    page.click("#strategy-add")
    page.locator(".strategy-row input").nth(0).fill("plan")
    page.locator(".strategy-row select").nth(0).select_option("oldest")
    page.locator(".strategy-row input").nth(1).fill("loyalty_points")
    page.locator(".strategy-row select").nth(1).select_option("sum")
    page.fill("#custom-traits", "loyalty_id")
    console.allow(r"status of 400 .*/settings/identity/")  # the form answers 400 when invalid
    page.click("#rules-save")

    expect(page.locator("#error-limit-email")).to_have_text("expected an integer ≥ 1")
    expect(page.locator("#limit-email")).to_have_class(re.compile(r"\binvalid\b"))
    expect(page.locator(".msg.error")).to_contain_text("Not saved")
    # what was typed is kept
    expect(page.locator("#priority-input")).to_have_value("email,user_id,phone,anonymous_id")
    expect(page.locator("#limit-phone")).to_have_value("2")
    expect(page.locator(".strategy-row input").nth(1)).to_have_value("loyalty_points")
    screenshot(page, "27-identity-rules-error")
    assert IdentityRules.objects.get(workspace=tenant_a.workspace).version == 1

    page.fill("#limit-email", "3")
    page.click("#rules-save")
    expect(page.locator(".msg.success")).to_contain_text("Identity rules saved (version 2)")
    rules = IdentityRules.objects.get(workspace=tenant_a.workspace)
    assert rules.priority == ["email", "user_id", "phone", "anonymous_id"]
    assert rules.limits == {"user_id": 1, "email": 3, "phone": 2}
    assert rules.trait_strategies == {"plan": "oldest", "loyalty_points": "sum"}
    assert rules.custom_identifier_traits == ["loyalty_id"]
    expect(page.locator("#limit-loyalty_id")).to_be_visible()
    screenshot(page, "28-identity-rules")

    login_as(tenant_a.users["analyst"])
    page.goto(f"{live_server.url}/settings/identity/")
    expect(page.locator(".msg.warn")).to_contain_text("only an owner or admin")
    expect(page.locator("#limit-email")).to_be_disabled()
    expect(page.locator("#rules-save")).to_have_count(0)


def test_empty_workspace(
    live_server: Any, page: Page, tenant_b: Tenant, login_as: Any, screenshot: Any
) -> None:
    login_as(tenant_b.users["owner"])
    page.goto(f"{live_server.url}/profiles/")
    expect(page.locator("#profiles-empty")).to_contain_text("No profiles yet")
    expect(page.locator("#profiles-empty")).to_contain_text("cdp_demo_data")
    screenshot(page, "29-profiles-empty")


def test_profile_segments_and_consent_history(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, screenshot: Any
) -> None:
    from consent.services import purposes_install_defaults
    from segments.services import segment_create

    purposes_install_defaults(workspace=tenant_a.workspace)
    vip = segment_create(
        workspace=tenant_a.workspace,
        name="Plus plan",
        rule={"trait": "plan", "op": "eq", "value": "plus"},
        publish=True,
    )
    now = timezone.now()
    browser_context = {"ip": "198.51.100.23", "userAgent": "Mozilla/5.0 (Macintosh) Safari/605"}
    send(
        live_server,
        tenant_a.write_key,
        [
            {
                "type": "identify",
                "userId": "u-grace",
                "traits": {"name": "Grace Hopper", "plan": "plus"},
                "timestamp": at(now, 30),
                "context": {
                    **browser_context,
                    "consent": {
                        "categoryPreferences": {
                            "analytics": True,
                            "marketing_email": True,
                            "advertising": False,
                        },
                        "policyVersion": "2026-09",
                    },
                },
            },
            {
                "type": "track",
                "userId": "u-grace",
                "event": "Segment Consent Preference Updated",
                "timestamp": at(now, 3),
                "context": {
                    **browser_context,
                    "consent": {
                        "categoryPreferences": {"marketing_email": False},
                        "policyVersion": "2026-11",
                    },
                },
            },
        ],
    )
    queue.drain(batch_size=500)
    grace = Identity.objects.get(workspace=tenant_a.workspace, value="u-grace").profile
    login_as(tenant_a.users["analyst"])
    page.goto(f"{live_server.url}/profiles/{grace.pk}/")
    expect(page.locator("#segments-table")).to_contain_text("Plus plan")
    consent = page.locator("#consent-table")
    expect(consent.locator("tr[data-purpose=analytics] .pill")).to_have_text("Yes")
    expect(consent.locator("tr[data-purpose=marketing_email] .pill")).to_have_text("No")
    expect(consent.locator("tr[data-purpose=marketing_email]")).to_contain_text("Denied")
    expect(consent.locator("tr[data-purpose=advertising] .pill")).to_have_text("No")
    history = page.locator("#consent-log-table")
    expect(history.locator("tbody tr")).to_have_count(4)
    expect(history.locator("tbody tr").first).to_contain_text("marketing_email")
    expect(history.locator("tbody tr").first).to_contain_text("2026-11")
    expect(history).to_contain_text("198.51.100.23")
    screenshot(page, "23-profile-consent")
    page.click("#segments-table a")
    expect(page).to_have_url(f"{live_server.url}/segments/{vip.pk}/")
    expect(page.locator("#size-svg")).to_be_visible()  # the segment page has loaded its sizes
    page.go_back()
    expect(page.locator("#record-consent")).to_have_count(0)  # analysts only read

    # a privacy officer records what Grace said on the phone
    login_as(tenant_a.users["privacy_officer"])
    page.goto(f"{live_server.url}/profiles/{grace.pk}/")
    page.click("#record-consent summary")
    page.select_option("#consent-purpose", "analytics")
    page.select_option("#consent-status", "withdrawn")
    page.fill("#consent-reference", "call 2026-11-30, ticket 88")
    page.click("#consent-record")
    expect(page.locator(".msg.success")).to_contain_text("Recorded: analytics withdrawn")
    expect(consent.locator("tr[data-purpose=analytics] .pill")).to_have_text("No")
    first = history.locator("tbody tr").first
    expect(first).to_contain_text("by privacy_officer@alpha")
    expect(first).to_contain_text("call 2026-11-30")
    screenshot(page, "24-profile-consent-recorded")
