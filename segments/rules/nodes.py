"""The segment rule language after validation: a small typed tree that the SQL compiler and
the Python evaluator both walk (see validate.py for the JSON form and its checks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# operators on a trait's (or an event property's) value
SCALAR_OPS = ("eq", "neq")
NUMBER_OPS = ("gt", "gte", "lt", "lte")
RANGE_OPS = ("between",)
SET_OPS = ("in", "not_in")
STRING_OPS = ("contains", "not_contains", "starts_with", "ends_with", "regex")
PRESENCE_OPS = ("exists", "not_exists")
DATE_OPS = ("before", "after", "within_last")
ALL_OPS = SCALAR_OPS + NUMBER_OPS + RANGE_OPS + SET_OPS + STRING_OPS + PRESENCE_OPS + DATE_OPS
# operators on an event count
COUNT_OPS = ("eq", "neq", "gt", "gte", "lt", "lte")
# how the builder names each operator (on values and on counts)
OP_LABELS = {
    "eq": "is",
    "neq": "is not",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "between": "is between",
    "in": "is one of",
    "not_in": "is not one of",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "regex": "matches regex",
    "exists": "is set",
    "not_exists": "is not set",
    "before": "is before",
    "after": "is after",
    "within_last": "is within the last",
}
# the kinds of condition (validate.py's CONDITION_KEYS), as the builder offers to add them
CONDITION_LABELS = {
    "trait": "Trait",
    "event": "Event",
    "segment": "Segment",
    "random_bucket": "Random %",
    "consent": "Consent",
    "model": "Cluster",
}


@dataclass(frozen=True, slots=True)
class RelativeDate:
    """`{"days_ago": N}`: N days before the evaluation time."""

    days_ago: int


@dataclass(frozen=True, slots=True)
class Comparison:
    """op + value, value already checked against the op: a scalar, a (low, high) pair, a
    tuple of scalars, a string, None (presence), a datetime or RelativeDate (before/after),
    or a number of seconds (within_last)."""

    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class TraitRef:
    """Where a trait lives: `traits` (Profile.traits JSON), `computed` (Profile.computed JSON:
    scheduled built-ins and user-defined computed traits) or `column` (a Profile column kept
    per event, e.g. order_count). `kind` is the value type of a column ("number",
    "datetime"), None for JSON values. `path` holds the keys below `name` for a nested value
    (`address.city`: name "address", path ("city",))."""

    store: str
    name: str
    kind: str | None = None
    path: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key from the top of the JSON object down to the value."""
        return (self.name, *self.path)


@dataclass(frozen=True, slots=True)
class TraitCondition:
    ref: TraitRef
    comparison: Comparison


@dataclass(frozen=True, slots=True)
class PropertyFilter:
    path: tuple[str, ...]
    comparison: Comparison


@dataclass(frozen=True, slots=True)
class EventCondition:
    event: str
    filters: tuple[PropertyFilter, ...]
    count_op: str  # COUNT_OPS
    count: int
    within_seconds: int | None = None
    between: tuple[datetime, datetime] | None = None


@dataclass(frozen=True, slots=True)
class SegmentCondition:
    segment_id: int


@dataclass(frozen=True, slots=True)
class ConsentCondition:
    purpose: str
    status: str


@dataclass(frozen=True, slots=True)
class RandomBucket:
    percent: float
    salt: str


@dataclass(frozen=True, slots=True)
class ContextCondition:
    """A value of the request's context at decision time (`page.url`, `device.type`,
    `locale`): offers' eligibility only — segments have no request."""

    path: tuple[str, ...]
    comparison: Comparison


@dataclass(frozen=True, slots=True)
class All:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


Node = (
    All
    | AnyOf
    | Not
    | TraitCondition
    | EventCondition
    | SegmentCondition
    | ConsentCondition
    | RandomBucket
    | ContextCondition
)
