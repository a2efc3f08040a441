"""The segments app's part of the System page (cdp/system.py, registered in
SegmentsConfig.ready): the segments whose last whole-workspace evaluation (scheduled or at
publication) took longest, with their size and when that was."""

from __future__ import annotations

from typing import Any

from django.db.models import F

from cdp import system
from cdp.models import Workspace
from segments.models import Segment

SHOWN = 5


def slowest_segments(workspace: Workspace) -> dict[str, Any]:
    # a workspace has at most a few hundred segments: no index needed to sort them
    rows: list[dict[str, Any]] = [
        dict(row)
        for row in Segment.objects.filter(workspace=workspace)
        .order_by(F("evaluation_ms").desc(nulls_last=True), "-member_count", "pk")
        .values("pk", "name", "status", "member_count", "evaluated_at", "evaluation_ms")[:SHOWN]
    ]
    slowest = max((r["evaluation_ms"] or 0 for r in rows), default=0)
    for row in rows:
        # the bar beside each time, relative to the slowest shown
        row["share"] = round(100 * (row["evaluation_ms"] or 0) / slowest) if slowest else 0
    return {"rows": rows, "shown": SHOWN}


def register() -> None:
    system.register_section(
        key="segments",
        title="Slowest segments",
        order=50,
        template="segments/_system_segments.html",
        context_fn=slowest_segments,
        capability="segments.view",
    )
