from __future__ import annotations

from typing import Any

from rest_framework import serializers

from cdp.inputs import JSONInput
from profiles.models import ComputedTrait


class ComputedTraitSerializer(serializers.ModelSerializer):
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = ComputedTrait
        fields = [
            "id",
            "key",
            "name",
            "description",
            "aggregation",
            "event",
            "property",
            "where",
            "window_days",
            "created_by",
            "created_at",
            "updated_at",
            "last_refreshed_at",
        ]
        read_only_fields = fields

    def get_created_by(self, trait: ComputedTrait) -> str | None:
        return trait.created_by.get_username() if trait.created_by else None


class ComputedTraitInputSerializer(JSONInput):
    """The request's shape; the definition itself is checked by the service, whose errors
    name the path of the bad field (e.g. `where[1].op: unknown operator 'foo'`)."""

    key = serializers.JSONField(required=False, allow_null=True)
    name = serializers.JSONField(required=False, allow_null=True)
    description = serializers.JSONField(required=False, allow_null=True)
    aggregation = serializers.JSONField(required=False, allow_null=True)
    event = serializers.JSONField(required=False, allow_null=True)
    property = serializers.JSONField(required=False, allow_null=True)
    where = serializers.JSONField(required=False, allow_null=True)
    window_days = serializers.JSONField(required=False, allow_null=True)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"request": ["expected a JSON object"]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({unknown[0]: ["unknown field"]})
        return dict(super().to_internal_value(data))


BUILTIN_TYPES = ["datetime", "integer", "number", "string"]


class BuiltinTraitSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    description = serializers.CharField()
    type = serializers.ChoiceField(choices=BUILTIN_TYPES)  # type: ignore[assignment]
    source = serializers.ChoiceField(choices=["profile", "scheduled"])  # type: ignore[assignment]
    column = serializers.CharField(allow_null=True, help_text="the Profile column (profile)")
    computed_key = serializers.CharField(
        allow_null=True, help_text="the key in Profile.computed (scheduled)"
    )
    values = serializers.ListField(
        child=serializers.CharField(), help_text="the possible values of a string trait"
    )
