"""A sync's field mapping: which identifiers and fields each member is sent with.

    {"identifiers": [{"type": "email", "hash": "sha256"}, {"type": "user_id", "as": "uid"}],
     "fields": [{"trait": "first_name", "as": "firstName"},
                {"trait": "address.city", "as": "city"},
                {"constant": "spring-sale", "as": "campaign"}]}

An identifier is sent under `as` (default: its type, plus `_sha256` when hashed), normalised
the way the destination matches it (connector.normalise) and hashed when asked — or always,
for destinations that take digests only (ad platforms). The sync remembers what it sent as
"name:value" strings, so a change of identifiers sends only what changed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from activation.connectors.base import Connector, sha256_hex
from cdp.errors import ValidationFailed
from cdp.paths import PathError, path_keys, split_path, value_at

IDENTIFIER_TYPES = ("email", "phone", "user_id", "anonymous_id", "device_id")
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


@dataclass(frozen=True, slots=True)
class IdentifierRule:
    type: str
    hashed: bool
    name: str


@dataclass(frozen=True, slots=True)
class FieldRule:
    name: str
    trait: str | None = None
    constant: Any = None


@dataclass(frozen=True, slots=True)
class Mapping:
    identifiers: tuple[IdentifierRule, ...]
    fields: tuple[FieldRule, ...]

    def desired(
        self, connector: Connector, identities: list[tuple[str, str]], traits: dict[str, Any]
    ) -> tuple[dict[str, list[str]], dict[str, Any]]:
        """A member's identifiers (name -> sorted values) and fields."""
        out: dict[str, set[str]] = {}
        for rule in self.identifiers:
            for kind, value in identities:
                if kind != rule.type:
                    continue
                normal = connector.normalise(kind, value)
                if not normal:
                    continue
                out.setdefault(rule.name, set()).add(sha256_hex(normal) if rule.hashed else normal)
        fields: dict[str, Any] = {}
        for f in self.fields:
            if f.trait is not None:
                value = trait_value(traits, f.trait)
                if value is not None:
                    fields[f.name] = value
            else:
                fields[f.name] = f.constant
        return {k: sorted(v) for k, v in out.items()}, fields


def json_object(value: Any) -> dict[str, Any]:
    """A jsonb column as a raw cursor returns it (text) or as decoded."""
    if isinstance(value, str | bytes):
        value = orjson.loads(value)
    return value if isinstance(value, dict) else {}


def trait_value(traits: dict[str, Any], path: str) -> Any:
    """The trait at a dotted path (cdp.paths syntax, as segment rules read it)."""
    return value_at(traits, path_keys(path))


def flat(identifiers: dict[str, list[str]]) -> list[str]:
    return sorted(f"{name}:{value}" for name, values in identifiers.items() for value in values)


def unflat(state: list[str] | set[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for entry in sorted(state):
        name, _, value = entry.partition(":")
        out.setdefault(name, []).append(value)
    return out


def fields_hash(fields: dict[str, Any]) -> str:
    if not fields:
        return ""
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


def parse(raw: Any, connector: Connector) -> Mapping:
    """Validate a mapping for a destination kind; errors name the path of the bad node."""
    errors: dict[str, list[str]] = {}
    if raw in (None, {}):
        raw = default_mapping(connector)
    if not isinstance(raw, dict):
        raise ValidationFailed.at("mapping", "expected an object with identifiers and fields")
    unknown = sorted(set(raw) - {"identifiers", "fields"})
    for key in unknown:
        errors.setdefault(f"mapping.{key}", []).append("not a mapping key (identifiers, fields)")
    identifiers: list[IdentifierRule] = []
    ids_raw = raw.get("identifiers", [])
    if not isinstance(ids_raw, list) or not ids_raw:
        errors.setdefault("mapping.identifiers", []).append(
            "expected a non-empty list: each member is sent with at least one identifier"
        )
        ids_raw = []
    allowed = connector.identifier_types or IDENTIFIER_TYPES
    names: set[str] = set()
    for n, entry in enumerate(ids_raw):
        path = f"mapping.identifiers[{n}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            errors.setdefault(path, []).append('expected {"type": "email", "hash": "sha256"}')
            continue
        kind = entry["type"]
        if kind not in allowed:
            errors.setdefault(f"{path}.type", []).append(
                f"{connector.label} matches on {', '.join(allowed)}"
            )
            continue
        hashing = entry.get("hash")
        if hashing not in (None, "sha256", "none"):
            errors.setdefault(f"{path}.hash", []).append('expected "sha256" or "none"')
            continue
        hashed = connector.hashed_only or hashing == "sha256"
        if connector.hashed_only and hashing == "none":
            errors.setdefault(f"{path}.hash", []).append(
                f"{connector.label} takes identifiers as SHA-256 digests only"
            )
            continue
        name = entry.get("as") or (f"{kind}_sha256" if hashed else kind)
        if not isinstance(name, str) or not set(name) <= _NAME_OK or ":" in name:
            errors.setdefault(f"{path}.as", []).append("letters, digits, _ . - only")
            continue
        if name in names:
            errors.setdefault(f"{path}.as", []).append(f"{name!r} is used twice")
            continue
        names.add(name)
        identifiers.append(IdentifierRule(kind, hashed, name))
    fields: list[FieldRule] = []
    fields_raw = raw.get("fields", [])
    if not isinstance(fields_raw, list):
        errors.setdefault("mapping.fields", []).append("expected a list")
        fields_raw = []
    for n, entry in enumerate(fields_raw):
        path = f"mapping.fields[{n}]"
        if not isinstance(entry, dict):
            errors.setdefault(path, []).append('expected {"trait": "plan", "as": "tier"}')
            continue
        name = entry.get("as") or entry.get("trait")
        if not isinstance(name, str) or not name or not set(name) <= _NAME_OK:
            errors.setdefault(f"{path}.as", []).append("a field name: letters, digits, _ . -")
            continue
        if name in names:
            errors.setdefault(f"{path}.as", []).append(f"{name!r} is used twice")
            continue
        names.add(name)
        if "trait" in entry:
            trait = entry["trait"]
            if not isinstance(trait, str) or not trait.strip():
                errors.setdefault(f"{path}.trait", []).append("a trait name or dotted path")
                continue
            try:
                split_path(trait.strip())
            except PathError as exc:
                errors.setdefault(f"{path}.trait", []).append(str(exc))
                continue
            fields.append(FieldRule(name, trait=trait.strip()))
        elif "constant" in entry:
            fields.append(FieldRule(name, constant=entry["constant"]))
        else:
            errors.setdefault(path, []).append("needs a trait or a constant")
    if errors:
        raise ValidationFailed(errors)
    return Mapping(tuple(identifiers), tuple(fields))


def default_mapping(connector: Connector) -> dict[str, Any]:
    if connector.hashed_only:
        kinds = [k for k in ("email", "phone") if k in (connector.identifier_types or ("email",))]
        return {"identifiers": [{"type": k, "hash": "sha256"} for k in kinds], "fields": []}
    return {"identifiers": [{"type": "user_id"}, {"type": "email"}], "fields": []}


def as_json(mapping: Mapping) -> dict[str, Any]:
    return {
        "identifiers": [
            {"type": r.type, "hash": "sha256" if r.hashed else "none", "as": r.name}
            for r in mapping.identifiers
        ],
        "fields": [
            {"trait": f.trait, "as": f.name}
            if f.trait is not None
            else {"constant": f.constant, "as": f.name}
            for f in mapping.fields
        ],
    }
