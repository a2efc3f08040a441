from django.db import models
from django.utils import timezone

from cdp.models import Workspace


class SuppressedIdentifier(models.Model):
    """An identifier whose events are dropped at the collector's door.

    Holds only a keyed hash (HMAC-SHA256 of "<type>:<normalised value>"), never the identifier,
    so a deleted person leaves no readable trace.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    digest = models.CharField(max_length=64)
    identifier_type = models.CharField(max_length=50)
    reason = models.CharField(max_length=50, default="deletion")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "digest"], name="uniq_suppressed_digest")
        ]

    def __str__(self) -> str:
        return f"{self.identifier_type}:{self.digest[:12]}…"


class SuppressionDropCount(models.Model):
    """How many events the collector dropped for suppressed identifiers, per source and day."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    source_id = models.BigIntegerField()
    day = models.DateField()
    dropped = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "source_id", "day"], name="uniq_suppression_drop_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day}: {self.dropped} dropped (source {self.source_id})"
