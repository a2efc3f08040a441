# ruff: noqa: S608 - SQL from constants and placeholders only
"""Identity changes seen by the syncs (merge/split hooks, registered by ActivationConfig and
run in the merge's transaction). A merge moves what every sync holds for the loser onto the
survivor — the union of both, since the destination holds both — and marks the survivor for
the next delta, which then adds only digests the survivor newly has and removes only those
it no longer holds. A split marks both profiles."""

from __future__ import annotations

from django.db import connection

_MOVE = """
INSERT INTO activation_syncmember (sync_id, profile_id, sent_identifiers, sent_fields_hash,
    acked_identifiers, acked_fields_hash, acked_at, updated_at)
SELECT l.sync_id, %(winner)s, l.sent_identifiers, l.sent_fields_hash, l.acked_identifiers,
       l.acked_fields_hash, l.acked_at, now()
FROM activation_syncmember l WHERE l.profile_id = %(loser)s
ON CONFLICT (sync_id, profile_id) DO UPDATE SET
    sent_identifiers = ARRAY(SELECT DISTINCT unnest(activation_syncmember.sent_identifiers
        || EXCLUDED.sent_identifiers) ORDER BY 1),
    acked_identifiers = ARRAY(SELECT DISTINCT unnest(activation_syncmember.acked_identifiers
        || EXCLUDED.acked_identifiers) ORDER BY 1),
    updated_at = now()
"""

_MARK = """
INSERT INTO activation_syncdirty (sync_id, profile_id)
SELECT s.id, p.id FROM activation_sync s, unnest(%(profiles)s::bigint[]) AS p(id)
WHERE s.workspace_id = %(ws)s AND s.enabled
ON CONFLICT (sync_id, profile_id) DO NOTHING
"""


def on_merge(workspace_id: int, winner_id: int, loser_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_MOVE, {"winner": winner_id, "loser": loser_id})
        cursor.execute("DELETE FROM activation_syncmember WHERE profile_id = %s", [loser_id])
        cursor.execute("DELETE FROM activation_syncdirty WHERE profile_id = %s", [loser_id])
        cursor.execute(_MARK, {"ws": workspace_id, "profiles": [winner_id]})


def on_split(workspace_id: int, survivor_id: int, restored_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_MARK, {"ws": workspace_id, "profiles": [survivor_id, restored_id]})
