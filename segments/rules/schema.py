"""The rule language as JSON Schema (served at /api/v1/segments/rule-schema/), and as the
segment builder's tables (builder_language()). validate.py is the authority (it also resolves
names in the workspace); these documents are for editors and clients."""

from __future__ import annotations

from typing import Any

from segments.rules import nodes as n

# the comparison rule in brief (profiles/coercion.py states it in full)
COMPARISON_RULE = (
    "Number operators (gt, gte, lt, lte, between) read JSON numbers and numeric strings "
    '(trimmed; sign, digits, "." decimal; no exponent or separators: "60", " 12.5 "). '
    'eq/neq/in/not_in compare a number by value (60 = 60.0 = "60") and a string or a '
    'boolean exactly ("01234" ≠ 1234, true ≠ "true"). String operators need a string; '
    "date operators read ISO 8601 strings."
)
_SCALAR: dict[str, Any] = {"type": ["string", "number", "boolean"]}
_WINDOW: dict[str, Any] = {
    "type": "object",
    "oneOf": [
        {"required": ["days"], "properties": {"days": {"type": "integer", "minimum": 1}}},
        {"required": ["hours"], "properties": {"hours": {"type": "integer", "minimum": 1}}},
    ],
    "additionalProperties": False,
}
_DATE: dict[str, Any] = {
    "oneOf": [
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date"},
        {
            "type": "object",
            "required": ["days_ago"],
            "properties": {"days_ago": {"type": "integer", "minimum": 0}},
            "additionalProperties": False,
        },
    ]
}


