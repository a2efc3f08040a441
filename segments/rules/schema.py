"""The rule language as JSON Schema (served at /api/v1/segments/rule-schema/). validate.py is
the authority (it also resolves names in the workspace); this document is for editors and
clients."""

from __future__ import annotations

from typing import Any

from segments.rules import nodes as n

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
            "description": "A trait or computed trait (built-in or custom) of the profile.",
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
