"""Compile a computed trait into one set-based SQL statement.

The matching events of a trait are the profile's track events (`profiles_profileevent` joined
to `profiles_event` for the properties) with the trait's event name ("" = any), inside its
window (`timestamp >= now - window_days`), passing every `where` filter. Each statement
aggregates them per profile for a set of profiles at once (never one statement per profile).

Values stay JSON (jsonb), so strings stay strings and numbers numbers. JSON `null` counts as
absent everywhere ("null = absent", as in the collector). Semantics per aggregation, over the
matching events:

- count: number of matching events; 0 when none.
- sum / avg / min / max: over the numeric values of the property: JSON numbers and numeric
  strings (`NUMERIC_STRING`, e.g. "12.50", " 7 ", "1e3"); anything else is ignored, never an
  error. Absent when no numeric value (avg of nothing is absent, not 0).
- first / last: the property's value on the earliest / latest matching event that carries
  the property, ordered by (timestamp, event id); any JSON type. Absent when none carries it.
- most_frequent: the value occurring most often (JSON equality: 1 and 1.0 are one value,
  "1" another); ties go to the value seen most recently (latest (timestamp, event id)), and
  the value is returned as written on that latest occurrence. Absent when none.
- distinct_count: number of distinct present values (JSON equality); 0 when none.

Filters (`where`): eq / neq with a string compare to JSON strings exactly (case-sensitive);
with a number, numerically to JSON numbers and numeric strings; with a boolean, to JSON
booleans. gt / gte / lt / lte take a number and compare numerically (non-numeric values never
match). contains / not_contains take a string: substring of a JSON string (case-sensitive),
or an element of a JSON array equal to it. in takes a list of strings / numbers / booleans
(eq to any). exists / not_exists: the property is present and not null. neq, not_contains and
not_exists also match events without the property.

Property paths are dotted (`items.0.price`; a numeric segment also indexes arrays) and go to
Postgres as a text[] parameter for `#>`: user input is always bound, never formatted in."""

# Statements are assembled from this module's fixed fragments; every user value is a bound
# parameter (see _filter and the %(name)s placeholders), so S608 does not apply here.
# ruff: noqa: S608
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from cdp import paths
from profiles.models import Aggregation, ComputedTrait

# A numeric string: what Postgres' numeric input accepts, minus NaN/Infinity, with at most a
# two-digit exponent and 64 characters, so the cast can never fail and every value (and any
# realistic sum) still fits a double for the JSON readers.
NUMERIC_STRING = (
    r"^[ \t\n\r\f\v]*[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]{1,2})?[ \t\n\r\f\v]*$"  # noqa: E501
)
NUMERIC_STRING_MAX = 64

COUNT_LIKE = frozenset({Aggregation.COUNT, Aggregation.DISTINCT_COUNT})
UPDATED = "_updated"  # Profile.computed[UPDATED][key] = when the value was last written


@dataclass(frozen=True, slots=True)
class Query:
    sql: str
    params: dict[str, Any]


def split_path(path: str) -> list[str]:
    """A property path's keys, for `#>` (cdp.paths syntax)."""
    return list(paths.split_path(path))


def empty_value(trait: ComputedTrait) -> int | None:
    """The value of a profile without matching events (None = the key is absent)."""
    return 0 if trait.aggregation in COUNT_LIKE else None


def _number(column: str) -> str:
    """The numeric value of a jsonb column, or NULL when it is not a number / numeric string.
    CASE guarantees the casts only run on values that pass the checks."""
    text = f"({column} #>> '{{}}')"
    return (
        f"(CASE jsonb_typeof({column}) WHEN 'number' THEN ({column})::numeric "
        f"WHEN 'string' THEN CASE WHEN length({text}) <= {NUMERIC_STRING_MAX} "
        f"AND {text} ~ %(numeric_re)s THEN {text}::numeric END END)"
    )


