"""Activation's pages in headless Chromium against a live server and a real HTTP receiver:
add a webhook destination (a refused URL first), "Send test" shows the receiver's answer;
create a sync with the mapping editor and read the preview's match rate; run it and find the
run in its history; the delivery log shows the delivered rows and a dead letter, which is
retried once the receiver accepts it; the segment page says where the segment is synced to.

Celery tasks run eagerly from "Run now" on (as a worker would run them, in the request's
thread). Full-page screenshots go to /tmp/shots/ (outside the repository)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import Page, expect

from activation import connectors
from activation.models import Delivery, Destination, Sync
from activation.tests.helpers import people, pro_segment, webhook
from activation.tests.receiver import Received, receiver
from consent.services import purposes_install_defaults
from tests.fixtures import Tenant, send_events

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path("/tmp/shots")  # noqa: S108 - screenshots for people to look at, not the repo


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def eager() -> Iterator[Any]:
    """Switch Celery to eager mode when the test says so; restored afterwards."""
    from cdp.celery import app

    previous = app.conf.task_always_eager

    def on() -> None:
        app.conf.task_always_eager = True

    yield on
    app.conf.task_always_eager = previous


def test_destination_sync_and_deliveries(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, console: Any, eager: Any
) -> None:
    # the page posted with a refused URL answers 400 (the form, with the message at the field)
    console.allow(r"status of 400 .*/destinations/new/webhook/")
    console.allow(r"status of 400 .*/api/v1/syncs/(preview/)?")  # the mapping refused, below
    purposes_install_defaults(workspace=tenant_a.workspace)
    people(tenant_a, 5)  # user-0 … user-4, with emails
    send_events(  # two more pro members without an email: not matchable on email
        Client(),
        tenant_a,
        *[
            {"type": "identify", "userId": f"nomail-{i}", "traits": {"plan": "pro"}}
            for i in range(2)
        ],
    )
    segment = pro_segment(tenant_a)
    refusing = {"on": True}

    def answer(got: Received) -> tuple[int, dict[str, str]] | None:
        # the receiver refuses P3's audience item for good (400) until told otherwise
        if refusing["on"] and b'"P3"' in got.body:
            return 400, {}
        return None

    with receiver(answer=answer) as hook:
        login_as(tenant_a.users["admin"])
        base = live_server.url

        # ---- a webhook destination --------------------------------------------------------
        page.goto(f"{base}/destinations/")
        expect(page.locator("#no-destinations")).to_be_visible()
        shot(page, "01-destinations-empty")
        page.click("#add-webhook")
        page.fill("#f-name", "Receiver")
        page.fill("#f-config-url", "ftp://127.0.0.1/hook")
        page.fill("#f-batch_size", "1")
        page.click("#save-destination")
        expect(page.locator("#e-f-config-url")).to_contain_text("must start with http://")
        expect(page.locator("#f-config-url")).to_have_class("invalid")
        shot(page, "02-destination-form-error")
        page.fill("#f-config-url", hook.url)
        page.click("#save-destination")
        expect(page.locator("#destination-title")).to_contain_text("Receiver")
        secret = page.locator("#generated-secret code.key")
        expect(secret).to_contain_text("whsec_")
        shot(page, "03-destination-created")
        destination = Destination.objects.get(workspace=tenant_a.workspace, name="Receiver")
        assert destination.batch_size == 1

        page.click("#send-test")
        expect(page.locator("#test-verdict")).to_contain_text("Delivered")
        expect(page.locator("#test-status-code")).to_have_text("HTTP 200")
        expect(page.locator("#test-result")).to_contain_text(hook.url.replace("/hook", ""))
        assert len(hook.requests) == 1 and hook.requests[0].json["items"][0]["type"] == "event"
        shot(page, "04-destination-send-test")
        page.reload()
        expect(page.locator("#generated-secret")).to_have_count(0)  # shown once

        # ---- a sync, with the mapping editor and the preview --------------------------------
        page.goto(f"{base}/syncs/")
        expect(page.locator("#no-syncs")).to_be_visible()
        page.click("#new-sync")
        page.select_option("#f-segment", str(segment.pk))
        page.select_option("#f-destination", str(destination.pk))
        expect(page.locator("#f-name")).to_have_value("Pro plan → Receiver")
        rows = page.locator("#identifier-rows .identifier-row")
        expect(rows).to_have_count(2)  # the webhook's default: user_id and email
        # match on the email only, as a digest
        rows.nth(0).locator(".remove").click()
        expect(rows).to_have_count(1)
        expect(rows.nth(0).locator(".id-type")).to_have_value("email")
        rows.nth(0).locator(".id-hash").select_option("sha256")
        expect(rows.nth(0).locator(".id-as")).to_have_attribute("placeholder", "email_sha256")
        page.click("#add-field")
        field = page.locator("#field-rows .field-row").first
        field.locator(".field-value").fill("first_name")
        field.locator(".field-as").fill("firstName")
        expect(page.locator("#match-rate")).to_have_text("71.4 %")
        expect(page.locator("#match-text")).to_contain_text(
            "71.4 % of 7 members have a usable identifier"
        )
        examples = page.locator("#preview-examples li")
        expect(examples).to_have_count(5)
        expect(examples.first).to_contain_text("email_sha256")
        expect(examples.first.locator("tr").nth(1)).to_have_text('firstName"P0"')
        shot(page, "05-sync-new-preview")
        # a constant needs a name: the refusal is shown at the row's "as" box
        page.click("#add-field")
        constant = page.locator("#field-rows .field-row").nth(1)
        constant.locator(".field-source").select_option("constant")
        constant.locator(".field-value").fill("spring-sale")
        page.click("#create-sync")
        expect(constant.locator(".field-error")).to_contain_text("a field name")
        expect(constant.locator(".field-as")).to_have_class("field-as invalid")
        expect(page.locator("#preview-invalid")).to_be_visible()
        shot(page, "05b-sync-new-error")
        constant.locator(".remove").click()
        expect(page.locator("#match-rate")).to_have_text("71.4 %")
        page.click("#create-sync")
        expect(page.locator("#sync-title")).to_contain_text("Pro plan → Receiver")
        sync = Sync.objects.get(workspace=tenant_a.workspace)
        assert sync.mapping["identifiers"] == [
            {"type": "email", "hash": "sha256", "as": "email_sha256"}
        ]
        expect(page.locator("#no-runs")).to_be_visible()

        # ---- run it ---------------------------------------------------------------------------
        eager()
        page.click("#run-now")
        run_row = page.locator("#runs-table tbody tr")
        expect(run_row).to_have_count(1, timeout=20_000)
        expect(run_row.first).to_contain_text("Initial sync")
        cells = run_row.first.locator("td")
        expect(cells.nth(2)).to_have_text("5")  # added
        expect(cells.nth(7)).to_have_text("2")  # skipped: no identifier
        expect(cells.nth(9)).to_have_text("1")  # failed (after "held out"): P3's dead letter
        expect(page.locator("#runs-svg .bar.ok")).to_have_count(1)
        assert len(hook.accepted_items()) == 4 + 1  # four members and the test message
        shot(page, "06-sync-run")

        # ---- the delivery log ---------------------------------------------------------------
        page.goto(f"{base}/deliveries/")
        # four batches of one member delivered; the fifth split into its member's dead letter
        expect(page.locator("tbody.delivery")).to_have_count(6)
        expect(page.locator("tbody.delivery[data-status=delivered]")).to_have_count(4)
        expect(page.locator("tbody.delivery[data-status=cancelled]")).to_have_count(1)
        dead = page.locator("tbody.delivery[data-status=dead]")
        expect(dead).to_have_count(1)
        dead.locator("button.expand").click()
        detail = dead.locator(".delivery-detail")
        expect(detail).to_contain_text("Attempts")
        expect(detail.locator(".attempts")).to_contain_text("HTTP 400")
        expect(detail.locator("pre.payload").first).to_contain_text('"firstName": "P3"')
        shot(page, "07-deliveries-dead-letter")

        refusing["on"] = False
        dead.locator("[data-retry]").click()
        expect(page.locator(".msg.success")).to_contain_text("1 dead letter queued again")
        expect(page.locator("tbody.delivery[data-status=delivered]")).to_have_count(5)
        expect(page.locator("#retry-dead")).to_have_count(0)
        assert Delivery.objects.filter(status="delivered").count() == 5
        shot(page, "08-deliveries-retried")

        # ---- the destination's health, the segment's "Synced to" ----------------------------
        page.goto(f"{base}/destinations/{destination.pk}/")
        expect(page.locator("#health-svg .bar.ok").first).to_be_visible()
        expect(page.locator("#syncs-card")).to_contain_text("Pro plan → Receiver")
        shot(page, "09-destination-health")
        page.goto(f"{base}/destinations/")
        expect(page.locator(f"tr[data-destination='{destination.pk}']")).to_contain_text("circuit")
        shot(page, "10-destinations-list")
        page.goto(f"{base}/syncs/")
        expect(page.locator("#syncs-table")).to_contain_text("5 in destination")
        shot(page, "11-syncs-list")
        page.goto(f"{base}/segments/{segment.pk}/")
        synced = page.locator("#synced-to")
        expect(synced).to_contain_text("Receiver")
        expect(synced).to_contain_text("5 in destination")
        synced.scroll_into_view_if_needed()
        shot(page, "12-segment-synced-to")


def test_send_test_to_an_unreachable_host_says_why(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any
) -> None:
    purposes_install_defaults(workspace=tenant_a.workspace)
    with receiver() as hook:
        closed = hook.url  # the receiver stops at the end of this block: nothing listens there
    destination = webhook(tenant_a, closed, name="Gone")
    login_as(tenant_a.users["owner"])
    page.goto(f"{live_server.url}/destinations/{destination.pk}/")
    page.click("#send-test")
    expect(page.locator("#test-verdict")).to_contain_text("Failed")
    expect(page.locator("#test-message")).to_contain_text("Cannot connect")
    expect(page.locator("#test-no-answer")).to_contain_text("could not be reached")
    shot(page, "13-send-test-unreachable")
    # every kind's form is built from its connector's settings
    for n, kind in enumerate(c.kind for c in connectors.kinds()):
        page.goto(f"{live_server.url}/destinations/new/{kind}/")
        expect(page.locator("#destination-form")).to_be_visible()
        shot(page, f"15-new-{n}-{kind}")
    # a marketer sees the destination, not its settings nor the test
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/destinations/{destination.pk}/")
    expect(page.locator("#destination-title")).to_contain_text("Gone")
    expect(page.locator("#send-test")).to_have_count(0)
    expect(page.locator("#settings-card")).to_have_count(0)
    page.goto(f"{live_server.url}/destinations/")
    expect(page.locator("#add-webhook")).to_have_count(0)
    shot(page, "14-destinations-as-marketer")
