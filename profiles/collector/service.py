"""The collector's write path: normalise a request's events, dead-letter the bad ones, drop
what the door's filters refuse (suppressed people), store the rest in one statement and hand
them to processing."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from django.utils import timezone

from profiles.collector import dead_letters, door, gate, storage
from profiles.collector.keys import SourceInfo
from profiles.collector.normalize import (
    BatchMeta,
    EventRejected,
    NormalizedEvent,
    event_size,
    normalize_event,
    parse_timestamp,
    storable_json,
)
from profiles.identifiers import event_identifiers
from profiles.models import FailedEvent, FailureReason

logger = logging.getLogger(__name__)

MAX_ERRORS_REPORTED = 10
# dead letters kept verbatim per request; the rest are counted in one summary row (a public
# write key must not turn 300 KB of `{}` into 100,000 rows)
MAX_DEAD_LETTERS_PER_REQUEST = 100
RAW_SAMPLE_BYTES = 64 * 1024


@dataclass(slots=True)
class IngestResult:
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    dropped: int = 0  # refused by a door filter
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_response(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "success": True,
            # dropped events are answered like accepted ones: the caller learns nothing
            "accepted": self.accepted + self.dropped,
            "duplicates": self.duplicates,
            "failed": self.failed,
        }
        if self.errors:
            body["errors"] = self.errors
        return body


def batch_meta(body: dict[str, Any], received_at: datetime) -> BatchMeta:
    meta = BatchMeta(received_at=received_at)
    try:
        meta.sent_at = parse_timestamp(body.get("sentAt"), "sentAt")
    except EventRejected as exc:
        meta.sent_at_error = f"batch {exc.message}"
    context = body.get("context")
    if isinstance(context, dict):
        meta.context = context
    integrations = body.get("integrations")
    if isinstance(integrations, dict):
        meta.integrations = integrations
    return meta


def _batch_context_for_replay(meta: BatchMeta, body: dict[str, Any], route_type: str | None):
    saved: dict[str, Any] = {}
    if body.get("sentAt") is not None:
        saved["sentAt"] = body.get("sentAt")
    if meta.context:
        saved["context"] = meta.context
    if meta.integrations:
        saved["integrations"] = meta.integrations
    if route_type:
        saved["route_type"] = route_type
    return saved


def accept_event(
    raw: Any, meta: BatchMeta, *, max_event_bytes: int, route_type: str | None
) -> NormalizedEvent:
    """The per-event checks, shared by ingest and replay: size cap, then normalisation."""
    size = event_size(raw)
    if size > max_event_bytes:
        raise EventRejected(
            FailureReason.EVENT_TOO_LARGE,
            f"event is {size} bytes; this source accepts at most {max_event_bytes} bytes per event",
        )
    return normalize_event(raw, meta, forced_type=route_type)


def collector_ingest(
    *,
    source: SourceInfo,
    raw_events: list[Any],
    body: dict[str, Any],
    route_type: str | None,
    received_at: datetime,
    door_size: int | None,
    kick: bool,
) -> IngestResult:
    """Store what can be stored; every event ends stored, dead-lettered, deduplicated or
    dropped at the door, and the result says how many of each. `door_size` is the gate's
    cached size of the door filters' lists (None: unknown, asked here)."""
    result = IngestResult(received=len(raw_events))
    meta = batch_meta(body, received_at)
    good: list[NormalizedEvent] = []
    position: dict[int, int] = {}  # id(normalised event) -> its index in the request
    failures: list[FailedEvent] = []
    replay_context: dict[str, Any] | None = None
    not_kept = 0  # invalid events over MAX_DEAD_LETTERS_PER_REQUEST

    def reject(index: int, reason: str, message: str) -> None:
        nonlocal replay_context, not_kept
        if len(result.errors) < MAX_ERRORS_REPORTED:
            result.errors.append({"index": index, "reason": reason, "message": message})
        if len(failures) >= MAX_DEAD_LETTERS_PER_REQUEST:
            not_kept += 1
            return
        if replay_context is None:
            replay_context = _batch_context_for_replay(meta, body, route_type)
        raw = raw_events[index]
        failures.append(
            FailedEvent(
                workspace_id=source.workspace_id,
                source_id=source.source_id,
                reason=reason,
                message=message.replace("\x00", "\\x00"),
                payload=storable_json(raw),
                batch_context=replay_context,
                message_id=_message_id_of(raw),
                received_at=received_at,
            )
        )

    for index, raw in enumerate(raw_events):
        try:
            normalized = accept_event(
                raw, meta, max_event_bytes=source.max_event_bytes, route_type=route_type
            )
        except EventRejected as exc:
            reject(index, exc.reason, exc.message)
            continue
        good.append(normalized)
        position[id(normalized)] = index
    result.failed = len(failures) + not_kept

    if door_size is None and (good or failures) and door.filters():
        door_size = door.size(workspace_id=source.workspace_id)
        gate.remember_door_size(source.workspace_id, door_size)
    dropped: dict[int, int] = {}  # door filter index -> events it dropped
    if good and door_size:
        good = _door(source, good, [_event_identifiers(e) for e in good], dropped)

    if good:
        stored = storage.insert_events(
            workspace_id=source.workspace_id, source_id=source.source_id, events=good
        )
        result.accepted = stored.inserted
        result.duplicates = len(good) - stored.inserted - len(stored.rejected)
        for event, message in stored.rejected:
            reject(
                position[id(event)],
                FailureReason.INVALID_FIELD,
                f"the database refused a value: {message}",
            )
        result.failed = len(failures) + not_kept
    if failures and door_size:
        # a malformed event of a suppressed person is not kept either (dead letters hold
        # the payload as sent, identifiers included)
        failures = _door(source, failures, [_raw_identifiers(f.payload) for f in failures], dropped)
        result.failed = len(failures) + not_kept
    if not_kept:
        failures.append(
            FailedEvent(
                workspace_id=source.workspace_id,
                source_id=source.source_id,
                reason=FailureReason.NOT_KEPT,
                message=f"{not_kept:,} more invalid events of this request were not kept (the "
                f"first {MAX_DEAD_LETTERS_PER_REQUEST} are, with their reasons)",
                payload=None,
                received_at=received_at,
            )
        )
    dead_letters.keep(source, rows=failures, counted=not_kept, at=received_at)
    result.dropped = sum(dropped.values())
    door_filters = door.filters()
    for index, count in dropped.items():
        door_filters[index].record_dropped(source=source, day=received_at.date(), count=count)
    if result.accepted and kick:
        kick_processing(source.workspace_id)
    return result


