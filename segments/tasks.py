"""Celery tasks of the segments app. Names are explicit: they are contracts with queued
messages, the beat schedule and the queue routes (cdp/queues.py)."""

from __future__ import annotations

import logging

from celery import shared_task

from segments import realtime, services
from segments.ml import tasks as ml_tasks  # noqa: F401 - registers the ML jobs' tasks

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    acks_late=True,
    max_retries=3,
    default_retry_delay=5,
    name="segments.tasks.segments_process_expiries",
)
def segments_process_expiries(self) -> int:  # type: ignore[no-untyped-def]
    """Beat (every few seconds): members whose event window ran out are re-evaluated as of
    that exact moment (claims rows with SKIP LOCKED: safe to run twice)."""
    try:
        return realtime.segments_process_expiries()
    except Exception as exc:
        logger.exception("processing segment window expiries failed; will retry")
        raise self.retry(exc=exc) from exc


@shared_task(acks_late=True, name="segments.tasks.segments_refresh_all")
def segments_refresh_all() -> int:
    """Beat (every CDP_SEGMENT_REFRESH_SECONDS): full re-evaluation of every published
    segment, each atomically; returns how many memberships changed."""
    results = services.segments_refresh_all()
    return sum(r.entered + r.exited for r in results.values())
