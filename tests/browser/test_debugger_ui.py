"""The event debugger in headless Chromium against a live server: it opens on the source that
received events last, pages past the first 100 rows (scrolling, then "Load more"), shows when
each event happened and when it arrived, filters by event name and user with the filters kept
in the URL, and keeps showing new events live. Also: the privacy audit log fits a 1280 px
window, its details readable and the raw JSON a click away.

Screenshots at 1280x900: /tmp/debugger.png, /tmp/audit.png (and test-artifacts/screenshots)."""

from __future__ import annotations

import re
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, ViewportSize, expect

from cdp.models import AuditLog
from profiles.models import Source, WriteKey
from profiles.pipeline import queue
from tests.fixtures import Tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

POLL_TIMEOUT_MS = 8_000
WIDE: ViewportSize = {"width": 1280, "height": 900}
NAMES = ["Product Viewed", "Order Completed", "Signed Up"]


def send(live_server: Any, write_key: str, events: list[dict[str, Any]]) -> None:
    for event in events:
        event.setdefault("messageId", f"msg-{uuid.uuid4()}")
    answer = requests.post(
        f"{live_server.url}/v1/batch", json={"batch": events}, auth=(write_key, ""), timeout=30
    )
    assert answer.status_code == 200, answer.text


def demo_events(n: int) -> list[dict[str, Any]]:
    """A backfill: events that happened days before they are sent."""
    start = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    events: list[dict[str, Any]] = []
    for i in range(n):
        when = (start + timedelta(minutes=37 * i)).isoformat().replace("+00:00", "Z")
        if i % 10 == 9:
            events.append({"type": "page", "name": "Pricing", "anonymousId": f"anon-{i % 4}",
                           "timestamp": when})  # fmt: skip
        else:
            events.append({"type": "track", "event": NAMES[i % 3], "userId": f"u-{i % 5}",
                           "timestamp": when, "properties": {"n": i}})  # fmt: skip
    return events


@pytest.fixture
def demo_source(live_server: Any, tenant_a: Tenant) -> tuple[Source, str]:
    source = Source.objects.create(workspace=tenant_a.workspace, name="Demo data", kind="http")
    key = WriteKey.objects.create(source=source, key="WK_demo_browser").key
    send(live_server, key, demo_events(260))
    queue.drain(batch_size=500)  # the observed schema: the event names the filter offers
    return source, key


def row_ids(page: Page) -> list[int]:
    ids = page.locator("#event-list .event-row").evaluate_all(
        "rows => rows.map((r) => Number(r.dataset.id))"
    )
    return [int(i) for i in ids]


def test_debugger_opens_on_the_active_source_pages_filters_and_stays_live(
    live_server: Any,
    page: Page,
    tenant_a: Tenant,
    demo_source: tuple[Source, str],
    login_as: Any,
    screenshot: Any,
) -> None:
    source, key = demo_source
    page.set_viewport_size(WIDE)
    login_as(tenant_a.users["owner"])
    page.goto(f"{live_server.url}/debugger/")

    # the demo source, not the empty one created first
    expect(page.locator("#dbg-source")).to_have_value(str(source.pk))
    expect(page.locator("#dbg-source option:checked")).to_contain_text("last event")
    rows = page.locator("#event-list .event-row")
    expect(rows).to_have_count(100)
    expect(page.locator("#events-shown")).to_have_text("100 of 260 events shown.")

    # both moments: the event's own time (a backfill, long ago) and when it arrived
    first = rows.first
    event_at = first.locator("time.event-at")
    received_at = first.locator("time.received-at")
    expect(event_at).to_have_attribute("datetime", re.compile(r"^2025-03-0[1-9]T"))
    expect(received_at).to_have_attribute("datetime", re.compile(r"^20\d\d-"))
    assert event_at.inner_text() != received_at.inner_text()
    expect(page.locator("#event-columns")).to_contain_text("Event time")
    expect(page.locator("#event-columns")).to_contain_text("Received")
    page.screenshot(path="/tmp/debugger.png")
    screenshot(page, "90-debugger-demo-source")

    # scrolling to the end of the list loads the next page...
    page.locator("#load-more-bar").scroll_into_view_if_needed()
    expect(rows).to_have_count(200)
    # ...and the button does the same without scrolling
    page.evaluate("window.scrollTo(0, 0)")
    button = page.get_by_role("button", name="Load more")
    button.click()
    expect(rows).to_have_count(260)
    expect(page.locator("#events-shown")).to_have_text("All 260 events shown.")
    expect(button).to_be_hidden()
    ids = row_ids(page)
    assert ids == sorted(set(ids), reverse=True), "a row repeated or out of order"

    # filter by event name: a select of the observed names, kept in the URL
    options = page.locator("#filter-event option[data-param=event]").all_inner_texts()
    assert sorted(options) == sorted(NAMES)
    page.select_option("#filter-event", label="Signed Up")
    expect(page).to_have_url(re.compile(r"[?&]event=Signed\+Up"))
    expect(rows.first.locator(".event-name")).to_have_text("Signed Up")
    names = set(page.locator("#event-list .event-name").all_inner_texts())
    assert names == {"Signed Up"}
    expect(page.locator("#events-count")).to_have_text("78")

    # and by user (a userId or an anonymousId)
    page.fill("#filter-user", "u-3")
    expect(page).to_have_url(re.compile(r"[?&]user=u-3"))
    expect(rows).to_have_count(17)
    assert set(page.locator("#event-list .event-who").all_inner_texts()) == {"u-3"}

    # the URL alone restores the filters (a reload, a shared link)
    url = page.url
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query == {"source": [str(source.pk)], "user": ["u-3"], "event": ["Signed Up"]}
    page.goto(url)
    expect(page.locator("#filter-user")).to_have_value("u-3")
    expect(page.locator("#filter-event option:checked")).to_have_text("Signed Up")
    expect(rows).to_have_count(17)

    # a page name filters page events; an anonymousId is a user too
    page.fill("#filter-user", "anon-1")
    page.select_option("#filter-event", label="Pricing")
    expect(page).to_have_url(re.compile(r"[?&]name=Pricing"))
    expect(rows.first.locator(".event-name")).to_have_text("Pricing")
    assert set(page.locator("#event-list .event-who").all_inner_texts()) == {"anon-1"}

    # live: a new matching event appears on top, others do not
    page.fill("#filter-user", "u-3")
    page.select_option("#filter-event", label="Signed Up")
    expect(rows).to_have_count(17)
    send(
        live_server,
        key,
        [
            {"type": "track", "event": "Signed Up", "userId": "u-3", "properties": {"live": 1}},
            {"type": "track", "event": "Signed Up", "userId": "u-4"},
        ],
    )
    expect(rows).to_have_count(18, timeout=POLL_TIMEOUT_MS)
    expect(rows.first).to_have_class(re.compile(r"\bnew\b"))
    rows.first.locator(".event-head").click()
    expect(rows.first.locator("pre.payload")).to_contain_text('"live": 1')

    # clearing the filters shows everything again
    page.click("#filters-clear")
    expect(page).to_have_url(f"{live_server.url}/debugger/?source={source.pk}")
    expect(rows).to_have_count(100)
    expect(page.locator("#events-shown")).to_have_text("100 of 262 events shown.")


