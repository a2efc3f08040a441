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

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.tokens import default_token_generator
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from cdp import access
from cdp.errors import (
    ApplicationError,
    Conflict,
    ErrorDoc,
    Forbidden,
    NotFound,
    ValidationFailed,
    document_errors,
    duplicate,
)
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


# ---- members: the Team page and /api/v1/members/ ---------------------------------------------
#
# Who may change whom, stated once here for the page and the API alike:
# - only those whose role holds `members.manage` (owners, admins) change members;
# - only an owner grants the owner role or changes an owner (role, deactivation, new link);
# - the workspace keeps at least one active owner;
# - nobody changes their own role or deactivates themselves.
# A set-password link is only ever issued for a user made here who never signed in and
# belongs to no other workspace: one workspace's admin never sets another's user's password.

MANAGERS = access.CAPABILITIES["members.manage"]
NAME_MAX = 150  # Django's first_name / last_name

document_errors(
    ErrorDoc("self_change", 403, "you cannot change your own role or deactivate yourself"),
    ErrorDoc(
        "last_owner", 409, "the workspace's last active owner cannot be demoted or deactivated"
    ),
    ErrorDoc(
        "link_not_allowed",
        409,
        "a set-password link is only for a member made here who never signed in and belongs "
        "to no other workspace",
    ),
)


@dataclass(frozen=True)
class MemberAdded:
    membership: Membership
    new_user: bool  # False: an existing account (of another workspace) was added
    link: str | None  # the set-password path (`/welcome/<uid>/<token>/`), for a new user only


