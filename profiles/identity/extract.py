"""The identifiers one stored event carries, normalised, blocklist-filtered and ordered by the
workspace's priority."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from profiles import identifiers
from profiles.identity.rules import Rules
from profiles.pipeline.rows import EventLike as Event

Key = tuple[str, str]  # (identifier type, normalised value)
MAX_VALUE_LENGTH = 255


@dataclass(slots=True)
class EventIds:
    keys: list[Key] = field(default_factory=list)  # usable identifiers, highest priority first
    previous_id: str | None = None  # alias previousId: resolves as a user_id or anonymous_id
    blocked: list[Key] = field(default_factory=list)  # junk values that were dropped
    group_id: str | None = None


def _usable(value: Any, identifier_type: str, rules: Rules, out: EventIds) -> str | None:
    normalized = identifiers.normalize(identifier_type, value, rules.phone_region)
    if normalized is None or len(normalized) > MAX_VALUE_LENGTH:
        return None
    if rules.blocked(normalized):
        out.blocked.append((identifier_type, normalized))
        return None
    return normalized


def event_ids(event: Event, rules: Rules) -> EventIds:
    out = EventIds()
    found: list[Key] = []

    def add(identifier_type: str, value: Any) -> None:
        normalized = _usable(value, identifier_type, rules, out)
        if normalized is not None and (identifier_type, normalized) not in found:
            found.append((identifier_type, normalized))

    add(identifiers.USER_ID, event.user_id)
    add(identifiers.ANONYMOUS_ID, event.anonymous_id)
    traits = event.traits if isinstance(event.traits, dict) else {}
    if event.type != "group":  # a group call's traits describe the company, not the person
        add(identifiers.EMAIL, traits.get("email"))
        add(identifiers.PHONE, traits.get("phone"))
        for trait in rules.custom_traits:
            add(trait, traits.get(trait))
    context = event.context if isinstance(event.context, dict) else {}
    device = context.get("device")
    if isinstance(device, dict):
        add(identifiers.DEVICE_ID, device.get("id"))
    if event.previous_id:
        out.previous_id = _usable(event.previous_id, identifiers.ANONYMOUS_ID, rules, out)
    if event.group_id:
        out.group_id = _usable(event.group_id, identifiers.GROUP_ID, rules, out)
    found.sort(key=lambda key: rules.rank(key[0]))
    out.keys = found
    return out
