"""Creating and changing event streams (a source's events forwarded to a destination)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from activation.models import Destination, Stream
from activation.streams.rules import parse_filters, parse_transform
from activation.streams.stage import forget_config
from cdp.errors import NotFound, ValidationFailed
from cdp.models import Workspace, audit
from profiles.models import Source

FIELDS = ("name", "source", "destination", "filters", "transform", "enabled")


def _id(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _clean(workspace: Workspace, data: dict[str, Any], current: Stream | None) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    for key in sorted(set(data) - set(FIELDS)):
        errors.setdefault(key, []).append(f"not a stream setting ({', '.join(FIELDS)})")
    if "name" in data or current is None:
        name = str(data.get("name") or "").strip()
        if not name:
            errors.setdefault("name", []).append("required")
        elif (
            Stream.objects.filter(workspace=workspace, name=name)
            .exclude(pk=current.pk if current else 0)
            .exists()
        ):
            errors.setdefault("name", []).append("a stream with this name exists")
        out["name"] = name
    if "source" in data or current is None:
        source = Source.objects.filter(workspace=workspace, pk=_id(data.get("source"))).first()
        if source is None:
            errors.setdefault("source", []).append("no such source in this workspace")
        out["source"] = source
    if "destination" in data or current is None:
        destination = Destination.objects.filter(
            workspace=workspace, pk=_id(data.get("destination"))
        ).first()
        if destination is None:
            errors.setdefault("destination", []).append("no such destination in this workspace")
        out["destination"] = destination
    for key, parse in (("filters", parse_filters), ("transform", parse_transform)):
        if key in data:
            try:
                parse(data[key])
            except ValidationFailed as exc:
                for path, messages in exc.fields.items():
                    errors.setdefault(path, []).extend(messages)
            else:
                out[key] = data[key] or {}
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            errors.setdefault("enabled", []).append("expected true or false")
        else:
            out["enabled"] = data["enabled"]
    if errors:
        raise ValidationFailed(errors)
    return out


@transaction.atomic
def stream_create(*, workspace: Workspace, data: dict[str, Any], actor: Any = None) -> Stream:
    values = _clean(workspace, data, None)
    stream = Stream.objects.create(
        workspace=workspace,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
        **values,
    )
    audit(workspace=workspace, actor=actor, action="stream.create", target=stream)
    transaction.on_commit(forget_config)
    forget_config()
    return stream


@transaction.atomic
def stream_update(*, stream: Stream, data: dict[str, Any], actor: Any = None) -> Stream:
    values = _clean(stream.workspace, data, stream)
    for key, value in values.items():
        setattr(stream, key, value)
    stream.updated_at = timezone.now()
    stream.save()
    audit(
        workspace=stream.workspace,
        actor=actor,
        action="stream.update",
        target=stream,
        detail={"fields": sorted(values)},
    )
    forget_config()
    return stream


@transaction.atomic
def stream_delete(*, stream: Stream, actor: Any = None) -> None:
    audit(workspace=stream.workspace, actor=actor, action="stream.delete", target=stream)
    stream.delete()
    forget_config()


def stream_get(*, workspace: Workspace, stream_id: Any) -> Stream:
    stream = Stream.objects.filter(workspace=workspace, pk=_id(stream_id)).first()
    if stream is None:
        raise NotFound("No such stream.")
    return stream
