"""Computed traits: backfills after a definition change, window refreshes and the hourly
built-in traits (RFM, engagement)."""

from __future__ import annotations

import logging

from celery import shared_task

from cdp.models import Workspace
from profiles.computed import services as computed
from profiles.models import ComputedTrait

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    acks_late=True,
    max_retries=5,
    default_retry_delay=30,
    name="profiles.tasks.computed_trait_backfill",
)
def computed_trait_backfill(self, trait_id: int) -> int:  # type: ignore[no-untyped-def]
    """Recompute one computed trait for every profile (after a create, a definition change or
    a refresh request). Safe to repeat; a deleted or since-changed trait stops it early."""
    trait = ComputedTrait.objects.filter(pk=trait_id).first()
    if trait is None:
        return 0
    try:
        return computed.computed_trait_refresh(trait=trait)
    except Exception as exc:
        logger.exception("backfill of computed trait %s failed; will retry", trait_id)
        raise self.retry(exc=exc) from exc


@shared_task(
    bind=True,
    acks_late=True,
    max_retries=3,
    default_retry_delay=30,
    name="profiles.tasks.computed_traits_refresh_windows",
)
def computed_traits_refresh_windows(self) -> int:  # type: ignore[no-untyped-def]
    """Beat (every 5 minutes): windowed traits of profiles whose events left the window; also
    the sweeper for backfills whose task was lost."""
    try:
        computed.computed_traits_backfill_missing()
        return computed.computed_traits_refresh_windows()
    except Exception as exc:
        logger.exception("window refresh of computed traits failed; will retry")
        raise self.retry(exc=exc) from exc


@shared_task(bind=True, acks_late=True, name="profiles.tasks.builtin_traits_refresh_all")
def builtin_traits_refresh_all(self) -> int:  # type: ignore[no-untyped-def]
    """Beat (hourly): one built-in refresh task per workspace."""
    workspace_ids = list(Workspace.objects.order_by("id").values_list("id", flat=True))
    for workspace_id in workspace_ids:
        builtin_traits_refresh_workspace.apply_async(kwargs={"workspace_id": workspace_id})
    return len(workspace_ids)


@shared_task(
    bind=True,
    acks_late=True,
    max_retries=3,
    default_retry_delay=60,
    name="profiles.tasks.builtin_traits_refresh_workspace",
)
def builtin_traits_refresh_workspace(self, workspace_id: int) -> int:  # type: ignore[no-untyped-def]
    """RFM, average order value, days since last order, engagement score of one workspace."""
    try:
        return computed.builtin_traits_refresh(workspace_id=workspace_id)
    except Exception as exc:
        logger.exception("built-in traits refresh of workspace %s failed; will retry", workspace_id)
        raise self.retry(exc=exc) from exc
