"""The processing hand-off: claimable queue, counters and observed schema."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.test import Client

from cdp.paths import split_path
from profiles.models import EventCounter, ObservedEvent, ObservedProperty, PendingEvent
from profiles.pipeline import queue
from profiles.selectors import observed_types
from tests.fixtures import Tenant, post_collector


def send(client: Client, tenant: Tenant, events: list[dict[str, Any]]) -> None:
    for event in events:
        event.setdefault("messageId", str(uuid.uuid4()))
    response = post_collector(client, "/v1/batch", {"batch": events}, write_key=tenant.write_key)
    assert response.status_code == 200, response.content


def order(revenue: Any, user: str = "u-1", **props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "properties": {"revenue": revenue, **props},
    }


def test_counters_and_schema_after_processing(tenant_a: Tenant, client: Client) -> None:
    send(
        client,
        tenant_a,
        [
            order(10, currency="EUR", items={"sku": "A1", "qty": 2}),
            order("12.5"),
            {"type": "identify", "userId": "u-1", "traits": {"email": "a@x.io", "age": 31}},
            {"type": "page", "anonymousId": "a-1", "name": "Pricing", "properties": {"url": "/p"}},
        ],
    )
    assert queue.pending_count() == 4
    processed, more = queue.drain()
    assert (processed, more) == (4, False)
    assert queue.pending_count() == 0

    counts = {
        (c.type, c.event): c.count
        for c in EventCounter.objects.filter(workspace=tenant_a.workspace)
    }
    assert counts == {("track", "Order Completed"): 2, ("identify", ""): 1, ("page", "Pricing"): 1}
    assert EventCounter.objects.get(type="identify").source_id == tenant_a.source.pk

    seen = ObservedEvent.objects.get(type="track", event="Order Completed")
    assert seen.count == 2 and seen.first_seen <= seen.last_seen
    props = {
        (p.kind, p.path): p.value_types
        for p in ObservedProperty.objects.filter(workspace=tenant_a.workspace, type="track")
    }
    assert props[("property", "revenue")] == ["number", "string"]
    assert props[("property", "items.sku")] == ["string"]
    assert props[("property", "items.qty")] == ["number"]
    traits = ObservedProperty.objects.filter(type="identify", kind="trait")
    assert {t.path for t in traits} == {"email", "age"}


def test_processing_twice_counts_once(tenant_a: Tenant, client: Client) -> None:
    send(client, tenant_a, [order(1), order(2)])
    assert queue.drain()[0] == 2
    assert queue.drain()[0] == 0
    assert EventCounter.objects.get().count == 2
    # a duplicate resend is not processed again either
    assert queue.process_batch() == 0


def test_types_merge_across_batches(tenant_a: Tenant, client: Client) -> None:
    send(client, tenant_a, [order(1)])
    queue.drain()
    send(client, tenant_a, [order(None), order(True)])
    queue.drain()
    prop = ObservedProperty.objects.get(path="revenue")
    assert prop.value_types == ["boolean", "null", "number"]
    assert prop.count == 3
    assert ObservedEvent.objects.get(event="Order Completed").count == 3


def test_each_type_is_counted_with_its_numeric_strings_and_newest_example(
    tenant_a: Tenant, client: Client
) -> None:
    """The schema page's shares: values per JSON type, summed across batches; how many strings
    read as numbers (profiles.coercion); per type the newest event that sent one."""
    first = [order(60), order("60"), order(" 12.5 "), order("sixty"), order(None)]
    send(client, tenant_a, first)
    queue.drain()
    later = [order(75), order("1e3")]
    send(client, tenant_a, later)
    queue.drain()
    prop = ObservedProperty.objects.get(path="revenue")
    assert prop.type_counts == {"number": 2, "string": 4, "null": 1}
    assert prop.numeric_strings == 2  # "60" and " 12.5 "; not "sixty" nor "1e3"
    assert prop.count == 7
    newest = {kind: example["message_id"] for kind, example in prop.type_examples.items()}
    assert newest == {
        "number": later[0]["messageId"],
        "string": later[1]["messageId"],
        "null": first[4]["messageId"],
    }
    assert prop.type_examples["string"]["source_id"] == tenant_a.source.pk
    types = observed_types([prop])
    assert types.mixed and types.kind == "any"
    assert types.summary() == "text 57.1 %, number 28.6 %, null 14.3 %"
    assert [s["numeric"] for s in types.shares() if s["type"] == "string"] == [2]


def test_text_that_always_reads_as_numbers_is_offered_as_a_number(
    tenant_a: Tenant, client: Client
) -> None:
    send(client, tenant_a, [order("60"), order(" 7.5"), order(None)])
    queue.drain()
    types = observed_types(ObservedProperty.objects.filter(path="revenue"))
    assert types.strings_numeric and not types.mixed and types.kind == "number"
    send(client, tenant_a, [order(3)])
    queue.drain()
    types = observed_types(ObservedProperty.objects.filter(path="revenue"))
    assert types.mixed and types.kind == "number"  # mixed, but all of it compares as numbers
    send(client, tenant_a, [order("n/a")])
    queue.drain()
    assert observed_types(ObservedProperty.objects.filter(path="revenue")).kind == "any"


def test_nested_keys_are_dotted_paths_and_a_dot_inside_a_key_is_escaped(
    tenant_a: Tenant, client: Client
) -> None:
    send(
        client,
        tenant_a,
        [
            {
                "type": "identify",
                "userId": "u-1",
                "traits": {
                    "address": {"city": "Berlin", "geo": {"lat": 52.5}},
                    "utm.source": "ads",
                    "a\\b": 1,
                },
            }
        ],
    )
    queue.drain()
    paths = set(ObservedProperty.objects.filter(kind="trait").values_list("path", flat=True))
    assert paths == {"address.city", "address.geo.lat", "utm\\.source", "a\\\\b"}
    assert {split_path(p) for p in paths} == {
        ("address", "city"),
        ("address", "geo", "lat"),
        ("utm.source",),
        ("a\\b",),
    }


def test_workspaces_are_processed_and_counted_apart(
    tenant_a: Tenant, tenant_b: Tenant, client: Client
) -> None:
    send(client, tenant_a, [order(1)])
    send(client, tenant_b, [order(1), order(2)])
    assert queue.drain(workspace_id=tenant_b.workspace.pk)[0] == 2
    assert queue.pending_count(tenant_a.workspace.pk) == 1
    assert EventCounter.objects.get(workspace=tenant_b.workspace).count == 2
    assert not EventCounter.objects.filter(workspace=tenant_a.workspace).exists()
    assert queue.pending_workspaces() == [tenant_a.workspace.pk]


@pytest.mark.django_db(transaction=True)
def test_claims_skip_rows_locked_by_another_worker(tenant_a: Tenant) -> None:
    client = Client()
    send(client, tenant_a, [order(i) for i in range(10)])
    claimed_by_other: list[int] = []
    release = threading.Event()
    claimed = threading.Event()

    def other_worker() -> None:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT event_id FROM profiles_pendingevent ORDER BY event_id LIMIT 4"
                        " FOR UPDATE SKIP LOCKED"
                    )
                    claimed_by_other.extend(r[0] for r in cursor.fetchall())
                claimed.set()
                release.wait(10)
                raise RuntimeError("worker crashed")  # rolls back: its rows stay pending
        except RuntimeError:
            pass
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert claimed.wait(10)
    try:
        assert queue.process_batch(batch_size=100) == 6
        remaining = set(PendingEvent.objects.values_list("event_id", flat=True))
        assert remaining == set(claimed_by_other)
    finally:
        release.set()
        thread.join(10)
    # the crashed worker's rows are picked up afterwards and counted once
    assert queue.process_batch(batch_size=100) == 4
    assert EventCounter.objects.get().count == 10


@pytest.mark.django_db(transaction=True)
def test_parallel_workers_count_every_event_exactly_once(tenant_a: Tenant) -> None:
    client = Client()
    for _ in range(5):
        send(client, tenant_a, [order(i, user=f"u-{i % 7}") for i in range(100)])
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            while queue.process_batch(batch_size=37):
                pass
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert queue.pending_count() == 0
    assert EventCounter.objects.get().count == 500
    assert ObservedEvent.objects.get().count == 500
    assert ObservedProperty.objects.get(path="revenue").count == 500


def test_one_drain_per_slot_at_a_time(tenant_a: Tenant, client: Client, settings: Any) -> None:
    import psycopg
    from django.db import connection

    from profiles.tasks import process_pending_events
    from profiles.tasks.processing import DRAIN_LEASE_NAMESPACE, DRAIN_SLOTS_MAX

    settings.CDP_DRAINS_PER_WORKSPACE = 2
    send(client, tenant_a, [order(5, user=f"u-{n}") for n in range(12)])
    workspace_id = tenant_a.workspace.pk
    # another worker's session holds the lease of slot 0
    params = connection.get_connection_params()
    held = psycopg.connect(
        host=params.get("host"),
        port=params.get("port"),
        user=params.get("user"),
        dbname=params.get("dbname"),
        autocommit=True,
    )
    held.execute(
        "SELECT pg_advisory_lock(%s, %s)",
        [DRAIN_LEASE_NAMESPACE, workspace_id * DRAIN_SLOTS_MAX],
    )
    try:
        # another worker is draining slot 0: a task for that slot returns at once
        run = process_pending_events.apply(kwargs={"workspace_id": workspace_id, "slot": 0})
        assert run.get() == 0
        assert queue.pending_count(workspace_id) == 12
        # a kick without a slot only fans out (one task per slot) and processes nothing itself
        assert process_pending_events.apply(kwargs={"workspace_id": workspace_id}).get() == 0
        # slot 1 is free: its task drains exactly partition 1
        in_partition_1 = queue.pending_count(workspace_id, (1, 2))
        run = process_pending_events.apply(kwargs={"workspace_id": workspace_id, "slot": 1})
        assert run.get() == in_partition_1
        assert queue.pending_count(workspace_id) == 12 - in_partition_1
    finally:
        held.close()  # its session ends: the lease is gone
    run = process_pending_events.apply(kwargs={"workspace_id": workspace_id, "slot": 0})
    assert run.get() == 12 - in_partition_1
    assert queue.pending_count(workspace_id) == 0


def test_partitioned_drains_split_the_queue(tenant_a: Tenant, client: Client) -> None:
    events = [{"type": "track", "event": "Seen", "anonymousId": f"visitor-{n}"} for n in range(40)]
    send(client, tenant_a, events)
    workspace_id = tenant_a.workspace.pk
    first = queue.pending_count(workspace_id, (0, 2))
    second = queue.pending_count(workspace_id, (1, 2))
    assert first + second == 40 and first and second  # hashed anonymousIds spread
    assert queue.process_batch(workspace_id=workspace_id, partition=(0, 2)) == first
    assert queue.pending_count(workspace_id) == second
    assert queue.process_batch(workspace_id=workspace_id, partition=(1, 2)) == second
    # the same anonymousId always lands in the same partition
    send(client, tenant_a, [{"type": "page", "anonymousId": "visitor-3"} for _ in range(3)])
    assert {queue.pending_count(workspace_id, (n, 2)) for n in (0, 1)} == {0, 3}


class FakeClock:
    """Stands in for queue.time: monotonic() reads it, sleep() moves it (and records)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


