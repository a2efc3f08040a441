# ruff: noqa: S608 - SQL from constants and placeholders only
"""The item catalogue and the interactions recommendations learn from, read from the
narrow per-profile events table in set-based SQL.

An interaction is an event naming a product: `product_id` in the properties (Product
Viewed, Product Added, …) or in each element of a `products` array (Order Completed). Its
strength is the sum of its events' weights by event name (default: viewed 1, added to cart
3, purchased 5), read through log2(1 + w). Consent: only profiles the workspace may use for
its ML purpose (`consent.enforcement`, as every model's features)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from cdp.db import analytic_settings
from cdp.models import Workspace
from consent.enforcement import consent_sql
from profiles.coercion import numeric_sql
from segments.ml import recommend
from segments.ml.features import ml_purpose
from segments.ml.models import Item

DEFAULT_WEIGHTS: dict[str, float] = {
    "Product Viewed": 1.0,
    "Product Clicked": 1.0,
    "Product Added": 3.0,
    "Product Added to Wishlist": 2.0,
    "Order Completed": 5.0,
}
DEFAULT_PURCHASE = "Order Completed"
FOLD_IN_EVENTS = 200


@dataclass(frozen=True)
class Signals:
    """Which events count, how much, and which one is a purchase."""

    weights: dict[str, float]
    purchase_event: str = DEFAULT_PURCHASE

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Signals:
        weights = config.get("weights") or DEFAULT_WEIGHTS
        return cls(
            weights={str(k): float(v) for k, v in weights.items()},
            purchase_event=str(config.get("purchase_event") or DEFAULT_PURCHASE),
        )


def _hits_sql(where: str) -> str:
    """(profile_id, item, event, timestamp, properties of the item) of events naming an item."""
    return f"""
    SELECT pe.profile_id, pe.properties ->> 'product_id' AS item, pe.event, pe.timestamp,
           pe.properties AS attrs
    FROM profiles_profileevent pe
    WHERE {where} AND pe.type = 'track' AND pe.properties ? 'product_id'
    UNION ALL
    SELECT pe.profile_id, element ->> 'product_id', pe.event, pe.timestamp, element
    FROM profiles_profileevent pe,
         jsonb_array_elements(CASE WHEN jsonb_typeof(pe.properties -> 'products') = 'array'
                                   THEN pe.properties -> 'products' ELSE '[]' END) AS element
    WHERE {where} AND pe.type = 'track' AND jsonb_typeof(element) = 'object'
    """


def refresh_catalog(*, workspace: Workspace, events: list[str]) -> int:
    """Add the items events name and update each one's name, category and price from its
    newest event — but for fields edited by hand. Returns the catalogue's size."""
    params: dict[str, Any] = {"ws": workspace.pk, "events": events, "now": timezone.now()}

    def bind(value: object) -> str:
        name = f"b{len(params)}"
        params[name] = value
        return f"%({name})s"

    price = numeric_sql("(h.attrs -> 'price')", bind)
    where = "pe.workspace_id = %(ws)s AND pe.event = ANY(%(events)s)"
    sql = f"""
WITH hits AS ({_hits_sql(where)}),
latest AS (
    SELECT DISTINCT ON (h.item) h.item,
           left(COALESCE(h.attrs ->> 'name', ''), 500) AS name,
           left(COALESCE(h.attrs ->> 'category', ''), 255) AS category,
           ({price})::float8 AS price
    FROM hits h WHERE h.item IS NOT NULL AND h.item <> '' AND length(h.item) <= 255
    ORDER BY h.item, h.timestamp DESC
), counted AS (
    SELECT item, count(*) AS n, min(timestamp) AS first_seen, max(timestamp) AS last_seen
    FROM hits WHERE item IS NOT NULL AND item <> '' AND length(item) <= 255 GROUP BY item
)
INSERT INTO segments_item AS i (workspace_id, item_id, name, category, price, available,
    attributes, edited_fields, interactions, first_seen, last_seen, updated_at)
SELECT %(ws)s, l.item, l.name, l.category, l.price, true, '{{}}'::jsonb, '[]'::jsonb, c.n,
       c.first_seen, c.last_seen, %(now)s
FROM latest l JOIN counted c USING (item)
ON CONFLICT (workspace_id, item_id) DO UPDATE SET
    name = CASE WHEN i.edited_fields ? 'name' THEN i.name ELSE EXCLUDED.name END,
    category = CASE WHEN i.edited_fields ? 'category' THEN i.category ELSE EXCLUDED.category END,
    price = CASE WHEN i.edited_fields ? 'price' THEN i.price ELSE EXCLUDED.price END,
    interactions = EXCLUDED.interactions, first_seen = EXCLUDED.first_seen,
    last_seen = EXCLUDED.last_seen, updated_at = EXCLUDED.updated_at
"""
    with transaction.atomic(), connection.cursor() as cursor:
        analytic_settings(cursor)
        cursor.execute(sql, params)
    return Item.objects.filter(workspace=workspace).count()


DEFAULT_PERSONAL_PURPOSE = "personalization"


def personal_purpose(workspace: Workspace) -> str:
    """The consent purpose a profile must allow to get recommendations from its own history
    (without it: the most popular items)."""
    return str(
        (workspace.settings or {}).get("personalization_purpose") or DEFAULT_PERSONAL_PURPOSE
    )


