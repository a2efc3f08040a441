"""The segments app's part of the System page (cdp/system.py, registered in
SegmentsConfig.ready). Segments do not record how long an evaluation took, so the card shows
the largest segments (the ones whose evaluation costs most) with when they were last
evaluated."""

from __future__ import annotations

from typing import Any

from cdp import system
from cdp.models import Workspace
from segments.models import Segment

SHOWN = 5


def largest_segments(workspace: Workspace) -> dict[str, Any]:
    # a workspace has at most a few hundred segments: no index needed to sort them
    rows = list(
        Segment.objects.filter(workspace=workspace)
        .order_by("-member_count", "pk")
        .values("pk", "name", "status", "member_count", "evaluated_at")[:SHOWN]
    )
    return {"rows": rows, "shown": SHOWN}


def register() -> None:
    system.register_section(
        key="segments",
        title="Largest segments",
        order=50,
        template="segments/_system_segments.html",
        context_fn=largest_segments,
        capability="segments.view",
    )
