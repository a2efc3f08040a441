"""Computed traits against a plain-Python oracle: random event streams and random trait
definitions (every aggregation, filters, windows); the values computed in SQL — read directly,
written by a full refresh, and written incrementally by the pipeline stage — must equal what
a straightforward loop over the same events gives. Plus one run through the real pipeline
(collector → queue) with merges and a split, where incremental values equal a full refresh."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
import time_machine
from django.db import connection, transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.models import Workspace
from profiles.computed import services
from profiles.computed.sql import UPDATED, values_query
from profiles.identity.resolve import Resolution
from profiles.identity.services import profile_split
from profiles.models import ComputedTrait, Event, Profile, ProfileEvent, ProfileMerge
from profiles.pipeline.rows import EventLike
from tests.fixtures import Tenant, send_events

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
NAMES = ["Order Completed", "Product Viewed", "Signed Up"]
PATHS = ["price", "plan", "qty", "meta", "meta.level", "tags", "tags.0", "tags.-1", "missing"]
TRAIT_PATHS = ["price", "price", "plan", "plan", "qty", *PATHS]
AGGREGATIONS = [
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "first",
    "last",
    "most_frequent",
    "distinct_count",
]
COUNTS = ("count", "distinct_count")
OPS = ["eq", "neq", "gt", "gte", "lt", "lte", "contains", "not_contains", "exists", "not_exists"]

# ---- the oracle ------------------------------------------------------------------------------

NUMERIC = re.compile(
    r"[ \t\n\r\f\v]*[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]{1,2})?[ \t\n\r\f\v]*"
)
MISSING = object()


def lookup(properties: Any, path: str) -> Any:
    """The value at a dotted path, or MISSING (JSON null counts as missing)."""
    current = properties
    for segment in path.split("."):
        if isinstance(current, dict) and segment in current:
            current = current[segment]
        elif isinstance(current, list) and re.fullmatch(r"-?[0-9]+", segment):
            index = int(segment)
            if not -len(current) <= index < len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return MISSING if current is None else current


def number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str) and len(value) <= 64 and NUMERIC.fullmatch(value):
        return Decimal(value.strip(" \t\n\r\f\v"))
    return None


def as_decimal(value: int | float) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def equals(found: Any, value: Any) -> bool:
    if found is MISSING:
        return False
    if isinstance(value, bool):
        return isinstance(found, bool) and found == value
    if isinstance(value, int | float):
        n = number(found)
        return n is not None and n == as_decimal(value)
    return isinstance(found, str) and found == value


def passes(properties: Any, item: dict[str, Any]) -> bool:
    found = lookup(properties, item["property"])
    op: str = item["op"]
    value: Any = item.get("value")
    if op == "exists":
        return found is not MISSING
    if op == "not_exists":
        return found is MISSING
    if op == "eq":
        return equals(found, value)
    if op == "neq":
        return not equals(found, value)
    if op == "in":
        return any(equals(found, v) for v in value)
    if op in ("gt", "gte", "lt", "lte"):
        n = number(found) if found is not MISSING else None
        if n is None:
            return False
        bound = as_decimal(value)
        return {"gt": n > bound, "gte": n >= bound, "lt": n < bound, "lte": n <= bound}[op]
    contained = (isinstance(found, str) and value in found) or (
        isinstance(found, list) and any(isinstance(x, str) and x == value for x in found)
    )
    return contained if op == "contains" else not contained


def identity(value: Any) -> Any:
    """A hashable key with JSON equality (1 == 1.0, "1" != 1, true != 1)."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", as_decimal(value))
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list):
        return ("l", tuple(identity(v) for v in value))
    return ("d", tuple(sorted((k, identity(v)) for k, v in value.items() if v is not None)))


@dataclass
class Ev:
    id: int
    profile_id: int
    type: str
    name: str
    ts: datetime
    properties: dict[str, Any]


def oracle(trait: dict[str, Any], events: list[Ev], now: datetime) -> Any:
    since = now - timedelta(days=trait["window_days"]) if trait["window_days"] else None
    matching = sorted(
        (
            e
            for e in events
            if e.type == "track"
            and (not trait["event"] or e.name == trait["event"])
            and (since is None or e.ts >= since)
            and all(passes(e.properties, item) for item in trait["where"])
        ),
        key=lambda e: (e.ts, e.id),
    )
    agg = trait["aggregation"]
    if agg == "count":
        return len(matching)
    present = [
        (e, v) for e in matching if (v := lookup(e.properties, trait["property"])) is not MISSING
    ]
    numbers = [n for _, v in present if (n := number(v)) is not None]
    if agg == "distinct_count":
        return len({identity(v) for _, v in present})
    if agg == "sum":
        return sum(numbers) if numbers else None
    if agg == "avg":
        return sum(numbers) / len(numbers) if numbers else None
    if agg == "min":
        return min(numbers) if numbers else None
    if agg == "max":
        return max(numbers) if numbers else None
    if not present:
        return None
    if agg == "first":
        return present[0][1]
    if agg == "last":
        return present[-1][1]
    # most_frequent: highest count; ties to the value seen most recently, as last written
    groups: dict[Any, list[Any]] = {}
    for position, (_, v) in enumerate(present):
        entry = groups.setdefault(identity(v), [0, -1, None])
        entry[0] += 1
        entry[1], entry[2] = position, v  # present is in time order: the latest wins
    return max(groups.values(), key=lambda g: (g[0], g[1]))[2]


