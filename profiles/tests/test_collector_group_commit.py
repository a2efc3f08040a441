"""Group commit (profiles/collector/storage.py): concurrent requests of one process share one
INSERT and its commit, and each still gets its own answer — its counts, its refused values, its
error — with nothing lost, nothing stored twice and no request left waiting."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import OperationalError, connection

from profiles.collector import storage
from profiles.collector.normalize import NormalizedEvent, normalize_event
from profiles.collector.service import batch_meta
from profiles.models import Event, EventMessage, PendingEvent
from tests.fixtures import Tenant, terminate_backend

pytestmark = pytest.mark.django_db(transaction=True)


def event(message_id: str, user: str = "u") -> NormalizedEvent:
    meta = batch_meta({}, datetime.now(tz=UTC))
    raw = {"type": "track", "event": "Viewed", "userId": user, "messageId": message_id}
    return normalize_event(raw, meta, forced_type=None)


class Gated:
    """Stands in for storage._insert: records how many requests each statement carried, and
    holds the first statement until every other thread has queued its request behind it, so
    the second statement carries them all."""

    def __init__(self, function: Any) -> None:
        self.function = function
        self.sizes: list[int] = []
        self.gate = threading.Event()

    def __call__(self, db: Any, requests: Any) -> list[int]:
        self.sizes.append(len(requests))
        if len(self.sizes) == 1:
            self.gate.wait(timeout=10)
        return self.function(db, requests)


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gated]:
    stand_in = Gated(storage._insert)
    monkeypatch.setattr(storage, "_insert", stand_in)
    yield stand_in
    stand_in.gate.set()
    storage._GROUP.close()


def run_concurrently(work: list[Any], gated: Gated) -> list[Any]:
    """Runs each callable in its own thread (the first one leads the first statement).
    Returns each callable's result or exception."""
    results: list[Any] = [None] * len(work)

    def run(index: int) -> None:
        try:
            results[index] = work[index]()
        except Exception as exc:  # noqa: BLE001 - compared by the test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    threads[0].start()
    wait_until(lambda: bool(gated.sizes))  # the leader holds its statement
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: len(storage._GROUP.waiting) == len(work) - 1)
    gated.gate.set()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a request was left waiting"
    return results


def wait_until(condition: Any, seconds: float = 10.0) -> None:
    pause = threading.Event()
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        pause.wait(0.01)
    raise AssertionError("timed out")


def test_concurrent_requests_share_a_statement_and_get_their_own_counts(
    tenant_a: Tenant, gated: Gated
) -> None:
    ws, src = tenant_a.workspace.pk, tenant_a.source.pk
    shared = uuid.uuid4().hex  # the same messageId in requests 1 and 2: stored once
    requests = [[event(uuid.uuid4().hex)]]
    requests += [[event(shared, "one"), event(uuid.uuid4().hex)], [event(shared, "two")]]
    requests += [[event(uuid.uuid4().hex) for _ in range(5)] for _ in range(9)]
    work = [
        lambda events=events: storage.insert_events(workspace_id=ws, source_id=src, events=events)
        for events in requests
    ]

    results = run_concurrently(work, gated)

    assert gated.sizes == [1, len(requests) - 1]  # the leader's own, then all the others
    assert all(isinstance(r, storage.InsertResult) for r in results), results
    inserted = [r.inserted for r in results]
    assert inserted[0] == 1 and inserted[3:] == [5] * 9
    # of the two requests repeating a messageId, exactly one stored it
    assert sorted(inserted[1:3]) == [0, 2] or sorted(inserted[1:3]) == [1, 1]
    assert inserted[1] + inserted[2] == 2
    total = 1 + 2 + 45
    assert sum(inserted) == total
    assert Event.objects.filter(workspace_id=ws).count() == total
    assert EventMessage.objects.filter(workspace_id=ws).count() == total
    assert PendingEvent.objects.filter(workspace_id=ws).count() == total
    assert Event.objects.filter(message_id=shared).count() == 1


