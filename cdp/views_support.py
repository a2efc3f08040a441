"""Helpers for DRF views: the request's workspace and capability checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Model

from cdp import access
from cdp.auth import current_workspace
from cdp.errors import NON_FIELD, Forbidden, ValidationFailed
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


def settings_body(
    request: Any, fields: Sequence[str], *, what: str, reject_unknown: bool = True
) -> dict[str, Any]:
    """The body of a settings request: a JSON object with some of `fields` (PATCH) or every
    one of them (PUT replaces the settings as a whole), and nothing else (unless the caller
    reports unknown names itself, with its other errors)."""
    names = ", ".join(fields)
    data = request.data
    if not isinstance(data, dict):
        raise ValidationFailed.at(NON_FIELD, f"expected a JSON object with {names}")
    unknown = sorted(set(data) - set(fields))
    if unknown and reject_unknown:
        raise ValidationFailed.at(unknown[0], f"not a {what} ({names})")
    if request.method == "PUT":
        missing = [name for name in fields if name not in data]
        if missing:
            raise ValidationFailed(
                {
                    name: "required: PUT replaces every setting (PATCH changes some)"
                    for name in missing
                }
            )
    return dict(data)
