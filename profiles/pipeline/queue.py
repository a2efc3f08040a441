"""The processing queue: claim pending events (SKIP LOCKED), run the pipeline stages on them,
and delete the claims, all in one transaction, so a crash leaves the rows pending and a re-run
never counts an event twice."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

import psycopg
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from cdp.metrics import PIPELINE_EVENT_TO_PROFILE_SECONDS, PIPELINE_STAGE_SECONDS
from profiles.identity.resolve import IdentityRace, lock_workspaces, resolve
from profiles.pipeline.rows import EventLike, load_events
from profiles.pipeline.stages import Batch, stages

logger = logging.getLogger(__name__)


def identity_stage(batch: Batch) -> None:
    """Identity resolution. A race usually means another worker just merged or created what
    we read; it has committed by the time we see it, so re-reading inside a savepoint (which
    also drops the row locks taken) mostly succeeds. Persistent races go to the exclusive
    re-run of the whole batch."""
    for attempt in range(SAVEPOINT_ATTEMPTS):
        try:
            with transaction.atomic():
                batch.resolution = resolve(
                    batch.events, may_defer=batch.may_defer, overdue=batch.overdue
                )
            batch.defer(batch.resolution.deferred)
            counters["deferred"] += len(batch.resolution.deferred)
            return
        except Exception as exc:
            if not _retryable(exc) or attempt == SAVEPOINT_ATTEMPTS - 1:
                raise
            counters["savepoint_retries"] += 1


_CLAIM = """
SELECT event_id, received_at, deferred_at FROM profiles_pendingevent
{where}
ORDER BY event_id
LIMIT %s
FOR UPDATE SKIP LOCKED
"""

# The claim walks an index of the queue in event order and stops at the LIMIT. The
# planner would rather read every pending row of the workspace (a bitmap scan) and sort them
# whenever its statistics say the queue is small — which they say during a burst, the queue
# having grown since it was last analysed (never, where autovacuum is off): 125 ms a claim
# with 490,000 events queued, growing with the backlog, against 1-10 ms walking the index; a
# worker catching up on 457,000 events processed 16 % more with the claim planned without
# those two (bench: 5,268-5,465 against 4,457-4,753 events/s), as it now is.
_CLAIM_PLAN = "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off"
_CLAIM_PLAN_END = "RESET enable_bitmapscan; RESET enable_sort"

MAX_ATTEMPTS = 4
SAVEPOINT_ATTEMPTS = 3
# process-wide counters, for logs, tests and the benchmark
counters = {"races": 0, "savepoint_retries": 0, "dropped": 0, "deferred": 0}
# Deferring instead of waiting lets two drains work side by side on people they share; an
# event may be put off for this long after it was first deferred, then its batch is re-run
# holding the workspace exclusively, which waits for the locks (so a very active person
# cannot be put off for ever, and a backlog does not turn deferral off).
DEFER_MAX_AGE = timedelta(seconds=5)


_RETRYABLE_DB_ERRORS = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
Partition = tuple[int, int]  # (slot, drains): claim only events with route % drains == slot


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, (IdentityRace, *_RETRYABLE_DB_ERRORS)):
        return True  # raw psycopg cursors (bulk statements) raise psycopg's own errors
    return isinstance(exc, OperationalError) and isinstance(exc.__cause__, _RETRYABLE_DB_ERRORS)


def process_batch(
    *, workspace_id: int | None = None, batch_size: int = 1000, partition: Partition | None = None
) -> int:
    """Process up to batch_size pending events; returns how many were processed.

    Workers normally share each workspace's identity lock; when a batch lost a race with
    another worker it is rolled back and re-run holding the lock exclusively."""
    return claim_and_process(workspace_id, batch_size, partition)[0]


def claim_and_process(
    workspace_id: int | None, batch_size: int, partition: Partition | None
) -> tuple[int, int]:
    """(processed, claimed): claimed events not processed were deferred."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            return _process_once(workspace_id, batch_size, partition, exclusive=attempt > 0)
        except Exception as exc:
            if not _retryable(exc) or attempt == MAX_ATTEMPTS - 1:
                raise
            counters["races"] += 1
            logger.info("identity race (%s); re-running the batch exclusively", exc)
    return 0, 0  # unreachable


