"""Activation's pages through the Django test client: each renders for an admin with data,
marketers see destinations without their settings and cannot add one, workspace B sees none of
A's objects, form errors are shown at their fields, a webhook's generated signing secret is
shown once, and the page actions (delete, retry, pause) call the services."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from activation import connectors, secrets
from activation.models import Delivery, Destination, Sync
from activation.tests.helpers import drain, people, pro_segment, run, sync_of, webhook
from activation.tests.receiver import receiver
from consent.services import purposes_install_defaults
from segments.models import Segment
from tests.fixtures import Tenant

pytestmark = pytest.mark.django_db


def html(response: Any) -> str:
    return response.content.decode()


@pytest.fixture
def synced(tenant_a: Tenant) -> dict[str, Any]:
    """Five people in a published segment, synced to a webhook that answered: 3 delivered,
    2 dead letters (the receiver refused them with a 400)."""
    people(tenant_a, 5)
    segment = pro_segment(tenant_a)
    answers = iter([200, 200, 200, 400, 400])
    with receiver(answer=lambda _: (next(answers, 200), {})) as hook:
        destination = webhook(tenant_a, hook.url, batch_size=1, concurrency=1)
        sync = sync_of(tenant_a, segment, destination)
        run(sync)
        drain(destination)
    return {"segment": segment, "destination": destination, "sync": sync}


def test_every_page_renders_for_an_admin(tenant_a: Tenant, synced: dict[str, Any]) -> None:
    admin = tenant_a.session("admin")
    destination, sync, segment = synced["destination"], synced["sync"], synced["segment"]
    assert Delivery.objects.filter(status="dead").count() == 2

    page = html(admin.get("/destinations/"))
    assert "Hook" in page and 'id="add-webhook"' in page and 'id="destinations-table"' in page
    assert "60 %" in page  # 3 of 5 requests succeeded in the last hour
    page = html(admin.get(f"/destinations/{destination.pk}/"))
    assert 'id="send-test"' in page and 'id="settings-card"' in page
    assert sync.name in page and 'id="destination-config"' in page
    assert "the destination answered 400" in page  # the last errors
    secret = "whsec_" + "A" * 44  # the helper's signing secret
    assert secret not in page  # secrets are write-only
    for connector in connectors.kinds():  # a form per kind, from its connector's settings
        form = html(admin.get(f"/destinations/new/{connector.kind}/"))
        for field in connector.fields:
            assert f'data-field="config.{field.name}"' in form, (connector.kind, field.name)
    assert admin.get("/destinations/new/no-such-kind/").status_code == 404
    page = html(admin.get(f"/destinations/{destination.pk}/edit/"))
    assert "set — leave empty to keep" in page and secret not in page

    page = html(admin.get("/syncs/"))
    assert sync.name in page and "3</strong> in destination" in page and "2 dead" in page
    page = html(admin.get(f"/syncs/{sync.pk}/"))
    assert 'id="runs-table"' in page and "Initial sync" in page and 'id="run-now"' in page
    assert 'id="sync-config"' in page
    page = html(admin.get(f"/syncs/new/?segment={segment.pk}"))
    assert f'<option value="{segment.pk}" selected>' in page and 'id="sync-form-config"' in page

    page = html(admin.get("/deliveries/"))
    # five audience batches of one member (the last two split into dead letters of their own)
    assert page.count('class="delivery"') == 7 and "Retry all 2 dead letters" in page
    assert page.count("Audience batch · 1 member") == 5
    page = html(admin.get(f"/deliveries/?destination={destination.pk}&status=dead"))
    assert page.count('class="delivery"') == 2 and page.count("data-retry=") == 2
    page = html(admin.get(f"/deliveries/?destination={destination.pk}&status=sending"))
    assert "No deliveries match" in page

    page = html(admin.get(f"/segments/{segment.pk}/"))
    assert 'id="synced-to"' in page and sync.name in page and "Sync this segment" in page


def test_empty_states(tenant_a: Tenant) -> None:
    admin = tenant_a.session("admin")
    assert "No destinations yet" in html(admin.get("/destinations/"))
    assert "No syncs yet" in html(admin.get("/syncs/"))
    assert "No deliveries yet" in html(admin.get("/deliveries/"))
    page = html(admin.get("/syncs/new/"))
    assert "no segment to sync" in page and "no destination to sync to" in page
    segment = pro_segment(tenant_a)
    assert "Not synced to any destination yet" in html(admin.get(f"/segments/{segment.pk}/"))


def test_a_marketer_sees_destinations_without_settings(
    tenant_a: Tenant, synced: dict[str, Any]
) -> None:
    marketer = tenant_a.session("marketer")
    destination = synced["destination"]
    page = html(marketer.get("/destinations/"))
    assert "Hook" in page and 'id="add-webhook"' not in page and "/destinations/new/" not in page
    page = html(marketer.get(f"/destinations/{destination.pk}/"))
    assert 'id="settings-card"' not in page and 'id="send-test"' not in page
    assert "/edit/" not in page and destination.config["url"] not in page
    assert marketer.get("/destinations/new/webhook/").status_code == 403
    answer = marketer.post(
        "/destinations/new/webhook/",
        {"name": "Mine", "purpose": "analytics", "config.url": "https://example.com/hook"},
    )
    assert answer.status_code == 403
    assert marketer.get(f"/destinations/{destination.pk}/edit/").status_code == 403
    assert marketer.post(f"/destinations/{destination.pk}/delete/").status_code == 403
    assert Destination.objects.filter(workspace=tenant_a.workspace).count() == 1
    # marketers manage syncs and may retry deliveries
    assert marketer.get("/syncs/new/").status_code == 200
    assert 'id="retry-dead"' in html(marketer.get("/deliveries/"))
    # analysts see, but neither sync nor retry
    analyst = tenant_a.session("analyst")
    assert analyst.get("/syncs/new/").status_code == 403
    assert 'id="run-now"' not in html(analyst.get(f"/syncs/{synced['sync'].pk}/"))
    assert 'id="retry-dead"' not in html(analyst.get("/deliveries/"))
    assert analyst.post("/deliveries/retry/", {"destination": destination.pk}).status_code == 403


def test_workspace_b_sees_none_of_a(
    tenant_a: Tenant, tenant_b: Tenant, synced: dict[str, Any]
) -> None:
    other = tenant_b.session("owner")
    destination, sync = synced["destination"], synced["sync"]
    for path in (
        f"/destinations/{destination.pk}/",
        f"/destinations/{destination.pk}/edit/",
        f"/syncs/{sync.pk}/",
        f"/segments/{synced['segment'].pk}/",
    ):
        assert other.get(path).status_code == 404, path
    for path in (
        f"/destinations/{destination.pk}/delete/",
        f"/syncs/{sync.pk}/toggle/",
        f"/syncs/{sync.pk}/delete/",
    ):
        assert other.post(path).status_code == 404, path
    assert other.post("/deliveries/retry/", {"destination": destination.pk}).status_code == 404
    dead = Delivery.objects.filter(status="dead").first()
    assert dead is not None
    other.post("/deliveries/retry/", {"id": dead.pk})
    dead.refresh_from_db()
    assert dead.status == "dead"  # not B's to retry
    assert "Hook" not in html(other.get("/destinations/"))
    assert sync.name not in html(other.get("/syncs/"))
    page = html(other.get("/deliveries/"))
    assert "No deliveries yet" in page and 'class="delivery"' not in page
    # A's destination id as a filter of B's log is ignored, not an error
    assert other.get(f"/deliveries/?destination={destination.pk}").status_code == 200
    assert Destination.objects.filter(pk=destination.pk).exists()
    assert Sync.objects.filter(pk=sync.pk).exists()


def test_form_errors_are_shown_at_their_fields(tenant_a: Tenant) -> None:
    purposes_install_defaults(workspace=tenant_a.workspace)
    admin = tenant_a.session("admin")
    answer = admin.post(
        "/destinations/new/webhook/",
        {
            "name": "",
            "purpose": "no_such_purpose",
            "config.url": "ftp://example.com/hook",
            "batch_size": "0",
            "timeout_seconds": "soon",
            "enabled": "1",
        },
    )
    assert answer.status_code == 400
    page = html(answer)
    assert "Not saved" in page
    for field, message in (
        ("e-name", "required"),
        ("e-purpose", "is not a consent purpose of this workspace"),
        ("e-f-config-url", "must start with http:// or https://"),
        ("e-batch_size", "expected 1 to 10000"),
        ("e-timeout_seconds", "expected a number"),
    ):
        found = re.search(rf'id="{field}">([^<]*)<', page)
        assert found and message in found.group(1).replace("&#x27;", "'"), field
    assert 'value="ftp://example.com/hook"' in page  # what was typed is kept
    answer = admin.post(
        "/destinations/new/webhook/",
        {"name": "Hook", "purpose": "analytics", "config.url": "https://example.com/h",
         "config.headers": "{not json"},
    )  # fmt: skip
    assert answer.status_code == 400 and "not valid JSON" in html(answer)
    assert not Destination.objects.exists()


def test_a_new_webhook_shows_its_signing_secret_once(tenant_a: Tenant) -> None:
    purposes_install_defaults(workspace=tenant_a.workspace)
    admin = tenant_a.session("admin")
    answer = admin.post(
        "/destinations/new/webhook/",
        {
            "name": "CRM",
            "purpose": "analytics",
            "config.url": "https://crm.example.com/hook",
            "config.headers": '{"X-Team": "growth"}',
            "config.authorization": "Bearer abc",
            "batch_size": "50",
            "enabled": "1",
        },
    )
    destination = Destination.objects.get(workspace=tenant_a.workspace, name="CRM")
    assert answer.status_code == 302 and answer["Location"] == f"/destinations/{destination.pk}/"
    stored = secrets.decrypt(destination.secrets_encrypted)
    assert stored["signing_secret"].startswith("whsec_")
    assert stored["authorization"] == "Bearer abc"
    assert destination.batch_size == 50 and destination.config["headers"] == {"X-Team": "growth"}
    first = html(admin.get(answer["Location"]))
    assert 'id="generated-secret"' in first and stored["signing_secret"] in first
    assert "not shown again" in first
    again = html(admin.get(answer["Location"]))
    assert stored["signing_secret"] not in again and 'id="generated-secret"' not in again
    # editing with the secrets left empty keeps them; "remove" drops one
    admin.post(
        f"/destinations/{destination.pk}/edit/",
        {
            "name": "CRM",
            "purpose": "analytics",
            "config.url": "https://crm.example.com/v2",
            "config.authorization.remove": "1",
            "batch_size": "50",
            "enabled": "1",
        },
    )
    destination.refresh_from_db()
    kept = secrets.decrypt(destination.secrets_encrypted)
    assert kept == {"signing_secret": stored["signing_secret"]}
    assert destination.config["url"] == "https://crm.example.com/v2"


def test_a_destination_in_use_is_not_deleted(tenant_a: Tenant, synced: dict[str, Any]) -> None:
    admin = tenant_a.session("admin")
    destination = synced["destination"]
    answer = admin.post(f"/destinations/{destination.pk}/delete/", follow=True)
    page = html(answer)
    assert "Not deleted" in page and synced["sync"].name in page and "delete those first" in page
    assert Destination.objects.filter(pk=destination.pk).exists()
    # once its sync is gone, it can go
    admin.post(f"/syncs/{synced['sync'].pk}/delete/")
    assert not Sync.objects.exists()
    admin.post(f"/destinations/{destination.pk}/delete/")
    assert not Destination.objects.filter(pk=destination.pk).exists()


def test_dead_letters_are_retried_from_the_log(tenant_a: Tenant, synced: dict[str, Any]) -> None:
    marketer = tenant_a.session("marketer")
    dead = list(Delivery.objects.filter(status="dead").order_by("id"))
    back = f"/deliveries/?destination={synced['destination'].pk}&status=dead"
    answer = marketer.post("/deliveries/retry/", {"id": dead[0].pk, "next": back})
    assert answer.status_code == 302 and answer["Location"] == back
    statuses = Delivery.objects.filter(pk__in=[d.pk for d in dead]).order_by("id")
    assert [d.status for d in statuses] == ["pending", "dead"]
    answer = marketer.post(
        "/deliveries/retry/",
        {"destination": synced["destination"].pk, "next": "https://evil.example.com/"},
        follow=True,
    )
    assert answer.redirect_chain[-1][0] == "/deliveries/"  # never off-site
    assert "1 dead letter queued again" in html(answer)
    assert not Delivery.objects.filter(status="dead").exists()


def test_a_sync_is_paused_and_enabled_from_its_page(
    tenant_a: Tenant, synced: dict[str, Any]
) -> None:
    marketer = tenant_a.session("marketer")
    sync = synced["sync"]
    page = html(marketer.post(f"/syncs/{sync.pk}/toggle/", follow=True))
    assert "is paused" in page and "Paused" in page
    sync.refresh_from_db()
    assert not sync.enabled
    marketer.post(f"/syncs/{sync.pk}/toggle/")
    sync.refresh_from_db()
    assert sync.enabled


def test_the_synced_to_section_follows_the_capability(
    tenant_a: Tenant, synced: dict[str, Any]
) -> None:
    segment: Segment = synced["segment"]
    analyst = tenant_a.session("analyst")
    page = html(analyst.get(f"/segments/{segment.pk}/"))
    assert 'id="synced-to"' in page and "Sync this segment" not in page
    # a privacy officer does not see segments at all; a role without destinations.view would
    # not get the section (the registry checks the capability)
    from segments import sections

    keys = [s.key for s in sections.sections()]
    assert "synced_to" in keys
    assert Client().get(f"/segments/{segment.pk}/").status_code == 302  # signed out
