"""Pages of the profiles app: sources (write keys, snippets, volume), the event debugger, the
observed schema and the 360° profile page (the profile list is the explorer's:
profiles/explorer/views.py). Thin: check access with the
page toolkit (cdp.pages), call selectors and services, render."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from cdp import pages
from cdp.errors import ApplicationError, ValidationFailed
from cdp.models import Workspace
from cdp.params import int_param
from cdp.present import relative_text
from profiles import panels, selectors, services
from profiles.collector.normalize import EVENT_TYPES
from profiles.computed import builtin
from profiles.computed.selectors import profile_computed_traits
from profiles.identity import activity as activity_selectors
from profiles.identity import selectors as identity_selectors
from profiles.models import FailureReason, Identity, Profile, Source, SourceKind

TIMELINE_PAGE_SIZE = 25
IDENTITIES_PER_TYPE = 50  # values listed per identifier type on the profile page
SECTION_ROWS = 50  # merges / conflicts listed on the profile page (the logs have the rest)


# ---- sources --------------------------------------------------------------------------------


def _keys_newest_first(source: Source) -> list[Any]:
    # After a rotation the snippets and the list must show the new key, not the one being
    # phased out; the relation itself has no ordering.
    return sorted(source.write_keys.all(), key=lambda k: (k.created_at, k.pk), reverse=True)


@login_required
def sources(request: HttpRequest) -> HttpResponse:
    workspace = pages.workspace_of(request)
    can_view_all = pages.can(request, "sources.view")
    rows = [
        s
        for s in selectors.source_list(workspace=workspace)
        if can_view_all or pages.can(request, "sources.view", s)
    ]
    volume = {
        row["source_id"]: row["total"] for row in selectors.source_totals(workspace=workspace)
    }
    alerts = selectors.dead_letter_alerts(workspace=workspace)
    for source in rows:
        source.total_events = volume.get(source.pk, 0)  # type: ignore[attr-defined]
        source.dead_letter_alert = alerts.get(source.pk)  # type: ignore[attr-defined]
        source.active_keys = [k for k in _keys_newest_first(source) if k.revoked_at is None]  # type: ignore[attr-defined]
    return render(
        request,
        "profiles/sources/list.html",
        {
            "sources": rows,
            "kinds": SourceKind.choices,
            "can_manage": pages.can(request, "sources.manage"),
        },
    )


@login_required
@require_POST
def source_create(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "sources.manage")
    try:
        source = services.source_create(
            workspace=workspace,
            name=request.POST.get("name", ""),
            kind=request.POST.get("kind", SourceKind.HTTP),
            actor=request.user,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("ui-sources")
    messages.success(request, f"Source “{source.name}” created. Point your SDK at it below.")
    return redirect("ui-source", source_id=source.pk)


def _source_or_404(workspace: Workspace, source_id: int) -> Source:
    return pages.found(selectors.source_get(workspace=workspace, source_id=source_id), "source")


def _managed_source(request: HttpRequest, source_id: int) -> Source:
    """The source, if the user may manage it (by role or by a per-object grant)."""
    source = _source_or_404(pages.workspace_of(request), source_id)
    if not pages.can(request, "sources.manage", source):
        raise PermissionDenied("You cannot manage this source.")
    return source


@login_required
def source_detail(request: HttpRequest, source_id: int) -> HttpResponse:
    workspace = pages.workspace_of(request)
    source = _source_or_404(workspace, source_id)
    if not pages.can(request, "sources.view", source):
        raise PermissionDenied("You cannot view this source.")
    keys = _keys_newest_first(source)
    active = [k for k in keys if k.revoked_at is None]
    revoked = [k for k in keys if k.revoked_at is not None]
    return render(
        request,
        "profiles/sources/detail.html",
        {
            "source": source,
            "active_keys": active,
            "revoked_keys": revoked,
            "write_key": active[0].key if active else "",
            "collector_url": request.build_absolute_uri("/").rstrip("/"),
            "collector_host": request.get_host(),
            "origins_text": "\n".join(source.allowed_origins),
            "collector_scheme": request.scheme,
            "volume": selectors.source_volume(workspace=workspace, source_id=source.pk),
            "dead_letters": _dead_letter_chart(selectors.dead_letter_days(source=source)),
            "dead_letter_quota": selectors.dead_letter_quota(source),
            "can_manage": pages.can(request, "sources.manage", source),
            "can_replay": pages.can(request, "failed_events.replay", source),
            "failure_reasons": FailureReason.choices,
            "default_rate_limit": settings.CDP_DEFAULT_RATE_LIMIT,
            "default_max_event_bytes": settings.CDP_MAX_EVENT_BYTES,
        },
    )


CHART_HEIGHT = 40  # the dead-letter chart's viewBox: 10 units per day, 40 high


def _dead_letter_chart(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Bars (kept below, not kept stacked on top) in viewBox units, drawn by the template as
    SVG attributes (no inline style: the CSP forbids it)."""
    peak = max((d["kept"] + d["not_kept"] for d in days), default=0)
    bars = []
    for index, day in enumerate(days):
        kept = CHART_HEIGHT * day["kept"] / peak if peak else 0
        over = CHART_HEIGHT * day["not_kept"] / peak if peak else 0
        # a day with any dead letter shows at least a sliver
        kept = max(kept, 0.6) if day["kept"] else 0
        over = max(over, 0.6) if day["not_kept"] else 0
        bars.append(
            {
                **day,
                "x": index * 10 + 1,
                "kept_y": CHART_HEIGHT - kept,
                "kept_h": kept,
                "over_y": CHART_HEIGHT - kept - over,
                "over_h": over,
            }
        )
    today = days[-1]
    return {
        "bars": bars,
        "peak": peak,
        "today": today,
        "total": sum(d["kept"] + d["not_kept"] for d in days),
        "width": len(days) * 10,
        "height": CHART_HEIGHT,
    }