def _comparison(subject: str) -> dict[str, Any]:
    """op/value pairs, one branch per operator family."""
    base = {subject: {"type": "string", "minLength": 1}}

    def branch(ops: tuple[str, ...], value: dict[str, Any] | None) -> dict[str, Any]:
        props: dict[str, Any] = {**base, "op": {"enum": list(ops)}}
        required = [subject, "op"]
        if value is not None:
            props["value"] = value
            required.append("value")
        return {
            "type": "object",
            "required": required,
            "properties": props,
            "additionalProperties": False,
        }

    return {
        "oneOf": [
            branch(n.SCALAR_OPS, _SCALAR),
            branch(n.NUMBER_OPS, {"type": "number"}),
            branch(
                n.RANGE_OPS,
                {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
            ),
            branch(n.SET_OPS, {"type": "array", "items": _SCALAR, "minItems": 1}),
            branch(n.STRING_OPS, {"type": "string", "minLength": 1}),
            branch(n.PRESENCE_OPS, None),
            branch(("before", "after"), _DATE),
            branch(("within_last",), _WINDOW),
        ]
    }


RULE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:cdp:segment-rule",
    "title": "Segment rule",
    "$ref": "#/$defs/node",
    "$defs": {
        "node": {
            "oneOf": [
                {"$ref": "#/$defs/all"},
                {"$ref": "#/$defs/any"},
                {"$ref": "#/$defs/not"},
                {"$ref": "#/$defs/trait"},
                {"$ref": "#/$defs/event"},
                {"$ref": "#/$defs/segment"},
                {"$ref": "#/$defs/consent"},
                {"$ref": "#/$defs/random_bucket"},
                {"$ref": "#/$defs/cluster"},
            ]
        },
        "all": {
            "type": "object",
            "required": ["all"],
            "properties": {
                "all": {"type": "array", "items": {"$ref": "#/$defs/node"}, "minItems": 1}
            },
            "additionalProperties": False,
        },
        "any": {
            "type": "object",
            "required": ["any"],
            "properties": {
                "any": {"type": "array", "items": {"$ref": "#/$defs/node"}, "minItems": 1}
            },
            "additionalProperties": False,
        },
        "not": {
            "type": "object",
            "required": ["not"],
            "properties": {"not": {"$ref": "#/$defs/node"}},
            "additionalProperties": False,
        },
        "trait": {
            "description": (
                "A trait or computed trait (built-in or custom) of the profile; a dotted path "
                "reaches into an object (`address.city`, `company.name`, a custom trait's "
                "`favorite.name`), a number step into an array (`tags.0`), and `\\.` is a dot "
                "inside a key. " + COMPARISON_RULE
            ),
            **_comparison("trait"),
        },
        "event": {
            "type": "object",
            "required": ["event"],
            "properties": {
                "event": {"type": "string", "minLength": 1},
                "where": {"type": "array", "items": _comparison("property")},
                "count": {
                    "type": "object",
                    "required": ["op", "value"],
                    "properties": {
                        "op": {"enum": list(n.COUNT_OPS)},
                        "value": {"type": "integer", "minimum": 0},
                    },
                    "additionalProperties": False,
                },
                "never": {"type": "boolean"},
                "within": _WINDOW,
                "between": {
                    "type": "array",
                    "items": {"type": "string"},
                    "minItems": 2,
                    "maxItems": 2,
                },
            },
            "additionalProperties": False,
        },
        "segment": {
            "type": "object",
            "required": ["segment"],
            "properties": {"segment": {"type": ["integer", "string"]}},
            "additionalProperties": False,
        },
        "consent": {
            "type": "object",
            "required": ["consent"],
            "properties": {
                "consent": {"type": "string"},
                "status": {"enum": ["granted", "denied"]},
            },
            "additionalProperties": False,
        },
        "cluster": {
            "description": (
                "In a cluster of a clusters model (the cluster the model's champion put the "
                "profile in at its latest scoring); labels stay with the same people across "
                "retrains, a list means any of them."
            ),
            "type": "object",
            "required": ["model", "cluster"],
            "properties": {
                "model": {"type": "string", "minLength": 1},
                "cluster": {
                    "oneOf": [
                        {"type": "string", "minLength": 1},
                        {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    ]
                },
            },
            "additionalProperties": False,
        },
        "random_bucket": {
            "type": "object",
            "required": ["random_bucket"],
            "properties": {
                "random_bucket": {
                    "type": "object",
                    "required": ["percent"],
                    "properties": {"percent": {"type": "number", "minimum": 0, "maximum": 100}},
                },
                "salt": {"type": "string"},
            },
            "additionalProperties": False,
        },
    },
}


# the value types the builder tells traits and event properties apart by, and the operators it
# offers for each, the value's own operators first (the first is the default):
# - number and datetime are also what validate.py enforces for a trait kept as a Profile
#   column: a number takes no string or date operator, a datetime only dates and presence;
# - a JSON trait's type is only observed, so validate.py accepts any operator on it (type
#   "any"); a path seen only with text that reads as numbers is a number (profiles.selectors
#   ObservedTypes.kind); for other text the builder leaves out the number operators, which
#   read only numbers and numeric strings, and for a boolean it offers is / is not / presence.
_OPS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "string": n.SCALAR_OPS + n.SET_OPS + n.STRING_OPS + n.PRESENCE_OPS + n.DATE_OPS,
    "number": n.SCALAR_OPS + n.NUMBER_OPS + n.RANGE_OPS + n.SET_OPS + n.PRESENCE_OPS,
    "boolean": n.SCALAR_OPS + n.PRESENCE_OPS,
    "datetime": n.DATE_OPS + n.PRESENCE_OPS,
    "any": n.ALL_OPS,
}
# event counts: "at least" (the default, as in "performed at least once") first
_COUNT_ORDER = ("gte", "gt", "eq", "neq", "lte", "lt")


def builder_language() -> dict[str, Any]:
    """The rule language's tables for the segment builder (in its page config): operator
    labels and families, the operators for each value type and for event counts, the kinds
    of condition."""
    return {
        "op_labels": {op: n.OP_LABELS[op] for op in n.ALL_OPS},
        "families": {
            "scalar": list(n.SCALAR_OPS),
            "number": list(n.NUMBER_OPS),
            "range": list(n.RANGE_OPS),
            "set": list(n.SET_OPS),
            "string": list(n.STRING_OPS),
            "presence": list(n.PRESENCE_OPS),
            "date": list(n.DATE_OPS),
        },
        "ops_by_type": {kind: list(ops) for kind, ops in _OPS_BY_TYPE.items()},
        "count_ops": sorted(n.COUNT_OPS, key=_COUNT_ORDER.index),
        "kinds": [{"key": key, "label": label} for key, label in n.CONDITION_LABELS.items()],
    }