def member_role(*, workspace: Workspace, user: Any) -> str | None:
    """The user's role in the workspace, read now (not the per-request memo of
    `access.role_of`: a guard must see the state its transaction locked)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return (
        Membership.objects.active()
        .filter(workspace=workspace, user_id=user.pk)
        .values_list("role", flat=True)
        .first()
    )


def member_refusal(
    *, actor: Any, actor_role: str | None, membership: Membership
) -> ApplicationError | None:
    """Why `actor` may not change `membership` at all (its role, activation, link); None when
    they may (the last-owner rule still applies to demotions and deactivations)."""
    if actor_role not in MANAGERS:
        return Forbidden("Your role does not allow managing members in this workspace.")
    if membership.role == Role.OWNER and actor_role != Role.OWNER:
        return Forbidden(
            f"Only an owner can change an owner ({membership.user.get_username()}).",
            code="owner_required",
        )
    if membership.user_id == actor.pk:
        return Forbidden(
            "You cannot change your own membership: ask another owner or admin.",
            code="self_change",
        )
    return None


def _locked_member(*, workspace: Workspace, membership_id: int) -> Membership:
    """The membership, after locking the workspace's active owners (so that two owners
    demoting each other at once cannot leave the workspace without one)."""
    list(
        Membership.objects.active()
        .select_for_update()
        .filter(workspace=workspace, role=Role.OWNER)
        .values_list("pk", flat=True)
    )
    membership = (
        Membership.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(workspace=workspace, pk=membership_id)
        .first()
    )
    if membership is None:
        raise NotFound("No such member in this workspace.")
    return membership


def _guard(*, workspace: Workspace, actor: Any, membership: Membership, demoting: bool) -> None:
    """Refuse what `member_refusal` refuses, and (when the change takes the owner role away
    or deactivates) leaving the workspace without an active owner — checked before the
    self rule, so the last owner hears why."""
    refusal = member_refusal(
        actor=actor, actor_role=member_role(workspace=workspace, user=actor), membership=membership
    )
    if refusal is not None and refusal.code != "self_change":
        raise refusal
    if demoting and membership.role == Role.OWNER and membership.is_active:
        others = (
            Membership.objects.active()
            .filter(workspace=workspace, role=Role.OWNER)
            .exclude(pk=membership.pk)
        )
        if not others.exists():
            raise Conflict(
                f"{membership.user.get_username()} is the last owner of the workspace: make "
                "another member an owner first.",
                code="last_owner",
            )
    if refusal is not None:
        raise refusal


def _role_value(role: str) -> str:
    if role not in Role.values:
        raise ValidationFailed.at("role", f"expected one of {', '.join(Role.values)}, got {role!r}")
    return role


def _welcome_path(user: Any) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("ui-welcome", args=[uid, default_token_generator.make_token(user)])


@transaction.atomic
def member_add(
    *,
    workspace: Workspace,
    actor: Any,
    username: str,
    role: str,
    email: str = "",
    name: str = "",
) -> MemberAdded:
    """Add a member. A new username makes a user without a usable password and returns the
    path of a one-time set-password link (valid PASSWORD_RESET_TIMEOUT); an existing account
    not in this workspace is added with the role as it is (no link, nothing of it changed)."""
    username, email, name = username.strip(), email.strip(), " ".join(name.split())
    errors: dict[str, str] = {}
    if not username:
        errors["username"] = "must not be empty"
    elif len(username) > 150:
        errors["username"] = "at most 150 characters"
    else:
        try:
            UnicodeUsernameValidator()(username)
        except DjangoValidationError:
            errors["username"] = "letters, digits and @ . + - _ only"
    if role not in Role.values:
        errors["role"] = f"expected one of {', '.join(Role.values)}, got {role!r}"
    if errors:
        raise ValidationFailed(errors)
    actor_role = member_role(workspace=workspace, user=actor)
    if actor_role not in MANAGERS:
        raise Forbidden("Your role does not allow managing members in this workspace.")
    if role == Role.OWNER and actor_role != Role.OWNER:
        raise Forbidden("Only an owner can make someone an owner.", code="owner_required")

    user = User.objects.filter(username__iexact=username).first()
    if user is not None:
        existing = Membership.objects.filter(workspace=workspace, user=user).first()
        if existing is not None:
            hint = " (deactivated: reactivate them instead)" if not existing.is_active else ""
            raise duplicate("username", f"{user.get_username()} is a member already{hint}")
        membership = _membership_create(workspace=workspace, user=user, role=role)
        audit(
            workspace=workspace,
            actor=actor,
            action="member.add",
            target=membership,
            detail={"user": user.get_username(), "role": role, "new_user": False},
        )
        return MemberAdded(membership=membership, new_user=False, link=None)

    first_name, _, last_name = name.partition(" ")
    if not email:
        errors["email"] = "required for a new user"
    else:
        try:
            validate_email(email)
        except DjangoValidationError:
            errors["email"] = "not a valid email address"
    if len(first_name) > NAME_MAX or len(last_name) > NAME_MAX:
        errors["name"] = f"at most {NAME_MAX} characters per part"
    if errors:
        raise ValidationFailed(errors)
    try:
        with transaction.atomic():
            user = User.objects.create_user(  # no password: an unusable one
                username=username, email=email, first_name=first_name, last_name=last_name
            )
    except IntegrityError:  # made by a concurrent request
        raise duplicate("username", f"{username} exists already") from None
    membership = _membership_create(workspace=workspace, user=user, role=role)
    audit(
        workspace=workspace,
        actor=actor,
        action="member.add",
        target=membership,
        detail={"user": username, "role": role, "new_user": True},
    )
    return MemberAdded(membership=membership, new_user=True, link=_welcome_path(user))


def _membership_create(*, workspace: Workspace, user: Any, role: str) -> Membership:
    try:
        with transaction.atomic():
            return Membership.objects.create(workspace=workspace, user=user, role=role)
    except IntegrityError:  # added by a concurrent request
        raise duplicate("username", f"{user.get_username()} is a member already") from None


@transaction.atomic
def member_role_set(
    *, workspace: Workspace, actor: Any, membership_id: int, role: str
) -> Membership:
    role = _role_value(role)
    membership = _locked_member(workspace=workspace, membership_id=membership_id)
    if role == membership.role:
        return membership
    _guard(workspace=workspace, actor=actor, membership=membership, demoting=True)
    if role == Role.OWNER and member_role(workspace=workspace, user=actor) != Role.OWNER:
        raise Forbidden("Only an owner can make someone an owner.", code="owner_required")
    previous, membership.role = membership.role, role
    membership.save(update_fields=["role"])
    audit(
        workspace=workspace,
        actor=actor,
        action="member.role_change",
        target=membership,
        detail={"user": membership.user.get_username(), "from": previous, "to": role},
    )
    return membership


@transaction.atomic
def member_active_set(
    *, workspace: Workspace, actor: Any, membership_id: int, active: bool
) -> Membership:
    """Deactivate (the member can no longer act in the workspace: pages, API, tokens) or
    reactivate a membership. Its role and the user's tokens are kept for a reactivation."""
    membership = _locked_member(workspace=workspace, membership_id=membership_id)
    if membership.is_active == active:
        return membership
    _guard(workspace=workspace, actor=actor, membership=membership, demoting=not active)
    membership.deactivated_at = None if active else timezone.now()
    membership.save(update_fields=["deactivated_at"])
    audit(
        workspace=workspace,
        actor=actor,
        action="member.reactivate" if active else "member.deactivate",
        target=membership,
        detail={"user": membership.user.get_username(), "role": membership.role},
    )
    return membership


