# ruff: noqa: S608 - SQL from constants and placeholders only
"""Activation's privacy handler (registered in ActivationConfig.ready()).

Export: the audiences the person was synced to and what was delivered about them.
Deletion, in the deletion's transaction (before the profiles go): every destination that
holds or received the person gets a deletion delivery — the profile ids and the SHA-256
digests of the identifiers it was sent (clear values are hashed: the notice leaves no
readable trace) — then every other delivery about the person (their payloads carry
personal data), what the syncs held and their dirty marks are deleted, so no replay or
resync can send them again. The request's receipt lists each destination as queued; the
delivery's outcome updates it (activation.delivery.after)."""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from typing import Any

import orjson
from django.db import connection

from activation.connectors.base import sha256_hex
from activation.models import Destination
from activation.syncs.mapping import unflat
from profiles import privacy
from profiles.privacy import Subject

_EXPORT_SECTIONS = {
    "audience_syncs": "SELECT json_build_object('sync', s.name, 'segment_id', s.segment_id, "
    "'destination', d.name, 'sent_at', m.updated_at, 'acknowledged_at', m.acked_at) "
    "FROM activation_syncmember m JOIN activation_sync s ON s.id = m.sync_id "
    "JOIN activation_destination d ON d.id = s.destination_id "
    "WHERE s.workspace_id = %(ws)s AND m.profile_id = ANY(%(p)s) ORDER BY m.id",
    "deliveries": "SELECT o FROM (SELECT x.id, 0::bigint AS n, json_build_object("
    "'destination', d.name, 'kind', x.kind, 'status', x.status, 'created_at', x.created_at, "
    "'payload', x.payload) AS o "
    "FROM activation_delivery x JOIN activation_destination d ON d.id = x.destination_id "
    "WHERE x.workspace_id = %(ws)s AND x.profile_id = ANY(%(p)s) "
    "UNION ALL SELECT x.id, i.n, json_build_object('destination', d.name, "
    "'kind', i.item->>'op', 'status', x.status, 'created_at', x.created_at, "
    "'payload', (x.payload - 'items') || i.item) "
    "FROM activation_delivery x JOIN activation_destination d ON d.id = x.destination_id, "
    "jsonb_array_elements(x.payload->'items') WITH ORDINALITY AS i(item, n) "
    "WHERE x.workspace_id = %(ws)s AND x.kind = 'bulk' AND x.profile_ids && %(p)s::bigint[] "
    "AND (i.item->>'profile_id')::bigint = ANY(%(p)s)) r ORDER BY r.id, r.n",
}

_EXPORT_SECTIONS["experiments"] = (
    "SELECT json_build_object('experiment', e.key, 'name', e.name, 'variant', x.variant, "
    "'exposed_at', x.exposed_at) FROM activation_exposure x "
    "JOIN activation_experiment e ON e.id = x.experiment_id "
    "WHERE x.workspace_id = %(ws)s AND x.profile_id = ANY(%(p)s) ORDER BY x.id"
)

_EXPORT_SECTIONS["decision_record"] = (
    "SELECT json_build_object('traits', r.traits, 'computed', r.computed, "
    "'experiments', r.exposures, 'offer_impressions', r.caps, 'built_at', r.built_at) "
    "FROM activation_decisionrecord r "
    "WHERE r.workspace_id = %(ws)s AND r.profile_id = ANY(%(p)s) ORDER BY r.profile_id"
)

_HOLDERS = """
SELECT s.destination_id, m.sent_identifiers || m.acked_identifiers
FROM activation_syncmember m JOIN activation_sync s ON s.id = m.sync_id
WHERE s.workspace_id = %(ws)s AND m.profile_id = ANY(%(p)s)
UNION ALL
SELECT DISTINCT x.destination_id, '{}'::text[] FROM activation_delivery x
WHERE x.workspace_id = %(ws)s AND x.profile_id = ANY(%(p)s)
  AND (x.status IN ('delivered', 'sending') OR x.attempts > 0)
UNION ALL
SELECT DISTINCT b.destination_id, '{}'::text[] FROM activation_delivery b
WHERE b.workspace_id = %(ws)s AND b.kind = 'bulk' AND b.profile_ids && %(p)s::bigint[]
  AND (b.status IN ('delivered', 'sending') OR b.attempts > 0)
"""

