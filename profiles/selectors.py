from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import OuterRef, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from cdp.models import Workspace
from cdp.params import BIGINT_MAX, choice_param, int_param, is_id
from profiles.collector.normalize import EVENT_TYPES
from profiles.models import (
    DeadLetterDay,
    Event,
    EventCounter,
    EventMessage,
    FailedEvent,
    FailedEventStatus,
    FailureReason,
    ObservedEvent,
    ObservedProperty,
    Source,
)

EVENT_FILTERS = {
    "user_id": "user_id",
    "anonymous_id": "anonymous_id",
    "type": "type",
    "event": "event",
    "name": "name",
}


def _int_param(filters: dict[str, str], name: str) -> int | None:
    value = filters.get(name)
    if value is None:
        return None
    return int_param(value, name, maximum=BIGINT_MAX)


def source_list(*, workspace: Workspace) -> QuerySet[Source]:
    return Source.objects.filter(workspace=workspace).prefetch_related("write_keys").order_by("id")


def source_get(*, workspace: Workspace, source_id: Any) -> Source | None:
    if not is_id(source_id):
        return None
    return source_list(workspace=workspace).filter(pk=source_id).first()


def event_list(*, workspace: Workspace, filters: dict[str, str]) -> QuerySet[Event]:
    """Stored events, newest first (the debugger's data). Ordered by id, the key of the
    indexes (workspace, -id) and (workspace, source, -id) of every daily partition, so a page
    is one index range scan however deep it is: `before_id` (older than) and `after_id`
    (newer than) are the keyset cursors. `user` is a userId or an anonymousId; `name` a
    page's or screen's name."""
    qs = Event.objects.filter(workspace=workspace)
    choice_param(filters.get("type"), "type", EVENT_TYPES)
    for param, column in EVENT_FILTERS.items():
        value = filters.get(param)
        if value:
            qs = qs.filter(**{column: value})
    user = filters.get("user")
    if user:
        qs = qs.filter(Q(user_id=user) | Q(anonymous_id=user))
    message_id = filters.get("message_id")
    if message_id:
        # the dedup table knows the event and its day: one partition, one index probe
        message = EventMessage.objects.filter(
            workspace_id=workspace.pk, message_id=message_id
        ).first()
        if message is None:
            return qs.none()
        qs = qs.filter(id=message.event_id, received_at=message.received_at)
    source = _int_param(filters, "source")
    if source is not None:
        qs = qs.filter(source_id=source)
    after = _int_param(filters, "after_id")
    if after is not None:
        qs = qs.filter(id__gt=after)
    before = _int_param(filters, "before_id")
    if before is not None:
        qs = qs.filter(id__lt=before)
    return qs.order_by("-id")


def source_last_events(*, workspace: Workspace) -> dict[int, datetime]:
    """When each source of the workspace last received an event (sources without any are
    left out). Per source, the newest row of the index (workspace, source, -id) of each
    partition: a few index probes, never a scan of the events."""
    newest = (
        Event.objects.filter(workspace=workspace, source_id=OuterRef("pk"))
        .order_by("-id")
        .values("received_at")[:1]
    )
    rows = (
        Source.objects.filter(workspace=workspace)
        .annotate(last_event=Subquery(newest))
        .values_list("pk", "last_event")
    )
    return {pk: last for pk, last in rows if last is not None}


def debugger_event_names(*, workspace: Workspace) -> dict[str, list[str]]:
    """The names the debugger's event filter offers, from the observed schema: track event
    names ("event") and page/screen names ("name"), each sorted."""
    names: dict[str, set[str]] = {"event": set(), "name": set()}
    rows = ObservedEvent.objects.filter(workspace=workspace, type__in=("track", "page", "screen"))
    for kind, name in rows.exclude(event="").values_list("type", "event"):
        names["event" if kind == "track" else "name"].add(name)
    return {param: sorted(values, key=str.casefold) for param, values in names.items()}


def failed_event_list(*, workspace: Workspace, filters: dict[str, str]) -> QuerySet[FailedEvent]:
    qs = FailedEvent.objects.filter(workspace=workspace)
    source = _int_param(filters, "source")
    if source is not None:
        qs = qs.filter(source_id=source)
    reason = choice_param(filters.get("reason"), "reason", FailureReason.values)
    if reason:
        qs = qs.filter(reason=reason)
    status = choice_param(filters.get("status"), "status", FailedEventStatus.values)
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("-id")


def observed_events(*, workspace: Workspace) -> QuerySet[ObservedEvent]:
    return ObservedEvent.objects.filter(workspace=workspace).order_by("type", "event")


# JSON types -> the kind of value the segment builder offers operators for
_KINDS = {"number": "number", "integer": "number", "boolean": "boolean"}
TYPE_LABELS = {"string": "text", "number": "number", "boolean": "true/false", "null": "null",
               "array": "list", "object": "object"}  # fmt: skip


