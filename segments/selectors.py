"""Reading segments: size over time and trends from the membership history, member export."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from cdp.errors import ValidationFailed
from cdp.models import Role, Workspace
from cdp.params import is_id
from consent.selectors import purpose_list
from profiles import selectors as profile_selectors
from profiles.computed import selectors as computed_selectors
from segments.ml import selectors as ml_selectors
from segments.ml.models import ModelKind
from segments.models import (
    Membership,
    MLModel,
    Segment,
    SegmentStatus,
    SegmentVersion,
    normalise_tag,
)


def segment_get(*, workspace: Workspace, segment_id: Any) -> Segment | None:
    if not is_id(segment_id):
        return None
    return (
        Segment.objects.filter(workspace=workspace, pk=int(segment_id))
        .select_related("published_version", "draft_version", "owner")
        .first()
    )


def segment_count(*, workspace: Workspace) -> int:
    return Segment.objects.filter(workspace=workspace).count()


def segment_members(*, segment: Segment) -> QuerySet[Membership]:
    """Current members, newest entries first."""
    rows = Membership.objects.filter(segment=segment, exited_at__isnull=True)
    return rows.order_by("-entered_at", "-profile_id")


def segment_history(*, segment: Segment, profile_id: int | None = None) -> QuerySet[Membership]:
    """Every stay in the segment (entered, exited or not), latest entries first."""
    rows = Membership.objects.filter(segment=segment)
    if profile_id is not None:
        rows = rows.filter(profile_id=profile_id)
    return rows.order_by("-entered_at", "-id")


# ---- the list: search, filters, order ---------------------------------------------------------

SEGMENT_STATUSES = {
    "published": "published",
    "changed": "with unpublished changes",
    "draft": "never published",
}
# key: (label, ORDER BY)
SEGMENT_ORDERS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "name": ("Name", ("name", "pk")),
    "-members": ("Most members", ("-member_count", "name", "pk")),
    "members": ("Fewest members", ("member_count", "name", "pk")),
    "-updated": ("Recently changed", ("-updated_at", "-pk")),
    "-evaluated": ("Recently evaluated", (F("evaluated_at").desc(nulls_last=True), "name", "pk")),
}


def segment_list(
    *,
    workspace: Workspace,
    q: str = "",
    status: str = "",
    owner_id: int | None = None,
    tag: str = "",
    order: str = "name",
) -> QuerySet[Segment]:
    """A workspace's segments matching a free-text search (name, key, description), a status
    (published, changed = published with a draft, draft = never published), an owner and a
    tag, in one of SEGMENT_ORDERS. Unknown status or order values are refused by name."""
    if status and status not in SEGMENT_STATUSES:
        raise ValidationFailed.at("status", f"expected one of {', '.join(SEGMENT_STATUSES)}")
    if order not in SEGMENT_ORDERS:
        raise ValidationFailed.at("order", f"expected one of {', '.join(SEGMENT_ORDERS)}")
    rows = Segment.objects.filter(workspace=workspace).select_related(
        "published_version", "draft_version", "owner"
    )
    words = q.split()
    for word in words[:8]:  # every word somewhere: "pro churn" finds "Churn risk (pro plan)"
        rows = rows.filter(
            Q(name__icontains=word) | Q(key__icontains=word) | Q(description__icontains=word)
        )
    if status == "published":
        rows = rows.filter(status=SegmentStatus.PUBLISHED)
    elif status == "changed":
        rows = rows.filter(status=SegmentStatus.PUBLISHED, draft_version__isnull=False)
    elif status == "draft":
        rows = rows.filter(status=SegmentStatus.DRAFT)
    if owner_id is not None:
        rows = rows.filter(owner_id=owner_id)
    if tag:
        rows = rows.filter(tags__contains=[normalise_tag(tag)])
    return rows.order_by(*SEGMENT_ORDERS[order][1])


def segment_tags(*, workspace: Workspace) -> list[tuple[str, int]]:
    """Every tag used in the workspace with how many segments carry it, by name."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tag, count(*) FROM segments_segment, unnest(tags) AS tag"
            " WHERE workspace_id = %s GROUP BY tag ORDER BY tag",
            [workspace.pk],
        )
        return [(str(row[0]), int(row[1])) for row in cursor]


