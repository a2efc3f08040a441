"""Reads: computed trait definitions, and a profile's built-in and custom trait values."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from cdp.models import Workspace
from cdp.params import is_id
from profiles.computed import builtin
from profiles.computed.sql import UPDATED
from profiles.models import ComputedTrait, Profile


def computed_trait_list(*, workspace: Workspace) -> QuerySet[ComputedTrait]:
    return (
        ComputedTrait.objects.filter(workspace=workspace)
        .select_related("created_by")
        .order_by("key")
    )


def computed_trait_get(*, workspace: Workspace, trait_id: Any) -> ComputedTrait | None:
    if not is_id(trait_id):
        return None
    return computed_trait_list(workspace=workspace).filter(pk=trait_id).first()


def builtin_trait_list() -> list[dict[str, Any]]:
    return [trait.as_dict() for trait in builtin.BUILTIN_TRAITS]


def days_since(moment: datetime | None, now: datetime) -> int | None:
    """Whole days elapsed (0 for a moment in the future), as builtin_traits_refresh counts."""
    if moment is None:
        return None
    return max(0, (now - moment) // timedelta(days=1))


def _json_ready(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def profile_computed_traits(
    profile: Profile, *, now: datetime | None = None, traits: list[ComputedTrait] | None = None
) -> list[dict[str, Any]]:
    """Every built-in trait (in catalogue order), then every custom trait of the workspace (by
    key), as {key, label, value, kind: builtin|custom, updated}. Values are JSON-ready
    (datetimes as ISO text, money as numbers); a missing value is None.

    Values kept per event on the profile row are current (`updated` = the row's last update);
    days since last order and average order value are computed here from those columns, so
    they always agree with them; the other scheduled built-ins and custom traits come from
    Profile.computed (`updated` = when the value was last written there)."""
    now = now or timezone.now()
    computed: dict[str, Any] = profile.computed if isinstance(profile.computed, dict) else {}
    stamps = computed.get(UPDATED)
    written: dict[str, Any] = stamps if isinstance(stamps, dict) else {}
    rows: list[dict[str, Any]] = []
    for trait in builtin.BUILTIN_TRAITS:
        value: Any
        updated: Any
        if trait.column is not None:
            value, updated = getattr(profile, trait.column), profile.updated_at
        elif trait.key == "days_since_last_order":
            last = profile.last_order_at if profile.order_count else None
            value, updated = days_since(last, now), now
        elif trait.key == "average_order_value":
            value = (
                (Decimal(profile.revenue) / profile.order_count).quantize(
                    Decimal("0.01"), rounding=ROUND_HALF_UP
                )
                if profile.order_count
                else None
            )
            updated = profile.updated_at
        else:
            value, updated = computed.get(trait.key), written.get(trait.key)
        rows.append(_row(trait.key, trait.label, value, "builtin", updated))
    if traits is None:
        traits = list(ComputedTrait.objects.filter(workspace_id=profile.workspace_id))
    for custom in sorted(traits, key=lambda t: t.key):
        rows.append(
            _row(
                custom.key, custom.name, computed.get(custom.key), "custom", written.get(custom.key)
            )
        )
    return rows


def _row(key: str, label: str, value: Any, kind: str, updated: Any) -> dict[str, Any]:
    return {
        "key": key,
        "label": label,
        "value": _json_ready(value),
        "kind": kind,
        "updated": _json_ready(updated),
    }
