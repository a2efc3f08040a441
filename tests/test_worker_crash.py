"""A worker killed while it drains (SIGKILL: no clean-up) holds up nothing: its drain-slot
leases are advisory locks of its Postgres session, gone with the session, so the next kick
processes the workspace's events at once — not after a lock's time-to-live."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

from django.conf import settings
from django.db import connection
from django.test import Client

from profiles.models import PendingEvent
from profiles.tasks.processing import DRAIN_LEASE_NAMESPACE, DRAIN_SLOTS_MAX
from tests.fixtures import Tenant, post_collector
from tests.test_processing_worker import database_url, wait_for, worker  # noqa: F401 - fixture

HOLDER = """
import sys, time, psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as c:
    for key in sys.argv[3:]:
        c.execute("SELECT pg_advisory_lock(%s, %s)", [int(sys.argv[2]), int(key)])
    print("held", flush=True)
    time.sleep(600)
"""


def batch(n: int) -> dict[str, Any]:
    return {
        "batch": [
            {"type": "track", "event": "E", "userId": f"u-{i}", "messageId": str(uuid.uuid4())}
            for i in range(n)
        ]
    }


def test_a_killed_drainer_holds_up_nothing(tenant_a: Tenant, worker: Any) -> None:  # noqa: F811
    # a "worker" that took every drain slot of the workspace and is then killed mid-drain
    keys = [
        str(tenant_a.workspace.pk * DRAIN_SLOTS_MAX + slot)
        for slot in range(settings.CDP_DRAINS_PER_WORKSPACE)
    ]
    holder = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", HOLDER, database_url(), str(DRAIN_LEASE_NAMESPACE), *keys],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        answer = post_collector(Client(), "/v1/batch", batch(20), write_key=tenant_a.write_key)
        assert answer.status_code == 200
        time.sleep(2)
        assert PendingEvent.objects.count() == 20  # the slots are taken: nobody drains
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    killed = time.monotonic()
    # traffic goes on: the next request's kick finds the slots free
    post_collector(Client(), "/v1/batch", batch(5), write_key=tenant_a.write_key)
    assert wait_for(lambda: not PendingEvent.objects.exists(), timeout=15)
    recovered = time.monotonic() - killed
    assert recovered < 15, recovered
    assert connection.vendor == "postgresql"