# Size at the end of each UTC day, from the history alone: the members at the start of the
# range, plus the day's entries, minus its exits, accumulated. One pass over the history rows
# (no per-day re-count), so a year of a 1M-member segment stays cheap.
_SIZES = """
WITH days AS (
    SELECT d::date AS day FROM generate_series(%(first)s::date, %(last)s::date, '1 day') AS d
),
entered AS (
    SELECT (entered_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n
    FROM segments_membership
    WHERE segment_id = %(segment)s AND entered_at >= %(since)s
    GROUP BY 1
),
exited AS (
    SELECT (exited_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n
    FROM segments_membership
    WHERE segment_id = %(segment)s AND exited_at >= %(since)s
    GROUP BY 1
),
base AS (
    SELECT count(*) AS n FROM segments_membership
    WHERE segment_id = %(segment)s AND entered_at < %(since)s
      AND (exited_at IS NULL OR exited_at >= %(since)s)
)
SELECT days.day,
       (SELECT n FROM base) + sum(COALESCE(e.n, 0) - COALESCE(x.n, 0)) OVER (ORDER BY days.day),
       COALESCE(e.n, 0), COALESCE(x.n, 0)
FROM days LEFT JOIN entered e USING (day) LEFT JOIN exited x USING (day)
ORDER BY days.day
"""


@dataclass(frozen=True, slots=True)
class DaySize:
    day: date
    size: int
    entered: int
    exited: int


def segment_sizes(*, segment: Segment, days: int, today: date | None = None) -> list[DaySize]:
    """Members at the end of each of the last `days` UTC days (today: so far), with the
    day's entries and exits, oldest first."""
    last = today or timezone.now().astimezone(UTC).date()
    first = last - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    with connection.cursor() as cursor:
        cursor.execute(
            _SIZES, {"segment": segment.pk, "first": first, "last": last, "since": since}
        )
        return [DaySize(row[0], int(row[1]), int(row[2]), int(row[3])) for row in cursor]


@dataclass(frozen=True, slots=True)
class Trend:
    entered: int
    exited: int

    @property
    def change(self) -> int:
        return self.entered - self.exited


def segment_trends(*, segment_ids: list[int], days: int = 7) -> dict[int, Trend]:
    """Entries and exits of each segment over the last `days` days (one query for a page)."""
    if not segment_ids:
        return {}
    since = timezone.now() - timedelta(days=days)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT segment_id,
                   count(*) FILTER (WHERE entered_at >= %(since)s),
                   count(*) FILTER (WHERE exited_at >= %(since)s)
            FROM segments_membership
            WHERE segment_id = ANY(%(ids)s)
              AND (entered_at >= %(since)s OR exited_at >= %(since)s)
            GROUP BY segment_id
            """,
            {"ids": segment_ids, "since": since},
        )
        found = {row[0]: Trend(int(row[1]), int(row[2])) for row in cursor}
    return {pk: found.get(pk, Trend(0, 0)) for pk in segment_ids}


EXPORT_COLUMNS = ["profile_id", "entered_at", "user_id", "email", "phone", "traits"]
PII_COLUMNS = {"email", "phone"}

# one row per current member: when they entered, their identifiers of each kind (several
# joined by a space), their traits as JSON
_EXPORT = """
SELECT m.profile_id, m.entered_at,
       (SELECT string_agg(i.value, ' ' ORDER BY i.id) FROM profiles_identity i
        WHERE i.profile_id = m.profile_id AND i.type = 'user_id'),
       (SELECT string_agg(i.value, ' ' ORDER BY i.id) FROM profiles_identity i
        WHERE i.profile_id = m.profile_id AND i.type = 'email'),
       (SELECT string_agg(i.value, ' ' ORDER BY i.id) FROM profiles_identity i
        WHERE i.profile_id = m.profile_id AND i.type = 'phone'),
       p.traits::text
