# ruff: noqa: S608 - SQL from constants and placeholders only
"""The audience-sync planner: turns what changed into deliveries, as deltas.

A sync keeps, per profile, what it has sent (`SyncMember.sent_*`) and what the destination
acknowledged (`acked_*`). A run computes each candidate profile's desired state — a live
member of the segment, allowed by consent for the destination's purpose, with at least one
usable identifier: its identifier digests and mapped fields — and writes one delivery per
profile whose desired state differs from what was sent: an upsert with the identifiers
added and removed (and the fields, in mirror mode), or a removal. Nothing differs, nothing
is sent.

- A delta run's candidates are the profiles named since its cursors: membership changes of
  the segment (the segments app's outbox), consent decisions for the purpose, and profiles
  marked dirty by the pipeline stage and the merge/split hooks (traits and identifiers).
- An initial or full run's candidates are every member and every profile the sync holds; a
  full resync compares with the acknowledged state (the destination's truth) for profiles
  with nothing on the way, so it repairs dead letters; a second one finds nothing to do.

Deliveries and the new sent state are written in one transaction per chunk, with the
cursors advanced in the last one: a run that dies is re-run from its cursors and finds the
chunks already planned unchanged (nothing is sent twice)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone

from activation import connectors
from activation.models import RunKind, Sync, SyncRun
from activation.syncs import mapping as mappings
from activation.syncs.mapping import json_object
from consent.enforcement import consent_allowed_profiles

logger = logging.getLogger(__name__)

PLAN_LOCK_NAMESPACE = 7402
CHUNK = 5_000


@dataclass(slots=True)
class Counts:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped_consent: int = 0
    skipped_no_identifier: int = 0
    deliveries: int = 0
    destinations: set[int] = field(default_factory=set)


_PROFILES = """
SELECT c.id, p.id IS NOT NULL AND p.merged_into_id IS NULL AS live, p.traits,
       EXISTS (SELECT 1 FROM segments_membership m WHERE m.segment_id = %(segment)s
               AND m.profile_id = c.id AND m.exited_at IS NULL) AS member,
       ARRAY(SELECT i.type || chr(9) || i.value FROM profiles_identity i
             WHERE i.profile_id = c.id ORDER BY i.id) AS identities
FROM unnest(%(ids)s::bigint[]) AS c(id)
LEFT JOIN profiles_profile p ON p.id = c.id AND p.workspace_id = %(ws)s
"""

_MEMBERS = """
SELECT m.profile_id, m.sent_identifiers, m.sent_fields_hash, m.acked_identifiers,
       m.acked_fields_hash,
       EXISTS (SELECT 1 FROM activation_delivery d WHERE d.destination_id = %(dest)s
               AND d.profile_id = m.profile_id AND d.sync_id = %(sync)s
               AND d.status IN ('pending', 'sending')) AS in_flight
FROM activation_syncmember m WHERE m.sync_id = %(sync)s AND m.profile_id = ANY(%(ids)s)
"""

_INSERT_DELIVERIES = """
INSERT INTO activation_delivery (workspace_id, destination_id, kind, key, profile_id, sync_id,
    run_id, payload, status, attempts, created_at, next_attempt_at, reason, error)
SELECT %(ws)s, %(dest)s, r.kind, gen_random_uuid(), r.profile_id, %(sync)s, %(run)s, r.payload,
       'pending', 0, clock_timestamp(), clock_timestamp(), '', ''
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(kind text, profile_id bigint, payload jsonb)
"""

_UPSERT_MEMBERS = """
INSERT INTO activation_syncmember (sync_id, profile_id, sent_identifiers, sent_fields_hash,
    acked_identifiers, acked_fields_hash, updated_at)
SELECT %(sync)s, r.profile_id, ARRAY(SELECT jsonb_array_elements_text(r.state)), r.fields_hash,
       '{}', '', now()
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(profile_id bigint, state jsonb, fields_hash text)
ON CONFLICT (sync_id, profile_id) DO UPDATE
SET sent_identifiers = EXCLUDED.sent_identifiers, sent_fields_hash = EXCLUDED.sent_fields_hash,
    updated_at = now()
