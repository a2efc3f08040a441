"""A profile's traits and built-in aggregates as folds over its events.

Every field is an associative, order-independent fold (max-by-time, min-by-time, sums,
set unions, a decayed sum), so applying events in any order gives the same profile, merging
two profiles equals replaying both event streams, and a split can recompute each side from
its own events."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from profiles.identity.rules import Rules
from profiles.models import Profile, TraitStrategy
from profiles.pipeline.rows import EventLike as Event

ENGAGEMENT_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
ENGAGEMENT_HALF_LIFE_DAYS = 14.0
ENGAGEMENT_SCALE = 4.0  # decayed weight at which the score is 50
# weights of one event for the engagement score (orders are weighted separately)
ENGAGEMENT_WEIGHTS = {"track": 1.0, "page": 0.5, "screen": 0.5}
ORDER_WEIGHT = 5.0
REVENUE_KEYS = ("revenue", "total", "value")
TRAIT_TYPES = ("identify",)  # event types whose traits update the person's traits


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def order_revenue(properties: Any) -> Decimal:
    if not isinstance(properties, dict):
        return Decimal(0)
    for key in REVENUE_KEYS:
        number = _number(properties.get(key))
        if number is not None:
            return number
    return Decimal(0)


def _logaddexp2(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    high, low = max(a, b), min(a, b)
    return high + math.log2(1.0 + 2.0 ** (low - high))


def engagement_term(ts: datetime, weight: float) -> float:
    days = (ts - ENGAGEMENT_EPOCH).total_seconds() / 86400.0
    return math.log2(weight) + days / ENGAGEMENT_HALF_LIFE_DAYS


def engagement_score(log2_sum: float | None, now: datetime) -> int:
    """0–100: 50 when the decayed activity equals ENGAGEMENT_SCALE weighted events today."""
    if log2_sum is None:
        return 0
    days = (now - ENGAGEMENT_EPOCH).total_seconds() / 86400.0
    exponent = log2_sum - days / ENGAGEMENT_HALF_LIFE_DAYS
    decayed = 2.0 ** min(exponent, 60.0)
    return round(100.0 * (1.0 - 2.0 ** (-decayed / ENGAGEMENT_SCALE)))


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _max(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


class ProfileState:
    """In-memory working copy of a profile row during a batch."""

    FIELDS = (
        "traits",
        "trait_times",
        "group_ids",
        "first_seen",
        "last_seen",
        "event_count",
        "event_counts",
        "order_count",
        "revenue",
        "first_order_at",
        "last_order_at",
        "engagement_log2",
    )

    def __init__(self, *, pid: int | None = None, seq: int = 0) -> None:
        self.id = pid
        self.seq = seq  # creation order inside the batch (for new profiles)
        self.forward: ProfileState | None = None
        self.merged_at: datetime | None = None
        self.dirty = False
        self.counts: dict[str, int] = {}  # identifiers held per limited type
        self.traits: dict[str, Any] = {}
        self.trait_times: dict[str, int] = {}
        self.group_ids: list[str] = []
        self.first_seen: datetime | None = None
        self.last_seen: datetime | None = None
        self.event_count = 0
        self.event_counts: dict[str, int] = {}
        self.order_count = 0
        self.revenue = Decimal(0)
        self.first_order_at: datetime | None = None
        self.last_order_at: datetime | None = None
        self.engagement_log2: float | None = None

    @classmethod
    def from_row(cls, row: Profile) -> ProfileState:
        state = cls(pid=row.pk)
        for name in cls.FIELDS:
            setattr(state, name, getattr(row, name))
        state.traits = dict(state.traits or {})
        state.trait_times = dict(state.trait_times or {})
        state.group_ids = list(state.group_ids or [])
        state.event_counts = dict(state.event_counts or {})
        state.revenue = Decimal(state.revenue or 0)
        return state

    @classmethod
    def from_locked_row(cls, row: Sequence[Any]) -> ProfileState:
        """From the resolver's lock query (JSON columns as text, decoded with orjson)."""
        state = cls(pid=row[0])
        state.traits = orjson.loads(row[2])
        state.trait_times = orjson.loads(row[3])
        state.group_ids = orjson.loads(row[4])
        state.first_seen, state.last_seen, state.event_count = row[5], row[6], row[7]
        state.event_counts = orjson.loads(row[8])
        state.order_count, state.revenue = row[9], Decimal(row[10])
        state.first_order_at, state.last_order_at, state.engagement_log2 = row[11:14]
        return state

    def root(self) -> ProfileState:
        state = self
        while state.forward is not None:
            state = state.forward
        return state

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    # ---- folds --------------------------------------------------------------------------

    def set_trait(self, key: str, value: Any, at_ms: int, strategy: str) -> None:
        if value is None:
            return
        known = key in self.traits
        current_ms = self.trait_times.get(key)
        if strategy == TraitStrategy.SUM:
            add, have = _number(value), _number(self.traits.get(key, 0))
            if add is not None and have is not None:
                total = have + add
                self.traits[key] = int(total) if total == total.to_integral() else float(total)
                self.trait_times[key] = max(at_ms, current_ms or at_ms)
                return
            strategy = TraitStrategy.MOST_RECENT  # not numbers: fall back
        if strategy == TraitStrategy.NON_EMPTY and _empty(value):
            if not known:
                self.traits[key], self.trait_times[key] = value, at_ms
            return
        if strategy == TraitStrategy.NON_EMPTY and known and _empty(self.traits[key]):
            self.traits[key], self.trait_times[key] = value, at_ms
            return
        if strategy == TraitStrategy.OLDEST:
            newer = current_ms is None or at_ms < current_ms
        else:
            newer = current_ms is None or at_ms >= current_ms
        if not known or newer:
            self.traits[key], self.trait_times[key] = value, at_ms

    def apply_event(self, event: Event, rules: Rules) -> None:
        ts = event.timestamp
        self.first_seen = _min(self.first_seen, ts)
        self.last_seen = _max(self.last_seen, ts)
        self.event_count += 1
        self.event_counts[event.type] = self.event_counts.get(event.type, 0) + 1
        weight = ENGAGEMENT_WEIGHTS.get(event.type, 0.0)
        if event.type == "track" and event.event == rules.order_event:
            self.order_count += 1
            self.revenue += order_revenue(event.properties)
            self.first_order_at = _min(self.first_order_at, ts)
            self.last_order_at = _max(self.last_order_at, ts)
            weight = ORDER_WEIGHT
        if weight:
            self.engagement_log2 = _logaddexp2(self.engagement_log2, engagement_term(ts, weight))
        if event.type in TRAIT_TYPES and isinstance(event.traits, dict):
            at_ms = _ms(ts)
            for key, value in event.traits.items():
                self.set_trait(str(key), value, at_ms, rules.strategy(str(key)))
        if event.group_id and event.group_id not in self.group_ids:
            self.group_ids.append(event.group_id)
        self.dirty = True

    def absorb(self, other: ProfileState, rules: Rules) -> None:
        """Fold another profile into this one (the merge of two profiles)."""
        for key, value in other.traits.items():
            at_ms = other.trait_times.get(key, 0)
            self.set_trait(key, value, at_ms, rules.strategy(key))
        for group in other.group_ids:
            if group not in self.group_ids:
                self.group_ids.append(group)
        self.first_seen = _min(self.first_seen, other.first_seen)
        self.last_seen = _max(self.last_seen, other.last_seen)
        self.event_count += other.event_count
        for kind, count in other.event_counts.items():
            self.event_counts[kind] = self.event_counts.get(kind, 0) + count
        self.order_count += other.order_count
        self.revenue += other.revenue
        self.first_order_at = _min(self.first_order_at, other.first_order_at)
        self.last_order_at = _max(self.last_order_at, other.last_order_at)
        self.engagement_log2 = _logaddexp2(self.engagement_log2, other.engagement_log2)
        for kind, count in other.counts.items():
            self.counts[kind] = self.counts.get(kind, 0) + count
        self.dirty = True
