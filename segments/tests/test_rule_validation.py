"""Rule validation: every kind of bad node is named by its path with a specific message, and all
of a rule's problems come back at once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.errors import ValidationFailed
from segments.rules import nodes as n
from segments.rules.validate import MAX_DEPTH, MAX_NODES, RuleContext, parse_rule

SEGMENTS = {"vip-users": 7, 7: 7}
CONTEXT = RuleContext(
    columns={"orders": ("order_count", "number"), "last_seen": ("last_seen", "datetime")},
    computed_keys={"rfm_segment"},
    find_segment=SEGMENTS.get,
    consent_purposes={"marketing_email"},
)
OPERATORS = ", ".join(n.ALL_OPS)
KINDS = "all, any, not, trait, event, segment, consent, random_bucket, model"


def errors(rule: Any, context: RuleContext = CONTEXT) -> list[dict[str, str]]:
    with pytest.raises(ValidationFailed) as caught:
        parse_rule(rule, context)
    assert caught.value.code == "validation_failed"
    found = [{"path": p, "message": m} for p, ms in caught.value.fields.items() for m in ms]
    first = found[0]
    assert caught.value.message == f"{first['path']}: {first['message']}"
    return found


def error(rule: Any, context: RuleContext = CONTEXT) -> tuple[str, str]:
    """The one error of a rule with one problem."""
    found = errors(rule, context)
    assert len(found) == 1, found
    return found[0]["path"], found[0]["message"]


def trait(op: str, *value: Any, name: str = "plan") -> dict[str, Any]:
    return {"trait": name, "op": op, **({"value": value[0]} if value else {})}


# ---- structure -------------------------------------------------------------------------------


def test_a_valid_rule_becomes_the_typed_tree() -> None:
    rule = {
        "all": [
            {"trait": "plan", "op": "eq", "value": "pro"},
            {"trait": "orders", "op": "gte", "value": 3},
            {"trait": "rfm_segment", "op": "in", "value": ["champions", "loyal"]},
            {
                "any": [
                    {
                        "event": "Order Completed",
                        "where": [{"property": "cart.total", "op": "gte", "value": 50}],
                        "count": {"op": "gte", "value": 3},
                        "within": {"days": 30},
                    },
                    {"not": {"segment": "vip-users"}},
                    {"event": "Signed Up", "never": True, "between": ["2026-01-01", "2026-02-01"]},
                ]
            },
            {"consent": "marketing_email", "status": "granted"},
            {"random_bucket": {"percent": 10}, "salt": "holdout"},
            {"trait": "signup", "op": "before", "value": {"days_ago": 7}},
        ]
    }
    jan, feb = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    assert parse_rule(rule, CONTEXT) == n.All(
        (
            n.TraitCondition(n.TraitRef("traits", "plan"), n.Comparison("eq", "pro")),
            n.TraitCondition(n.TraitRef("column", "order_count", "number"), n.Comparison("gte", 3)),
            n.TraitCondition(
                n.TraitRef("computed", "rfm_segment"),
                n.Comparison("in", ("champions", "loyal")),
            ),
            n.AnyOf(
                (
                    n.EventCondition(
                        "Order Completed",
                        (n.PropertyFilter(("cart", "total"), n.Comparison("gte", 50)),),
                        "gte",
                        3,
                        within_seconds=30 * 86400,
                    ),
                    n.Not(n.SegmentCondition(7)),
                    n.EventCondition("Signed Up", (), "eq", 0, between=(jan, feb)),
                )
            ),
            n.ConsentCondition("marketing_email", "granted"),
            n.RandomBucket(10.0, "holdout"),
            n.TraitCondition(
                n.TraitRef("traits", "signup"), n.Comparison("before", n.RelativeDate(7))
            ),
        )
    )


@pytest.mark.parametrize(
    ("rule", "path", "message"),
    [
        ({"all": []}, "rule.all", "expected a non-empty list of conditions or groups"),
        ({"any": {"trait": "plan"}}, "rule.any",
         "expected a non-empty list of conditions or groups"),
        ({"all": [{"any": []}]}, "rule.all[0].any",
         "expected a non-empty list of conditions or groups"),
        ({"trait": "plan", "event": "Signed Up"}, "rule",
         f"expected exactly one of {KINDS}; found trait, event"),
        ({"all": [trait("exists")], "not": trait("exists")}, "rule",
         f"expected exactly one of {KINDS}; found all, not"),
        ({"plan": "pro"}, "rule", f"expected exactly one of {KINDS}; found keys ['plan']"),
        ("plan = pro", "rule", "expected an object (a group or a condition)"),
        ({"all": [None]}, "rule.all[0]", "expected an object (a group or a condition)"),
        ({"all": [trait("exists")], "name": "x"}, "rule.name", "unknown field (allowed: all)"),
        ({"not": trait("exists"), "why": 1}, "rule.why", "unknown field (allowed: not)"),
        ({**trait("eq", "pro"), "values": ["pro"]}, "rule.values",
         "unknown field (allowed: trait, op, value)"),
        ({"event": "Signed Up", "within_days": 3}, "rule.within_days",
         "unknown field (allowed: event, where, count, within, between, never)"),
        ({"event": "x", "where": [{"property": "a", "op": "exists", "path": "b"}]},
         "rule.where[0].path", "unknown field (allowed: property, op, value)"),
        ({"event": "x", "count": {"op": "gte", "value": 1, "unit": "day"}}, "rule.count.unit",
         "unknown field (allowed: op, value)"),
        ({"segment": "vip-users", "version": 2}, "rule.version",
         "unknown field (allowed: segment)"),
        ({"random_bucket": 10, "seed": 3}, "rule.seed",
         "unknown field (allowed: random_bucket, salt)"),
        ({"trait": "", "op": "exists"}, "rule.trait", "expected a trait name"),
        ({"trait": 5, "op": "exists"}, "rule.trait", "expected a trait name"),
    ],
)  # fmt: skip
def test_structure_errors(rule: Any, path: str, message: str) -> None:
    assert error(rule) == (path, message)


def test_too_deep() -> None:
    rule: dict[str, Any] = trait("exists")
    for _ in range(MAX_DEPTH):
        rule = {"not": rule}
    parse_rule(rule, CONTEXT)  # the deepest allowed
    assert error({"all": [rule]}) == (
        "rule.all[0]" + ".not" * MAX_DEPTH,
        f"groups may be nested at most {MAX_DEPTH} deep",
    )


def test_too_many_nodes_is_said_once() -> None:
    parse_rule({"any": [trait("exists")] * (MAX_NODES - 1)}, CONTEXT)  # 200 with the group
    assert error({"any": [trait("exists")] * (MAX_NODES + 50)}) == (
        f"rule.any[{MAX_NODES - 1}]",
        f"a rule may have at most {MAX_NODES} nodes",
    )


# ---- operators and their values --------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "path", "message"),
    [
        # unknown or missing operator
        (trait("equals", "pro"), "rule.op", f"unknown operator 'equals'; one of {OPERATORS}"),
        ({"trait": "plan", "value": "pro"}, "rule.op",
         f"unknown operator None; one of {OPERATORS}"),
        (trait("EQ", "pro"), "rule.op", f"unknown operator 'EQ'; one of {OPERATORS}"),
        # presence takes no value; everything else needs one
        (trait("exists", True), "rule.value", "exists takes no value"),
        (trait("not_exists", None), "rule.value", "not_exists takes no value"),
        (trait("eq"), "rule.value", "eq needs a value"),
        (trait("before"), "rule.value", "before needs a value"),
        # eq / neq: a scalar
        (trait("eq", ["pro"]), "rule.value", "expected a string, number or boolean"),
        (trait("neq", None), "rule.value", "expected a string, number or boolean"),
        (trait("eq", {"a": 1}), "rule.value", "expected a string, number or boolean"),
        # gt / gte / lt / lte: a number, never a boolean or a numeric string
        (trait("gt", "5"), "rule.value", "expected a number"),
        (trait("lte", True), "rule.value", "expected a number"),
        (trait("gte", float("nan")), "rule.value", "expected a number"),
        # between: [low, high] numbers, in order
        (trait("between", [1]), "rule.value", "expected [low, high] numbers"),
        (trait("between", [1, "5"]), "rule.value", "expected [low, high] numbers"),
        (trait("between", {"low": 1, "high": 2}), "rule.value", "expected [low, high] numbers"),
        (trait("between", [5, 1]), "rule.value", "low must not be greater than high"),
        # in / not_in: 1 to 1000 scalars
        (trait("in", []), "rule.value", "expected a list of 1 to 1000 values"),
        (trait("not_in", "pro"), "rule.value", "expected a list of 1 to 1000 values"),
        (trait("in", list(range(1001))), "rule.value", "expected a list of 1 to 1000 values"),
        (trait("in", ["pro", ["free"]]), "rule.value",
         "expected strings, numbers or booleans in the list"),
        (trait("not_in", [None]), "rule.value",
         "expected strings, numbers or booleans in the list"),
        # string operators: a non-empty string
        (trait("contains", 5), "rule.value", "expected a non-empty string"),
        (trait("starts_with", ""), "rule.value", "expected a non-empty string"),
        (trait("ends_with", "x" * 1001), "rule.value", "expected a non-empty string"),
        (trait("not_contains", ["a"]), "rule.value", "expected a non-empty string"),
        (trait("regex", True), "rule.value", "expected a non-empty string"),
        # before / after: an ISO date or {"days_ago": N} with N in 0..3650
        (trait("before", "yesterday"), "rule.value",
         'expected an ISO 8601 date or {"days_ago": N}'),
        (trait("after", 20260301), "rule.value", 'expected an ISO 8601 date or {"days_ago": N}'),
        (trait("after", "2026-02-30"), "rule.value",
         'expected an ISO 8601 date or {"days_ago": N}'),
        (trait("before", {"days": 3}), "rule.value", 'expected a date or {"days_ago": N}'),
        (trait("before", {"days_ago": "3"}), "rule.value", 'expected a date or {"days_ago": N}'),
        (trait("before", {"days_ago": 3, "hours": 1}), "rule.value",
         'expected a date or {"days_ago": N}'),
        (trait("after", {"days_ago": -1}), "rule.value.days_ago", "expected 0 to 3650"),
        (trait("after", {"days_ago": 3651}), "rule.value.days_ago", "expected 0 to 3650"),
        # within_last: {"days": N} or {"hours": N}
        (trait("within_last", 7), "rule.value", 'expected {"days": N} or {"hours": N}'),
        (trait("within_last", {"weeks": 1}), "rule.value", 'expected {"days": N} or {"hours": N}'),
        (trait("within_last", {"days": 1, "hours": 2}), "rule.value",
         'expected {"days": N} or {"hours": N}'),
        (trait("within_last", {"days": 0}), "rule.value.days",
         "expected an integer from 1 to 3650"),
        (trait("within_last", {"hours": 1.5}), "rule.value.hours",
         "expected an integer from 1 to 87600"),
        # a column trait takes the operators of its type
        (trait("gt", 3, name="last_seen"), "rule.op",
         "a date trait takes before, after, within_last or exists; not gt"),
        (trait("eq", "2026-03-01", name="last_seen"), "rule.op",
         "a date trait takes before, after, within_last or exists; not eq"),
        (trait("contains", "1", name="orders"), "rule.op", "a number trait does not take contains"),
        (trait("before", {"days_ago": 1}, name="orders"), "rule.op",
         "a number trait does not take before"),
    ],
)  # fmt: skip
def test_operator_value_errors(condition: dict[str, Any], path: str, message: str) -> None:
    assert error(condition) == (path, message)
    # the same check applies to an event property filter, at the filter's path
    if condition["trait"] not in CONTEXT.columns:
        item = {"property": "a.b", **{k: v for k, v in condition.items() if k != "trait"}}
        where_path = path.replace("rule", "rule.where[0]", 1)
        assert error({"event": "x", "where": [item]}) == (where_path, message)


def test_bad_regex() -> None:
    path, message = error(trait("regex", "(pro"))
    assert path == "rule.value"
    assert message.startswith("not a valid regular expression: missing ), unterminated subpattern")


@pytest.mark.parametrize(
    ("condition", "path", "message"),
    [
        (trait("gt", float("inf")), "rule.value", "expected a number"),
        (trait("gt", float("-inf")), "rule.value", "expected a number"),
        (trait("gt", float("nan")), "rule.value", "expected a number"),
        (trait("gt", 10**31), "rule.value", "expected a number"),
        (trait("between", [0, 10**400]), "rule.value", "expected [low, high] numbers"),
        ({"event": "x", "count": {"op": "gte", "value": 10**10}}, "rule.count.value",
         "expected an integer from 0 to 1,000,000,000"),
        (trait("eq", "pro\x00"), "rule.value",
         "text may not contain the NUL character (\\u0000)"),
        ({"event": "Order\x00", "where": [{"property": "a", "op": "exists"}]}, "rule.event",
         "text may not contain the NUL character (\\u0000)"),
        (trait("in", ["a", "b\x00"]), "rule.value[1]",
         "text may not contain the NUL character (\\u0000)"),
    ],
)  # fmt: skip
def test_values_postgres_cannot_hold(condition: dict[str, Any], path: str, message: str) -> None:
    assert error(condition) == (path, message)


def test_random_bucket_salt_inside_or_beside() -> None:
    inside = parse_rule({"random_bucket": {"percent": 10, "salt": "h1"}}, CONTEXT)
    beside = parse_rule({"random_bucket": {"percent": 10}, "salt": "h1"}, CONTEXT)
    assert inside == beside == n.RandomBucket(10.0, "h1")


def test_valid_values_at_the_edges() -> None:
    for condition in [
        trait("between", [3, 3]),
        trait("in", list(range(1000))),
        trait("after", {"days_ago": 0}),
        trait("after", {"days_ago": 3650}),
        trait("within_last", {"hours": 87600}),
        trait("before", "2026-03-01T10:00:00+02:00"),
        trait("exists", name="last_seen"),
        trait("within_last", {"days": 1}, name="last_seen"),
        trait("eq", 3, name="orders"),
        trait("regex", "^[a-c]+$"),
    ]:
        parse_rule(condition, CONTEXT)


# ---- events ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "path", "message"),
    [
        ({"event": ""}, "rule.event", "expected an event name"),
        ({"event": ["Signed Up"]}, "rule.event", "expected an event name"),
        # count
        ({"event": "x", "count": 3}, "rule.count", 'expected {"op": "gte", "value": 3}'),
        ({"event": "x", "count": {"op": "ge", "value": 3}}, "rule.count.op",
         "expected one of eq, neq, gt, gte, lt, lte"),
        ({"event": "x", "count": {"op": "between", "value": [1, 2]}}, "rule.count.op",
         "expected one of eq, neq, gt, gte, lt, lte"),
        ({"event": "x", "count": {"op": "gte", "value": -1}}, "rule.count.value",
         "expected an integer from 0 to 1,000,000,000"),
        ({"event": "x", "count": {"op": "gte", "value": 1.5}}, "rule.count.value",
         "expected an integer from 0 to 1,000,000,000"),
        ({"event": "x", "count": {"op": "gte", "value": True}}, "rule.count.value",
         "expected an integer from 0 to 1,000,000,000"),
        ({"event": "x", "count": {"op": "gte"}}, "rule.count.value",
         "expected an integer from 0 to 1,000,000,000"),
        ({"event": "x", "never": "yes"}, "rule.never", "expected true or false"),
        ({"event": "x", "never": True, "count": {"op": "eq", "value": 0}}, "rule.never",
         "never: true already means a count of 0; drop count"),
        # window
        ({"event": "x", "within": {"days": 0}}, "rule.within.days",
         "expected an integer from 1 to 3650"),
        ({"event": "x", "within": {"days": 3651}}, "rule.within.days",
         "expected an integer from 1 to 3650"),
        ({"event": "x", "within": {"hours": "2"}}, "rule.within.hours",
         "expected an integer from 1 to 87600"),
        ({"event": "x", "within": {"minutes": 30}}, "rule.within",
         'expected {"days": N} or {"hours": N}'),
        ({"event": "x", "within": 7}, "rule.within", 'expected {"days": N} or {"hours": N}'),
        ({"event": "x", "within": {"days": 1}, "between": ["2026-01-01", "2026-02-01"]}, "rule",
         "use either within or between, not both"),
        # between dates
        ({"event": "x", "between": ["2026-02-01", "2026-01-01"]}, "rule.between",
         "the first date must not be after the second"),
        ({"event": "x", "between": ["2026-03-01T12:00:00Z", "2026-03-01T13:00:00+02:00"]},
         "rule.between", "the first date must not be after the second"),
        ({"event": "x", "between": ["2026-01-01"]}, "rule.between",
         'expected ["<from date>", "<to date>"]'),
        ({"event": "x", "between": {"from": "2026-01-01"}}, "rule.between",
         'expected ["<from date>", "<to date>"]'),
        ({"event": "x", "between": ["2026-01-01", "soon"]}, "rule.between[1]",
         "expected an ISO 8601 date or date-time, e.g. 2026-01-31"),
        # property filters
        ({"event": "x", "where": {"property": "a", "op": "exists"}}, "rule.where",
         "expected a list of property filters"),
        ({"event": "x", "where": [{"op": "exists"}]}, "rule.where[0]",
         'expected {"property": ..., "op": ..., "value": ...}'),
        ({"event": "x", "where": [{"property": "", "op": "exists"}]}, "rule.where[0].property",
         "expected a property name (dotted for nesting)"),
        ({"event": "x", "where": [{"property": "cart..total", "op": "exists"}]},
         "rule.where[0].property",
         "'cart..total' has an empty step; write a dotted path such as address.city"),
        ({"event": "x", "where": [{"property": "a.b.c.d.e.f.g.h.i", "op": "exists"}]},
         "rule.where[0].property", "a path may have at most 8 steps"),
    ],
)  # fmt: skip
def test_event_errors(condition: dict[str, Any], path: str, message: str) -> None:
    assert error(condition) == (path, message)


@pytest.mark.parametrize(
    ("name", "ref"),
    [
        ("address.city", n.TraitRef("traits", "address", None, ("city",))),
        ("company.address.city", n.TraitRef("traits", "company", None, ("address", "city"))),
        ("tags.0", n.TraitRef("traits", "tags", None, ("0",))),
        ("utm\\.source", n.TraitRef("traits", "utm.source")),
        ("rfm_segment.label", n.TraitRef("computed", "rfm_segment", None, ("label",))),
        (" address.city ", n.TraitRef("traits", "address", None, ("city",))),
        ("orders", n.TraitRef("column", "order_count", "number")),
    ],
)
def test_trait_paths(name: str, ref: n.TraitRef) -> None:
    """A dotted path reaches into a trait's (or a computed trait's) object; the first key
    says which store it is in."""
    node = parse_rule({"trait": name, "op": "exists"}, CONTEXT)
    assert node == n.TraitCondition(ref, n.Comparison("exists", None))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("address..city", "'address..city' has an empty step; write a dotted path such as "
         "address.city"),
        ("address.", "'address.' has an empty step; write a dotted path such as address.city"),
        ("orders.count", "orders is a number; it has no fields"),
        ("last_seen.day", "last_seen is a datetime; it has no fields"),
        ("a.b.c.d.e.f.g.h.i", "a path may have at most 8 steps"),
    ],
)  # fmt: skip
def test_bad_trait_paths_name_the_problem(name: str, message: str) -> None:
    assert error({"trait": name, "op": "exists"}) == ("rule.trait", message)


def test_between_dates_may_be_equal() -> None:
    node = parse_rule({"event": "x", "between": ["2026-01-01", "2026-01-01T00:00:00Z"]}, CONTEXT)
    assert isinstance(node, n.EventCondition) and node.between is not None
    assert node.between[0] == node.between[1]


# ---- segments, consent, random buckets -------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "context", "path", "message"),
    [
        ({"segment": "churn-risk"}, CONTEXT, "rule.segment",
         "no published segment 'churn-risk' in this workspace"),
        ({"segment": 8}, CONTEXT, "rule.segment", "no published segment 8 in this workspace"),
        ({"segment": ""}, CONTEXT, "rule.segment", "expected a segment id or key"),
        ({"segment": True}, CONTEXT, "rule.segment", "expected a segment id or key"),
        ({"consent": "marketing_email"}, RuleContext(), "rule.consent",
         "consent purposes are not configured in this workspace"),
        ({"consent": "analytics"}, CONTEXT, "rule.consent", "unknown purpose 'analytics'"),
        ({"consent": "marketing_email", "status": "revoked"}, CONTEXT, "rule.status",
         "expected granted or denied"),
        ({"random_bucket": "10%"}, CONTEXT, "rule.random_bucket", 'expected {"percent": 0–100}'),
        ({"random_bucket": {"share": 10}}, CONTEXT, "rule.random_bucket",
         'expected {"percent": 0–100}'),
        ({"random_bucket": {"percent": 101}}, CONTEXT, "rule.random_bucket.percent",
         "expected a number from 0 to 100"),
        ({"random_bucket": -1}, CONTEXT, "rule.random_bucket.percent",
         "expected a number from 0 to 100"),
        ({"random_bucket": 10, "salt": 3}, CONTEXT, "rule.salt", "expected a short string"),
        ({"random_bucket": {"percent": 10, "salt": 3}}, CONTEXT, "rule.salt",
         "expected a short string"),
        ({"random_bucket": {"percent": 10, "seed": "x"}}, CONTEXT, "rule.random_bucket.seed",
         "unknown field (allowed: percent, salt)"),
        ({"random_bucket": {"percent": 10, "salt": "a"}, "salt": "b"}, CONTEXT, "rule.salt",
         "give the salt once, inside random_bucket or beside it"),
    ],
)  # fmt: skip
def test_reference_errors(
    condition: dict[str, Any], context: RuleContext, path: str, message: str
) -> None:
    assert error(condition, context) == (path, message)


def test_known_segment_by_id_or_key() -> None:
    assert parse_rule({"segment": 7}, CONTEXT) == n.SegmentCondition(7)
    assert parse_rule({"segment": "vip-users"}, CONTEXT) == n.SegmentCondition(7)


# ---- all at once -----------------------------------------------------------------------------


def test_every_error_of_a_rule_is_reported_at_once() -> None:
    rule = {
        "all": [
            {"trait": "plan", "op": "equals", "value": "pro"},
            {
                "any": [
                    {"event": "Order Completed", "count": {"op": "gte", "value": -1}},
                    {"not": {"segment": "churn-risk"}},
                    {"trait": "last_seen", "op": "gt", "value": 3},
                ]
            },
            {"any": []},
            {
                "event": "",
                "where": [
                    {"property": "revenue", "op": "gte", "value": "50"},
                    {"property": "sku", "op": "regex", "value": "(["},
                ],
                "within": {"weeks": 1},
            },
            {"trait": "plan", "op": "exists", "extra": 1},
        ],
        "label": "x",
    }
    found = errors(rule)
    assert [(e["path"], e["message"].split(":")[0]) for e in found] == [
        ("rule.label", "unknown field (allowed"),
        ("rule.all[0].op", f"unknown operator 'equals'; one of {OPERATORS}"),
        ("rule.all[1].any[0].count.value", "expected an integer from 0 to 1,000,000,000"),
        ("rule.all[1].any[1].not.segment", "no published segment 'churn-risk' in this workspace"),
        (
            "rule.all[1].any[2].op",
            "a date trait takes before, after, within_last or exists; not gt",
        ),
        ("rule.all[2].any", "expected a non-empty list of conditions or groups"),
        ("rule.all[3].event", "expected an event name"),
        ("rule.all[3].where[0].value", "expected a number"),
        ("rule.all[3].where[1].value", "not a valid regular expression"),
        ("rule.all[3].within", 'expected {"days"'),
        ("rule.all[4].extra", "unknown field (allowed"),
    ]
