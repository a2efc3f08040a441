"""/healthz and /readyz against the real Postgres, Redis and a real Celery worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import close_old_connections, connection
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client
from django.test.utils import CaptureQueriesContext

from cdp import health
from cdp import tasks as cdp_tasks
from cdp.celery import app as celery_app
from cdp.redis import client as redis_client
from tests.fixtures import CeleryTestQueues, terminate_our_backend
from tests.test_processing_worker import database_url, wait_for

ROOT = Path(__file__).resolve().parent.parent.parent
COMPONENTS = {"database", "migrations", "broker", "worker", "beat"}


@pytest.fixture(autouse=True)
def _fresh_health_state() -> Iterator[None]:
    def wipe() -> None:
        redis_client().delete(health.WORKERS_KEY, health.BEAT_KEY)
        health.forget_migrations()

    wipe()
    yield
    wipe()


def alive() -> None:
    """Heartbeat and tick as a worker and beat's task write them."""
    health.worker_heartbeat("celery@test")
    health.beat_tick()


def readyz() -> Any:
    return Client().get("/readyz")


def served_readyz() -> Any:
    """A GET handled as a server handles it: Django's request_started/finished hooks check the
    persistent connection around the request (its test client turns them off)."""
    close_old_connections()
    try:
        return readyz()
    finally:
        close_old_connections()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_healthz_answers_without_database_session_or_login() -> None:
    # no django_db mark: any database access would fail the test
    response = Client(enforce_csrf_checks=True).get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "sessionid" not in response.cookies
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_ready_when_every_component_is_ok() -> None:
    alive()
    response = readyz()
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["components"]) == COMPONENTS
    assert all(c["ok"] for c in body["components"].values()), body
    assert body["components"]["migrations"]["unapplied"] == []
    assert body["components"]["worker"]["fresh_workers"] == 1
    assert body["components"]["database"]["latency_ms"] < 1000


@pytest.mark.django_db
def test_readyz_is_cheap_once_warm(monkeypatch: Any) -> None:
    """The first check loads the migration graph; once every migration is applied, a check is
    two statements (the database's ping) and Redis reads, however often it is called."""
    alive()
    assert readyz().status_code == 200  # loads the migration graph once

    def no_second_load() -> list[str]:
        raise AssertionError("the migration graph was loaded again")

    monkeypatch.setattr(health, "unapplied_migrations", no_second_load)
    for _ in range(5):
        with CaptureQueriesContext(connection) as queries:
            assert readyz().status_code == 200
        statements = [q["sql"] for q in queries.captured_queries]
        assert [sql for sql in statements if "SAVEPOINT" not in sql] == [
            f"SET LOCAL statement_timeout = {health.STATEMENT_TIMEOUT_MS}",
            "SELECT 1",
        ]


@pytest.mark.django_db
@pytest.mark.parametrize("stale", ["worker", "beat"])
def test_a_stale_heartbeat_or_tick_is_not_ready(stale: str, settings: Any) -> None:
    settings.CDP_READY_WORKER_MAX_AGE = 60
    settings.CDP_READY_BEAT_MAX_AGE = 120
    alive()
    if stale == "worker":
        health.worker_heartbeat("celery@test", now=time.time() - 61)
    else:
        health.beat_tick(now=time.time() - 121)
    response = readyz()
    assert response.status_code == 503
    components = response.json()["components"]
    assert components[stale]["ok"] is False
    assert components[stale]["age_seconds"] > components[stale]["max_age_seconds"]
    assert [name for name, c in components.items() if not c["ok"]] == [stale]


@pytest.mark.django_db
def test_no_heartbeat_at_all_is_not_ready() -> None:
    response = readyz()
    assert response.status_code == 503
    worker = response.json()["components"]["worker"]
    assert worker == {"ok": False, "age_seconds": None, "max_age_seconds": 60, "fresh_workers": 0}


