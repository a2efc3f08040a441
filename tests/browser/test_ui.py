"""The web UI in headless Chromium against a live server: sign-in, sources and write keys, the
live event debugger (events, failed events, replay), the observed schema, settings, and what
other roles and other workspaces may not see.

Full-page screenshots of every page go to test-artifacts/screenshots/ for a human to look at."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import requests
from playwright.sync_api import BrowserContext, Page, expect

from profiles import services
from profiles.models import FailedEvent, Source
from profiles.pipeline import queue
from tests.fixtures import PASSWORD, Tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The debugger polls every 2 s; allow a few polls (a loaded CI machine is slow).
POLL_TIMEOUT_MS = 8_000


def send(live_server: Any, write_key: str, events: list[dict[str, Any]]) -> requests.Response:
    return requests.post(
        f"{live_server.url}/v1/batch",
        json={"batch": events},
        auth=(write_key, ""),
        timeout=10,
    )


def track(event: str | None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "track",
        "messageId": f"msg-{uuid.uuid4()}",
        "userId": "user-42",
        "properties": {"revenue": 42.5, "currency": "EUR", "coupon": None},
        **fields,
    }
    if event is not None:
        body["event"] = event
    return body


def test_login_wrong_then_right_password(
    live_server: Any, page: Page, tenant_a: Tenant, screenshot: Any
) -> None:
    page.goto(f"{live_server.url}/sources/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/sources/$"))
    screenshot(page, "01-login")

    page.fill("#id_username", "owner@alpha")
    page.fill("#id_password", "not-the-password")
    page.click("button[type=submit]")
    expect(page.locator(".msg.error")).to_contain_text("didn't match")
    expect(page.locator("#id_username")).to_have_value("owner@alpha")
    screenshot(page, "02-login-error")

    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{live_server.url}/sources/")
    expect(page.locator("h1")).to_have_text("Sources")
    expect(page.locator("#sources-table")).to_contain_text("Alpha app")
    expect(page.locator(".sidebar nav a.active")).to_have_text("Sources")
    screenshot(page, "03-sources")


def test_create_source_shows_key_and_snippets(
    live_server: Any,
    context: BrowserContext,
    page: Page,
    tenant_a: Tenant,
    login_as: Any,
    screenshot: Any,
) -> None:
    login_as(tenant_a.users["owner"])
    page.goto(f"{live_server.url}/sources/")
    page.fill("#src-name", "Checkout backend")
    page.select_option("#src-kind", "node")
    page.click("text=Create source")

    source = Source.objects.get(workspace=tenant_a.workspace, name="Checkout backend")
    expect(page).to_have_url(f"{live_server.url}/sources/{source.pk}/")
    expect(page.locator("h1")).to_contain_text("Checkout backend")
    expect(page.locator(".msg.success")).to_contain_text("created")
    key = source.write_keys.get().key
    expect(page.locator("#keys-table code.key")).to_have_text(key)

    python = page.locator("[data-panel=py-segment]")
    expect(python).to_be_visible()
    expect(python).to_contain_text(f'analytics.write_key = "{key}"')
    expect(python).to_contain_text(f'analytics.host = "{live_server.url}"')
    screenshot(page, "04-source-detail")

    page.click(".tab[data-tab=curl]")
    curl = page.locator("[data-panel=curl]")
    expect(curl).to_be_visible()
    expect(python).to_be_hidden()
    expect(curl).to_contain_text(f"curl -u '{key}:'")
    expect(curl).to_contain_text(f"{live_server.url}/v1/track")
    expect(page.locator(".tab[data-tab=curl]")).to_have_class(re.compile(r"\bactive\b"))

    # Copy buttons put the exact text on the clipboard.
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    copy = page.locator("[data-panel=curl] button.copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()").startswith(f"curl -u '{key}:'")
    key_copy = page.locator("#keys-table button.copy")
    key_copy.click()
    expect(key_copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == key

    # The snippet really works: the collector accepts what it shows.
    assert send(live_server, key, [track("Order Completed")]).status_code == 200

    # Back on the list, the new source is there with its key.
    page.click(".crumbs a")
    expect(page.locator("#sources-table")).to_contain_text("Checkout backend")
    expect(page.locator("#sources-table")).to_contain_text(key)


def test_debugger_shows_new_events_live_and_their_payload(
    live_server: Any,
    context: BrowserContext,
    page: Page,
    tenant_a: Tenant,
    login_as: Any,
    screenshot: Any,
    console: Any,
) -> None:
    login_as(tenant_a.users["owner"])
    page.goto(f"{live_server.url}/debugger/?source={tenant_a.source.pk}")
    expect(page.locator("#events-empty")).to_be_visible()
    page.evaluate("window.__sameDocument = true")

    order = track("Order Completed", context={"page": {"path": "/checkout"}})
    identify = {
        "type": "identify",
        "messageId": f"msg-{uuid.uuid4()}",
        "anonymousId": "anon-7",
        "traits": {"email": "ada@example.com", "plan": "pro"},
    }
    assert send(live_server, tenant_a.write_key, [identify, order]).status_code == 200

    rows = page.locator("#event-list .event-row")
    expect(rows).to_have_count(2, timeout=POLL_TIMEOUT_MS)
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
    expect(page.locator("#events-empty")).to_be_hidden()
    expect(page.locator("#events-count")).to_have_text("2")
    # newest first: the batch's second event is on top
    expect(rows.first.locator(".event-name")).to_have_text("Order Completed")
    order_row = rows.filter(has_text="Order Completed")
    expect(order_row.locator(".event-who")).to_have_text("user-42")
    # identify rows summarise the trait names (in whatever order the store keeps them)
    expect(rows.nth(1).locator(".event-name")).to_have_text(
        re.compile(r"^(email, plan|plan, email)$")
    )

    order_row.locator(".event-head").click()
    payload = order_row.locator("pre.payload")
    expect(payload).to_be_visible()
    expect(payload).to_contain_text(f'"messageId": "{order["messageId"]}"')
    expect(payload).to_contain_text('"revenue": 42.5')
    rows.nth(1).locator(".event-head").click()
    expect(rows.nth(1).locator("pre.payload")).to_contain_text('"email": "ada@example.com"')
    screenshot(page, "05-debugger-events")

    # Another poll must neither duplicate rows nor collapse the open ones.
    later = track("Checkout Started")
    assert send(live_server, tenant_a.write_key, [later]).status_code == 200
    expect(rows).to_have_count(3, timeout=POLL_TIMEOUT_MS)
    expect(rows.first.locator(".event-name")).to_have_text("Checkout Started")
    expect(payload).to_be_visible()

    # Filters narrow the list to matching events, and say so when nothing matches.
    page.select_option("#filter-event", "Checkout Started")  # names seen so far are offered
    expect(rows).to_have_count(1)
    page.select_option("#filter-type", "identify")
    expect(rows).to_have_count(0)
    expect(page.locator("#events-empty")).to_have_text("No events match these filters.")

    # A lost session is reported instead of the list silently going stale.
    console.allow(r"status of 40[13] .*/api/v1/")
    context.clear_cookies()
    expect(page.locator("#poll-error")).to_contain_text("session", timeout=POLL_TIMEOUT_MS)
    expect(page.locator("#live-toggle .dot")).to_have_class(re.compile(r"\berror\b"))


def test_failed_event_replayed_after_fixing_the_cause(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, screenshot: Any, console: Any
) -> None:
    source = tenant_a.source
    services.source_update(source=source, max_event_bytes=400)
    good = track("Order Completed")
    big = track("Order Completed", properties={"notes": "x" * 600})
    nameless = track(None)
    answer = send(live_server, tenant_a.write_key, [good, big, nameless])
    assert answer.status_code == 200, answer.text
    assert FailedEvent.objects.filter(source=source).count() == 2

    login_as(tenant_a.users["owner"])
    page.goto(f"{live_server.url}/debugger/?source={source.pk}")
    expect(page.locator("#failed-count")).to_have_text("2")
    page.click(".tab[data-view=failed]")
    expect(page.locator("#events-panel")).to_be_hidden()
    expect(page.locator("#filters")).to_be_hidden()  # they only apply to stored events
    failed = page.locator("#failed-list .event-row")
    expect(failed).to_have_count(2)
    too_big = failed.filter(has_text="event_too_large")
    expect(too_big).to_contain_text("at most 400 bytes")
    expect(failed.filter(has_text="missing_field")).to_contain_text("needs an event name")

    too_big.locator(".event-head").click()
    expect(too_big.locator("pre.payload")).to_contain_text(big["messageId"])
    replay = too_big.locator("button.replay")
    expect(replay).to_be_visible()
    screenshot(page, "06-debugger-failed")

    # Replaying before the cause is fixed fails, and says why.
    console.allow(r"status of 400 .*/api/v1/failed-events/\d+/replay/")
    replay.click()
    expect(too_big.locator(".msg.error")).to_contain_text("at most 400 bytes")
    expect(replay).to_be_enabled()

    services.source_update(source=source, max_event_bytes=64 * 1024)
    replay.click()
    expect(too_big.locator(".status")).to_have_text("Replayed")
    expect(too_big.locator("button.replay")).to_have_count(0)
    expect(page.locator("#failed-count")).to_have_text("1")
    screenshot(page, "07-debugger-replayed")

    page.click(".tab[data-view=events]")
    event_rows = page.locator("#event-list .event-row")
    expect(event_rows).to_have_count(2)
    event_rows.first.locator(".event-head").click()
    expect(event_rows.first.locator("pre.payload")).to_contain_text(big["messageId"])


def test_schema_lists_processed_events_and_their_properties(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, screenshot: Any
) -> None:
    events = [
        track("Order Completed", properties={"revenue": 42.5, "currency": "EUR"}),
        track("Order Completed", properties={"revenue": "12", "items": [1, 2]}),
        {
            "type": "identify",
            "userId": "user-42",
            "traits": {"email": "ada@example.com", "address": {"city": "Berlin"}},
        },
        {"type": "page", "anonymousId": "anon-1", "name": "Pricing", "properties": {"path": "/p"}},
    ]
    assert send(live_server, tenant_a.write_key, events).status_code == 200
    processed, more = queue.drain()
    assert (processed, more) == (4, False)

    login_as(tenant_a.users["analyst"])
    page.goto(f"{live_server.url}/schema/")
    order = page.locator("tr.schema-event", has_text="Order Completed")
    expect(order).to_be_visible()
    expect(order.locator("td.num")).to_have_text("2")
    expect(page.locator("tr.schema-event", has_text="Pricing")).to_be_visible()

    order.click()
    props = page.locator("tr.props-row").filter(has_text="revenue")
    expect(props).to_be_visible()
    revenue = props.locator("tr", has=page.locator("code", has_text=re.compile("^revenue$")))
    # JSON types in words: a string is text, an array a list; each with its share
    expect(revenue).to_contain_text("number 50 %")
    expect(revenue).to_contain_text("text 50 % (all numeric)")
    expect(revenue).to_contain_text("mixed types")
    expect(props.locator("tr", has_text="items")).to_contain_text("list 100 %")
    expect(props).to_contain_text("currency")

    identify = page.locator("tr.schema-event", has_text="identify")
    identify.click()
    traits = page.locator("tr.props-row").filter(has_text="address.city")
    expect(traits).to_be_visible()
    expect(traits).to_contain_text("email")
    screenshot(page, "08-schema-expanded")

    order.click()
    expect(props).to_be_hidden()


def test_analyst_sees_debugger_but_cannot_replay_or_create_sources(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, console: Any
) -> None:
    # A batch with nothing usable is answered 400, but the event is kept for replay.
    assert send(live_server, tenant_a.write_key, [track(None)]).status_code == 400
    failed = FailedEvent.objects.get(source=tenant_a.source)

    login_as(tenant_a.users["analyst"])
    page.goto(f"{live_server.url}/sources/")
    expect(page.locator("#sources-table")).to_contain_text("Alpha app")
    expect(page.locator("#src-name")).to_have_count(0)
    expect(page.get_by_text("New source")).to_have_count(0)

    page.goto(f"{live_server.url}/sources/{tenant_a.source.pk}/")
    expect(page.locator("h1")).to_contain_text("Alpha app")
    expect(page.get_by_role("button", name="Issue new key")).to_have_count(0)
    expect(page.get_by_role("button", name="Revoke")).to_have_count(0)
    expect(page.get_by_role("button", name="Disable")).to_have_count(0)

    page.goto(f"{live_server.url}/debugger/?source={tenant_a.source.pk}")
    page.click(".tab[data-view=failed]")
    row = page.locator("#failed-list .event-row")
    expect(row).to_have_count(1)
    row.locator(".event-head").click()
    expect(row.locator("pre.payload")).to_be_visible()
    expect(row.locator("button.replay")).to_have_count(0)
    expect(row).to_contain_text("An admin of this workspace can replay")

    # Forged requests are refused too, not just hidden.
    csrf = page.locator("[name=csrfmiddlewaretoken]").first.get_attribute("value")
    headers = {"X-CSRFToken": csrf or "", "Referer": live_server.url + "/"}
    created = page.request.post(
        f"{live_server.url}/sources/new/",
        form={"name": "Sneaky", "kind": "http"},
        headers=headers,
        max_redirects=0,
    )
    assert created.status == 403
    assert not Source.objects.filter(name="Sneaky").exists()
    replayed = page.request.post(
        f"{live_server.url}/api/v1/failed-events/{failed.pk}/replay/", headers=headers
    )
    assert replayed.status == 403
    assert replayed.json()["error"]["code"]


def test_other_workspace_sees_nothing_of_workspace_a(
    live_server: Any,
    page: Page,
    tenant_a: Tenant,
    tenant_b: Tenant,
    login_as: Any,
    console: Any,
    screenshot: Any,
) -> None:
    secret = track("Alpha Secret Event", userId="alpha-user")
    answer = send(live_server, tenant_a.write_key, [secret, track(None)])
    assert answer.status_code == 200, answer.text

    login_as(tenant_b.users["owner"])
    page.goto(f"{live_server.url}/sources/")
    expect(page.locator("#sources-table")).to_contain_text("Bravo app")
    expect(page.locator("body")).not_to_contain_text("Alpha")
    expect(page.locator("#ws-select option")).to_have_count(1)

    console.allow(r"Failed to load resource: the server responded with a status of 40[34]")
    response = page.goto(f"{live_server.url}/sources/{tenant_a.source.pk}/")
    assert response is not None and response.status in (403, 404)
    expect(page.locator("body")).not_to_contain_text(tenant_a.write_key)
    expect(page.locator("h1")).to_have_text(re.compile("Not found|Not allowed"))
    expect(page.locator(".sidebar")).to_contain_text("Bravo")
    screenshot(page, "11-other-workspace-404")

    response = page.goto(f"{live_server.url}/debugger/?source={tenant_a.source.pk}")
    assert response is not None and response.status == 404
    expect(page.locator("body")).not_to_contain_text("Alpha Secret Event")

    with page.expect_response(re.compile(r"/api/v1/events/\?")) as events_call:
        page.goto(f"{live_server.url}/debugger/")
    assert events_call.value.ok
    expect(page.locator("#events-empty")).to_be_visible()
    expect(page.locator("#dbg-source")).not_to_contain_text("Alpha")
    expect(page.locator("#debugger")).not_to_contain_text("Alpha Secret Event")
    expect(page.locator("#failed-count")).to_have_text("0")

    api = page.request.get(f"{live_server.url}/api/v1/events/?source={tenant_a.source.pk}")
    assert api.ok and api.json()["results"] == []
    api = page.request.get(f"{live_server.url}/api/v1/failed-events/?source={tenant_a.source.pk}")
    assert api.ok and api.json()["results"] == []


def test_rotate_and_revoke_write_key(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, screenshot: Any
) -> None:
    old_key = tenant_a.write_key
    login_as(tenant_a.users["owner"])
    page.goto(f"{live_server.url}/sources/{tenant_a.source.pk}/")
    expect(page.locator("#keys-table code.key")).to_have_text([old_key])

    page.click("text=Issue new key")
    expect(page.locator(".msg.success")).to_have_text("New write key issued.")
    keys = page.locator("#keys-table code.key")
    expect(keys).to_have_count(2)
    new_key = tenant_a.source.write_keys.exclude(key=old_key).get().key
    expect(keys).to_have_text([new_key, old_key])
    # The snippets now show the newest key.
    expect(page.locator("[data-panel=py-segment]")).to_contain_text(new_key)
    assert send(live_server, old_key, [track("Still Works")]).status_code == 200
    assert send(live_server, new_key, [track("Also Works")]).status_code == 200

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#keys-table tr", has_text=old_key).get_by_role("button", name="Revoke").click()
    expect(page.locator(".msg.success")).to_contain_text("revoked")
    expect(page.locator("#keys-table tr.revoked")).to_contain_text(old_key)
    expect(page.locator("#keys-table code.key")).to_have_text([new_key])
    screenshot(page, "09-source-rotated")

    assert send(live_server, old_key, [track("Too Late")]).status_code == 401
    assert send(live_server, new_key, [track("Fine")]).status_code == 200


def test_settings_create_and_revoke_token(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, screenshot: Any
) -> None:
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/settings/")
    expect(page.locator("h1")).to_have_text("Settings")
    expect(page.locator(".page-head")).to_contain_text("marketer")
    page.fill("input[name=name]", "CI export")
    page.click("text=Create token")
    expect(page.locator(".msg.success")).to_contain_text("Token created")
    row = page.locator("#tokens-table tbody tr", has_text="CI export")
    expect(row).to_have_count(1)
    screenshot(page, "10-settings")

    # shown once, in the message; only its prefix stays in the list and the database
    key = page.locator("#new-token").inner_text()
    expect(row).to_contain_text(key[:10])
    expect(row).not_to_contain_text(key)
    api = requests.get(
        f"{live_server.url}/api/v1/events/",
        headers={"Authorization": f"Token {key}"},
        timeout=10,
    )
    assert api.status_code == 200

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(row.locator(".pill.off")).to_have_text("Revoked")


def test_website_snippets_and_allowed_origins(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, screenshot: Any
) -> None:
    login_as(tenant_a.users["owner"])
    page.goto(f"{live_server.url}/sources/{tenant_a.source.pk}/")
    website = page.locator("#website")
    drop_in = website.locator("[data-panel=web-segment]")
    expect(drop_in).to_contain_text(f"writeKey: '{tenant_a.write_key}'")
    expect(drop_in).to_contain_text(f"cdnURL: '{live_server.url}'")
    page.click(".tab[data-tab=web-rudder-explicit]")
    rudder = website.locator("[data-panel=web-rudder-explicit]")
    expect(rudder).to_be_visible()
    expect(rudder).to_contain_text(f"configUrl: '{live_server.url}'")
    expect(drop_in).to_be_hidden()
    # the website tabs leave the server SDKs' snippets alone
    expect(page.locator("[data-panel=py-segment]")).to_be_visible()
    page.click(".tab[data-tab=web-segment-explicit]")
    host = live_server.url.split("://", 1)[1]
    expect(website.locator("[data-panel=web-segment-explicit]")).to_contain_text(
        f"apiHost: '{host}/v1'"
    )
    expect(page.locator("#origins-any")).to_be_visible()

    page.fill("#origins-text", "https://Shop.Example.com/\nshop.example.org")
    page.click("#origins-form button")
    expect(page.locator(".msg.error")).to_contain_text(
        "line 2: 'shop.example.org' is not an origin"
    )
    page.fill("#origins-text", "https://Shop.Example.com/\nhttps://*.example.org")
    page.click("#origins-form button")
    expect(page.locator(".msg.success")).to_contain_text("Allowed origins saved")
    expect(page.locator("#origins-list")).to_contain_text("https://shop.example.com")
    expect(page.locator("#origins-list")).to_contain_text("https://*.example.org")
    expect(page.locator("#origins-text")).to_have_value(
        "https://shop.example.com\nhttps://*.example.org"
    )
    tenant_a.source.refresh_from_db()
    assert tenant_a.source.allowed_origins == ["https://shop.example.com", "https://*.example.org"]
    screenshot(page, "12-source-website")
    page.click(".crumbs a")
    expect(page.locator("#sources-table [data-origins]")).to_contain_text("https://*.example.org")


def test_dead_letter_chart_alert_and_quota(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, screenshot: Any
) -> None:
    from datetime import UTC, datetime, timedelta

    from profiles.collector import keys
    from profiles.models import DeadLetterDay

    today = datetime.now(UTC).date()
    for days_ago, kept, not_kept in ((12, 40, 0), (9, 310, 0), (5, 120, 0), (2, 75, 0)):
        DeadLetterDay.objects.create(
            workspace=tenant_a.workspace,
            source=tenant_a.source,
            day=today - timedelta(days=days_ago),
            kept=kept,
            not_kept=not_kept,
        )
    services.source_update(source=tenant_a.source, dead_letter_quota=200)
    keys.forget_all()
    # today: a broken app sends events without identifiers, past the quota
    for _ in range(3):
        answer = send(live_server, tenant_a.write_key, [track("Broken", userId=None)] * 100)
        assert answer.status_code == 400
    login_as(tenant_a.users["owner"])
    page.goto(f"{live_server.url}/sources/")
    alert = page.locator("[data-dead-letter-alert]")
    expect(alert).to_have_text("Dead-letter quota reached")
    alert.click()
    expect(page.locator("#dead-letter-alert")).to_contain_text(
        "200 invalid events kept for replay, 100 more counted but not kept"
    )
    chart = page.locator("#dead-letters .dl-chart svg")
    expect(chart.locator(".dl-day")).to_have_count(14)
    expect(chart.locator("rect.dl-kept")).to_have_count(5)
    expect(chart.locator("rect.dl-over")).to_have_count(1)
    expect(page.locator("#dead-letters-today")).to_contain_text("200 kept of a quota of 200")
    screenshot(page, "13-source-dead-letters")

    page.fill("#dl-quota", "5000")
    page.click("#dead-letter-quota-form button")
    expect(page.locator(".msg.success")).to_contain_text("Dead-letter quota set to 5,000 a day.")
    expect(page.locator("#dead-letters-today")).to_contain_text("of a quota of 5,000")
