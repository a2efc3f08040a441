from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
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
    # browsers may call with this source's write key from these origins only (empty: any;
    # "https://*.example.com" for subdomains); requests without an Origin are not concerned
    allowed_origins = ArrayField(models.CharField(max_length=255), default=list, blank=True)
    # invalid events kept per day (dead letters); the rest are counted, not kept. None = the
    # platform default (settings.CDP_DEAD_LETTER_QUOTA)
    dead_letter_quota = models.PositiveIntegerField(null=True, blank=True)
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
    profiles/collector/storage.py). The table is partitioned by UTC day of arrival
    (profiles/partitions.py; primary key (id, received_at) in the database), so foreign keys
    are not enforced by the database and the messageId dedup lives in EventMessage."""

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
            # retention deletes whole days of arrival; a block-range index costs next to
            # nothing on the append-only ingest path (rows arrive in received_at order)
            BrinIndex(fields=["received_at"], name="event_received_brin"),
        ]

    def __str__(self) -> str:
        return f"{self.type}:{self.event or self.name or ''} ({self.message_id})"


class EventMessage(models.Model):
    """Every messageId a workspace has stored, kept for good: dedup is permanent even after
    retention dropped the event's partition (a unique index on the partitioned events table
    would have to include the partition key). Written in the same statement as the event;
    the event's id and arrival time find it in one partition. No personal data: ids only."""

    pk = models.CompositePrimaryKey("workspace_id", "message_id")
    workspace_id = models.BigIntegerField()
    message_id = models.CharField(max_length=255)
    event_id = models.BigIntegerField()
    received_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"message {self.message_id}"


class PendingEvent(models.Model):
    """The outbox: stored events not yet processed. Workers claim rows with SKIP LOCKED and
    delete them once every pipeline stage has run."""

    event_id = models.BigIntegerField(primary_key=True)
    workspace_id = models.BigIntegerField()
    enqueued_at = models.DateTimeField(default=timezone.now)
    # hash of the event's anonymousId (else userId): parallel drains of one workspace each
    # take one partition (route % drains), so one person's events rarely meet in two workers
    route = models.IntegerField(default=0)
    # the event's arrival: loading the batch is then pruned to its day's partition
    received_at = models.DateTimeField(null=True)
    # first time a drain left it for later (its person was held by another drain); after
    # queue.DEFER_MAX_AGE it is not put off again
    deferred_at = models.DateTimeField(null=True)

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
    NOT_KEPT = "not_kept", "More invalid events in one request than are kept"


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


class DeadLetterDay(models.Model):
    """A source's dead letters of one (UTC) day: how many were kept (rows in FailedEvent) and
    how many were only counted — over the per-request cap or the source's daily quota — and
    when the quota was reached (the alert)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    kept = models.BigIntegerField(default=0)
    not_kept = models.BigIntegerField(default=0)
    quota_reached_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "day"], name="uniq_dead_letter_day")
        ]
        indexes = [models.Index(fields=["workspace", "day"], name="dead_letter_ws_day")]

    def __str__(self) -> str:
        return f"{self.source_id} {self.day}: {self.kept} kept, {self.not_kept} not kept"


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
        # the throughput charts (System page, source pages) read a workspace's recent hours
        indexes = [models.Index(fields=["workspace", "hour"], name="event_counter_hour")]

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
    # values seen of each JSON type, e.g. {"number": 71, "string": 29} (counted since this
    # field exists: a path seen with several types before it shows no shares until new events)
    type_counts = models.JSONField(default=dict)
    # how many of the strings read as numbers (profiles.coercion): number operators match them
    numeric_strings = models.BigIntegerField(default=0)
    # JSON type -> {"message_id", "source_id"} of the newest event that sent such a value
    type_examples = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "type", "event", "kind", "path"],
                name="uniq_observed_property",
            )
        ]

    def __str__(self) -> str:
        return f"{self.type}:{self.event} {self.kind}.{self.path}"


# --- identity resolution and profiles -------------------------------------------------------

DEFAULT_PRIORITY = ["user_id", "email", "phone", "device_id", "anonymous_id"]
DEFAULT_LIMITS = {"user_id": 1}
DEFAULT_BLOCKLIST = [
    "",
    "0",
    "-1",
    "null",
    "none",
    "nil",
    "undefined",
    "anonymous",
    "unknown",
    "guest",
    "n/a",
    "na",
    "test",
    "[object object]",
    "00000000-0000-0000-0000-000000000000",
    "test@test.com",
    "test@example.com",
    "email@example.com",
    "user@example.com",
    "noemail@noemail.com",
    "no@email.com",
]


def _default_priority() -> list[str]:
    return list(DEFAULT_PRIORITY)


def _default_limits() -> dict[str, int]:
    return dict(DEFAULT_LIMITS)


def _default_blocklist() -> list[str]:
    return list(DEFAULT_BLOCKLIST)


class TraitStrategy(models.TextChoices):
    """How two values of one trait combine (an event applied to a profile, or two profiles
    merged). Each is an associative fold over events, so a merge equals replaying both
    profiles' events, and a split can recompute each side from its own events."""

    MOST_RECENT = "most_recent", "Most recent (by event time)"
    OLDEST = "oldest", "Oldest (by event time)"
    NON_EMPTY = "non_empty", "Most recent non-empty value"
    SUM = "sum", "Sum of all values"


