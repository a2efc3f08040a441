"""Reads of the core: members and their API tokens, scoped by workspace."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from cdp.models import ApiToken, Membership, Workspace


def api_tokens_of(*, workspace: Workspace, user: Any) -> QuerySet[ApiToken]:
    """The user's personal API tokens in the workspace, newest first."""
    return ApiToken.objects.filter(workspace=workspace, user_id=user.pk).order_by("-id")


def memberships_of(*, workspace: Workspace) -> QuerySet[Membership]:
    return Membership.objects.filter(workspace=workspace).select_related("user").order_by("id")


def member_user(*, workspace: Workspace, user_id: int) -> Any | None:
    """The user of that id if they belong to the workspace."""
    return get_user_model().objects.filter(pk=user_id, memberships__workspace=workspace).first()


def user_named(username: str) -> Any | None:
    return get_user_model().objects.filter(username=username).first()