def test_a_value_postgres_refuses_fails_only_its_own_event(tenant_a: Tenant, gated: Gated) -> None:
    """A NUL cannot be stored in a text column: the grouped statement fails, and every request
    is stored on its own — the bad one event by event, so only its bad event is refused."""
    ws, src = tenant_a.workspace.pk, tenant_a.source.pk
    bad = replace(event(uuid.uuid4().hex), event="Bad\x00name")
    good_neighbour = event(uuid.uuid4().hex)
    requests = [[event(uuid.uuid4().hex)], [bad, good_neighbour], [event(uuid.uuid4().hex)]]
    work = [
        lambda events=events: storage.insert_events(workspace_id=ws, source_id=src, events=events)
        for events in requests
    ]

    results = run_concurrently(work, gated)

    assert [r.inserted for r in results] == [1, 1, 1]
    assert results[0].rejected == [] and results[2].rejected == []
    ((refused, message),) = results[1].rejected
    assert refused is bad and "\\u0000 cannot be converted to text" in message
    assert Event.objects.filter(workspace_id=ws).count() == 3
    assert not Event.objects.filter(message_id=bad.message_id).exists()


def test_a_database_error_reaches_every_request_of_the_group(
    tenant_a: Tenant, gated: Gated
) -> None:
    """Postgres unreachable: each request of the group raises Django's OperationalError
    (answered 503 with Retry-After by the middleware) and none is left waiting."""
    ws, src = tenant_a.workspace.pk, tenant_a.source.pk
    insert = gated.function

    def unreachable(db: Any, requests: Any) -> list[int]:
        port = db.settings_dict["PORT"]
        db.close()
        db.settings_dict["PORT"] = free_port()  # nothing listens there
        try:
            return insert(db, requests)
        finally:
            db.settings_dict["PORT"] = port

    gated.function = unreachable
    work = [
        lambda: storage.insert_events(
            workspace_id=ws, source_id=src, events=[event(uuid.uuid4().hex)]
        )
        for _ in range(4)
    ]

    results = run_concurrently(work, gated)

    assert gated.sizes == [1, 3]
    assert all(isinstance(r, OperationalError) for r in results), results
    assert len({id(r) for r in results}) == 4  # each thread raises its own copy
    assert Event.objects.filter(workspace_id=ws).count() == 0
    gated.function = insert  # and the next request finds a working connection again
    stored = storage.insert_events(workspace_id=ws, source_id=src, events=[event(uuid.uuid4().hex)])
    assert stored.inserted == 1


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def persistent_connections() -> Iterator[None]:
    """Production's persistent connections (the test run closes them after each use)."""
    settings = storage._GROUP.database().settings_dict
    before = settings["CONN_MAX_AGE"]
    settings["CONN_MAX_AGE"] = 600
    try:
        yield
    finally:
        settings["CONN_MAX_AGE"] = before
        storage._GROUP.close()


def test_a_connection_dropped_by_the_server_costs_no_request(
    tenant_a: Tenant, persistent_connections: None
) -> None:
    """A Postgres restart or failover closes the group's idle connection; the next statement
    is sent again on a fresh one (the messageId dedup makes a repeat harmless)."""
    ws, src = tenant_a.workspace.pk, tenant_a.source.pk
    first = storage.insert_events(workspace_id=ws, source_id=src, events=[event(uuid.uuid4().hex)])
    assert first.inserted == 1
    db = storage._GROUP.db
    assert db is not None and db.connection is not None, "kept between statements"
    pid = db.connection.info.backend_pid
    terminate_backend(pid)

    stored = storage.insert_events(workspace_id=ws, source_id=src, events=[event(uuid.uuid4().hex)])

    assert stored.inserted == 1
    assert db.connection is not None and db.connection.info.backend_pid != pid
    assert Event.objects.filter(workspace_id=ws).count() == 2