class IdentityRules(models.Model):
    """Per-workspace identity settings, as in Segment's identity resolution settings."""

    workspace = models.OneToOneField(
        Workspace, on_delete=models.CASCADE, related_name="identity_rules"
    )
    # identifier types, highest priority first; types not listed rank after those listed
    priority = models.JSONField(default=_default_priority)
    # identifier type -> the most identifiers of that type one profile may hold
    limits = models.JSONField(default=_default_limits)
    # junk values never used as identifiers (compared lower-cased, after trimming)
    blocklist = models.JSONField(default=_default_blocklist)
    # trait keys whose values are identifiers of their own type, e.g. ["loyalty_id"]
    custom_identifier_traits = models.JSONField(default=list, blank=True)
    # trait key -> TraitStrategy value; traits not listed use MOST_RECENT
    trait_strategies = models.JSONField(default=dict, blank=True)
    # ISO country used to read phone numbers written without a country code ("" = none)
    phone_region = models.CharField(max_length=2, blank=True, default="")
    # the track event that counts as an order for the built-in computed traits
    order_event = models.CharField(max_length=255, default="Order Completed")
    version = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(default=timezone.now)
    # the report of the latest full identity-graph rebuild (or dry run), for the rules page
    last_rebuild = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"identity rules of {self.workspace_id}"


