"""A workspace's identity rules, loaded once per batch: identifier priority, per-profile
limits, the junk-value blocklist, custom identifier traits and trait merge strategies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import phonenumbers

from profiles import identifiers
from profiles.models import IdentityRules, TraitStrategy

UNLIMITED = 1 << 30


@dataclass(frozen=True, slots=True)
class Rules:
    workspace_id: int
    priority: tuple[str, ...]
    limits: dict[str, int]
    blocklist: frozenset[str]
    custom_traits: tuple[str, ...]
    strategies: dict[str, str]
    order_event: str
    phone_region: str = ""
    _rank: dict[str, int] = field(default_factory=dict)

    def rank(self, identifier_type: str) -> int:
        """Lower is higher priority; unlisted types rank after listed ones, by name."""
        return self._rank.get(identifier_type, len(self._rank))

    def limit(self, identifier_type: str) -> int:
        return self.limits.get(identifier_type, UNLIMITED)

    def blocked(self, value: str) -> bool:
        return value.strip().lower() in self.blocklist

    def strategy(self, trait: str) -> str:
        return self.strategies.get(trait, TraitStrategy.MOST_RECENT)

    @property
    def limited_types(self) -> list[str]:
        return sorted(self.limits)


def rules_from(row: IdentityRules) -> Rules:
    priority = tuple(str(t) for t in row.priority)
    return Rules(
        workspace_id=row.workspace_id,
        priority=priority,
        limits={str(k): int(v) for k, v in (row.limits or {}).items()},
        blocklist=frozenset(str(v).strip().lower() for v in row.blocklist or []),
        custom_traits=tuple(str(t) for t in row.custom_identifier_traits or []),
        strategies={str(k): str(v) for k, v in (row.trait_strategies or {}).items()},
        order_event=row.order_event,
        phone_region=row.phone_region,
        _rank={t: i for i, t in enumerate(priority)},
    )


def rules_row(workspace_id: int) -> IdentityRules:
    row, _ = IdentityRules.objects.get_or_create(workspace_id=workspace_id)
    return row


def load_rules(workspace_id: int) -> Rules:
    return rules_from(rules_row(workspace_id))


# ---- validation of rules submitted through the API / admin page ----------------------------

TYPE_NAME_MAX = 64


def _type_name(value: Any, path: str, errors: dict[str, str]) -> str | None:
    if not isinstance(value, str) or not value.strip():
        errors[path] = "expected a non-empty identifier type name"
        return None
    name = value.strip()
    if len(name) > TYPE_NAME_MAX or not all(c.isalnum() or c == "_" for c in name):
        errors[path] = "identifier type names use letters, digits and '_' (at most 64)"
        return None
    return name


def validate_rules(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Checks a partial update; returns (clean values, errors by field path)."""
    clean: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if "priority" in data:
        value = data["priority"]
        if not isinstance(value, list) or not value:
            errors["priority"] = "expected a non-empty list of identifier types"
        else:
            names = [_type_name(v, f"priority[{i}]", errors) for i, v in enumerate(value)]
            if len(set(names)) != len(names):
                errors["priority"] = "each identifier type may appear once"
            clean["priority"] = names
    if "limits" in data:
        value = data["limits"]
        if not isinstance(value, dict):
            errors["limits"] = "expected an object of identifier type -> maximum per profile"
        else:
            limits: dict[str, int] = {}
            for key, limit in value.items():
                name = _type_name(key, f"limits.{key}", errors)
                if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                    errors[f"limits.{key}"] = "expected an integer ≥ 1"
                elif name:
                    limits[name] = limit
            clean["limits"] = limits
    if "blocklist" in data:
        value = data["blocklist"]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors["blocklist"] = "expected a list of strings"
        else:
            clean["blocklist"] = sorted({v.strip().lower() for v in value})
    if "custom_identifier_traits" in data:
        value = data["custom_identifier_traits"]
        if not isinstance(value, list):
            errors["custom_identifier_traits"] = "expected a list of trait names"
        else:
            traits = []
            for i, v in enumerate(value):
                name = _type_name(v, f"custom_identifier_traits[{i}]", errors)
                if name in identifiers.BUILTIN_TYPES:
                    errors[f"custom_identifier_traits[{i}]"] = f"{name!r} is a built-in type"
                elif name:
                    traits.append(name)
            clean["custom_identifier_traits"] = traits
    if "trait_strategies" in data:
        value = data["trait_strategies"]
        choices = set(TraitStrategy.values)
        if not isinstance(value, dict):
            errors["trait_strategies"] = "expected an object of trait -> strategy"
        else:
            for key, strategy in value.items():
                if not isinstance(strategy, str) or strategy not in choices:
                    errors[f"trait_strategies.{key}"] = (
                        f"unknown strategy {strategy!r}; one of {', '.join(sorted(choices))}"
                    )
            clean["trait_strategies"] = {str(k): v for k, v in value.items()}
    if "order_event" in data:
        value = data["order_event"]
        if not isinstance(value, str) or not value.strip() or len(value) > 255:
            errors["order_event"] = "expected an event name (1–255 characters)"
        else:
            clean["order_event"] = value.strip()
    if "phone_region" in data:
        value = data["phone_region"]
        regions = phonenumbers.SUPPORTED_REGIONS
        if not isinstance(value, str) or (value and value.upper() not in regions):
            errors["phone_region"] = "expected an ISO 3166 country code such as 'US', or ''"
        else:
            clean["phone_region"] = value.upper()
    unknown = set(data) - {
        "phone_region",
        "priority",
        "limits",
        "blocklist",
        "custom_identifier_traits",
        "trait_strategies",
        "order_event",
    }
    for key in sorted(unknown):
        errors[key] = "unknown setting"
    return clean, errors
