"""The segment rule language evaluated in plain Python, one profile at a time.

This is the reference semantics: the SQL compiler (compile.py) must select exactly the
profiles for which `evaluate` is true, and the oracle test checks it on random data. Keep it
simple and obviously right rather than fast."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from cdp.paths import value_at
from consent.enforcement import consent_allowed
from profiles.coercion import is_number, json_number, numeric_value
from segments.rules import nodes as n


@dataclass(frozen=True)
class ProfileFacts:
    """What a rule may look at on one profile. `columns` maps a Profile column name to its
    value (None = NULL); `segments` holds the ids of the segments the profile is in."""

    id: int
    traits: Mapping[str, Any] = field(default_factory=dict)
    computed: Mapping[str, Any] = field(default_factory=dict)
    columns: Mapping[str, Any] = field(default_factory=dict)
    segments: frozenset[int] = frozenset()
    # latest consent decision per purpose (granted / denied / withdrawn), and the workspace's
    # purposes with their defaults
    consents: Mapping[str, str] = field(default_factory=dict)
    purpose_defaults: Mapping[str, bool] = field(default_factory=dict)
    # the request's context, at decision time (offers' `context` conditions)
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EventFacts:
    type: str
    event: str
    timestamp: datetime
    properties: Any = field(default_factory=dict)


def members(
    node: n.Node,
    *,
    profiles: Iterable[ProfileFacts],
    events_by_profile: Mapping[int, Sequence[EventFacts]],
    now: datetime,
) -> set[int]:
    """Ids of the profiles (live profiles of one workspace, as given) that match `node`."""
    return {
        p.id
        for p in profiles
        if evaluate(node, profile=p, events=list(events_by_profile.get(p.id, ())), now=now)
    }


def evaluate(
    node: n.Node, *, profile: ProfileFacts, events: list[EventFacts], now: datetime
) -> bool:
    if isinstance(node, n.All):
        return all(evaluate(c, profile=profile, events=events, now=now) for c in node.children)
    if isinstance(node, n.AnyOf):
        return any(evaluate(c, profile=profile, events=events, now=now) for c in node.children)
    if isinstance(node, n.Not):
        return not evaluate(node.child, profile=profile, events=events, now=now)
    if isinstance(node, n.TraitCondition):
        return matches(_trait_value(node.ref, profile), node.comparison, now)
    if isinstance(node, n.EventCondition):
        return _count_holds(_event_count(node, events, now), node.count_op, node.count)
    if isinstance(node, n.RandomBucket):
        return bucket(profile.id, node.salt) < node.percent * 100
    if isinstance(node, n.SegmentCondition):
        return node.segment_id in profile.segments
    if isinstance(node, n.ConsentCondition):
        allowed = consent_allowed(
            profile.consents.get(node.purpose), profile.purpose_defaults.get(node.purpose)
        )
        return allowed if node.status == "granted" else not allowed
    if isinstance(node, n.ContextCondition):
        return matches(value_at(profile.context, node.path), node.comparison, now)
    raise TypeError(f"not a rule node: {node!r}")


def bucket(profile_id: int, salt: str) -> int:
    """The profile's stable bucket in 0..9999 for a salt."""
    digest = hashlib.md5(f"{salt}:{profile_id}".encode(), usedforsecurity=False).hexdigest()
    return int(digest[:8], 16) % 10000


# ---- values --------------------------------------------------------------------------------


def _trait_value(ref: n.TraitRef, profile: ProfileFacts) -> Any:
    """The value, or None when absent (a missing key, JSON null or SQL NULL)."""
    if ref.store == "column":
        return profile.columns.get(ref.name)
    store = profile.traits if ref.store == "traits" else profile.computed
    return value_at(store, ref.keys)


def _bound(value: Any) -> Decimal:
    number = json_number(value)
    assert number is not None, "validation lets only numbers through"
    return number


def json_equal(found: Any, value: Any) -> bool:
    """`found` (None = absent) equals the scalar `value` as coercion.py states: a number by
    value (1 == 1.0 == "1" == " 1.00 "), a string or a boolean exactly (true ≠ 1, "1" ≠ 1)."""
    if found is None:
        return False
    if isinstance(value, bool):
        return isinstance(found, bool) and found is value
    if isinstance(value, str):
        return isinstance(found, str) and found == value
    assert is_number(value)
    number = numeric_value(found)
    return number is not None and number == json_number(value)


ISO_DATE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
)