class Profile(models.Model):
    """One real person. A profile merged into another keeps its row with `merged_into` set,
    so its id keeps resolving to the survivor.

    The pipeline's hot tables (profiles, identities, identity links) carry no database-level
    foreign keys: a deferred FK fires one trigger per written row at commit, which cost more
    than the rows themselves. Integrity is kept by the services (one writer per profile under
    row locks); deletes cascade through Django as before."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    merged_into = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )
    merged_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    traits = models.JSONField(default=dict)
    # trait key -> ISO time of the event the current value came from (for the strategies)
    trait_times = models.JSONField(default=dict)
    group_ids = models.JSONField(default=list)  # groups (accounts) the person belongs to
    # built-in aggregates, maintained incrementally per event and recomputable from events
    first_seen = models.DateTimeField(null=True)
    last_seen = models.DateTimeField(null=True)
    event_count = models.BigIntegerField(default=0)
    event_counts = models.JSONField(default=dict)  # per type: {"track": 3, "page": 5}
    order_count = models.IntegerField(default=0)
    revenue = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    first_order_at = models.DateTimeField(null=True)
    last_order_at = models.DateTimeField(null=True)
    # log2 of Σ weight·2^((t - epoch)/half-life): an exponentially decayed activity sum
    # that is order-independent and adds up on a merge
    engagement_log2 = models.FloatField(null=True)
    # values of scheduled built-ins (RFM, engagement score) and user-defined computed traits
    computed = models.JSONField(default=dict)

    class Meta:
        # No index on a column that every processed event changes (last_seen, counts): with
        # fillfactor 70 (migration 0002) the per-batch profile updates stay HOT updates that
        # touch no index at all.
        indexes = [
            models.Index(
                fields=["workspace", "-id"],
                name="profile_ws_live_id",
                condition=models.Q(merged_into__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"profile {self.pk}"


class Identity(models.Model):
    """An identifier node of the identity graph, attached to the profile it resolves to."""

    # no index of its own: uniq_identity_value and identity_ws_value begin with it (the
    # pipeline inserts an identity per new identifier; each index is one more write)
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    profile = models.ForeignKey(
        Profile,
        on_delete=models.CASCADE,
        related_name="identities",
        db_index=False,
        db_constraint=False,
    )
    # the profile this identifier was first attached to; a split moves it back to that side
    origin_profile_id = models.BigIntegerField()
    type = models.CharField(max_length=64)
    value = models.CharField(max_length=255)
    first_seen = models.DateTimeField()
    first_event_id = models.BigIntegerField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "type", "value"], name="uniq_identity_value"
            )
        ]
        indexes = [
            # per-profile look-ups, and counting a profile's identifiers of a limited type
            models.Index(fields=["profile", "type"], name="identity_profile_type"),
            models.Index(
                fields=["workspace", "value"],
                name="identity_ws_value",
                opclasses=["int8_ops", "varchar_pattern_ops"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


class IdentityLink(models.Model):
    """An edge of the identity graph: two identifiers seen on one event (kept even when a
    limit refused to merge their profiles, so the full rebuild sees the whole graph)."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    # a: no index of its own, uniq_identity_link begins with it
    a = models.ForeignKey(
        Identity, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    b = models.ForeignKey(Identity, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    first_event_id = models.BigIntegerField(null=True)
    first_seen = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["a", "b"], name="uniq_identity_link")]

    def __str__(self) -> str:
        return f"{self.a_id}–{self.b_id}"


class ProfileEvent(models.Model):
    """Which profile each processed event belongs to (a narrow, insert-mostly table: merges
    re-point rows, the raw events table is never rewritten)."""

    event_id = models.BigIntegerField(primary_key=True)
    workspace_id = models.BigIntegerField()
    # no index of its own: pevent_profile_ts begins with it (a row per processed event, so
    # each index is one more write per event)
    profile = models.ForeignKey(
        Profile, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", db_index=False
    )
    origin_profile_id = models.BigIntegerField()
    timestamp = models.DateTimeField()
    type = models.CharField(max_length=16)
    event = models.CharField(max_length=255, default="")  # track name or page/screen name
    # a copy of a track event's properties, so that segment conditions on event properties
    # read the narrow table only (joining the raw events costs a scan of all of them)
    properties = models.JSONField(default=dict)

    class Meta:
        indexes = [
            models.Index(fields=["profile", "-timestamp", "-event_id"], name="pevent_profile_ts"),
            # "who did event X in the window" (windowed computed traits, segment conditions)
            models.Index(
                fields=["workspace_id", "event", "timestamp"],
                name="pevent_ws_track_ts",
                condition=models.Q(type="track"),
            ),
            # "how often did this profile do event X in the window" (real-time segment
            # evaluation of the profiles a batch touched)
            models.Index(
                fields=["profile", "event", "timestamp"],
                name="pevent_profile_track",
                condition=models.Q(type="track"),
            ),
        ]

    def __str__(self) -> str:
        return f"event {self.event_id} -> profile {self.profile_id}"


class MergeStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SPLIT = "split", "Split (undone)"


