"""The model registry: a model (kind + configuration + feature set + schedule), its training
runs (a Celery job each, with progress, cancellation and a log) and the versions they
produce (metrics on a held-out set, the fitted artefact, feature distributions for drift).
One version per model is the champion, used for scoring."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from cdp.models import Workspace


class ModelKind(models.TextChoices):
    PROPENSITY = "propensity", "Propensity (will do an event within N days)"
    CHURN = "churn", "Churn (will not do an event within N days)"
    CLUSTERS = "clusters", "Clusters (which kinds of customers there are)"
    RECOMMENDATIONS = "recommendations", "Recommendations (what each person should see next)"


# the kinds that write a probability and its decile
SCORE_KINDS = (ModelKind.PROPENSITY, ModelKind.CHURN)


class MLModelQuerySet(models.QuerySet["MLModel"]):
    def with_champion(self) -> MLModelQuerySet:
        """With the champion version, but not its fitted artefact (megabytes that only
        scoring and serving read, through the version itself)."""
        return self.select_related("champion").defer("champion__artefact")


class MLModel(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    # the computed trait its scores are written to (Profile.computed[key], key + "_decile")
    key = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=20, choices=ModelKind.choices)
    # kind-specific: {"event", "horizon_days", "purchase_event", "revenue_property",
    # "numeric_traits", "categories", "seed"}
    config = models.JSONField(default=dict)
    # retrain every N hours (None: only when asked)
    schedule_hours = models.PositiveIntegerField(null=True, blank=True)
    champion = models.ForeignKey(
        "ModelVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    scored_at = models.DateTimeField(null=True, blank=True)
    scored_count = models.PositiveIntegerField(default=0)
    # each scoring's population stability index per feature against the champion's
    # training data: [{"at", "version", "psi": {feature: value}}], the latest last
    drift = models.JSONField(default=list)
    # clusters: the names people gave them, {label: name} (a label keeps its meaning across
    # retrains; its default name is the champion's description of it)
    cluster_names = models.JSONField(default=dict)

    objects = MLModelQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "key"], name="uniq_ml_model_key")
        ]

    def __str__(self) -> str:
        return self.key

    @property
    def decile_key(self) -> str:
        return f"{self.key}_decile"

    @property
    def trait_keys(self) -> list[str]:
        """The computed traits its scoring writes."""
        if self.kind in SCORE_KINDS:
            return [self.key, self.decile_key]
        return [self.key]

    def cluster_labels(self) -> dict[str, str]:
        """Clusters: label -> display name, from the champion (empty for other kinds)."""
        if self.kind != ModelKind.CLUSTERS or self.champion is None:
            return {}
        return {
            c["label"]: self.cluster_names.get(c["label"]) or c["description"].capitalize()
            for c in self.champion.charts.get("clusters", [])
        }


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_RUN = (RunStatus.QUEUED, RunStatus.RUNNING)


class TrainingRun(models.Model):
    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    stage = models.CharField(max_length=40, default="queued")
    percent = models.PositiveSmallIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    trigger = models.CharField(max_length=16, default="manual")  # manual | schedule | drift
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # the Postgres backend pid of the worker running it: a run whose session is gone died
    worker_pid = models.IntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            # one run at a time per model
            models.UniqueConstraint(
                fields=["model"],
                condition=models.Q(status__in=["queued", "running"]),
                name="uniq_ml_active_run",
            )
        ]

    def __str__(self) -> str:
        return f"{self.model_id}#{self.pk} {self.status}"

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_RUN


class VersionStatus(models.TextChoices):
    CHAMPION = "champion", "Champion"
    CHALLENGER = "challenger", "Challenger"
    RETIRED = "retired", "Retired"


class ModelVersion(models.Model):
    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    run = models.OneToOneField(
        TrainingRun, on_delete=models.SET_NULL, null=True, related_name="version"
    )
    status = models.CharField(
        max_length=16, choices=VersionStatus.choices, default=VersionStatus.CHALLENGER
    )
    # why it is (not) the champion, in a sentence
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # data window: {"train_as_of", "eval_as_of", "end", "horizon_days"}
    window = models.JSONField(default=dict)
    # {"train": n, "eval": n, "train_positives": n, "eval_positives": n}
    rows = models.JSONField(default=dict)
    # held-out metrics of the model and of its baseline, and what the page draws
    metrics = models.JSONField(default=dict)
    baseline_metrics = models.JSONField(default=dict)
    charts = models.JSONField(default=dict)
    # the metric champions are compared on (e.g. roc_auc) and its value
    score_metric = models.CharField(max_length=32, default="roc_auc")
    score = models.FloatField(null=True)
    feature_names = models.JSONField(default=list)
    feature_spec = models.JSONField(default=dict)
    # per feature: bin edges and the training shares (for drift, PSI)
    distributions = models.JSONField(default=dict)
    artefact = models.BinaryField()
    artefact_sha256 = models.CharField(max_length=64)
    sklearn_version = models.CharField(max_length=32)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="uniq_ml_version_number")
        ]
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"{self.model_id} v{self.number}"


class Item(models.Model):
    """The item catalogue recommendations draw from: built from the product properties of
    events (product_id, name, category, price), editable. A field someone edited is kept when
    the catalogue is rebuilt from events; an unavailable item is never recommended."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    item_id = models.CharField(max_length=255)
    name = models.CharField(max_length=500, blank=True)
    category = models.CharField(max_length=255, blank=True)
    price = models.FloatField(null=True, blank=True)
    available = models.BooleanField(default=True)
    attributes = models.JSONField(default=dict, blank=True)
    # fields changed by hand (name, category, price, available, attributes)
    edited_fields = models.JSONField(default=list, blank=True)
    interactions = models.PositiveIntegerField(default=0)
    first_seen = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "item_id"], name="uniq_ml_item")
        ]
        ordering = ["item_id"]

    def __str__(self) -> str:
        return self.item_id
