"""The profiles app's part of workspace configuration as code (cdp.config_code): sources
(without their write keys) and computed traits."""

from __future__ import annotations

from typing import Any

from cdp import config_code
from cdp.models import Workspace
from profiles.computed import services as computed_services
from profiles.computed.services import FIELDS as TRAIT_FIELDS
from profiles.models import ComputedTrait, Source
from profiles.services import source_create, source_update

SOURCE_FIELDS = (
    "name",
    "kind",
    "enabled",
    "rate_limit_per_second",
    "max_event_bytes",
    "dead_letter_quota",
    "allowed_origins",
)


def export_sources(workspace: Workspace) -> list[dict[str, Any]]:
    return [
        {name: getattr(source, name) for name in SOURCE_FIELDS}
        for source in Source.objects.filter(workspace=workspace)
    ]


def apply_source(
    workspace: Workspace, item: dict[str, Any], current: dict[str, Any] | None, actor: Any
) -> None:
    config_code.only(item, set(SOURCE_FIELDS), {"name"})
    if current is None:
        source = source_create(
            workspace=workspace,
            name=item["name"],
            kind=item.get("kind", "http"),
            actor=actor,
            rate_limit_per_second=item.get("rate_limit_per_second"),
            max_event_bytes=item.get("max_event_bytes"),
            dead_letter_quota=item.get("dead_letter_quota"),
            allowed_origins=item.get("allowed_origins") or [],
        )
        if item.get("enabled", True) is False:
            source_update(source=source, actor=actor, enabled=False)
        return
    source = Source.objects.get(workspace=workspace, name=item["name"])
    changes = {
        name: item[name]
        for name in SOURCE_FIELDS
        if name != "name" and name in item and item[name] != current.get(name)
    }
    if changes:
        source_update(source=source, actor=actor, **changes)


def export_traits(workspace: Workspace) -> list[dict[str, Any]]:
    return [
        {name: getattr(trait, name) for name in TRAIT_FIELDS}
        for trait in ComputedTrait.objects.filter(workspace=workspace)
    ]


def apply_trait(
    workspace: Workspace, item: dict[str, Any], current: dict[str, Any] | None, actor: Any
) -> None:
    if current is None:
        computed_services.computed_trait_create(workspace=workspace, actor=actor, data=item)
        return
    trait = ComputedTrait.objects.get(workspace=workspace, key=item["key"])
    changes = {k: v for k, v in item.items() if k != "key" and v != current.get(k)}
    computed_services.computed_trait_update(trait=trait, actor=actor, data=changes)


def register() -> None:
    config_code.register(
        key="sources", order=10, identity="name", export=export_sources, apply=apply_source
    )
    config_code.register(
        key="computed_traits", order=30, identity="key", export=export_traits, apply=apply_trait
    )
