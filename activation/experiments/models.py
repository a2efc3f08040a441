"""Experiments: a reusable metric library, experiments (variants, traffic, targeting,
metrics) and each unit's first exposure — the assignment that sticks."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from cdp.models import Workspace


class MetricKind(models.TextChoices):
    CONVERSION = "conversion", "Conversion (did the event within N days of exposure)"
    COUNT = "count", "Count (how many times within N days)"
    SUM = "sum", "Sum of a property (e.g. revenue within N days)"


class Metric(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    key = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=MetricKind.choices)
    event = models.CharField(max_length=255)
    # the numeric property summed (kind sum), a dotted path
    property = models.CharField(max_length=255, blank=True)
    window_days = models.PositiveIntegerField(default=7)
    # values above this percentile of all exposed units are capped (sum and count)
    winsorize_percentile = models.FloatField(null=True, blank=True)
    # False when lower is better (e.g. refunds, errors): a guardrail fails when it rises
    higher_is_better = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "key"], name="uniq_metric_key")]

    def __str__(self) -> str:
        return self.key


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"
    SHIPPED = "shipped", "Shipped"


def _seed() -> str:
    return uuid.uuid4().hex


class Experiment(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    key = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    hypothesis = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT
    )
    # the hash seed: fixed at creation, so assignments never change
    seed = models.CharField(max_length=64, default=_seed)
    # [{"key", "name", "weight", "payload"}], the first is the control
    variants = models.JSONField(default=list)
    # the share of eligible units in the experiment (ramp it up; nobody assigned moves)
    coverage = models.FloatField(default=1.0)
    # who may enter, in the segment rule language (null: everyone)
    targeting = models.JSONField(null=True, blank=True)
    # mutually exclusive experiments share a layer, each with its share of it
    layer = models.CharField(max_length=64, blank=True)
    layer_share = models.FloatField(default=1.0)
    primary_metric = models.ForeignKey(Metric, on_delete=models.PROTECT, related_name="+")
    secondary_metrics = models.ManyToManyField(Metric, blank=True, related_name="+")
    guardrail_metrics = models.ManyToManyField(Metric, blank=True, related_name="+")
    # assignment needs the personalisation consent when the variants personalise
    personalised = models.BooleanField(default=False)
    sequential = models.BooleanField(default=True)
    cuped = models.BooleanField(default=True)
    alpha = models.FloatField(default=0.05)
    winner = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # analyses kept over time: [{"at", "units", "srm_flagged", "lifts": {variant: lift}}], the
    # latest last
    history = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "key"], name="uniq_experiment_key")
        ]

    def __str__(self) -> str:
        return self.key

    @property
    def weights(self) -> list[float]:
        return [float(v.get("weight", 1)) for v in self.variants]

    @property
    def variant_keys(self) -> list[str]:
        return [str(v["key"]) for v in self.variants]


class Exposure(models.Model):
    """A profile's first exposure to an experiment: its variant from then on, whatever a
    later recomputation says (a visitor who logs in keeps what it saw)."""

    id = models.BigAutoField(primary_key=True)
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+")
    workspace_id = models.BigIntegerField()
    profile_id = models.BigIntegerField()
    variant = models.CharField(max_length=64)
    exposed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "profile_id"], name="uniq_exposure_per_profile"
            )
        ]
        indexes = [models.Index(fields=["profile_id"], name="exposure_profile")]

    def __str__(self) -> str:
        return f"{self.profile_id} in {self.experiment_id}:{self.variant}"
