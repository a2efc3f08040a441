from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from cdp import access
from cdp.auth import current_workspace

# (label, url name, capability). Later issues add Destinations.
NAVIGATION = [
    ("Sources", "ui-sources", "sources.view"),
    ("Profiles", "ui-profiles", "profiles.view"),
    ("Segments", "ui-segments", "segments.view"),
    ("Event debugger", "ui-debugger", "events.view"),
    ("Schema", "ui-schema", "schema.view"),
    ("Privacy", "ui-privacy", "privacy.manage"),
    ("Settings", "ui-settings", None),
]


def workspace(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or request.path.startswith(("/v1/", "/api/")):
        return {}
    ws = current_workspace(request)
    if ws is None:
        return {"workspaces": []}
    nav = [
        {"label": label, "url_name": url_name}
        for label, url_name, capability in NAVIGATION
        if capability is None or access.can(user, ws, capability)
    ]
    return {
        "current_workspace": ws,
        "current_role": access.role_of(user, ws),
        "workspaces": list(access.workspaces_of(user)),
        "navigation": nav,
    }
