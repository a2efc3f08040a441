"""Writing a batch: every accepted event of a request in ONE statement that inserts the
events, skips messageIds already stored (dedup) and enqueues the new ones for processing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from django.db import connection

from profiles.collector.normalize import NormalizedEvent

_INSERT = """
WITH rows AS (
    SELECT * FROM unnest(
        %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
        %s::text[], %s::timestamptz[], %s::timestamptz[], %s::timestamptz[], %s::timestamptz[],
        %s::text[], %s::text[], %s::text[], %s::text[], %s::text[]
    ) AS r(message_id, type, event, name, user_id, anonymous_id, group_id, previous_id,
           "timestamp", original_timestamp, sent_at, received_at,
           properties, traits, context, integrations, extra)
), inserted AS (
    INSERT INTO profiles_event (
        workspace_id, source_id, message_id, type, event, name, user_id, anonymous_id,
        group_id, previous_id, "timestamp", original_timestamp, sent_at, received_at,
        properties, traits, context, integrations, extra
    )
    SELECT %s, %s, message_id, type, event, name, user_id, anonymous_id, group_id,
           previous_id, "timestamp", original_timestamp, sent_at, received_at,
           properties::jsonb, traits::jsonb, context::jsonb, integrations::jsonb, extra::jsonb
    FROM rows
    ON CONFLICT (workspace_id, message_id) DO NOTHING
    RETURNING id
), queued AS (
    INSERT INTO profiles_pendingevent (event_id, workspace_id, enqueued_at)
    SELECT id, %s, now() FROM inserted
)
SELECT count(*) FROM inserted
"""


def _json(value: dict[str, Any]) -> str:
    # NUL cannot be stored in jsonb text; orjson escapes it as \u0000 which Postgres rejects,
    # so strip it from the serialized form.
    text = orjson.dumps(value).decode()
    return text.replace("\\u0000", "") if "\\u0000" in text else text


def insert_events(*, workspace_id: int, source_id: int, events: Sequence[NormalizedEvent]) -> int:
    """Insert and enqueue; returns how many were new (the rest were duplicates)."""
    if not events:
        return 0
    columns: list[list[Any]] = [[] for _ in range(17)]
    for e in events:
        for index, value in enumerate(
            (
                e.message_id,
                e.type,
                e.event,
                e.name,
                e.user_id,
                e.anonymous_id,
                e.group_id,
                e.previous_id,
                e.timestamp,
                e.original_timestamp,
                e.sent_at,
                e.received_at,
                _json(e.properties),
                _json(e.traits),
                _json(e.context),
                _json(e.integrations),
                _json(e.extra),
            )
        ):
            columns[index].append(value)
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, [*columns, workspace_id, source_id, workspace_id])
        row = cursor.fetchone()
    return int(row[0]) if row else 0
