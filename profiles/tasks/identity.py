"""Celery entry point of the identity graph: the full rebuild of a workspace."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

from profiles.identity.rebuild import identity_graph_rebuild
from profiles.identity.services import identity_rebuild_record

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    acks_late=True,
    max_retries=3,
    default_retry_delay=60,
    name="profiles.identity.tasks.identity_graph_rebuild_task",
)
def identity_graph_rebuild_task(self, workspace_id: int, apply: bool = True) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The full identity graph rebuild of one workspace; returns the report as a dict. Safe to
    run twice (a second run changes nothing) and to run while events flow in (it holds the
    workspace's identity lock exclusively). Retried only on database trouble (a dropped
    connection, a lock timeout); a bad workspace id fails at once."""
    try:
        report = identity_graph_rebuild(workspace_id=workspace_id, apply=apply)
    except (OperationalError, InterfaceError) as exc:
        logger.exception("identity graph rebuild of workspace %s failed; will retry", workspace_id)
        raise self.retry(exc=exc) from exc
    logger.info(
        "identity graph rebuild of workspace %s: %s merges, %s splits in %.1fs",
        workspace_id,
        report.merges,
        report.splits,
        report.seconds,
    )
    data = report.as_dict()
    identity_rebuild_record(workspace_id=workspace_id, report=data)
    return data
