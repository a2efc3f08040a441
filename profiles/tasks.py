from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from profiles.pipeline import queue

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, max_retries=5, default_retry_delay=5)
def process_pending_events(self, workspace_id: int | None = None) -> int:  # type: ignore[no-untyped-def]
    """Drain the pending-events queue (for one workspace, or all). Safe to run many at once:
    rows are claimed with SKIP LOCKED. Re-enqueues itself while work is left."""
    try:
        processed, more = queue.drain(
            workspace_id=workspace_id, batch_size=settings.CDP_PROCESS_BATCH_SIZE
        )
    except Exception as exc:
        logger.exception("processing pending events failed; will retry")
        raise self.retry(exc=exc) from exc
    if more:
        process_pending_events.apply_async(kwargs={"workspace_id": workspace_id})
    return processed


@shared_task(bind=True, acks_late=True)
def sweep_pending_events(self) -> int:  # type: ignore[no-untyped-def]
    """Periodic safety net (outbox pattern): a lost kick only delays work."""
    workspaces = queue.pending_workspaces()
    for workspace_id in workspaces:
        process_pending_events.apply_async(kwargs={"workspace_id": workspace_id})
    return len(workspaces)
