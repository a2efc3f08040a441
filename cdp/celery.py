import os

from celery import Celery
from celery.signals import (
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

app = Celery("cdp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# the worker heartbeat that /readyz reads (by name: Django is not set up yet here)
app.steps["consumer"].add("cdp.health:WorkerHeartbeat")


@worker_init.connect(weak=False)
def lower_cpu_priority(**_: object) -> None:
    """A worker runs at CDP_WORKER_NICE before it starts its pool, so its pool processes
    inherit it: where it shares the cores with the web server, the collector's requests,
    which clients wait on, come first, and the queue absorbs a burst. Raising a priority
    would need privileges, so a worker already nicer is left as it is."""
    from django.conf import settings

    current = os.getpriority(os.PRIO_PROCESS, 0)
    if settings.CDP_WORKER_NICE > current:
        os.setpriority(os.PRIO_PROCESS, 0, settings.CDP_WORKER_NICE)
    # and so do its database sessions, where Postgres runs on this machine (cdp/db.py)
    from cdp import db

    db.session_nice = settings.CDP_WORKER_NICE


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
    `metrics.sweep_dead_processes` does for web workers (cdp/metrics.py)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


@task_prerun.connect(weak=False)
def connections_before_task(task: object = None, **_: object) -> None:
    """A task starts like a web request: a connection past CONN_MAX_AGE or broken is
    replaced; a live one is reused (checked once first, with CONN_HEALTH_CHECKS)."""
    if _runs_in_worker(task):
        from django.db import close_old_connections

        close_old_connections()


@task_postrun.connect(weak=False)
def connections_after_task(task: object = None, **_: object) -> None:
    """Celery's Django fix-up closes every connection after every task (unless
    CELERY_DB_REUSE_MAX, which settings.py sets out of reach): each drain turn of the
    pipeline (1 s) and each kick then opened a new Postgres session — two to three a second
    under load, each paying a server process's start and its catalogue caches again. A task
    ends like a web request instead, with its session locks released (cdp/db.py)."""
    if _runs_in_worker(task):
        from cdp import db

        db.end_of_task()


def _runs_in_worker(task: object) -> bool:
    """False for a task run eagerly in its caller (tests, scripts): the caller's connection
    and transaction are not the task's to end."""
    request = getattr(task, "request", None)
    return request is not None and not getattr(request, "is_eager", False)
