"""Who may do what: a role per workspace grants capabilities; django-guardian adds per-object
grants on top (e.g. one marketer may manage one source without being an admin)."""

from __future__ import annotations

from typing import Any

from django.db import models

from cdp.models import Membership, Role, Workspace

VIEW = "view"
# capability -> roles that hold it workspace-wide
CAPABILITIES: dict[str, set[str]] = {
    "workspace.manage": {Role.OWNER},
    "members.manage": {Role.OWNER, Role.ADMIN},
    # the System page: health, backlog, dead letters, sizes (README "Health checks")
    "system.view": {Role.OWNER, Role.ADMIN},
    "sources.view": {Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST, Role.PRIVACY_OFFICER},
    "sources.manage": {Role.OWNER, Role.ADMIN},
    "events.view": {Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST, Role.PRIVACY_OFFICER},
    "failed_events.replay": {Role.OWNER, Role.ADMIN},
    "schema.view": {Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST},
    "server_keys.manage": {Role.OWNER, Role.ADMIN},
    "tokens.own": {Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST, Role.PRIVACY_OFFICER},
    "privacy.manage": {Role.OWNER, Role.ADMIN, Role.PRIVACY_OFFICER},
    # personal data in exports (emails, phones, the workspace's PII traits)
    "pii.view": {Role.OWNER, Role.ADMIN, Role.PRIVACY_OFFICER},
    "computed_traits.view": {Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST},
    # marketers create computed traits and manage those they made (OWNED_BY)
    "computed_traits.create": {Role.OWNER, Role.ADMIN, Role.MARKETER},
    "computed_traits.manage": {Role.OWNER, Role.ADMIN},
    "profiles.view": {Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST, Role.PRIVACY_OFFICER},
    "profiles.split": {Role.OWNER, Role.ADMIN},
    "identity_rules.view": {Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST},
    "identity_rules.manage": {Role.OWNER, Role.ADMIN},
    "segments.view": {Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST},
    "consent.view": {Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST, Role.PRIVACY_OFFICER},
    "consent.manage": {Role.OWNER, Role.ADMIN, Role.PRIVACY_OFFICER},
    # marketers create segments and manage those they own or are granted (change_segment)
    "segments.create": {Role.OWNER, Role.ADMIN, Role.MARKETER},
    # activation: destinations hold credentials, so only admins create them or see their
    # settings; marketers see them by name and manage the syncs of segments they may read
    "destinations.view": {Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST},
    "destinations.manage": {Role.OWNER, Role.ADMIN},
    "experiments.view": {Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST},
    "experiments.manage": {Role.OWNER, Role.ADMIN, Role.MARKETER},
    # the decision API's placements and offers (and its preview)
    "decisions.view": {Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST},
    "decisions.manage": {Role.OWNER, Role.ADMIN, Role.MARKETER},
    "syncs.manage": {Role.OWNER, Role.ADMIN, Role.MARKETER},
    "streams.manage": {Role.OWNER, Role.ADMIN},
    "deliveries.view": {Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST},
    "deliveries.retry": {Role.OWNER, Role.ADMIN, Role.MARKETER},
    "segments.manage": {Role.OWNER, Role.ADMIN},
    # ML models: seen by whoever sees segments; defined, trained and promoted by those who
    # create segments (their scores are segment conditions)
    "models.view": {Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST},
    "models.manage": {Role.OWNER, Role.ADMIN, Role.MARKETER},
}

# capability -> guardian permission codename that grants it on one object
OBJECT_GRANTS: dict[str, str] = {
    "sources.view": "view_source",
    "sources.manage": "change_source",
    "failed_events.replay": "change_source",
    "segments.manage": "change_segment",
}
# a per-object grant counts only for roles that hold this capability (a marketer granted a
# segment who is later made an analyst is read-only again)
GRANT_NEEDS: dict[str, str] = {
    "segments.manage": "segments.create",
    "computed_traits.manage": "computed_traits.create",
}
# capability -> the object's field naming its creator, who holds the capability on it (when
# their role still holds the GRANT_NEEDS one)
OWNED_BY: dict[str, str] = {"computed_traits.manage": "created_by_id"}


def role_of(user: Any, workspace: Workspace) -> str | None:
    """The user's role in the workspace (None when not a member or deactivated there),
    looked up once per request (memoised on the user object, which lives as long as the
    request)."""
    if not getattr(user, "is_authenticated", False):
        return None
    cache: dict[int, str | None] = user.__dict__.setdefault("_cdp_roles", {})
    if workspace.pk not in cache:
        cache[workspace.pk] = (
            Membership.objects.active()
            .filter(user=user, workspace=workspace)
            .values_list("role", flat=True)
            .first()
        )
    return cache[workspace.pk]


def can(user: Any, workspace: Workspace, capability: str, obj: models.Model | None = None) -> bool:
    if capability not in CAPABILITIES:
        raise KeyError(f"unknown capability {capability!r}")
    role = role_of(user, workspace)
    if role is None:
        return False
    if role in CAPABILITIES[capability]:
        return True
    if obj is not None and capability in OWNED_BY:
        needs = GRANT_NEEDS.get(capability)
        if (
            getattr(obj, "workspace_id", None) == workspace.pk
            and getattr(obj, OWNED_BY[capability], None) == user.pk
            and (needs is None or role in CAPABILITIES[needs])
        ):
            return True
    if obj is not None and capability in OBJECT_GRANTS:
        if getattr(obj, "workspace_id", None) != workspace.pk:
            return False
        needs = GRANT_NEEDS.get(capability)
        if needs is not None and role not in CAPABILITIES[needs]:
            return False
        perm = f"{obj._meta.app_label}.{OBJECT_GRANTS[capability]}"
        return bool(user.has_perm(perm, obj))
    return False


def workspaces_of(user: Any) -> models.QuerySet[Workspace]:
    """The workspaces the user may act in (deactivated memberships left out)."""
    return Workspace.objects.filter(
        memberships__user=user, memberships__deactivated_at__isnull=True
    ).order_by("name")
