from __future__ import annotations

from typing import Any

from django.db.models import Count
from rest_framework import serializers

from activation.experiments.models import Experiment, Exposure, Metric


class MetricSerializer(serializers.ModelSerializer):
    class Meta:
        model = Metric
        fields = [
            "key", "name", "description", "kind", "event", "property", "window_days",
            "winsorize_percentile", "higher_is_better", "created_at",
        ]  # fmt: skip


class ExperimentSerializer(serializers.ModelSerializer):
    primary_metric: Any = serializers.SlugRelatedField(slug_field="key", read_only=True)
    secondary_metrics: Any = serializers.SlugRelatedField(
        slug_field="key", many=True, read_only=True
    )
    guardrail_metrics: Any = serializers.SlugRelatedField(
        slug_field="key", many=True, read_only=True
    )
    exposures = serializers.SerializerMethodField()

    class Meta:
        model = Experiment
        fields = [
            "id", "key", "name", "hypothesis", "status", "variants", "coverage", "targeting",
            "layer", "layer_share", "personalised", "sequential", "cuped", "alpha",
            "primary_metric", "secondary_metrics", "guardrail_metrics", "winner",
            "created_at", "started_at", "stopped_at", "exposures",
        ]  # fmt: skip

    def get_exposures(self, obj: Experiment) -> dict[str, int]:
        """Units exposed so far, per variant (a list passes them all in its context)."""
        counted = self.context.get("exposures")
        if counted is not None:
            return dict(counted.get(obj.pk, {}))
        return exposure_counts([obj.pk]).get(obj.pk, {})


def exposure_counts(experiment_ids: list[int]) -> dict[int, dict[str, int]]:
    """experiment id -> variant -> units exposed, in one query."""
    out: dict[int, dict[str, int]] = {}
    rows = (
        Exposure.objects.filter(experiment_id__in=experiment_ids)
        .values_list("experiment_id", "variant")
        .annotate(n=Count("id"))
    )
    for experiment_id, variant, n in rows:
        out.setdefault(experiment_id, {})[variant] = n
    return out


class ExperimentWriteSerializer(serializers.Serializer):
    """Checked by the service, which names each bad field (variants as
    [{"key", "name", "weight", "payload"}], metrics by key, targeting in the rule language)."""

    key = serializers.CharField(required=False)
    name = serializers.CharField(required=False)
    hypothesis = serializers.CharField(required=False, allow_blank=True)
    variants = serializers.JSONField(required=False)
    coverage = serializers.FloatField(required=False)
    targeting = serializers.JSONField(required=False, allow_null=True)
    layer = serializers.CharField(required=False, allow_blank=True)
    layer_share = serializers.FloatField(required=False)
    personalised = serializers.BooleanField(required=False)
    sequential = serializers.BooleanField(required=False)
    cuped = serializers.BooleanField(required=False)
    alpha = serializers.FloatField(required=False)
    primary_metric = serializers.CharField(required=False)
    secondary_metrics = serializers.ListField(child=serializers.CharField(), required=False)
    guardrail_metrics = serializers.ListField(child=serializers.CharField(), required=False)


class ShipSerializer(serializers.Serializer):
    variant = serializers.CharField()
    force = serializers.BooleanField(
        default=False, help_text="ship despite a sample-ratio mismatch (409 without it)"
    )


class AssignSerializer(serializers.Serializer):
    profile_id = serializers.IntegerField()
    record = serializers.BooleanField(default=True)