@dataclass
class ObservedTypes:
    """What the observed schema knows of the values sent at one path (one row, or a trait's
    rows across the events that carry it): the JSON types seen, how many values of each,
    and how many of the strings read as numbers (profiles.coercion)."""

    types: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    numeric_strings: int = 0
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, row: ObservedProperty) -> ObservedTypes:
        self.types.update(row.value_types)
        for kind, count in (row.type_counts or {}).items():
            self.counts[kind] = self.counts.get(kind, 0) + int(count)
        self.numeric_strings += row.numeric_strings
        self.examples.update(row.type_examples or {})
        return self

    @property
    def mixed(self) -> bool:
        """Seen with more than one type of value (null aside)."""
        return len(self.types - {"null"}) > 1

    @property
    def strings_numeric(self) -> bool:
        """Every string counted so far reads as a number ("60", " 12.5 ")."""
        strings = self.counts.get("string", 0)
        return strings > 0 and self.numeric_strings >= strings

    @property
    def kind(self) -> str:
        """The one kind of value the builder compares this path as: number, boolean, string,
        or any (mixed). Strings that all read as numbers count as numbers."""
        kinds = set()
        for t in self.types - {"null"}:
            if t == "string" and self.strings_numeric:
                kinds.add("number")
            else:
                kinds.add(_KINDS.get(t, "string"))
        return kinds.pop() if len(kinds) == 1 else "any"

    def shares(self) -> list[dict[str, Any]]:
        """Each type's share of the values counted, largest first: {type, label, count,
        percent, numeric (strings only: how many read as numbers), example (the newest event
        that sent one: message_id, source_id)}."""
        total = sum(self.counts.values())
        out = []
        for kind, count in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])):
            share = {
                "type": kind,
                "label": TYPE_LABELS.get(kind, kind),
                "count": count,
                "percent": round(100 * count / total, 1) if total else 0.0,
                "example": self.examples.get(kind),
            }
            if kind == "string":
                share["numeric"] = min(self.numeric_strings, count)
            out.append(share)
        return out

    def summary(self) -> str:
        """ "number 71 %, text 29 %" (types without counts are listed by name)."""
        shares = self.shares()
        if not shares:
            return ", ".join(TYPE_LABELS.get(t, t) for t in sorted(self.types))
        return ", ".join(f"{s['label']} {s['percent']:g} %" for s in shares)


def observed_types(rows: Iterable[ObservedProperty]) -> ObservedTypes:
    types = ObservedTypes()
    for row in rows:
        types.add(row)
    return types


def observed_properties(
    *, workspace: Workspace, event_type: str | None = None, event: str | None = None
) -> QuerySet[ObservedProperty]:
    qs = ObservedProperty.objects.filter(workspace=workspace)
    if event_type:
        qs = qs.filter(type=event_type)
    if event is not None:
        qs = qs.filter(event=event)
    return qs.order_by("type", "event", "kind", "path")


def source_volume(*, workspace: Workspace, source_id: int | None = None) -> list[dict[str, Any]]:
    """Processed events per type and event name (all time) for a source or the workspace."""
    qs = EventCounter.objects.filter(workspace=workspace)
    if source_id is not None:
        qs = qs.filter(source_id=source_id)
    rows = qs.values("type", "event").annotate(total=Sum("count")).order_by("-total", "type")
    return [dict(row) for row in rows[:100]]


def source_totals(*, workspace: Workspace) -> list[dict[str, Any]]:
    rows = EventCounter.objects.filter(workspace=workspace).values("source_id")
    return [dict(row) for row in rows.annotate(total=Sum("count"))]


def today_utc(now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(UTC).date()


def dead_letter_quota(source: Source) -> int:
    """The source's daily dead-letter quota, the platform default filled in."""
    if source.dead_letter_quota is None:
        return int(settings.CDP_DEAD_LETTER_QUOTA)
    return source.dead_letter_quota


def dead_letter_days(
    *, source: Source, days: int = 14, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The source's dead letters per UTC day, oldest first, the last `days` days (today
    included), days without any as zeros: {day, kept, not_kept, quota_reached_at}."""
    today = today_utc(now)
    first = today - timedelta(days=days - 1)
    rows = {
        row.day: row
        for row in DeadLetterDay.objects.filter(source=source, day__gte=first, day__lte=today)
    }
    out = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = rows.get(day)
        out.append(
            {
                "day": day,
                "kept": row.kept if row else 0,
                "not_kept": row.not_kept if row else 0,
                "quota_reached_at": row.quota_reached_at if row else None,
            }
        )
    return out


def dead_letter_alerts(*, workspace: Workspace, now: datetime | None = None) -> dict[int, Any]:
    """Today's DeadLetterDay rows of the workspace's sources that reached their quota, by
    source id."""
    rows = DeadLetterDay.objects.filter(
        workspace=workspace, day=today_utc(now), quota_reached_at__isnull=False
    )
    return {row.source_id: row for row in rows}