def member_link_refusal(*, workspace: Workspace, membership: Membership) -> Conflict | None:
    """Why no set-password link may be issued for this member (None: it may)."""
    user = membership.user
    name = user.get_username()
    if not membership.is_active:
        return Conflict(f"{name} is deactivated: reactivate them first.", code="link_not_allowed")
    if user.last_login is not None or user.has_usable_password():
        return Conflict(
            f"{name} has a password already: they sign in with it (or reset it themselves).",
            code="link_not_allowed",
        )
    if user.is_staff or user.is_superuser:
        return Conflict(f"{name} is a site administrator.", code="link_not_allowed")
    if Membership.objects.filter(user=user).exclude(workspace=workspace).exists():
        return Conflict(
            f"{name} belongs to another workspace too: their password is not set from here.",
            code="link_not_allowed",
        )
    return None


@transaction.atomic
def member_link_issue(*, workspace: Workspace, actor: Any, membership_id: int) -> str:
    """A new set-password link for a member who never signed in; earlier links stop working."""
    membership = _locked_member(workspace=workspace, membership_id=membership_id)
    _guard(workspace=workspace, actor=actor, membership=membership, demoting=False)
    refusal = member_link_refusal(workspace=workspace, membership=membership)
    if refusal is not None:
        raise refusal
    user = membership.user
    user.set_unusable_password()  # a new random hash: the old links' tokens no longer match
    user.save(update_fields=["password"])
    audit(
        workspace=workspace,
        actor=actor,
        action="member.link_issue",
        target=membership,
        detail={"user": user.get_username()},
    )
    return _welcome_path(user)


@transaction.atomic
def member_password_set(*, user: Any, password: str) -> None:
    """The first password of a member who followed their set-password link (the link is
    then spent: its token covers the password hash)."""
    try:
        password_validation.validate_password(password, user)
    except DjangoValidationError as exc:
        raise ValidationFailed({"password": exc.messages}) from None
    user.set_password(password)
    user.save(update_fields=["password"])
    for membership in Membership.objects.active().filter(user=user).select_related("workspace"):
        audit(
            workspace=membership.workspace,
            actor=user,
            action="member.password_set",
            target=membership,
            detail={"user": user.get_username()},
        )


@transaction.atomic
def api_token_create(*, workspace: Workspace, user: Any, name: str) -> ApiToken:
    if not Membership.objects.active().filter(workspace=workspace, user=user).exists():
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


CURRENCIES = (
    "USD",
    "EUR",
    "GBP",
    "CHF",
    "CAD",
    "AUD",
    "JPY",
    "SEK",
    "NOK",
    "DKK",
    "PLN",
    "CZK",
    "INR",
    "CNY",
    "BRL",
    "MXN",
    "ZAR",
    "NZD",
    "SGD",
    "HKD",
)


@transaction.atomic
def workspace_currency_set(*, workspace: Workspace, actor: Any, currency: str) -> Workspace:
    """The currency every page writes amounts in (Workspace.settings["currency"])."""
    if not access.can(actor, workspace, "workspace.manage"):
        raise Forbidden("Only an owner can change the workspace's currency.")
    code = str(currency).strip().upper()
    if code not in CURRENCIES:
        raise ValidationFailed.at("currency", f"expected one of {', '.join(CURRENCIES)}")
    locked = Workspace.objects.select_for_update().get(pk=workspace.pk)
    before = (locked.settings or {}).get("currency", "USD")
    if before != code:
        locked.settings = {**(locked.settings or {}), "currency": code}
        locked.save(update_fields=["settings"])
        audit(
            workspace=locked,
            actor=actor,
            action="workspace.currency",
            target=locked,
            detail={"from": before, "to": code},
        )
    workspace.settings = locked.settings
    return workspace


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
