"""Celery tasks of the core: keeping the overview's heavy widgets warm."""

from __future__ import annotations

from celery import shared_task

from cdp import health, overview


@shared_task(acks_late=True, name="cdp.tasks.overview_refresh")
def overview_refresh(workspace_id: int, key: str | None = None) -> int:
    """Recompute one widget (or every widget) of a workspace's overview."""
    return overview.refresh(workspace_id, key)


@shared_task(acks_late=True, name="cdp.tasks.overview_refresh_viewed")
def overview_refresh_viewed() -> int:
    """The heavy widgets due of every overview opened in the last hour."""
    done = 0
    for workspace_id in overview.recently_viewed():
        for key in overview.stale_heavy(workspace_id):
            done += overview.refresh(workspace_id, key)
    return done


@shared_task(ignore_result=True, name="cdp.tasks.beat_tick")
def beat_tick() -> None:
    """Sent by beat every few seconds: its run proves beat and a default-queue worker alive
    (read by /readyz, cdp/health.py)."""
    health.beat_tick()
