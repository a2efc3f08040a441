import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.utils import timezone

from cdp.keys import HashedSecret, new_key
from cdp.models import Workspace


def _server_key() -> str:  # the default of the clear-text column of migration 0001
    return new_key("sk")


class ServerKey(HashedSecret):
    """Authenticates sites and servers calling the decision API (GET /v1/decide). Stored as a
    digest: the key is shown once, when it is made."""

    KEY_PREFIX = "sk"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="server_keys")
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


# ---- destinations and the delivery outbox ---------------------------------------------------


class DestinationKind(models.TextChoices):
    WEBHOOK = "webhook", "Webhook"
    FILES = "files", "Files (folder or S3 bucket)"
    AMQP = "amqp", "Message broker (AMQP)"
    POSTGRES = "postgres", "Postgres table"
    GOOGLE_CUSTOMER_MATCH = "google_customer_match", "Google Customer Match"
    META_CUSTOM_AUDIENCE = "meta_custom_audience", "Meta Custom Audiences"


class CircuitState(models.TextChoices):
    CLOSED = "closed", "Closed"
    OPEN = "open", "Open"
    HALF_OPEN = "half_open", "Half-open"


class Destination(models.Model):
    """A channel that audiences, events and deletions are delivered to. `config` holds the
    kind's settings; `secrets_encrypted` its tokens and passwords (Fernet, activation.secrets),
    never shown again once saved."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=DestinationKind.choices)
    purpose = models.CharField(max_length=64)  # the consent purpose every send needs
    config = models.JSONField(default=dict, blank=True)
    secrets_encrypted = models.TextField(blank=True, default="")
    secret_names = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    # where configuration as code takes each secret from, {name: "env:CDP_SECRET_…" or
    # "file:/run/secrets/…"}: references only, never a value (activation.config_kinds)
    secret_refs = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    # delivery policy
    batch_size = models.PositiveIntegerField(default=100)
    concurrency = models.PositiveSmallIntegerField(default=2)
    rate_per_second = models.FloatField(default=0)  # requests per second; 0 = unlimited
    timeout_seconds = models.FloatField(default=10)
    max_attempts = models.PositiveSmallIntegerField(default=8)
    max_age_seconds = models.PositiveIntegerField(default=6 * 3600)
    circuit_threshold = models.PositiveSmallIntegerField(default=5)
    circuit_cooldown_seconds = models.PositiveIntegerField(default=30)
    retry_base_seconds = models.FloatField(default=10)  # first backoff, doubling per attempt
    retry_max_seconds = models.FloatField(default=600)  # the backoff's ceiling
    paused_until = models.DateTimeField(null=True, blank=True)  # a 429's Retry-After
    rate_next_at = models.DateTimeField(null=True, blank=True)  # next free send time
    # circuit breaker
    circuit_state = models.CharField(
        max_length=16, choices=CircuitState.choices, default=CircuitState.CLOSED
    )
    consecutive_failures = models.PositiveIntegerField(default=0)
    circuit_opened_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="uniq_destination_name")
        ]

    def __str__(self) -> str:
        return self.name


class DeliveryKind(models.TextChoices):
    UPSERT = "upsert", "Audience add/update"
    REMOVE = "remove", "Audience removal"
    EVENT = "event", "Forwarded event"
    DELETION = "deletion", "Deletion notice"
    BULK = "bulk", "Audience batch"  # an initial or full run's members, one request's worth


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for its time (new, or retrying after backoff)
    SENDING = "sending", "Sending"  # claimed by a worker until lease_until
    DELIVERED = "delivered", "Delivered"
    DEAD = "dead", "Dead letter"
    CANCELLED = "cancelled", "Cancelled"  # not sent: consent, deletion, superseded


OPEN_DELIVERY_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)


class Delivery(models.Model):
    """One unit of work for one destination (an outbox row), written in the transaction that
    causes it. `key` is its idempotency key: the same across every retry and resend."""

    id = models.BigAutoField(primary_key=True)
    workspace_id = models.BigIntegerField()
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=DeliveryKind.choices)
    # unique by construction (uuid4, made once with the row): no index to maintain for it
    key = models.UUIDField(default=uuid.uuid4)
    profile_id = models.BigIntegerField(null=True, blank=True)  # the ordering key
    # a bulk delivery's members, in item order (its payload's `items`); None for the others
    profile_ids = ArrayField(models.BigIntegerField(), null=True, blank=True)
    batch_id = models.BigIntegerField(null=True, blank=True)  # the audience batch it left
    sync_id = models.BigIntegerField(null=True, blank=True)
    run_id = models.BigIntegerField(null=True, blank=True)
    stream_id = models.BigIntegerField(null=True, blank=True)
    privacy_request_id = models.BigIntegerField(null=True, blank=True)
    payload = models.JSONField()
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.IntegerField(null=True, blank=True)  # the claimer's Postgres backend pid
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=64, blank=True, default="")  # machine-readable
    error = models.TextField(blank=True, default="")

    class Meta:
        indexes = [
            models.Index(
                fields=["destination", "next_attempt_at", "id"],
                name="delivery_due",
                condition=models.Q(status="pending"),
            ),
            # claims take the oldest pending rows first without walking the delivered ones
            models.Index(
                fields=["destination", "id"],
                name="delivery_pending",
                condition=models.Q(status="pending"),
            ),
            # whether a destination has bulk deliveries on their way (a claim looks for its
            # candidates' profiles in them only then)
            models.Index(
                fields=["destination"],
                name="delivery_open_bulk",
                condition=models.Q(kind="bulk", status__in=["pending", "sending"]),
            ),
            # which bulk deliveries carry a profile (ordering, deletions, exports)
            GinIndex(
                fields=["profile_ids"],
                name="delivery_bulk_profiles",
                condition=models.Q(kind="bulk"),
            ),
            models.Index(
                fields=["destination", "profile_id", "id"],
                name="delivery_open_profile",
                condition=models.Q(status__in=["pending", "sending"]),
            ),
            # every status change writes a new row version into each full index: few of them
            # (the lists by workspace walk the primary key; dead letters have their own)
            models.Index(fields=["destination", "id"], name="delivery_dest_id"),
            models.Index(
                fields=["workspace_id", "id"],
                name="delivery_dead",
                condition=models.Q(status="dead"),
            ),
            models.Index(fields=["profile_id"], name="delivery_profile"),
            models.Index(
                fields=["lease_until"],
                name="delivery_leased",
                condition=models.Q(status="sending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} → {self.destination_id} ({self.status})"


class AttemptOutcome(models.TextChoices):
    OK = "ok", "Delivered"
    RETRY = "retry", "Failed, will retry"
    THROTTLED = "throttled", "Throttled (429)"
    DEAD = "dead", "Failed for good"


class DeliveryAttempt(models.Model):
    """One request to a destination carrying one or more deliveries."""

    id = models.BigAutoField(primary_key=True)
    workspace_id = models.BigIntegerField()
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="+")
    delivery_ids = ArrayField(models.BigIntegerField())
    items = models.PositiveIntegerField(default=0)  # deliveries in the request (bulk: items)
    at = models.DateTimeField(default=timezone.now)
    duration_ms = models.FloatField(default=0)
    outcome = models.CharField(max_length=16, choices=AttemptOutcome.choices)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=64, blank=True, default="")
    error = models.TextField(blank=True, default="")
    request = models.JSONField(default=dict, blank=True)  # method, target, items, bytes
    response = models.TextField(blank=True, default="")  # the first 2 KB

    class Meta:
        indexes = [
            models.Index(fields=["destination", "-at"], name="attempt_dest_at"),
            GinIndex(fields=["delivery_ids"], name="attempt_deliveries"),
        ]

    def __str__(self) -> str:
        return f"attempt #{self.pk} → {self.destination_id}: {self.outcome}"


# ---- audience syncs -------------------------------------------------------------------------


class SyncSchedule(models.TextChoices):
    REALTIME = "realtime", "Real-time (deltas every few seconds)"
    INTERVAL = "interval", "Every N minutes"


class SyncMode(models.TextChoices):
    ADD_REMOVE = "add_remove", "Add and remove"
    MIRROR = "mirror", "Mirror (adds, updates and removes)"


class Sync(models.Model):
    """A segment kept in step with a destination: the mapping says what each member is sent
    as, the schedule when deltas go out."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    segment = models.ForeignKey("segments.Segment", on_delete=models.PROTECT, related_name="+")
    destination = models.ForeignKey(Destination, on_delete=models.PROTECT, related_name="syncs")
    mapping = models.JSONField(default=dict)
    mode = models.CharField(max_length=16, choices=SyncMode.choices, default=SyncMode.MIRROR)
    schedule = models.CharField(
        max_length=16, choices=SyncSchedule.choices, default=SyncSchedule.REALTIME
    )
    interval_minutes = models.PositiveIntegerField(default=60)
    enabled = models.BooleanField(default=True)
    # where the delta planner has read up to
    change_cursor = models.BigIntegerField(default=0)  # segments_membershipchange.id
    consent_cursor = models.BigIntegerField(default=0)  # consent_consentrecord.id
    profile_cursor = models.DateTimeField(null=True, blank=True)  # profiles_profile.updated_at
    initialised = models.BooleanField(default=False)  # the first full run has been planned
    resync_requested = models.BooleanField(default=False)
    # a campaign holdout: a stable share of the members withheld, measured by the experiments
    # engine (its variants "holdout" and "treated"); kept after it stops, for its results
    holdout_experiment = models.ForeignKey(
        "activation.Experiment", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    next_run_at = models.DateTimeField(default=timezone.now)
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="uniq_sync_name")]

    def __str__(self) -> str:
        return self.name


