"""The postgres (warehouse) kind against a second, real database on 127.0.0.1: a synced
audience becomes rows, a removal deletes its row, a re-run sends nothing, a deletion notice
deletes every row of the person; a retried batch changes nothing more; refused logins,
unknown databases, malformed DSNs and the CDP's own database fail for good, an unreachable
server is retried; "Send test" reports the table's rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import orjson
import psycopg
import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from activation import connectors
from activation.connectors.base import Target
from activation.models import DeliveryAttempt, Destination
from activation.tests.connector_helpers import (
    audience_sync,
    closed_port,
    delete_person,
    deletion,
    destination,
    event,
    leave,
    statuses,
    target,
    upsert,
)
from activation.tests.helpers import drain, run
from cdp.errors import ValidationFailed
from tests.fixtures import Tenant, send_events

SERVER = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture
def warehouse() -> Iterator[str]:
    """A database of this test only; its DSN."""
    name = f"cdp_warehouse_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}"
    finally:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rows(dsn: str, sql: str = "SELECT * FROM audience_members ORDER BY profile_id") -> list[Any]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def pg_destination(
    tenant: Tenant, dsn: str, table: str = "audience_members", **kw: Any
) -> Destination:
    return destination(tenant, "postgres", {"table": table, "dsn": dsn}, **kw)


def test_sync_mirrors_the_audience_into_a_table(tenant_a: Tenant, warehouse: str) -> None:
    dest = pg_destination(tenant_a, warehouse)
    assert "dsn" not in dest.config and dest.secret_names == ["dsn"]
    sync = audience_sync(tenant_a, dest, 5)
    before = timezone.now()
    drain(dest)
    held = rows(warehouse)
    assert len(held) == 5
    profile_id, audience, identifiers, fields, synced_at = held[0]
    assert audience == sync.segment.key
    assert identifiers["user_id"] == ["user-0"] and len(identifiers["email_sha256"][0]) == 64
    assert fields == {"firstName": "P0", "plan": "pro"}
    assert before - timedelta(seconds=5) < synced_at <= timezone.now()

    send_events(
        Client(),
        tenant_a,
        {"type": "identify", "userId": "user-2", "traits": {"first_name": "Two"}},
    )
    leave(tenant_a, "user-4")
    delta = run(sync)
    assert delta is not None and (delta.updated, delta.removed) == (1, 1)
    drain(dest)
    held = rows(warehouse)
    assert [r[2]["user_id"][0] for r in held] == ["user-0", "user-1", "user-2", "user-3"]
    assert held[2][3]["firstName"] == "Two" and held[2][4] > synced_at
    assert run(sync) is None  # nothing changed: nothing sent
    assert rows(warehouse) == held


def test_a_deletion_deletes_every_row_of_the_person(tenant_a: Tenant, warehouse: str) -> None:
    dest = pg_destination(tenant_a, warehouse, table="public.members")
    audience_sync(tenant_a, dest, 3)
    drain(dest)
    table = "SELECT profile_id, identifiers->'user_id'->>0 FROM members ORDER BY 1"
    held = dict((user, pid) for pid, user in rows(warehouse, table))
    person = held["user-1"]
    # the person also has an event and a row in a second audience
    connector = connectors.get("postgres")
    assert connector.send(
        target(dest), [event(1, person), upsert(2, person, "p1@example.com", "vip")]
    ).ok
    delete_person(tenant_a, "user-1")
    drain(dest)
    assert statuses(dest)[-1] == ("delivered", "", 1)
    assert [u for _, u in rows(warehouse, table)] == ["user-0", "user-2"]
    assert rows(warehouse, "SELECT count(*) FROM members_events") == [(0,)]


def test_a_retried_batch_changes_nothing_more(tenant_a: Tenant, warehouse: str) -> None:
    dest = pg_destination(tenant_a, warehouse)
    connector = connectors.get("postgres")
    items = [upsert(1, 10, "a@example.com"), event(2, 10), event(3, 11), deletion(4, 99)]
    first = connector.send(target(dest), items)
    assert first.ok and first.request["rows_changed"] == 3
    again = connector.send(target(dest), items)
    assert again.ok and again.request["rows_changed"] == 1  # the upsert rewrites its row
    assert [(r[0], r[1], r[2]) for r in rows(warehouse)] == [
        (10, "vip", {"email": ["a@example.com"]})
    ]
    events = rows(
        warehouse, "SELECT key::text, profile_id, type, event FROM audience_members_events"
    )
    assert sorted(events) == sorted(
        [
            (items[1].key, 10, "track", "Order Completed"),
            (items[2].key, 11, "track", "Order Completed"),
        ]
    )
    payload = rows(warehouse, "SELECT payload FROM audience_members_events WHERE profile_id = 11")
    assert payload[0][0]["properties"] == {"total": 12.5}


def test_refused_logins_and_bad_settings_fail_for_good(tenant_a: Tenant, warehouse: str) -> None:
    # the server trusts 127.0.0.1, so a wrong login is a user that does not exist
    wrong = pg_destination(
        tenant_a, warehouse.replace("postgres@", "nobody:hunter2-secret@"), name="Wrong"
    )
    audience_sync(tenant_a, wrong, 2)
    drain(wrong)
    assert statuses(wrong) == [("dead", "pg_auth_failed", 1)] * 2
    attempt = DeliveryAttempt.objects.get(destination=wrong)
    assert "refused the user or password" in attempt.error
    assert "hunter2" not in attempt.error + orjson.dumps(attempt.request).decode()

    connector = connectors.get("postgres")
    items = [upsert(1, 1, "a@example.com"), event(2, 1)]

    def outcome(dsn: str, table: str = "audience_members") -> tuple[str, bool]:
        """A send with these settings, as validation would not have let them be saved."""
        settings = Target(
            0, tenant_a.workspace.pk, "x", "postgres", {"table": table}, {"dsn": dsn}, 2, 10
        )
        result = connector.send(settings, items)
        assert "s3cr3t-pw" not in result.error + orjson.dumps(result.request).decode()
        return result.reason, result.retryable

    assert outcome(f"{SERVER}/no_such_database_xyz") == ("pg_unknown_database", False)
    assert outcome("postgresql://u:s3cr3t-pw@[::1/x") == ("invalid_dsn", False)
    assert outcome(f"postgresql://postgres:s3cr3t-pw@127.0.0.1:{closed_port()}/x") == (
        "connection_error",
        True,
    )
    connection.ensure_connection()
    own = connection.connection.info.dsn  # the CDP's own (test) database, however reached
    assert outcome(own) == ("pg_own_database", False)
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("CREATE TABLE legacy (id int PRIMARY KEY, note text)")
    assert outcome(warehouse, "legacy") == ("pg_table_mismatch", False)

    with pytest.raises(ValidationFailed) as bad:
        destination(tenant_a, "postgres", {"table": "bad-name; drop", "dsn": "host=x s3cr3t-pw"})
    assert set(bad.value.fields) == {"config.table", "config.dsn"}
    assert "s3cr3t-pw" not in str(bad.value.fields)


def test_send_test_reports_the_table(tenant_a: Tenant, warehouse: str) -> None:
    connector = connectors.get("postgres")
    dest = pg_destination(tenant_a, warehouse, table="public.crm_members")
    result = connector.test(target(dest))
    assert result.ok and "table public.crm_members is ready and holds 0 row(s)" in result.message
    assert rows(warehouse, "SELECT count(*) FROM crm_members") == [(0,)]
    wrong = pg_destination(
        tenant_a, warehouse.replace("postgres@", "nobody:pw-secret-1@"), name="Wrong"
    )
    refused = connector.test(target(wrong))
    assert not refused.ok and "refused the user or password" in refused.message
    assert "pw-secret-1" not in refused.message
    off = pg_destination(tenant_a, f"postgresql://postgres@127.0.0.1:{closed_port()}/x", name="Off")
    unreachable = connector.test(target(off))
    assert not unreachable.ok and "cannot connect" in unreachable.message
