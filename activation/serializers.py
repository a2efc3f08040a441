"""API shapes of activation: destinations (settings only for those who manage them; secrets
never — only which are set), syncs, runs, streams, deliveries and their attempts."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from activation.experiments.serializers import exposure_counts
from activation.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryKind,
    DeliveryStatus,
    Destination,
    DestinationKind,
    Stream,
    Sync,
    SyncMode,
    SyncRun,
    SyncSchedule,
)
from activation.services import POLICY_FIELDS


def _policy_fields() -> dict[str, serializers.Field]:
    out: dict[str, serializers.Field] = {}
    for name, (kind, low, high) in POLICY_FIELDS.items():
        if kind is int:
            out[name] = serializers.IntegerField(
                required=False, min_value=int(low), max_value=int(high)
            )
        else:
            out[name] = serializers.FloatField(required=False, min_value=low, max_value=high)
    return out


class DestinationWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=DestinationKind.choices)
    purpose = serializers.CharField(max_length=64)
    config = serializers.DictField(
        required=False,
        help_text="the kind's settings; secret settings (tokens, passwords) are write-only",
    )
    enabled = serializers.BooleanField(required=False)
    locals().update(_policy_fields())


class DestinationPatchSerializer(DestinationWriteSerializer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, partial=True, **kwargs)

    kind = None  # type: ignore[assignment]


class DestinationSerializer(serializers.ModelSerializer):
    """A destination; `config` and `secrets_set` only for those who manage destinations."""

    kind_label = serializers.CharField(source="get_kind_display", read_only=True)
    config = serializers.SerializerMethodField()
    secrets_set = serializers.SerializerMethodField()

    class Meta:
        model = Destination
        fields = [
            "id",
            "name",
            "kind",
            "kind_label",
            "purpose",
            "enabled",
            "config",
            "secrets_set",
            *POLICY_FIELDS,
            "circuit_state",
            "consecutive_failures",
            "paused_until",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def _manager(self) -> bool:
        return bool(self.context.get("can_manage"))

    def get_config(self, obj: Destination) -> dict[str, Any] | None:
        return dict(obj.config) if self._manager() else None

    def get_secrets_set(self, obj: Destination) -> list[str] | None:
        return list(obj.secret_names) if self._manager() else None


class NewDestinationSerializer(DestinationSerializer):
    generated_secrets = serializers.DictField(
        child=serializers.CharField(),
        read_only=True,
        help_text="secrets the platform generated (a webhook's signing secret): shown once",
    )

    class Meta(DestinationSerializer.Meta):
        fields = [*DestinationSerializer.Meta.fields, "generated_secrets"]
        read_only_fields = fields


class ConfigFieldSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    kind = serializers.CharField()
    required = serializers.BooleanField()  # type: ignore[assignment]
    default = serializers.JSONField(allow_null=True)
    help = serializers.CharField()
    choices = serializers.ListField(child=serializers.CharField())


class KindSerializer(serializers.Serializer):
    kind = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    description = serializers.CharField()
    hashed_only = serializers.BooleanField()
    identifier_types = serializers.ListField(child=serializers.CharField())
    fields = ConfigFieldSerializer(many=True)  # type: ignore[assignment]


class TestAnswerSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    message = serializers.CharField()
    request = serializers.DictField()
    response = serializers.DictField()


class HealthSerializer(serializers.Serializer):
    minutes = serializers.IntegerField()
    per_minute = serializers.ListField(child=serializers.DictField())
    requests = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True)
    p95_latency_ms = serializers.FloatField(allow_null=True)
    circuit = serializers.CharField()
    consecutive_failures = serializers.IntegerField()
    paused_until = serializers.DateTimeField(allow_null=True)
    pending = serializers.IntegerField()
    sending = serializers.IntegerField()
    dead = serializers.IntegerField()
    last_errors = serializers.ListField(child=serializers.DictField())


class SyncWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    segment = serializers.IntegerField(min_value=1)
    destination = serializers.IntegerField(min_value=1)
    mapping = serializers.DictField(
        required=False,
        help_text='{"identifiers": [{"type": "email", "hash": "sha256", "as": "..."}], '
        '"fields": [{"trait": "plan", "as": "tier"} | {"constant": 1, "as": "x"}]}',
    )
    mode = serializers.ChoiceField(choices=SyncMode.choices, required=False)
    schedule = serializers.ChoiceField(choices=SyncSchedule.choices, required=False)
    interval_minutes = serializers.IntegerField(min_value=1, max_value=10080, required=False)
    enabled = serializers.BooleanField(required=False)
    holdout = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text='A campaign holdout: {"percent": 10, "metric": "purchase"} withholds a stable '
        "10 % of the members and measures the metric's lift with the experiments engine; "
        "null stops it (the held-out members are then sent).",
    )


class SyncPatchSerializer(SyncWriteSerializer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, partial=True, **kwargs)


class SyncPreviewRequestSerializer(serializers.Serializer):
    segment = serializers.IntegerField(min_value=1)
    destination = serializers.IntegerField(min_value=1)
    mapping = serializers.DictField(required=False)


class SyncPreviewSerializer(serializers.Serializer):
    members = serializers.IntegerField()
    sampled = serializers.IntegerField()
    with_identifier = serializers.IntegerField()
    match_rate = serializers.FloatField(allow_null=True)
    sendable = serializers.IntegerField()
    sendable_rate = serializers.FloatField(allow_null=True)
    examples = serializers.ListField(child=serializers.DictField())
    mapping = serializers.DictField()


class SyncRunSerializer(serializers.ModelSerializer):
    failed = serializers.SerializerMethodField()

    class Meta:
        model = SyncRun
        fields = [
            "id",
            "kind",
            "started_at",
            "finished_at",
            "added",
            "updated",
            "removed",
            "unchanged",
            "skipped_consent",
            "skipped_no_identifier",
            "skipped_holdout",
            "failed",
            "error",
        ]
        read_only_fields = fields

    def get_failed(self, obj: SyncRun) -> int:
        return Delivery.objects.filter(run_id=obj.pk, status=DeliveryStatus.DEAD).count()


class SyncSerializer(serializers.ModelSerializer):
    segment_name = serializers.CharField(source="segment.name", read_only=True)
    destination_name = serializers.CharField(source="destination.name", read_only=True)
    destination_kind = serializers.CharField(source="destination.kind", read_only=True)
    last_run = serializers.SerializerMethodField()
    holdout = serializers.SerializerMethodField()

    class Meta:
        model = Sync
        fields = [
            "id",
            "name",
            "segment",
            "segment_name",
            "destination",
            "destination_name",
            "destination_kind",
            "mapping",
            "mode",
            "schedule",
            "interval_minutes",
            "enabled",
            "initialised",
            "resync_requested",
            "last_run_at",
            "last_run",
            "holdout",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_last_run(self, obj: Sync) -> dict[str, Any] | None:
        run = obj.runs.order_by("-started_at").first()
        return SyncRunSerializer(run).data if run else None

    def get_holdout(self, obj: Sync) -> dict[str, Any] | None:
        """The campaign holdout (its latest, running or stopped): the share withheld, the
        metric it is judged by, members on each side so far, and its experiment's id (whose
        results page reports the lift)."""
        experiment = obj.holdout_experiment
        if experiment is None:
            return None
        held = next((v for v in experiment.variants if v["key"] == "holdout"), {"weight": 0})
        total = sum(float(v.get("weight", 1)) for v in experiment.variants) or 1.0
        return {
            "experiment": experiment.pk,
            "key": experiment.key,
            "status": experiment.status,
            "percent": round(100 * float(held["weight"]) / total, 2),
            "metric": experiment.primary_metric.key,
            "members": exposure_counts([experiment.pk]).get(experiment.pk, {}),
        }


class StreamWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    source = serializers.IntegerField(min_value=1)  # type: ignore[assignment]
    destination = serializers.IntegerField(min_value=1)
    filters = serializers.DictField(
        required=False,
        help_text='{"types": ["track"], "events": ["Order Completed"], '
        '"where": [{"property": "revenue", "op": "gte", "value": 50}]}',
    )
    transform = serializers.DictField(
        required=False,
        help_text='{"allow": [...], "drop": [...], "rename": {"old": "new"}, "hash": [...]}',
    )
    enabled = serializers.BooleanField(required=False)


class StreamPatchSerializer(StreamWriteSerializer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, partial=True, **kwargs)


class StreamSerializer(serializers.ModelSerializer):
    source_name = serializers.CharField(source="source.name", read_only=True)
    destination_name = serializers.CharField(source="destination.name", read_only=True)

    class Meta:
        model = Stream
        fields = [
            "id",
            "name",
            "source",
            "source_name",
            "destination",
            "destination_name",
            "filters",
            "transform",
            "enabled",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class DeliverySerializer(serializers.ModelSerializer):
    destination_name = serializers.CharField(source="destination.name", read_only=True)
    kind = serializers.ChoiceField(choices=DeliveryKind.choices, read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "key",
            "destination",
            "destination_name",
            "kind",
            "status",
            "profile_id",
            "profile_ids",
            "sync_id",
            "stream_id",
            "attempts",
            "created_at",
            "next_attempt_at",
            "last_attempt_at",
            "finished_at",
            "reason",
            "error",
        ]
        read_only_fields = fields


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = [
            "id",
            "at",
            "duration_ms",
            "outcome",
            "status_code",
            "reason",
            "error",
            "request",
            "response",
        ]
        read_only_fields = fields


class DeliveryDetailSerializer(DeliverySerializer):
    payload = serializers.JSONField(read_only=True)
    attempt_log = serializers.SerializerMethodField()

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "payload", "attempt_log"]
        read_only_fields = fields

    def get_attempt_log(self, obj: Delivery) -> list[dict[str, Any]]:
        from activation.selectors import delivery_attempts

        return list(AttemptSerializer(delivery_attempts(delivery=obj)[:50], many=True).data)


class RetryDeadSerializer(serializers.Serializer):
    destination = serializers.IntegerField(min_value=1, required=False)
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False)


class RetryAnswerSerializer(serializers.Serializer):
    replayed = serializers.IntegerField()
    superseded = serializers.IntegerField()


class QueuedSerializer(serializers.Serializer):
    queued = serializers.BooleanField()
    kind = serializers.CharField()
