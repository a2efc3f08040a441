# ruff: noqa: S608 - SQL from constants and placeholders only
"""Identity and computed-value changes seen by the syncs (merge/split and values hooks,
registered by ActivationConfig and run in the writer's transaction). A merge moves what
every sync holds for the loser onto the survivor — the union of both, since the destination
holds both — and marks the survivor for the next delta, which then adds only digests the
survivor newly has and removes only those it no longer holds. A split marks both profiles.
Values written outside the pipeline mark the profiles for the syncs whose fields read them."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection

from cdp.paths import PathError, split_path

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


def _mapped_keys(mapping: dict[str, object]) -> set[str]:
    """The top-level keys a sync's field mapping reads (`address.city` reads `address`)."""
    keys = set()
    fields = mapping.get("fields") if isinstance(mapping, dict) else None
    for entry in fields if isinstance(fields, list) else []:
        trait = entry.get("trait") if isinstance(entry, dict) else None
        if isinstance(trait, str) and trait.strip():
            try:
                keys.add(split_path(trait.strip())[0])
            except PathError:
                continue
    return keys


def on_values_changed(workspace_id: int, keys: frozenset[str], profile_ids: Sequence[int]) -> None:
    """Computed values (a trait's refresh, a model's scores) changed outside the pipeline:
    the mirror-mode syncs whose fields read them send those profiles at their next delta."""
    from activation.models import Sync, SyncMode

    syncs = [
        sync.pk
        for sync in Sync.objects.filter(
            workspace_id=workspace_id, enabled=True, mode=SyncMode.MIRROR
        )
        if _mapped_keys(sync.mapping) & keys
    ]
    if not syncs:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO activation_syncdirty (sync_id, profile_id) "
            "SELECT s.id, p.id FROM unnest(%s::bigint[]) AS s(id), unnest(%s::bigint[]) AS p(id) "
            "ON CONFLICT (sync_id, profile_id) DO NOTHING",
            [syncs, list(profile_ids)],
        )