def test_live_mode_fills_a_burst_larger_than_a_page(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any
) -> None:
    login_as(tenant_a.users["owner"])
    send(live_server, tenant_a.write_key, [{"type": "track", "event": "First", "userId": "u"}])
    page.goto(f"{live_server.url}/debugger/")
    rows = page.locator("#event-list .event-row")
    expect(rows).to_have_count(1)
    burst = [{"type": "track", "event": f"Burst {i}", "userId": "u"} for i in range(150)]
    send(live_server, tenant_a.write_key, burst)
    # one poll shows the newest 100, and a marker offers the ones between
    gap = page.locator("#event-list .gap")
    expect(gap).to_be_visible(timeout=POLL_TIMEOUT_MS)
    expect(rows).to_have_count(101)
    gap.get_by_role("button").click()
    expect(gap).to_have_count(0)
    expect(rows).to_have_count(151)
    ids = row_ids(page)
    assert ids == sorted(set(ids), reverse=True)
    expect(rows.last.locator(".event-name")).to_have_text("First")


def test_audit_log_fits_1280_px_with_readable_details(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, screenshot: Any
) -> None:
    workspace = tenant_a.workspace
    owner = tenant_a.users["owner"]
    AuditLog.objects.create(
        workspace=workspace,
        actor=owner,
        action="privacy.settings",
        target_type="workspace",
        target_id=str(workspace.pk),
        detail={"two_person_approval": {"before": False, "after": True}},
    )
    AuditLog.objects.create(
        workspace=workspace,
        actor=owner,
        action="retention.update",
        target_type="retentionpolicy",
        target_id="1",
        detail={
            "before": {"event_days": None, "failed_event_days": 30},
            "after": {"event_days": 395, "failed_event_days": 30},
            "replaced_pending": None,
        },
    )
    AuditLog.objects.create(
        workspace=workspace,
        actor=None,
        action="privacy.complete_with_an_unusually_long_action_name_without_breaks",
        target_type="privacyrequest",
        target_id="8f2c0e7a-2b1d-4c55-9a51-7e1de0c1b0c4-" + "z" * 60,
        detail={
            "type": "delete",
            "counts": {"events": 1204, "profiles": 1, "identities": 7, "consents": 3},
            "url": "https://files.example.com/exports/" + "a1b2c3d4" * 30,
            "note": "word " * 80,
        },
    )
    login_as(owner)
    page.set_viewport_size(WIDE)
    page.goto(f"{live_server.url}/privacy/audit/")
    table = page.locator("#audit-table")
    expect(table).to_contain_text("two person approval: no → yes")
    expect(table).to_contain_text("event days: none → 395")
    expect(table).to_contain_text("counts: consents 3, events 1,204, identities 7, profiles 1")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, f"the page scrolls sideways: {width}px"
    card = page.evaluate(
        "(() => { const c = document.getElementById('audit-card');"
        " return [c.scrollWidth, c.clientWidth]; })()"
    )
    assert card[0] <= card[1], f"the table overflows its card: {card}"
    page.screenshot(path="/tmp/audit.png")
    screenshot(page, "91-audit-log")

    # the raw JSON is one click away
    raw = page.locator("#audit-table details.audit-raw").first
    expect(raw.locator("pre")).to_be_hidden()
    raw.locator("summary").click()
    expect(raw.locator("pre")).to_be_visible()
    expect(raw.locator("pre")).to_contain_text('"counts": {')
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    screenshot(page, "92-audit-log-raw")
