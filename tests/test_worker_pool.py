"""The Celery workers' prefork pool (cdp/celery_pool.py, the `CELERY_WORKER_POOL` setting): a
real worker started without `--pool` runs it, replaces a pool process that was SIGKILLed, and
goes on processing events; the worker and every pool process, the replacement included, run at
the CPU priority `CDP_WORKER_NICE` (cdp/celery.py), and so do the local Postgres processes of their
sessions; a pool process keeps its database connection from task to task, and no task's
session lock outlives the task."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.conf import settings
from django.db import connection, connections
from django.test import Client

from cdp import celery_pool, db
from profiles.models import PendingEvent
from tests.fixtures import CeleryTestQueues, Tenant, post_collector
from tests.test_processing_worker import start_worker, stop_worker, wait_for

ROOT = Path(__file__).resolve().parent.parent


def test_the_setting_names_the_pool_and_it_checks_often() -> None:
    from celery.concurrency import get_implementation

    assert get_implementation(settings.CELERY_WORKER_POOL) is celery_pool.TaskPool
    assert celery_pool.TaskPool.Pool is celery_pool.AsynPool
    assert celery_pool.MAINTAIN_SECONDS < 5.0  # Celery's own pool checks every 5 s


@pytest.fixture
def prefork_worker(transactional_db: Any, celery_test_queues: CeleryTestQueues) -> Any:
    proc = start_worker(celery_test_queues)  # no --pool: the setting's
    try:
        yield proc
    finally:
        stop_worker(proc)


def _pool(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    return [p for p in psutil.Process(proc.pid).children() if p.is_running()]


def _batch(n: int) -> dict[str, Any]:
    return {
        "batch": [
            {"type": "track", "event": "E", "userId": f"u-{i}", "messageId": str(uuid.uuid4())}
            for i in range(n)
        ]
    }


def _worker_nice() -> int:
    """What the worker's processes run at: the setting, or this process's if already nicer
    (a priority is never raised)."""
    return max(settings.CDP_WORKER_NICE, os.getpriority(os.PRIO_PROCESS, 0))


def test_a_killed_pool_process_is_replaced_and_work_goes_on(
    tenant_a: Tenant, prefork_worker: subprocess.Popen[bytes]
) -> None:
    assert settings.CDP_WORKER_NICE > 0  # the default: the web server comes first
    assert wait_for(lambda: len(_pool(prefork_worker)) == 2, timeout=60)
    assert psutil.Process(prefork_worker.pid).nice() == _worker_nice()
    assert [p.nice() for p in _pool(prefork_worker)] == [_worker_nice()] * 2
    answer = post_collector(Client(), "/v1/batch", _batch(10), write_key=tenant_a.write_key)
    assert answer.status_code == 200
    assert wait_for(lambda: not PendingEvent.objects.exists(), timeout=30)

    victim = _pool(prefork_worker)[0]
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    assert wait_for(
        lambda: len(pids := {p.pid for p in _pool(prefork_worker)}) == 2 and victim.pid not in pids,
        timeout=30,
    ), "the killed pool process was not replaced"
    time.sleep(0.5)
    answer = post_collector(Client(), "/v1/batch", _batch(10), write_key=tenant_a.write_key)
    assert answer.status_code == 200
    assert wait_for(lambda: not PendingEvent.objects.exists(), timeout=30)
    assert prefork_worker.poll() is None
    assert [p.nice() for p in _pool(prefork_worker)] == [_worker_nice()] * 2


@pytest.mark.parametrize("value", ["-1", "20"])
def test_a_worker_priority_out_of_range_is_refused_at_start_up(value: str) -> None:
    result = subprocess.run(  # noqa: S603 - our interpreter
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "cdp.settings", "CDP_WORKER_NICE": value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"CDP_WORKER_NICE={value}: expected 0 to 19" in result.stderr


def _postgres_ports(process: psutil.Process) -> set[int]:
    """Local ports of the process's TCP connections to the test database's server."""
    port = int(connection.settings_dict.get("PORT") or 5432)
    return {
        c.laddr.port for c in process.net_connections("inet") if c.raddr and c.raddr.port == port
    }


def _send_and_process(client: Client, tenant: Tenant) -> None:
    answer = post_collector(client, "/v1/batch", _batch(10), write_key=tenant.write_key)
    assert answer.status_code == 200
    assert wait_for(lambda: not PendingEvent.objects.exists(), timeout=30)
    time.sleep(0.3)  # so the next post kicks again (CDP_KICK_INTERVAL_MS)


def test_a_pool_process_keeps_its_database_connection_from_task_to_task(
    tenant_a: Tenant, prefork_worker: subprocess.Popen[bytes]
) -> None:
    """Celery's Django fix-up closed every connection after every task: each 1-s drain turn
    opened a new Postgres session (about two a second under load). The connection now lives
    like a web server thread's: for CONN_MAX_AGE, checked before reuse."""
    if (connection.settings_dict.get("HOST") or "").startswith("/"):
        pytest.skip("the test database is reached over a Unix socket")
    assert wait_for(lambda: len(_pool(prefork_worker)) == 2, timeout=60)
    client = Client()
    for _ in range(3):  # warm: both pool processes have run a task and connected
        _send_and_process(client, tenant_a)
    before = {p.pid: _postgres_ports(p) for p in _pool(prefork_worker)}
    assert all(before.values()), f"a pool process holds no connection between tasks: {before}"
    for _ in range(5):
        _send_and_process(client, tenant_a)
    after = {p.pid: _postgres_ports(p) for p in _pool(prefork_worker)}
    assert after == before  # the same connections: no session opened by five rounds of tasks
    # their server processes, and the scheduling groups they lead, run at the worker's
    # priority (Postgres being on this machine)
    ports = sorted(set().union(*after.values()))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s)", [ports])
        backends = [row[0] for row in cursor.fetchall()]
    assert len(backends) == len(ports)
    if not _may_renice(backends[0]):
        pytest.skip("Postgres runs as another user, whom this one may not renice")
    assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in backends} == {_worker_nice()}
    if Path("/proc/self/autogroup").exists():
        assert {_group_nice(pid) for pid in backends} == {_worker_nice()}


