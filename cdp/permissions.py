from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from cdp.auth import current_workspace


class IsWorkspaceMember(BasePermission):
    """Authenticated and a member of the request's workspace. What the member may do is
    checked by each view with `CapabilityMixin.require` (role or per-object grant)."""

    message = "You are not a member of a workspace."

    def has_permission(self, request: Any, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        return current_workspace(request) is not None
