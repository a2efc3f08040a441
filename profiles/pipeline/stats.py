"""First pipeline stage: per-source/per-type counters and the observed event/property schema
(event names, property and trait paths with their JSON types, first/last seen)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from django.db import connection

from cdp.paths import escape_key
from profiles.coercion import is_numeric_string
from profiles.models import PropertyKind
from profiles.pipeline.rows import EventLike as Event

MAX_DEPTH = 3
MAX_PATHS_PER_EVENT = 200


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def flatten(obj: dict[str, Any], prefix: str = "", depth: int = 1) -> Iterator[tuple[str, Any]]:
    """Dotted paths to leaves (cdp.paths syntax: a dot inside a key is escaped); objects
    deeper than MAX_DEPTH are reported as objects."""
    for key, value in obj.items():
        step = escape_key(str(key))
        path = f"{prefix}.{step}" if prefix else step
        if isinstance(value, dict) and value and depth < MAX_DEPTH:
            yield from flatten(value, path, depth + 1)
        else:
            yield path[:255], value


def event_key(event: Event) -> str:
    if event.type == "track":
        return event.event or ""
    if event.type in ("page", "screen"):
        return event.name or ""
    return ""


@dataclass(slots=True)
class _Seen:
    """One event name's or one path's observations in a batch."""

    first: datetime
    last: datetime
    count: int = 0
    types: dict[str, int] = field(default_factory=dict)  # JSON type -> values seen
    numeric_strings: int = 0
    example: Any = None
    # JSON type -> the newest event that sent a value of it (for the schema page's links)
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, event: Event, value: Any, typed: bool) -> None:
        self.first = min(self.first, event.received_at)
        self.last = max(self.last, event.received_at)
        self.count += 1
        if not typed:
            return
        kind = json_type(value)
        self.types[kind] = self.types.get(kind, 0) + 1
        self.numeric_strings += is_numeric_string(value)
        self.examples[kind] = {"message_id": event.message_id, "source_id": event.source_id}
        if self.example is None:
            self.example = value


def record(events: Sequence[Event]) -> None:
    counters: dict[tuple[int, int | None, str, str, datetime], int] = defaultdict(int)
    seen: dict[tuple[int, str, str], _Seen] = {}
    props: dict[tuple[int, str, str, str, str], _Seen] = {}
    for e in events:
        key = event_key(e)
        hour = e.received_at.replace(minute=0, second=0, microsecond=0)
        counters[(e.workspace_id, e.source_id, e.type, key, hour)] += 1
        _observe(seen, (e.workspace_id, e.type, key), e, None, typed=False)
        paths = 0
        for kind, bag in ((PropertyKind.PROPERTY, e.properties), (PropertyKind.TRAIT, e.traits)):
            if not isinstance(bag, dict):
                continue
            for path, value in flatten(bag):
                paths += 1
                if paths > MAX_PATHS_PER_EVENT:
                    break
                _observe(props, (e.workspace_id, e.type, key, kind, path), e, value, typed=True)
    _upsert_counters(counters)
    _upsert_seen(seen)
    _upsert_props(props)


def _observe(store: dict[Any, _Seen], key: Any, event: Event, value: Any, *, typed: bool) -> None:
    entry = store.get(key)
    if entry is None:
        entry = store[key] = _Seen(event.received_at, event.received_at)
    entry.add(event, value, typed)


_UPSERT_COUNTERS = """
INSERT INTO profiles_eventcounter (workspace_id, source_id, type, event, hour, count)
SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::timestamptz[],
                     %s::bigint[])
ON CONFLICT (workspace_id, source_id, type, event, hour)
DO UPDATE SET count = profiles_eventcounter.count + EXCLUDED.count
"""

_UPSERT_EVENTS = """
INSERT INTO profiles_observedevent (workspace_id, type, event, first_seen, last_seen, count)
SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::timestamptz[],
                     %s::timestamptz[], %s::bigint[])
ON CONFLICT (workspace_id, type, event) DO UPDATE SET
    first_seen = LEAST(profiles_observedevent.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(profiles_observedevent.last_seen, EXCLUDED.last_seen),
    count = profiles_observedevent.count + EXCLUDED.count
"""

_UPSERT_PROPERTIES = """
INSERT INTO profiles_observedproperty (workspace_id, type, event, kind, path, value_types,
                                       example, first_seen, last_seen, count, type_counts,
                                       numeric_strings, type_examples)
SELECT ws, typ, ev, kind, path, types::jsonb, example::jsonb, first_seen, last_seen, n,
       counts::jsonb, numeric, examples::jsonb
FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
            %s::text[], %s::timestamptz[], %s::timestamptz[], %s::bigint[], %s::text[],
            %s::bigint[], %s::text[])
     AS r(ws, typ, ev, kind, path, types, example, first_seen, last_seen, n, counts, numeric,
          examples)
ON CONFLICT (workspace_id, type, event, kind, path) DO UPDATE SET
    value_types = (SELECT jsonb_agg(DISTINCT t ORDER BY t) FROM jsonb_array_elements(
        profiles_observedproperty.value_types || EXCLUDED.value_types) AS t),
    example = COALESCE(profiles_observedproperty.example, EXCLUDED.example),
    first_seen = LEAST(profiles_observedproperty.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(profiles_observedproperty.last_seen, EXCLUDED.last_seen),
    count = profiles_observedproperty.count + EXCLUDED.count,
    type_counts = (SELECT jsonb_object_agg(key, total) FROM (
        SELECT key, sum(value::bigint) AS total FROM (
            SELECT * FROM jsonb_each_text(profiles_observedproperty.type_counts)
            UNION ALL SELECT * FROM jsonb_each_text(EXCLUDED.type_counts)) AS both_counts
        GROUP BY key) AS summed),
    numeric_strings = profiles_observedproperty.numeric_strings + EXCLUDED.numeric_strings,
    type_examples = profiles_observedproperty.type_examples || EXCLUDED.type_examples
"""


def _execute_columns(sql: str, rows: list[tuple[Any, ...]]) -> None:
    """One statement for all rows: the rows are passed as one array per column. Rows are
    sorted by key first so concurrent workers lock upserted rows in the same order."""
    if not rows:
        return
    columns = [list(column) for column in zip(*rows, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(sql, columns)


def _upsert_counters(counters: dict[tuple[int, int | None, str, str, datetime], int]) -> None:
    rows = [(*key, count) for key, count in counters.items()]
    rows.sort(key=lambda r: (r[0], r[1] or 0, r[2], r[3], r[4]))
    _execute_columns(_UPSERT_COUNTERS, rows)


def _upsert_seen(seen: dict[tuple[int, str, str], _Seen]) -> None:
    rows = [(*key, s.first, s.last, s.count) for key, s in seen.items()]
    rows.sort(key=lambda r: r[:3])
    _execute_columns(_UPSERT_EVENTS, rows)


def _example_json(example: Any) -> str:
    if example is None or len(str(example)) > 200:
        return "null"
    return orjson.dumps(example).decode().replace("\\u0000", "")


def _upsert_props(props: dict[tuple[int, str, str, str, str], _Seen]) -> None:
    rows = [
        (
            *key,
            orjson.dumps(sorted(s.types)).decode(),
            _example_json(s.example),
            s.first,
            s.last,
            s.count,
            orjson.dumps(s.types).decode(),
            s.numeric_strings,
            orjson.dumps(s.examples).decode(),
        )
        for key, s in props.items()
    ]
    rows.sort(key=lambda r: r[:5])
    _execute_columns(_UPSERT_PROPERTIES, rows)
