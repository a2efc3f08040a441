"""Reads of the core: members and their API tokens, scoped by workspace."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Concat, Lower
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode

from cdp.models import ApiToken, Membership, MemberStatus, Workspace


def api_tokens_of(*, workspace: Workspace, user: Any) -> QuerySet[ApiToken]:
    """The user's personal API tokens in the workspace, newest first."""
    return ApiToken.objects.filter(workspace=workspace, user_id=user.pk).order_by("-id")


def memberships_of(*, workspace: Workspace) -> QuerySet[Membership]:
    return Membership.objects.filter(workspace=workspace).select_related("user").order_by("id")


def members_of(
    *, workspace: Workspace, q: str = "", role: str = "", status: str = ""
) -> QuerySet[Membership]:
    """The workspace's memberships (deactivated ones too) with their users, by username;
    `q` matches username, email or name (any part of them), `status` is a MemberStatus."""
    rows = Membership.objects.filter(workspace=workspace).select_related("user")
    q = q.strip()
    if q:
        rows = rows.annotate(
            _full_name=Concat("user__first_name", Value(" "), "user__last_name")
        ).filter(
            Q(user__username__icontains=q)
            | Q(user__email__icontains=q)
            | Q(_full_name__icontains=q)
        )
    if role:
        rows = rows.filter(role=role)
    if status == MemberStatus.DEACTIVATED:
        rows = rows.filter(deactivated_at__isnull=False)
    elif status == MemberStatus.INVITED:
        rows = rows.filter(deactivated_at__isnull=True, user__last_login__isnull=True)
    elif status == MemberStatus.ACTIVE:
        rows = rows.filter(deactivated_at__isnull=True, user__last_login__isnull=False)
    return rows.order_by(Lower("user__username"), "id")


def member_of(*, workspace: Workspace, membership_id: int) -> Membership | None:
    return (
        Membership.objects.filter(workspace=workspace, pk=membership_id)
        .select_related("user")
        .first()
    )


def member_user(*, workspace: Workspace, user_id: int) -> Any | None:
    """The user of that id if they belong to the workspace."""
    return get_user_model().objects.filter(pk=user_id, memberships__workspace=workspace).first()


def user_named(username: str) -> Any | None:
    return get_user_model().objects.filter(username=username).first()


def welcome_user(*, uidb64: str, token: str) -> Any | None:
    """The user a set-password link is for, while it is valid: not expired
    (PASSWORD_RESET_TIMEOUT), not spent (the token covers the password hash and the last
    sign-in, so setting a password or issuing a newer link ends it), and for someone who is
    still an active member somewhere. None otherwise."""
    try:
        uid = force_str(urlsafe_base64_decode(uidb64))
    except (TypeError, ValueError, OverflowError):
        return None
    if not (uid.isascii() and uid.isdigit() and len(uid) <= 18):
        return None
    user = get_user_model().objects.filter(pk=int(uid), is_active=True).first()
    if user is None or not default_token_generator.check_token(user, token):
        return None
    if not Membership.objects.active().filter(user=user).exists():
        return None
    return user
