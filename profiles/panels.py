"""Sections of a profile that other apps contribute: the 360° page shows each panel's
templates in their slots, and the profile API (`profiles/{id}/`) carries each panel's data
under its key. Consent registers its panel (current consent and the decision history), segments
its own (current memberships and recent exits), in their `AppConfig.ready()`; the profiles app
imports neither."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest

from cdp import access
from cdp.models import Workspace
from profiles.models import Profile

SLOTS = ("side", "main")  # beside the traits, and full width above the timeline


@dataclass(frozen=True, slots=True)
class ProfilePanel:
    key: str  # the section's name in the profile API
    order: int
    api: Callable[[Profile], Any]  # the API section
    capability: str | None = None  # who sees it on the page (None: whoever sees the profile)
    templates: Mapping[str, str] = field(default_factory=dict)  # slot -> template
    # the templates' context (given to them as `panel`)
    context: Callable[[HttpRequest, Workspace, Profile], dict[str, Any]] | None = None


_PANELS: dict[str, ProfilePanel] = {}


def register(panel: ProfilePanel) -> None:
    unknown = set(panel.templates) - set(SLOTS)
    if unknown:
        raise ValueError(f"profile panel {panel.key!r}: unknown slots {sorted(unknown)}")
    _PANELS[panel.key] = panel


def panels() -> list[ProfilePanel]:
    return sorted(_PANELS.values(), key=lambda p: (p.order, p.key))


def api_sections(profile: Profile) -> dict[str, Any]:
    return {panel.key: panel.api(profile) for panel in panels()}


def page_sections(
    request: HttpRequest, workspace: Workspace, profile: Profile
) -> dict[str, list[dict[str, Any]]]:
    """slot -> [{"key", "template", "context"}] of the panels the user may see."""
    out: dict[str, list[dict[str, Any]]] = {slot: [] for slot in SLOTS}
    for panel in panels():
        if panel.capability and not access.can(request.user, workspace, panel.capability):
            continue
        context = panel.context(request, workspace, profile) if panel.context else {}
        for slot, template in panel.templates.items():
            out[slot].append({"key": panel.key, "template": template, "context": context})
    return out
