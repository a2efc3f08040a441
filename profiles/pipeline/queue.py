"""The processing queue: claim pending events (SKIP LOCKED), run the pipeline stages on them,
and delete the claims, all in one transaction, so a crash leaves the rows pending and a re-run
never counts an event twice."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from django.db import connection, transaction

from profiles.models import Event

Stage = Callable[[Sequence[Event]], None]


def _stages() -> list[Stage]:
    # Order matters: later issues add identity resolution, computed traits and segments here.
    from profiles.pipeline import stats

    return [stats.record]


_CLAIM = """
SELECT event_id FROM profiles_pendingevent
{where}
ORDER BY event_id
LIMIT %s
FOR UPDATE SKIP LOCKED
"""


def process_batch(*, workspace_id: int | None = None, batch_size: int = 1000) -> int:
    """Process up to batch_size pending events; returns how many were processed."""
    where = "WHERE workspace_id = %s" if workspace_id is not None else ""
    params: list[int] = [workspace_id] if workspace_id is not None else []
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_CLAIM.format(where=where), [*params, batch_size])
            ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return 0
        events = list(Event.objects.filter(id__in=ids).order_by("id"))
        for stage in _stages():
            stage(events)
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM profiles_pendingevent WHERE event_id = ANY(%s)", [ids])
    return len(ids)


def drain(
    *, workspace_id: int | None = None, batch_size: int = 1000, max_seconds: float = 30.0
) -> tuple[int, bool]:
    """Process batches until the queue is empty or time runs out.
    Returns (processed, more_left)."""
    deadline = time.monotonic() + max_seconds
    total = 0
    while time.monotonic() < deadline:
        done = process_batch(workspace_id=workspace_id, batch_size=batch_size)
        total += done
        if done < batch_size:
            return total, False
    return total, True


def pending_workspaces() -> list[int]:
    with connection.cursor() as cursor:
        # a loose index scan would be faster on a huge backlog; the set of workspaces is small
        cursor.execute("SELECT DISTINCT workspace_id FROM profiles_pendingevent")
        return [row[0] for row in cursor.fetchall()]


def pending_count(workspace_id: int | None = None) -> int:
    with connection.cursor() as cursor:
        if workspace_id is None:
            cursor.execute("SELECT count(*) FROM profiles_pendingevent")
        else:
            cursor.execute(
                "SELECT count(*) FROM profiles_pendingevent WHERE workspace_id = %s",
                [workspace_id],
            )
        row = cursor.fetchone()
    return int(row[0]) if row else 0