def test_a_trickle_is_processed_in_batches_spaced_by_the_interval(monkeypatch: Any) -> None:
    """After a batch that was not full the drain waits out the rest of the interval (events
    pile up meanwhile and the next batch pays its fixed costs for more of them); full batches
    follow each other without a wait; the drain ends when a claim finds nothing."""
    clock = FakeClock()
    claims = iter([(12, 12, 0.05), (1000, 1000, 0.4), (30, 30, 0.1), (7, 7, 0.3), (0, 0, 0.01)])
    calls = []

    def claim_and_process(workspace_id: Any, batch_size: int, partition: Any) -> tuple[int, int]:
        done, claimed, took = next(claims)
        calls.append(clock.now)
        clock.now += took
        return done, claimed

    monkeypatch.setattr(queue, "time", clock)
    monkeypatch.setattr(queue, "claim_and_process", claim_and_process)

    processed, more = queue.drain(workspace_id=1, batch_size=1000, interval=0.25)

    assert (processed, more) == (1049, False)
    # 12 events in 0.05 s: wait 0.2; a full batch: no wait; 30 in 0.1 s: wait 0.15;
    # 7 in 0.3 s (longer than the interval): no wait; then nothing left
    assert clock.sleeps == [0.2, 0.15]
    assert [round(t - calls[0], 2) for t in calls] == [0.0, 0.25, 0.65, 0.9, 1.2]