# the person's items leave the bulk rows that carry them (a pending row left empty is
# cancelled: nothing remains to send)
_BULK_ITEMS = """
UPDATE activation_delivery x
SET profile_ids = k.ids, payload = jsonb_set(x.payload, '{items}', k.items),
    status = CASE WHEN cardinality(k.ids) = 0 AND x.status = 'pending' THEN 'cancelled'
                  ELSE x.status END,
    reason = CASE WHEN cardinality(k.ids) = 0 AND x.status = 'pending' THEN 'deleted'
                  ELSE x.reason END,
    finished_at = CASE WHEN cardinality(k.ids) = 0 AND x.status = 'pending'
                       THEN clock_timestamp() ELSE x.finished_at END
FROM (
    SELECT b.id,
           ARRAY(SELECT u FROM unnest(b.profile_ids) WITH ORDINALITY AS t(u, o)
                 WHERE u <> ALL(%(p)s::bigint[]) ORDER BY o) AS ids,
           COALESCE((SELECT jsonb_agg(e.item ORDER BY e.o)
                     FROM jsonb_array_elements(b.payload->'items') WITH ORDINALITY AS e(item, o)
                     WHERE (e.item->>'profile_id')::bigint <> ALL(%(p)s::bigint[])), '[]') AS items
    FROM activation_delivery b
    WHERE b.workspace_id = %(ws)s AND b.kind = 'bulk' AND b.profile_ids && %(p)s::bigint[]
) k
WHERE x.id = k.id
"""


def _digest(entry: str) -> str:
    name, _, value = entry.partition(":")
    if name.endswith("_sha256"):
        return entry
    return f"{name}_sha256:{sha256_hex(value)}"


def export(subject: Subject) -> dict[str, list[Any]]:
    params = privacy.subject_params(subject)
    return {name: privacy.rows(sql, params) for name, sql in _EXPORT_SECTIONS.items()}


def delete(subject: Subject) -> dict[str, int]:
    params = privacy.subject_params(subject)
    if not subject.profile_ids:
        return {
            "deletion_notices": 0, "deliveries": 0, "sync_members": 0, "exposures": 0,
            "decision_records": 0,
        }  # fmt: skip
    held: dict[int, set[str]] = defaultdict(set)
    with connection.cursor() as cursor:
        cursor.execute(_HOLDERS, params)
        for destination_id, entries in cursor.fetchall():
            held[destination_id].update(_digest(e) for e in entries or [])
        counts = privacy.run_steps(
            [
                (
                    "deliveries",
                    "DELETE FROM activation_delivery WHERE workspace_id = %(ws)s "
                    "AND profile_id = ANY(%(p)s)",
                ),
                ("bulk_items", _BULK_ITEMS),
                (
                    "sync_members",
                    "DELETE FROM activation_syncmember m USING activation_sync s "
                    "WHERE s.id = m.sync_id AND s.workspace_id = %(ws)s "
                    "AND m.profile_id = ANY(%(p)s)",
                ),
                (
                    "_dirty",
                    "DELETE FROM activation_syncdirty d USING activation_sync s "
                    "WHERE s.id = d.sync_id AND s.workspace_id = %(ws)s "
                    "AND d.profile_id = ANY(%(p)s)",
                ),
                (
                    "exposures",
                    "DELETE FROM activation_exposure WHERE workspace_id = %(ws)s "
                    "AND profile_id = ANY(%(p)s)",
                ),
                (
                    "decision_records",
                    "DELETE FROM activation_decisionrecord WHERE workspace_id = %(ws)s "
                    "AND profile_id = ANY(%(p)s)",
                ),
            ],
            params,
        )
    destinations = {
        d.pk: d
        for d in Destination.objects.filter(workspace_id=subject.workspace_id, pk__in=list(held))
    }
    rows: list[dict[str, Any]] = [
        {
            "dest": destination_id,
            "payload": {
                "profile_ids": subject.profile_ids,
                "identifiers": unflat(digests),
                "request": subject.request_id,
            },
        }
        for destination_id, digests in sorted(held.items())
        if destination_id in destinations
    ]
    if rows:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO activation_delivery (workspace_id, destination_id, kind, key, "
                "profile_id, privacy_request_id, payload, status, attempts, created_at, "
                "next_attempt_at, reason, error) SELECT %s, r.dest, 'deletion', "
                "gen_random_uuid(), NULL, %s, r.payload, 'pending', 0, "
                "clock_timestamp(), clock_timestamp(), '', '' "
                "FROM jsonb_to_recordset(%s::jsonb) AS r(dest bigint, payload jsonb)",
                [subject.workspace_id, subject.request_id, orjson.dumps(rows).decode()],
            )
        if subject.request_id is not None:
            from consent.privacy import privacy_propagation_record

            for row in rows:
                destination = destinations[int(row["dest"])]
                privacy_propagation_record(
                    request_id=subject.request_id,
                    destination=f"{destination.name} (#{destination.pk})",
                    delivered=None,
                    detail={"kind": destination.kind},
                )
        from django.db import transaction

        from activation import tasks

        for row in rows:
            transaction.on_commit(partial(tasks.kick, int(row["dest"])))
    counts["deletion_notices"] = len(rows)
    return counts


def register() -> None:
    privacy.register_handler("activation", export=export, delete=delete)