class SyncMember(models.Model):
    """What a sync has sent for one profile (`sent`: identifier digests and fields, as the
    destination will hold them once open deliveries land) and what the destination has
    acknowledged (`acked`). The planner diffs the desired state against `sent`."""

    id = models.BigAutoField(primary_key=True)
    # look-ups by sync use the unique (sync, profile_id) index: no index of its own
    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="+", db_index=False)
    profile_id = models.BigIntegerField()
    sent_identifiers = ArrayField(models.TextField(), default=list)
    sent_fields_hash = models.CharField(max_length=64, blank=True, default="")
    acked_identifiers = ArrayField(models.TextField(), default=list)
    acked_fields_hash = models.CharField(max_length=64, blank=True, default="")
    acked_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sync", "profile_id"], name="uniq_sync_member")
        ]
        indexes = [models.Index(fields=["profile_id"], name="sync_member_profile")]

    def __str__(self) -> str:
        return f"{self.profile_id} in sync {self.sync_id}"


class RunKind(models.TextChoices):
    DELTA = "delta", "Delta"
    FULL = "full", "Full resync"
    INITIAL = "initial", "Initial sync"


class SyncRun(models.Model):
    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=16, choices=RunKind.choices)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    added = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    skipped_consent = models.PositiveIntegerField(default=0)
    skipped_no_identifier = models.PositiveIntegerField(default=0)
    skipped_holdout = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["sync", "-started_at"], name="sync_run_at")]

    def __str__(self) -> str:
        return f"{self.kind} run of sync {self.sync_id}"


