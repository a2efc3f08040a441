"""Deliveries with a real Celery worker (threads pool, as the launcher runs the activation
queue): a worker SIGKILLed in the middle of a batch loses nothing — the batch it held is
due again as soon as its database session is gone, and goes out with the same keys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from django.conf import settings

from activation import tasks
from activation.models import Delivery
from activation.tests.helpers import (
    deliveries,
    delivery_keys,
    people,
    pro_segment,
    run,
    sync_of,
    webhook,
)
from activation.tests.receiver import receiver
from tests.fixtures import CeleryTestQueues, Tenant
from tests.test_processing_worker import ROOT, database_url, wait_for


def start_worker(queues: CeleryTestQueues) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        **queues.env(),
    }
    return subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "cdp",
            "worker",
            "-Q",
            ",".join(queues.names()),
            "--pool",
            "threads",
            "--concurrency",
            "4",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
    )


def test_worker_killed_mid_batch_loses_and_duplicates_nothing(
    transactional_db: Any, tenant_a: Tenant, celery_test_queues: CeleryTestQueues
) -> None:
    people(tenant_a, 30)
    segment = pro_segment(tenant_a)
    with receiver(delay=1.5) as hook:  # slow: the worker is mid-request when it dies
        destination = webhook(tenant_a, hook.url, batch_size=10, timeout_seconds=30)
        run(sync_of(tenant_a, segment, destination))
        worker = start_worker(celery_test_queues)
        try:
            tasks.kick(destination.pk)
            assert wait_for(lambda: len(hook.requests) >= 1, timeout=30)
            # the receiver records a request as it arrives, which can be a moment before the
            # claim that sent it is visible here: wait for it (the receiver answers 1.5 s later)
            assert wait_for(lambda: Delivery.objects.filter(status="sending").exists(), timeout=1)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
            time.sleep(hook.delay + 0.5)  # requests that arrived before the kill are recorded
            in_flight = {i["id"] for r in hook.requests for i in r.json["items"]}
        finally:
            if worker.poll() is None:
                worker.kill()
        # the claim outlives the worker (its lease runs for a minute) until the sweeper sees
        # the claimer's session is gone
        assert wait_for(
            lambda: (
                tasks.tick.apply().get()["swept"] > 0
                or not Delivery.objects.filter(status="sending").exists()
            ),
            timeout=15,
        )
        hook.delay = 0
        worker = start_worker(celery_test_queues)
        try:
            tasks.kick(destination.pk)
            assert wait_for(lambda: deliveries(status="delivered") == 30, timeout=60)
        finally:
            worker.terminate()
            worker.wait(15)
    keys = Counter(i["id"] for r in hook.requests for i in r.json["items"])
    assert set(keys) == set(delivery_keys())
    # the batches in flight at the kill went out again with the same keys, nothing else twice
    assert {k for k, n in keys.items() if n > 1} <= in_flight
    assert max(keys.values()) <= 2
