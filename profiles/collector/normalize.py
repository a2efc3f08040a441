"""Turning one SDK event into a stored row, per the collector contract in DESIGN.md.

Pure functions (no database): validation, null handling, batch-context merge, traits from
`traits` or `context.traits`, clock-skew-corrected timestamps, generated messageIds.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from profiles.models import FailureReason

EVENT_TYPES = ("identify", "track", "page", "screen", "group", "alias")
MAX_ID_LENGTH = 255
FUTURE_TOLERANCE = timedelta(hours=24)

# Top-level keys that become columns; everything else is kept in `extra`.
_CONSUMED = {
    "type",
    "messageId",
    "userId",
    "anonymousId",
    "groupId",
    "previousId",
    "event",
    "name",
    "timestamp",
    "originalTimestamp",
    "sentAt",
    "receivedAt",
    "properties",
    "traits",
    "context",
    "integrations",
    "writeKey",
}


_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_.]*")


class EventRejected(Exception):
    """Why one event cannot be stored: a failure reason (FailureReason) and a message that
    starts with the event's field when one is to blame (`timestamp: not a timestamp`)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def field(self) -> str | None:
        """The event field the message names, if any."""
        head, sep, _ = self.message.partition(": ")
        return head if sep and _FIELD.fullmatch(head) else None


@dataclass(slots=True)
class BatchMeta:
    """What the request carries for all its events."""

    received_at: datetime
    sent_at: datetime | None = None
    context: dict[str, Any] = field(default_factory=dict)
    integrations: dict[str, Any] = field(default_factory=dict)
    sent_at_error: str | None = None  # a batch-level sentAt that could not be parsed


@dataclass(slots=True)
class NormalizedEvent:
    message_id: str
    type: str
    event: str | None
    name: str | None
    user_id: str | None
    anonymous_id: str | None
    group_id: str | None
    previous_id: str | None
    timestamp: datetime
    original_timestamp: datetime | None
    sent_at: datetime | None
    received_at: datetime
    properties: dict[str, Any]
    traits: dict[str, Any]
    context: dict[str, Any]
    integrations: dict[str, Any]
    extra: dict[str, Any]


def parse_timestamp(value: Any, field_name: str) -> datetime | None:
    """ISO 8601 (with or without zone; naive = UTC) or epoch seconds/milliseconds."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise EventRejected(FailureReason.INVALID_TIMESTAMP, f"{field_name}: not a timestamp")
    if isinstance(value, int | float):
        seconds = value / 1000.0 if abs(value) > 1e11 else float(value)
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise EventRejected(
                FailureReason.INVALID_TIMESTAMP, f"{field_name}: {value!r} is out of range"
            ) from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise EventRejected(
                FailureReason.INVALID_TIMESTAMP,
                f"{field_name}: {value[:64]!r} is not an ISO 8601 timestamp",
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed
    raise EventRejected(
        FailureReason.INVALID_TIMESTAMP,
        f"{field_name}: expected an ISO 8601 string, got {type(value).__name__}",
    )


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # in identifiers
_NUL = re.compile(r"\x00")  # in names (which may hold a tab): Postgres cannot store it
# traits and context fields that identify a person (profiles.identifiers reads them)
_IDENTIFYING_TRAITS = ("email", "phone", "userId", "user_id", "anonymousId")


def _clean_text(text: str, path: str, refused: re.Pattern[str] = _CONTROL) -> str:
    """An identifier or name as sent, trimmed; one holding a NUL (or, for identifiers, any
    control character) is refused, never rewritten (`a\x00@b.co` must not become `a@b.co`:
    someone else)."""
    found = refused.search(text)
    if found:
        raise EventRejected(
            FailureReason.INVALID_FIELD,
            f"{path}: contains the control character U+{ord(found.group()):04X}",
        )
    return text.strip()


def _check_identifying_traits(traits: dict[str, Any], context: dict[str, Any]) -> None:
    device = context.get("device")
    fields = [
        *((f"traits.{k}", traits.get(k)) for k in _IDENTIFYING_TRAITS),
        ("context.device.id", device.get("id") if isinstance(device, dict) else None),
    ]
    for path, value in fields:
        if isinstance(value, str):
            _clean_text(value, path)


def _identifier(event: dict[str, Any], key: str) -> str | None:
    value = event.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise EventRejected(
            FailureReason.INVALID_FIELD,
            f"{key}: expected a string or number, got {type(value).__name__}",
        )
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = _clean_text(str(value), key)
    if len(text) > MAX_ID_LENGTH:
        raise EventRejected(
            FailureReason.INVALID_FIELD, f"{key}: longer than {MAX_ID_LENGTH} characters"
        )
    return text or None


def _object(event: dict[str, Any], key: str) -> dict[str, Any]:
    value = event.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EventRejected(
            FailureReason.INVALID_FIELD, f"{key}: expected an object, got {type(value).__name__}"
        )
    return value


def _merge(batch_level: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """Batch-level context/integrations under the event's own (one level deep)."""
    if not batch_level:
        return own
    merged = dict(batch_level)
    for key, value in own.items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, dict):
            merged[key] = {**base, **value}
        else:
            merged[key] = value
    return merged