# ---- event streams --------------------------------------------------------------------------


class Stream(models.Model):
    """A source's events forwarded to a destination: filters choose them, transforms shape
    them; consent is checked per event."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    source = models.ForeignKey("profiles.Source", on_delete=models.CASCADE, related_name="+")
    destination = models.ForeignKey(Destination, on_delete=models.PROTECT, related_name="streams")
    filters = models.JSONField(default=dict, blank=True)
    transform = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="uniq_stream_name")
        ]

    def __str__(self) -> str:
        return self.name


class SyncDirty(models.Model):
    """A member of a synced segment whose traits or identifiers changed (written by the
    pipeline stage and the merge/split hooks, in their transaction); the next delta of each
    of its syncs re-checks what it should be sent with."""

    id = models.BigAutoField(primary_key=True)
    sync = models.ForeignKey(Sync, on_delete=models.CASCADE, related_name="+")
    profile_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["sync", "profile_id"], name="uniq_sync_dirty")
        ]

    def __str__(self) -> str:
        return f"{self.profile_id} dirty in sync {self.sync_id}"


# the experiments' tables live in activation/experiments/models.py
# the decision API's tables live in activation/decisions/models.py
from activation.decisions.models import (  # noqa: E402
    DecisionRecord as DecisionRecord,
)
from activation.decisions.models import (  # noqa: E402
    DecisionState as DecisionState,
)
from activation.decisions.models import (  # noqa: E402
    Offer as Offer,
)
from activation.decisions.models import (  # noqa: E402
    Placement as Placement,
)
from activation.experiments.models import (  # noqa: E402
    Experiment as Experiment,
)
from activation.experiments.models import (  # noqa: E402
    Exposure as Exposure,
)
from activation.experiments.models import (  # noqa: E402
    Metric as Metric,
)
