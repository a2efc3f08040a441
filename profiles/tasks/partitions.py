"""Maintenance of the events table's daily partitions (profiles/partitions.py)."""

from __future__ import annotations

from celery import shared_task

from profiles import partitions


@shared_task(acks_late=True, name="profiles.tasks.ensure_event_partitions")
def ensure_event_partitions() -> list[str]:
    """Create the coming days' partitions ahead of their events (idempotent)."""
    return partitions.ensure_partitions()