FROM segments_membership m JOIN profiles_profile p ON p.id = m.profile_id
WHERE m.segment_id = %(segment)s AND m.exited_at IS NULL
ORDER BY m.profile_id
"""


def segment_export_rows(
    *, segment: Segment, pii_traits: Iterable[str] | None = None, chunk: int = 2000
) -> Iterator[list[str]]:
    """The current members as CSV cells, read by one statement (one snapshot: never two
    states of the segment mixed) through a server-side cursor, so a million members stream
    in constant memory. With `pii_traits` (for a reader who may not see personal data) the
    email and phone columns are left out and so are those traits."""
    hide = {t.lower() for t in pii_traits} if pii_traits is not None else None
    yield [c for c in EXPORT_COLUMNS if hide is None or c not in PII_COLUMNS]
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(_EXPORT, {"segment": segment.pk})
        while rows := cursor.fetchmany(chunk):
            for pid, entered, user_id, email, phone, traits in rows:
                if hide is None:
                    yield [
                        str(pid),
                        entered.isoformat(),
                        user_id or "",
                        email or "",
                        phone or "",
                        traits or "{}",
                    ]
                    continue
                kept = {
                    k: v for k, v in orjson.loads(traits or "{}").items() if k.lower() not in hide
                }
                yield [str(pid), entered.isoformat(), user_id or "", orjson.dumps(kept).decode()]


def profile_segments(*, profile_id: int) -> list[dict[str, object]]:
    """The segments a profile is in now, with when it entered and under which version."""
    from segments.models import Membership

    rows = (
        Membership.objects.filter(profile_id=profile_id, exited_at__isnull=True)
        .select_related("segment")
        .order_by("segment__name")
    )
    return [
        {
            "id": m.segment_id,
            "key": m.segment.key,
            "name": m.segment.name,
            "entered_at": m.entered_at,
            "version": m.version,
        }
        for m in rows
    ]


def profile_segment_exits(*, profile_id: int, limit: int = 10) -> list[dict[str, object]]:
    """The profile's latest exits (segment, entered, exited), newest first."""
    from segments.models import Membership

    rows = (
        Membership.objects.filter(profile_id=profile_id, exited_at__isnull=False)
        .select_related("segment")
        .order_by("-exited_at", "-id")[:limit]
    )
    return [
        {
            "id": m.segment_id,
            "name": m.segment.name,
            "entered_at": m.entered_at,
            "exited_at": m.exited_at,
            "version": m.version,
        }
        for m in rows
    ]


def segment_versions(*, segment: Segment) -> list[SegmentVersion]:
    """Every version of the rule, newest first, with who wrote it."""
    return list(segment.versions.select_related("created_by").order_by("-number"))


# ---- the builder's suggestions ----------------------------------------------------------------

_BUILTIN_TYPES = {"datetime": "datetime", "integer": "number", "number": "number"}
# computed traits that hold a property's value as sent (an object for an object property)
_VALUE_AGGREGATIONS = ("first", "last", "most_frequent", "min", "max")


def _typed(name: str, types: profile_selectors.ObservedTypes, **extra: Any) -> dict[str, Any]:
    """A suggestion with what the observed schema knows of its values: the kind the builder
    compares it as, whether it was seen with mixed types, and each type's share."""
    entry = {"name": name, "type": types.kind, **extra}
    if types.mixed:
        entry["mixed"] = types.summary()
        string = next((x for x in types.shares() if x["type"] == "string"), None)
        if string is not None:
            entry["text_numbers"] = string["numeric"]
            entry["text_values"] = string["count"]
    return entry


