"""The privacy center in headless Chromium against a live server: purposes, the suppression
list, retention settings and the audit log, as a privacy officer uses them."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect

from consent.models import RetentionPolicy
from consent.services import purposes_install_defaults
from consent.suppression import suppression_add
from tests.fixtures import Tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def ingest(live_server: Any, tenant: Tenant, batch: list[dict[str, Any]]) -> None:
    """Send a batch through the live collector, then run the pipeline over it."""
    from profiles.pipeline import queue

    answer = requests.post(
        f"{live_server.url}/v1/batch",
        json={"batch": batch},
        auth=(tenant.write_key, ""),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    queue.drain(batch_size=100)


def test_purposes_retention_suppression_and_audit(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, screenshot: Any, console: Any
) -> None:
    console.allow(r"status of 400 .*/privacy/(purposes|retention|suppression)/")  # refused forms
    purposes_install_defaults(workspace=tenant_a.workspace)
    suppression_add(
        workspace=tenant_a.workspace, identifier_type="email", normalized_value="gone@example.com"
    )
    # the suppressed person's SDK keeps sending: dropped at the door, counted
    answer = requests.post(
        f"{live_server.url}/v1/track",
        json={
            "userId": "u-x",
            "event": "Opened",
            "context": {"traits": {"email": "gone@example.com"}},
        },
        auth=(tenant_a.write_key, ""),
        timeout=10,
    )
    assert answer.status_code == 200
    # three people answer the consent banner (one says no to email)
    batch: list[dict[str, Any]] = [
        {
            "type": "identify",
            "userId": f"u-{n}",
            "context": {"consent": {"categoryPreferences": {"marketing_email": n != 2}}},
        }
        for n in range(3)
    ]
    ingest(live_server, tenant_a, batch)
    login_as(tenant_a.users["privacy_officer"])
    page.goto(f"{live_server.url}/profiles/")
    page.click(".sidebar nav a:has-text('Privacy')")

    page.click(".subnav a:has-text('Purposes')")
    expect(page.locator("#purposes-table tbody tr")).to_have_count(5)
    email = page.locator("#purposes-table tr[data-purpose=marketing_email]")
    expect(email.locator(".granted")).to_have_text("2")
    expect(email.locator(".share-text")).to_have_text("2 of 3 · 67%")
    page.fill("#purpose-key", "sms_marketing")
    page.fill("#purpose-name", "SMS marketing")
    page.fill("#purpose-description", "Offers by text message")
    page.click("#purpose-submit")
    expect(page.locator(".msg.success")).to_contain_text("Purpose 'sms_marketing' added")
    row = page.locator("#purposes-table tr[data-purpose=sms_marketing]")
    expect(row).to_contain_text("Consent (opt-in)")
    expect(row).to_contain_text("may not be used")
    page.fill("#purpose-key", "sms_marketing")
    page.click("#purpose-submit")
    expect(page.locator("#purpose-error")).to_contain_text("exists already")
    screenshot(page, "60-privacy-purposes")

    page.click(".subnav a:has-text('Suppression list')")
    expect(page.locator("#suppressed-total")).to_have_text("1")
    expect(page.locator("#dropped-30d")).to_have_text("1")
    expect(page.locator("#suppression-table")).not_to_contain_text("gone@example.com")
    page.fill("#check-identifier", "email:Gone@Example.com")
    page.click("#check-button")
    expect(page.locator("#check-result")).to_contain_text("is suppressed since")
    page.fill("#import-identifiers", "zed@example.com\nphone:not a phone\n")
    page.click("#import-submit")
    expect(page.locator("#import-error")).to_contain_text("line 2:")
    page.fill("#import-identifiers", "zed@example.com\nuser_id:u-old-777\n")
    page.click("#import-submit")
    expect(page.locator(".msg.success")).to_contain_text("Imported: 2 identifiers suppressed")
    expect(page.locator("#suppressed-total")).to_have_text("3")
    expect(page.locator("#suppression-table")).not_to_contain_text("zed@example.com")
    screenshot(page, "61-privacy-suppression")

    page.click(".subnav a:has-text('Retention')")
    expect(page.locator("#event-days")).to_have_value("365")
    page.check("#failed-days-forever")
    expect(page.locator("#failed-days")).to_be_disabled()
    page.fill("#event-days", "0")
    page.click("#retention-save")
    expect(page.locator("#error-event-days")).to_contain_text("expected 1 to 36,500 days")
    page.fill("#event-days", "90")
    page.click("#retention-save")
    # a shorter period deletes in bulk: only an owner may set it
    expect(page.locator(".msg.error")).to_contain_text("Only an owner can shorten retention")
    login_as(tenant_a.users["owner"])
    page.goto(f"{live_server.url}/privacy/retention/")
    page.fill("#event-days", "90")
    page.check("#failed-days-forever")
    page.click("#retention-save")
    # shorter: it waits out the grace period, shown with a way to cancel it
    expect(page.locator(".msg.success")).to_contain_text("Retention will be shortened on")
    expect(page.locator("#retention-pending")).to_contain_text("Shortening to 90 days of events")
    policy = RetentionPolicy.objects.get(workspace=tenant_a.workspace)
    assert policy.event_days == 365 and policy.pending["event_days"] == 90  # type: ignore[index]
    screenshot(page, "62-privacy-retention")
    page.click("#retention-cancel")
    expect(page.locator(".msg.success")).to_contain_text("cancelled")
    expect(page.locator("#retention-pending")).to_have_count(0)
    # longer: at once
    page.fill("#event-days", "400")
    page.check("#failed-days-forever")
    page.click("#retention-save")
    expect(page.locator(".msg.success")).to_contain_text("Retention saved")
    expect(page.locator("#failed-days")).to_be_disabled()
    policy = RetentionPolicy.objects.get(workspace=tenant_a.workspace)
    assert (policy.event_days, policy.failed_event_days) == (400, None)

    page.click(".subnav a:has-text('Audit log')")
    table = page.locator("#audit-table")
    expect(table).to_contain_text("retention.update")
    expect(table).to_contain_text("consent.purpose_create")
    expect(table).to_contain_text("privacy_officer@alpha")
    page.select_option("#audit-kind", "retention.")
    expect(page).to_have_url(re.compile(r"kind=retention\."))  # the select submits its form
    # the shortening scheduled, its cancellation, the longer period
    expect(table.locator("xpath=./tbody/tr")).to_have_count(3)  # not the detail tables' rows
    expect(table).to_contain_text("retention.cut_scheduled")
    expect(table).to_contain_text("retention.cut_cancelled")
    screenshot(page, "63-privacy-audit")


def test_export_then_delete_a_person(
    live_server: Any,
    page: Page,
    tenant_a: Tenant,
    login_as: Any,
    screenshot: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cdp.celery import app
    from profiles.models import Event

    monkeypatch.setitem(app.conf, "task_always_eager", True)  # approval runs it at once
    purposes_install_defaults(workspace=tenant_a.workspace)
    batch: list[dict[str, Any]] = [
        {
            "type": "identify",
            "userId": "u-hedy",
            "anonymousId": "anon-hedy",
            "traits": {"email": "hedy@example.com", "name": "Hedy Lamarr"},
            "context": {"consent": {"categoryPreferences": {"marketing_email": True}}},
        },
        {"type": "track", "userId": "u-hedy", "event": "Order Completed"},
    ]
    ingest(live_server, tenant_a, batch)
    login_as(tenant_a.users["privacy_officer"])
    page.goto(f"{live_server.url}/privacy/")
    expect(page.locator("#requests-empty")).to_be_visible()
    expect(page.locator("#suppress-option")).to_be_hidden()  # only for deletions

    # access request: export, approve, download
    page.check("input[name=type][value=export]")
    page.fill("#request-identifier", "email:Hedy@Example.com")
    page.fill("#request-note", "Email from Hedy, 2026-11-20")
    page.click("#request-submit")
    expect(page.locator("#request-status")).to_have_text("Pending approval")
    expect(page.locator("#request-subject")).to_have_text("email:hedy@example.com")
    page.click("#approve")
    expect(page.locator("#request-status")).to_have_text("Completed")
    expect(page.locator("#receipt-counts")).to_contain_text("Events")
    href = page.locator("#download").get_attribute("href") or ""
    download = page.request.get(f"{live_server.url}{href}")
    assert download.ok and "Hedy Lamarr" in download.text()
    screenshot(page, "64-privacy-export")

    # erasure: delete and keep out
    page.click(".crumbs a")
    page.check("input[name=type][value=delete]")
    expect(page.locator("#suppress-option")).to_be_visible()
    expect(page.locator("#request-suppress")).to_be_checked()
    page.fill("#request-identifier", "user_id:u-hedy")
    page.click("#request-submit")
    expect(page.locator("#pending-note")).to_contain_text("cannot be undone")
    screenshot(page, "65-privacy-delete-pending")
    page.click("#approve")
    expect(page.locator("#request-status")).to_have_text("Completed")
    expect(page.locator("#request-subject")).to_contain_text("forgotten")
    expect(page.locator("#receipt-suppressed")).to_have_text("3 identifiers suppressed.")
    expect(page.locator("#trail-list li")).to_have_count(3)
    page.click("#receipt-hashes summary")
    screenshot(page, "66-privacy-delete-receipt")
    assert not Event.objects.filter(workspace=tenant_a.workspace).exists()

    page.click(".crumbs a")
    rows = page.locator("#requests-table tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#requests-table")).not_to_contain_text("hedy@example.com")
    expect(rows.first).to_contain_text("forgotten")
    screenshot(page, "67-privacy-requests")


def test_two_person_approval(
    live_server: Any,
    page: Page,
    tenant_a: Tenant,
    login_as: Any,
    screenshot: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cdp.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)
    login_as(tenant_a.users["privacy_officer"])
    page.goto(f"{live_server.url}/privacy/retention/")
    expect(page.locator("#approval-one")).to_be_checked()
    page.check("#approval-two")
    page.click("#approval-save")
    expect(page.locator(".msg.success")).to_contain_text("someone other than whoever recorded it")
    expect(page.locator("#approval-two")).to_be_checked()
    screenshot(page, "68-privacy-approval-rule")

    page.click(".subnav a:has-text('Requests')")
    page.check("input[name=type][value=suppress]")
    page.fill("#request-identifier", "email:pair@example.com")
    page.click("#request-submit")
    expect(page.locator("#request-status")).to_have_text("Pending approval")
    expect(page.locator(".msg.success")).to_contain_text("once another privacy manager approves")
    expect(page.locator("#approve")).to_be_disabled()
    expect(page.locator("#second-approver-note")).to_contain_text("was recorded by you")
    screenshot(page, "69-privacy-second-approver")
    detail = page.url

    # a long search ahead: the deadline is extended once, with the reason
    page.click("#extend summary")
    page.select_option("#extend-days", "60")
    page.fill("#extend-reason", "Records are split over three systems")
    page.click("#extend-submit")
    expect(page.locator(".msg.success")).to_contain_text("is now due")
    expect(page.locator("#request-extended")).to_contain_text("Records are split")
    expect(page.locator("#extend-card")).to_have_count(0)
    screenshot(page, "70-privacy-extended")

    login_as(tenant_a.users["admin"])
    page.goto(detail)
    expect(page.locator("#second-approver-note")).to_have_count(0)
    page.click("#approve")
    expect(page.locator("#request-status")).to_have_text("Completed")
    expect(page.locator("#receipt")).to_contain_text("approved by admin@alpha")
