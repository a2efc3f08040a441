"""The events table is partitioned by UTC day of arrival: events land in their day's
partition (or the default one until the day's partition exists, then they are moved), the
pipeline reads only the partitions of its batch, retention drops the days past every
workspace's period as whole partitions (derived rows first) and row-deletes only what a
shorter-keeping workspace must lose, the messageId dedup outlives the partition, and the
migration carries existing data over."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test import Client

from consent import retention
from profiles import partitions
from profiles.models import Event, EventMessage, PendingEvent, ProfileEvent
from profiles.pipeline.rows import load_events
from tests.fixtures import Tenant, send_events

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def order(user: str, message_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "track", "userId": user, "event": "Order Completed"}
    if message_id:
        event["messageId"] = message_id
    return event


def send(client: Client, tenant: Tenant, *events: dict[str, Any]) -> None:
    send_events(client, tenant, *events, drain=None)


def process() -> None:
    from profiles.pipeline import queue

    queue.drain(batch_size=500)


def where(event_ids: list[int]) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT tableoid::regclass::text FROM profiles_event WHERE id = ANY(%s)",
            [event_ids],
        )
        return {row[0] for row in cursor.fetchall()}


def at(moment: datetime, client: Client, tenant: Tenant, *events: dict[str, Any]) -> list[int]:
    before = set(Event.objects.values_list("id", flat=True))
    with time_machine.travel(moment, tick=False):
        send(client, tenant, *events)
        process()
    return sorted(set(Event.objects.values_list("id", flat=True)) - before)


def exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return bool(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_events_land_in_their_days_partition_and_are_moved_out_of_the_default(
    tenant_a: Tenant, client: Client
) -> None:
    assert partitions.is_partitioned()
    today = datetime.now(UTC).date()
    ids = at(datetime.now(UTC), client, tenant_a, order("u1"))
    assert where(ids) == {partitions.partition_name(today)}  # the migration made it

    # a day nobody created a partition for yet: the default partition takes it, nothing fails
    later = datetime.combine(today + timedelta(days=40), datetime.min.time(), tzinfo=UTC)
    stray = at(later + timedelta(hours=5), client, tenant_a, order("u2"), order("u3"))
    assert where(stray) == {partitions.DEFAULT_PARTITION}
    # the beat creates it (and the days around it): the rows move into it
    created = partitions.ensure_partitions(today=later.date(), ahead=1)
    assert partitions.partition_name(later.date()) in created
    assert where(stray) == {partitions.partition_name(later.date())}
    assert partitions.ensure_partitions(today=later.date(), ahead=1) == []  # idempotent
    # still one table to every reader: the API finds the events, the profiles were built
    found = tenant_a.api().get("/api/v1/events/", {"user_id": "u2"}).json()
    assert [e["id"] for e in found["results"]] == [stray[0]]
    assert ProfileEvent.objects.filter(event_id__in=stray).count() == 2


@pytest.mark.django_db(transaction=True)
def test_the_pipeline_reads_only_its_batchs_partitions(tenant_a: Tenant, client: Client) -> None:
    day = NOW.date()
    for offset in range(-3, 4):
        partitions.create_partition(day + timedelta(days=offset))
    with time_machine.travel(NOW, tick=False):
        send(client, tenant_a, order("u1"), order("u2"))
    claimed = list(PendingEvent.objects.values_list("event_id", "received_at"))
    assert len(claimed) == 2 and all(received == NOW for _, received in claimed)
    ids = [event_id for event_id, _ in claimed]
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN SELECT id FROM profiles_event WHERE id = ANY(%s) "
            "AND received_at BETWEEN %s AND %s",
            [ids, NOW, NOW],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert partitions.partition_name(day) in plan
    assert partitions.partition_name(day - timedelta(days=1)) not in plan
    assert partitions.DEFAULT_PARTITION not in plan
    assert [e.id for e in load_events(ids, (NOW, NOW))] == sorted(ids)
    process()
    assert ProfileEvent.objects.filter(event_id__in=ids).count() == 2


@pytest.mark.django_db(transaction=True)
def test_retention_drops_whole_days_and_row_deletes_only_the_shorter_keeping_workspace(
    tenant_a: Tenant, tenant_b: Tenant, client: Client
) -> None:
    retention.retention_policy_set(workspace=tenant_a.workspace, event_days=30, failed_event_days=7)
    retention.retention_policy_set(workspace=tenant_b.workspace, event_days=90, failed_event_days=7)
    old, middle = NOW - timedelta(days=100), NOW - timedelta(days=60)
    for moment in (old, middle, NOW):
        partitions.create_partition(moment.date())
    a_old = at(old, client, tenant_a, order("a", "m-a-old"), order("a"))
    b_old = at(old, client, tenant_b, order("b", "m-b-old"))
    a_mid = at(middle, client, tenant_a, order("a"))
    b_mid = at(middle, client, tenant_b, order("b"))
    at(NOW, client, tenant_a, order("a"))
    assert ProfileEvent.objects.filter(event_id__in=a_old + b_old).count() == 3

    with time_machine.travel(NOW, tick=False):
        reports = {r.workspace_id: r for r in retention.retention_enforce_all()}

    # the day 100 days back is past both periods: its partition is gone, derived rows too
    assert not exists(partitions.partition_name(old.date()))
    assert not Event.objects.filter(id__in=a_old + b_old).exists()
    assert not ProfileEvent.objects.filter(event_id__in=a_old + b_old).exists()
    # 60 days back is past A's 30 days but within B's 90: A's rows deleted, B's kept
    assert exists(partitions.partition_name(middle.date()))
    assert not Event.objects.filter(id__in=a_mid).exists()
    assert list(Event.objects.filter(id__in=b_mid).values_list("id", flat=True)) == b_mid
    a, b = reports[tenant_a.workspace.pk], reports[tenant_b.workspace.pk]
    assert a.day_counts == {str(old.date()): 2, str(middle.date()): 1}
    assert (a.events, a.profile_events) == (3, 3)
    assert b.day_counts == {str(old.date()): 1} and (b.events, b.profile_events) == (1, 1)

    # the dedup outlives the partition: the SDK retrying an old message stores nothing
    assert EventMessage.objects.filter(message_id="m-a-old").exists()
    assert at(NOW, client, tenant_a, order("a", "m-a-old")) == []

    # a workspace keeping events forever keeps every partition
    retention.retention_policy_set(
        workspace=tenant_b.workspace, event_days=None, failed_event_days=7
    )
    with time_machine.travel(NOW + timedelta(days=40), tick=False):
        retention.retention_enforce_all()
    assert exists(partitions.partition_name(middle.date()))
    assert list(Event.objects.filter(id__in=b_mid).values_list("id", flat=True)) == b_mid


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_existing_events_into_daily_partitions() -> None:
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("profiles", "0007_dead_letter_quota")])
    assert not partitions.is_partitioned()
    days = [date(2026, 3, 1), date(2026, 3, 2), date(2026, 6, 30)]
    with connection.cursor() as cursor:
        for n, day in enumerate(days * 2):
            cursor.execute(
                "INSERT INTO profiles_event (workspace_id, message_id, type, user_id, "
                '"timestamp", received_at, properties, traits, context, integrations, extra) '
                "VALUES (%s, %s, 'track', 'u', %s, %s, '{}', '{}', '{}', '{}', '{}') "
                "RETURNING id",
                [1 + n % 2, f"m-{n}", day, datetime.combine(day, datetime.min.time(), UTC)],
            )
            event_id = cursor.fetchone()[0]
        cursor.execute(
            "INSERT INTO profiles_pendingevent (event_id, workspace_id, enqueued_at, route) "
            "VALUES (%s, 2, now(), 0)",
            [event_id],
        )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert partitions.is_partitioned()
    names = {p.name for p in partitions.partitions()}
    assert {partitions.partition_name(d) for d in days} <= names
    assert partitions.DEFAULT_PARTITION in names
    assert Event.objects.count() == 6
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM profiles_event_default")
        assert cursor.fetchone()[0] == 0
    assert EventMessage.objects.count() == 6
    assert EventMessage.objects.get(workspace_id=2, message_id="m-5").event_id == event_id
    assert PendingEvent.objects.get(event_id=event_id).received_at == datetime(
        2026, 6, 30, tzinfo=UTC
    )
    # the sequence carries on after the copied rows
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO profiles_event (workspace_id, message_id, type, user_id, "
            '"timestamp", received_at, properties, traits, context, integrations, extra) '
            "VALUES (1, 'new', 'track', 'u', now(), now(), '{}', '{}', '{}', '{}', '{}') "
            "RETURNING id"
        )
        assert cursor.fetchone()[0] > event_id
