"""The segments app's widgets on the overview (registered in SegmentsConfig.ready()): live
segments, the largest segments with their size over 30 days, and model health."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, Sum
from django.urls import reverse

from cdp import overview
from cdp.models import Workspace
from segments import selectors
from segments.ml.models import MLModel
from segments.models import Segment, SegmentStatus

TOP = 8
TREND_DAYS = 30


def segment_cards(workspace: Workspace) -> dict[str, Any]:
    live = Segment.objects.filter(workspace=workspace, status=SegmentStatus.PUBLISHED)
    totals = live.aggregate(n=Count("id"), members=Sum("member_count"))
    drafts = Segment.objects.filter(workspace=workspace, status=SegmentStatus.DRAFT).count()
    return {
        "cards": [
            {
                "label": "Live segments",
                "value": int(totals["n"] or 0),
                "format": "num",
                "hint": f"{drafts:,} draft{'s' if drafts != 1 else ''}",
                "href": reverse("ui-segments"),
            }
        ]
    }


def top_segments(workspace: Workspace) -> dict[str, Any]:
    """The largest live segments, each with its size at the end of each of the last 30
    days."""
    rows = list(
        Segment.objects.filter(workspace=workspace, status=SegmentStatus.PUBLISHED)
        .order_by("-member_count", "name")
        .values("pk", "name", "member_count")[:TOP]
    )
    if not rows:
        return {
            "empty": "No live segments yet.",
            "empty_href": reverse("ui-segment-new"),
            "empty_link": "Build one →",
        }
    items = []
    for row in rows:
        segment = Segment(pk=row["pk"], workspace=workspace)
        sizes = selectors.segment_sizes(segment=segment, days=TREND_DAYS)
        change = sizes[-1].size - sizes[0].size if sizes else 0
        items.append(
            {
                "label": row["name"],
                "value": int(row["member_count"]),
                "values": [s.size for s in sizes],
                "href": reverse("ui-segment", args=[row["pk"]]),
                "hint": f"{'+' if change >= 0 else '−'}{abs(change):,} in {TREND_DAYS} days",
            }
        )
    return {"items": items}


def model_cards(workspace: Workspace) -> dict[str, Any]:
    models = MLModel.objects.filter(workspace=workspace)
    counts = models.aggregate(
        n=Count("id"),
        trained=Count("id", filter=Q(champion__isnull=False)),
    )
    drifting = sum(1 for drift in models.values_list("drift", flat=True) if drift)
    n = int(counts["n"] or 0)
    if not n:
        return {"cards": []}
    return {
        "cards": [
            {
                "label": "Models trained",
                "value": int(counts["trained"] or 0),
                "format": "num",
                "hint": f"of {n:,}" + (f" · {drifting} drifting" if drifting else " · no drift"),
                "tone": "warn" if drifting else "ok",
                "href": reverse("ui-models"),
            }
        ]
    }


def register() -> None:
    overview.register(
        key="segments",
        title="Segments",
        kind="cards",
        order=15,
        capability="segments.view",
        compute=segment_cards,
    )
    overview.register(
        key="top_segments",
        title="Largest segments",
        kind="spark",
        order=50,
        capability="segments.view",
        compute=top_segments,
        ttl=300,
        heavy=True,
        description="Members now, and their number at the end of each of the last 30 days.",
        href="ui-segments",
    )
    overview.register(
        key="models",
        title="Models",
        kind="cards",
        order=60,
        capability="models.view",
        compute=model_cards,
    )
