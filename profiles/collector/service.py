"""The collector's write path: normalise a request's events, dead-letter the bad ones, drop
suppressed identifiers, store the rest in one statement and hand them to processing."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection

from consent import suppression
from profiles.collector import gate, storage
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
RAW_SAMPLE_BYTES = 64 * 1024


@dataclass(slots=True)
class IngestResult:
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    suppressed: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_response(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "success": True,
            # suppressed events are answered like accepted ones: the caller learns nothing
            "accepted": self.accepted + self.suppressed,
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
    suppressions: int | None,
    kick: bool,
) -> IngestResult:
    """Store what can be stored; every event ends stored, dead-lettered, deduplicated or
    dropped as suppressed, and the result says how many of each."""
    result = IngestResult(received=len(raw_events))
    meta = batch_meta(body, received_at)
    good: list[NormalizedEvent] = []
    position: dict[int, int] = {}  # id(normalised event) -> its index in the request
    failures: list[FailedEvent] = []
    replay_context: dict[str, Any] | None = None

    def reject(index: int, reason: str, message: str) -> None:
        nonlocal replay_context
        if replay_context is None:
            replay_context = _batch_context_for_replay(meta, body, route_type)
        raw = raw_events[index]
        failures.append(
            FailedEvent(
                workspace_id=source.workspace_id,
                source_id=source.source_id,
                reason=reason,
                message=message,
                payload=storable_json(raw),
                batch_context=replay_context,
                message_id=_message_id_of(raw),
                received_at=received_at,
            )
        )
        if len(result.errors) < MAX_ERRORS_REPORTED:
            result.errors.append({"index": index, "reason": reason, "message": message})

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
    result.failed = len(failures)

    if good and suppressions != 0:
        good, result.suppressed = _drop_suppressed(source, good, suppressions)

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
        result.failed = len(failures)
    if failures and suppressions != 0:
        # a malformed event of a suppressed person is not kept either (dead letters hold
        # the payload as sent, identifiers included)
        failures, dropped = _drop_suppressed_failures(source, failures, suppressions)
        result.suppressed += dropped
        result.failed = len(failures)
    if failures:
        FailedEvent.objects.bulk_create(failures)
    if result.suppressed:
        _count_suppressed(source, received_at, result.suppressed)
    if result.accepted and kick:
        kick_processing(source.workspace_id)
    return result


def _message_id_of(raw: Any) -> str:
    if isinstance(raw, dict):
        value = raw.get("messageId")
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)[:255]
    return ""


def _drop_suppressed(
    source: SourceInfo, events: list[NormalizedEvent], known_count: int | None
) -> tuple[list[NormalizedEvent], int]:
    if known_count is None:
        known_count = suppression.suppression_count(workspace_id=source.workspace_id)
        gate.remember_suppression_count(source.workspace_id, known_count)
        if known_count == 0:
            return events, 0
    digests_per_event: list[list[str]] = []
    for e in events:
        ids = event_identifiers(
            user_id=e.user_id,
            anonymous_id=e.anonymous_id,
            previous_id=e.previous_id,
            traits=e.traits,
            context=e.context,
        )
        digests_per_event.append(
            [suppression.identifier_digest(source.workspace_id, t, v) for t, v in ids]
        )
    hits = suppression.suppressed_digests(
        workspace_id=source.workspace_id, digests=(d for ds in digests_per_event for d in ds)
    )
    if not hits:
        return events, 0
    kept = [e for e, ds in zip(events, digests_per_event, strict=True) if not hits.intersection(ds)]
    return kept, len(events) - len(kept)


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


def _drop_suppressed_failures(
    source: SourceInfo, failures: list[FailedEvent], known_count: int | None
) -> tuple[list[FailedEvent], int]:
    if known_count is None:
        known_count = suppression.suppression_count(workspace_id=source.workspace_id)
        if known_count == 0:
            return failures, 0
    digests_per_event = [
        [
            suppression.identifier_digest(source.workspace_id, t, v)
            for t, v in _raw_identifiers(f.payload)
        ]
        for f in failures
    ]
    hits = suppression.suppressed_digests(
        workspace_id=source.workspace_id, digests=(d for ds in digests_per_event for d in ds)
    )
    if not hits:
        return failures, 0
    kept = [
        f for f, ds in zip(failures, digests_per_event, strict=True) if not hits.intersection(ds)
    ]
    return kept, len(failures) - len(kept)


def _count_suppressed(source: SourceInfo, received_at: datetime, dropped: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO consent_suppressiondropcount (workspace_id, source_id, day, dropped)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (workspace_id, source_id, day)"
            " DO UPDATE SET dropped = consent_suppressiondropcount.dropped + EXCLUDED.dropped",
            [source.workspace_id, source.source_id, received_at.date(), dropped],
        )


def kick_processing(workspace_id: int) -> None:
    """Ask a worker to process the queue now. Losing this message only delays work: the
    periodic sweeper finds the same rows."""
    from profiles.tasks import process_pending_events

    try:
        process_pending_events.apply_async(kwargs={"workspace_id": workspace_id}, retry=False)
    except Exception:  # noqa: BLE001 - the broker being down must not fail an ingest
        logger.warning("could not enqueue processing task; the sweeper will pick it up")