@login_required
@require_POST
def source_dead_letter_quota(request: HttpRequest, source_id: int) -> HttpResponse:
    """Set the source's daily dead-letter quota (empty: the platform default)."""
    source = _managed_source(request, source_id)
    text = request.POST.get("quota", "").strip()
    try:
        quota = None if text == "" else int_param(text.replace(",", ""), "quota")
        services.source_update(source=source, actor=request.user, dead_letter_quota=quota)
    except ValidationFailed as exc:
        messages.error(request, f"Quota not saved: {'; '.join(pages.field_errors(exc).values())}")
    else:
        shown = "the platform default" if quota is None else f"{quota:,} a day"
        messages.success(request, f"Dead-letter quota set to {shown}.")
    return redirect(f"{reverse('ui-source', args=[source.pk])}#dead-letters")


@login_required
@require_POST
def source_rotate_key(request: HttpRequest, source_id: int) -> HttpResponse:
    source = _managed_source(request, source_id)
    services.write_key_rotate(
        source=source, actor=request.user, revoke_old=request.POST.get("revoke_old") == "1"
    )
    messages.success(request, "New write key issued.")
    return redirect("ui-source", source_id=source.pk)


@login_required
@require_POST
def source_revoke_key(request: HttpRequest, source_id: int, key_id: int) -> HttpResponse:
    source = _managed_source(request, source_id)
    try:
        services.write_key_revoke(source=source, key_id=key_id, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Write key revoked; SDKs using it now get 401.")
    return redirect("ui-source", source_id=source.pk)


@login_required
@require_POST
def source_origins(request: HttpRequest, source_id: int) -> HttpResponse:
    """The origins browsers may call from with this source's keys, one per line."""
    source = _managed_source(request, source_id)
    lines = [
        (number, line.strip())
        for number, line in enumerate(request.POST.get("origins", "").splitlines(), start=1)
        if line.strip()
    ]
    try:
        services.source_update(
            source=source, actor=request.user, allowed_origins=[line for _, line in lines]
        )
    except ValidationFailed as exc:
        # allowed_origins[i] is the i-th non-blank line
        problems = "; ".join(
            f"line {lines[int(path[path.index('[') + 1 : -1])][0]}: {message}"
            if path.endswith("]")
            else message
            for path, message in pages.field_errors(exc).items()
        )
        messages.error(request, f"Origins not saved: {problems}")
    else:
        messages.success(
            request,
            "Allowed origins saved: browsers elsewhere now get 403."
            if source.allowed_origins
            else "Any origin may now send events with this source's keys.",
        )
    return redirect(f"{reverse('ui-source', args=[source.pk])}#origins")


@login_required
@require_POST
def source_toggle(request: HttpRequest, source_id: int) -> HttpResponse:
    source = _managed_source(request, source_id)
    services.source_update(source=source, actor=request.user, enabled=not source.enabled)
    messages.success(request, f"Source {'enabled' if source.enabled else 'disabled'}.")
    return redirect("ui-source", source_id=source.pk)


# ---- debugger and schema --------------------------------------------------------------------


@login_required
def debugger(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "events.view")
    all_sources = list(selectors.source_list(workspace=workspace))
    if not all_sources:
        return redirect("ui-sources")
    last_events = selectors.source_last_events(workspace=workspace)
    now = timezone.now()
    for s in all_sources:
        last = last_events.get(s.pk)
        s.activity = (  # type: ignore[attr-defined]
            f"last event {relative_text(last, now)}" if last else "no events yet"
        )
    wanted = request.GET.get("source")
    source = next((s for s in all_sources if str(s.pk) == wanted), None)
    if source is None:
        if wanted:
            # not silently another source: the link may be from another workspace
            raise Http404("No such source in this workspace.")
        # the source that received an event last (demo data, an app just set up), else the
        # first one: an empty source would greet a new user with "waiting for events"
        active = [s for s in all_sources if s.pk in last_events]
        source = max(active, key=lambda s: last_events[s.pk]) if active else all_sources[0]
    return render(
        request,
        "profiles/sources/debugger.html",
        {
            "source": source,
            "sources": all_sources,
            "event_names": selectors.debugger_event_names(workspace=workspace),
            "types": EVENT_TYPES,
            "can_replay": pages.can(request, "failed_events.replay", source),
        },
    )


def _stacked(shares: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each share with where its segment starts on a 0–100 bar."""
    start = 0.0
    for share in shares:
        share["offset"] = round(start, 2)
        start += share["percent"]
    return shares


@login_required
def schema(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "schema.view")
    events = list(selectors.observed_events(workspace=workspace))
    properties = list(selectors.observed_properties(workspace=workspace))
    by_event: dict[tuple[str, str], list[Any]] = {}
    mixed = []
    for prop in properties:
        # JSON, not Python's repr: true/null/{"a": 1} as the SDK sent them
        prop.example_json = orjson.dumps(prop.example).decode()  # type: ignore[attr-defined]
        prop.types = selectors.observed_types([prop])  # type: ignore[attr-defined]
        prop.shares = _stacked(prop.types.shares())  # type: ignore[attr-defined]
        if prop.types.mixed:  # type: ignore[attr-defined]
            mixed.append(prop)
        by_event.setdefault((prop.type, prop.event), []).append(prop)
    for event in events:
        event.props = by_event.get((event.type, event.event), [])  # type: ignore[attr-defined]
        event.mixed = sum(p.types.mixed for p in event.props)  # type: ignore[attr-defined]
    return render(request, "profiles/schema.html", {"events": events, "mixed": mixed})


# ---- profile 360° ---------------------------------------------------------------------------


def display_value(value: Any) -> str:
    """A trait value as a person reads it: text as is, numbers without noise, times in the
    pages' format, objects and lists as JSON."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        parsed = parse_datetime(value) if len(value) >= 19 and value[4:5] == "-" else None
        return parsed.strftime("%Y-%m-%d %H:%M") if parsed else value
    return orjson.dumps(value).decode()


def _computed_traits(profile: Profile) -> list[dict[str, Any]]:
    rows = []
    for trait in profile_computed_traits(profile):
        row = dict(trait)
        value = trait.get("value")
        known = builtin.BY_KEY.get(trait["key"]) if trait.get("kind") == "builtin" else None
        if known is not None and known.type == "number" and isinstance(value, int | float):
            row["display"] = f"{value:,.2f}"  # money: always with cents
        else:
            row["display"] = display_value(value)
        row.setdefault("description", known.description if known else "")
        rows.append(row)
    return rows


def _headline(profile: Profile, computed: list[dict[str, Any]]) -> dict[str, Any]:
    by_key = {t["key"]: t.get("value") for t in computed}
    stored = profile.computed or {}

    def pick(key: str) -> Any:
        value = by_key.get(key)
        return value if value is not None else stored.get(key)

    aov = pick("average_order_value")
    if aov is None and profile.order_count:
        aov = profile.revenue / profile.order_count
    return {
        "aov": aov,
        "engagement": pick("engagement_score"),
        "rfm_segment": pick("rfm_segment"),
        "rfm_score": pick("rfm_score"),
    }


def _identity_groups(identities: list[Identity]) -> list[dict[str, Any]]:
    """Identities by type, in priority order; a type with very many values (a shared device
    seen with hundreds of anonymous ids) shows its first ones and a count of the rest."""
    groups: list[dict[str, Any]] = []
    for identity in identities:  # already in priority order
        if not groups or groups[-1]["type"] != identity.type:
            groups.append({"type": identity.type, "items": [], "total": 0})
        group = groups[-1]
        group["total"] += 1
        if len(group["items"]) < IDENTITIES_PER_TYPE:
            group["items"].append(identity)
    for group in groups:
        group["hidden"] = group["total"] - len(group["items"])
    return groups


def _weekly_rows(activity: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The activity chart's weeks as table rows (newest first, weeks with events only)."""
    if not activity or not activity["weeks"]:
        return []
    rows = []
    for i, week in enumerate(activity["weeks"]):
        counts = [s["values"][i] for s in activity["series"]]
        if any(counts):
            rows.append({"week": week, "counts": counts, "total": sum(counts)})
    return rows[::-1]


def _monthly_rows(activity: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not activity or not activity["months"]:
        return []
    return [
        {"month": month, "orders": orders, "revenue": revenue}
        for month, orders, revenue in zip(
            activity["months"], activity["orders"], activity["revenue"], strict=True
        )
        if orders
    ][::-1]


@login_required
def profile_detail(request: HttpRequest, profile_id: int) -> HttpResponse:
    workspace = pages.require(request, "profiles.view")
    profile = pages.found(
        identity_selectors.profile_get(workspace=workspace, profile_id=profile_id), "profile"
    )
    if profile.pk != profile_id:
        messages.info(
            request,
            f"Profile #{profile_id} was merged into this one; showing the surviving profile.",
        )
        return redirect("ui-profile", profile_id=profile.pk)
    identities = identity_selectors.profile_identities(profile=profile)
    computed = _computed_traits(profile)
    merges = identity_selectors.with_merge_people(
        workspace=workspace,
        merges=list(identity_selectors.profile_merges(profile=profile)[:SECTION_ROWS]),
    )
    conflicts = list(identity_selectors.profile_conflicts(profile=profile)[:SECTION_ROWS])
    # the profile on the other side of each conflict, whichever side this one is on
    other_ids = [
        c.other_profile_id if c.profile_id == profile.pk else c.profile_id for c in conflicts
    ]
    others = identity_selectors.profile_links(workspace=workspace, ids=other_ids)
    for conflict, other_id in zip(conflicts, other_ids, strict=True):
        conflict.other_info = others.get(other_id or 0)  # type: ignore[attr-defined]
    traits = [
        {"key": key, "display": display_value(value), "structured": isinstance(value, dict | list)}
        for key, value in sorted((profile.traits or {}).items())
    ]
    can_view_events = pages.can(request, "events.view")
    activity = activity_selectors.profile_activity(profile=profile) if can_view_events else None
    return render(
        request,
        "profiles/detail.html",
        {
            "profile": profile,
            "name": identity_selectors.display_name(profile, identities),
            "identity_groups": _identity_groups(identities),
            "identity_count": len(identities),
            "traits": traits,
            "computed": computed,
            "computed_builtin": [t for t in computed if t.get("kind") != "custom"],
            "computed_custom": [t for t in computed if t.get("kind") == "custom"],
            "headline": _headline(profile, computed),
            "merges": merges,
            "conflicts": conflicts,
            "section_rows": SECTION_ROWS,
            "panels": panels.page_sections(request, workspace, profile),
            "can_split": pages.can(request, "profiles.split"),
            "can_view_events": can_view_events,
            "timeline_page_size": TIMELINE_PAGE_SIZE,
            "activity": activity,
            "event_types": EVENT_TYPES,
            "activity_weeks": _weekly_rows(activity),
            "activity_months": _monthly_rows(activity),
            "event_names": activity_selectors.profile_event_names(profile=profile)
            if can_view_events
            else [],
            "section": "profiles",
        },
    )
