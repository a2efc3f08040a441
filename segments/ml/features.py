# ruff: noqa: S608 - SQL from constants and placeholders only
"""The one feature definition every model reads: a row per profile **as of** a moment, in
set-based SQL over the narrow per-profile events table (profiles_profileevent) and the
profiles' traits.

Point in time: only events with `timestamp <= as_of` are read, so a model trained on
`as_of = T − 2N` never sees what happened after it (segments/tests/test_ml_features.py
proves it). Traits are read as they are now (the platform keeps no history of them); a
model uses only the traits its configuration names.

Consent: profiles that may not be used for the workspace's ML purpose (setting
`ml_purpose`, default `analytics`) are left out, through `consent.enforcement` — the one
rule. Profiles without any event before `as_of` have no row.

Rows are fetched with a server-side cursor into preallocated float32 arrays, a chunk at a
time, so a million profiles take about 100 MB whatever the number of events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from django.db import connection, transaction

from cdp.db import analytic_settings
from cdp.models import Workspace
from consent.enforcement import consent_sql
from profiles.coercion import numeric_sql

DEFAULT_PURPOSE = "analytics"
FETCH = 20_000
SESSION_GAP_MINUTES = 30

# the behavioural features, in column order, with what each measures
BASE_FEATURES: dict[str, str] = {
    "recency_days": "days since the last event",
    "tenure_days": "days since the first event",
    "events": "events",
    "sessions": f"visits (events {SESSION_GAP_MINUTES} min or more apart start a new one)",
    "orders": "purchases",
    "order_recency_days": "days since the last purchase (tenure when none)",
    "revenue_sum": "money spent",
    "revenue_avg": "average order value",
    "revenue_max": "largest order",
    "purchase_gap_days": "mean days between purchases (tenure when fewer than two)",
    "active_days_7": "active days in the last 7",
    "active_days_30": "active days in the last 30",
    "active_days_90": "active days in the last 90",
    "distinct_products": "distinct products seen or bought",
    "distinct_categories": "distinct categories seen or bought",
    "share_page": "share of events that are web page views",
    "share_screen": "share of events that are app screen views",
    "share_track": "share of events that are tracked actions",
}
# counts and money: heavy right tails, read through log1p by models that standardise
SKEWED = frozenset(
    {
        "events",
        "sessions",
        "orders",
        "revenue_sum",
        "revenue_avg",
        "revenue_max",
        "distinct_products",
        "distinct_categories",
    }
)


@dataclass(frozen=True)
class FeatureSpec:
    """What a model's features are made of: the purchase event and its money property, and
    the profile traits to add (numeric ones as they are, categorical ones one-hot over the
    values `categories` lists — fixed at training, so scoring builds the same columns)."""

    purchase_event: str = "Order Completed"
    revenue_property: str = "revenue"
    numeric_traits: tuple[str, ...] = ()
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FeatureSpec:
        return cls(
            purchase_event=str(config.get("purchase_event") or "Order Completed"),
            revenue_property=str(config.get("revenue_property") or "revenue"),
            numeric_traits=tuple(config.get("numeric_traits") or ()),
            categories={k: tuple(v) for k, v in (config.get("categories") or {}).items()},
        )

    def as_config(self) -> dict[str, Any]:
        return {
            "purchase_event": self.purchase_event,
            "revenue_property": self.revenue_property,
            "numeric_traits": list(self.numeric_traits),
            "categories": {k: list(v) for k, v in self.categories.items()},
        }

    @property
    def names(self) -> list[str]:
        names = list(BASE_FEATURES)
        names += [f"trait:{t}" for t in self.numeric_traits]
        names += [f"trait:{t}={v}" for t, values in self.categories.items() for v in values]
        return names


@dataclass
class Features:
    """One row per profile (ids ascending), float32; NaN where a trait is missing."""

    profile_ids: np.ndarray
    X: np.ndarray
    names: list[str]
    as_of: datetime

    def __len__(self) -> int:
        return len(self.profile_ids)

    def column(self, name: str) -> np.ndarray:
        return self.X[:, self.names.index(name)]


def ml_purpose(workspace: Workspace) -> str:
    """The consent purpose a profile must allow to be trained on and scored."""
    return str((workspace.settings or {}).get("ml_purpose") or DEFAULT_PURPOSE)


def _query(
    workspace: Workspace, spec: FeatureSpec, as_of: datetime, profile_ids: Sequence[int] | None
) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {
        "ws": workspace.pk,
        "as_of": as_of,
        "purchase": spec.purchase_event,
        "revenue_key": spec.revenue_property,
        "gap": f"{SESSION_GAP_MINUTES} minutes",
    }

    def bind(value: object) -> str:
        name = f"b{len(params)}"
        params[name] = value
        return f"%({name})s"

    allowed = consent_sql(
        profile_column="p.id", workspace_id=workspace.pk, purpose=ml_purpose(workspace), param=bind
    )
    revenue = numeric_sql("(pe.properties -> %(revenue_key)s)", bind)
    given = ""
    if profile_ids is not None:
        params["ids"] = sorted(set(profile_ids))
        given = "AND pe.profile_id = ANY(%(ids)s::bigint[])"
    trait_columns = []
    for name in spec.numeric_traits:
        value = numeric_sql(f"(p.traits -> {bind(name)})", bind)
        trait_columns.append(f"COALESCE({value}::float8, 'NaN'::float8)")
    for name, values in spec.categories.items():
        for value in values:
            trait_columns.append(
                f"(CASE WHEN p.traits ->> {bind(name)} = {bind(value)} THEN 1 ELSE 0 END)::float8"
            )
    traits = "".join(f", {c}" for c in trait_columns)
    day = "86400.0"
    sql = f"""
