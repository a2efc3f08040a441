"""The built-in computed traits every profile has, in the order the UI lists them.

Three kinds of storage (the segment builder reads `column` or `computed_key`):
- `profile`: a Profile column maintained per event by identity resolution (always current);
- `scheduled`: a key of Profile.computed written by `builtin_traits_refresh` (hourly);
- `days_since_last_order` is both: a scheduled snapshot in Profile.computed for segments, and
  computed live from `last_order_at` when a profile is shown.

User-defined computed traits may not use any of these keys."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

PROFILE = "profile"
SCHEDULED = "scheduled"

RFM_SEGMENTS = (
    "Champions",
    "Loyal Customers",
    "Potential Loyalists",
    "New Customers",
    "Promising",
    "Need Attention",
    "About to Sleep",
    "At Risk",
    "Can't Lose Them",
    "Hibernating",
)


@dataclass(frozen=True, slots=True)
class BuiltinTrait:
    key: str
    label: str
    description: str
    type: str  # datetime | integer | number | string
    source: str  # PROFILE | SCHEDULED
    column: str | None = None  # the Profile column (source PROFILE)
    computed_key: str | None = None  # the key in Profile.computed (source SCHEDULED)
    values: tuple[str, ...] = ()  # the possible values of a string trait, for pick lists

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["values"] = list(self.values)
        return data


def _column(key: str, label: str, description: str, type_: str, column: str) -> BuiltinTrait:
    return BuiltinTrait(key, label, description, type_, PROFILE, column=column)


def _scheduled(key: str, label: str, description: str, type_: str, **kw: Any) -> BuiltinTrait:
    return BuiltinTrait(key, label, description, type_, SCHEDULED, computed_key=key, **kw)


BUILTIN_TRAITS: tuple[BuiltinTrait, ...] = (
    _column(
        "first_seen", "First seen", "Time of the person's earliest event.", "datetime", "first_seen"
    ),
    _column(
        "last_seen", "Last seen", "Time of the person's latest event.", "datetime", "last_seen"
    ),
    _column("event_count", "Events", "Number of events of any type.", "integer", "event_count"),
    _column(
        "order_count",
        "Orders",
        "Number of order events (the workspace's order event, 'Order Completed' by default).",
        "integer",
        "order_count",
    ),
    _column(
        "total_revenue",
        "Total revenue",
        "Sum of the orders' revenue (the first of "
        "properties revenue, total, value that holds a number).",
        "number",
        "revenue",
    ),
    _scheduled(
        "average_order_value",
        "Average order value",
        "Total revenue divided by the number of orders, rounded to cents; absent without orders.",
        "number",
    ),
    _column(
        "first_order_at", "First order", "Time of the earliest order.", "datetime", "first_order_at"
    ),
    _column(
        "last_order_at", "Last order", "Time of the latest order.", "datetime", "last_order_at"
    ),
    _scheduled(
        "days_since_last_order",
        "Days since last order",
        "Whole days since the latest order; absent without orders.",
        "integer",
    ),
    _scheduled(
        "rfm_recency",
        "RFM recency",
        "1-5 quintile of days since the last order among customers with an order "
        "(5 = most recent).",
        "integer",
    ),
    _scheduled(
        "rfm_frequency",
        "RFM frequency",
        "1-5 quintile of the number of orders among customers (5 = most orders).",
        "integer",
    ),
    _scheduled(
        "rfm_monetary",
        "RFM monetary",
        "1-5 quintile of total revenue among customers (5 = highest).",
        "integer",
    ),
    _scheduled(
        "rfm_score",
        "RFM score",
        "Recency, frequency and monetary scores as three digits, e.g. '545'.",
        "string",
    ),
    _scheduled(
        "rfm_segment",
        "RFM segment",
        "Customer segment from the recency and frequency "
        "scores (Champions, Loyal Customers, At Risk, ...).",
        "string",
        values=RFM_SEGMENTS,
    ),
    _scheduled(
        "engagement_score",
        "Engagement score",
        "0-100: exponentially decayed activity (14-day half-life; orders weigh 5, "
        "tracks 1, pages and screens 0.5); 50 = about four weighted events today.",
        "integer",
    ),
)

BY_KEY: dict[str, BuiltinTrait] = {trait.key: trait for trait in BUILTIN_TRAITS}
KEYS: frozenset[str] = frozenset(BY_KEY)
# the keys builtin_traits_refresh writes into Profile.computed
SCHEDULED_KEYS: tuple[str, ...] = tuple(t.key for t in BUILTIN_TRAITS if t.source == SCHEDULED)


def rfm_segment(recency: int, frequency: int) -> str:
    """The standard RFM segment map over recency and frequency scores (1-5); the SQL in
    profiles.computed.sql mirrors it."""
    if recency <= 2:
        if frequency <= 2:
            return "Hibernating"
        return "At Risk" if frequency <= 4 else "Can't Lose Them"
    if recency == 3:
        if frequency <= 2:
            return "About to Sleep"
        return "Need Attention" if frequency == 3 else "Loyal Customers"
    if frequency >= 4:
        return "Loyal Customers" if recency == 4 else "Champions"
    if frequency == 1:
        return "Promising" if recency == 4 else "New Customers"
    return "Potential Loyalists"
