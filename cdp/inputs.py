"""API input is read as JSON, as sent. DRF's fields coerce: "1" becomes 1 for an integer, 5
becomes "5" for a string, "no" becomes False for a boolean — so a client that sends the wrong
type gets something it did not ask for, and the OpenAPI schema (which promises the types) lies.
Every input serializer derives from JSONInput: a value of the wrong JSON type is a 400 naming
its path, before any field reads it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

# the JSON types a field takes, checked in this order (BooleanField before the numbers: bool
# is an int in Python, never a number in JSON)
_EXPECTED: tuple[tuple[type[serializers.Field], tuple[type, ...], str], ...] = (
    (serializers.JSONField, (object,), "any JSON value"),
    (serializers.BooleanField, (bool,), "true or false"),
    (serializers.IntegerField, (int,), "a whole number"),
    (serializers.FloatField, (int, float), "a number"),
    (serializers.DecimalField, (int, float), "a number"),
    (serializers.MultipleChoiceField, (list,), "a list"),
    (serializers.ChoiceField, (str,), "a string"),
    (serializers.CharField, (str,), "a string"),
    (serializers.DateTimeField, (str,), "an ISO 8601 date-time string"),
    (serializers.DateField, (str,), "an ISO 8601 date string"),
    (serializers.ListField, (list,), "a list"),
    (serializers.ListSerializer, (list,), "a list"),
    (serializers.DictField, (dict,), "an object"),
    (serializers.Serializer, (dict,), "an object"),
)


def json_type_problems(field: serializers.Field, value: Any, path: str) -> dict[str, str]:
    """{path: message} for every value (items of lists and objects included) whose JSON type
    the field does not take; {} when all are right. Nested JSONInput serializers check their
    own fields when they run."""
    if value is None:
        return {} if field.allow_null else {path: "must not be null"}
    for kind, types, label in _EXPECTED:
        if isinstance(field, kind):
            wrong = not isinstance(value, types) or (
                isinstance(value, bool) and bool not in types and object not in types
            )
            if wrong:
                return {path: f"expected {label}, got {_json_type(value)}"}
            break
    problems: dict[str, str] = {}
    if isinstance(field, serializers.ListField | serializers.ListSerializer):
        child = field.child
        if child is not None:
            for index, item in enumerate(value):
                problems.update(json_type_problems(child, item, f"{path}[{index}]"))
    elif isinstance(field, serializers.DictField) and field.child is not None:
        for key, item in value.items():
            problems.update(json_type_problems(field.child, item, f"{path}.{key}"))
    return problems


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class JSONInput(serializers.Serializer):
    """Base of every API input serializer: a JSON object whose values have the types its
    fields declare (see the module's docstring)."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {"non_field_errors": [f"expected a JSON object, got {_json_type(data)}"]}
            )
        problems: dict[str, str] = {}
        for name, field in self.fields.items():
            if not field.read_only and name in data:
                problems.update(json_type_problems(field, data[name], name))
        if problems:
            raise serializers.ValidationError(
                {path: [message] for path, message in problems.items()}
            )
        return super().to_internal_value(data)
