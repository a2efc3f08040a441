"""Raw psycopg access on Django's connection, for the few statements where Django's
client-side parameter quoting costs more than the query (bulk unnest inserts and updates)."""

from __future__ import annotations

import contextlib
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


# The CPU priority (nice value, 0-19) a Celery worker gives the server processes of its
# database sessions where Postgres runs on the same machine (cdp/celery.py sets it to
# CDP_WORKER_NICE in a worker; 0: leave them alone).
session_nice = 0


def lower_session_priority(sender: Any, connection: Any, **_: Any) -> None:
    """`connection_created` in a worker: its new session's server process runs at the
    worker's priority, so that on a machine shared with the web server the collector's
    statements go first. Most of a worker's work is its statements (in the pipeline about 2.5
    times its Python time), and each Postgres backend leads a session of its own, which Linux
    schedules as a group of its own (autogroup, on by default) whatever its nice value: so the
    group's nice value is lowered, and the process's, for kernels without autogroup.

    Done only for a Postgres process of this machine that started when the session did (so a
    server in another PID namespace, a container, never has an unrelated process reniced) and
    leads its own session (so no other process's group is touched), and only where this user
    may lower its priority (the embedded Postgres, or root)."""
    if session_nice <= 0 or connection.vendor != "postgresql":
        return
    backend = backend_process(connection)
    if backend is not None:
        renice_backend(*backend, session_nice)


def backend_process(connection: Any) -> tuple[int, float] | None:
    """The server process of a connection's session and its start (Unix time)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, extract(epoch FROM backend_start)::float8 FROM pg_stat_activity "
            "WHERE pid = pg_backend_pid()"
        )
        row = cursor.fetchone()
    return (int(row[0]), float(row[1])) if row is not None else None


def renice_backend(pid: int, started: float, nice: int) -> bool:
    """Lower the priority of the local Postgres process `pid`, started at `started` (Unix
    time), and of its session's scheduling group, to `nice`; whether it was done (never
    raised, never another process)."""
    import os

    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
        with open("/proc/stat", encoding="ascii") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, StopIteration):
        return False  # no such process here, or no /proc
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    session, start_ticks = int(fields[3]), int(fields[19])
    if not name.startswith("postgres") or session != pid:
        return False
    if abs(boot + start_ticks / os.sysconf("SC_CLK_TCK") - started) > 2.0:
        return False
    try:
        if os.getpriority(os.PRIO_PROCESS, pid) < nice:
            os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError:
        return False  # not ours to renice
    group = f"/proc/{pid}/autogroup"
    with contextlib.suppress(OSError, ValueError, IndexError):  # a kernel without autogroup
        with open(group, encoding="ascii") as f:
            current = int(f.read().rsplit("nice", 1)[1])  # "/autogroup-85 nice 0"
        if current < nice:
            with open(group, "w", encoding="ascii") as f:
                f.write(str(nice))
    return True
