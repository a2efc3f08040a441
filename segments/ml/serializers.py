from __future__ import annotations

from typing import Any

from rest_framework import serializers

from segments.ml.models import Item, MLModel, ModelVersion, TrainingRun


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


DRIFT_FEATURES = 5


class ModelSerializer(serializers.ModelSerializer):
    champion = serializers.SerializerMethodField()
    last_run = serializers.SerializerMethodField()
    drift = serializers.SerializerMethodField()
    traits = serializers.SerializerMethodField()
    clusters = serializers.SerializerMethodField()

    class Meta:
        model = MLModel
        fields = [
            "id", "key", "name", "description", "kind", "config", "schedule_hours",
            "created_at", "updated_at", "scored_at", "scored_count", "champion", "last_run",
            "drift", "traits", "clusters", "cluster_names",
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
        # the drift chart: the champion's most important features over the scorings
        ranked = [i["feature"] for i in (obj.champion.charts if obj.champion else {}).get(
            "importance", [])][:DRIFT_FEATURES]  # fmt: skip
        latest = obj.drift[-1]["psi"]
        watched = ranked or sorted(latest, key=lambda f: -latest[f])[:DRIFT_FEATURES]
        series = [
            {"at": point["at"], "version": point["version"],
             "psi": {f: point["psi"].get(f) for f in watched}}
            for point in obj.drift
        ]  # fmt: skip
        return {"latest": obj.drift[-1], "flagged": drifted(obj), "history": len(obj.drift),
                "series": series}  # fmt: skip

    def get_traits(self, obj: MLModel) -> list[str]:
        """The computed traits its scores are written to (segment conditions, sync fields)."""
        return obj.trait_keys

    def get_clusters(self, obj: MLModel) -> list[dict[str, Any]]:
        """Clusters: each label with its name (given, or the champion's description), its
        description, size and share; use them as {"model": key, "cluster": label}."""
        if obj.champion is None or obj.kind != "clusters":
            return []
        names = obj.cluster_labels()
        return [
            {"label": c["label"], "name": names.get(c["label"], c["label"]),
             "description": c["description"], "size": c["size"], "share": c["share"],
             "renamed": c["label"] in obj.cluster_names}
            for c in obj.champion.charts.get("clusters", [])
        ]  # fmt: skip


class ModelWriteSerializer(serializers.Serializer):
    """Checked by the service (segments/ml/services.py), which names each bad field."""

    key = serializers.CharField(required=False)
    name = serializers.CharField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.CharField(required=False)
    config = serializers.JSONField(required=False)
    schedule_hours = serializers.IntegerField(required=False, allow_null=True)
    cluster_names = serializers.DictField(
        child=serializers.CharField(allow_null=True), required=False,
        help_text='clusters: {"label": "name"} (null or "" gives a cluster its description back)',
    )  # fmt: skip


class PromoteSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)


class ItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = Item
        fields = [
            "item_id", "name", "category", "price", "available", "attributes", "edited_fields",
            "interactions", "first_seen", "last_seen", "updated_at",
        ]  # fmt: skip


class ItemWriteSerializer(serializers.Serializer):
    """Checked by the service, which names each bad field."""

    name = serializers.CharField(required=False, allow_blank=True)
    category = serializers.CharField(required=False, allow_blank=True)
    price = serializers.FloatField(required=False, allow_null=True)
    available = serializers.BooleanField(required=False)
    attributes = serializers.JSONField(required=False)


class RecommendedItemSerializer(serializers.Serializer):
    item_id = serializers.CharField()
    score = serializers.FloatField()
    name = serializers.CharField()
    category = serializers.CharField()
    price = serializers.FloatField(allow_null=True)


class RecommendationsSerializer(serializers.Serializer):
    profile = serializers.IntegerField()
    items = RecommendedItemSerializer(many=True)
    source = serializers.ChoiceField(choices=["personalised", "popular"])  # type: ignore[assignment]
    reason = serializers.CharField()
    model = serializers.CharField()
    version = serializers.IntegerField()
    milliseconds = serializers.FloatField()
