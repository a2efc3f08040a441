"""Workspaces, members, API tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from cdp.errors import Forbidden, NotFound, ValidationFailed
from cdp.models import ApiToken, Membership, Role, Workspace, audit

User = get_user_model()


@transaction.atomic
def workspace_create(*, name: str, owner: Any | None = None) -> Workspace:
    name = name.strip()
    if not name:
        raise ValidationFailed("name: must not be empty", code="invalid")
    if Workspace.objects.filter(name=name).exists():
        raise ValidationFailed(f"name: a workspace named {name!r} exists", code="duplicate")
    workspace = Workspace.objects.create(name=name)
    if owner is not None:
        Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
    audit(workspace=workspace, actor=owner, action="workspace.create", target=workspace)
    from consent.services import purposes_install_defaults

    purposes_install_defaults(workspace=workspace)
    return workspace


@transaction.atomic
def membership_set(
    *, workspace: Workspace, user: Any, role: str, actor: Any | None = None
) -> Membership:
    if role not in Role.values:
        raise ValidationFailed(
            f"role: {role!r} is not one of {', '.join(Role.values)}", code="invalid_role"
        )
    membership, _ = Membership.objects.update_or_create(
        workspace=workspace, user=user, defaults={"role": role}
    )
    audit(
        workspace=workspace,
        actor=actor,
        action="membership.set",
        target=membership,
        detail={"user": user.get_username(), "role": role},
    )
    return membership


@transaction.atomic
def api_token_create(*, workspace: Workspace, user: Any, name: str) -> ApiToken:
    if not Membership.objects.filter(workspace=workspace, user=user).exists():
        raise Forbidden("A token can only be made for a member of the workspace.")
    name = name.strip() or "token"
    if len(name) > 100:
        raise ValidationFailed("name: at most 100 characters")
    token = ApiToken.objects.create(workspace=workspace, user=user, name=name)
    audit(workspace=workspace, actor=user, action="api_token.create", target=token)
    return token


@transaction.atomic
def api_token_revoke(*, workspace: Workspace, user: Any, token_id: int) -> ApiToken:
    token = ApiToken.objects.filter(workspace=workspace, user=user, pk=token_id).first()
    if token is None:
        raise NotFound("No such token.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit(workspace=workspace, actor=user, action="api_token.revoke", target=token)
    return token


@dataclass
class BootstrapResult:
    workspace: Workspace
    username: str
    password: str | None
    write_key: str
    api_token: str
    server_key: str

    def as_dict(self) -> dict[str, Any]:
        admin: dict[str, Any] = {"username": self.username}
        if self.password is not None:
            admin["password"] = self.password
        return {
            "workspace": {"id": self.workspace.pk, "name": self.workspace.name},
            "admin": admin,
            "write_key": self.write_key,
            "api_token": self.api_token,
            "server_key": self.server_key,
        }


@transaction.atomic
def workspace_bootstrap(
    *, name: str, email: str | None = None, password: str | None = None
) -> BootstrapResult:
    """Idempotent: a workspace with an owner, a source with a write key, an API token and a
    server key. Running it again returns the same keys and creates nothing new."""
    from activation.services import server_key_create
    from profiles.models import Source
    from profiles.services import source_create

    workspace = Workspace.objects.filter(name=name).first()
    if workspace is None:
        workspace = workspace_create(name=name)
    username = email or "admin"
    user = User.objects.filter(username=username).first()
    new_password: str | None = None
    if user is None:
        new_password = password or secrets.token_urlsafe(12)
        user = User.objects.create_user(username=username, email=email or "", password=new_password)
    if not Membership.objects.filter(workspace=workspace, user=user).exists():
        Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER)

    source = Source.objects.filter(workspace=workspace).order_by("id").first()
    if source is None:
        source = source_create(workspace=workspace, name="Default source", kind="http", actor=user)
    key = source.write_keys.filter(revoked_at__isnull=True).order_by("id").first()
    if key is None:
        from profiles.services import write_key_rotate

        key = write_key_rotate(source=source, actor=user, revoke_old=False)

    token = (
        ApiToken.objects.filter(workspace=workspace, user=user, revoked_at__isnull=True)
        .order_by("id")
        .first()
    ) or api_token_create(workspace=workspace, user=user, name="bootstrap")

    server_key = workspace.server_keys.filter(revoked_at__isnull=True).order_by("id").first()
    if server_key is None:
        server_key = server_key_create(workspace=workspace, name="default", actor=user)
    return BootstrapResult(
        workspace=workspace,
        username=username,
        password=new_password,
        write_key=key.key,
        api_token=token.key,
        server_key=server_key.key,
    )