def interactions(
    *, workspace: Workspace, signals: Signals, as_of: datetime | None = None
) -> recommend.Interactions:
    """Every consenting live profile's interaction strength with every item (up to
    `as_of`), and whether each profile allows personalisation."""
    params: dict[str, Any] = {
        "ws": workspace.pk,
        "events": list(signals.weights),
        "weights": list(signals.weights.values()),
        "purchase": signals.purchase_event,
        "as_of": as_of or timezone.now(),
    }

    def bind(value: object) -> str:
        name = f"b{len(params)}"
        params[name] = value
        return f"%({name})s"

    allowed = consent_sql(
        profile_column="p.id", workspace_id=workspace.pk,
        purpose=ml_purpose(workspace), param=bind,
    )  # fmt: skip
    personal = consent_sql(
        profile_column="p.id", workspace_id=workspace.pk,
        purpose=personal_purpose(workspace), param=bind,
    )  # fmt: skip
    where = "pe.workspace_id = %(ws)s AND pe.event = ANY(%(events)s) AND pe.timestamp <= %(as_of)s"
    # consent is decided once per person (not once per event)
    sql = f"""
WITH people AS MATERIALIZED (
    SELECT p.id, {personal} AS personal
    FROM profiles_profile p
    WHERE p.workspace_id = %(ws)s AND p.merged_into_id IS NULL AND {allowed}
),
hits AS ({_hits_sql(where)}),
w AS (SELECT unnest(%(events)s::text[]) AS event, unnest(%(weights)s::float8[]) AS weight)
SELECT h.profile_id, h.item, sum(w.weight), bool_or(h.event = %(purchase)s),
       bool_or(people.personal)
FROM hits h
JOIN w ON w.event = h.event
JOIN people ON people.id = h.profile_id
WHERE h.item IS NOT NULL AND h.item <> ''
GROUP BY h.profile_id, h.item
"""
    people: list[int] = []
    items: list[str] = []
    strengths: list[float] = []
    bought: list[bool] = []
    allows: set[int] = set()
    with transaction.atomic(), connection.cursor() as cursor:
        analytic_settings(cursor)
        cursor.execute(sql, params)
        for profile_id, item, weight, purchased, personalised in cursor.fetchall():
            people.append(profile_id)
            items.append(item)
            strengths.append(float(weight))
            bought.append(bool(purchased))
            if personalised:
                allows.add(profile_id)
    profile_ids, rows = np.unique(np.array(people, dtype=np.int64), return_inverse=True)
    item_ids, cols = np.unique(np.array(items, dtype=object), return_inverse=True)
    shape = (len(profile_ids), len(item_ids))
    values = np.log2(1.0 + np.maximum(np.array(strengths, dtype=np.float64), 0.0))
    mask = np.array(bought, dtype=bool)
    purchased_matrix = recommend.matrix(rows[mask], cols[mask], np.ones(int(mask.sum())), shape)
    return recommend.Interactions(
        profile_ids=profile_ids,
        item_ids=[str(i) for i in item_ids.tolist()],
        X=recommend.matrix(rows, cols, values, shape),
        purchased=purchased_matrix.astype(bool),
        personal=np.fromiter((p in allows for p in profile_ids.tolist()), dtype=bool,
                             count=len(profile_ids)),
    )  # fmt: skip


def recent_items(
    *, workspace_id: int, profile_id: int, signals: Signals, limit: int = FOLD_IN_EVENTS
) -> tuple[dict[str, float], set[str]]:
    """A profile's interaction strengths over its `limit` newest item events, and the items
    it bought among them (the fold-in of a person the model was not trained on: one index
    scan of the profile's newest events)."""
    params: dict[str, Any] = {
        "ws": workspace_id,
        "profile": profile_id,
        "events": list(signals.weights),
        "limit": limit,
    }
    recent = (
        "SELECT pe.* FROM profiles_profileevent pe WHERE pe.profile_id = %(profile)s "
        "AND pe.workspace_id = %(ws)s AND pe.type = 'track' AND pe.event = ANY(%(events)s) "
        "ORDER BY pe.timestamp DESC, pe.event_id DESC LIMIT %(limit)s"
    )
    sql = f"""
SELECT pe.event, pe.properties ->> 'product_id', pe.properties -> 'products'
FROM ({recent}) pe
"""
    strengths: dict[str, float] = {}
    bought: set[str] = set()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for event, item, products in cursor.fetchall():
            found = [item] if item else []
            if isinstance(products, list):
                found += [
                    str(p["product_id"])
                    for p in products
                    if isinstance(p, dict) and p.get("product_id") not in (None, "")
                ]
            for one in found:
                strengths[one] = strengths.get(one, 0.0) + signals.weights.get(event, 0.0)
                if event == signals.purchase_event:
                    bought.add(one)
    return {k: float(np.log2(1.0 + max(v, 0.0))) for k, v in strengths.items()}, bought


def unavailable(workspace_id: int) -> set[str]:
    return set(
        Item.objects.filter(workspace_id=workspace_id, available=False).values_list(
            "item_id", flat=True
        )
    )


def attributes(workspace_id: int) -> dict[str, dict[str, Any]]:
    """item id -> {category, price} of the whole catalogue (content-based neighbours)."""
    return {
        item_id: {"category": category, "price": price}
        for item_id, category, price in Item.objects.filter(workspace_id=workspace_id)
        .values_list("item_id", "category", "price")
        .iterator(chunk_size=5_000)
    }
