"""Health and readiness: `GET /healthz` (the process answers) and `GET /readyz` (it can do its
work). README "Health checks".

`/healthz` touches nothing: no database, no session, no Redis — a load balancer polls it every
second. `/readyz` checks, each bounded in time, and answers 503 when any is not ok:

- `database`: `SELECT 1` under `SET LOCAL statement_timeout` (1 s). A failed connection is
  closed, so the next request opens a new one (after Postgres dropped its connections, readyz
  turns ready again by itself).
- `migrations`: Django's migration executor lists the unapplied migrations. Loading the graph
  reads every migration file, so "all applied" is remembered for the life of the process;
  anything else is checked again on the next call.
- `broker`: PING to the Celery broker (Redis), 0.5 s timeouts.
- `worker`: every Celery worker writes a heartbeat from a consumer bootstep
  (`WorkerHeartbeat`, added in cdp/celery.py) on the worker's own timer, so the heartbeat
  stops when the consumer stops (broker connection lost, process killed or wedged), not only
  when the process exits. It goes into one sorted set in Redis (worker name -> time), so one
  read finds the newest heartbeat of any worker, however many there are. Ok when it is
  younger than `CDP_READY_WORKER_MAX_AGE` (60 s); workers write every max-age / 6 (at most
  every 10 s).
- `beat`: beat sends `cdp.tasks.beat_tick` every `CDP_BEAT_TICK_SECONDS` (15 s) to the
  default queue, and the task writes the time it ran. A fresh tick proves that beat runs AND
  that a worker of the default queue picks its messages up in time: a tick expires unrun
  after `CDP_READY_BEAT_MAX_AGE` (120 s), so a backlog of the default queue longer than that
  shows as a stale tick too. Ok when the tick is younger than that.

The times are wall-clock times of the machines involved (workers, beat's worker, web), so
their clocks must be synchronised (NTP). Details never carry a URL or a password: an error
is reported by its class and message, with any credentials in a URL masked.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import redis
from celery import bootsteps
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from cdp import redis as cdp_redis

logger = logging.getLogger(__name__)

WORKERS_KEY = "cdp:health:workers"  # sorted set: worker name -> time of its last heartbeat
BEAT_KEY = "cdp:health:beat"  # time the last beat tick ran
STATEMENT_TIMEOUT_MS = 1000
BROKER_TIMEOUT = 0.5  # seconds
FORGET_WORKER_AFTER = 24 * 3600  # a worker gone this long leaves the set
NO_CACHE = {"Cache-Control": "no-store"}

_migrations_applied = False  # once all are applied, they stay applied for this process
_broker_clients: dict[str, redis.Redis] = {}
_last_status: str | None = None  # of the last readyz answer, to log changes only


# --- the endpoints --------------------------------------------------------------------------


@login_not_required
@csrf_exempt
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"}, headers=NO_CACHE)


@login_not_required
@csrf_exempt
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    report = readiness()
    status = 200 if report["status"] == "ready" else 503
    _log_change(report)
    response = JsonResponse(report, status=status, headers=NO_CACHE)
    # polled every second: a change is logged once (below), not every 503 by django.request
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def readiness() -> dict[str, Any]:
    database = check_database()
    components = {
        "database": database,
        "migrations": check_migrations(database_ok=database["ok"]),
        "broker": check_broker(),
        **check_worker_and_beat(),
    }
    ready = all(component["ok"] for component in components.values())
    return {"status": "ready" if ready else "not_ready", "components": components}


def _log_change(report: dict[str, Any]) -> None:
    global _last_status
    if report["status"] == _last_status:
        return
    _last_status = report["status"]
    failing = {name: c for name, c in report["components"].items() if not c["ok"]}
    if failing:
        logger.warning("readiness: not ready: %s", failing)
    else:
        logger.info("readiness: ready")


# --- the checks -----------------------------------------------------------------------------


def check_database() -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        # a broken connection must not be reused by the next request (inside an outer
        # transaction Django only marks it for rollback; the outer block closes it)
        if not connection.in_atomic_block:
            connection.close()
        return {"ok": False, "error": describe(exc)}
    return {"ok": True, "latency_ms": _ms_since(started)}


def check_migrations(*, database_ok: bool) -> dict[str, Any]:
    global _migrations_applied
    if _migrations_applied:
        return {"ok": True, "unapplied": []}
    if not database_ok:
        return {"ok": False, "error": "database unavailable"}
    try:
        unapplied = unapplied_migrations()
    except DatabaseError as exc:
        return {"ok": False, "error": describe(exc)}
    _migrations_applied = not unapplied
    return {"ok": not unapplied, "unapplied": unapplied}


def unapplied_migrations() -> list[str]:
    """`app.migration` names of the migrations the database has not applied, in order."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


