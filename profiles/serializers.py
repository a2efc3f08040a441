from __future__ import annotations

from typing import Any

from rest_framework import serializers

from cdp.inputs import JSONInput
from cdp.params import INT_MAX
from profiles.models import (
    Event,
    FailedEvent,
    ObservedEvent,
    ObservedProperty,
    Source,
    SourceKind,
    WriteKey,
)
from profiles.selectors import observed_types


class WriteKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = WriteKey
        fields = ["id", "key", "created_at", "revoked_at"]


class SourceSerializer(serializers.ModelSerializer):
    write_keys = WriteKeySerializer(many=True, read_only=True)

    class Meta:
        model = Source
        fields = [
            "id",
            "name",
            "kind",
            "enabled",
            "rate_limit_per_second",
            "max_event_bytes",
            "dead_letter_quota",
            "allowed_origins",
            "created_at",
            "write_keys",
        ]
        read_only_fields = ["id", "created_at", "write_keys"]


class _SourceSettings(JSONInput):
    """The optional settings a source is created or changed with (null: the platform
    default)."""

    rate_limit_per_second = serializers.IntegerField(
        min_value=1, max_value=INT_MAX, required=False, allow_null=True
    )
    max_event_bytes = serializers.IntegerField(
        min_value=1024, max_value=4 * 1024 * 1024, required=False, allow_null=True
    )
    dead_letter_quota = serializers.IntegerField(
        min_value=0,
        max_value=INT_MAX,
        required=False,
        allow_null=True,
        help_text="Invalid events kept per day for replay (the rest are counted); "
        "null: the platform default.",
    )
    allowed_origins = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Origins browsers may call from with this source's write key, e.g. "
        "https://shop.example.com or https://*.example.com; empty: any origin.",
    )


class SourceCreateSerializer(_SourceSettings):
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=SourceKind.choices, default=SourceKind.HTTP)


class SourceUpdateSerializer(_SourceSettings):
    name = serializers.CharField(max_length=200, required=False)
    kind = serializers.ChoiceField(choices=SourceKind.choices, required=False)
    enabled = serializers.BooleanField(required=False)


class DeadLetterDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    kept = serializers.IntegerField(help_text="invalid events kept for replay (and summaries)")
    not_kept = serializers.IntegerField(
        help_text="invalid events only counted: over the per-request cap or the daily quota"
    )
    quota_reached_at = serializers.DateTimeField(allow_null=True)


class DeadLettersSerializer(serializers.Serializer):
    quota = serializers.IntegerField(help_text="the source's daily quota, defaults filled in")
    days = DeadLetterDaySerializer(many=True)


class RotateKeySerializer(JSONInput):
    revoke_old = serializers.BooleanField(default=False)


class EventSerializer(serializers.ModelSerializer):
    """An event as stored, in the tracking spec's camelCase shape."""

    class Meta:
        model = Event
        fields = ["id"]

    def to_representation(self, instance: Event) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": instance.pk,
            "source": instance.source_id,
            "messageId": instance.message_id,
            "type": instance.type,
            "userId": instance.user_id,
            "anonymousId": instance.anonymous_id,
            "timestamp": instance.timestamp.isoformat(),
            "originalTimestamp": instance.original_timestamp.isoformat()
            if instance.original_timestamp
            else None,
            "sentAt": instance.sent_at.isoformat() if instance.sent_at else None,
            "receivedAt": instance.received_at.isoformat(),
            "context": instance.context,
            "integrations": instance.integrations,
        }
        if instance.event is not None:
            data["event"] = instance.event
        if instance.name is not None:
            data["name"] = instance.name
        if instance.type in ("track", "page", "screen"):
            data["properties"] = instance.properties
        if instance.type in ("identify", "group") or instance.traits:
            data["traits"] = instance.traits
        if instance.group_id is not None:
            data["groupId"] = instance.group_id
        if instance.previous_id is not None:
            data["previousId"] = instance.previous_id
        data.update(instance.extra or {})
        return data


class FailedEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = FailedEvent
        fields = [
            "id",
            "source",
            "reason",
            "message",
            "payload",
            "raw",
            "message_id",
            "received_at",
            "status",
            "replayed_at",
            "replay_attempts",
            "last_replay_error",
        ]


class ObservedEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = ObservedEvent
        fields = ["type", "event", "first_seen", "last_seen", "count"]


class ObservedPropertySerializer(serializers.ModelSerializer):
    class Meta:
        model = ObservedProperty
        fields = [
            "type",
            "event",
            "kind",
            "path",
            "value_types",
            "type_counts",
            "numeric_strings",
            "type_examples",
            "mixed",
            "example",
            "first_seen",
            "last_seen",
            "count",
        ]

    mixed = serializers.SerializerMethodField(
        help_text="Seen with more than one type of value (null aside)."
    )

    def get_mixed(self, obj: ObservedProperty) -> bool:
        return observed_types([obj]).mixed


class ObservedSchemaSerializer(serializers.Serializer):
    events = ObservedEventSerializer(many=True)
    properties = ObservedPropertySerializer(many=True)
