# ruff: noqa: S608 - SQL from constants and placeholders only
"""The pipeline stage that forwards events (registered by ActivationConfig at order 60, after
identity, consent and segments): each enabled stream of an event's source that accepts the
event gets a delivery row, written in the batch's transaction — consent for the stream
destination's purpose checked per event (`consent.enforcement`), the profile id as the
ordering key. The stage also marks synced members whose traits or identifiers the batch
changed, for their syncs' next delta."""

from __future__ import annotations

import time
from collections import defaultdict
from functools import partial
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone

from activation.models import Stream, Sync
from activation.streams.rules import Filters, Transform, parse_filters, parse_transform
from consent.enforcement import consent_allowed_profiles
from profiles.pipeline.stages import Batch

_CACHE_SECONDS = 2.0
_cache: dict[str, Any] = {"at": 0.0, "streams": {}, "syncs": {}}


def _config() -> tuple[dict[int, list[tuple[Stream, Filters, Transform]]], dict[int, list[int]]]:
    """Enabled streams by source and enabled syncs' segments by workspace, cached briefly
    (a new stream takes effect within two seconds)."""
    if time.monotonic() - _cache["at"] > _CACHE_SECONDS:
        streams: dict[int, list[tuple[Stream, Filters, Transform]]] = defaultdict(list)
        for stream in Stream.objects.filter(enabled=True, destination__enabled=True).select_related(
            "destination"
        ):
            streams[stream.source_id].append(
                (stream, parse_filters(stream.filters), parse_transform(stream.transform))
            )
        syncs: dict[int, list[int]] = defaultdict(list)
        for sync_id, workspace_id in Sync.objects.filter(enabled=True).values_list(
            "id", "workspace_id"
        ):
            syncs[workspace_id].append(sync_id)
        _cache.update(at=time.monotonic(), streams=dict(streams), syncs=dict(syncs))
    return _cache["streams"], _cache["syncs"]


def forget_config() -> None:
    _cache["at"] = 0.0


def forward_stage(batch: Batch) -> None:
    streams, syncs = _config()
    if streams:
        _forward(batch, streams)
    if syncs:
        _mark_dirty(batch, syncs)


def _event_payload(event: Any, profile_id: int | None, transform: Transform) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": event.type,
        "messageId": event.message_id,
        "timestamp": event.timestamp.isoformat(),
        "receivedAt": event.received_at.isoformat(),
        "profileId": profile_id,
        "userId": event.user_id,
        "anonymousId": event.anonymous_id,
        "context": event.context or {},
    }
    if event.event:
        payload["event"] = event.event
    if event.name:
        payload["name"] = event.name
    if event.group_id:
        payload["groupId"] = event.group_id
    if event.previous_id:
        payload["previousId"] = event.previous_id
    if event.properties:
        payload["properties"] = transform.properties(event.properties)
    if event.traits:
        payload["traits"] = transform.traits(event.traits)
    if "user_id" in transform.hash and event.user_id:
        from activation.connectors.base import sha256_hex

        payload["userId"] = sha256_hex(event.user_id)
    return payload


def _forward(batch: Batch, streams: dict[int, list[tuple[Stream, Filters, Transform]]]) -> None:
    now = timezone.now()
    profile_of = batch.resolution.profile_of
    chosen: list[tuple[Stream, Any, int | None, Transform]] = []
    for event in batch.events:
        for stream, filters, transform in streams.get(event.source_id, ()):
            if stream.workspace_id == event.workspace_id and filters.accepts(event, now):
                chosen.append((stream, event, profile_of.get(int(event.pk)), transform))
    if not chosen:
        return
    # consent per event, for each destination purpose, one query per (workspace, purpose)
    wanted: dict[tuple[int, str], set[int]] = defaultdict(set)
    for stream, _event, profile_id, _t in chosen:
        if profile_id:
            wanted[(stream.workspace_id, stream.destination.purpose)].add(profile_id)
    allowed = {
        key: consent_allowed_profiles(workspace_id=key[0], purpose=key[1], profile_ids=ids)
        for key, ids in wanted.items()
    }
    rows = []
    destinations: set[int] = set()
    for stream, event, profile_id, transform in chosen:
        key = (stream.workspace_id, stream.destination.purpose)
        if not profile_id or profile_id not in allowed.get(key, set()):
            continue
        rows.append(
            {
                "ws": stream.workspace_id,
                "dest": stream.destination_id,
                "stream": stream.pk,
                "profile_id": profile_id,
                "payload": _event_payload(event, profile_id, transform),
            }
        )
        destinations.add(stream.destination_id)
    if not rows:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO activation_delivery (workspace_id, destination_id, kind, key, "
            "profile_id, stream_id, payload, status, attempts, created_at, next_attempt_at, "
            "reason, error) SELECT r.ws, r.dest, 'event', gen_random_uuid(), r.profile_id, "
            "r.stream, r.payload, 'pending', 0, "
            "clock_timestamp(), clock_timestamp(), '', '' "
            "FROM jsonb_to_recordset(%s::jsonb) AS r(ws bigint, dest bigint, stream bigint, "
            "profile_id bigint, payload jsonb)",
            [orjson.dumps(rows).decode()],
        )
    from activation import tasks

    for destination_id in sorted(destinations):
        transaction.on_commit(partial(tasks.kick, destination_id))


def _mark_dirty(batch: Batch, syncs: dict[int, list[int]]) -> None:
    touched = sorted(batch.resolution.touched)
    if not touched:
        return
    sync_ids = sorted({s for ids in syncs.values() for s in ids})
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO activation_syncdirty (sync_id, profile_id) "
            "SELECT s.id, m.profile_id FROM activation_sync s "
            "JOIN segments_membership m ON m.segment_id = s.segment_id AND m.exited_at IS NULL "
            "WHERE s.id = ANY(%(syncs)s) AND m.profile_id = ANY(%(p)s) "
            "UNION SELECT sm.sync_id, sm.profile_id FROM activation_syncmember sm "
            "WHERE sm.sync_id = ANY(%(syncs)s) AND sm.profile_id = ANY(%(p)s) "
            "ON CONFLICT (sync_id, profile_id) DO NOTHING",
            {"syncs": sync_ids, "p": touched},
        )