@pytest.mark.django_db
def test_an_unreachable_broker_is_not_ready_and_its_password_is_not_shown(settings: Any) -> None:
    alive()
    settings.CELERY_BROKER_URL = f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    response = readyz()
    assert time.monotonic() - started < 2
    assert response.status_code == 503
    broker = response.json()["components"]["broker"]
    assert broker["ok"] is False
    assert "ConnectionError" in broker["error"]
    assert b"s3cret-pw" not in response.content


def test_credentials_in_an_error_message_are_masked() -> None:
    described = health.describe(ValueError("bad redis://user:pw@host:6379/0\nmore"))
    assert described == "ValueError: bad redis://***@host:6379/0"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("health_checks", [False, True])
def test_a_terminated_database_connection_is_replaced(health_checks: bool) -> None:
    alive()
    before = {k: connection.settings_dict[k] for k in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS")}
    connection.close()
    connection.settings_dict.update(CONN_MAX_AGE=600, CONN_HEALTH_CHECKS=health_checks)
    try:
        assert served_readyz().status_code == 200
        terminate_our_backend()
        response = served_readyz()
        if health_checks:  # Django replaced the dead connection before the check used it
            assert response.status_code == 200, response.content
        else:  # the check found it dead, said so and closed it
            assert response.status_code == 503, response.content
            database = response.json()["components"]["database"]
            assert database["ok"] is False
            assert "OperationalError" in database["error"]
        assert served_readyz().status_code == 200  # and the next one is ready again, by itself
    finally:
        connection.close()
        connection.settings_dict.update(before)


@pytest.mark.django_db
def test_an_unapplied_migration_is_not_ready_until_applied() -> None:
    alive()
    recorder = MigrationRecorder(connection)
    app_label, name = max(k for k in recorder.applied_migrations() if k[0] == "cdp")
    recorder.record_unapplied(app_label, name)  # rolled back with the test's transaction
    response = readyz()
    assert response.status_code == 503
    migrations = response.json()["components"]["migrations"]
    assert migrations == {"ok": False, "unapplied": [f"{app_label}.{name}"]}
    recorder.record_applied(app_label, name)
    assert readyz().status_code == 200  # checked again, since it was not all applied
    recorder.record_unapplied(app_label, name)
    assert readyz().status_code == 200  # "all applied" is remembered: no more graph loading


def test_beat_sends_the_tick_to_a_registered_task() -> None:
    entry: dict[str, Any] = django_settings.CELERY_BEAT_SCHEDULE["health-beat-tick"]
    assert entry["task"] == cdp_tasks.beat_tick.name
    assert entry["options"]["expires"] == django_settings.CDP_READY_BEAT_MAX_AGE


@pytest.mark.django_db
def test_a_real_worker_heartbeat_and_its_death(
    settings: Any, celery_test_queues: CeleryTestQueues
) -> None:
    max_age = 2
    settings.CDP_READY_WORKER_MAX_AGE = max_age
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CDP_READY_WORKER_MAX_AGE": str(max_age),  # the worker's heartbeat interval follows it
        **celery_test_queues.env(),
    }
    proc = subprocess.Popen(  # noqa: S603 - our own worker
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "cdp",
            "worker",
            "-Q",
            ",".join(celery_test_queues.names()),
            "--pool",
            "threads",
            "--concurrency",
            "1",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
    )

    def component(name: str) -> dict[str, Any]:
        result: dict[str, Any] = readyz().json()["components"][name]
        return result

    try:
        assert wait_for(lambda: component("worker")["ok"], timeout=20), "no heartbeat"
        # beat's task, on the default queue, run by the worker
        assert not component("beat")["ok"]
        celery_app.send_task("cdp.tasks.beat_tick")
        assert wait_for(lambda: component("beat")["ok"], timeout=10), "tick not run"
        assert readyz().status_code == 200
        time.sleep(max_age + 0.5)  # heartbeats go on while it lives
        assert component("worker")["ok"]
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        assert wait_for(lambda: not component("worker")["ok"], timeout=max_age + 3)
        assert time.monotonic() - killed >= max_age - health.heartbeat_interval() - 0.2
        assert readyz().status_code == 503
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
