"""Two drains sharing people do not wait for each other: a batch whose events need a profile
another worker holds leaves those events (and every event of the batch sharing an identifier
with them) queued, processes the rest, and a later batch takes them once the lock is gone, in
their order. An event older than queue.DEFER_MAX_AGE is not put off again: its batch waits.
Segment member counts are applied as the batch's last write and stay exact."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from profiles.models import Identity, PendingEvent, ProfileEvent
from profiles.pipeline import queue
from segments.models import Membership, Segment
from segments.services import segment_create
from tests.fixtures import Tenant, send_events

pytestmark = pytest.mark.django_db(transaction=True)


def track(user: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": name, **extra}


def other_worker_locks(profile_id: int) -> psycopg.Connection:
    """Another session holding the profile's row lock in an open transaction, as a drain
    does for its whole batch."""
    params = connection.get_connection_params()
    held = psycopg.connect(
        host=params.get("host"),
        port=params.get("port"),
        user=params.get("user"),
        dbname=params.get("dbname"),
    )
    held.execute("SELECT 1 FROM profiles_profile WHERE id = %s FOR UPDATE", [profile_id])
    return held


def profile_id(tenant: Tenant, user: str) -> int:
    return Identity.objects.get(workspace=tenant.workspace, type="user_id", value=user).profile_id


def test_a_held_profile_defers_its_events_and_the_rest_goes_on(
    tenant_a: Tenant, client: Client
) -> None:
    send_events(client, tenant_a, track("busy", "Signed Up"), track("free", "Signed Up"))
    busy = profile_id(tenant_a, "busy")
    held = other_worker_locks(busy)
    try:
        # busy's events, and an anonymous event that shares an identifier with one of them
        send_events(
            client,
            tenant_a,
            track("busy", "First", anonymousId="laptop"),
            {"type": "page", "anonymousId": "laptop", "name": "Pricing"},
            track("busy", "Second"),
            track("free", "Bought"),
            track("new-person", "Signed Up"),
            drain=None,
        )
        with connection.cursor() as cursor:  # waiting would fail the test, not hang it
            cursor.execute("SET lock_timeout = '3s'")
        started = time.monotonic()
        processed, claimed = queue.claim_and_process(tenant_a.workspace.pk, 100, None)
        assert time.monotonic() - started < 3  # did not wait for the lock
        assert (processed, claimed) == (2, 5)
        assert queue.counters["deferred"] >= 3
        queued = set(PendingEvent.objects.values_list("event_id", flat=True))
        assert len(queued) == 3
        busy_events = ProfileEvent.objects.filter(profile_id=busy)
        assert sorted(busy_events.values_list("event", flat=True)) == ["Signed Up"]
        assert Identity.objects.filter(value="new-person").exists()
        assert not Identity.objects.filter(value="laptop").exists()
    finally:
        held.rollback()
        held.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    # the lock is gone: the next batch takes them, in order, to the same person
    queue.drain()
    assert not PendingEvent.objects.exists()
    events = ProfileEvent.objects.filter(profile_id=busy).order_by("event_id")
    names = list(events.values_list("event", flat=True))
    assert names == ["Signed Up", "First", "Pricing", "Second"]
    assert Identity.objects.get(value="laptop").profile_id == busy


def test_an_event_put_off_too_long_is_not_put_off_again_its_batch_waits(
    tenant_a: Tenant, client: Client
) -> None:
    send_events(client, tenant_a, track("busy", "Signed Up"))
    busy = profile_id(tenant_a, "busy")
    send_events(client, tenant_a, track("busy", "Late"), drain=None)
    held = other_worker_locks(busy)
    try:
        # first time: deferred, and the queue row remembers when
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '3s'")
        assert queue.claim_and_process(tenant_a.workspace.pk, 100, None) == (0, 1)
        first = PendingEvent.objects.get().deferred_at
        assert first is not None
        assert queue.claim_and_process(tenant_a.workspace.pk, 100, None) == (0, 1)
        assert PendingEvent.objects.get().deferred_at == first  # the first time is kept
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    # put off for longer than DEFER_MAX_AGE: the batch now waits for the lock
    PendingEvent.objects.update(deferred_at=timezone.now() - queue.DEFER_MAX_AGE * 2)
    result: list[tuple[int, int]] = []

    def drain() -> None:
        try:
            result.append(queue.claim_and_process(tenant_a.workspace.pk, 100, None))
        finally:
            connection.close()

    worker = threading.Thread(target=drain)
    worker.start()
    worker.join(timeout=1.5)
    assert worker.is_alive() and not result  # waiting for the lock, not deferring
    held.rollback()
    held.close()
    worker.join(timeout=30)
    assert result == [(1, 1)]
    assert ProfileEvent.objects.filter(profile_id=busy, event="Late").exists()


def test_member_counts_stay_exact_when_applied_last(tenant_a: Tenant, client: Client) -> None:
    segment = segment_create(
        workspace=tenant_a.workspace,
        name="Buyers",
        rule={"event": "Order Completed"},
        publish=True,
    )
    send_events(client, tenant_a, *[track(f"u{n}", "Order Completed") for n in range(7)])
    send_events(client, tenant_a, *[track(f"v{n}", "Viewed") for n in range(3)])
    send_events(client, tenant_a, track("v0", "Order Completed"), track("u0", "Viewed"))
    members = Membership.objects.filter(segment=segment, exited_at=None).count()
    assert members == 8
    assert Segment.objects.get(pk=segment.pk).member_count == members


def test_the_queue_is_vacuumed_once_dead_rows_pile_up(settings: Any) -> None:
    """Autovacuum may be off (it is on the project's machines): the beat's task vacuums the
    queue table when enough dead rows wait in it, and leaves it alone otherwise."""
    from profiles.tasks import vacuum_pending_events

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO profiles_pendingevent (event_id, workspace_id, enqueued_at, route) "
            "SELECT n, 1, now(), 0 FROM generate_series(1, 500) n"
        )
        cursor.execute("DELETE FROM profiles_pendingevent")
        cursor.execute("SELECT pg_stat_force_next_flush()")

    def dead() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_force_next_flush()")
            cursor.execute(
                "SELECT n_dead_tup FROM pg_stat_user_tables "
                "WHERE relid = 'profiles_pendingevent'::regclass"
            )
            return int(cursor.fetchone()[0])

    deadline = time.monotonic() + 5
    while dead() < 500 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert dead() >= 500
    assert queue.vacuum_if_needed(10**9) is False  # not enough dead rows: left alone
    settings.CDP_QUEUE_VACUUM_DEAD_ROWS = 100
    assert vacuum_pending_events.apply().get() is True
    deadline = time.monotonic() + 5
    while dead() > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert dead() == 0
