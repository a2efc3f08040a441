# ruff: noqa: S608 - SQL from constants and placeholders only
"""What a delivery's final outcome changes beyond its own row, in the same transaction:
an audience delivery that landed becomes the sync's acknowledged state for that profile; a
deletion notice's outcome is written on the privacy request's receipt."""

from __future__ import annotations

from typing import Any

from django.db import connection

from activation.delivery.bulk import Row
from activation.models import Delivery, DeliveryKind
from activation.syncs.mapping import flat

# the latest landed change per (sync, profile) among rows of their own
_LANDED = """
SELECT DISTINCT ON (sync_id, profile_id) sync_id, profile_id, payload AS item
FROM activation_delivery
WHERE id = ANY(%(ids)s) AND kind IN ('upsert', 'remove') AND sync_id IS NOT NULL
ORDER BY sync_id, profile_id, id DESC
"""

# a bulk row's items, acknowledged from what the engine holds in memory (each member once
# per row; the identifiers flattened as the planner records them, joined by chr(31))
_ACK_BULK = """
UPDATE activation_syncmember m
SET acked_identifiers = CASE WHEN v.ids = '' THEN '{}'::text[]
                             ELSE string_to_array(v.ids, chr(31)) END,
    acked_fields_hash = v.fields_hash, acked_at = now()
FROM unnest(%(profiles)s::bigint[], %(ids)s::text[], %(hashes)s::text[])
     AS v(profile_id, ids, fields_hash)
WHERE m.sync_id = %(sync)s AND m.profile_id = v.profile_id
"""

_FORGET_BULK = """
DELETE FROM activation_syncmember
WHERE sync_id = %(sync)s AND profile_id = ANY(%(profiles)s::bigint[])
  AND sent_identifiers = '{}' AND acked_identifiers = '{}'
"""

_ACK = f"""
UPDATE activation_syncmember m
SET acked_identifiers = ARRAY(
        SELECT e.name || ':' || v FROM jsonb_each(d.item->'identifiers') AS e(name, vals),
        jsonb_array_elements_text(e.vals) AS v ORDER BY 1),
    acked_fields_hash = COALESCE(d.item->>'fields_hash', ''), acked_at = now()
FROM ({_LANDED}) d
WHERE m.sync_id = d.sync_id AND m.profile_id = d.profile_id
"""

# a member whose removal landed and who has nothing else on the way is forgotten
_FORGET = f"""
DELETE FROM activation_syncmember m
USING ({_LANDED}) d
WHERE d.item->>'op' = 'remove' AND m.sync_id = d.sync_id AND m.profile_id = d.profile_id
  AND m.sent_identifiers = '{{}}' AND m.acked_identifiers = '{{}}'
"""


def delivered(ids: list[int], *, rows: list[Row] | None = None) -> None:
    """`rows`: the claimed rows among `ids` (a bulk row's items are acknowledged from them;
    its members' later rows in the same request are acknowledged after, so they win)."""
    known = {row.id: row.kind for row in rows or []}
    # every delivered row is a bulk row we hold (a sync's first run): nothing per profile to
    # acknowledge, no deletion notice among them — two statements and a query saved a batch
    only_bulk = all(known.get(i) == DeliveryKind.BULK for i in ids)
    with connection.cursor() as cursor:
        for row in rows or []:
            if row.kind == DeliveryKind.BULK and row.sync_id is not None:
                _ack_bulk(cursor, row)
        if not only_bulk:
            cursor.execute(_ACK, {"ids": ids})
            cursor.execute(_FORGET, {"ids": ids})
    if not only_bulk:
        _privacy_outcomes(ids)


def _ack_bulk(cursor: Any, row: Row) -> None:
    items = row.payload.get("items") or []
    if not items:
        return
    profiles = [int(i["profile_id"]) for i in items]
    params = {
        "sync": row.sync_id,
        "profiles": profiles,
        "ids": [chr(31).join(flat(i.get("identifiers") or {})) for i in items],
        "hashes": [str(i.get("fields_hash") or "") for i in items],
    }
    cursor.execute(_ACK_BULK, params)
    removed = [p for p, i in zip(profiles, items, strict=True) if i.get("op") == "remove"]
    if removed:
        cursor.execute(_FORGET_BULK, {"sync": row.sync_id, "profiles": removed})


def dead(ids: list[int]) -> None:
    """Dead-lettered or cancelled: the acknowledged state stays what the destination
    confirmed (a full resync repairs from it); a deletion notice's failure is reported."""
    _privacy_outcomes(ids)


def _privacy_outcomes(ids: list[int]) -> None:
    rows = list(
        Delivery.objects.filter(id__in=ids, kind=DeliveryKind.DELETION)
        .exclude(privacy_request_id=None)
        .select_related("destination")
    )
    if not rows:
        return
    from consent.privacy import privacy_propagation_record

    for row in rows:
        privacy_propagation_record(
            request_id=int(row.privacy_request_id or 0),
            destination=f"{row.destination.name} (#{row.destination_id})",
            delivered=row.status == "delivered",
            detail={"delivery": row.pk, "status": row.status, "reason": row.reason},
            error=row.error,
        )
