"""Raw psycopg access on Django's connection, for the few statements where Django's
client-side parameter quoting costs more than the query (bulk unnest inserts and updates)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import orjson
import psycopg
from django.db import connection


@contextmanager
def server_cursor() -> Iterator[psycopg.Cursor]:
    """A psycopg cursor with server-side binding (use %b for binary parameters), in the same
    transaction as the surrounding Django code."""
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def json_rows(rows: Iterable[Sequence[Any]]) -> str:
    """Many rows as ONE text parameter (a JSON array of arrays). Postgres unpacks it in C with
    json_rows_select(); psycopg's Python-level array dumping cost more than the statements."""
    return orjson.dumps(list(rows), default=_json_default).decode()


def json_rows_select(columns: Sequence[tuple[str, str]], param: str = "%s") -> str:
    """`SELECT (r->>0)::bigint AS id, (r->1)::jsonb AS traits, … FROM json_array_elements(…)`
    for rows sent with json_rows(); `columns` are (name, SQL type) pairs of constants."""
    parts = [
        f"(r->{i})::jsonb AS {name}" if kind == "jsonb" else f"(r->>{i})::{kind} AS {name}"
        for i, (name, kind) in enumerate(columns)
    ]
    return f"SELECT {', '.join(parts)} FROM json_array_elements({param}::json) AS x(r)"  # noqa: S608


ANALYTIC_WORK_MEM = "256MB"


def analytic_settings(cursor: Any, *, hash_joins_only: bool = True) -> None:
    """For one whole-workspace scan, inside its transaction: sorts and hashes in memory (not
    spilled to disk a few megabytes at a time), and — unless told otherwise — hash joins
    only: on tables not analysed since a bulk load the planner guesses one row per side and
    would nest a loop over every event once per person."""
    cursor.execute("SET LOCAL work_mem = %s", [ANALYTIC_WORK_MEM])
    if hash_joins_only:
        cursor.execute("SET LOCAL enable_nestloop = off")


# Postgres 14+ can poll a client's socket while it runs a query: without it, a backend whose
# client died (a worker SIGKILLed, OOM-killed, a lost machine) while it waited for a lock or ran
# a long statement lives on until it next writes to the socket, holding every lock of its
# transaction (profile rows, the workspace's identity lock) meanwhile. Measured with the
# pipeline benchmark's crash scenario: the events of the people it held were put off, then
# waited, and a probe took up to 20-26 s in some runs instead of under 1 s.
MIN_CHECK_VERSION = 140000


def check_dead_clients(sender: Any, connection: Any, **_: Any) -> None:
    """`connection_created`: ask Postgres to check every CDP_DB_CLIENT_CHECK_MS whether the
    client of a running query is still there, and to end the query (and its transaction's
    locks) when not. Off with 0, and on servers older than 14 (which lack the setting)."""
    from django.conf import settings

    interval = int(getattr(settings, "CDP_DB_CLIENT_CHECK_MS", 0))
    if interval <= 0 or connection.vendor != "postgresql":
        return
    if connection.pg_version < MIN_CHECK_VERSION:
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SET client_connection_check_interval = {interval}")


def end_of_task() -> None:
    """After a Celery task (cdp/celery.py): no session-level advisory lock — a task's lease —
    outlives the task on a connection the next task reuses (each task releases its own; this
    makes sure, in one round trip), and a connection that is broken, left in a transaction or
    older than CONN_MAX_AGE is closed, as after a web request."""
    from django.db import DatabaseError, close_old_connections, connections

    for conn in connections.all(initialized_only=True):
        if conn.connection is None or conn.vendor != "postgresql" or conn.in_atomic_block:
            continue
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock_all()")
        except DatabaseError:
            conn.close()  # its session and every lock it held end with it
    close_old_connections()
