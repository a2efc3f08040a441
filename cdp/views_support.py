"""Helpers for DRF views: the request's workspace and capability checks."""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from cdp import access
from cdp.auth import current_workspace
from cdp.errors import Forbidden
from cdp.models import Workspace


class WorkspaceMixin:
    request: Any

    @property
    def workspace(self) -> Workspace:
        workspace = current_workspace(self.request)
        if workspace is None:
            raise Forbidden("You are not a member of a workspace.")
        return workspace


class CapabilityMixin(WorkspaceMixin):
    def require(self, capability: str, obj: Model | None = None) -> None:
        if not access.can(self.request.user, self.workspace, capability, obj):
            raise Forbidden(f"Your role does not allow {capability!r} in this workspace.")
