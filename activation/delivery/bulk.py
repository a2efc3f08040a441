"""Bulk deliveries: an initial or full sync run's members, one request's worth per outbox row.

A run that sends a whole audience writes one `bulk` delivery per destination batch instead of
one delivery per member (1,000 members: one row inserted, claimed and finished instead of a
thousand). Its payload is the sync's head (`sync`, `audience`) and `items`, each a member's
audience delivery as a per-profile row would carry it plus its `profile_id`; `profile_ids`
lists the members in item order (a GIN index finds the rows that carry a profile).

The engine hands each item to the connector as its own `Item`: its key derives from the bulk
row's key and the profile (stable across retries), its id is a synthetic one above every real
delivery id. Whatever must be handled per member leaves the bulk row as a per-profile row of
its own: items refused for consent (cancelled), items the destination rejected and, when the
whole row is dead-lettered, every item (dead letters, replayable and superseded one by one,
as any other)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.db import connection
from django.utils import timezone

from activation.connectors.base import Item
from activation.models import Delivery, DeliveryKind, DeliveryStatus

ITEM_BASE = 1 << 62  # synthetic item ids: above any outbox id
ITEM_SPAN = 1 << 16  # items per bulk row at most (connectors take up to 10,000)


@dataclass(slots=True)
class Row:
    """A claimed outbox row (the engine's view)."""

    id: int
    key: str
    kind: str
    profile_id: int | None
    payload: dict[str, Any]
    attempts: int
    created_at: Any
    sync_id: int | None
    run_id: int | None = None
    workspace_id: int = 0
    destination_id: int = 0


def item_id(row_id: int, index: int) -> int:
    return ITEM_BASE + row_id * ITEM_SPAN + index


def item_key(row_key: str, profile_id: int) -> str:
    """UUIDv5 of the profile id in the row key's namespace (uuid.uuid5's result, made
    without its objects: a batch makes a thousand)."""
    name = _key_bytes(row_key) + str(profile_id).encode()
    digest = bytearray(hashlib.sha1(name, usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@lru_cache(maxsize=256)
def _key_bytes(row_key: str) -> bytes:
    return uuid.UUID(row_key).bytes


def item_payload(head: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """A bulk item as the per-profile delivery of the same change carries it."""
    payload = dict(head)
    payload.update((k, v) for k, v in entry.items() if k != "profile_id")
    return payload


def head_of(row: Row) -> dict[str, Any]:
    return {k: v for k, v in row.payload.items() if k != "items"}


def expand(rows: list[Row]) -> tuple[list[Item], dict[int, tuple[Row, int]]]:
    """The connector's items, in outbox order, and where each bulk item comes from."""
    items: list[Item] = []
    origin: dict[int, tuple[Row, int]] = {}
    for row in rows:
        if row.kind != DeliveryKind.BULK:
            items.append(Item(row.id, row.key, row.kind, row.profile_id, row.payload, row.id))
            continue
        head = head_of(row)
        for n, entry in enumerate(row.payload.get("items") or []):
            iid = item_id(row.id, n)
            profile_id = int(entry["profile_id"])
            items.append(
                Item(
                    iid,
                    item_key(row.key, profile_id),
                    str(entry.get("op") or "upsert"),
                    profile_id,
                    item_payload(head, entry),
                    row.id,
                )
            )
            origin[iid] = (row, n)
    return items, origin


def split(row: Row, indexes: set[int] | None, *, status: str, reason: str, error: str) -> list[int]:
    """Take items out of a bulk row as per-profile rows with `status` (all of them when
    `indexes` is None: the bulk row is then cancelled as `split`). Returns the new rows' ids."""
    entries = list(row.payload.get("items") or [])
    chosen = set(range(len(entries))) if indexes is None else indexes
    if not chosen:
        return []
    head = head_of(row)
    now = timezone.now()
    final = status in (DeliveryStatus.DEAD, DeliveryStatus.CANCELLED, DeliveryStatus.DELIVERED)
    created = Delivery.objects.bulk_create(
        [
            Delivery(
                workspace_id=row.workspace_id,
                destination_id=row.destination_id,
                kind=str(entries[n].get("op") or "upsert"),
                key=uuid.UUID(item_key(row.key, int(entries[n]["profile_id"]))),
                profile_id=int(entries[n]["profile_id"]),
                sync_id=row.sync_id,
                run_id=row.run_id,
                batch_id=row.id,
                payload=item_payload(head, entries[n]),
                status=status,
                attempts=row.attempts,
                created_at=row.created_at,
                next_attempt_at=now,
                last_attempt_at=now,
                finished_at=now if final else None,
                reason=reason[:64],
                error=f"{error} (sent in audience batch #{row.id})"[:2000],
            )
            for n in sorted(chosen)
        ]
    )
    keep = [e for n, e in enumerate(entries) if n not in chosen]
    row.payload = {**head, "items": keep}
    if keep:
        Delivery.objects.filter(pk=row.id).update(
            payload=row.payload, profile_ids=[int(e["profile_id"]) for e in keep]
        )
    else:
        Delivery.objects.filter(pk=row.id).update(
            status=DeliveryStatus.CANCELLED,
            finished_at=now,
            lease_until=None,
            reason="split",
            error=f"{error}: its {len(entries)} item(s) went on as deliveries of their own",
        )
    return [d.pk for d in created]


def open_profiles(destination_id: int, ids: list[int]) -> set[int]:
    """Which of `ids` have a delivery to the destination still on its way (a row of their
    own or an item of a bulk row)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT d.profile_id FROM unnest(%(ids)s::bigint[]) AS c(id) "
            "JOIN activation_delivery d ON d.destination_id = %(dest)s AND d.profile_id = c.id "
            "AND d.status IN ('pending', 'sending') "
            "UNION SELECT u.id FROM activation_delivery b, unnest(b.profile_ids) AS u(id) "
            "WHERE EXISTS (SELECT 1 FROM activation_delivery x WHERE x.destination_id = %(dest)s "
            "AND x.kind = 'bulk' AND x.status IN ('pending', 'sending')) "
            "AND b.kind = 'bulk' AND b.profile_ids && %(ids)s::bigint[] "
            "AND b.destination_id = %(dest)s AND b.status IN ('pending', 'sending') "
            "AND u.id = ANY(%(ids)s::bigint[])",
            {"ids": ids, "dest": destination_id},
        )
        return {r[0] for r in cursor.fetchall()}


def destination_quiet(destination_id: int) -> bool:
    """Nothing on its way to the destination at all."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT NOT EXISTS (SELECT 1 FROM activation_delivery WHERE destination_id = %s "
            "AND status IN ('pending', 'sending'))",
            [destination_id],
        )
        return bool(cursor.fetchone()[0])
