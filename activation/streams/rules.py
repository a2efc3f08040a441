"""A stream's filters and transforms.

    filters:   {"types": ["track", "identify"], "events": ["Order Completed"],
                "where": [{"property": "revenue", "op": "gte", "value": 50}]}
    transform: {"allow": ["revenue", "currency"], "drop": ["card"],
                "rename": {"revenue": "value"}, "hash": ["email", "phone"]}

Property conditions are the segment rule language's (parsed and matched by segments.rules,
so they mean exactly what they mean in a segment). `allow` keeps only those properties,
`drop` removes them, `rename` renames them; `hash` replaces those traits and properties
(and the userId with "user_id") by their SHA-256 digests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from activation.connectors.base import sha256_hex
from cdp.errors import ValidationFailed
from cdp.paths import value_at
from segments.rules import nodes as n
from segments.rules.evaluate import matches
from segments.rules.validate import RuleContext, parse_rule

EVENT_TYPES = ("track", "identify", "page", "screen", "group", "alias")


@dataclass(frozen=True, slots=True)
class Filters:
    types: frozenset[str]
    events: frozenset[str]
    where: tuple[n.PropertyFilter, ...]

    def accepts(self, event: Any, now: datetime) -> bool:
        if self.types and event.type not in self.types:
            return False
        if self.events and (event.event or event.name) not in self.events:
            return False
        props = event.properties or {}
        return all(matches(value_at(props, f.path), f.comparison, now) for f in self.where)


@dataclass(frozen=True, slots=True)
class Transform:
    allow: tuple[str, ...]
    drop: tuple[str, ...]
    rename: dict[str, str]
    hash: tuple[str, ...]

    def properties(self, props: dict[str, Any]) -> dict[str, Any]:
        out = dict(props)
        if self.allow:
            out = {k: v for k, v in out.items() if k in self.allow}
        for key in self.drop:
            out.pop(key, None)
        for key in self.hash:
            if isinstance(out.get(key), str | int | float):
                out[key] = sha256_hex(str(out[key]).strip().lower())
        for old, new in self.rename.items():
            if old in out:
                out[new] = out.pop(old)
        return out

    def traits(self, traits: dict[str, Any]) -> dict[str, Any]:
        out = dict(traits)
        for key in self.hash:
            if isinstance(out.get(key), str | int | float):
                out[key] = sha256_hex(str(out[key]).strip().lower())
        return out


def parse_filters(raw: Any) -> Filters:
    if raw in (None, {}):
        return Filters(frozenset(), frozenset(), ())
    if not isinstance(raw, dict):
        raise ValidationFailed.at("filters", "expected an object with types, events, where")
    errors: dict[str, list[str]] = {}
    for key in sorted(set(raw) - {"types", "events", "where"}):
        errors.setdefault(f"filters.{key}", []).append("not a filter (types, events, where)")
    types = raw.get("types") or []
    if not isinstance(types, list) or any(t not in EVENT_TYPES for t in types):
        errors.setdefault("filters.types", []).append(
            f"expected a list of {', '.join(EVENT_TYPES)}"
        )
        types = []
    events = raw.get("events") or []
    if not isinstance(events, list) or not all(isinstance(e, str) and e for e in events):
        errors.setdefault("filters.events", []).append("expected a list of event names")
        events = []
    where: tuple[n.PropertyFilter, ...] = ()
    if raw.get("where"):
        try:
            node = parse_rule({"event": "*", "where": raw["where"]}, RuleContext())
        except ValidationFailed as exc:
            for path, messages in exc.fields.items():
                errors.setdefault(path.replace("rule", "filters", 1), []).extend(messages)
        else:
            assert isinstance(node, n.EventCondition)
            where = node.filters
    if errors:
        raise ValidationFailed(errors)
    return Filters(frozenset(types), frozenset(events), where)


def parse_transform(raw: Any) -> Transform:
    if raw in (None, {}):
        return Transform((), (), {}, ())
    if not isinstance(raw, dict):
        raise ValidationFailed.at("transform", "expected an object with allow, drop, rename, hash")
    errors: dict[str, list[str]] = {}
    for key in sorted(set(raw) - {"allow", "drop", "rename", "hash"}):
        errors.setdefault(f"transform.{key}", []).append(
            "not a transform (allow, drop, rename, hash)"
        )
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("allow", "drop", "hash"):
        value = raw.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            errors.setdefault(f"transform.{key}", []).append("expected a list of names")
            value = []
        lists[key] = tuple(value)
    rename = raw.get("rename") or {}
    if not isinstance(rename, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in rename.items()
    ):
        errors.setdefault("transform.rename", []).append("expected {old name: new name}")
        rename = {}
    if errors:
        raise ValidationFailed(errors)
    return Transform(lists["allow"], lists["drop"], dict(rename), lists["hash"])
