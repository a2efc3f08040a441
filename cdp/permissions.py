from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from cdp import access
from cdp.auth import current_workspace


class IsWorkspaceMember(BasePermission):
    """Authenticated and a member of the request's workspace; views name a `capability`
    (or `capabilities` per action) that the user's role or an object grant must hold."""

    message = "You are not a member of a workspace."

    def has_permission(self, request: Any, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        workspace = current_workspace(request)
        if workspace is None:
            return False
        capability = required_capability(request, view)
        if capability is None:
            return True
        if access.can(request.user, workspace, capability):
            return True
        # object-level grants are checked in has_object_permission for detail routes
        return bool(getattr(view, "allow_object_grants", False)) and _is_detail(view)

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        workspace = current_workspace(request)
        if workspace is None or getattr(obj, "workspace_id", workspace.pk) != workspace.pk:
            return False
        capability = required_capability(request, view)
        if capability is None:
            return True
        return access.can(request.user, workspace, capability, obj)


def required_capability(request: Any, view: Any) -> str | None:
    per_action: dict[str, str] = getattr(view, "capabilities", {})
    action = getattr(view, "action", None)
    if action and action in per_action:
        return per_action[action]
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return getattr(view, "read_capability", None)
    return getattr(view, "write_capability", None)


def _is_detail(view: Any) -> bool:
    lookup = getattr(view, "lookup_url_kwarg", None) or getattr(view, "lookup_field", "pk")
    return lookup in getattr(view, "kwargs", {})