WITH products AS (
    SELECT pe.profile_id, pe.properties ->> 'product_id' AS product,
           pe.properties ->> 'category' AS category
    FROM profiles_profileevent pe
    WHERE pe.workspace_id = %(ws)s AND pe.timestamp <= %(as_of)s {given}
      AND pe.properties ? 'product_id'
    UNION ALL
    SELECT pe.profile_id, item ->> 'product_id', item ->> 'category'
    FROM profiles_profileevent pe,
         jsonb_array_elements(CASE WHEN jsonb_typeof(pe.properties -> 'products') = 'array'
                                   THEN pe.properties -> 'products' ELSE '[]' END) AS item
    WHERE pe.workspace_id = %(ws)s AND pe.timestamp <= %(as_of)s {given}
      AND pe.type = 'track' AND pe.event = %(purchase)s
), catalogue AS (
    SELECT profile_id, count(DISTINCT product) AS products, count(DISTINCT category) AS categories
    FROM products GROUP BY profile_id
), per_profile AS (
    SELECT profile_id,
        extract(epoch FROM %(as_of)s - max(timestamp)) / {day} AS recency_days,
        extract(epoch FROM %(as_of)s - min(timestamp)) / {day} AS tenure_days,
        count(*) AS events,
        count(*) FILTER (WHERE gap IS NULL OR gap >= %(gap)s::interval) AS sessions,
        count(*) FILTER (WHERE purchase) AS orders,
        extract(epoch FROM %(as_of)s - COALESCE(max(timestamp) FILTER (WHERE purchase),
                                                min(timestamp))) / {day} AS order_recency_days,
        COALESCE(sum(revenue), 0) AS revenue_sum,
        COALESCE(avg(revenue), 0) AS revenue_avg,
        COALESCE(max(revenue), 0) AS revenue_max,
        CASE WHEN count(*) FILTER (WHERE purchase) > 1 THEN
            extract(epoch FROM max(timestamp) FILTER (WHERE purchase)
                               - min(timestamp) FILTER (WHERE purchase)) / {day}
            / (count(*) FILTER (WHERE purchase) - 1)
        ELSE extract(epoch FROM %(as_of)s - min(timestamp)) / {day} END AS purchase_gap_days,
        count(DISTINCT date_trunc('day', timestamp))
            FILTER (WHERE timestamp > %(as_of)s - interval '7 days') AS active_days_7,
        count(DISTINCT date_trunc('day', timestamp))
            FILTER (WHERE timestamp > %(as_of)s - interval '30 days') AS active_days_30,
        count(DISTINCT date_trunc('day', timestamp))
            FILTER (WHERE timestamp > %(as_of)s - interval '90 days') AS active_days_90,
        avg((type = 'page')::int) AS share_page,
        avg((type = 'screen')::int) AS share_screen,
        avg((type = 'track')::int) AS share_track
    FROM (
        -- one pass over the events in (profile, time) order: the window's order serves
        -- the grouping too (no second sort, no materialised copy)
        SELECT pe.profile_id, pe.timestamp, pe.type,
               (pe.type = 'track' AND pe.event = %(purchase)s) AS purchase,
               CASE WHEN pe.type = 'track' AND pe.event = %(purchase)s THEN {revenue} END
                   AS revenue,
               pe.timestamp - lag(pe.timestamp) OVER (
                   PARTITION BY pe.profile_id ORDER BY pe.timestamp, pe.event_id) AS gap
        FROM profiles_profileevent pe
        WHERE pe.workspace_id = %(ws)s AND pe.timestamp <= %(as_of)s {given}
    ) AS ev
    GROUP BY profile_id
)
SELECT f.profile_id, f.recency_days::float8, f.tenure_days::float8, f.events::float8,
       f.sessions::float8, f.orders::float8, f.order_recency_days::float8,
       f.revenue_sum::float8, f.revenue_avg::float8, f.revenue_max::float8,
       f.purchase_gap_days::float8, f.active_days_7::float8, f.active_days_30::float8,
       f.active_days_90::float8, COALESCE(c.products, 0)::float8,
       COALESCE(c.categories, 0)::float8, f.share_page::float8, f.share_screen::float8,
       f.share_track::float8{traits}
