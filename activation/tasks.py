"""Celery entry points of activation (queue `activation`, cdp.queues): sending a
destination's due deliveries, planning sync runs, and the beat's tick that plans real-time
deltas, re-kicks due deliveries and returns expired claims. Every task is safe to run twice:
deliveries are claimed rows, plans hold a per-sync lock and diff against recorded state."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import shared_task
from django.db.models import Q
from django.utils import timezone

from activation.delivery import engine
from activation.experiments.tasks import analyse_running as analyse_running  # registered here
from activation.models import (
    Delivery,
    DeliveryStatus,
    Destination,
    RunKind,
    Sync,
    SyncSchedule,
)
from activation.syncs import planner


def kick(destination_id: int, *, slots: int = 1) -> None:
    """Ask for `slots` senders for a destination (each takes a free slot or ends at once)."""
    for _ in range(max(1, slots)):
        deliver.delay(destination_id)


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=None)
def deliver(self: Any, destination_id: int) -> dict[str, int]:
    counts = engine.deliver(destination_id)
    if counts.get("more"):
        deliver.delay(destination_id)
    return counts


@shared_task(bind=True, acks_late=True, ignore_result=True)
def plan_sync(self: Any, sync_id: int, kind: str = RunKind.DELTA) -> int | None:
    run = planner.plan(sync_id, kind=kind)
    return run.pk if run else None


@shared_task(bind=True, ignore_result=True)
def tick(self: Any) -> dict[str, int]:
    now = timezone.now()
    swept = engine.sweep_expired_leases()
    planned = 0
    for sync in Sync.objects.filter(enabled=True, destination__enabled=True).filter(
        Q(schedule=SyncSchedule.REALTIME) | Q(next_run_at__lte=now) | Q(resync_requested=True)
    ):
        if sync.resync_requested:
            kind = RunKind.FULL
        elif not sync.initialised:
            kind = RunKind.INITIAL
        else:
            kind = RunKind.DELTA
        if sync.schedule == SyncSchedule.INTERVAL and sync.next_run_at <= now:
            Sync.objects.filter(pk=sync.pk).update(
                next_run_at=now + timedelta(minutes=max(1, sync.interval_minutes))
            )
        elif sync.schedule == SyncSchedule.INTERVAL and not sync.resync_requested:
            continue
        plan_sync.delay(sync.pk, kind)
        planned += 1
    kicked = 0
    for destination in Destination.objects.filter(enabled=True):
        if Delivery.objects.filter(
            destination=destination, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
        ).exists():
            kick(destination.pk, slots=destination.concurrency)
            kicked += 1
    return {"swept": swept, "planned": planned, "kicked": kicked}
