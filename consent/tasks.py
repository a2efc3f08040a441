"""Celery tasks of the consent app. Names are explicit: they are contracts with queued
messages, the beat schedule and the queue routes (cdp/queues.py)."""

from __future__ import annotations

import logging

from celery import shared_task

from consent import privacy, retention

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, name="consent.tasks.retention_enforce_all")
def retention_enforce_all() -> int:
    """Beat (every CDP_RETENTION_SECONDS, hourly by default): delete each workspace's
    event-level data past its retention period, whole days at a time, and privacy export
    bundles past CDP_PRIVACY_EXPORT_DAYS. Safe to run twice."""
    reports = retention.retention_enforce_all()
    return sum(r.deleted for r in reports) + privacy.privacy_exports_expire()


@shared_task(
    bind=True,
    acks_late=True,
    max_retries=3,
    default_retry_delay=10,
    name="consent.tasks.privacy_request_execute",
)
def privacy_request_execute(self, request_id: int) -> str | None:  # type: ignore[no-untyped-def]
    """Queued when a request is approved. Claims it (approved → running), so a duplicate or a
    redelivered message does nothing; a failure leaves the request failed, to re-approve."""
    request = privacy.privacy_request_execute(request_id=request_id)
    return request.status if request is not None else None
