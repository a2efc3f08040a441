"""The System page (/system/) across the apps that contribute to it: owners and admins see
every section, others get 403; a stale worker heartbeat shows as failing; a failed event and
a dead delivery appear among the dead letters with links to where to act; the events table's
partitions are listed; a failing destination links to its page."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from activation.models import CircuitState, Delivery
from activation.services import destination_create
from cdp import health
from cdp import redis as cdp_redis
from cdp.models import Role
from consent.services import purposes_install_defaults
from profiles import partitions
from profiles.models import FailedEvent
from segments.models import Segment
from segments.services import segment_create
from tests.fixtures import Tenant, post_collector

SECTIONS = [
    "sys-components",
    "sys-dead-letters",
    "sys-db-size",
    "sys-pipeline",
    "sys-throughput",
    "sys-segments",
    "sys-destinations",
    "sys-partitions",
]


@pytest.fixture(autouse=True)
def _fresh_health_state() -> Any:
    cdp_redis.client().delete(health.WORKERS_KEY, health.BEAT_KEY)
    yield
    cdp_redis.client().delete(health.WORKERS_KEY, health.BEAT_KEY)


def _row(html: str, row_id: str) -> str:
    match = re.search(rf'<tr id="{row_id}">(.*?)</tr>', html, re.S)
    assert match, f"no row {row_id}"
    return match.group(1)


def _destination(tenant: Tenant, name: str = "Hook") -> Any:
    purposes_install_defaults(workspace=tenant.workspace)
    destination, _ = destination_create(
        workspace=tenant.workspace,
        data={"name": name, "kind": "webhook", "purpose": "analytics",
              "config": {"url": "http://127.0.0.1:9/closed"}},
    )  # fmt: skip
    return destination


@pytest.mark.django_db
def test_owners_and_admins_see_every_section_others_get_403(tenant_a: Tenant) -> None:
    health.worker_heartbeat("celery@test")
    health.beat_tick()
    for role in (Role.OWNER, Role.ADMIN):
        response = tenant_a.session(role).get("/system/")
        assert response.status_code == 200, role
        html = response.content.decode()
        for section in SECTIONS:
            assert f'id="{section}"' in html, (role, section)
        assert 'data-data="sys-throughput-data"' in html
        assert '<script id="sys-throughput-data" type="application/json">' in html
        assert '<span class="pill bad">' not in _row(html, "sys-component-worker")
        assert "Slowest segments" in html
    for role in (Role.MARKETER, Role.ANALYST, Role.PRIVACY_OFFICER):
        assert tenant_a.session(role).get("/system/").status_code == 403, role


@pytest.mark.django_db
def test_the_settings_page_links_to_it_for_those_who_may_see_it(tenant_a: Tenant) -> None:
    assert 'href="/system/"' in tenant_a.session(Role.OWNER).get("/settings/").content.decode()
    html = tenant_a.session(Role.MARKETER).get("/settings/").content.decode()
    assert 'href="/system/"' not in html


@pytest.mark.django_db
def test_a_stale_worker_heartbeat_shows_a_bad_pill(tenant_a: Tenant, settings: Any) -> None:
    settings.CDP_READY_WORKER_MAX_AGE = 60
    health.worker_heartbeat("celery@test", now=time.time() - 300)
    health.beat_tick()
    html = tenant_a.session().get("/system/").content.decode()
    worker = _row(html, "sys-component-worker")
    assert '<span class="pill bad">Failing</span>' in worker
    assert "0 fresh workers" in worker
    assert '<span class="pill ok">OK</span>' in _row(html, "sys-component-database")


@pytest.mark.django_db
def test_dead_letters_show_failed_events_and_dead_deliveries_with_links(
    tenant_a: Tenant, tenant_b: Tenant, client: Any
) -> None:
    post_collector(client, "/v1/batch", {"batch": [{}]}, write_key=tenant_a.write_key)
    assert FailedEvent.objects.filter(workspace=tenant_a.workspace).count() == 1
    destination = _destination(tenant_a)
    Delivery.objects.create(
        workspace_id=tenant_a.workspace.pk, destination=destination, kind="event",
        payload={"type": "track"}, status="dead", reason="http_400", finished_at=timezone.now(),
    )  # fmt: skip
    # an old one is not among the last 24 hours'
    Delivery.objects.create(
        workspace_id=tenant_a.workspace.pk, destination=destination, kind="event",
        payload={"type": "track"}, status="dead", reason="http_400",
        finished_at=timezone.now() - timedelta(days=2),
    )  # fmt: skip
    html = tenant_a.session().get("/system/").content.decode()
    failed = _row(html, "sys-dead-failed_events")
    assert '<span class="pill bad">1</span>' in failed
    assert 'href="/debugger/"' in failed
    dead = _row(html, "sys-dead-dead_deliveries")
    assert '<span class="pill bad">1</span>' in dead
    assert 'href="/deliveries/?status=dead"' in dead
    # the destination with a dead delivery is failing, linked to its page
    assert f'href="/destinations/{destination.pk}/"' in html
    # workspace B sees none of A's
    html_b = tenant_b.session().get("/system/").content.decode()
    assert '<span class="pill ok">0</span>' in _row(html_b, "sys-dead-failed_events")
    assert '<span class="pill ok">0</span>' in _row(html_b, "sys-dead-dead_deliveries")
    assert f'href="/destinations/{destination.pk}/"' not in html_b


@pytest.mark.django_db
def test_an_open_circuit_lists_the_destination(tenant_a: Tenant) -> None:
    quiet = _destination(tenant_a, "Quiet")
    broken = _destination(tenant_a, "Broken")
    broken.circuit_state = CircuitState.OPEN
    broken.save(update_fields=["circuit_state"])
    html = tenant_a.session().get("/system/").content.decode()
    table = html.split('id="sys-destinations-table"')[1].split("</table>")[0]
    assert f'href="/destinations/{broken.pk}/"' in table
    assert '<span class="pill bad">Open</span>' in table
    assert f'href="/destinations/{quiet.pk}/"' not in table


@pytest.mark.django_db
def test_partitions_are_listed_newest_first(tenant_a: Tenant) -> None:
    today = timezone.now().date()
    for day in (today, today + timedelta(days=1)):
        partitions.create_partition(day)
    html = tenant_a.session().get("/system/").content.decode()
    table = html.split('id="sys-partitions-table"')[1].split("</table>")[0]
    newer = partitions.partition_name(today + timedelta(days=1))
    older = partitions.partition_name(today)
    assert newer in table and older in table
    assert table.index(newer) < table.index(older)


@pytest.mark.django_db
def test_the_slowest_segments_come_first_and_link_to_their_pages(tenant_a: Tenant) -> None:
    rule = {"trait": "email", "op": "exists"}
    quick = segment_create(workspace=tenant_a.workspace, name="Quick", rule=rule, publish=True)
    slow = segment_create(workspace=tenant_a.workspace, name="Slow", rule=rule, publish=True)
    draft = segment_create(workspace=tenant_a.workspace, name="Never evaluated", rule=rule)
    quick.refresh_from_db()
    assert quick.evaluation_ms is not None and quick.evaluated_at is not None
    Segment.objects.filter(pk=quick.pk).update(evaluation_ms=840)
    Segment.objects.filter(pk=slow.pk).update(evaluation_ms=2400)
    html = tenant_a.session().get("/system/").content.decode()
    table = html.split('id="sys-segments-table"')[1].split("</table>")[0]
    for segment in (quick, slow, draft):
        assert f'href="/segments/{segment.pk}/"' in table
    # slowest first; never evaluated last, said so
    assert table.index("Slow<") < table.index("Quick<") < table.index("Never evaluated<")
    assert "2.4 s" in table and "840 ms" in table and "not yet" in table
    assert '<meter class="sys-meter" min="0" max="100" value="100"' in table
    assert '<meter class="sys-meter" min="0" max="100" value="35"' in table
