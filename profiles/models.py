from __future__ import annotations

from django.db import models
from django.utils import timezone

from cdp.keys import new_key
from cdp.models import Workspace


class SourceKind(models.TextChoices):
    PYTHON = "python", "Python server"
    NODE = "node", "Node.js server"
    JAVASCRIPT = "javascript", "Website (analytics.js)"
    HTTP = "http", "HTTP API"


class Source(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="sources")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=SourceKind.choices, default=SourceKind.HTTP)
    enabled = models.BooleanField(default=True)
    # None = the platform default (settings.CDP_DEFAULT_RATE_LIMIT / CDP_MAX_EVENT_BYTES)
    rate_limit_per_second = models.PositiveIntegerField(null=True, blank=True)
    max_event_bytes = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="uniq_source_name")
        ]
        permissions = []  # guardian uses the default view_source / change_source

    def __str__(self) -> str:
        return self.name


def _write_key() -> str:
    return new_key("wk", 18)


class WriteKey(models.Model):
    """A source may hold several keys at once so a key can be rotated without downtime."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="write_keys")
    key = models.CharField(max_length=128, unique=True, default=_write_key)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key[:10]}… ({self.source})"


class Event(models.Model):
    """One stored event, normalised. Inserted in bulk by the collector (raw SQL, see
    profiles/collector/storage.py); foreign keys are not enforced by the database so the
    table can later be partitioned by time."""

    # No single-column indexes on the foreign keys: the composite indexes below lead with
    # workspace_id, and every index costs time on the ingest path.
    workspace = models.ForeignKey(
        Workspace,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    source = models.ForeignKey(
        Source,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        related_name="+",
    )
    message_id = models.CharField(max_length=255)
    type = models.CharField(max_length=16)
    event = models.CharField(max_length=255, null=True)
    name = models.CharField(max_length=255, null=True)
    user_id = models.CharField(max_length=255, null=True)
    anonymous_id = models.CharField(max_length=255, null=True)
    group_id = models.CharField(max_length=255, null=True)
    previous_id = models.CharField(max_length=255, null=True)
    timestamp = models.DateTimeField()
    original_timestamp = models.DateTimeField(null=True)
    sent_at = models.DateTimeField(null=True)
    received_at = models.DateTimeField()
    properties = models.JSONField(default=dict)
    traits = models.JSONField(default=dict)
    context = models.JSONField(default=dict)
    integrations = models.JSONField(default=dict)
    extra = models.JSONField(default=dict)  # other top-level fields the SDK sent

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "message_id"], name="uniq_event_message")
        ]
        indexes = [
            models.Index(fields=["workspace", "-id"], name="event_ws_id"),
            models.Index(fields=["workspace", "source", "-id"], name="event_ws_source_id"),
            models.Index(
                fields=["workspace", "user_id"],
                name="event_ws_user",
                condition=models.Q(user_id__isnull=False),
            ),
            models.Index(
                fields=["workspace", "anonymous_id"],
                name="event_ws_anon",
                condition=models.Q(anonymous_id__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type}:{self.event or self.name or ''} ({self.message_id})"


class PendingEvent(models.Model):
    """The outbox: stored events not yet processed. Workers claim rows with SKIP LOCKED and
    delete them once every pipeline stage has run."""

    event_id = models.BigIntegerField(primary_key=True)
    workspace_id = models.BigIntegerField()
    enqueued_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["workspace_id", "event_id"], name="pending_ws_event")]

    def __str__(self) -> str:
        return f"pending {self.event_id}"


class FailureReason(models.TextChoices):
    INVALID_JSON = "invalid_json", "Body is not valid JSON"
    NOT_AN_OBJECT = "not_an_object", "Event is not a JSON object"
    UNKNOWN_TYPE = "unknown_type", "Unknown or missing event type"
    MISSING_IDENTITY = "missing_identity", "Neither userId nor anonymousId"
    MISSING_FIELD = "missing_field", "A required field is missing"
    INVALID_FIELD = "invalid_field", "A field has the wrong type or format"
    INVALID_TIMESTAMP = "invalid_timestamp", "A timestamp cannot be parsed"
    EVENT_TOO_LARGE = "event_too_large", "Event exceeds the per-event size cap"
    REQUEST_TOO_LARGE = "request_too_large", "Request exceeds the request size cap"


class FailedEventStatus(models.TextChoices):
    FAILED = "failed", "Failed"
    REPLAYED = "replayed", "Replayed"
    DUPLICATE = "duplicate", "Replayed (already stored)"


class FailedEvent(models.Model):
    """Dead letter: an event the collector could not accept, with the reason and the payload
    as received, so it can be replayed once the cause is fixed."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(Source, on_delete=models.SET_NULL, null=True, related_name="+")
    reason = models.CharField(max_length=32, choices=FailureReason.choices)
    message = models.TextField()
    payload = models.JSONField(null=True)  # the event object as received (JSON-able input)
    raw = models.TextField(blank=True)  # the raw text when it was not JSON
    batch_context = models.JSONField(default=dict)  # batch-level context/integrations/sentAt
    message_id = models.CharField(max_length=255, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(
        max_length=16, choices=FailedEventStatus.choices, default=FailedEventStatus.FAILED
    )
    replayed_at = models.DateTimeField(null=True, blank=True)
    replay_attempts = models.PositiveIntegerField(default=0)
    last_replay_error = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "-id"], name="failed_ws_id"),
            models.Index(fields=["workspace", "source", "-id"], name="failed_ws_source_id"),
        ]

    def __str__(self) -> str:
        return f"{self.reason}: {self.message[:60]}"


class EventCounter(models.Model):
    """Processed events per source, type and event name, per hour."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    source_id = models.BigIntegerField(null=True)
    type = models.CharField(max_length=16)
    event = models.CharField(max_length=255, default="")
    hour = models.DateTimeField()
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "source_id", "type", "event", "hour"],
                name="uniq_event_counter",
                nulls_distinct=False,
            )
        ]

    def __str__(self) -> str:
        return f"{self.type}:{self.event} @ {self.hour:%Y-%m-%d %H}h = {self.count}"


class ObservedEvent(models.Model):
    """The workspace's observed event catalogue (for the segment builder's typeahead)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=16)
    event = models.CharField(max_length=255, default="")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "type", "event"], name="uniq_observed_event"
            )
        ]

    def __str__(self) -> str:
        return f"{self.type}:{self.event}"


class PropertyKind(models.TextChoices):
    PROPERTY = "property", "Event property"
    TRAIT = "trait", "Trait"
    CONTEXT = "context", "Context field"


class ObservedProperty(models.Model):
    """A property (dotted path) seen on an event, with the JSON types observed for it."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=16)
    event = models.CharField(max_length=255, default="")
    kind = models.CharField(max_length=16, choices=PropertyKind.choices)
    path = models.CharField(max_length=255)
    value_types = models.JSONField(default=list)  # e.g. ["number", "string"]
    example = models.JSONField(null=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "type", "event", "kind", "path"],
                name="uniq_observed_property",
            )
        ]

    def __str__(self) -> str:
        return f"{self.type}:{self.event} {self.kind}.{self.path}"
