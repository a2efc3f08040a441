"""Placements and offers: defined, checked and changed here; every change bumps the workspace's
decision version so every process serves it at its next decision."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from django.db import IntegrityError, transaction
from django.utils import timezone
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from activation.decisions import version
from activation.decisions.config import decision_rule_context
from activation.decisions.models import Offer, Placement
from activation.decisions.records import CAP_TIMES_KEPT
from activation.experiments.services import _errors, _key, _name
from cdp.errors import Conflict, ValidationFailed, duplicate
from cdp.models import Workspace, audit
from segments.ml.models import MLModel, ModelKind
from segments.rules.validate import parse_date, parse_rule

MAX_CONTENT_BYTES = 32 * 1024
MAX_RECOMMENDATIONS = 50
PRIORITY_RANGE = 1000


def _size(value: Any) -> int:
    return len(orjson.dumps(value))


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def content_errors(schema: Mapping[str, Any], content: Any, at: str) -> dict[str, list[str]]:
    """Where `content` breaks the placement's JSON Schema, by path (`content.title`)."""
    errors: dict[str, list[str]] = {}
    for error in Draft202012Validator(schema).iter_errors(content):
        path = at + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
        errors.setdefault(path, []).append(error.message)
    return errors


# ---- placements -----------------------------------------------------------------------------


def _placement_clean(
    workspace: Workspace, data: Mapping[str, Any], current: Placement | None
) -> dict[str, Any]:
    errors, fail = _errors()
    out: dict[str, Any] = {}
    if current is None:
        out["key"] = _key(data, fail, "home_hero")
    out["name"] = _name(data, fail, current.name if current else None)
    if "description" in data:
        if not isinstance(data["description"], str) or len(data["description"]) > 2000:
            fail("description", "text of at most 2000 characters")
        out["description"] = data["description"]
    schema = data.get("content_schema", current.content_schema if current else {})
    if not isinstance(schema, dict):
        fail("content_schema", 'a JSON Schema (an object), e.g. {"type": "object"}')
        schema = None
    else:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            fail("content_schema", f"not a valid JSON Schema: {exc.message}")
            schema = None
    out["content_schema"] = schema
    default = data.get("default_content", current.default_content if current else None)
    if default is not None and schema is not None:
        if _size(default) > MAX_CONTENT_BYTES:
            fail("default_content", f"at most {MAX_CONTENT_BYTES} bytes of JSON")
        for path, messages in content_errors(schema, default, "default_content").items():
            for message in messages:
                fail(path, message)
    out["default_content"] = default
    model = data.get("recommendations_model", current.recommendations_model if current else "")
    count = data.get("recommendations_count", current.recommendations_count if current else 0)
    if model:
        known = (
            isinstance(model, str)
            and MLModel.objects.filter(
                workspace=workspace, key=model, kind=ModelKind.RECOMMENDATIONS
            ).exists()
        )
        if not known:
            fail("recommendations_model", f"no recommendations model {model!r} here")
    if not _whole(count) or not 0 <= count <= MAX_RECOMMENDATIONS:
        fail("recommendations_count", f"a whole number from 0 to {MAX_RECOMMENDATIONS}")
    out["recommendations_model"] = model or ""
    out["recommendations_count"] = count
    if current is not None and schema is not None and "content_schema" in data:
        for offer in Offer.objects.filter(placement=current).order_by("key"):
            broken = content_errors(schema, offer.content, "content")
            if broken:
                path, messages = next(iter(broken.items()))
                fail("content_schema", f"offer {offer.key} would break it: {path} {messages[0]}")
    if errors:
        raise ValidationFailed(errors)
    return out


def placement_create(*, workspace: Workspace, actor: Any, data: Mapping[str, Any]) -> Placement:
    clean = _placement_clean(workspace, data, None)
    try:
        with transaction.atomic():
            placement = Placement.objects.create(workspace=workspace, **clean)
            version.bump(workspace.pk)
    except IntegrityError:
        raise duplicate("key", f"a placement {clean['key']!r} already exists") from None
    audit(workspace=workspace, actor=actor, action="placement.create", target=placement,
          detail={"key": placement.key})  # fmt: skip
    return placement


@transaction.atomic
def placement_update(*, placement: Placement, actor: Any, data: Mapping[str, Any]) -> Placement:
    clean = _placement_clean(placement.workspace, data, placement)
    for field, value in clean.items():
        setattr(placement, field, value)
    placement.updated_at = timezone.now()
    placement.save()
    version.bump(placement.workspace_id)
    audit(workspace=placement.workspace, actor=actor, action="placement.update",
          target=placement, detail={"fields": sorted(data)})  # fmt: skip
    return placement


@transaction.atomic
def placement_delete(*, placement: Placement, actor: Any) -> None:
    offers = list(Offer.objects.filter(placement=placement).values_list("key", flat=True))
    if offers:
        raise Conflict(
            f"placement {placement.key} still has offers ({', '.join(offers[:10])}): delete or "
            "move them first",
            code="placement_has_offers",
        )
    audit(workspace=placement.workspace, actor=actor, action="placement.delete",
          target=placement, detail={"key": placement.key})  # fmt: skip
    placement.delete()
    version.bump(placement.workspace_id)


# ---- offers ---------------------------------------------------------------------------------


