"""End to end with a real Celery worker and Redis: an accepted request kicks processing, and
the periodic sweeper picks up events whose kick was lost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from profiles.models import EventCounter, PendingEvent
from profiles.tasks import sweep_pending_events
from tests.fixtures import CeleryTestQueues, Tenant, post_collector

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    s = connection.settings_dict
    host = s["HOST"] or "localhost"
    host = quote(host, safe="") if host.startswith("/") else host
    port = f":{s['PORT']}" if s.get("PORT") else ""
    password = f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{host}{port}/{s['NAME']}"


def start_worker(celery_test_queues: CeleryTestQueues, *pool: str) -> subprocess.Popen[bytes]:
    """A real Celery worker (2 processes or threads) on the test's queues and database; `pool`
    adds e.g. `--pool threads` (none: the CELERY_WORKER_POOL setting). Stop it with
    `stop_worker`."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        **celery_test_queues.env(),
    }
    return subprocess.Popen(  # noqa: S603 - our interpreter, Celery's command
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "cdp",
            "worker",
            "-Q",
            ",".join(celery_test_queues.names()),
            *pool,
            "--concurrency",
            "2",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
        ],  # fmt: skip
        cwd=ROOT,
        env=env,
    )


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def worker(transactional_db: Any, celery_test_queues: CeleryTestQueues) -> Any:
    proc = start_worker(celery_test_queues, "--pool", "threads")
    try:
        yield proc
    finally:
        stop_worker(proc)


def wait_for(predicate: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def event(i: int) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Signed Up",
        "userId": f"u-{i}",
        "messageId": str(uuid.uuid4()),
    }


def test_accepted_request_is_processed_by_a_real_worker(tenant_a: Tenant, worker: Any) -> None:
    client = Client()
    response = post_collector(
        client, "/v1/batch", {"batch": [event(i) for i in range(25)]}, write_key=tenant_a.write_key
    )
    assert response.status_code == 200
    assert wait_for(lambda: not PendingEvent.objects.exists()), "worker did not drain the queue"
    assert wait_for(lambda: sum(EventCounter.objects.values_list("count", flat=True)) == 25), (
        "counters were not updated"
    )
    assert worker.poll() is None


def test_sweeper_picks_up_events_whose_kick_was_lost(
    tenant_a: Tenant, worker: Any, settings: Any
) -> None:
    from cdp.redis import client as redis_client

    # The throttle key makes the collector skip its kick, like a lost message would.
    redis_client().set(f"cdp:kick:{tenant_a.workspace.pk}", 1, px=60_000)
    client = Client()
    post_collector(
        client, "/v1/batch", {"batch": [event(i) for i in range(5)]}, write_key=tenant_a.write_key
    )
    time.sleep(1.0)
    assert PendingEvent.objects.count() == 5  # nobody was told
    assert sweep_pending_events.apply().get() == 1  # what beat runs every few seconds
    assert wait_for(lambda: not PendingEvent.objects.exists())
    assert sum(EventCounter.objects.values_list("count", flat=True)) == 5
