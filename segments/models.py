from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.utils import timezone

from cdp.models import Workspace


class SegmentStatus(models.TextChoices):
    DRAFT = "draft", "Draft (never published)"
    PUBLISHED = "published", "Published"
    ARCHIVED = "archived", "Archived"


def normalise_tag(raw: str) -> str:
    """A tag as stored and looked up: lower-case, single spaces, trimmed."""
    return " ".join(raw.lower().split())


class Segment(models.Model):
    """An audience defined by a rule. Its rule lives in versions: editing a published
    segment creates a draft version; publishing makes a version the live one."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    key = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # labels to organise many segments ("lifecycle", "q4 campaign"); metadata, not versioned
    tags = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    status = models.CharField(
        max_length=16, choices=SegmentStatus.choices, default=SegmentStatus.DRAFT
    )
    published_version = models.ForeignKey(
        "SegmentVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    draft_version = models.ForeignKey(
        "SegmentVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    member_count = models.IntegerField(default=0)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    # how long the last whole-workspace evaluation (full or publish) took: the System page's
    # slowest segments
    evaluation_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "key"], name="uniq_segment_key")
        ]
        indexes = [GinIndex(fields=["tags"], name="segment_tags")]

    def __str__(self) -> str:
        return self.name

    @property
    def pending_draft(self) -> SegmentVersion | None:
        """The draft waiting to be published, if there is one."""
        draft = self.draft_version
        return draft if draft is not None and draft.published_at is None else None

    def version_state(self, version: SegmentVersion) -> str:
        """live, draft or earlier."""
        if version.pk == self.published_version_id:
            return "live"
        return "draft" if version.pk == self.draft_version_id else "earlier"


class SegmentVersion(models.Model):
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    rule = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["segment", "number"], name="uniq_segment_version")
        ]

    def __str__(self) -> str:
        return f"{self.segment_id} v{self.number}"


class Membership(models.Model):
    """A profile's stay in a segment: entered under a rule version, exited (or still in)."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="+")
    profile_id = models.BigIntegerField()
    version = models.PositiveIntegerField()
    entered_at = models.DateTimeField()
    exited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "segments_membership"
        constraints = [
            models.UniqueConstraint(
                fields=["segment", "profile_id"],
                condition=models.Q(exited_at__isnull=True),
                name="uniq_current_membership",
            )
        ]
        indexes = [
            models.Index(fields=["segment", "profile_id", "entered_at"], name="membership_seg_pro"),
            models.Index(fields=["profile_id"], name="membership_profile"),
        ]

    def __str__(self) -> str:
        return f"{self.profile_id} in {self.segment_id}"


class ChangeKind(models.TextChoices):
    ENTERED = "entered", "Entered"
    EXITED = "exited", "Exited"


class MembershipChange(models.Model):
    """Outbox of membership changes (who entered or left which segment, when), written in the
    same statement as the membership itself; audience syncs and triggers consume it."""

    workspace_id = models.BigIntegerField()
    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    profile_id = models.BigIntegerField()
    kind = models.CharField(max_length=8, choices=ChangeKind.choices)
    version = models.PositiveIntegerField()
    at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["workspace_id", "id"], name="mchange_ws_id"),
            models.Index(fields=["segment", "-at"], name="mchange_segment_at"),
        ]

    def __str__(self) -> str:
        return f"{self.profile_id} {self.kind} {self.segment_id}"


class Expiry(models.Model):
    """When a profile's answer to a segment's windowed rule next changes by time alone (an
    event leaves its window). A beat task re-evaluates the profile at exactly that moment."""

    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    profile_id = models.BigIntegerField()
    due_at = models.DateTimeField()

    class Meta:
        db_table = "segments_expiry"
        constraints = [
            models.UniqueConstraint(fields=["segment", "profile_id"], name="uniq_segment_expiry")
        ]
        indexes = [models.Index(fields=["due_at"], name="expiry_due")]

    def __str__(self) -> str:
        return f"{self.profile_id} in {self.segment_id} at {self.due_at:%Y-%m-%d %H:%M:%S}"


# the ML model registry lives in its own subpackage; Django finds its tables through here
from segments.ml.models import (  # noqa: E402
    MLModel as MLModel,
)
from segments.ml.models import (  # noqa: E402
    ModelVersion as ModelVersion,
)
from segments.ml.models import (  # noqa: E402
    TrainingRun as TrainingRun,
)