def same(actual: Any, expected: Any) -> bool:
    """JSON values equal, numbers within a relative 1e-9 (SQL numeric vs Python Decimal)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, int | float | Decimal):
        if not isinstance(actual, int | float):
            return False
        a = as_decimal(actual)
        e = expected if isinstance(expected, Decimal) else as_decimal(expected)
        if not (a.is_finite() and e.is_finite()):
            return a == e
        return abs(a - e) <= Decimal("1e-9") * max(abs(a), abs(e)) + Decimal("1e-12")
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(same(a, b) for a, b in zip(actual, expected, strict=True))
        )
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(same(actual[k], expected[k]) for k in expected)
        )
    return actual == expected


# ---- random events and definitions -----------------------------------------------------------

words = st.sampled_from(["pro", "free", "Pro", "a pro plan", "", "12", "abc"])
numbers = st.one_of(
    st.integers(-5, 20),
    st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False).map(lambda f: round(f, 3)),
    st.sampled_from([0.5, 2.25, -1.5, 1e-7, 1e16]),
)
numeric_strings = st.sampled_from(
    ["12", "3.50", "-1e3", " 7 ", ".5", "5.", "+2", "007", "1e99", "-2.5E-3", "\t8\n"]
)
junk = st.sampled_from(["1e999", "1e", "NaN", "Infinity", "1,5", "0x1F", "1_000", "abc", "", "1 2"])
scalars = st.one_of(numbers, numeric_strings, junk, words, st.booleans(), st.none())
properties = st.fixed_dictionaries(
    {},
    optional={
        "price": st.one_of(numbers, numbers, numeric_strings, junk, st.none()),
        "plan": st.one_of(words, words, numbers, st.booleans()),
        "qty": st.integers(0, 3),
        "meta": st.one_of(st.fixed_dictionaries({}, optional={"level": scalars}), scalars),
        "tags": st.one_of(st.lists(st.one_of(words, numbers), max_size=3), scalars),
    },
)
# hours relative to NOW: a small pool so that equal timestamps (ties) are common
hours = st.sampled_from([-24 * 40, -24 * 20, -24 * 8, -24 * 7, -24 * 3, -5, -1, 0, 3])
events_strategy = st.lists(
    st.tuples(
        st.integers(0, 2),  # profile index
        st.sampled_from(["track"] * 5 + ["page"]),
        st.sampled_from(NAMES),
        hours,
        properties,
    ),
    min_size=6,
    max_size=30,
)


@st.composite
def filters(draw: Any) -> dict[str, Any]:
    op = draw(st.sampled_from([*OPS, "in"]))
    item: dict[str, Any] = {"property": draw(st.sampled_from(PATHS)), "op": op}
    if op in ("eq", "neq"):
        item["value"] = draw(
            st.one_of(st.integers(-5, 15), st.sampled_from(["pro", "12", "abc", ""]), st.booleans())
        )
    elif op in ("gt", "gte", "lt", "lte"):
        item["value"] = draw(st.one_of(st.integers(-20, 20), st.sampled_from([0.5, 3.5, -1.25])))
    elif op in ("contains", "not_contains"):
        item["value"] = draw(st.sampled_from(["pro", "a", "1", "Pro"]))
    elif op == "in":
        item["value"] = draw(
            st.lists(
                st.one_of(
                    st.integers(-5, 15), st.sampled_from(["pro", "free", "12"]), st.booleans()
                ),
                min_size=1,
                max_size=3,
            )
        )
    return item


@st.composite
def definitions(draw: Any) -> dict[str, Any]:
    aggregation = draw(st.sampled_from(AGGREGATIONS))
    return {
        "aggregation": aggregation,
        "event": draw(st.sampled_from(["", "", "", *NAMES])),
        "property": "" if aggregation == "count" else draw(st.sampled_from(TRAIT_PATHS)),
        "where": draw(
            st.sampled_from([0, 0, 0, 1, 1, 2]).flatmap(
                lambda n: st.lists(filters(), min_size=n, max_size=n)
            )
        ),
        "window_days": draw(st.sampled_from([None, None, None, 1, 7, 30])),
    }


# ---- the test --------------------------------------------------------------------------------


@pytest.fixture
def workspace(db: Any) -> Workspace:
    return Workspace.objects.create(name="Oracle")


def _store(workspace: Workspace, stream: list[Any]) -> tuple[list[int], int, list[Ev]]:
    live = Profile.objects.bulk_create([Profile(workspace=workspace) for _ in range(3)])
    merged = Profile.objects.create(workspace=workspace, merged_into=live[0])
    rows = Event.objects.bulk_create(
        [
            Event(
                workspace=workspace,
                message_id=str(uuid.uuid4()),
                type=kind,
                event=name if kind == "track" else None,
                name=name if kind == "page" else None,
                timestamp=NOW + timedelta(hours=offset),
                received_at=NOW,
                properties=props,
            )
            for _, kind, name, offset, props in stream
        ]
    )
    events = [
        Ev(row.pk, live[index].pk, kind, name, row.timestamp, props)
        for row, (index, kind, name, _, props) in zip(rows, stream, strict=True)
    ]
    ProfileEvent.objects.bulk_create(
        [
            ProfileEvent(
                event_id=e.id,
                workspace_id=workspace.pk,
                profile_id=e.profile_id,
                origin_profile_id=e.profile_id,
                timestamp=e.ts,
                type=e.type,
                event=e.name,
            )
            for e in events
        ]
    )
    return [p.pk for p in live], merged.pk, events


def _stored(profile_ids: list[int], key: str) -> dict[int, Any]:
    rows = Profile.objects.filter(pk__in=profile_ids).values_list("pk", "computed")
    return {pk: computed.get(key, MISSING) for pk, computed in rows}


def _check(label: str, trait: dict[str, Any], actual: Any, expected: Any, events: Any) -> None:
    if expected is None:
        expected = MISSING
    ok = actual is expected if expected is MISSING or actual is MISSING else same(actual, expected)
    assert ok, f"{label}: {trait}\nexpected {expected!r}, got {actual!r}\nevents {events}"


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stream=events_strategy, traits=st.lists(definitions(), min_size=1, max_size=4))
def test_sql_equals_the_python_oracle(
    workspace: Workspace, stream: list[Any], traits: list[dict[str, Any]]
) -> None:
    with transaction.atomic():
        live, merged, events = _store(workspace, stream)
        by_profile = {pid: [e for e in events if e.profile_id == pid] for pid in live}
        stored_events = {e.pk: e for e in Event.objects.filter(workspace=workspace)}
        rows: dict[int, list[EventLike]] = {
            pid: [stored_events[e.id] for e in evs] for pid, evs in by_profile.items() if evs
        }
        for index, definition in enumerate(traits):
            trait = ComputedTrait.objects.create(
                workspace=workspace, key=f"t{index}", name=f"t{index}", **definition
            )
            expected = {pid: oracle(definition, by_profile[pid], NOW) for pid in live}

            # 1. the SELECT over every live profile of the workspace
            query = values_query(trait, workspace_id=workspace.pk, now=NOW)
            with connection.cursor() as cursor:
                cursor.execute(query.sql, query.params)
                selected = dict(cursor.fetchall())
            assert set(selected) == set(live)
            for pid in live:
                value = selected[pid]
                actual = MISSING if value is None else _loads(value)
                _check("select", definition, actual, expected[pid], by_profile[pid])

            # 2. a full refresh writes Profile.computed
            services.computed_trait_refresh(trait=trait, now=NOW)
            written = _stored([*live, merged], trait.key)
            assert written[merged] is MISSING
            for pid in live:
                _check("refresh", definition, written[pid], expected[pid], by_profile[pid])

            # 3. the pipeline stage, from nothing, with every event as one batch
            Profile.objects.filter(pk__in=live).update(computed={})
            with time_machine.travel(NOW, tick=False):
                services.computed_traits_update_for_batch(Resolution(touched=dict(rows)))
            incremental = _stored(live, trait.key)
            since = NOW - timedelta(days=definition["window_days"] or 100000)
            for pid in live:
                hit = any(
                    e.type == "track"
                    and (not definition["event"] or e.name == definition["event"])
                    and e.ts >= since
                    for e in by_profile[pid]
                )
                # a touched profile without matching events only gets a count's 0
                filled = pid in rows and definition["aggregation"] in COUNTS
                want = expected[pid] if hit or filled else None
                _check("incremental", definition, incremental[pid], want, by_profile[pid])
        transaction.set_rollback(True)


def _loads(value: Any) -> Any:
    import json

    return json.loads(value) if isinstance(value, str) else value


# ---- through the real pipeline ---------------------------------------------------------------


send = partial(send_events, drain=3)  # small batches: many incremental steps


def track(who: dict[str, str], name: str, days_ago: float, **props: Any) -> dict[str, Any]:
    ts = datetime.now(UTC) - timedelta(days=days_ago)
    return {"type": "track", "event": name, "timestamp": ts.isoformat(), "properties": props, **who}


def _diff(a: dict[int, dict[str, Any]], b: dict[int, dict[str, Any]]) -> list[Any]:
    return [
        (pid, k, a.get(pid, {}).get(k), b.get(pid, {}).get(k))
        for pid in set(a) | set(b)
        for k in set(a.get(pid, {})) | set(b.get(pid, {}))
        if a.get(pid, {}).get(k) != b.get(pid, {}).get(k)
    ]


def _values(tenant: Tenant) -> dict[int, dict[str, Any]]:
    return {
        p.pk: {k: v for k, v in p.computed.items() if k != UPDATED}
        for p in Profile.objects.filter(workspace=tenant.workspace, merged_into=None)
    }


def test_pipeline_increments_equal_a_full_refresh(tenant_a: Tenant, client: Client) -> None:
    definitions_: list[dict[str, Any]] = [
        {"key": "orders", "aggregation": "count", "event": "Order Completed"},
        {"key": "spent", "aggregation": "sum", "event": "Order Completed", "property": "revenue"},
        {"key": "avg_basket", "aggregation": "avg", "event": "Order Completed",
         "property": "revenue", "where": [{"property": "revenue", "op": "gt", "value": 0}]},
        {"key": "fav_category", "aggregation": "most_frequent", "property": "category"},
        {"key": "first_plan", "aggregation": "first", "event": "Signed Up", "property": "plan"},
        {"key": "last_sku", "aggregation": "last", "property": "item.sku"},
        {"key": "recent_views", "aggregation": "count", "event": "Product Viewed",
         "window_days": 7},
        {"key": "categories", "aggregation": "distinct_count", "property": "category"},
        {"key": "cheapest", "aggregation": "min", "property": "price", "window_days": 30},
    ]  # fmt: skip
    for data in definitions_:
        services.computed_trait_create(
            workspace=tenant_a.workspace, actor=None, data={"name": data["key"], **data}
        )
    anon, user, other = {"anonymousId": "anon-1"}, {"userId": "u-1"}, {"userId": "u-2"}
    send(
        client,
        tenant_a,
        track(anon, "Product Viewed", 10, category="shoes", price="49.90"),
        track(anon, "Product Viewed", 2, category="shoes", price=30, item={"sku": "S-1"}),
        track(user, "Signed Up", 20, plan="free"),
        track(user, "Order Completed", 15, revenue=120, category="hats", item={"sku": "H-9"}),
        track(other, "Order Completed", 1, revenue="35.5", category="bags"),
        {"type": "page", "anonymousId": "anon-1", "name": "Home"},
    )
    send(
        client,
        tenant_a,
        track(user, "Product Viewed", 1, category="hats", price=12),
        track(other, "Signed Up", 3, plan="pro"),
        track(other, "Order Completed", 0.5, revenue=-5, category="bags"),
    )
    # identify links the anonymous visitor to u-1: the two existing profiles merge
    send(client, tenant_a, {"type": "identify", "anonymousId": "anon-1", "userId": "u-1"})
    send(
        client,
        tenant_a,
        track(user, "Order Completed", 0.1, revenue="80", category="shoes", item={"sku": "S-2"}),
        track(anon, "Product Viewed", 0.2, category="shoes", price="n/a"),
    )
    merge = ProfileMerge.objects.get(workspace=tenant_a.workspace)
    incremental = _values(tenant_a)
    assert len(incremental) == 2
    winner = incremental[merge.winner_id]
    assert winner["orders"] == 2 and winner["spent"] == 200
    assert winner["fav_category"] == "shoes" and winner["categories"] == 2
    assert winner["first_plan"] == "free" and winner["last_sku"] == "S-2"
    assert winner["recent_views"] == 3 and winner["cheapest"] == 12

    for trait in ComputedTrait.objects.filter(workspace=tenant_a.workspace):
        services.computed_trait_refresh(trait=trait)
    assert _values(tenant_a) == incremental, _diff(_values(tenant_a), incremental)

    # a split moves the anonymous events back; the hook recomputes both sides
    profile_split(workspace=tenant_a.workspace, merge_id=merge.pk)
    after_split = _values(tenant_a)
    assert len(after_split) == 3
    for trait in ComputedTrait.objects.filter(workspace=tenant_a.workspace):
        services.computed_trait_refresh(trait=trait)
    assert _values(tenant_a) == after_split, _diff(_values(tenant_a), after_split)
    # the anonymous side has two views in the last week, u-1 one, u-2 none
    assert sorted(v["recent_views"] for v in after_split.values()) == [0, 1, 2]