def _generated_message_id(event: dict[str, Any], has_time: bool) -> str:
    # A retried request without messageIds should still dedup: derive the id from the content
    # when the event carries its own time; otherwise it cannot be told apart, use a random id.
    if has_time:
        digest = hashlib.sha256(orjson.dumps(event, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return f"cdp-{digest[:32]}"
    return f"cdp-{uuid.uuid4()}"


def normalize_event(raw: Any, meta: BatchMeta, *, forced_type: str | None) -> NormalizedEvent:
    if not isinstance(raw, dict):
        raise EventRejected(
            FailureReason.NOT_AN_OBJECT, f"expected a JSON object, got {type(raw).__name__}"
        )
    event = {key: value for key, value in raw.items() if value is not None}

    event_type = forced_type or event.get("type")
    if not isinstance(event_type, str) or event_type.strip().lower() not in EVENT_TYPES:
        shown = event_type if isinstance(event_type, str) else None
        raise EventRejected(
            FailureReason.UNKNOWN_TYPE,
            f"type: {shown!r} is not one of {', '.join(EVENT_TYPES)}"
            if shown is not None
            else f"type: missing; expected one of {', '.join(EVENT_TYPES)}",
        )
    event_type = event_type.strip().lower()

    user_id = _identifier(event, "userId")
    anonymous_id = _identifier(event, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise EventRejected(FailureReason.MISSING_IDENTITY, "neither userId nor anonymousId is set")

    name_value = event.get("event")
    event_name: str | None = None
    if event_type == "track":
        if not isinstance(name_value, str) or not name_value.strip():
            raise EventRejected(FailureReason.MISSING_FIELD, "event: a track needs an event name")
        event_name = _clean_text(name_value, "event", _NUL)
        if len(event_name) > MAX_ID_LENGTH:
            raise EventRejected(
                FailureReason.INVALID_FIELD, f"event: longer than {MAX_ID_LENGTH} characters"
            )
    group_id = _identifier(event, "groupId")
    if event_type == "group" and group_id is None:
        raise EventRejected(FailureReason.MISSING_FIELD, "groupId: a group call needs a groupId")
    previous_id = _identifier(event, "previousId")
    if event_type == "alias" and previous_id is None:
        raise EventRejected(
            FailureReason.MISSING_FIELD, "previousId: an alias call needs a previousId"
        )

    page_name = event.get("name")
    if page_name is not None and not isinstance(page_name, str):
        page_name = str(page_name)
    if page_name is not None:
        _clean_text(page_name, "name", _NUL)  # refuses a NUL; the name is kept as sent
        page_name = page_name[:MAX_ID_LENGTH]

    properties = _object(event, "properties")
    context = _merge(meta.context, _object(event, "context"))
    integrations = _merge(meta.integrations, _object(event, "integrations"))
    traits = _object(event, "traits")
    if not traits:
        context_traits = context.get("traits")
        traits = context_traits if isinstance(context_traits, dict) else {}
    _check_identifying_traits(traits, context)

    if meta.sent_at_error:
        raise EventRejected(FailureReason.INVALID_TIMESTAMP, meta.sent_at_error)
    original = parse_timestamp(event.get("originalTimestamp"), "originalTimestamp")
    explicit = parse_timestamp(event.get("timestamp"), "timestamp")
    if original is None:
        original, explicit = explicit, None
    sent_at = parse_timestamp(event.get("sentAt"), "sentAt") or meta.sent_at
    received_at = meta.received_at
    extra: dict[str, Any] = {k: v for k, v in event.items() if k not in _CONSUMED}
    if original is None:
        timestamp = received_at
    elif explicit is not None:
        # RudderStack SDKs send originalTimestamp (creation) AND the caller's own `timestamp`
        # (e.g. a backfill): the caller's time is the event time, used as given.
        timestamp = explicit
    else:
        # Clock-skew correction: the device's clock may be off, but the gap between creating
        # and sending the event is measured on that same clock.
        try:
            timestamp = received_at - ((sent_at or received_at) - original)
        except OverflowError:
            raise EventRejected(
                FailureReason.INVALID_TIMESTAMP,
                "originalTimestamp: too far from sentAt to correct the device's clock "
                f"({original.isoformat()} vs {(sent_at or received_at).isoformat()})",
            ) from None
        if timestamp > received_at + FUTURE_TOLERANCE:
            extra["_cdp_warning"] = "timestamp in the future; replaced by receivedAt"
            timestamp = received_at

    message_id = _identifier(event, "messageId")
    if message_id is None:
        message_id = _generated_message_id(raw, has_time=original is not None)

    return NormalizedEvent(
        message_id=message_id,
        type=event_type,
        event=event_name,
        name=page_name,
        user_id=user_id,
        anonymous_id=anonymous_id,
        group_id=group_id,
        previous_id=previous_id,
        timestamp=timestamp,
        original_timestamp=original,
        sent_at=sent_at,
        received_at=received_at,
        properties=properties,
        traits=traits,
        context=context,
        integrations=integrations,
        extra=extra,
    )


# An escaped NUL (\u0000) that is not itself an escaped backslash followed by "u0000".
_ESCAPED_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def storable_json_bytes(value: Any) -> bytes:
    """JSON for a jsonb column: Postgres refuses the NUL character, so it is dropped."""
    text = orjson.dumps(value)
    if b"\\u0000" in text:
        text = _ESCAPED_NUL.sub(rb"\1", text)
    return text


def storable_json(value: Any) -> Any:
    """The same value with NUL characters removed from its strings and keys."""
    text = orjson.dumps(value)
    if b"\\u0000" not in text:
        return value
    return orjson.loads(_ESCAPED_NUL.sub(rb"\1", text))


def event_size(raw: Any) -> int:
    return len(orjson.dumps(raw))


def now_utc() -> datetime:
    return datetime.now(tz=UTC)
