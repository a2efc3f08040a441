"""Workspaces, members, API tokens, and the bootstrap of a new installation.

Apps take part in a workspace's life through two registries filled in their
`AppConfig.ready()`: what a new workspace gets (`on_workspace_created`: consent installs the
default purposes) and what the bootstrap provisions besides the owner and an API token
(`register_provisioner`: profiles a source and its write key, activation a server key)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from cdp.errors import Forbidden, NotFound, ValidationFailed, duplicate
from cdp.models import ApiToken, Membership, Role, Workspace, audit

User = get_user_model()

WorkspaceHook = Callable[[Workspace], object]  # its result is ignored
# (workspace, owner) -> the keys it provisioned, e.g. {"write_key": "..."}; idempotent
Provisioner = Callable[[Workspace, Any], dict[str, str]]
_WORKSPACE_HOOKS: list[WorkspaceHook] = []
_PROVISIONERS: dict[str, Provisioner] = {}


def on_workspace_created(hook: WorkspaceHook) -> None:
    """Run `hook(workspace)` inside the transaction that creates a workspace."""
    if hook not in _WORKSPACE_HOOKS:
        _WORKSPACE_HOOKS.append(hook)


def register_provisioner(name: str, provisioner: Provisioner) -> None:
    """Add a step to `workspace_bootstrap` (run in registration order, i.e. the order of
    INSTALLED_APPS); run again it makes nothing new (and returns only what it can show)."""
    _PROVISIONERS[name] = provisioner


@transaction.atomic
def workspace_create(*, name: str, owner: Any | None = None) -> Workspace:
    name = name.strip()
    if not name:
        raise ValidationFailed.at("name", "must not be empty")
    if Workspace.objects.filter(name=name).exists():
        raise duplicate("name", f"a workspace named {name!r} exists")
    workspace = Workspace.objects.create(name=name)
    if owner is not None:
        Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
    audit(workspace=workspace, actor=owner, action="workspace.create", target=workspace)
    for hook in _WORKSPACE_HOOKS:
        hook(workspace)
    return workspace


@transaction.atomic
def membership_set(
    *, workspace: Workspace, user: Any, role: str, actor: Any | None = None
) -> Membership:
    if role not in Role.values:
        raise ValidationFailed.at("role", f"{role!r} is not one of {', '.join(Role.values)}")
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
        raise ValidationFailed.at("name", "at most 100 characters")
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
    """What a bootstrap made. Secrets kept as digests (the password, the API token, the
    server key) are known only to the run that created them: None on later runs."""

    workspace: Workspace
    username: str
    password: str | None
    api_token: str | None
    keys: dict[str, str] = field(default_factory=dict)  # from the provisioners

    @property
    def write_key(self) -> str:
        return self.keys.get("write_key", "")

    def as_dict(self) -> dict[str, Any]:
        admin: dict[str, Any] = {"username": self.username}
        if self.password is not None:
            admin["password"] = self.password
        out: dict[str, Any] = {
            "workspace": {"id": self.workspace.pk, "name": self.workspace.name},
            "admin": admin,
        }
        if self.api_token is not None:
            out["api_token"] = self.api_token
        return {**out, **self.keys}


@transaction.atomic
def workspace_bootstrap(
    *, name: str, email: str | None = None, password: str | None = None
) -> BootstrapResult:
    """Idempotent: a workspace with an owner and an API token, plus what the apps provision
    (a source with a write key, a server key). Running it again creates nothing new and
    returns the write key again; the password, API token and server key only when made."""
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
    api_token: str | None = None
    if not ApiToken.objects.filter(workspace=workspace, user=user, revoked_at__isnull=True):
        api_token = api_token_create(workspace=workspace, user=user, name="bootstrap").secret
    keys: dict[str, str] = {}
    for provisioner in _PROVISIONERS.values():
        keys.update(provisioner(workspace, user))
    return BootstrapResult(
        workspace=workspace,
        username=username,
        password=new_password,
        api_token=api_token,
        keys=keys,
    )
