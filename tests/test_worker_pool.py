"""The Celery workers' prefork pool (cdp/celery_pool.py, the `CELERY_WORKER_POOL` setting): a
real worker started without `--pool` runs it, replaces a pool process that was SIGKILLed, and
goes on processing events; the worker and every pool process, the replacement included, run at
the CPU priority `CDP_WORKER_NICE` (cdp/celery.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.conf import settings
from django.test import Client

from cdp import celery_pool
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
