"""Pages of the segment builder: the segment list and the builder (new and existing segments).

The builder edits the rule client-side (cdp/static/cdp/segments.js) and talks to the segments
API for previews, saving, diffs and publishing; these views render the page with what the
builder needs to suggest names (observed traits, computed traits, events and their properties,
published segments)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from cdp import access
from cdp.models import Role, Workspace
from cdp.ui.profile_views import _profiles_by_id
from cdp.ui.views import _require
from consent.models import Purpose
from profiles import selectors as profile_selectors
from profiles.computed import selectors as computed_selectors
from segments import selectors as segment_selectors
from segments.models import Membership, Segment, SegmentStatus
from segments.selectors import SEGMENT_ORDERS, SEGMENT_STATUSES, segment_trends
from segments.serializers import SegmentSerializer
from segments.services import segment_dependents, segment_grantees

MEMBER_ROWS = 25
TREND_DAYS = 7
HISTORY_ROWS = 25
# observed value types -> the type the builder offers operators for
_OBSERVED_TYPES = {"number": "number", "integer": "number", "boolean": "boolean"}
_BUILTIN_TYPES = {"datetime": "datetime", "integer": "number", "number": "number"}


def _segments(workspace: Workspace) -> Any:
    return (
        Segment.objects.filter(workspace=workspace)
        .select_related("published_version", "draft_version", "owner")
        .order_by("name")
    )


def _value_type(value_types: list[str]) -> str:
    """One builder type for a trait or property seen with these JSON types."""
    kinds = {_OBSERVED_TYPES.get(t, "string") for t in value_types if t != "null"}
    return kinds.pop() if len(kinds) == 1 else "any"


def _suggestions(workspace: Workspace, exclude_segment: int | None) -> dict[str, Any]:
    traits: dict[str, dict[str, Any]] = {}
    properties: dict[str, list[dict[str, str]]] = {}
    for prop in profile_selectors.observed_properties(workspace=workspace):
        if prop.kind == "trait":
            traits.setdefault(
                prop.path, {"name": prop.path, "type": _value_type(prop.value_types), "label": ""}
            )
        elif prop.kind == "property" and prop.type == "track" and prop.event:
            properties.setdefault(prop.event, []).append(
                {"name": prop.path, "type": _value_type(prop.value_types)}
            )
    for trait in computed_selectors.builtin_trait_list():
        traits[trait["key"]] = {
            "name": trait["key"],
            "type": _BUILTIN_TYPES.get(trait["type"], "string"),
            "label": f"{trait['label']} (computed)",
            "values": trait.get("values") or [],
        }
    for custom in computed_selectors.computed_trait_list(workspace=workspace):
        traits.setdefault(
            custom.key, {"name": custom.key, "type": "any", "label": f"{custom.name} (custom)"}
        )
    events = sorted(
        {e.event for e in profile_selectors.observed_events(workspace=workspace) if e.event}
    )
    published = _segments(workspace).filter(status=SegmentStatus.PUBLISHED)
    if exclude_segment is not None:
        published = published.exclude(pk=exclude_segment)
    return {
        "traits": sorted(traits.values(), key=lambda t: t["name"]),
        "events": events,
        "properties": properties,
        "segments": [{"key": s.key, "name": s.name} for s in published],
        "purposes": [
            {"key": p.key, "name": p.name}
            for p in Purpose.objects.filter(workspace=workspace).order_by("key")
        ],
    }


@login_required
def segment_list(request: HttpRequest) -> HttpResponse:
    workspace = _require(request, "segments.view")
    filters = {
        "q": request.GET.get("q", "").strip()[:200],
        "status": request.GET.get("status", ""),
        "owner": request.GET.get("owner", ""),
        "order": request.GET.get("order", "name"),
        "tag": request.GET.get("tag", ""),
    }
    tags = segment_selectors.segment_tags(workspace=workspace)
    # the form offers only valid values; anything else (an edited URL) falls back to the default
    if filters["status"] not in SEGMENT_STATUSES:
        filters["status"] = ""
    if filters["order"] not in SEGMENT_ORDERS:
        filters["order"] = "name"
    if filters["owner"] != "me":
        filters["owner"] = ""
    if filters["tag"] not in {tag for tag, _ in tags}:
        filters["tag"] = ""
    segments = list(
        segment_selectors.segment_list(
            workspace=workspace,
            q=filters["q"],
            status=filters["status"],
            owner_id=request.user.pk if filters["owner"] else None,
            tag=filters["tag"],
            order=filters["order"],
        )
    )
    filtered = any(filters[k] for k in ("q", "status", "owner", "tag"))
    total = Segment.objects.filter(workspace=workspace).count() if filtered else len(segments)
    # one query for every row's entries and exits (never one per segment)
    trends = segment_trends(segment_ids=[s.pk for s in segments], days=TREND_DAYS)
    for segment in segments:
        trend = trends[segment.pk]
        segment.trend = {  # type: ignore[attr-defined]
            "entered": trend.entered,
            "exited": trend.exited,
            "change": trend.change,
            "size": abs(trend.change),
        }
    return render(
        request,
        "segments/list.html",
        {
            "segments": segments,
            "total": total,
            "filters": filters,
            "filtered": filtered,
            "tags": tags,
            "statuses": SEGMENT_STATUSES.items(),
            "orders": [(key, label) for key, (label, _) in SEGMENT_ORDERS.items()],
            "trend_days": TREND_DAYS,
            "can_manage": access.can(request.user, workspace, "segments.create"),
            "section": "segments",
        },
    )


def _builder(
    request: HttpRequest, workspace: Workspace, segment: Segment | None, **extra: Any
) -> HttpResponse:
    can_manage = (
        access.can(request.user, workspace, "segments.manage", segment)
        if segment is not None
        else access.can(request.user, workspace, "segments.create")
    )
    sharing: dict[str, Any] = {}
    if segment is not None and can_manage:
        grantees = segment_grantees(segment=segment)
        granted = {u.pk for u in grantees}
        sharing = {
            "owner": segment.owner.username if segment.owner else None,
            "shared": [
                {"id": u.pk, "username": u.username} for u in grantees if u.pk != segment.owner_id
            ],
            # granting matters for marketers (owners and admins manage every segment)
            "candidates": [
                {"id": m.user_id, "username": m.user.username}
                for m in workspace.memberships.filter(role=Role.MARKETER)
                .select_related("user")
                .order_by("user__username")
                if m.user_id not in granted
            ],
        }
    config = {
        "segment": SegmentSerializer(segment).data if segment else None,
        "can_manage": can_manage,
        "suggestions": _suggestions(workspace, segment.pk if segment else None),
        "api": "/api/v1/segments/",
        "profile_url": "/profiles/",
        "list_url": "/segments/",
    }
    return render(
        request,
        "segments/builder.html",
        {
            "segment": segment,
            "config": config,
            "can_manage": can_manage,
            "can_create": access.can(request.user, workspace, "segments.create"),
            "known_tags": [tag for tag, _ in segment_selectors.segment_tags(workspace=workspace)],
            "role": access.role_of(request.user, workspace),
            "sharing": sharing,
            "section": "segments",
            **extra,
        },
    )


@login_required
def segment_new(request: HttpRequest) -> HttpResponse:
    workspace = _require(request, "segments.create")
    return _builder(request, workspace, None)


@login_required
def segment_detail(request: HttpRequest, segment_id: int) -> HttpResponse:
    workspace = _require(request, "segments.view")
    segment = _segments(workspace).filter(pk=segment_id).first()
    if segment is None:
        raise Http404("No such segment in this workspace.")
    members = list(
        Membership.objects.filter(segment=segment, exited_at__isnull=True).order_by(
            "-entered_at", "-profile_id"
        )[:MEMBER_ROWS]
    )
    history = list(
        Membership.objects.filter(segment=segment).order_by("-entered_at", "-id")[:HISTORY_ROWS]
    )
    people = _profiles_by_id(workspace, [m.profile_id for m in members + history])
    for row in members + history:
        row.person = people.get(row.profile_id)  # type: ignore[attr-defined]
    versions = segment_selectors.segment_versions(segment=segment)
    for version in versions:
        version.state = segment.version_state(version)  # type: ignore[attr-defined]
        version.rule_text = json.dumps(version.rule, indent=2)  # type: ignore[attr-defined]
    return _builder(
        request,
        workspace,
        segment,
        members=members,
        history=history,
        member_rows=MEMBER_ROWS,
        versions=versions,
        used_by=segment_dependents(segment=segment),
    )
