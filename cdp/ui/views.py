"""Server-rendered pages. Thin like the API views: check access, call services/selectors."""

from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from cdp import access
from cdp.auth import SESSION_WORKSPACE_KEY, current_workspace
from cdp.errors import ApplicationError
from cdp.models import ApiToken, Workspace
from cdp.services import api_token_create, api_token_revoke
from profiles import selectors, services
from profiles.models import FailureReason, Source, SourceKind

TOKEN_NAME_MAX = ApiToken._meta.get_field("name").max_length or 100
SOURCE_NAME_MAX = Source._meta.get_field("name").max_length or 200


def _workspace(request: HttpRequest) -> Workspace:
    workspace = current_workspace(request)
    if workspace is None:
        raise PermissionDenied("You are not a member of any workspace.")
    return workspace


def _require(request: HttpRequest, capability: str, obj: Any = None) -> Workspace:
    workspace = _workspace(request)
    if not access.can(request.user, workspace, capability, obj):
        raise PermissionDenied(f"Your role does not allow {capability}.")
    return workspace


def _keys_newest_first(source: Any) -> list[Any]:
    # After a rotation the snippets and the list must show the new key, not the one being
    # phased out; the relation itself has no ordering.
    return sorted(source.write_keys.all(), key=lambda k: (k.created_at, k.pk), reverse=True)


def _collector_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/")


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("ui-sources")


@login_required
@require_POST
def switch_workspace(request: HttpRequest) -> HttpResponse:
    wanted = request.POST.get("workspace")
    if (
        wanted
        and wanted.isdigit()
        and access.workspaces_of(request.user).filter(pk=wanted).exists()
    ):
        request.session[SESSION_WORKSPACE_KEY] = int(wanted)
    return redirect("ui-sources")


@login_required
def sources(request: HttpRequest) -> HttpResponse:
    workspace = _workspace(request)
    can_view_all = access.can(request.user, workspace, "sources.view")
    rows = [
        s
        for s in selectors.source_list(workspace=workspace)
        if can_view_all or access.can(request.user, workspace, "sources.view", s)
    ]
    volume = {
        row["source_id"]: row["total"] for row in selectors.source_totals(workspace=workspace)
    }
    for source in rows:
        source.total_events = volume.get(source.pk, 0)  # type: ignore[attr-defined]
        source.active_keys = [k for k in _keys_newest_first(source) if k.revoked_at is None]  # type: ignore[attr-defined]
    return render(
        request,
        "profiles/sources/list.html",
        {
            "sources": rows,
            "kinds": SourceKind.choices,
            "can_manage": access.can(request.user, workspace, "sources.manage"),
        },
    )


@login_required
@require_POST
def source_create(request: HttpRequest) -> HttpResponse:
    workspace = _require(request, "sources.manage")
    if len(request.POST.get("name", "").strip()) > SOURCE_NAME_MAX:
        # the service does not check the column's length (a DataError, i.e. a 500, otherwise)
        messages.error(request, f"name: at most {SOURCE_NAME_MAX} characters")
        return redirect("ui-sources")
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


def _source_or_404(workspace: Workspace, source_id: int) -> Any:
    source = selectors.source_get(workspace=workspace, source_id=source_id)
    if source is None:
        raise Http404("No such source in this workspace.")
    return source


def _managed_source(request: HttpRequest, source_id: int) -> Any:
    """The source, if the user may manage it (by role or by a per-object grant)."""
    workspace = _workspace(request)
    source = _source_or_404(workspace, source_id)
    if not access.can(request.user, workspace, "sources.manage", source):
        raise PermissionDenied("You cannot manage this source.")
    return source


@login_required
def source_detail(request: HttpRequest, source_id: int) -> HttpResponse:
    workspace = _workspace(request)
    source = _source_or_404(workspace, source_id)
    if not access.can(request.user, workspace, "sources.view", source):
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
            "collector_url": _collector_url(request),
            "volume": selectors.source_volume(workspace=workspace, source_id=source.pk),
            "can_manage": access.can(request.user, workspace, "sources.manage", source),
            "can_replay": access.can(request.user, workspace, "failed_events.replay", source),
            "failure_reasons": FailureReason.choices,
            "default_rate_limit": settings.CDP_DEFAULT_RATE_LIMIT,
            "default_max_event_bytes": settings.CDP_MAX_EVENT_BYTES,
        },
    )


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
def source_toggle(request: HttpRequest, source_id: int) -> HttpResponse:
    source = _managed_source(request, source_id)
    services.source_update(source=source, actor=request.user, enabled=not source.enabled)
    messages.success(request, f"Source {'enabled' if source.enabled else 'disabled'}.")
    return redirect("ui-source", source_id=source.pk)


@login_required
def debugger(request: HttpRequest) -> HttpResponse:
    workspace = _require(request, "events.view")
    all_sources = list(selectors.source_list(workspace=workspace))
    if not all_sources:
        return redirect("ui-sources")
    wanted = request.GET.get("source")
    source = next((s for s in all_sources if str(s.pk) == wanted), None)
    if source is None:
        if wanted:
            # not silently another source: the link may be from another workspace
            raise Http404("No such source in this workspace.")
        source = all_sources[0]
    return render(
        request,
        "profiles/sources/debugger.html",
        {
            "source": source,
            "sources": all_sources,
            "can_replay": access.can(request.user, workspace, "failed_events.replay", source),
        },
    )


@login_required
def schema(request: HttpRequest) -> HttpResponse:
    workspace = _require(request, "schema.view")
    events = list(selectors.observed_events(workspace=workspace))
    properties = list(selectors.observed_properties(workspace=workspace))
    by_event: dict[tuple[str, str], list[Any]] = {}
    for prop in properties:
        # JSON, not Python's repr: true/null/{"a": 1} as the SDK sent them
        prop.example_json = orjson.dumps(prop.example).decode()  # type: ignore[attr-defined]
        by_event.setdefault((prop.type, prop.event), []).append(prop)
    for event in events:
        event.props = by_event.get((event.type, event.event), [])  # type: ignore[attr-defined]
    return render(request, "profiles/schema.html", {"events": events})


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    workspace = _workspace(request)
    if request.method == "POST":
        action = request.POST.get("action")
        name = request.POST.get("name", "token")
        token_id = request.POST.get("token_id", "")
        try:
            if action == "create_token" and len(name) > TOKEN_NAME_MAX:
                messages.error(request, f"name: at most {TOKEN_NAME_MAX} characters")
            elif action == "create_token":
                token = api_token_create(workspace=workspace, user=request.user, name=name)
                # shown once, in full, by base.html's "new-token" message
                messages.success(request, token.key, extra_tags="new-token")
            elif action == "revoke_token" and token_id.isdigit():
                api_token_revoke(workspace=workspace, user=request.user, token_id=int(token_id))
                messages.success(request, "Token revoked.")
        except ApplicationError as exc:
            messages.error(request, exc.message)
        return redirect("ui-settings")
    tokens = ApiToken.objects.filter(workspace=workspace, user_id=request.user.pk).order_by("-id")  # type: ignore[misc]
    return render(
        request,
        "cdp/settings.html",
        {
            "tokens": tokens,
            "role": access.role_of(request.user, workspace),
            "can_view_rules": access.can(request.user, workspace, "identity_rules.view"),
        },
    )