class ProfileMerge(models.Model):
    """Audit record of a merge: which event linked which identifiers under which rule. A
    split undoes it."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    winner = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="+")
    loser = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="+")
    event_id = models.BigIntegerField(null=True)
    message_id = models.CharField(max_length=255, blank=True)
    identifiers = models.JSONField(default=list)  # [{"type": ..., "value": ...}] linking them
    rule = models.CharField(max_length=64)  # e.g. "shared_identifier:email", "alias"
    detail = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(
        max_length=16, choices=MergeStatus.choices, default=MergeStatus.ACTIVE
    )
    split_at = models.DateTimeField(null=True, blank=True)
    split_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "-id"], name="merge_ws_id"),
        ]

    def __str__(self) -> str:
        return f"merge {self.loser_id} -> {self.winner_id}"

    @property
    def rule_label(self) -> str:
        """ "shared_identifier:email" -> "Shared email"; "alias" -> "Alias call"; "rebuild"
        (the whole-graph job) -> "Full rebuild"."""
        kind, sep, detail = self.rule.partition(":")
        if kind == "shared_identifier" and sep:
            return f"Shared {detail.replace('_', ' ')}"
        if self.rule == "alias":
            return "Alias call"
        if self.rule == "rebuild":
            return "Full rebuild"
        return self.rule.replace("_", " ").capitalize()


class SplitBlock(models.Model):
    """Two profiles a user split apart: automatic resolution must not merge them again."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    profile_a = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="+")
    profile_b = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="+")
    merge = models.ForeignKey(ProfileMerge, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile_a", "profile_b"], name="uniq_split_block")
        ]

    def __str__(self) -> str:
        return f"keep {self.profile_a_id} apart from {self.profile_b_id}"


class ConflictReason(models.TextChoices):
    LIMIT = "limit_exceeded", "Merge would exceed an identifier limit"
    SPLIT = "split_block", "The profiles were split apart by a user"


class IdentityConflict(models.Model):
    """A merge (or an identifier attachment) that the rules refused."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="+")
    other_profile = models.ForeignKey(
        Profile, on_delete=models.CASCADE, null=True, related_name="+"
    )
    event_id = models.BigIntegerField(null=True)
    message_id = models.CharField(max_length=255, blank=True)
    identifier_type = models.CharField(max_length=64)
    identifier_value = models.CharField(max_length=255)
    reason = models.CharField(max_length=32, choices=ConflictReason.choices)
    detail = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "-id"], name="conflict_ws_id"),
        ]

    def __str__(self) -> str:
        return f"{self.reason}: {self.identifier_type}:{self.identifier_value}"


# --- computed traits -------------------------------------------------------------------------


class Aggregation(models.TextChoices):
    COUNT = "count", "Count of events"
    SUM = "sum", "Sum of a property"
    AVG = "avg", "Average of a property"
    MIN = "min", "Minimum of a property"
    MAX = "max", "Maximum of a property"
    FIRST = "first", "First value of a property"
    LAST = "last", "Last value of a property"
    MOST_FREQUENT = "most_frequent", "Most frequent value of a property"
    DISTINCT_COUNT = "distinct_count", "Number of distinct values of a property"


class ComputedTrait(models.Model):
    """A user-defined computed trait (as in Segment): an aggregation of an event or an event
    property, optionally filtered, within a time window. Values live in Profile.computed."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    key = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    aggregation = models.CharField(max_length=20, choices=Aggregation.choices)
    event = models.CharField(max_length=255, blank=True)  # "" = any track event
    property = models.CharField(max_length=255, blank=True)  # dotted path; "" for count
    where = models.JSONField(default=list, blank=True)  # [{"property", "op", "value"}]
    window_days = models.PositiveIntegerField(null=True, blank=True)  # None = all time
    created_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "key"], name="uniq_computed_trait_key")
        ]

    def __str__(self) -> str:
        return self.key


# --- the profile explorer ---------------------------------------------------------------------


class SavedView(models.Model):
    """A user's named explorer view in one workspace: the explorer's parameters (search, sort
    and filters, as the page's URL carries them), checked when it was saved. Only its owner
    sees it."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    owner = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    # [[name, value], ...], e.g. [["q", "kevin"], ["order", "-revenue"]]: kept as JSON, not
    # as a URL-encoded string, so that a privacy deletion finds a searched email in it
    params = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "owner", "name"], name="uniq_saved_view_name"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def query_string(self) -> str:
        return urlencode([(str(k), str(v)) for k, v in self.params])