def _may_renice(pid: int) -> bool:
    return os.geteuid() == 0 or os.stat(f"/proc/{pid}").st_uid == os.geteuid()


def _group_nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/autogroup").read_text().rsplit("nice", 1)[1])


def test_a_backend_is_reniced_only_when_it_is_the_sessions_own(transactional_db: Any) -> None:
    other = connections.create_connection("default")
    try:
        backend = db.backend_process(other)
        assert backend is not None
        pid, started = backend
        if not _may_renice(pid):
            pytest.skip("Postgres runs as another user, whom this one may not renice")
        before = os.getpriority(os.PRIO_PROCESS, pid)
        # a process with the same pid that did not start with the session (a server in
        # another PID namespace): left alone
        assert not db.renice_backend(pid, started - 3600, before + 5)
        assert os.getpriority(os.PRIO_PROCESS, pid) == before
        # not a Postgres process (this one): left alone
        me = psutil.Process()
        assert not db.renice_backend(me.pid, me.create_time(), 19)
        assert os.getpriority(os.PRIO_PROCESS, 0) != 19
        # the session's own: lowered with its scheduling group, and never raised again
        assert db.renice_backend(pid, started, before + 5)
        assert os.getpriority(os.PRIO_PROCESS, pid) == before + 5
        if Path("/proc/self/autogroup").exists():
            assert _group_nice(pid) == before + 5
        assert db.renice_backend(pid, started, before + 1)
        assert os.getpriority(os.PRIO_PROCESS, pid) == before + 5
    finally:
        other.close()


def test_a_session_lock_left_by_a_task_ends_with_the_task(transactional_db: Any) -> None:
    """A task's lease (a session-level advisory lock) is released by the task; should one be
    left, the end of the task releases it — the connection, kept for the next task, would
    otherwise hold it for as long as the process lives."""
    with persistent_connection():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid(), pg_advisory_lock(7399, 1)")
            backend = cursor.fetchone()[0]
        db.end_of_task()
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(7399, 1), pg_advisory_unlock(7399, 1)")
                assert cursor.fetchone() == (True, True)
        finally:
            other.close()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            assert cursor.fetchone()[0] == backend  # the same session, kept for the next task


def test_a_connection_left_in_a_transaction_is_not_kept(transactional_db: Any) -> None:
    with persistent_connection():
        connection.set_autocommit(False)  # a task that began a transaction and never ended it
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        db.end_of_task()
        assert connection.connection is None  # closed: its transaction rolled back with it
        connection.set_autocommit(True)


@contextlib.contextmanager
def persistent_connection() -> Iterator[None]:
    """The connection as a worker's: kept for CONN_MAX_AGE (the tests' default closes it after
    each request)."""
    before = connection.settings_dict["CONN_MAX_AGE"]
    connection.close()
    connection.settings_dict["CONN_MAX_AGE"] = 600
    try:
        yield
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = before
        connection.close()
