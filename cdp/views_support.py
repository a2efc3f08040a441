"""Helpers for DRF views: the request's workspace, and query-param filters."""

from __future__ import annotations

from typing import Any

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
