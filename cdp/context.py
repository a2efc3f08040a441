"""Template context of every page: the workspace, the user's role and the sidebar."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from cdp import access, navigation
from cdp.auth import current_workspace


def workspace(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or request.path.startswith(("/v1/", "/api/")):
        return {}
    ws = current_workspace(request)
    if ws is None:
        return {"workspaces": []}
    return {
        "current_workspace": ws,
        "current_role": access.role_of(user, ws),
        "workspaces": list(access.workspaces_of(user)),
        "navigation": navigation.visible_entries(user, ws),
    }
