"""The sidebar: each app registers its pages' entries in its `AppConfig.ready()`; the layout
shows the entries the user's role allows, in order. Adding a page touches only its own app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdp import access
from cdp.models import Workspace


@dataclass(frozen=True, slots=True)
class NavEntry:
    label: str
    url_name: str
    capability: str | None  # None: every member
    order: int


_ENTRIES: dict[str, NavEntry] = {}


def register(*, label: str, url_name: str, capability: str | None, order: int) -> None:
    """Add (or replace, keyed by url name) an entry of the sidebar."""
    if capability is not None and capability not in access.CAPABILITIES:
        raise KeyError(f"navigation entry {label!r}: unknown capability {capability!r}")
    _ENTRIES[url_name] = NavEntry(label, url_name, capability, order)


def entries() -> list[NavEntry]:
    return sorted(_ENTRIES.values(), key=lambda e: (e.order, e.label))


def visible_entries(user: Any, workspace: Workspace) -> list[NavEntry]:
    return [
        e for e in entries() if e.capability is None or access.can(user, workspace, e.capability)
    ]


@dataclass(frozen=True, slots=True)
class SettingsLink:
    """A card of the Settings page leading to an app's own settings page."""

    key: str
    title: str
    description: str
    url_name: str
    link_label: str
    capability: str | None
    order: int


_SETTINGS: dict[str, SettingsLink] = {}


def register_settings(
    *,
    key: str,
    title: str,
    description: str,
    url_name: str,
    link_label: str,
    capability: str | None,
    order: int,
) -> None:
    if capability is not None and capability not in access.CAPABILITIES:
        raise KeyError(f"settings link {key!r}: unknown capability {capability!r}")
    _SETTINGS[key] = SettingsLink(key, title, description, url_name, link_label, capability, order)


def visible_settings(user: Any, workspace: Workspace) -> list[SettingsLink]:
    return [
        s
        for s in sorted(_SETTINGS.values(), key=lambda s: (s.order, s.key))
        if s.capability is None or access.can(user, workspace, s.capability)
    ]