def test_without_an_interval_a_drain_stops_after_a_batch_that_was_not_full(
    monkeypatch: Any,
) -> None:
    clock = FakeClock()
    claims = iter([(1000, 1000), (12, 12), (99, 99)])
    monkeypatch.setattr(queue, "time", clock)
    monkeypatch.setattr(queue, "claim_and_process", lambda *args: next(claims))

    assert queue.drain(workspace_id=1, batch_size=1000) == (1012, False)
    assert clock.sleeps == []


def test_the_claim_walks_the_queue_index_whatever_the_statistics_say(tenant_a: Tenant) -> None:
    """During a burst the queue outgrows its statistics (analysed when it was small, or never
    where autovacuum is off); planned from them, the claim read and sorted every pending row
    of the workspace (125 ms with 490,000 queued). It walks the index in order instead, and
    the pipeline's own statements are planned as usual afterwards."""
    workspace = tenant_a.workspace.pk
    insert = (
        "INSERT INTO profiles_pendingevent (event_id, workspace_id, route, enqueued_at) "
        "SELECT n, %s, n %% 1024, now() FROM generate_series(%s, %s) AS n"
    )
    with connection.cursor() as cursor:
        cursor.execute(insert, [workspace, 10**9, 10**9 + 9])
        cursor.execute("ANALYZE profiles_pendingevent")  # statistics of a nearly empty queue
        cursor.execute(insert, [workspace, 10**9 + 10, 10**9 + 60_000])
    plans: list[str] = []
    settings_after: list[tuple[str, str]] = []

    def explain_the_claim(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        cursor = context["cursor"].cursor  # the driver's: not wrapped again
        if "FOR UPDATE SKIP LOCKED" in sql and "profiles_pendingevent" in sql:
            cursor.execute(f"EXPLAIN {sql}", params)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
        result = execute(sql, params, many, context)
        if "RESET enable_sort" in sql:
            cursor.execute(
                "SELECT current_setting('enable_sort'), current_setting('enable_bitmapscan')"
            )
            settings_after.append(cursor.fetchone())
        return result

    with connection.execute_wrapper(explain_the_claim):
        queue.process_batch(workspace_id=workspace, batch_size=1000, partition=(0, 2))
    assert len(plans) == 1, plans
    # an index in event order (the workspace's, or the primary key's with the workspace as a
    # filter), read up to the LIMIT: no sort, no bitmap of every pending row, no full scan
    assert "Index Scan using" in plans[0], plans[0]
    assert not any(step in plans[0] for step in ("Sort", "Bitmap", "Seq Scan")), plans[0]
    assert settings_after == [("on", "on")]
    assert PendingEvent.objects.filter(workspace_id=workspace).count() == 60_001 - 1000
