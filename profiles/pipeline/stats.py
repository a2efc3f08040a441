"""First pipeline stage: per-source/per-type counters and the observed event/property schema
(event names, property and trait paths with their JSON types, first/last seen)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import orjson
from django.db import connection

from profiles.models import Event, PropertyKind

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
    """Dotted paths to leaves; objects deeper than MAX_DEPTH are reported as objects."""
    for key, value in obj.items():
        path = f"{prefix}.{key}" if prefix else str(key)
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


def record(events: Sequence[Event]) -> None:
    counters: dict[tuple[int, int | None, str, str, datetime], int] = defaultdict(int)
    seen: dict[tuple[int, str, str], list[Any]] = {}
    props: dict[tuple[int, str, str, str, str], list[Any]] = {}
    for e in events:
        key = event_key(e)
        hour = e.received_at.replace(minute=0, second=0, microsecond=0)
        counters[(e.workspace_id, e.source_id, e.type, key, hour)] += 1
        _observe(seen, (e.workspace_id, e.type, key), e.received_at, None)
        paths = 0
        for kind, bag in ((PropertyKind.PROPERTY, e.properties), (PropertyKind.TRAIT, e.traits)):
            if not isinstance(bag, dict):
                continue
            for path, value in flatten(bag):
                paths += 1
                if paths > MAX_PATHS_PER_EVENT:
                    break
                _observe(props, (e.workspace_id, e.type, key, kind, path), e.received_at, value)
    _upsert_counters(counters)
    _upsert_seen(seen)
    _upsert_props(props)


def _observe(store: dict[Any, list[Any]], key: Any, at: datetime, value: Any) -> None:
    entry = store.get(key)
    if entry is None:
        # [first, last, count, types, example]
        store[key] = [at, at, 1, {json_type(value)}, value]
        return
    entry[0] = min(entry[0], at)
    entry[1] = max(entry[1], at)
    entry[2] += 1
    entry[3].add(json_type(value))
    if entry[4] is None:
        entry[4] = value


def _upsert_counters(counters: dict[tuple[int, int | None, str, str, datetime], int]) -> None:
    if not counters:
        return
    rows = sorted(counters.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0, *kv[0][2:]))
    values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows))
    params: list[Any] = []
    for (ws, source, typ, name, hour), count in rows:
        params += [ws, source, typ, name, hour, count]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO profiles_eventcounter (workspace_id, source_id, type, event, hour, count)"
            f" VALUES {values}"  # noqa: S608 - placeholders only
            " ON CONFLICT (workspace_id, source_id, type, event, hour)"
            " DO UPDATE SET count = profiles_eventcounter.count + EXCLUDED.count",
            params,
        )


def _upsert_seen(seen: dict[tuple[int, str, str], list[Any]]) -> None:
    if not seen:
        return
    rows = sorted(seen.items())
    values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows))
    params: list[Any] = []
    for (ws, typ, name), (first, last, count, _, _) in rows:
        params += [ws, typ, name, first, last, count]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO profiles_observedevent"
            " (workspace_id, type, event, first_seen, last_seen, count)"
            f" VALUES {values}"  # noqa: S608 - placeholders only
            " ON CONFLICT (workspace_id, type, event) DO UPDATE SET"
            " first_seen = LEAST(profiles_observedevent.first_seen, EXCLUDED.first_seen),"
            " last_seen = GREATEST(profiles_observedevent.last_seen, EXCLUDED.last_seen),"
            " count = profiles_observedevent.count + EXCLUDED.count",
            params,
        )


def _upsert_props(props: dict[tuple[int, str, str, str, str], list[Any]]) -> None:
    if not props:
        return
    rows = sorted(props.items(), key=lambda kv: kv[0])
    values = ", ".join(["(%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s)"] * len(rows))
    params: list[Any] = []
    for (ws, typ, name, kind, path), (first, last, count, types, example) in rows:
        example_json = orjson.dumps(example).decode() if len(str(example)) <= 200 else "null"
        params += [
            ws,
            typ,
            name,
            kind,
            path,
            orjson.dumps(sorted(types)).decode(),
            example_json.replace("\\u0000", ""),
            first,
            last,
            count,
        ]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO profiles_observedproperty (workspace_id, type, event, kind, path,"
            " value_types, example, first_seen, last_seen, count)"
            f" VALUES {values}"  # noqa: S608 - placeholders only
            " ON CONFLICT (workspace_id, type, event, kind, path) DO UPDATE SET"
            " value_types = (SELECT jsonb_agg(DISTINCT t ORDER BY t) FROM jsonb_array_elements("
            "   profiles_observedproperty.value_types || EXCLUDED.value_types) AS t),"
            " example = COALESCE(profiles_observedproperty.example, EXCLUDED.example),"
            " first_seen = LEAST(profiles_observedproperty.first_seen, EXCLUDED.first_seen),"
            " last_seen = GREATEST(profiles_observedproperty.last_seen, EXCLUDED.last_seen),"
            " count = profiles_observedproperty.count + EXCLUDED.count",
            params,
        )
