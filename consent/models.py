from django.conf import settings
from django.contrib.postgres.fields import ArrayField
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


class LegalBasis(models.TextChoices):
    CONSENT = "consent", "Consent (opt-in)"
    LEGITIMATE_INTEREST = "legitimate_interest", "Legitimate interest (opt-out)"


class Purpose(models.Model):
    """A purpose personal data is used for (analytics, marketing_email, …). Under consent
    nobody is in until they say yes; under legitimate interest everybody is until they
    object — unless `default_granted` says otherwise."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    key = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    legal_basis = models.CharField(max_length=32, choices=LegalBasis.choices)
    default_granted = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "key"], name="uniq_purpose_key")
        ]

    def __str__(self) -> str:
        return self.key


class ConsentStatus(models.TextChoices):
    GRANTED = "granted", "Granted"
    DENIED = "denied", "Denied"
    WITHDRAWN = "withdrawn", "Withdrawn"


class ConsentRecord(models.Model):
    """One decision, append-only: a database trigger refuses any change to what was decided,
    when, where and with what proof. Only `profile_id` moves, when profiles merge or split
    (the decision follows the person); deletion is possible only inside a privacy deletion."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    profile_id = models.BigIntegerField()
    origin_profile_id = models.BigIntegerField()  # the profile it was recorded on
    purpose = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=ConsentStatus.choices)
    occurred_at = models.DateTimeField()  # when the person decided (the event's time)
    recorded_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=32)  # event | api | ui
    event_id = models.BigIntegerField(null=True, blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    policy_version = models.CharField(max_length=64, blank=True)
    ip = models.CharField(max_length=64, blank=True)
    user_agent = models.TextField(blank=True)
    actor_id = models.BigIntegerField(null=True, blank=True)  # who recorded it via API/UI

    class Meta:
        indexes = [
            models.Index(fields=["profile_id", "purpose", "occurred_at"], name="consent_profile"),
            models.Index(fields=["workspace", "recorded_at"], name="consent_ws_recorded"),
        ]

    def __str__(self) -> str:
        return f"{self.profile_id} {self.purpose} {self.status} at {self.occurred_at:%Y-%m-%d}"


class ConsentState(models.Model):
    """The current decision per profile and purpose: the latest record by the time it was
    made (ties: the later recorded). Derived from the log, kept for set-based checks."""

    workspace_id = models.BigIntegerField()
    profile_id = models.BigIntegerField()
    purpose = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=ConsentStatus.choices)
    decided_at = models.DateTimeField()
    record_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile_id", "purpose"], name="uniq_consent_state")
        ]
        indexes = [
            models.Index(fields=["workspace_id", "purpose", "status"], name="consent_state_ws")
        ]

    def __str__(self) -> str:
        return f"{self.profile_id} {self.purpose}: {self.status}"


DEFAULT_EVENT_RETENTION_DAYS = 365
DEFAULT_FAILED_EVENT_RETENTION_DAYS = 30
MAX_RETENTION_DAYS = 36500


