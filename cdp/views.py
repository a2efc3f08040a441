"""The pages the core owns: home, workspace switching and personal settings (API tokens).
Every other page belongs to its app (`<app>/views.py`, `<app>/urls.py`)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from cdp import access, navigation, pages, selectors
from cdp.auth import SESSION_WORKSPACE_KEY, current_workspace
from cdp.errors import ApplicationError
from cdp.params import is_id
from cdp.services import api_token_create, api_token_revoke


def _landing(request: HttpRequest) -> HttpResponse:
    """The first page of the sidebar the user may open (settings for someone in no
    workspace, who sees a page saying so)."""
    workspace = current_workspace(request)
    if workspace is not None:
        for entry in navigation.visible_entries(request.user, workspace):
            return redirect(entry.url_name)
    return redirect("ui-settings")


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return _landing(request)


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
        },
    )