FROM per_profile f
JOIN profiles_profile p ON p.id = f.profile_id AND p.merged_into_id IS NULL
                        AND p.workspace_id = %(ws)s
LEFT JOIN catalogue c ON c.profile_id = f.profile_id
WHERE {allowed}
ORDER BY f.profile_id
"""
    return sql, params


def build_features(
    *,
    workspace: Workspace,
    spec: FeatureSpec,
    as_of: datetime,
    profile_ids: Sequence[int] | None = None,
) -> Features:
    """The feature rows of the workspace's live, consenting profiles with events up to
    `as_of` (or only of `profile_ids`)."""
    sql, params = _query(workspace, spec, as_of, profile_ids)
    names = spec.names
    ids = np.empty(0, dtype=np.int64)
    X = np.empty((0, len(names)), dtype=np.float32)
    filled = 0
    connection.ensure_connection()
    with (
        transaction.atomic(),
        connection.connection.cursor(name="ml_features", binary=True) as cursor,
    ):
        with connection.cursor() as settings:
            # the per-profile sorts and distinct counts of millions of events, in memory
            analytic_settings(settings, hash_joins_only=False)
        cursor.itersize = FETCH
        cursor.execute(sql, params)
        while True:
            rows = cursor.fetchmany(FETCH)
            if not rows:
                break
            if filled + len(rows) > len(ids):
                size = max(len(ids) * 2, filled + len(rows), FETCH)
                ids = np.resize(ids, size)
                X = np.resize(X, (size, len(names)))
            # every column is float8 (NaN for a missing trait): numpy converts in C
            block = np.array(rows, dtype=np.float64)
            ids[filled : filled + len(rows)] = block[:, 0]
            X[filled : filled + len(rows)] = block[:, 1:]
            filled += len(rows)
    return Features(profile_ids=ids[:filled].copy(), X=X[:filled].copy(), names=names, as_of=as_of)


def performers(*, workspace: Workspace, event: str, start: datetime, end: datetime) -> set[int]:
    """The live profiles that performed `event` in (start, end] (a label's window)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT pe.profile_id FROM profiles_profileevent pe "
            "JOIN profiles_profile p ON p.id = pe.profile_id AND p.merged_into_id IS NULL "
            "WHERE pe.workspace_id = %s AND pe.type = 'track' AND pe.event = %s "
            "AND pe.timestamp > %s AND pe.timestamp <= %s",
            [workspace.pk, event, start, end],
        )
        return {row[0] for row in cursor.fetchall()}


def latest_event_time(workspace: Workspace) -> datetime | None:
    """The time of the workspace's newest event (the end of the data, T)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT max(timestamp) FROM profiles_profileevent WHERE workspace_id = %s",
            [workspace.pk],
        )
        row = cursor.fetchone()
    return row[0] if row else None