def forget_migrations() -> None:
    """Check the migrations again on the next call (tests)."""
    global _migrations_applied
    _migrations_applied = False


def check_broker() -> dict[str, Any]:
    started = time.perf_counter()
    try:
        _broker_client(settings.CELERY_BROKER_URL).ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        return {"ok": False, "error": describe(exc)}
    return {"ok": True, "latency_ms": _ms_since(started)}


def _broker_client(url: str) -> redis.Redis:
    client = _broker_clients.get(url)
    if client is None:
        # kombu spells a unix-socket Redis redis+socket://, redis-py unix://
        redis_url = "unix://" + url.removeprefix("redis+socket://") if "+socket" in url else url
        client = redis.Redis.from_url(
            redis_url, socket_timeout=BROKER_TIMEOUT, socket_connect_timeout=BROKER_TIMEOUT
        )
        _broker_clients[url] = client
    return client


def check_worker_and_beat() -> dict[str, dict[str, Any]]:
    """Both from one round trip to Redis."""
    worker_max_age = settings.CDP_READY_WORKER_MAX_AGE
    beat_max_age = settings.CDP_READY_BEAT_MAX_AGE
    now = time.time()
    try:
        pipe = cdp_redis.client().pipeline(transaction=False)
        pipe.zrevrange(WORKERS_KEY, 0, 0, withscores=True)
        pipe.zcount(WORKERS_KEY, now - worker_max_age, "+inf")
        pipe.get(BEAT_KEY)
        newest, fresh, beat = pipe.execute()
    except (redis.RedisError, OSError) as exc:
        error = {"ok": False, "error": describe(exc)}
        return {"worker": error, "beat": dict(error)}
    worker_age = now - newest[0][1] if newest else None
    beat_age = now - float(beat) if beat is not None else None
    return {
        "worker": {
            "ok": worker_age is not None and worker_age <= worker_max_age,
            "age_seconds": _rounded(worker_age),
            "max_age_seconds": worker_max_age,
            "fresh_workers": fresh,
        },
        "beat": {
            "ok": beat_age is not None and beat_age <= beat_max_age,
            "age_seconds": _rounded(beat_age),
            "max_age_seconds": beat_max_age,
        },
    }


# --- what workers and beat write ------------------------------------------------------------


def worker_heartbeat(worker: str, *, now: float | None = None) -> None:
    """Record that `worker` (its Celery node name) is consuming."""
    now = time.time() if now is None else now
    pipe = cdp_redis.client().pipeline(transaction=False)
    pipe.zadd(WORKERS_KEY, {worker: now})
    pipe.zremrangebyscore(WORKERS_KEY, "-inf", now - FORGET_WORKER_AFTER)
    pipe.expire(WORKERS_KEY, FORGET_WORKER_AFTER)
    pipe.execute()


def beat_tick(*, now: float | None = None) -> None:
    """Record that a beat tick ran (cdp.tasks.beat_tick)."""
    now = time.time() if now is None else now
    cdp_redis.client().set(BEAT_KEY, repr(now), ex=FORGET_WORKER_AFTER)


def heartbeat_interval() -> float:
    """Six heartbeats per max age, at most every 10 s, at least every 0.5 s."""
    return max(0.5, min(10.0, settings.CDP_READY_WORKER_MAX_AGE / 6))


class WorkerHeartbeat(bootsteps.StartStopStep):
    """A consumer bootstep: while the worker consumes, a heartbeat on the worker's timer."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref: Any = None

    def start(self, parent: Any) -> None:
        self._beat(parent.hostname)
        self.tref = parent.timer.call_repeatedly(
            heartbeat_interval(), self._beat, (parent.hostname,), priority=10
        )

    def stop(self, parent: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    shutdown = stop

    @staticmethod
    def _beat(worker: str) -> None:
        try:
            worker_heartbeat(worker)
        except (redis.RedisError, OSError) as exc:  # the next one may get through
            logger.warning("worker heartbeat not written: %s", describe(exc))


# --- helpers --------------------------------------------------------------------------------

_CREDENTIALS = re.compile(r"(\w+://)[^/@\s]*@")


def describe(exc: BaseException) -> str:
    """`ClassName: first line of the message`, credentials in any URL masked."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    message = _CREDENTIALS.sub(r"\1***@", message)[:200]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)