def test_inside_a_transaction_the_callers_connection_is_used(tenant_a: Tenant) -> None:
    """Replay stores its event in the caller's transaction: rolled back with it."""
    from django.db import transaction

    ws, src = tenant_a.workspace.pk, tenant_a.source.pk
    with pytest.raises(RuntimeError), transaction.atomic():
        assert (
            storage.insert_events(
                workspace_id=ws, source_id=src, events=[event(uuid.uuid4().hex)]
            ).inserted
            == 1
        )
        raise RuntimeError("roll back")
    assert Event.objects.filter(workspace_id=ws).count() == 0


def prepared_inserts(db: Any) -> list[int]:
    """Executions of each prepared copy of the grouped INSERT on the group's connection."""
    rows = db.connection.execute(
        "SELECT generic_plans + custom_plans FROM pg_prepared_statements"
        " WHERE statement LIKE '%%INSERT INTO profiles_eventmessage%%' ORDER BY prepare_time"
    ).fetchall()
    return [int(row[0]) for row in rows]


def test_the_grouped_insert_is_prepared_once_per_connection(
    tenant_a: Tenant, persistent_connections: None
) -> None:
    """Postgres parses and plans the statement once per connection, not once per request (for
    a single event that was half of its CPU), and a connection the server dropped prepares it
    again on the fresh one."""
    ws, src = tenant_a.workspace.pk, tenant_a.source.pk
    for _ in range(4):
        stored = storage.insert_events(
            workspace_id=ws, source_id=src, events=[event(uuid.uuid4().hex)]
        )
        assert stored.inserted == 1
    db = storage._GROUP.db
    assert db is not None
    assert prepared_inserts(db) == [4]

    pid = db.connection.info.backend_pid
    terminate_backend(pid)
    for _ in range(2):
        storage.insert_events(workspace_id=ws, source_id=src, events=[event(uuid.uuid4().hex)])

    assert db.connection.info.backend_pid != pid
    assert prepared_inserts(db) == [2]
    assert Event.objects.filter(workspace_id=ws).count() == 6


def test_a_refused_value_on_the_first_statement_leaves_the_connection_working(
    tenant_a: Tenant, persistent_connections: None
) -> None:
    """The statement that prepares the INSERT is refused (a NUL in a text column): the event is
    refused alone, and the statements after it, on the same connection, store theirs."""
    ws, src = tenant_a.workspace.pk, tenant_a.source.pk
    bad = replace(event(uuid.uuid4().hex), event="Bad\x00name")

    refused = storage.insert_events(workspace_id=ws, source_id=src, events=[bad])
    stored = [
        storage.insert_events(workspace_id=ws, source_id=src, events=[event(uuid.uuid4().hex)])
        for _ in range(3)
    ]

    assert refused.inserted == 0 and refused.rejected[0][0] is bad
    assert [s.inserted for s in stored] == [1, 1, 1]
    db = storage._GROUP.db
    assert db is not None and sum(prepared_inserts(db)) >= 3
    assert Event.objects.filter(workspace_id=ws).count() == 3


def test_behind_a_pooler_without_prepared_statements_nothing_is_prepared(
    tenant_a: Tenant, persistent_connections: None, settings: Any
) -> None:
    """DB_PREPARED_STATEMENTS=0 (PgBouncer in transaction mode before 1.21): the statement
    is sent unprepared, as Django sends its own."""
    settings.CDP_DB_PREPARED_STATEMENTS = False
    ws, src = tenant_a.workspace.pk, tenant_a.source.pk
    for _ in range(3):
        storage.insert_events(workspace_id=ws, source_id=src, events=[event(uuid.uuid4().hex)])
    db = storage._GROUP.db
    assert db is not None
    assert prepared_inserts(db) == []
    assert Event.objects.filter(workspace_id=ws).count() == 3