class RetentionPolicy(models.Model):
    """How long a workspace keeps event-level data: raw events (with the profile-event rows
    derived from them) and dead-lettered events. None keeps them forever. Profiles, traits,
    computed traits, consent decisions and membership history are not events and stay.
    A workspace without a row has the defaults."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="+")
    event_days = models.PositiveIntegerField(
        null=True, blank=True, default=DEFAULT_EVENT_RETENTION_DAYS
    )
    failed_event_days = models.PositiveIntegerField(
        null=True, blank=True, default=DEFAULT_FAILED_EVENT_RETENTION_DAYS
    )
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by_id = models.BigIntegerField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run = models.JSONField(default=dict, blank=True)  # cut-offs and counts of the last run
    # a shortening waiting out its grace period (it deletes in bulk): {"event_days",
    # "failed_event_days", "effective_at", "requested_by"}; None when there is none
    pending = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(event_days__isnull=True)
                | models.Q(event_days__gte=1, event_days__lte=MAX_RETENTION_DAYS),
                name="retention_event_days_range",
            ),
            models.CheckConstraint(
                condition=models.Q(failed_event_days__isnull=True)
                | models.Q(failed_event_days__gte=1, failed_event_days__lte=MAX_RETENTION_DAYS),
                name="retention_failed_days_range",
            ),
        ]

    def __str__(self) -> str:
        return f"events {self.event_days or '∞'} d, failed {self.failed_event_days or '∞'} d"


class PrivacyRequestType(models.TextChoices):
    EXPORT = "export", "Export (access)"
    DELETE = "delete", "Delete (erasure)"
    SUPPRESS = "suppress", "Suppress"
    UNSUPPRESS = "unsuppress", "Unsuppress"


class PrivacyRequestStatus(models.TextChoices):
    PENDING_APPROVAL = "pending_approval", "Pending approval"
    APPROVED = "approved", "Approved"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


# a request may be approved while pending, or again after it failed (to retry it)
APPROVABLE_STATUSES = (PrivacyRequestStatus.PENDING_APPROVAL, PrivacyRequestStatus.FAILED)
PRIVACY_SLA_DAYS = 30
# GDPR art. 12(3): the month may be extended by two further months where necessary, once,
# telling the person why
PRIVACY_MAX_EXTENSION_DAYS = 60


DEFAULT_PII_TRAITS = (
    "email",
    "phone",
    "name",
    "first_name",
    "firstName",
    "last_name",
    "lastName",
    "username",
    "address",
    "birthday",
)


def default_pii_traits() -> list[str]:
    return list(DEFAULT_PII_TRAITS)


class PrivacySettings(models.Model):
    """Workspace-wide rules for privacy requests. With two-person approval on, whoever records
    a request cannot also approve it: another privacy manager must (the four-eyes rule many
    privacy programmes require for erasure). A workspace without a row has the defaults."""

    workspace = models.OneToOneField(Workspace, on_delete=models.CASCADE, related_name="+")
    two_person_approval = models.BooleanField(default=False)
    # traits that identify a person directly: left out of member exports for roles that may
    # not see personal data (cdp.access "pii.view"), with the email and phone identifiers
    pii_traits = ArrayField(models.CharField(max_length=100), default=default_pii_traits)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by_id = models.BigIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"privacy settings of workspace {self.workspace_id}"


class PrivacyRequest(models.Model):
    """A data subject's request (GDPR art. 15/17/21, CCPA), from intake to receipt. The
    identifier is kept in clear only while it is needed: a completed deletion or suppression
    leaves its keyed hash alone."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=16, choices=PrivacyRequestType.choices)
    identifier_type = models.CharField(max_length=64)
    identifier_value = models.CharField(max_length=255, blank=True)  # "" once forgotten
    identifier_digest = models.CharField(max_length=64)  # consent.suppression.identifier_digest
    suppress = models.BooleanField(default=True)  # a deletion also suppresses, unless told not to
    note = models.TextField(blank=True)  # e.g. the ticket or how the person asked
    status = models.CharField(
        max_length=20,
        choices=PrivacyRequestStatus.choices,
        default=PrivacyRequestStatus.PENDING_APPROVAL,
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField()
    extended_at = models.DateTimeField(null=True, blank=True)
    extension_reason = models.TextField(blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    receipt = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="privacy_ws_created"),
            models.Index(fields=["workspace", "identifier_digest"], name="privacy_ws_digest"),
        ]

    def __str__(self) -> str:
        return f"{self.type} request #{self.pk} ({self.status})"

    @property
    def is_open(self) -> bool:
        """Not completed yet: its deadline still runs."""
        return self.status != PrivacyRequestStatus.COMPLETED

    @property
    def approvable(self) -> bool:
        """Its status allows an approval (who may approve is privacy.approval_refusal's)."""
        return self.status in APPROVABLE_STATUSES

    @property
    def has_export(self) -> bool:
        """Its export bundle is there to download (until it expires)."""
        return PrivacyExport.objects.filter(request_id=self.pk).exists()

    @property
    def overdue(self) -> bool:
        return self.is_open and self.due_at < timezone.now()

    @property
    def extendable(self) -> bool:
        """Its deadline may still be extended (once, while open)."""
        return self.is_open and self.extended_at is None


class PrivacyExport(models.Model):
    """The bundle of an export request: gzip-compressed JSON, downloaded by a privacy manager
    and deleted with everything else if the same person is later erased."""

    request = models.OneToOneField(PrivacyRequest, on_delete=models.CASCADE, related_name="export")
    content = models.BinaryField()
    size = models.BigIntegerField()  # bytes of JSON, uncompressed
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"export of request #{self.request_id} ({self.size} bytes)"


class PropagationStatus(models.TextChoices):
    PENDING = "pending", "Queued"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class PrivacyPropagation(models.Model):
    """What one destination was asked to do for a deletion or suppression (its own erasure
    API, a suppression list…), and how that went."""

    request = models.ForeignKey(
        PrivacyRequest, on_delete=models.CASCADE, related_name="propagations"
    )
    destination = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=PropagationStatus.choices)
    detail = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["request", "destination"], name="uniq_privacy_propagation"
            )
        ]

    def __str__(self) -> str:
        return f"{self.destination}: {self.status}"
