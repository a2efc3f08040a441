# ruff: noqa: S608 - SQL is assembled from constants and %(name)s placeholders only
"""Compile a checked rule tree into ONE SQL query over profiles and events.

Shapes chosen to stay set-based on large tables: trait conditions are predicates on the profile
row; an event condition is `p.id IN (SELECT profile_id … GROUP BY profile_id HAVING count(*)
…)` — or `NOT IN` the complement when a count of zero qualifies ("never performed", "fewer
than 3") — so Postgres aggregates the matching events once instead of once per profile. The
entry point for a few profiles (real-time evaluation after events) adds
`profile_id = ANY(…)` inside every subquery, so its cost depends on those profiles only.

Semantics (the Python evaluator in evaluate.py is the reference): a JSON value is absent when
the key (or any key on its dotted path) is missing or null; numbers and numeric strings compare
as coercion.py states (number operators and equality with a number read both; equality with
a string or a boolean is exact JSON equality); string operators need a string and are
case-insensitive (regex is case-sensitive); dates are ISO strings or timestamp columns;
neq/not_in/not_contains/not_exists match absent values. Every value is a bound parameter;
identifiers come only from the validated tree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

from profiles.coercion import is_number, numeric_sql
from segments.rules import nodes as n

# ISO dates the date operators read from JSON strings (others never match); the cast goes
# through cdp_try_timestamptz() so that a well-formed but impossible date is just absent
ISO_DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?)?$"
PROFILE_COLUMNS = frozenset(
    {
        "first_seen",
        "last_seen",
        "event_count",
        "order_count",
        "revenue",
        "first_order_at",
        "last_order_at",
    }
)


@dataclass
class _Sql:
    """Named parameters: an expression holding a placeholder may appear several times in the
    SQL (a JSON value is tested for its type and then read), and each use binds the same
    value."""

    workspace_id: int
    now: datetime
    profile_ids: list[int] | None
    params: dict[str, Any] = field(default_factory=dict)

    def ids(self) -> str:
        """The profile ids as one bigint[] parameter, bound once however often it is used."""
        if "ids" not in self.params:
            self.params["ids"] = self.profile_ids
        return "%(ids)s::bigint[]"

    def given_profiles(self) -> str:
        """FROM clause (and an open WHERE) of the live profiles among the given ids, driven
        by the id list: one primary-key look-up each, and the rule's conditions evaluated for
        those rows only. The LATERAL … OFFSET 0 fences keep that order whatever the planner's
        statistics say (a young, never-analysed table otherwise gets the whole workspace
        filtered through per-profile subqueries)."""
        return (
            f"unnest({self.ids()}) AS given(id) CROSS JOIN LATERAL ("
            "SELECT p.* FROM profiles_profile p WHERE p.id = given.id "
            f"AND p.workspace_id = {self.param(self.workspace_id)} AND p.merged_into_id IS NULL "
            "OFFSET 0) AS p WHERE true"
        )

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _compile(node: n.Node, q: _Sql) -> str:
    if isinstance(node, n.All):
        return "(" + " AND ".join(_compile(c, q) for c in node.children) + ")"
    if isinstance(node, n.AnyOf):
        return "(" + " OR ".join(_compile(c, q) for c in node.children) + ")"
    if isinstance(node, n.Not):
        return f"(NOT {_compile(node.child, q)})"
    if isinstance(node, n.TraitCondition):
        return _trait(node, q)
    if isinstance(node, n.EventCondition):
        return _event(node, q)
    if isinstance(node, n.SegmentCondition):
        if q.profile_ids is not None:  # per profile: an index look-up each
            return (
                "EXISTS (SELECT 1 FROM segments_membership m WHERE m.profile_id = p.id "
                f"AND m.segment_id = {q.param(node.segment_id)} AND m.exited_at IS NULL)"
            )
        return (
            "p.id IN (SELECT m.profile_id FROM segments_membership m "
            f"WHERE m.segment_id = {q.param(node.segment_id)} AND m.exited_at IS NULL)"
        )
    if isinstance(node, n.RandomBucket):
        return (
            f"(('x' || substr(md5({q.param(node.salt)} || ':' || p.id::text), 1, 8))"
            f"::bit(32)::bigint %% 10000 < {q.param(node.percent * 100)})"
        )
    if isinstance(node, n.ConsentCondition):
        from consent.enforcement import consent_sql

        allowed = consent_sql(
            profile_column="p.id",
            workspace_id=q.workspace_id,
            purpose=node.purpose,
            param=q.param,
            per_profile=q.profile_ids is not None,
        )
        # "granted": may be used for the purpose; "denied": may not (said no, withdrew, or
        # never said yes to an opt-in purpose)
        return allowed if node.status == "granted" else f"(NOT {allowed})"
    raise TypeError(f"not a rule node: {node!r}")


# ---- traits -------------------------------------------------------------------------------


def _trait(node: n.TraitCondition, q: _Sql) -> str:
    ref = node.ref
    if ref.store == "column":
        if ref.name not in PROFILE_COLUMNS:
            raise ValueError(f"not a profile column: {ref.name}")
        return _column(f"p.{ref.name}", ref.kind, node.comparison, q)
    return _json_value(_trait_json(ref, q), node.comparison, q)


def _trait_json(ref: n.TraitRef, q: _Sql) -> str:
    """The jsonb value of a JSON trait: a key of the object, or a path into it."""
    store = "p.traits" if ref.store == "traits" else "p.computed"
    if not ref.path:
        return f"({store} -> {q.param(ref.name)})"
    return f"({store} #> {q.param(list(ref.keys))}::text[])"


def _reference_time(value: Any, q: _Sql) -> datetime:
    if isinstance(value, n.RelativeDate):
        return q.now - timedelta(days=value.days_ago)
    assert isinstance(value, datetime)
    return value


def _json_value(v: str, c: n.Comparison, q: _Sql) -> str:
    """Predicate on a jsonb expression `v` (SQL NULL when the key is missing)."""
    present = f"({v} IS NOT NULL AND jsonb_typeof({v}) <> 'null')"
    op, value = c.op, c.value
    if op == "exists":
        return present
    if op == "not_exists":
        return f"(NOT {present})"
    if op in ("eq", "neq", "in", "not_in"):
        items = [value] if op in ("eq", "neq") else list(value)
        numbers = [Decimal(str(item)) for item in items if is_number(item)]
        others = [_json(item) for item in items if not is_number(item)]
        tests = []
        if others:
            tests.append(f"COALESCE({v} = ANY({q.param(others)}::jsonb[]), false)")
        if numbers:
            number = numeric_sql(v, q.param)
            tests.append(f"COALESCE({number} = ANY({q.param(numbers)}::numeric[]), false)")
        member = tests[0] if len(tests) == 1 else "(" + " OR ".join(tests) + ")"
        return member if op in ("eq", "in") else f"(NOT {member})"
    if op in n.NUMBER_OPS or op == "between":
        number = numeric_sql(v, q.param)
        return f"COALESCE({_number_test(number, op, value, q)}, false)"
    text = f"({v} #>> '{{}}')"
    if op in n.STRING_OPS:
        if op == "regex":
            test = f"{text} ~ {q.param(value)}"
        elif op in ("contains", "not_contains"):
            test = f"strpos(lower({text}), lower({q.param(value)})) > 0"
        elif op == "starts_with":
            test = f"starts_with(lower({text}), lower({q.param(value)}))"
        else:  # ends_with
            test = f"right(lower({text}), char_length({q.param(value)})) = lower({q.param(value)})"
        matched = f"(CASE WHEN jsonb_typeof({v}) = 'string' THEN {test} ELSE false END)"
        return f"(NOT {matched})" if op == "not_contains" else matched
    # before / after / within_last on an ISO date string
    when = (
        f"(CASE WHEN jsonb_typeof({v}) = 'string' AND {text} ~ {q.param(ISO_DATE_PATTERN)} "
        f"THEN cdp_try_timestamptz({text}) END)"
    )
    return _date_test(when, op, value, q)


def _number_test(expr: str, op: str, value: Any, q: _Sql) -> str:
    if op == "between":
        low, high = value
        return f"{expr} BETWEEN {q.param(Decimal(str(low)))} AND {q.param(Decimal(str(high)))}"
    sign = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
    return f"{expr} {sign} {q.param(Decimal(str(value)))}"


def _date_test(expr: str, op: str, value: Any, q: _Sql) -> str:
    if op == "within_last":
        since = q.now - timedelta(seconds=value)
        # (now − W, now], like event windows: a value leaves at exactly its time + W
        return f"COALESCE({expr} > {q.param(since)} AND {expr} <= {q.param(q.now)}, false)"
    sign = "<" if op == "before" else ">"
    return f"COALESCE({expr} {sign} {q.param(_reference_time(value, q))}, false)"


def _column(expr: str, kind: str | None, c: n.Comparison, q: _Sql) -> str:
    op, value = c.op, c.value
    if op == "exists":
        return f"({expr} IS NOT NULL)"
    if op == "not_exists":
        return f"({expr} IS NULL)"
    if kind == "datetime":
        return _date_test(expr, op, value, q)
    if op in ("eq", "neq", "in", "not_in"):
        items = [value] if op in ("eq", "neq") else list(value)
        numbers = [Decimal(str(v)) for v in items if not isinstance(v, bool | str)]
        member = f"COALESCE({expr} = ANY({q.param(numbers)}::numeric[]), false)"
        return member if op in ("eq", "in") else f"(NOT {member})"
    return f"COALESCE({_number_test(expr, op, value, q)}, false)"


# ---- events -------------------------------------------------------------------------------


def _satisfies(count: int, op: str, target: int) -> bool:
    return {
        "eq": count == target,
        "neq": count != target,
        "gt": count > target,
        "gte": count >= target,
        "lt": count < target,
        "lte": count <= target,
    }[op]


_COUNT_SIGN = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _event_filters(node: n.EventCondition, q: _Sql) -> list[str]:
    """Predicates on `pe` selecting the events the condition counts (but the profile). For
    given profiles there is no workspace predicate (their ids are the workspace's already), so
    the only index that fits is the per-profile one, whatever the statistics say."""
    where = [] if q.profile_ids is not None else [f"pe.workspace_id = {q.param(q.workspace_id)}"]
    where += ["pe.type = 'track'", f"pe.event = {q.param(node.event)}"]
    if node.within_seconds is not None:
        # (now − window, now]: an event leaves its window at exactly its time + the window
        where.append(f"pe.timestamp > {q.param(q.now - timedelta(seconds=node.within_seconds))}")
    if node.between is not None:
        low, high = node.between
        where.append(f"pe.timestamp BETWEEN {q.param(low)} AND {q.param(high)}")
    for f in node.filters:
        where.append(_json_value(f"(pe.properties #> {q.param(list(f.path))})", f.comparison, q))
    return where


def _event(node: n.EventCondition, q: _Sql) -> str:
    where = _event_filters(node, q)
    sign, target = _COUNT_SIGN[node.count_op], q.param(node.count)
    if q.profile_ids is not None:
        # a few given profiles: count each one's events through its (profile, time) index,
        # so the cost follows those profiles' events, not the workspace's
        return (
            f"((SELECT count(*) FROM profiles_profileevent pe WHERE pe.profile_id = p.id "
            f"AND {' AND '.join(where)}) {sign} {target})"
        )
    having = f"count(*) {sign} {target}"
    base = (
        f"SELECT pe.profile_id FROM profiles_profileevent pe "
        f"WHERE {' AND '.join(where)} GROUP BY pe.profile_id"
    )
    if _satisfies(0, node.count_op, node.count):
        # profiles without any matching event qualify: exclude those whose count does not
        return f"(p.id NOT IN ({base} HAVING NOT ({having})))"
    return f"(p.id IN ({base} HAVING {having}))"


# ---- entry points -------------------------------------------------------------------------


def members_query(
    node: n.Node,
    *,
    workspace_id: int,
    now: datetime,
    profile_id: int | None = None,
    profile_ids: Sequence[int] | None = None,
) -> tuple[str, dict[str, Any]]:
    """SQL returning the ids of the workspace's live profiles that match — all of them, or
    only among `profile_ids` (or the one `profile_id`) — with its named parameters."""
    ids = sorted(set(profile_ids)) if profile_ids is not None else None
    if profile_id is not None:
        ids = [profile_id]
    q = _Sql(workspace_id, now, ids)
    if ids is not None:
        head = f"SELECT p.id FROM {q.given_profiles()}"
    else:
        head = (
            "SELECT p.id FROM profiles_profile p "
            f"WHERE p.workspace_id = {q.param(workspace_id)} AND p.merged_into_id IS NULL"
        )
    return f"{head} AND {_compile(node, q)}", q.params


def _timed_leaves(node: n.Node) -> list[n.EventCondition | n.TraitCondition]:
    """The conditions whose answer can change by the passing of time alone: event windows,
    and date traits compared with a moving reference (within_last, before/after N days ago)."""
    if isinstance(node, n.All | n.AnyOf):
        return [leaf for child in node.children for leaf in _timed_leaves(child)]
    if isinstance(node, n.Not):
        return _timed_leaves(node.child)
    if isinstance(node, n.EventCondition) and node.within_seconds is not None:
        return [node]
    if isinstance(node, n.TraitCondition):
        comparison = node.comparison
        if comparison.op == "within_last" or (
            comparison.op in ("before", "after") and isinstance(comparison.value, n.RelativeDate)
        ):
            return [node]
    return []


_MICROSECOND = timedelta(microseconds=1)


def _trait_boundaries(leaf: n.TraitCondition, q: _Sql) -> str:
    """Per live profile, the next moment the date trait's answer flips:
    within_last W is true on (D, D + W] — it flips at D (entering) and D + W (leaving);
    after N days ago is true until D + N days; before N days ago is true from just after
    D + N days (the first representable instant, a microsecond later)."""
    ref, comparison = leaf.ref, leaf.comparison
    if ref.store == "column":
        if ref.name not in PROFILE_COLUMNS:
            raise ValueError(f"not a profile column: {ref.name}")
        date = f"p.{ref.name}"
    else:
        v = _trait_json(ref, q)
        date = (
            f"(CASE WHEN jsonb_typeof({v}) = 'string' AND ({v} #>> '{{}}') ~ "
            f"{q.param(ISO_DATE_PATTERN)} THEN cdp_try_timestamptz({v} #>> '{{}}') END)"
        )
    if comparison.op == "within_last":
        moments = [date, f"{date} + {q.param(timedelta(seconds=comparison.value))}"]
    else:
        assert isinstance(comparison.value, n.RelativeDate)
        shift = timedelta(days=comparison.value.days_ago)
        if comparison.op == "before":
            shift += _MICROSECOND
        moments = [f"{date} + {q.param(shift)}"]
    now = q.param(q.now)
    due = "LEAST(" + ", ".join(f"CASE WHEN {m} > {now} THEN {m} END" for m in moments) + ")"
    if q.profile_ids is not None:
        source = q.given_profiles()
    else:
        source = (
            f"profiles_profile p WHERE p.workspace_id = {q.param(q.workspace_id)} "
            "AND p.merged_into_id IS NULL"
        )
    return (
        f"SELECT profile_id, due FROM (SELECT p.id AS profile_id, {due} AS due "
        f"FROM {source}) AS t WHERE due IS NOT NULL"
    )


def window_boundaries_query(
    node: n.Node, *, workspace_id: int, now: datetime, profile_ids: Sequence[int] | None = None
) -> tuple[str, dict[str, Any]] | None:
    """For every profile whose answer could change by time alone, the next moment it might:
    the earliest in-window event's time + the window, or a date trait's next flip (see
    _trait_boundaries). Between such moments time alone cannot change the rule's answer, so
    re-evaluating a profile exactly then is exact. None when nothing in the rule moves with
    time."""
    leaves = _timed_leaves(node)
    if not leaves:
        return None
    q = _Sql(workspace_id, now, sorted(set(profile_ids)) if profile_ids is not None else None)
    parts = []
    for leaf in leaves:
        if isinstance(leaf, n.TraitCondition):
            parts.append(_trait_boundaries(leaf, q))
            continue
        assert leaf.within_seconds is not None
        window = timedelta(seconds=leaf.within_seconds)
        where = _event_filters(leaf, q)
        if q.profile_ids is not None:  # per given profile, through its (profile, time) index
            earliest = (
                f"(SELECT min(pe.timestamp) FROM profiles_profileevent pe "
                f"WHERE pe.profile_id = given.id AND {' AND '.join(where)})"
            )
            parts.append(
                f"SELECT profile_id, due FROM (SELECT given.id AS profile_id, "
                f"{earliest} + {q.param(window)} AS due FROM unnest({q.ids()}) AS given(id)) "
                "AS t WHERE due IS NOT NULL"
            )
            continue
        parts.append(
            f"SELECT pe.profile_id, min(pe.timestamp) + {q.param(window)} AS due "
            f"FROM profiles_profileevent pe WHERE {' AND '.join(where)} "
            "GROUP BY pe.profile_id"
        )
    union = " UNION ALL ".join(parts)
    return f"SELECT profile_id, min(due) AS due FROM ({union}) AS b GROUP BY profile_id", q.params


def count_members(node: n.Node, *, workspace_id: int, now: datetime) -> int:
    from django.db import connection

    sql, params = members_query(node, workspace_id=workspace_id, now=now)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM ({sql}) AS members", params)  # noqa: S608
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def sample_members(node: n.Node, *, workspace_id: int, now: datetime, limit: int) -> list[int]:
    from django.db import connection

    sql, params = members_query(node, workspace_id=workspace_id, now=now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"{sql} ORDER BY p.id DESC LIMIT %(limit)s",  # noqa: S608
            {**params, "limit": limit},
        )
        return [row[0] for row in cursor.fetchall()]