def unreadable_request_record(source: SourceInfo, reason: str, message: str, raw: bytes) -> None:
    """Keep a sample of a request we could not read, so the debugger can show it (within
    the source's daily dead-letter quota, like invalid events)."""
    now = timezone.now()
    sample = FailedEvent(
        workspace_id=source.workspace_id,
        source_id=source.source_id,
        reason=reason,
        message=message,
        payload=None,
        raw=raw[:RAW_SAMPLE_BYTES].decode("utf-8", errors="replace").replace("\x00", ""),
        received_at=now,
    )
    dead_letters.keep(source, rows=[sample], counted=0, at=now)


def _message_id_of(raw: Any) -> str:
    """The messageId a dead letter is listed by (a label: a NUL, which Postgres cannot store,
    is shown escaped; the payload keeps the value as sent)."""
    if isinstance(raw, dict):
        value = raw.get("messageId")
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value).replace("\x00", "\\x00")[:255]
    return ""


T = TypeVar("T")


def _door(
    source: SourceInfo, items: list[T], identifiers: list[door.Identifiers], dropped: dict[int, int]
) -> list[T]:
    """`items` without those a door filter refuses (by their identifiers); adds what each
    filter dropped to `dropped`."""
    for index, door_filter in enumerate(door.filters()):
        blocked = door_filter.blocked(workspace_id=source.workspace_id, events=identifiers)
        if not any(blocked):
            continue
        dropped[index] = dropped.get(index, 0) + sum(blocked)
        items = [item for item, no in zip(items, blocked, strict=True) if not no]
        identifiers = [ids for ids, no in zip(identifiers, blocked, strict=True) if not no]
    return items


def _event_identifiers(e: NormalizedEvent) -> door.Identifiers:
    return event_identifiers(
        user_id=e.user_id,
        anonymous_id=e.anonymous_id,
        previous_id=e.previous_id,
        traits=e.traits,
        context=e.context,
    )


def _raw_identifiers(payload: Any) -> list[tuple[str, str]]:
    """Best-effort identifiers of an event that failed validation (any field may be of the
    wrong type)."""
    if not isinstance(payload, dict):
        return []

    def text(value: Any) -> str | None:
        return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None

    context: dict[str, Any] = payload.get("context") or {}
    context = context if isinstance(context, dict) else {}
    traits: dict[str, Any] = payload.get("traits") or context.get("traits") or {}
    traits = traits if isinstance(traits, dict) else {}
    try:
        return event_identifiers(
            user_id=text(payload.get("userId")),
            anonymous_id=text(payload.get("anonymousId")),
            previous_id=text(payload.get("previousId")),
            traits=traits,
            context=context,
        )
    except (TypeError, ValueError):
        return []


def kick_processing(workspace_id: int) -> None:
    """Ask a worker to process the queue now. Losing this message only delays work: the
    periodic sweeper finds the same rows."""
    from profiles.tasks import process_pending_events

    try:
        process_pending_events.apply_async(kwargs={"workspace_id": workspace_id}, retry=False)
    except Exception:  # noqa: BLE001 - the broker being down must not fail an ingest
        logger.warning("could not enqueue processing task; the sweeper will pick it up")
