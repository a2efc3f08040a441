"""A process killed while its query waits on a lock must not leave its locks behind: the app's
connections ask Postgres to check for a dead client (CDP_DB_CLIENT_CHECK_MS, cdp/db.py), so
the backend ends its transaction within about that long instead of living on until it next
writes to the socket. A real process is SIGKILLed while it holds one lock and waits on
another, and the lock it held must come free while the other is still taken."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from tests.test_processing_worker import database_url

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = 7399  # advisory lock space of this test only

# holds lock `held`, then waits for `wanted` (which the test holds): killed while waiting
CHILD = """
import sys, django
django.setup()
from django.db import connection
held, wanted = int(sys.argv[1]), int(sys.argv[2])
with connection.cursor() as cursor:
    cursor.execute("SHOW client_connection_check_interval")
    print("interval", cursor.fetchone()[0], flush=True)
    cursor.execute("SELECT pg_advisory_lock(%s, %s)", [{ns}, held])
    print("holding", flush=True)
    cursor.execute("SELECT pg_advisory_lock(%s, %s)", [{ns}, wanted])
""".replace("{ns}", str(NAMESPACE))


def _admin() -> psycopg.Connection:
    params = connection.get_connection_params()
    return psycopg.connect(
        host=params.get("host"),
        port=params.get("port"),
        user=params.get("user"),
        dbname=connection.settings_dict["NAME"],
        autocommit=True,
    )


def _held_until_freed(check_ms: str, timeout: float) -> float | None:
    """Seconds from the kill until the dead process's lock is free (None: still held after
    `timeout`)."""
    held, wanted = secrets.randbelow(2**30), secrets.randbelow(2**30) + 2**30
    with _admin() as admin:
        admin.execute("SELECT pg_advisory_lock(%s, %s)", [NAMESPACE, wanted])
        env = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "CDP_DB_CLIENT_CHECK_MS": check_ms,
            "DJANGO_SETTINGS_MODULE": "cdp.settings",
        }
        child = subprocess.Popen(  # noqa: S603 - our interpreter, our script
            [sys.executable, "-c", CHILD, str(held), str(wanted)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            interval = child.stdout.readline().split()
            assert interval[:1] == ["interval"]
            expected = "0" if check_ms == "0" else f"{int(check_ms) // 1000}s"
            assert interval[1] == expected
            assert child.stdout.readline().strip() == "holding"
            time.sleep(0.3)  # it is now waiting on `wanted`
            child.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            child.wait(timeout=10)
            while time.monotonic() - killed < timeout:
                got = admin.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", [NAMESPACE, held]
                ).fetchone()
                if got and got[0]:
                    admin.execute("SELECT pg_advisory_unlock(%s, %s)", [NAMESPACE, held])
                    return time.monotonic() - killed
                time.sleep(0.05)
            return None
        finally:
            if child.poll() is None:
                child.kill()
            admin.execute("SELECT pg_advisory_unlock_all()")


@pytest.mark.django_db
def test_a_killed_process_waiting_on_a_lock_drops_the_locks_it_held() -> None:
    if connection.pg_version < 140000:  # type: ignore[attr-defined]
        pytest.skip("client_connection_check_interval needs Postgres 14")
    freed = _held_until_freed("1000", timeout=10)
    assert freed is not None, "the dead process's lock was still held 10 s after the kill"


@pytest.mark.django_db
def test_without_the_check_the_dead_backend_keeps_its_locks() -> None:
    """What the setting is for: with it off, the lock stays held while the backend waits."""
    assert _held_until_freed("0", timeout=3) is None
