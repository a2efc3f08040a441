# ruff: noqa: S608 - SQL from constants and placeholders only
"""The per-profile decision record: everything the decision API reads about one profile, in
one row, so a decision is one primary-key read.

Who keeps it current:
- the pipeline stage (after segments and activation): the profiles a batch touched — their
  traits and counters — and the batch's `Offer Viewed` (impressions, for frequency caps) and
  `Experiment Viewed` events (exposures);
- the computed-values hook: refresh jobs and model scoring;
- the merge and split hooks;
- the decision API itself, for a live profile without a record (built on the spot).
Segment memberships and consent decisions are read beside the record in the decision's one
statement (they also change outside the pipeline). A record never holds more than the profile
does: privacy deletion removes it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from django.db import connection, transaction

from profiles.pipeline.stages import Batch

OFFER_VIEWED = "Offer Viewed"
EXPERIMENT_VIEWED = "Experiment Viewed"
CAP_TIMES_KEPT = 100  # impression times kept per offer: caps per day or week go up to this
CHUNK = 5_000

_BUILD = """
INSERT INTO activation_decisionrecord AS r
    (profile_id, workspace_id, traits, computed, columns, exposures, caps, built_at)
SELECT p.id, p.workspace_id, p.traits, p.computed - '_updated',
       jsonb_build_object(
           'first_seen', p.first_seen, 'last_seen', p.last_seen,
           'event_count', p.event_count, 'order_count', p.order_count,
           'revenue', p.revenue, 'first_order_at', p.first_order_at,
           'last_order_at', p.last_order_at),
       COALESCE((SELECT jsonb_object_agg(x.experiment_id::text, x.variant)
                 FROM activation_exposure x WHERE x.profile_id = p.id), '{}'),
       '{}', now()
FROM profiles_profile p
WHERE p.id = ANY(%(ids)s::bigint[]) AND p.merged_into_id IS NULL
ON CONFLICT (profile_id) DO UPDATE SET
    traits = EXCLUDED.traits, computed = EXCLUDED.computed, columns = EXCLUDED.columns,
    exposures = EXCLUDED.exposures, built_at = EXCLUDED.built_at
RETURNING r.profile_id
"""

_DROP_GONE = """
DELETE FROM activation_decisionrecord r
WHERE r.profile_id = ANY(%(ids)s::bigint[])
  AND NOT EXISTS (SELECT 1 FROM profiles_profile p
                  WHERE p.id = r.profile_id AND p.merged_into_id IS NULL)
"""


def records_build(profile_ids: Iterable[int]) -> int:
    """Rebuild the records of these profiles from their current state (impression counters
    are kept); records of profiles that are gone or merged away are dropped. Returns how
    many records were written."""
    ids = sorted({int(i) for i in profile_ids})
    written = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        with connection.cursor() as cursor:
            cursor.execute(_BUILD, {"ids": chunk})
            written += len(cursor.fetchall())
            cursor.execute(_DROP_GONE, {"ids": chunk})
    return written


def records_build_workspace(workspace_id: int, *, chunk: int = CHUNK) -> int:
    """Every live profile's record (after a deploy, or to repair): chunk by chunk, each in
    its own transaction."""
    after, written = 0, 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM profiles_profile WHERE workspace_id = %s "
                "AND merged_into_id IS NULL AND id > %s ORDER BY id LIMIT %s",
                [workspace_id, after, chunk],
            )
            ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return written
        with transaction.atomic():
            written += records_build(ids)
        after = ids[-1]


# ---- the pipeline stage ---------------------------------------------------------------------


def decisions_stage(batch: Batch) -> None:
    """Registered after segments (50) and activation (60): the touched profiles' records,
    then the batch's impressions and exposures onto them."""
    touched = list(batch.resolution.touched)
    if not touched:
        return
    records_build(touched)
    impressions: list[tuple[int, int, str, datetime]] = []  # workspace, profile, offer key, at
    exposures: list[tuple[int, int, str, str, datetime]] = []
    for profile_id, events in batch.resolution.touched.items():
        for event in events:
            if event.type != "track" or event.event not in (OFFER_VIEWED, EXPERIMENT_VIEWED):
                continue
            props = event.properties if isinstance(event.properties, dict) else {}
            workspace_id = int(event.workspace_id)
            if event.event == OFFER_VIEWED:
                key = props.get("offer_id") or props.get("offer")
                if isinstance(key, str) and key:
                    impressions.append((workspace_id, profile_id, key, event.timestamp))
            else:
                key, variant = props.get("experiment_id"), props.get("variation_id")
                if isinstance(key, str) and isinstance(variant, str | int):
                    exposures.append((workspace_id, profile_id, key, str(variant), event.timestamp))
    if exposures:
        record_exposures(exposures)
    if impressions:
        record_impressions(impressions)