def builder_suggestions(*, workspace: Workspace, exclude_segment: int | None) -> dict[str, Any]:
    """What the builder suggests names from: observed traits (nested ones by their dotted
    path), computed traits (with the fields of those that hold an object), events and their
    properties, published segments (but the one being edited), consent purposes."""
    trait_rows: dict[str, list[Any]] = {}
    property_rows: dict[tuple[str, str], list[Any]] = {}
    for prop in profile_selectors.observed_properties(workspace=workspace):
        if prop.kind == "trait":
            trait_rows.setdefault(prop.path, []).append(prop)
        elif prop.kind == "property" and prop.type == "track" and prop.event:
            property_rows.setdefault((prop.event, prop.path), []).append(prop)
    traits: dict[str, dict[str, Any]] = {
        path: _typed(path, profile_selectors.observed_types(rows), label="")
        for path, rows in trait_rows.items()
    }
    properties: dict[str, list[dict[str, Any]]] = {}
    for (event, path), rows in property_rows.items():
        properties.setdefault(event, []).append(
            _typed(path, profile_selectors.observed_types(rows))
        )
    for trait in computed_selectors.builtin_trait_list():
        traits[trait["key"]] = {
            "name": trait["key"],
            "type": _BUILTIN_TYPES.get(trait["type"], "string"),
            "label": f"{trait['label']} (computed)",
            "values": trait.get("values") or [],
        }
    for model in MLModel.objects.with_champion().filter(workspace=workspace):
        if model.kind == ModelKind.CLUSTERS:
            traits[model.key] = {
                "name": model.key,
                "type": "string",
                "label": f"{model.name} (cluster label)",
                "values": list(model.cluster_labels()),
            }
            continue
        if model.kind == ModelKind.RECOMMENDATIONS:
            traits[model.key] = {
                "name": model.key,
                "type": "any",
                "label": f"{model.name} (recommended item ids)",
            }
            continue
        traits[model.key] = {
            "name": model.key,
            "type": "number",
            "label": f"{model.name} (model score, 0–1)",
        }
        traits[model.decile_key] = {
            "name": model.decile_key,
            "type": "number",
            "label": f"{model.name} (model decile, 1–10: 10 = highest)",
            "values": [str(d) for d in range(1, 11)],
        }
    for custom in computed_selectors.computed_trait_list(workspace=workspace):
        traits.setdefault(
            custom.key, {"name": custom.key, "type": "any", "label": f"{custom.name} (custom)"}
        )
        if custom.aggregation in _VALUE_AGGREGATIONS and custom.property:
            # a trait holding an object property's value: its fields as the events sent them
            prefix = custom.property + "."
            for (event, path), rows in property_rows.items():
                if path.startswith(prefix) and (not custom.event or event == custom.event):
                    name = f"{custom.key}.{path[len(prefix) :]}"
                    types = profile_selectors.observed_types(rows)
                    if name in traits:
                        continue
                    traits[name] = _typed(name, types, label=f"{custom.name} (custom) field")
    events = sorted(
        {e.event for e in profile_selectors.observed_events(workspace=workspace) if e.event}
    )
    published = Segment.objects.filter(workspace=workspace, status=SegmentStatus.PUBLISHED)
    if exclude_segment is not None:
        published = published.exclude(pk=exclude_segment)
    return {
        "traits": sorted(traits.values(), key=lambda t: t["name"]),
        "events": events,
        "properties": {
            event: sorted(found, key=lambda x: x["name"]) for event, found in properties.items()
        },
        "segments": [{"key": s.key, "name": s.name} for s in published.order_by("name")],
        "purposes": [{"key": p.key, "name": p.name} for p in purpose_list(workspace=workspace)],
        "clusters": ml_selectors.cluster_models(workspace=workspace),
    }


def segment_grant_candidates(*, segment: Segment, granted: set[int]) -> list[dict[str, Any]]:
    """Marketers of the workspace without a grant on the segment (owners and admins manage
    every segment, so granting matters for marketers only)."""
    members = (
        segment.workspace.memberships.filter(role=Role.MARKETER)
        .select_related("user")
        .order_by("user__username")
    )
    return [
        {"id": m.user_id, "username": m.user.username} for m in members if m.user_id not in granted
    ]
