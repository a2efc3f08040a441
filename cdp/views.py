"""The pages the core owns: home, workspace switching, personal settings (API tokens) and
the System page.
Every other page belongs to its app (`<app>/views.py`, `<app>/urls.py`)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from cdp import access, navigation, overview, pages, selectors, system
from cdp.auth import SESSION_WORKSPACE_KEY, current_workspace
from cdp.errors import ApplicationError
from cdp.params import is_id
from cdp.services import (
    CURRENCIES,
    api_token_create,
    api_token_revoke,
    workspace_currency_set,
)


def _landing(request: HttpRequest) -> HttpResponse:
    """The overview (settings for someone in no workspace, who sees a page saying so)."""
    if current_workspace(request) is not None:
        return redirect("ui-home")
    return redirect("ui-settings")


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The overview: where everyone lands (the cards and charts their role may see)."""
    workspace = current_workspace(request)
    if workspace is None:
        return redirect("ui-settings")
    widgets = []
    cards = []
    oldest = None
    waiting = []
    for widget in overview.visible(request.user, workspace):
        value, at = overview.value_of(widget, workspace)
        if value.get(overview.PENDING):
            waiting.append(widget.key)
        else:
            oldest = at if oldest is None or at < oldest else oldest
        if widget.kind == "cards":
            if value.get(overview.PENDING):
                cards.append({"label": widget.title, "pending": True})
            cards.extend(value.get("cards", []))
            continue
        widgets.append(
            {
                "widget": widget,
                "value": value,
                "table": overview.table_of(widget, value),
                "href": reverse(widget.href) if widget.href else "",
            }
        )
    overview.mark_viewed(workspace.pk)
    return render(
        request,
        "cdp/overview.html",
        {"cards": cards, "widgets": widgets, "as_of": oldest, "waiting": ",".join(waiting)},
    )


@login_required
def overview_pending(request: HttpRequest) -> JsonResponse:
    """Which of the overview's widgets (`?keys=a,b`) are still being computed."""
    workspace = pages.workspace_of(request)
    keys = [k for k in request.GET.get("keys", "").split(",") if k][:50]
    return JsonResponse({"pending": overview.pending(workspace.pk, keys)})


@login_required
@require_POST
def switch_workspace(request: HttpRequest) -> HttpResponse:
    wanted = request.POST.get("workspace")
    if wanted and is_id(wanted) and access.workspaces_of(request.user).filter(pk=wanted).exists():
        request.session[SESSION_WORKSPACE_KEY] = int(wanted)
    return _landing(request)


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    workspace = pages.workspace_of(request)
    if request.method == "POST":
        action = request.POST.get("action")
        token_id = request.POST.get("token_id", "")
        try:
            if action == "create_token":
                token = api_token_create(
                    workspace=workspace, user=request.user, name=request.POST.get("name", "")
                )
                # shown once, in full, by base.html's "new-token" message
                messages.success(request, token.secret or "", extra_tags="new-token")
            elif action == "currency":
                workspace_currency_set(
                    workspace=workspace,
                    actor=request.user,
                    currency=request.POST.get("currency", ""),
                )
                messages.success(request, "Amounts are now shown in this currency.")
            elif action == "revoke_token" and is_id(token_id):
                api_token_revoke(workspace=workspace, user=request.user, token_id=int(token_id))
                messages.success(request, "Token revoked.")
        except ApplicationError as exc:
            messages.error(request, exc.message)
        return redirect("ui-settings")
    return render(
        request,
        "cdp/settings.html",
        {
            "tokens": selectors.api_tokens_of(workspace=workspace, user=request.user),
            "role": access.role_of(request.user, workspace),
            "settings_links": navigation.visible_settings(request.user, workspace),
            "currencies": CURRENCIES,
            "currency": (workspace.settings or {}).get("currency", "USD"),
            "can_manage_workspace": access.can(request.user, workspace, "workspace.manage"),
        },
    )


@login_required
def system_page(request: HttpRequest) -> HttpResponse:
    """Is it healthy, is it keeping up, what broke: the core's components and the sections
    the apps contribute (cdp/system.py)."""
    workspace = pages.require(request, "system.view")
    return render(
        request,
        "cdp/system.html",
        {
            "components": system.components(),
            "database_mb": system.database_megabytes(),
            "dead_letters": system.dead_letters(workspace),
            "sections": system.page_sections(request.user, workspace),
            "checked_at": timezone.now(),
        },
    )