"""


def plan(sync_id: int, *, kind: str = RunKind.DELTA) -> SyncRun | None:
    """Plan one run of a sync. Returns the run (None when another run of the sync is being
    planned right now, or when a delta found nothing to look at)."""
    sync = Sync.objects.select_related("destination", "segment").filter(pk=sync_id).first()
    if sync is None or not sync.enabled:
        return None
    if not sync.initialised and kind == RunKind.DELTA:
        kind = RunKind.INITIAL
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [PLAN_LOCK_NAMESPACE, sync_id])
        if not cursor.fetchone()[0]:
            return None
    try:
        sync.refresh_from_db()
        return _plan_locked(sync, kind)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [PLAN_LOCK_NAMESPACE, sync_id])


def _plan_locked(sync: Sync, kind: str) -> SyncRun | None:
    connector = connectors.get(sync.destination.kind)
    rule = mappings.parse(sync.mapping, connector)
    cursors = _cursor_heads(sync)
    counts = Counts()
    run: SyncRun | None = None
    if kind == RunKind.DELTA:
        candidates = _delta_candidates(sync, cursors)
        if not candidates:
            _advance(sync, cursors, kind)
            return None
        run = SyncRun.objects.create(sync=sync, kind=kind)
        with transaction.atomic():
            _plan_chunk(sync, rule, connector, candidates, run, counts, repair=False)
            _advance(sync, cursors, kind)
    else:
        run = SyncRun.objects.create(sync=sync, kind=kind)
        for chunk in _all_candidates(sync):
            with transaction.atomic():
                _plan_chunk(sync, rule, connector, chunk, run, counts, repair=kind == RunKind.FULL)
        with transaction.atomic():
            _advance(sync, cursors, kind)
    SyncRun.objects.filter(pk=run.pk).update(
        finished_at=timezone.now(),
        added=counts.added,
        updated=counts.updated,
        removed=counts.removed,
        unchanged=counts.unchanged,
        skipped_consent=counts.skipped_consent,
        skipped_no_identifier=counts.skipped_no_identifier,
    )
    run.refresh_from_db()
    if counts.deliveries:
        from activation import tasks

        destination_id = sync.destination_id
        transaction.on_commit(lambda: tasks.kick(destination_id))
    return run


def _cursor_heads(sync: Sync) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(max(id), 0) FROM segments_membershipchange WHERE workspace_id = %s",
            [sync.workspace_id],
        )
        change = cursor.fetchone()[0]
        cursor.execute(
            "SELECT COALESCE(max(id), 0) FROM consent_consentrecord WHERE workspace_id = %s",
            [sync.workspace_id],
        )
        consent = cursor.fetchone()[0]
        cursor.execute(
            "SELECT COALESCE(max(id), 0) FROM activation_syncdirty WHERE sync_id = %s", [sync.pk]
        )
        dirty = cursor.fetchone()[0]
    return {"change": change, "consent": consent, "dirty": dirty}


def _delta_candidates(sync: Sync, heads: dict[str, Any]) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT profile_id FROM segments_membershipchange "
            "WHERE workspace_id = %s AND segment_id = %s AND id > %s AND id <= %s",
            [sync.workspace_id, sync.segment_id, sync.change_cursor, heads["change"]],
        )
        ids = {r[0] for r in cursor.fetchall()}
        cursor.execute(
            "SELECT DISTINCT r.profile_id FROM consent_consentrecord r "
            "WHERE r.workspace_id = %s AND r.purpose = %s AND r.id > %s AND r.id <= %s",
            [sync.workspace_id, sync.destination.purpose, sync.consent_cursor, heads["consent"]],
        )
        ids |= {r[0] for r in cursor.fetchall()}
        cursor.execute(
            "SELECT profile_id FROM activation_syncdirty WHERE sync_id = %s AND id <= %s",
            [sync.pk, heads["dirty"]],
        )
        ids |= {r[0] for r in cursor.fetchall()}
    return sorted(ids)


def _all_candidates(sync: Sync) -> Iterator[list[int]]:
    """Every current member, then every profile the sync holds that is not one, in chunks."""
    last = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT profile_id FROM segments_membership WHERE segment_id = %s "
                "AND exited_at IS NULL AND profile_id > %s ORDER BY profile_id LIMIT %s",
                [sync.segment_id, last, CHUNK],
            )
            chunk = [r[0] for r in cursor.fetchall()]
        if not chunk:
            break
        last = chunk[-1]
        yield chunk
    last = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT s.profile_id FROM activation_syncmember s WHERE s.sync_id = %s "
                "AND s.profile_id > %s AND NOT EXISTS (SELECT 1 FROM segments_membership m "
                "WHERE m.segment_id = %s AND m.profile_id = s.profile_id AND m.exited_at IS NULL)"
                " ORDER BY s.profile_id LIMIT %s",
                [sync.pk, last, sync.segment_id, CHUNK],
            )
            chunk = [r[0] for r in cursor.fetchall()]
        if not chunk:
            break
        last = chunk[-1]
        yield chunk


def _advance(sync: Sync, heads: dict[str, Any], kind: str) -> None:
    now = timezone.now()
    updates: dict[str, Any] = {
        "change_cursor": heads["change"],
        "consent_cursor": heads["consent"],
        "last_run_at": now,
        "updated_at": now,
    }
    if kind != RunKind.DELTA:
        updates["initialised"] = True
        updates["resync_requested"] = False
    Sync.objects.filter(pk=sync.pk).update(**updates)
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM activation_syncdirty WHERE sync_id = %s AND id <= %s",
            [sync.pk, heads["dirty"]],
        )


def _plan_chunk(
    sync: Sync,
    rule: mappings.Mapping,
    connector: Any,
    ids: list[int],
    run: SyncRun,
    counts: Counts,
    *,
    repair: bool,
) -> None:
    for start in range(0, len(ids), CHUNK):
        _plan_ids(sync, rule, connector, ids[start : start + CHUNK], run, counts, repair=repair)


def _plan_ids(
    sync: Sync,
    rule: mappings.Mapping,
    connector: Any,
    ids: list[int],
    run: SyncRun,
    counts: Counts,
    *,
    repair: bool,
) -> None:
    params: dict[str, Any] = {"ids": ids, "segment": sync.segment_id, "ws": sync.workspace_id}
    with connection.cursor() as cursor:
        cursor.execute(_PROFILES, params)
        profiles = cursor.fetchall()
        cursor.execute(_MEMBERS, {"ids": ids, "sync": sync.pk, "dest": sync.destination_id})
        held = {r[0]: r for r in cursor.fetchall()}
    members = [row[0] for row in profiles if row[1] and row[3]]
    allowed = consent_allowed_profiles(
        workspace_id=sync.workspace_id, purpose=sync.destination.purpose, profile_ids=members
    )
    deliveries: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    audience = {"id": sync.segment_id, "key": sync.segment.key, "name": sync.segment.name}
    mirror = sync.mode == "mirror"
    for profile_id, live, traits, member, identities in profiles:
        desired_ids: dict[str, list[str]] = {}
        fields: dict[str, Any] = {}
        if live and member:
            if profile_id not in allowed:
                counts.skipped_consent += 1
            else:
                pairs = [tuple(x.split("\t", 1)) for x in identities]
                desired_ids, fields = rule.desired(connector, pairs, json_object(traits))  # type: ignore[arg-type]
                if not desired_ids:
                    counts.skipped_no_identifier += 1
        state = set(mappings.flat(desired_ids))
        f_hash = mappings.fields_hash(fields) if mirror else ""
        row = held.get(profile_id)
        if row is None:
            base, base_hash = set(), ""
        elif repair and not row[5]:
            base, base_hash = set(row[3]), row[4]
        else:
            base, base_hash = set(row[1]), row[2]
        if not state:
            if not base:
                continue
            deliveries.append(
                {
                    "kind": "remove",
                    "profile_id": profile_id,
                    "payload": {
                        "sync": sync.pk,
                        "audience": audience,
                        "op": "remove",
                        "identifiers": {},
                        "added": {},
                        "removed": mappings.unflat(base),
                        "fields": {},
                        "fields_hash": "",
                        "state": [],
                    },
                }
            )
            states.append({"profile_id": profile_id, "state": [], "fields_hash": ""})
            counts.removed += 1
            continue
        added, removed = state - base, base - state
        if not added and not removed and f_hash == base_hash:
            counts.unchanged += 1
            if row is not None and (set(row[1]) != state or row[2] != f_hash):
                states.append(  # a repair found the destination right: so is our record now
                    {"profile_id": profile_id, "state": sorted(state), "fields_hash": f_hash}
                )
            continue
        deliveries.append(
            {
                "kind": "upsert",
                "profile_id": profile_id,
                "payload": {
                    "sync": sync.pk,
                    "audience": audience,
                    "op": "upsert",
                    "identifiers": desired_ids,
                    "added": mappings.unflat(added),
                    "removed": mappings.unflat(removed),
                    "fields": fields,
                    "fields_hash": f_hash,
                    "state": sorted(state),
                },
            }
        )
        states.append({"profile_id": profile_id, "state": sorted(state), "fields_hash": f_hash})
        if base:
            counts.updated += 1
        else:
            counts.added += 1
    with connection.cursor() as cursor:
        if states:
            cursor.execute(
                _UPSERT_MEMBERS, {"sync": sync.pk, "rows": orjson.dumps(states).decode()}
            )
        if not deliveries:
            return
        cursor.execute(
            _INSERT_DELIVERIES,
            {
                "ws": sync.workspace_id,
                "dest": sync.destination_id,
                "sync": sync.pk,
                "run": run.pk,
                "rows": orjson.dumps(deliveries).decode(),
            },
        )
    counts.deliveries += len(deliveries)