def as_datetime(value: Any) -> datetime | None:
    """A datetime column value, or a string in the form YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS
    with optional fractional seconds (up to microseconds) and an optional Z or ±HH:MM
    (naive = UTC); anything else is not a date."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    match = ISO_DATE.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        parsed = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
            tzinfo=UTC,
        )
    except ValueError:  # 2026-02-30, hour 25, ...
        return None
    if zone and zone != "Z":
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            return None
        offset = timedelta(hours=hours, minutes=minutes)
        parsed = parsed - offset if zone[0] == "+" else parsed + offset
    return parsed


def posix_search(pattern: str, text: str) -> bool:
    """Postgres `text ~ pattern` for patterns made of literals, `.`, `^`, `$`, bracket
    expressions, `*` and `+` (beyond those the two dialects differ: `\\b`, `[[:alpha:]]`, …).
    Postgres lets `.` match a newline and `$` match only at the very end."""
    translated = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            translated.append(pattern[i : i + 2])
            i += 2
            continue
        if char == "[":  # copied whole: `$` and `.` are literal inside
            start = i + 2 if pattern[i + 1 : i + 2] == "^" else i + 1
            start += pattern[start : start + 1] == "]"  # a leading ] is literal
            end = pattern.find("]", start)
            end = len(pattern) - 1 if end < 0 else end
            translated.append(pattern[i : end + 1])
            i = end + 1
            continue
        translated.append(r"\Z" if char == "$" else char)
        i += 1
    return re.search("".join(translated), text, re.DOTALL) is not None


def reference_time(value: datetime | n.RelativeDate, now: datetime) -> datetime:
    if isinstance(value, n.RelativeDate):
        return now - timedelta(days=value.days_ago)
    return value


def matches(found: Any, comparison: n.Comparison, now: datetime) -> bool:
    """Whether a value (None = absent) satisfies op + value."""
    op, value = comparison.op, comparison.value
    if op == "exists":
        return found is not None
    if op == "not_exists":
        return found is None
    if op == "eq":
        return json_equal(found, value)
    if op == "neq":
        return not json_equal(found, value)
    if op == "in":
        return any(json_equal(found, v) for v in value)
    if op == "not_in":
        return not any(json_equal(found, v) for v in value)
    if op in ("gt", "gte", "lt", "lte", "between"):
        number = numeric_value(found)
        if number is None:
            return False
        if op == "between":
            return _bound(value[0]) <= number <= _bound(value[1])
        bound = _bound(value)
        return {
            "gt": number > bound,
            "gte": number >= bound,
            "lt": number < bound,
            "lte": number <= bound,
        }[op]
    if op in ("contains", "not_contains", "starts_with", "ends_with"):
        text = found.lower() if isinstance(found, str) else None
        needle = value.lower()
        if op == "not_contains":
            return text is None or needle not in text
        if text is None:
            return False
        if op == "contains":
            return needle in text
        if op == "starts_with":
            return text.startswith(needle)
        return text.endswith(needle)
    if op == "regex":
        return isinstance(found, str) and posix_search(value, found)
    if op in ("before", "after", "within_last"):
        moment = as_datetime(found)
        if moment is None:
            return False
        if op == "within_last":
            # (now − W, now], like event windows: a value leaves at exactly its time + W
            return now - timedelta(seconds=value) < moment <= now
        reference = reference_time(value, now)
        return moment < reference if op == "before" else moment > reference
    raise ValueError(f"unknown operator {op!r}")


# ---- events --------------------------------------------------------------------------------


def _event_count(node: n.EventCondition, events: list[EventFacts], now: datetime) -> int:
    # a window is (now − W, …): an event leaves it at exactly its time + W, the moment the
    # real-time expiry re-evaluates the profile; events after `now` are inside
    since = (
        now - timedelta(seconds=node.within_seconds) if node.within_seconds is not None else None
    )
    count = 0
    for e in events:
        if e.type != "track" or e.event != node.event:
            continue
        if since is not None and e.timestamp <= since:
            continue
        if node.between is not None and not node.between[0] <= e.timestamp <= node.between[1]:
            continue
        if all(matches(value_at(e.properties, f.path), f.comparison, now) for f in node.filters):
            count += 1
    return count


def _count_holds(count: int, op: str, target: int) -> bool:
    return {
        "eq": count == target,
        "neq": count != target,
        "gt": count > target,
        "gte": count >= target,
        "lt": count < target,
        "lte": count <= target,
    }[op]
