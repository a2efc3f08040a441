"""The decision API's tables: placements (where a site shows something), offers (what it may
show there, to whom, how often), the compact per-profile decision record the fast path reads,
and the per-workspace version that invalidates every process's cached configuration."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from cdp.models import Workspace


class Placement(models.Model):
    """A slot on a site or in an app (`home_hero`): the shape of what it shows (a JSON Schema
    every offer's content must satisfy), what it shows when no offer applies, and optionally
    the recommendations model whose items it lists."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    key = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    content_schema = models.JSONField(default=dict)
    default_content = models.JSONField(null=True, blank=True)
    recommendations_model = models.CharField(max_length=64, blank=True)
    recommendations_count = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "key"], name="uniq_placement_key")
        ]

    def __str__(self) -> str:
        return self.key


class Offer(models.Model):
    """Content for one placement, shown to the profiles its eligibility rule admits, between
    its dates, within its frequency caps; the highest priority wins, then the model score
    named by `rank_by`, then a weighted draw stable per profile."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    placement = models.ForeignKey(Placement, on_delete=models.CASCADE, related_name="offers")
    key = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    content = models.JSONField(default=dict)
    # the segment rule language (decision-time flavour: context conditions, no events);
    # null: everyone
    eligibility = models.JSONField(null=True, blank=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    priority = models.IntegerField(default=0)
    weight = models.FloatField(default=1.0)
    # impressions allowed per profile: in the last 24 h, 7 days, ever (null: no cap)
    cap_day = models.PositiveIntegerField(null=True, blank=True)
    cap_week = models.PositiveIntegerField(null=True, blank=True)
    cap_lifetime = models.PositiveIntegerField(null=True, blank=True)
    # a computed trait holding a model score (0–1) that orders offers of equal priority
    rank_by = models.CharField(max_length=64, blank=True)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "key"], name="uniq_offer_key")]

    def __str__(self) -> str:
        return self.key


class DecisionRecord(models.Model):
    """What the decision API knows of one live profile, in one row read by primary key:
    traits, computed traits (model scores, clusters, recommended items), the profile columns
    rules read, experiment exposures and impression counters. Kept current by the pipeline
    stage and the computed-values, merge and split hooks (records.py). Segment memberships and
    consent decisions change outside the pipeline too (publications, scheduled evaluations,
    the consent API): the decision's statement reads them beside the record, by index, so they
    are never stale."""

    profile_id = models.BigIntegerField(primary_key=True)
    workspace_id = models.BigIntegerField()
    traits = models.JSONField(default=dict)
    computed = models.JSONField(default=dict)
    columns = models.JSONField(default=dict)
    exposures = models.JSONField(default=dict)  # experiment id -> variant key
    # offer id -> {"n": impressions ever, "t": [epoch seconds of the latest, newest last]}
    caps = models.JSONField(default=dict)
    built_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["workspace_id"], name="decision_record_ws")]

    def __str__(self) -> str:
        return f"decision record of {self.profile_id}"


class DecisionState(models.Model):
    """Per workspace: the configuration version (bumped on any change to placements, offers,
    experiments or the decision settings; every process reloads its cache when it moves)."""

    workspace_id = models.BigIntegerField(primary_key=True)
    version = models.BigIntegerField(default=1)

    def __str__(self) -> str:
        return f"decisions of workspace {self.workspace_id} v{self.version}"
