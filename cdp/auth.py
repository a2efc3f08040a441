"""API authentication: `Authorization: Token <key>` (personal token, bound to one workspace) or a
session (workspace = the one picked in the UI, or the user's first)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from django.utils import timezone
from rest_framework import authentication, exceptions

from cdp import logs, security
from cdp.models import ApiToken, Membership, Workspace

SESSION_WORKSPACE_KEY = "cdp_workspace_id"


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request: Any) -> tuple[AbstractBaseUser, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: expected 'Token <key>'."
            )
        wait = security.token_failures_exceeded(request)
        if wait:
            raise exceptions.Throttled(
                wait, detail="Too many failed token authentications from this address."
            )
        key = header[1].decode(errors="replace")
        token = (
            ApiToken.matching(key)
            .select_related("user", "workspace")
            .filter(revoked_at__isnull=True)
            .first()
        )
        if token is None or not token.user.is_active:
            security.token_failure_count(request)
            raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
        membership = Membership.objects.filter(user=token.user, workspace=token.workspace).first()
        if membership is None:
            raise exceptions.AuthenticationFailed("The token's user left its workspace.")
        if not membership.is_active:
            raise exceptions.AuthenticationFailed(
                "The token's user was deactivated in its workspace."
            )
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Any) -> str:
        return self.keyword


def current_workspace(request: HttpRequest | Any) -> Workspace | None:
    """The workspace a request acts in; None when the user belongs to none. Once known, it is
    in the logs' context (cdp/logs.py) for the rest of the request."""
    cached = getattr(request, "_cdp_workspace", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    auth = getattr(request, "auth", None)
    workspace: Workspace | None
    if isinstance(auth, ApiToken):
        workspace = auth.workspace
    else:
        user = request.user
        if not getattr(user, "is_authenticated", False):
            return None
        memberships = (
            Membership.objects.active().filter(user_id=user.pk).select_related("workspace")  # type: ignore[misc]
        )
        wanted = request.session.get(SESSION_WORKSPACE_KEY)
        chosen = memberships.filter(workspace_id=wanted).first() if wanted else None
        chosen = chosen or memberships.order_by("workspace__name").first()
        workspace = chosen.workspace if chosen else None
    request._cdp_workspace = workspace  # type: ignore[union-attr]
    if workspace is not None:
        # the request's later log records carry it (the request middleware resets the context)
        logs.bind(workspace_id=workspace.pk)
    return workspace