def _scalar_eq(column: str, value: Any, name: str, params: dict[str, Any]) -> str:
    if isinstance(value, bool):
        params[name] = value
        return (
            f"(CASE WHEN jsonb_typeof({column}) = 'boolean' "
            f"THEN ({column})::boolean = %({name})s::boolean ELSE false END)"
        )
    if isinstance(value, int | float):
        params[name] = _decimal(value)
        return f"({_number(column)} = %({name})s::numeric)"
    params[name] = str(value)
    return f"(jsonb_typeof({column}) = 'string' AND ({column} #>> '{{}}') = %({name})s::text)"


def _decimal(value: int | float) -> Decimal:
    # repr of a float is the shortest text that round-trips: what JSON carried
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _filter(column: str, op: str, value: Any, name: str, params: dict[str, Any]) -> str:
    if op == "exists":
        return f"({column} IS NOT NULL)"
    if op == "not_exists":
        return f"({column} IS NULL)"
    if op == "eq":
        return _scalar_eq(column, value, name, params)
    if op == "neq":
        return f"(NOT coalesce({_scalar_eq(column, value, name, params)}, false))"
    if op in ("gt", "gte", "lt", "lte"):
        sign = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
        params[name] = _decimal(value)
        return f"({_number(column)} {sign} %({name})s::numeric)"
    if op in ("contains", "not_contains"):
        params[name] = str(value)
        test = (
            f"(CASE jsonb_typeof({column}) "
            f"WHEN 'string' THEN strpos({column} #>> '{{}}', %({name})s::text) > 0 "
            f"WHEN 'array' THEN {column} @> jsonb_build_array(%({name})s::text) "
            f"ELSE false END)"
        )
        return test if op == "contains" else f"(NOT coalesce({test}, false))"
    if op == "in":
        parts = []
        strings = [v for v in value if isinstance(v, str)]
        numbers = [
            _decimal(v) for v in value if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        booleans = [v for v in value if isinstance(v, bool)]
        if strings:
            params[f"{name}_s"] = strings
            parts.append(
                f"(jsonb_typeof({column}) = 'string' "
                f"AND ({column} #>> '{{}}') = ANY(%({name}_s)s::text[]))"
            )
        if numbers:
            params[f"{name}_n"] = numbers
            parts.append(f"({_number(column)} = ANY(%({name}_n)s::numeric[]))")
        if booleans:
            params[f"{name}_b"] = booleans
            parts.append(
                f"(CASE WHEN jsonb_typeof({column}) = 'boolean' "
                f"THEN ({column})::boolean = ANY(%({name}_b)s::boolean[]) ELSE false END)"
            )
        return "(" + " OR ".join(parts or ["false"]) + ")"
    raise ValueError(f"unknown operator {op!r}")  # validated before it gets here


def _matching(
    trait: ComputedTrait,
    *,
    workspace_id: int,
    now: datetime,
    profile_ids: Sequence[int] | None,
    params: dict[str, Any],
) -> str:
    """SELECT of the trait's matching events: (profile_id, ts, event_id, v) where v is the
    property's jsonb value (NULL when absent or null)."""
    params["ws"] = workspace_id
    extract = ["NULL::jsonb AS v"]
    conditions = ["pe.workspace_id = %(ws)s", "pe.type = 'track'"]
    if trait.property:
        params["path"] = split_path(trait.property)
        extract = ["NULLIF(e.properties #> %(path)s::text[], 'null'::jsonb) AS v"]
        if trait.aggregation != Aggregation.COUNT:
            conditions.append("x.v IS NOT NULL")
    if trait.event:
        params["event"] = trait.event
        conditions.append("pe.event = %(event)s::text")
    if trait.window_days:
        params["since"] = now - timedelta(days=trait.window_days)
        conditions.append('pe."timestamp" >= %(since)s::timestamptz')
    for index, item in enumerate(trait.where or []):
        column = f"x.w{index}"
        params[f"w{index}_path"] = split_path(item["property"])
        extract.append(
            f"NULLIF(e.properties #> %(w{index}_path)s::text[], 'null'::jsonb) AS w{index}"
        )
        conditions.append(_filter(column, item["op"], item.get("value"), f"w{index}_v", params))
    params["numeric_re"] = NUMERIC_STRING  # used by numeric filters and aggregations
    if profile_ids is not None:
        params["ids"] = list(profile_ids)
        scope = "pe.profile_id = ANY(%(ids)s::bigint[])"
    else:
        scope = (
            "pe.profile_id IN (SELECT id FROM profiles_profile "
            "WHERE workspace_id = %(ws)s AND merged_into_id IS NULL)"
        )
    conditions.insert(1, scope)
    return (
        'SELECT pe.profile_id, pe."timestamp" AS ts, pe.event_id, x.v\n'
        "FROM profiles_profileevent pe\n"
        "JOIN profiles_event e ON e.id = pe.event_id AND e.workspace_id = pe.workspace_id\n"
        f"CROSS JOIN LATERAL (SELECT {', '.join(extract)}) x\n"
        "WHERE " + "\n  AND ".join(conditions)
    )


def _aggregate(trait: ComputedTrait) -> str:
    """SELECT profile_id, value FROM m (the matching events), one row per profile with a
    value (profiles without one are absent from the result)."""
    agg = trait.aggregation
    if agg == Aggregation.COUNT:
        return "SELECT profile_id, to_jsonb(count(*)) AS value FROM m GROUP BY profile_id"
    if agg == Aggregation.DISTINCT_COUNT:
        return "SELECT profile_id, to_jsonb(count(DISTINCT v)) AS value FROM m GROUP BY profile_id"
    if agg in (Aggregation.SUM, Aggregation.AVG, Aggregation.MIN, Aggregation.MAX):
        fn = str(agg)
        # numeric() drops the profiles whose values are all non-numeric (value NULL)
        return (
            f"SELECT profile_id, value FROM (SELECT profile_id, to_jsonb({fn}({_number('v')})) "
            "AS value FROM m GROUP BY profile_id) s WHERE value IS NOT NULL"
        )
    if agg in (Aggregation.FIRST, Aggregation.LAST):
        order = "ts, event_id" if agg == Aggregation.FIRST else "ts DESC, event_id DESC"
        return (
            f"SELECT DISTINCT ON (profile_id) profile_id, v AS value FROM m "
            f"ORDER BY profile_id, {order}"
        )
    if agg == Aggregation.MOST_FREQUENT:
        return (
            "SELECT DISTINCT ON (profile_id) profile_id, value FROM (\n"
            "  SELECT profile_id, count(*) AS n, min(rn) AS recent,\n"
            "         (array_agg(v ORDER BY rn))[1] AS value\n"
            "  FROM (SELECT profile_id, v, row_number() OVER (\n"
            "          PARTITION BY profile_id ORDER BY ts DESC, event_id DESC) AS rn\n"
            "        FROM m) ranked\n"
            "  GROUP BY profile_id, v\n"
            ") groups\n"
            "ORDER BY profile_id, n DESC, recent"
        )
    raise ValueError(f"unknown aggregation {agg!r}")


def values_query(
    trait: ComputedTrait,
    *,
    workspace_id: int,
    now: datetime,
    profile_ids: Sequence[int] | None = None,
) -> Query:
    """SELECT (profile_id, value jsonb) for the given live profiles (None = every live
    profile of the workspace); profiles without matching events get the empty value (NULL
    = absent)."""
    params: dict[str, Any] = {}
    matching = _matching(
        trait, workspace_id=workspace_id, now=now, profile_ids=profile_ids, params=params
    )
    params["empty"] = _empty_param(trait)
    if profile_ids is not None:
        source = "unnest(%(ids)s::bigint[]) AS t(id) JOIN profiles_profile p ON p.id = t.id"
    else:
        source = "profiles_profile p"
    sql = (
        f"WITH m AS (\n{matching}\n), agg AS (\n{_aggregate(trait)}\n)\n"
        "SELECT p.id, coalesce(agg.value, %(empty)s::jsonb) AS value\n"
        f"FROM {source} LEFT JOIN agg ON agg.profile_id = p.id\n"
        "WHERE p.workspace_id = %(ws)s AND p.merged_into_id IS NULL\n"
        "ORDER BY p.id"
    )
    return Query(sql, params)


def _empty_param(trait: ComputedTrait) -> str | None:
    empty = empty_value(trait)
    return None if empty is None else str(empty)


def update_query(
    trait: ComputedTrait,
    *,
    workspace_id: int,
    now: datetime,
    profile_ids: Sequence[int],
    fill_ids: Sequence[int] = (),
) -> Query:
    """UPDATE Profile.computed[trait.key] of the given live profiles in one statement: the
    aggregated value, or the empty value (count-like: 0; otherwise the key is removed).
    Rows whose value is unchanged are not rewritten; it returns the ids of those that were.
    `fill_ids`: profiles that only get the empty value where they have no value yet (new
    profiles of a batch, without matching events: a count trait reads 0 on every profile, not
    only on those refreshed since)."""
    params: dict[str, Any] = {}
    matching = _matching(
        trait, workspace_id=workspace_id, now=now, profile_ids=profile_ids, params=params
    )
    empty = _empty_param(trait)
    params.update(key=trait.key, at=now.isoformat(), empty=empty)
    params["fill"] = list(fill_ids) if empty is not None else []
    sql = f"""WITH m AS (
{matching}
), agg AS (
{_aggregate(trait)}
), r AS (
SELECT t.id, coalesce(agg.value, %(empty)s::jsonb) AS value, true AS recomputed
FROM unnest(%(ids)s::bigint[]) AS t(id) LEFT JOIN agg ON agg.profile_id = t.id
UNION ALL
SELECT t.id, %(empty)s::jsonb, false FROM unnest(%(fill)s::bigint[]) AS t(id)
)
UPDATE profiles_profile p SET computed = CASE
    WHEN r.value IS NULL THEN (p.computed - %(key)s::text) || jsonb_build_object(
        '{UPDATED}', coalesce(p.computed -> '{UPDATED}', '{{}}'::jsonb) - %(key)s::text)
    ELSE p.computed || jsonb_build_object(
        %(key)s::text, r.value,
        '{UPDATED}', coalesce(p.computed -> '{UPDATED}', '{{}}'::jsonb)
                     || jsonb_build_object(%(key)s::text, %(at)s::text))
    END
FROM r
WHERE p.id = r.id AND p.workspace_id = %(ws)s AND p.merged_into_id IS NULL
  AND CASE WHEN r.recomputed THEN (p.computed -> %(key)s::text) IS DISTINCT FROM r.value
           ELSE NOT (p.computed ? %(key)s::text) END
RETURNING p.id"""
    return Query(sql, params)


def remove_key_query(*, workspace_id: int, key: str) -> Query:
    """Remove a key (a deleted trait) from every profile of the workspace that has it."""
    sql = f"""UPDATE profiles_profile SET computed = (computed - %(key)s::text)
    || jsonb_build_object('{UPDATED}',
                          coalesce(computed -> '{UPDATED}', '{{}}'::jsonb) - %(key)s::text)
WHERE workspace_id = %(ws)s AND computed ? %(key)s::text"""
    return Query(sql, {"ws": workspace_id, "key": key})


def window_leavers_query(
    trait: ComputedTrait, *, workspace_id: int, since: datetime, until: datetime
) -> Query:
    """Live profiles with a track event (of the trait's event name) whose timestamp is in
    [since, until): events that were inside the window at the last refresh and are out of it
    now. The `where` filters are not applied (a superset only costs a recompute)."""
    params: dict[str, Any] = {"ws": workspace_id, "since": since, "until": until}
    conditions = [
        "pe.workspace_id = %(ws)s",
        "pe.type = 'track'",
        'pe."timestamp" >= %(since)s::timestamptz',
        'pe."timestamp" < %(until)s::timestamptz',
    ]
    if trait.event:
        params["event"] = trait.event
        conditions.append("pe.event = %(event)s::text")
    sql = (
        "SELECT DISTINCT pe.profile_id FROM profiles_profileevent pe\n"
        "JOIN profiles_profile p ON p.id = pe.profile_id AND p.merged_into_id IS NULL\n"
        "WHERE " + " AND ".join(conditions) + "\nORDER BY 1"
    )
    return Query(sql, params)


# ---- scheduled built-ins ---------------------------------------------------------------------

# RFM quintiles among the live profiles with at least one order. Each dimension is ranked
# ascending (recency as minus the days since the last order, so 5 = most recent) with
# NTILE(5); identical values never straddle two scores: a value gets the lowest score any of
# its equals received (the score of its first position). That is, score(x) = 1 + the number
# of buckets b in 1..4 whose largest value is below x: this query finds those largest values,
# then the chunked updates score every profile from them.
_DAYS_SINCE_LAST_ORDER = (
    "greatest(0, floor(extract(epoch FROM (%(now)s::timestamptz - {p}last_order_at)) / 86400))"
    "::bigint"
)
RFM_THRESHOLDS = f"""WITH buyers AS (
    SELECT -{_DAYS_SINCE_LAST_ORDER.format(p="")}::numeric AS r, order_count::numeric AS f,
           revenue::numeric AS m
    FROM profiles_profile
    WHERE workspace_id = %(ws)s AND merged_into_id IS NULL
      AND order_count >= 1 AND last_order_at IS NOT NULL
)
SELECT 'r', nt, max(x) FROM (SELECT ntile(5) OVER (ORDER BY r) AS nt, r AS x FROM buyers) t
GROUP BY nt
UNION ALL
SELECT 'f', nt, max(x) FROM (SELECT ntile(5) OVER (ORDER BY f) AS nt, f AS x FROM buyers) t
GROUP BY nt
UNION ALL
SELECT 'm', nt, max(x) FROM (SELECT ntile(5) OVER (ORDER BY m) AS nt, m AS x FROM buyers) t
GROUP BY nt"""


def _score(column: str, dim: str) -> str:
    terms = " + ".join(
        f"coalesce(({column} > %({dim}{bucket})s::numeric)::int, 0)" for bucket in range(1, 5)
    )
    return f"(1 + {terms})"


_SEGMENT = """CASE
    WHEN r <= 2 AND f <= 2 THEN 'Hibernating'
    WHEN r <= 2 AND f <= 4 THEN 'At Risk'
    WHEN r <= 2 THEN 'Can''t Lose Them'
    WHEN r = 3 AND f <= 2 THEN 'About to Sleep'
    WHEN r = 3 AND f = 3 THEN 'Need Attention'
    WHEN f >= 4 AND r <= 4 THEN 'Loyal Customers'
    WHEN f >= 4 THEN 'Champions'
    WHEN f = 1 AND r = 4 THEN 'Promising'
    WHEN f = 1 THEN 'New Customers'
    ELSE 'Potential Loyalists'
END"""

# (the CTEs of BUILTIN_UPDATE are MATERIALIZED so that each expression is evaluated once per
# row instead of being inlined into every place that uses it)
# engagement_score() of profile_state, in SQL on the same float8 operations (so the values are
# identical); the clamps keep power() clear of the underflow error Postgres raises where
# Python quietly returns 0.0 (both give the same score there: 0, or 100).
_ENGAGEMENT = """CASE WHEN p.engagement_log2 IS NULL THEN 0 ELSE (
    SELECT CASE WHEN x > 1000 THEN 100 ELSE round(100.0 * (1.0 - power(2.0::float8, -x)))::int END
    FROM (SELECT power(2.0::float8, greatest(least(
              p.engagement_log2 - %(days)s::float8 / %(half_life)s::float8, 60.0), -1000.0))
          / %(scale)s::float8 AS x) d
) END"""

BUILTIN_UPDATE = f"""WITH base AS MATERIALIZED (
    SELECT p.id, p.order_count, p.revenue,
           CASE WHEN p.order_count > 0 THEN round(p.revenue / p.order_count, 2) END AS aov,
           CASE WHEN p.order_count > 0 AND p.last_order_at IS NOT NULL
                THEN {_DAYS_SINCE_LAST_ORDER.format(p="p.")} END AS days,
           {_ENGAGEMENT} AS engagement
    FROM profiles_profile p
    WHERE p.id = ANY(%(ids)s::bigint[]) AND p.workspace_id = %(ws)s AND p.merged_into_id IS NULL
), scored AS MATERIALIZED (
    SELECT base.*,
           CASE WHEN days IS NOT NULL THEN {_score("(-days)::numeric", "r")} END AS r,
           CASE WHEN days IS NOT NULL THEN {_score("order_count::numeric", "f")} END AS f,
           CASE WHEN days IS NOT NULL THEN {_score("revenue::numeric", "m")} END AS m
    FROM base
), v AS MATERIALIZED (
    SELECT id, jsonb_strip_nulls(jsonb_build_object(
        'average_order_value', aov,
        'days_since_last_order', days,
        'engagement_score', engagement,
        'rfm_recency', r,
        'rfm_frequency', f,
        'rfm_monetary', m,
        'rfm_score', r::text || f::text || m::text,
        'rfm_segment', CASE WHEN r IS NOT NULL THEN {_SEGMENT} END
    )) AS vals
    FROM scored
)
UPDATE profiles_profile p SET computed = (p.computed - %(keys)s::text[]) || v.vals
    || jsonb_build_object('{UPDATED}',
        (coalesce(p.computed -> '{UPDATED}', '{{}}'::jsonb) - %(keys)s::text[])
        || coalesce((SELECT jsonb_object_agg(k, %(at)s::text) FROM jsonb_object_keys(v.vals) k),
                    '{{}}'::jsonb))
FROM v
WHERE p.id = v.id
  AND (p.computed - %(keys)s::text[] - '{UPDATED}'::text) || v.vals
      IS DISTINCT FROM (p.computed - '{UPDATED}'::text)
RETURNING p.id"""


def external_values_query(
    *, workspace_id: int, profile_ids: Sequence[int], objects: Sequence[str], at: str
) -> Query:
    """Write values computed elsewhere (model scores) to Profile.computed: each profile's
    JSON object of key -> value merged in, one row version per profile however many keys;
    returns the ids whose values changed."""
    sql = f"""WITH r AS (
SELECT * FROM unnest(%(ids)s::bigint[], %(objects)s::jsonb[]) AS r(id, obj)
)
UPDATE profiles_profile p SET computed = p.computed || r.obj || jsonb_build_object(
    '{UPDATED}', coalesce(p.computed -> '{UPDATED}', '{{}}'::jsonb)
                 || (SELECT jsonb_object_agg(k, %(at)s::text) FROM jsonb_object_keys(r.obj) k))
FROM r
WHERE p.id = r.id AND p.workspace_id = %(ws)s AND p.merged_into_id IS NULL
  AND NOT (p.computed @> r.obj)
RETURNING p.id"""
    params = {"ws": workspace_id, "ids": list(profile_ids), "objects": list(objects), "at": at}
    return Query(sql, params)


def drop_key_except_query(*, workspace_id: int, key: str, keep: Sequence[int]) -> Query:
    """Remove a key from the workspace's profiles that have it, but those in `keep` (the
    profiles a scoring run just wrote); returns their ids."""
    sql = f"""UPDATE profiles_profile SET computed = (computed - %(key)s::text)
    || jsonb_build_object('{UPDATED}',
                          coalesce(computed -> '{UPDATED}', '{{}}'::jsonb) - %(key)s::text)
WHERE workspace_id = %(ws)s AND computed ? %(key)s::text AND NOT (id = ANY(%(keep)s::bigint[]))
RETURNING id"""
    return Query(sql, {"ws": workspace_id, "key": key, "keep": list(keep)})
