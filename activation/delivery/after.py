# ruff: noqa: S608 - SQL from constants and placeholders only
"""What a delivery's final outcome changes beyond its own row, in the same transaction:
an audience delivery that landed becomes the sync's acknowledged state for that profile; a
deletion notice's outcome is written on the privacy request's receipt."""

from __future__ import annotations

from django.db import connection

from activation.models import Delivery, DeliveryKind

# the latest landed change per (sync, profile): rows of their own and items of bulk rows
_LANDED = """
SELECT DISTINCT ON (sync_id, profile_id) sync_id, profile_id, item
FROM (
    SELECT x.sync_id, x.profile_id, x.payload AS item, x.id, 0::bigint AS n
    FROM activation_delivery x
    WHERE x.id = ANY(%(ids)s) AND x.kind IN ('upsert', 'remove') AND x.sync_id IS NOT NULL
    UNION ALL
    SELECT b.sync_id, (i.item->>'profile_id')::bigint, i.item, b.id, i.n
    FROM activation_delivery b,
         jsonb_array_elements(b.payload->'items') WITH ORDINALITY AS i(item, n)
    WHERE b.id = ANY(%(ids)s) AND b.kind = 'bulk' AND b.sync_id IS NOT NULL
) u
ORDER BY sync_id, profile_id, id DESC, n DESC
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


def delivered(ids: list[int]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_ACK, {"ids": ids})
        cursor.execute(_FORGET, {"ids": ids})
    _privacy_outcomes(ids)


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
