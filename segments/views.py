"""Pages of the segments app: the segment list and the builder (new and existing segments).

The builder edits the rule client-side (segments/static/segments/) and talks to the segments
API for previews, saving, diffs and publishing; these views render the page with what the
builder needs to suggest names (observed traits, computed traits, events and their properties,
published segments, purposes) and the rule language's definitions."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from cdp import access, pages
from cdp.models import Workspace
from consent.privacy import privacy_settings_of
from profiles.identity.selectors import profile_links
from segments import sections, selectors
from segments.models import Segment
from segments.rules.schema import builder_language
from segments.selectors import SEGMENT_ORDERS, SEGMENT_STATUSES, segment_trends
from segments.serializers import SegmentSerializer
from segments.services import segment_dependents, segment_grantees

MEMBER_ROWS = 25
TREND_DAYS = 7
HISTORY_ROWS = 25


@login_required
def segment_list(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "segments.view")
    tags = selectors.segment_tags(workspace=workspace)
    filters = {
        "q": request.GET.get("q", "").strip()[:200],
        "status": pages.choice(request, "status", SEGMENT_STATUSES),
        "owner": pages.choice(request, "owner", ["me"]),
        "order": pages.choice(request, "order", SEGMENT_ORDERS, default="name"),
        "tag": pages.choice(request, "tag", [tag for tag, _ in tags]),
    }
    segments = list(
        selectors.segment_list(
            workspace=workspace,
            q=filters["q"],
            status=filters["status"],
            owner_id=request.user.pk if filters["owner"] else None,
            tag=filters["tag"],
            order=filters["order"],
        )
    )
    filtered = any(filters[k] for k in ("q", "status", "owner", "tag"))
    total = selectors.segment_count(workspace=workspace) if filtered else len(segments)
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
            "can_manage": pages.can(request, "segments.create"),
            "section": "segments",
        },
    )


def _sharing(segment: Segment) -> dict[str, Any]:
    grantees = segment_grantees(segment=segment)
    return {
        "owner": segment.owner.username if segment.owner else None,
        "shared": [
            {"id": u.pk, "username": u.username} for u in grantees if u.pk != segment.owner_id
        ],
        "candidates": selectors.segment_grant_candidates(
            segment=segment, granted={u.pk for u in grantees}
        ),
    }


def _builder(
    request: HttpRequest, workspace: Workspace, segment: Segment | None, **extra: Any
) -> HttpResponse:
    can_manage = (
        pages.can(request, "segments.manage", segment)
        if segment is not None
        else pages.can(request, "segments.create")
    )
    config = {
        "segment": SegmentSerializer(segment).data if segment else None,
        "can_manage": can_manage,
        "suggestions": selectors.builder_suggestions(
            workspace=workspace, exclude_segment=segment.pk if segment else None
        ),
        "api": "/api/v1/segments/",
        "profile_url": "/profiles/",
        "list_url": "/segments/",
        "language": builder_language(),
    }
    return render(
        request,
        "segments/builder.html",
        {
            "segment": segment,
            "config": config,
            "can_manage": can_manage,
            "can_create": pages.can(request, "segments.create"),
            "known_tags": [tag for tag, _ in selectors.segment_tags(workspace=workspace)],
            "role": access.role_of(request.user, workspace),
            "sharing": _sharing(segment) if segment is not None and can_manage else {},
            "section": "segments",
            **extra,
        },
    )


@login_required
def segment_new(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "segments.create")
    return _builder(request, workspace, None)


def _members_page(request: HttpRequest, workspace: Workspace, segment: Segment) -> dict[str, Any]:
    """The `?page=` page of the current members matching `?q=` (name, email or user id), each
    with the link to its profile: the members table (templates/segments/_members.html)."""
    q = request.GET.get("q", "").strip()[:200]
    paging = pages.paginate(request, selectors.segment_members(segment=segment, q=q), MEMBER_ROWS)
    rows = list(paging["page"].object_list)
    people = selectors.member_people(workspace=workspace, ids=[m.profile_id for m in rows])
    for row in rows:
        row.person = people.get(row.profile_id)  # type: ignore[attr-defined]
    return {"members": rows, "members_q": q, **paging}


def _export(request: HttpRequest, workspace: Workspace) -> dict[str, Any]:
    """The export's trait choices: every known trait, the defaults ticked, and those a reader
    without pii.view cannot export (the API leaves them out)."""
    known = selectors.known_traits(workspace=workspace)
    defaults = selectors.default_export_traits(known)
    pii = pages.can(request, "pii.view")
    listed = privacy_settings_of(workspace=workspace).pii_traits
    personal = {t for t in known if selectors.is_pii_trait(t, listed)}
    chosen = [t for t in defaults if pii or t not in personal]
    return {
        "traits": [
            {"path": t, "checked": t in chosen, "locked": not pii and t in personal} for t in known
        ],
        "chosen": len(chosen),
        "query": urlencode({"traits": ",".join(chosen)}, safe=","),
        "pii": pii,
    }


@login_required
def segment_detail(request: HttpRequest, segment_id: int) -> HttpResponse:
    workspace = pages.require(request, "segments.view")
    segment = pages.found(
        selectors.segment_get(workspace=workspace, segment_id=segment_id), "segment"
    )
    history = list(selectors.segment_history(segment=segment)[:HISTORY_ROWS])
    people = profile_links(workspace=workspace, ids=[m.profile_id for m in history])
    for row in history:
        row.person = people.get(row.profile_id)  # type: ignore[attr-defined]
    versions = selectors.segment_versions(segment=segment)
    for version in versions:
        version.state = segment.version_state(version)  # type: ignore[attr-defined]
        version.rule_text = json.dumps(version.rule, indent=2)  # type: ignore[attr-defined]
    return _builder(
        request,
        workspace,
        segment,
        **_members_page(request, workspace, segment),
        history=history,
        versions=versions,
        export=_export(request, workspace),
        used_by=segment_dependents(segment=segment),
        sections=sections.page_sections(request, workspace, segment),
    )


@login_required
def segment_members(request: HttpRequest, segment_id: int) -> HttpResponse:
    """The members table alone (a page of it, searched), which the segment page swaps in
    while paging and searching without reloading the builder."""
    workspace = pages.require(request, "segments.view")
    segment = pages.found(
        selectors.segment_get(workspace=workspace, segment_id=segment_id), "segment"
    )
    return render(
        request,
        "segments/_members.html",
        {"segment": segment, **_members_page(request, workspace, segment)},
    )


def profile_panel(request: HttpRequest, workspace: Workspace, profile: Any) -> dict[str, Any]:
    """The segments panel of the profile page (registered in SegmentsConfig.ready())."""
    return {
        "segments": selectors.profile_segments(profile_id=profile.pk),
        "exits": selectors.profile_segment_exits(profile_id=profile.pk, limit=5),
    }