def _process_once(
    workspace_id: int | None, batch_size: int, partition: Partition | None, *, exclusive: bool
) -> tuple[int, int]:
    conditions, params = [], []
    if workspace_id is not None:
        conditions.append("workspace_id = %s")
        params.append(workspace_id)
    if partition is not None and partition[1] > 1:
        conditions.append("route %% %s = %s")
        params += [partition[1], partition[0]]
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_CLAIM_PLAN)
            cursor.execute(_CLAIM.format(where=where), [*params, batch_size])
            claimed = cursor.fetchall()
            cursor.execute(_CLAIM_PLAN_END)
        if not claimed:
            return 0, 0
        ids = [row[0] for row in claimed]
        bounds = arrival_bounds(claimed)
        events: list[EventLike] = list(load_events(ids, bounds))
        lock_workspaces([e.workspace_id for e in events], exclusive=exclusive)
        overdue = timezone.now() - DEFER_MAX_AGE
        batch = Batch(
            events,
            may_defer=not exclusive,
            overdue={row[0] for row in claimed if row[2] is not None and row[2] < overdue},
        )
        for stage in stages():
            started = time.perf_counter()
            stage.run(batch)
            PIPELINE_STAGE_SECONDS.labels(stage=stage.name).observe(time.perf_counter() - started)
        counters["dropped"] += batch.dropped
        done = [i for i in ids if i not in batch.deferred] if batch.deferred else ids
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM profiles_pendingevent WHERE event_id = ANY(%s)", [done])
            if batch.deferred:
                cursor.execute(
                    "UPDATE profiles_pendingevent SET deferred_at = now() "
                    "WHERE event_id = ANY(%s) AND deferred_at IS NULL",
                    [list(batch.deferred)],
                )
    _observe_latency(batch.events)
    return len(done), len(ids)


def _observe_latency(events: list[EventLike]) -> None:
    """Event → profile latency of the committed batch's events (the dropped and deferred ones
    are no longer in it): one clock reading, no query."""
    now = timezone.now()
    observe = PIPELINE_EVENT_TO_PROFILE_SECONDS.observe
    for event in events:
        observe(max(0.0, (now - event.received_at).total_seconds()))


def arrival_bounds(claimed: list[tuple[Any, ...]]) -> tuple[datetime, datetime] | None:
    """Earliest and latest arrival of the claimed events (None if a row predates the column)."""
    times = [row[1] for row in claimed if row[1] is not None]
    if len(times) < len(claimed):
        return None
    return min(times), max(times)


def drain(
    *,
    workspace_id: int | None = None,
    batch_size: int = 1000,
    max_seconds: float = 30.0,
    partition: Partition | None = None,
    interval: float = 0.0,
) -> tuple[int, bool]:
    """Process batches until the queue is empty or time runs out.
    Returns (processed, more_left).

    `interval` (seconds) adapts the batch size to the arrival rate: after a batch that was not
    full, the next one starts no sooner than `interval` after it began, so a trickle of events
    is processed in a few batches per second instead of one batch per event or two (each batch
    has fixed costs: the claim, the identity look-ups, the counters, the commit). Under a
    backlog the batches are full and no time is waited; the drain ends when a claim finds
    nothing. 0 (the default) returns after the first batch that was not full."""
    deadline = time.monotonic() + max_seconds
    total = 0
    while time.monotonic() < deadline:
        started = time.monotonic()
        done, claimed = claim_and_process(workspace_id, batch_size, partition)
        total += done
        if claimed == 0:
            return total, False
        if claimed == done and claimed < batch_size:
            if interval <= 0:
                return total, False
            wait = min(interval - (time.monotonic() - started), deadline - time.monotonic())
            if wait > 0:
                time.sleep(wait)
            continue
        if claimed > done and (done == 0 or claimed < batch_size):
            # deferred events wait for the worker holding their people to commit its batch
            time.sleep(0.02)
    return total, True


def pending_workspaces() -> list[int]:
    with connection.cursor() as cursor:
        # a loose index scan would be faster on a huge backlog; the set of workspaces is small
        cursor.execute("SELECT DISTINCT workspace_id FROM profiles_pendingevent")
        return [row[0] for row in cursor.fetchall()]


def pending_count(workspace_id: int | None = None, partition: Partition | None = None) -> int:
    conditions, params = [], []
    if workspace_id is not None:
        conditions.append("workspace_id = %s")
        params.append(workspace_id)
    if partition is not None and partition[1] > 1:
        conditions.append("route %% %s = %s")
        params += [partition[1], partition[0]]
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM profiles_pendingevent {where}", params)  # noqa: S608
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def vacuum_if_needed(dead_rows: int) -> bool:
    """VACUUM the queue table when at least `dead_rows` dead rows wait in it (the statistics'
    estimate); returns whether it ran. Never inside a transaction; skips if another vacuum
    holds the table."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_dead_tup FROM pg_stat_user_tables "
            "WHERE relid = 'profiles_pendingevent'::regclass"
        )
        row = cursor.fetchone()
        if row is None or int(row[0]) < dead_rows:
            return False
        cursor.execute("VACUUM (SKIP_LOCKED) profiles_pendingevent")
    return True