def record_exposures(rows: Sequence[tuple[int, int, str, str, datetime]]) -> int:
    """`Experiment Viewed` events (ours, or from a site's own client-side assignment) as first
    exposures of the experiments they name, when the variant is one of the experiment's; a
    profile's earlier exposure stands. The records follow."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH seen AS (
                SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[],
                                     %s::timestamptz[]) AS s(ws, profile, key, variant, at)
            ), inserted AS (
                INSERT INTO activation_exposure
                    (experiment_id, workspace_id, profile_id, variant, exposed_at)
                SELECT DISTINCT ON (e.id, s.profile) e.id, s.ws, s.profile, s.variant, s.at
                FROM seen s
                JOIN activation_experiment e ON e.workspace_id = s.ws AND e.key = s.key
                WHERE e.status IN ('running', 'stopped')
                  AND e.variants @> jsonb_build_array(jsonb_build_object('key', s.variant))
                ORDER BY e.id, s.profile, s.at
                ON CONFLICT (experiment_id, profile_id) DO NOTHING
                RETURNING profile_id, experiment_id, variant
            )
            UPDATE activation_decisionrecord r
            SET exposures = r.exposures || i.added
            FROM (SELECT profile_id, jsonb_object_agg(experiment_id::text, variant) AS added
                  FROM inserted GROUP BY profile_id) i
            WHERE r.profile_id = i.profile_id
            """,
            [
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] for r in rows],
                [r[3] for r in rows],
                [r[4] for r in rows],
            ],
        )
        return cursor.rowcount


def record_impressions(rows: Sequence[tuple[int, int, str, datetime]]) -> int:
    """`Offer Viewed` impressions onto the records' counters: per offer the total and the
    latest CAP_TIMES_KEPT times (caps per day and week count those). Each event is counted
    once: the collector stored it once (messageId) and the pipeline processes it once."""
    by_workspace: dict[int, set[str]] = defaultdict(set)
    for workspace_id, _p, key, _at in rows:
        by_workspace[workspace_id].add(key)
    offer_ids: dict[tuple[int, str], int] = {}
    with connection.cursor() as cursor:
        for workspace_id, keys in by_workspace.items():
            cursor.execute(
                "SELECT key, id FROM activation_offer WHERE workspace_id = %s AND key = ANY(%s)",
                [workspace_id, sorted(keys)],
            )
            for key, offer_id in cursor.fetchall():
                offer_ids[(workspace_id, key)] = offer_id
    per_profile: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for workspace_id, profile_id, key, at in rows:
        offer_id = offer_ids.get((workspace_id, key))
        if offer_id is not None:
            per_profile[profile_id].append((offer_id, at.timestamp()))
    if not per_profile:
        return 0
    ids = sorted(per_profile)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT profile_id, caps FROM activation_decisionrecord "
            "WHERE profile_id = ANY(%s) ORDER BY profile_id FOR UPDATE",
            [ids],
        )
        current = {pid: _json(caps) for pid, caps in cursor.fetchall()}
        updated_ids, updated_caps = [], []
        for profile_id in ids:
            if profile_id not in current:
                continue
            caps = current[profile_id]
            for offer_id, seen_at in per_profile[profile_id]:
                entry = caps.setdefault(str(offer_id), {"n": 0, "t": []})
                entry["n"] = int(entry.get("n", 0)) + 1
                entry["t"] = sorted([*entry.get("t", []), round(seen_at, 3)])[-CAP_TIMES_KEPT:]
            updated_ids.append(profile_id)
            updated_caps.append(orjson.dumps(caps).decode())
        cursor.execute(
            "UPDATE activation_decisionrecord r SET caps = u.caps::jsonb "
            "FROM unnest(%s::bigint[], %s::text[]) AS u(id, caps) WHERE r.profile_id = u.id",
            [updated_ids, updated_caps],
        )
    return sum(len(per_profile[p]) for p in updated_ids)


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, str | bytes):
        value = orjson.loads(value)
    return dict(value or {})


# ---- hooks and the sweep --------------------------------------------------------------------


def on_values_changed(workspace_id: int, keys: frozenset[str], profile_ids: Sequence[int]) -> None:
    """Computed-values hook: refresh jobs and model scoring changed these profiles."""
    records_build(profile_ids)


def on_merge(workspace_id: int, winner_id: int, loser_id: int) -> None:
    """The loser's record goes (its impressions count for the survivor); the survivor's is
    rebuilt with the batch that merged them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT caps FROM activation_decisionrecord WHERE profile_id = %s", [loser_id]
        )
        row = cursor.fetchone()
        cursor.execute("DELETE FROM activation_decisionrecord WHERE profile_id = %s", [loser_id])
    if row is None:
        return
    lost = _json(row[0])
    records_build([winner_id])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT caps FROM activation_decisionrecord WHERE profile_id = %s FOR UPDATE",
            [winner_id],
        )
        found = cursor.fetchone()
        if found is None:
            return
        caps = _json(found[0])
        for offer, entry in lost.items():
            mine = caps.setdefault(offer, {"n": 0, "t": []})
            mine["n"] = int(mine.get("n", 0)) + int(entry.get("n", 0))
            mine["t"] = sorted([*mine.get("t", []), *entry.get("t", [])])[-CAP_TIMES_KEPT:]
        cursor.execute(
            "UPDATE activation_decisionrecord SET caps = %s::jsonb WHERE profile_id = %s",
            [orjson.dumps(caps).decode(), winner_id],
        )


def on_split(workspace_id: int, survivor_id: int, restored_id: int) -> None:
    records_build([survivor_id, restored_id])
