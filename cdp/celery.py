import os
from typing import Any

from celery import Celery
from celery.signals import (
    task_postrun,
    task_prerun,
    worker_process_init,
    worker_process_shutdown,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

app = Celery("cdp")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's Django fixup closes every database connection before and after every task unless
# this is set: each task (a pipeline kick that finds its drain slot busy returns in a
# millisecond) then paid for a new Postgres session, a process forked and authenticated, which
# took about a tenth of a core under single-event ingest. Connections are kept as Django keeps
# them between requests (CONN_MAX_AGE, health checks: `fresh_connections` below) and the
# fixup still closes them after this many tasks of a process.
app.conf.CELERY_DB_REUSE_MAX = 500
app.autodiscover_tasks()
# the worker heartbeat that /readyz reads (by name: Django is not set up yet here)
app.steps["consumer"].add("cdp.health:WorkerHeartbeat")


@worker_process_init.connect(weak=False)
def settle_process(**_: object) -> None:
    """A pool process freezes the objects it was forked with, like a web server process
    (cdp/warmup.py): the collector of the oldest generation stops walking them. (Its task
    modules were imported by the worker before it forked.)"""
    from cdp import warmup

    warmup.freeze()


@worker_process_shutdown.connect(weak=False)
def mark_metrics_dead(pid: int | None = None, **_: object) -> None:
    """A prefork child that exits (recycled, or the worker stopping) leaves its counters in
    PROMETHEUS_MULTIPROC_DIR (they must keep counting) and has its live gauges marked dead, as
    gunicorn's child_exit does for web workers (cdp/metrics.py)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


def _eager(task: Any) -> bool:
    return bool(getattr(getattr(task, "request", None), "is_eager", False))


@task_prerun.connect(weak=False)
def fresh_connections(task: Any = None, **_: object) -> None:
    """Before a task, as before a request: a connection past CONN_MAX_AGE, broken, or left in
    a transaction is closed (the task opens a new one)."""
    if not _eager(task):
        from django.db import close_old_connections

        close_old_connections()


@task_postrun.connect(weak=False)
def reset_sessions(task: Any = None, **_: object) -> None:
    """After a task, a kept connection gives back every session-level advisory lock (the
    drain, delivery and planning leases): a lease a task failed to release must not live on in
    a session that the next tasks reuse. A connection that cannot be reset is closed. Not when
    run eagerly: the caller's locks are its own."""
    if _eager(task):
        return
    from django.db import DatabaseError, connections

    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        try:
            if conn.in_atomic_block or not conn.get_autocommit():
                raise DatabaseError("left inside a transaction")
            with conn.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock_all()")
        except Exception:  # noqa: BLE001 - a session that cannot be reset is not reused
            conn.close()