def _when(value: Any, field: str, fail: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):  # the stored value, when another field changes
        return value
    parsed = parse_date(value)
    if parsed is None:
        fail(field, "an ISO 8601 date or time (2026-12-24 or 2026-12-24T18:00:00Z)")
    return parsed


def _optional_count(value: Any, field: str, fail: Any, most: int | None) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        fail(field, "a whole number of at least 1, or null for no cap")
        return None
    if most is not None and value > most:
        fail(field, f"at most {most} (the impressions kept per offer)")
        return None
    return value


def _offer_clean(
    workspace: Workspace, data: Mapping[str, Any], current: Offer | None
) -> dict[str, Any]:
    errors, fail = _errors()
    out: dict[str, Any] = {}

    def given(field: str, default: Any) -> Any:
        return data[field] if field in data else (getattr(current, field) if current else default)

    if current is None:
        out["key"] = _key(data, fail, "spring_sale")
    out["name"] = _name(data, fail, current.name if current else None)
    placement = current.placement if current else None
    if "placement" in data or current is None:
        placement = Placement.objects.filter(
            workspace=workspace, key=str(data.get("placement") or "")
        ).first()
        if placement is None:
            fail("placement", f"no placement {data.get('placement')!r} in this workspace")
    out["placement"] = placement
    content = given("content", None)
    if content is None:
        fail("content", "what the placement shows (JSON matching its content schema)")
    elif _size(content) > MAX_CONTENT_BYTES:
        fail("content", f"at most {MAX_CONTENT_BYTES} bytes of JSON")
    elif placement is not None:
        for path, messages in content_errors(placement.content_schema, content, "content").items():
            for message in messages:
                fail(path, message)
    out["content"] = content
    rule = given("eligibility", None)
    if rule is not None:
        try:
            parse_rule(rule, decision_rule_context(workspace))
        except ValidationFailed as exc:
            for path, messages in exc.fields.items():
                for message in messages:
                    fail("eligibility" + path.removeprefix("rule"), message)
    out["eligibility"] = rule
    out["starts_at"] = _when(given("starts_at", None), "starts_at", fail)
    out["ends_at"] = _when(given("ends_at", None), "ends_at", fail)
    if out["starts_at"] and out["ends_at"] and out["ends_at"] <= out["starts_at"]:
        fail("ends_at", "after starts_at")
    priority = given("priority", 0)
    if not _whole(priority) or abs(priority) > PRIORITY_RANGE:
        fail("priority", f"a whole number from -{PRIORITY_RANGE} to {PRIORITY_RANGE}")
    out["priority"] = priority
    weight = given("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 1000:
        fail("weight", "a number above 0, at most 1000")
    out["weight"] = weight
    out["cap_day"] = _optional_count(given("cap_day", None), "cap_day", fail, CAP_TIMES_KEPT)
    out["cap_week"] = _optional_count(given("cap_week", None), "cap_week", fail, CAP_TIMES_KEPT)
    out["cap_lifetime"] = _optional_count(given("cap_lifetime", None), "cap_lifetime", fail, None)
    rank_by = given("rank_by", "") or ""
    if not isinstance(rank_by, str):
        fail("rank_by", "the key of a model score, e.g. churn_risk")
        rank_by = ""
    elif rank_by:
        scores = {
            key
            for model in MLModel.objects.with_champion().filter(workspace=workspace)
            for key in model.trait_keys
        }
        if rank_by not in scores:
            known = ", ".join(sorted(scores)) or "none yet"
            fail("rank_by", f"no model score {rank_by!r} (scores: {known})")
    out["rank_by"] = rank_by
    enabled = given("enabled", True)
    if not isinstance(enabled, bool):
        fail("enabled", "true or false")
    out["enabled"] = enabled
    if errors:
        raise ValidationFailed(errors)
    return out


def offer_create(*, workspace: Workspace, actor: Any, data: Mapping[str, Any]) -> Offer:
    clean = _offer_clean(workspace, data, None)
    try:
        with transaction.atomic():
            offer = Offer.objects.create(
                workspace=workspace,
                created_by=actor if getattr(actor, "is_authenticated", False) else None,
                **clean,
            )
            version.bump(workspace.pk)
    except IntegrityError:
        raise duplicate("key", f"an offer {clean['key']!r} already exists") from None
    audit(workspace=workspace, actor=actor, action="offer.create", target=offer,
          detail={"key": offer.key, "placement": offer.placement.key})  # fmt: skip
    return offer


@transaction.atomic
def offer_update(*, offer: Offer, actor: Any, data: Mapping[str, Any]) -> Offer:
    clean = _offer_clean(offer.workspace, data, offer)
    for field, value in clean.items():
        setattr(offer, field, value)
    offer.updated_at = timezone.now()
    offer.save()
    version.bump(offer.workspace_id)
    audit(workspace=offer.workspace, actor=actor, action="offer.update", target=offer,
          detail={"fields": sorted(data)})  # fmt: skip
    return offer


@transaction.atomic
def offer_delete(*, offer: Offer, actor: Any) -> None:
    audit(workspace=offer.workspace, actor=actor, action="offer.delete", target=offer,
          detail={"key": offer.key})  # fmt: skip
    offer.delete()
    version.bump(offer.workspace_id)
