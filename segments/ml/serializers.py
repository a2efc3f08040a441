from __future__ import annotations

from typing import Any

from rest_framework import serializers

from segments.ml.models import MLModel, ModelVersion, TrainingRun


class RunSerializer(serializers.ModelSerializer):
    version = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id", "status", "stage", "percent", "cancel_requested", "trigger", "error", "log",
            "created_at", "started_at", "finished_at", "version",
        ]  # fmt: skip

    def get_version(self, obj: TrainingRun) -> int | None:
        version = getattr(obj, "version", None)
        return version.number if version is not None else None


class VersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = [
            "number", "status", "reason", "created_at", "window", "rows", "score_metric",
            "score", "metrics", "baseline_metrics", "charts", "feature_names", "feature_spec",
            "sklearn_version", "artefact_sha256",
        ]  # fmt: skip


class ModelSerializer(serializers.ModelSerializer):
    champion = serializers.SerializerMethodField()
    last_run = serializers.SerializerMethodField()
    drift = serializers.SerializerMethodField()
    traits = serializers.SerializerMethodField()

    class Meta:
        model = MLModel
        fields = [
            "id", "key", "name", "description", "kind", "config", "schedule_hours",
            "created_at", "updated_at", "scored_at", "scored_count", "champion", "last_run",
            "drift", "traits",
        ]  # fmt: skip

    def get_champion(self, obj: MLModel) -> dict[str, Any] | None:
        v = obj.champion
        if v is None:
            return None
        return {"number": v.number, "score_metric": v.score_metric, "score": v.score,
                "metrics": v.metrics, "created_at": v.created_at}  # fmt: skip

    def get_last_run(self, obj: MLModel) -> dict[str, Any] | None:
        run = obj.runs.order_by("-created_at").first()
        return RunSerializer(run).data if run is not None else None

    def get_drift(self, obj: MLModel) -> dict[str, Any] | None:
        from segments.ml.jobs import drifted

        if not obj.drift:
            return None
        return {"latest": obj.drift[-1], "flagged": drifted(obj), "history": len(obj.drift)}

    def get_traits(self, obj: MLModel) -> list[str]:
        """The computed traits its scores are written to (segment conditions, sync fields)."""
        return [obj.key, obj.decile_key]


class ModelWriteSerializer(serializers.Serializer):
    """Checked by the service (segments/ml/services.py), which names each bad field."""

    key = serializers.CharField(required=False)
    name = serializers.CharField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.CharField(required=False)
    config = serializers.JSONField(required=False)
    schedule_hours = serializers.IntegerField(required=False, allow_null=True)


class PromoteSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)
