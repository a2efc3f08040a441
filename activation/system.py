"""The activation app's part of the System page (cdp/system.py, registered in
ActivationConfig.ready): dead deliveries among the dead letters, and the failing
destinations (circuit open, or dead deliveries in the last 24 hours)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from activation import selectors
from cdp import system
from cdp.models import Workspace


def dead_deliveries(workspace: Workspace, since: datetime) -> int:
    return selectors.dead_deliveries_count(
        workspace_id=workspace.pk, since=since, cap=system.DEAD_LETTER_CAP
    )


def failing(workspace: Workspace) -> dict[str, Any]:
    hours = system.DEAD_LETTER_HOURS
    since = timezone.now() - timedelta(hours=hours)
    return {
        "rows": selectors.failing_destinations(
            workspace=workspace, since=since, cap=system.DEAD_LETTER_CAP
        ),
        "hours": hours,
    }


def register() -> None:
    system.register_dead_letters(
        key="dead_deliveries",
        label="Dead deliveries (given up on)",
        order=20,
        count_fn=dead_deliveries,
        url_name="ui-deliveries",
        query="status=dead",
    )
    system.register_section(
        key="destinations",
        title="Failing destinations",
        order=15,
        template="activation/_system_destinations.html",
        context_fn=failing,
        capability="destinations.view",
    )
