"""Processing of the pending-events queue: the drains Celery runs per workspace and the
beat sweeper that re-kicks them (a lost kick only delays work)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, connection

from profiles.pipeline import queue

logger = logging.getLogger(__name__)
DRAIN_SLOTS_MAX = 16  # CDP_DRAINS_PER_WORKSPACE may not exceed it
# a drain hands its worker process back this often (re-enqueued at the back of its queue when
# work is left), so the tasks of other queues a worker serves are not held up behind it, and
# a partition whose drain died waits at most one turn: with turns of 10 s, a pool process
# SIGKILLed mid-drain left its partition to the surviving process only once that one's own
# turn ended, and its events waited up to 4.6 s (bench/pipeline.py --only recovery). A turn
# costs one task hand-off (a few ms) per second per process.
DRAIN_MAX_SECONDS = 1.0


@shared_task(
    bind=True,
    acks_late=True,
    max_retries=5,
    default_retry_delay=5,
    name="profiles.tasks.process_pending_events",
)
def process_pending_events(self, workspace_id: int | None = None, slot: int | None = None) -> int:  # type: ignore[no-untyped-def]
    """Drain the pending-events queue (for one workspace, or all). Safe to run many at once:
    rows are claimed with SKIP LOCKED.

    A workspace is drained by at most CDP_DRAINS_PER_WORKSPACE tasks at a time, each holding
    one slot (a lease: a Postgres advisory lock of its session, which dies with the worker)
    and claiming one partition of the queue (route % drains == slot),
    so two workers rarely resolve the same person at once. A kick without a slot fans out to
    every slot; a task whose slot is busy returns at once (the running drain loops until its
    partition is empty and re-checks before it stops). Re-enqueues itself while work is left."""
    drains = settings.CDP_DRAINS_PER_WORKSPACE
    if workspace_id is not None and slot is None and drains > 1:
        for n in range(drains):
            process_pending_events.apply_async(kwargs={"workspace_id": workspace_id, "slot": n})
        return 0
    lock = _drain_lock(workspace_id, slot or 0)
    if lock is False:
        return 0
    partition = (slot or 0, drains) if workspace_id is not None and drains > 1 else None
    try:
        processed, more = queue.drain(
            workspace_id=workspace_id,
            batch_size=settings.CDP_PROCESS_BATCH_SIZE,
            partition=partition,
            max_seconds=DRAIN_MAX_SECONDS,
            # run eagerly (in the caller: tests, scripts) a drain must not linger
            interval=0.0 if self.request.is_eager else settings.CDP_PROCESS_INTERVAL_MS / 1000,
        )
    except Exception as exc:
        logger.exception("processing pending events failed; will retry")
        raise self.retry(exc=exc) from exc
    finally:
        _release(lock)
    if more or (workspace_id is not None and queue.pending_count(workspace_id, partition)):
        process_pending_events.apply_async(kwargs={"workspace_id": workspace_id, "slot": slot})
    return processed


DRAIN_LEASE_NAMESPACE = 7302  # advisory lock space of the drain slots (7301: identity)


def _drain_lock(workspace_id: int | None, slot: int) -> Any:
    """The lease of one drain slot of the workspace: a session-level advisory lock, so a
    worker that dies (SIGKILL, OOM, a lost machine) loses it with its database session at
    once — no time-to-live to wait out. None when not limited, False when another task holds
    it."""
    if workspace_id is None:
        return None
    key = workspace_id * DRAIN_SLOTS_MAX + slot
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [DRAIN_LEASE_NAMESPACE, key])
        taken = bool(cursor.fetchone()[0])  # type: ignore[index]
    return key if taken else False


def _release(lease: Any) -> None:
    if lease is None or lease is False:
        return
    with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [DRAIN_LEASE_NAMESPACE, lease])


@shared_task(bind=True, acks_late=True, name="profiles.tasks.sweep_pending_events")
def sweep_pending_events(self) -> int:  # type: ignore[no-untyped-def]
    """Periodic safety net (outbox pattern): a lost kick only delays work."""
    workspaces = queue.pending_workspaces()
    for workspace_id in workspaces:
        process_pending_events.apply_async(kwargs={"workspace_id": workspace_id})
    return len(workspaces)


QUEUE_TABLE = "profiles_pendingevent"


@shared_task(acks_late=True, name="profiles.tasks.vacuum_pending_events")
def vacuum_pending_events() -> bool:
    """Beat (every CDP_QUEUE_VACUUM_SECONDS): the queue is an insert-then-delete table, and
    every claim walks its index past the dead rows until they are vacuumed. Autovacuum may be
    off or slow to come (its default trigger is 20 % of a nearly empty table), so the platform
    vacuums the queue itself once CDP_QUEUE_VACUUM_DEAD_ROWS dead rows have piled up."""
    return queue.vacuum_if_needed(settings.CDP_QUEUE_VACUUM_DEAD_ROWS)
