"""Writing a batch: every accepted event of a request in ONE statement that records the
messageIds (skipping those already stored: the dedup), inserts the new events into their day's
partition and enqueues them for processing."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import connection

from profiles.collector.normalize import NormalizedEvent, storable_json_bytes

_INSERT = """
WITH rows AS (
    SELECT nextval('profiles_event_id_seq') AS id, r.*
    FROM unnest(
        %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
        %b::text[], %b::timestamptz[], %b::timestamptz[], %b::timestamptz[], %b::timestamptz[],
        %b::text[], %b::text[], %b::text[], %b::text[], %b::text[]
    ) AS r(message_id, type, event, name, user_id, anonymous_id, group_id, previous_id,
           "timestamp", original_timestamp, sent_at, received_at,
           properties, traits, context, integrations, extra)
), fresh AS (
    -- the permanent dedup: a messageId already stored is skipped (the request's own
    -- repeats were dropped before)
    INSERT INTO profiles_eventmessage (workspace_id, message_id, event_id, received_at)
    SELECT %b, message_id, id, received_at FROM rows
    ON CONFLICT DO NOTHING
    RETURNING event_id
), inserted AS (
    INSERT INTO profiles_event (
        id, workspace_id, source_id, message_id, type, event, name, user_id, anonymous_id,
        group_id, previous_id, "timestamp", original_timestamp, sent_at, received_at,
        properties, traits, context, integrations, extra
    )
    SELECT id, %b, %b, message_id, type, event, name, user_id, anonymous_id, group_id,
           previous_id, "timestamp", original_timestamp, sent_at, received_at,
           properties::jsonb, traits::jsonb, context::jsonb, integrations::jsonb, extra::jsonb
    FROM rows WHERE id IN (SELECT event_id FROM fresh)
    RETURNING id, anonymous_id, user_id, received_at
), queued AS (
    INSERT INTO profiles_pendingevent (event_id, workspace_id, enqueued_at, route, received_at)
    SELECT id, %b, now(), hashtext(coalesce(anonymous_id, user_id, '')) & 1023, received_at
    FROM inserted
)
SELECT count(*) FROM inserted
"""


def first_of_each_message(events: Sequence[NormalizedEvent]) -> list[NormalizedEvent]:
    """A request that repeats a messageId stores its first event only (the others are
    duplicates, like a repeat of an earlier request)."""
    if len(events) < 2:
        return list(events)
    seen: set[str] = set()
    out = []
    for event in events:
        if event.message_id not in seen:
            seen.add(event.message_id)
            out.append(event)
    return out


def _json(value: dict[str, Any]) -> str:
    return storable_json_bytes(value).decode()


@dataclass(slots=True)
class InsertResult:
    inserted: int
    rejected: list[tuple[NormalizedEvent, str]]  # refused by Postgres, with its message


def insert_events(
    *, workspace_id: int, source_id: int, events: Sequence[NormalizedEvent]
) -> InsertResult:
    """Insert and enqueue in one statement; returns how many were new (the rest were
    duplicates). Should Postgres refuse a value the checks let through, the batch is retried
    event by event so only the offending events are rejected."""
    events = first_of_each_message(events)
    if not events:
        return InsertResult(0, [])
    try:
        return InsertResult(_insert(workspace_id, source_id, events), [])
    except psycopg.DataError as exc:
        if len(events) == 1:
            return InsertResult(0, [(events[0], str(exc).splitlines()[0])])
    inserted = 0
    rejected: list[tuple[NormalizedEvent, str]] = []
    for event in events:
        try:
            inserted += _insert(workspace_id, source_id, [event])
        except psycopg.DataError as exc:
            rejected.append((event, str(exc).splitlines()[0]))
    return InsertResult(inserted, rejected)


def build_columns(events: Sequence[NormalizedEvent]) -> list[list[Any]]:
    """One list per column of the INSERT's unnest(...), in its order."""
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
    return columns


def _insert(workspace_id: int, source_id: int, events: Sequence[NormalizedEvent]) -> int:
    columns = build_columns(events)
    connection.ensure_connection()
    # Server-side, binary parameters (%b): Django's default client-side cursor would quote
    # every array element into the SQL text in Python, which costs more than the insert.
    raw = connection.connection
    params = [*columns, workspace_id, workspace_id, source_id, workspace_id]
    # In autocommit mode (the collector) the statement is its own transaction: one round trip.
    # Inside a Django atomic block (replay) a savepoint keeps a refused statement from
    # aborting the caller's transaction.
    scope = raw.transaction() if not connection.get_autocommit() else contextlib.nullcontext()
    with scope, psycopg.Cursor(raw) as cursor:
        cursor.execute(_INSERT, params)
        row = cursor.fetchone()
    return int(row[0]) if row else 0
