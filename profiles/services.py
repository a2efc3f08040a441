"""Sources, write keys, and replaying dead-lettered events."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cdp.errors import Conflict, NotFound, ValidationFailed, duplicate
from cdp.models import Workspace, audit
from profiles.collector import cors, keys, storage
from profiles.collector.normalize import EventRejected
from profiles.collector.service import accept_event, batch_meta, kick_processing
from profiles.models import (
    FailedEvent,
    FailedEventStatus,
    Source,
    SourceKind,
    WriteKey,
)

NAME_MAX = Source._meta.get_field("name").max_length or 200


@transaction.atomic
def source_create(
    *,
    workspace: Workspace,
    name: str,
    kind: str = SourceKind.HTTP,
    actor: Any | None = None,
    rate_limit_per_second: int | None = None,
    max_event_bytes: int | None = None,
    dead_letter_quota: int | None = None,
    allowed_origins: list[str] | None = None,
) -> Source:
    name = name.strip()
    if not name:
        raise ValidationFailed.at("name", "must not be empty")
    if len(name) > NAME_MAX:
        raise ValidationFailed.at("name", f"at most {NAME_MAX} characters")
    if kind not in SourceKind.values:
        raise ValidationFailed.at("kind", f"{kind!r} is not one of {', '.join(SourceKind.values)}")
    if Source.objects.filter(workspace=workspace, name=name).exists():
        raise duplicate("name", f"a source named {name!r} already exists")
    source = Source.objects.create(
        workspace=workspace,
        name=name,
        kind=kind,
        rate_limit_per_second=rate_limit_per_second,
        max_event_bytes=max_event_bytes,
        dead_letter_quota=dead_letter_quota,
        allowed_origins=clean_origins(allowed_origins or []),
    )
    WriteKey.objects.create(source=source)
    audit(workspace=workspace, actor=actor, action="source.create", target=source)
    return source


def clean_origins(value: Any) -> list[str]:
    """The allowed origins of a source, normalised and without repeats; every bad entry is
    named by its index."""
    if not isinstance(value, list | tuple):
        raise ValidationFailed.at("allowed_origins", "expected a list of origins")
    if len(value) > cors.MAX_ORIGINS:
        raise ValidationFailed.at("allowed_origins", f"at most {cors.MAX_ORIGINS} origins")
    clean: list[str] = []
    errors: dict[str, str] = {}
    for index, entry in enumerate(value):
        try:
            if not isinstance(entry, str):
                raise ValueError("expected a string such as https://shop.example.com")
            origin = cors.normalise_origin(entry)
        except ValueError as exc:
            errors[f"allowed_origins[{index}]"] = str(exc)
            continue
        if origin not in clean:
            clean.append(origin)
    if errors:
        raise ValidationFailed(errors)
    return clean


@transaction.atomic
def source_update(*, source: Source, actor: Any | None = None, **changes: Any) -> Source:
    allowed = {
        "name",
        "enabled",
        "rate_limit_per_second",
        "max_event_bytes",
        "dead_letter_quota",
        "kind",
        "allowed_origins",
    }
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed({name: "cannot be changed" for name in sorted(unknown)})
    if "name" in changes:
        changes["name"] = str(changes["name"]).strip()
        if not changes["name"] or len(changes["name"]) > NAME_MAX:
            raise ValidationFailed.at("name", f"1 to {NAME_MAX} characters")
    if "allowed_origins" in changes:
        changes["allowed_origins"] = clean_origins(changes["allowed_origins"])
    for field_name, value in changes.items():
        setattr(source, field_name, value)
    source.save(update_fields=list(changes))
    audit(
        workspace=source.workspace,
        actor=actor,
        action="source.update",
        target=source,
        detail={k: v for k, v in changes.items()},
    )
    transaction.on_commit(keys.forget_all)
    return source


@transaction.atomic
def write_key_rotate(*, source: Source, actor: Any | None = None, revoke_old: bool) -> WriteKey:
    """Issue a new key; optionally revoke the old ones at once (otherwise both work, so SDKs
    can be redeployed before the old key is revoked)."""
    if revoke_old:
        source.write_keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
    key = WriteKey.objects.create(source=source)
    audit(
        workspace=source.workspace,
        actor=actor,
        action="write_key.rotate",
        target=source,
        detail={"revoke_old": revoke_old},
    )
    transaction.on_commit(keys.forget_all)
    return key


@transaction.atomic
def write_key_revoke(*, source: Source, key_id: int, actor: Any | None = None) -> WriteKey:
    key = source.write_keys.filter(pk=key_id).first()
    if key is None:
        raise NotFound("No such write key on this source.")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit(
            workspace=source.workspace,
            actor=actor,
            action="write_key.revoke",
            target=source,
            detail={"key_prefix": key.key[:8]},
        )
    transaction.on_commit(keys.forget_all)
    return key


def failed_event_replay(*, failed: FailedEvent, actor: Any | None = None) -> FailedEvent:
    """Run a dead-lettered event through the collector's checks again, with the source's
    current settings (e.g. after raising its size cap). Stored on success (deduplicated by
    messageId); on failure the row stays, with the new error and attempt count."""
    try:
        return _replay(failed_id=failed.pk, actor=actor)
    except EventRejected as exc:
        with transaction.atomic():
            row = FailedEvent.objects.select_for_update().get(pk=failed.pk)
            row.replay_attempts += 1
            row.last_replay_error = exc.message
            row.save(update_fields=["replay_attempts", "last_replay_error"])
            audit(
                workspace=row.workspace,
                actor=actor,
                action="failed_event.replay_failed",
                target=row,
                detail={"reason": exc.reason, "message": exc.message},
            )
        path = f"event.{exc.field}" if exc.field else "event"
        problem = exc.message.split(": ", 1)[1] if exc.field else exc.message
        raise ValidationFailed(
            {path: [problem]}, message=f"Replay failed: {exc.message}."
        ) from None


@transaction.atomic
def _replay(*, failed_id: int, actor: Any | None) -> FailedEvent:
    failed = FailedEvent.objects.select_for_update().get(pk=failed_id)
    if failed.status != FailedEventStatus.FAILED:
        raise Conflict(f"This event was already replayed ({failed.status}).", code="replayed")
    source = failed.source
    if source is None:
        raise Conflict("The event's source was deleted; it cannot be replayed.")
    raw: Any = failed.payload
    if raw is None:
        raise EventRejected(failed.reason, "only a sample of the request was kept")
    # the saved batch context has the shape of a batch body: sentAt, context, integrations
    context = failed.batch_context or {}
    normalized = accept_event(
        raw,
        batch_meta(context, failed.received_at),
        max_event_bytes=source.max_event_bytes or settings.CDP_MAX_EVENT_BYTES,
        route_type=context.get("route_type"),
    )
    inserted = storage.insert_events(
        workspace_id=failed.workspace_id, source_id=source.pk, events=[normalized]
    ).inserted
    failed.status = FailedEventStatus.REPLAYED if inserted else FailedEventStatus.DUPLICATE
    failed.replayed_at = timezone.now()
    failed.replay_attempts += 1
    failed.last_replay_error = ""
    failed.save(update_fields=["status", "replayed_at", "replay_attempts", "last_replay_error"])
    audit(workspace=failed.workspace, actor=actor, action="failed_event.replay", target=failed)
    if inserted:
        workspace_id = failed.workspace_id
        transaction.on_commit(lambda: kick_processing(workspace_id))
    return failed


def source_provision(workspace: Workspace, owner: Any) -> dict[str, str]:
    """The bootstrap's step (cdp.services.register_provisioner): the workspace's first source
    and a live write key, made once."""
    source = Source.objects.filter(workspace=workspace).order_by("id").first()
    if source is None:
        source = source_create(workspace=workspace, name="Default source", kind="http", actor=owner)
    key = source.write_keys.filter(revoked_at__isnull=True).order_by("id").first()
    if key is None:
        key = write_key_rotate(source=source, actor=owner, revoke_old=False)
    return {"write_key": key.key}
