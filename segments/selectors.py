"""Reading segments: size over time and trends from the membership history, member export."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Exists, F, Min, OuterRef, Q, QuerySet
from django.utils import timezone

from cdp.errors import ValidationFailed
from cdp.models import Role, Workspace
from cdp.params import is_id
from cdp.paths import PathError, join_path, split_path
from consent.selectors import purpose_list
from profiles import selectors as profile_selectors
from profiles.computed import selectors as computed_selectors
from profiles.identity.selectors import display_name, profiles_in_order
from profiles.models import Identity, Profile
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
from segments.rules.compile import PROFILE_COLUMNS


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


def segment_members(*, segment: Segment, q: str = "") -> QuerySet[Membership]:
    """Current members, newest entries first; `q` keeps those whose name (the name, full_name,
    first_name or last_name trait), email (identifier or trait) or user id contains each of
    its words, ignoring case."""
    rows = Membership.objects.filter(segment=segment, exited_at__isnull=True)
    for word in q.split()[:5]:
        rows = rows.filter(_member_matches(word))
    return rows.order_by("-entered_at", "-profile_id")


_MEMBER_SEARCH_TRAITS = ("name", "full_name", "first_name", "last_name", "email")


def _member_matches(word: str) -> Q:
    """A member whose profile's name traits, email or user id contain the word (checked per
    member: the search stays within the segment, however large the workspace)."""
    named = Q()
    for key in _MEMBER_SEARCH_TRAITS:
        named |= Q(**{f"traits__{key}__icontains": word})
    person = Profile.objects.filter(pk=OuterRef("profile_id")).filter(named)
    identity = Identity.objects.filter(
        profile_id=OuterRef("profile_id"), type__in=["user_id", "email"], value__icontains=word
    )
    return Q(Exists(person)) | Q(Exists(identity))


def segment_history(*, segment: Segment, profile_id: int | None = None) -> QuerySet[Membership]:
    """Every stay in the segment (entered, exited or not), latest entries first."""
    rows = Membership.objects.filter(segment=segment)
    if profile_id is not None:
        rows = rows.filter(profile_id=profile_id)
    return rows.order_by("-entered_at", "-id")


@dataclass(frozen=True, slots=True)
class MemberPerson:
    """How the members table names a profile: its display name, email, user id."""

    id: int
    name: str
    email: str
    user_id: str

    @property
    def show_id(self) -> bool:
        return not self.name.endswith(f"#{self.id}")  # "Anonymous visitor #12" has it already

    @property
    def secondary(self) -> str:
        """The email, else the user id, under the name (never the name twice)."""
        for value in (self.email, self.user_id):
            if value and value != self.name:
                return value
        return ""


def member_people(*, workspace: Workspace, ids: list[int]) -> dict[int, MemberPerson]:
    """id -> its name, email and user id, for a page of members (two queries)."""
    found: dict[int, MemberPerson] = {}
    for profile in profiles_in_order(workspace=workspace, ids=ids):
        identities = sorted(profile.identities.all(), key=lambda i: i.pk)
        email = (profile.traits or {}).get("email")
        if not isinstance(email, str) or not email.strip():
            email = next((i.value for i in identities if i.type == "email"), "")
        user_id = next((i.value for i in identities if i.type == "user_id"), "")
        name = display_name(profile, identities)
        found[profile.pk] = MemberPerson(profile.pk, name, email.strip(), user_id)
    return found


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
    -- integers, not a series of dates: the planner knows how many rows an integer series
    -- has, and a 12M-row guess over a date series made it JIT-compile a 0.2 s query for 1 s
    SELECT %(first)s::date + i AS day
    FROM generate_series(0, %(last)s::date - %(first)s::date) AS i
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


def segment_first_published(*, segment: Segment) -> datetime | None:
    """When the segment was first published (its audience's history starts then), or None
    for a segment never published."""
    first: datetime | None = SegmentVersion.objects.filter(
        segment=segment, published_at__isnull=False
    ).aggregate(first=Min("published_at"))["first"]
    if first is None and segment.status == SegmentStatus.PUBLISHED:
        return segment.created_at  # published before versions recorded when
    return first


def segment_sizes(*, segment: Segment, days: int, today: date | None = None) -> list[DaySize]:
    """Members at the end of each of the last `days` UTC days (today: so far), with the
    day's entries and exits, oldest first — from the UTC day of the first publication on:
    before it the segment had no audience to count (not an audience of 0). Empty for a
    segment never published."""
    published = segment_first_published(segment=segment)
    if published is None:
        return []
    last = today or timezone.now().astimezone(UTC).date()
    first = max(last - timedelta(days=days - 1), min(published.astimezone(UTC).date(), last))
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


# ---- export with a column per chosen trait -----------------------------------------------------

EXPORT_BASE_COLUMNS = ["profile_id", "user_id", "entered_at"]
DEFAULT_EXPORT_TRAITS = ("email", "first_name", "last_name", "phone")
MAX_EXPORT_TRAITS = 200
_INDEX = re.compile(r"-?[0-9]+")


def known_traits(*, workspace: Workspace) -> list[str]:
    """The dotted paths of every trait value the workspace has been sent (the observed schema
    keeps leaves: `address.city`, not `address`), sorted."""
    rows = profile_selectors.observed_properties(workspace=workspace).filter(kind="trait")
    return sorted(set(rows.values_list("path", flat=True)))


def default_export_traits(known: Iterable[str]) -> list[str]:
    """The traits an export offers ticked: email, first and last name, phone, those sent."""
    present = set(known)
    return [t for t in DEFAULT_EXPORT_TRAITS if t in present]


def is_pii_trait(path: str, pii_traits: Iterable[str]) -> bool:
    """Whether a trait path is personal data by the workspace's list (privacy/settings/
    `pii_traits`): its top-level key or the whole path is listed (any case)."""
    hide = {t.lower() for t in pii_traits}
    try:
        top = split_path(path)[0]
    except PathError:
        top = path
    return top.lower() in hide or path.lower() in hide


@dataclass(frozen=True, slots=True)
class ExportColumns:
    traits: list[str]  # the dotted path of each trait column, in order
    hidden: list[str]  # chosen traits left out (personal data the reader may not see)


def export_trait_columns(
    *, workspace: Workspace, traits: Iterable[str], pii_traits: Iterable[str] | None = None
) -> ExportColumns:
    """The trait columns of a member export for the chosen traits (dotted paths, as the
    builder names them): each once, in the order chosen; a trait holding an object becomes a
    column per field observed under it (`address` -> `address.city`, `address.zip`). With
    `pii_traits` (a reader who may not see personal data) those traits are left out."""
    chosen = [t.strip() for t in traits if t.strip()]
    for i, name in enumerate(chosen):
        try:
            split_path(name)
        except PathError as exc:
            raise ValidationFailed.at(f"traits[{i}]", str(exc)) from exc
    known = known_traits(workspace=workspace)
    columns: list[str] = []
    hidden: list[str] = []
    for name in chosen:
        below = [k for k in known if k.startswith(name + ".")]
        for column in below if below and name not in known else [name]:
            if pii_traits is not None and (
                is_pii_trait(name, pii_traits) or is_pii_trait(column, pii_traits)
            ):
                if name not in hidden:
                    hidden.append(name)
            elif column not in columns:
                columns.append(column)
    if len(columns) > MAX_EXPORT_TRAITS:
        raise ValidationFailed.at("traits", f"at most {MAX_EXPORT_TRAITS} trait columns")
    return ExportColumns(columns, hidden)


def _at_path(value: Any, keys: tuple[str, ...]) -> Any:
    """The value at a path of keys in decoded JSON (an integer step also indexes a list, as
    Postgres `#>` does), or None."""
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and _INDEX.fullmatch(key):
            index = int(key)
            value = value[index] if -len(value) <= index < len(value) else None
        else:
            return None
        if value is None:
            return None
    return value


def flat_cell(value: Any) -> str:
    """A JSON value as one CSV cell: text as it is, numbers and true/false as JSON writes
    them, a list of plain values joined by ", ", anything else as JSON; null is empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(v, str | int | float | bool) or v is None for v in value
    ):
        return ", ".join(flat_cell(v) for v in value)
    return orjson.dumps(value).decode()


_EXPORT_TRAITS = """
SELECT m.profile_id, m.entered_at,
       (SELECT string_agg(i.value, ' ' ORDER BY i.id) FROM profiles_identity i
        WHERE i.profile_id = m.profile_id AND i.type = 'user_id'),
       p.traits::text
FROM segments_membership m JOIN profiles_profile p ON p.id = m.profile_id
WHERE m.segment_id = %(segment)s AND m.exited_at IS NULL
ORDER BY m.profile_id
"""


def segment_export_trait_rows(
    *, segment: Segment, traits: list[str], chunk: int = 2000
) -> Iterator[list[str]]:
    """The current members as CSV cells: profile id, user id(s), when they entered, then one
    column per trait path of `traits` (see export_trait_columns), flattened. One statement
    through a server-side cursor, as segment_export_rows."""
    yield [*EXPORT_BASE_COLUMNS, *traits]
    paths = [split_path(t) for t in traits]
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(_EXPORT_TRAITS, {"segment": segment.pk})
        while rows := cursor.fetchmany(chunk):
            for pid, entered, user_id, raw in rows:
                values = orjson.loads(raw or "{}")
                yield [
                    str(pid),
                    user_id or "",
                    entered.isoformat(),
                    *(flat_cell(_at_path(values, keys)) for keys in paths),
                ]


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


def trait_title(path: str) -> str:
    """A readable title for a trait's dotted path: `first_name` -> "First name",
    `address.postalCode` -> "Address › postal code"."""
    try:
        keys = split_path(path)
    except PathError:
        keys = (path,)
    words = [
        " ".join(_CAMEL.sub(" ", key).replace("_", " ").replace("-", " ").split()).lower()
        for key in keys
    ]
    text = " › ".join(w or k for w, k in zip(words, keys, strict=True))
    return text[:1].upper() + text[1:]


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


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
    properties, published segments (but the one being edited), consent purposes.

    Each trait carries `kind` (trait: as sent; computed: built-in, custom or a model's
    output), a readable `title`, a `note` on what it holds when there is one, and the older
    `label` (title and note in one). `events` names the track events (what an event condition
    matches); `event_kinds` lists every observed event with its type (track, page, screen)
    and how often it was seen."""
    trait_rows: dict[str, list[Any]] = {}
    property_rows: dict[tuple[str, str], list[Any]] = {}
    for prop in profile_selectors.observed_properties(workspace=workspace):
        if prop.kind == "trait":
            trait_rows.setdefault(prop.path, []).append(prop)
        elif prop.kind == "property" and prop.type == "track" and prop.event:
            property_rows.setdefault((prop.event, prop.path), []).append(prop)
    traits: dict[str, dict[str, Any]] = {
        path: _typed(
            path, profile_selectors.observed_types(rows), label="", kind="trait",
            title=trait_title(path),
        )
        for path, rows in trait_rows.items()
    }  # fmt: skip
    properties: dict[str, list[dict[str, Any]]] = {}
    for (event, path), rows in property_rows.items():
        properties.setdefault(event, []).append(
            _typed(path, profile_selectors.observed_types(rows), title=trait_title(path))
        )

    def computed(name: str, type_: str, title: str, note: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "type": type_,
            "kind": "computed",
            "title": title,
            "note": note,
            "label": f"{title} ({note})",
            **extra,
        }

    for trait in computed_selectors.builtin_trait_list():
        traits[trait["key"]] = computed(
            trait["key"],
            _BUILTIN_TYPES.get(trait["type"], "string"),
            trait["label"],
            "computed",
            values=trait.get("values") or [],
        )
    for model in MLModel.objects.with_champion().filter(workspace=workspace):
        if model.kind == ModelKind.CLUSTERS:
            names = model.cluster_labels()
            traits[model.key] = computed(
                model.key, "string", model.name, "cluster label",
                values=list(names), value_titles=dict(names),
            )  # fmt: skip
            continue
        if model.kind == ModelKind.RECOMMENDATIONS:
            traits[model.key] = computed(model.key, "any", model.name, "recommended item ids")
            continue
        traits[model.key] = computed(model.key, "number", model.name, "model score, 0–1")
        traits[model.decile_key] = computed(
            model.decile_key,
            "number",
            model.name,
            "model decile, 1–10: 10 = highest",
            values=[str(d) for d in range(1, 11)],
        )
    for custom in computed_selectors.computed_trait_list(workspace=workspace):
        traits.setdefault(custom.key, computed(custom.key, "any", custom.name, "custom"))
        if custom.aggregation in _VALUE_AGGREGATIONS and custom.property:
            # a trait holding an object property's value: its fields as the events sent them
            prefix = custom.property + "."
            for (event, path), rows in property_rows.items():
                if path.startswith(prefix) and (not custom.event or event == custom.event):
                    name = f"{custom.key}.{path[len(prefix) :]}"
                    types = profile_selectors.observed_types(rows)
                    if name in traits:
                        continue
                    field = trait_title(path[len(prefix) :])
                    traits[name] = _typed(
                        name, types, label=f"{custom.name} (custom) field", kind="computed",
                        title=f"{custom.name} › {field[:1].lower()}{field[1:]}",
                        note="custom, field",
                    )  # fmt: skip
    observed = [
        {"name": e.event, "type": e.type, "count": e.count}
        for e in profile_selectors.observed_events(workspace=workspace)
        if e.event and e.type in ("track", "page", "screen")
    ]
    published = Segment.objects.filter(workspace=workspace, status=SegmentStatus.PUBLISHED)
    if exclude_segment is not None:
        published = published.exclude(pk=exclude_segment)
    return {
        "traits": sorted(traits.values(), key=lambda t: t["name"]),
        "events": sorted({e["name"] for e in observed if e["type"] == "track"}),
        "event_kinds": sorted(observed, key=lambda e: (e["type"] != "track", e["name"])),
        "properties": {
            event: sorted(found, key=lambda x: x["name"]) for event, found in properties.items()
        },
        "segments": [{"key": s.key, "name": s.name} for s in published.order_by("name")],
        "purposes": [{"key": p.key, "name": p.name} for p in purpose_list(workspace=workspace)],
        "clusters": ml_selectors.cluster_models(workspace=workspace),
    }


# ---- value suggestions ---------------------------------------------------------------------

VALUE_SCAN_ROWS = 20_000  # the newest profiles (or events) looked at
LOW_CARDINALITY = 50  # at most this many distinct values in the sample: suggested
VALUE_CACHE_SECONDS = 60


@dataclass(frozen=True, slots=True)
class ValueSample:
    values: list[tuple[str, int]]  # (value as text, rows holding it), most frequent first
    distinct: int  # distinct values in the sample
    sampled: int  # rows of the sample that hold a value

    @property
    def low_cardinality(self) -> bool:
        return 0 < self.distinct <= LOW_CARDINALITY


# the sampled values of one expression: the newest VALUE_SCAN_ROWS rows, those holding a
# plain value (text, number, true/false), grouped; at most LOW_CARDINALITY + 1 of them
_VALUES = """
WITH scanned AS ({scan}),
sample AS (
    SELECT CASE WHEN jsonb_typeof(j) IN ('string', 'number', 'boolean') THEN j #>> '{{}}' END AS v
    FROM scanned WHERE j IS NOT NULL AND jsonb_typeof(j) <> 'null'
),
counted AS (SELECT v, count(*) AS n FROM sample WHERE v IS NOT NULL GROUP BY v)
SELECT v, n, (SELECT count(*) FROM counted), (SELECT count(*) FROM sample)
FROM counted ORDER BY n DESC, v LIMIT %(top)s
"""
_TRAIT_SCAN = """
SELECT {store} #> %(keys)s::text[] AS j FROM profiles_profile p
WHERE p.workspace_id = %(workspace)s AND p.merged_into_id IS NULL
ORDER BY p.id DESC LIMIT %(rows)s
"""
_COLUMN_SCAN = """
SELECT to_jsonb(p.{column}) AS j FROM profiles_profile p
WHERE p.workspace_id = %(workspace)s AND p.merged_into_id IS NULL
ORDER BY p.id DESC LIMIT %(rows)s
"""
_PROPERTY_SCAN = """
SELECT pe.properties #> %(keys)s::text[] AS j FROM profiles_profileevent pe
WHERE pe.workspace_id = %(workspace)s AND pe.type = 'track' AND pe.event = %(event)s
ORDER BY pe.timestamp DESC LIMIT %(rows)s
"""


def _sample_values(scan: str, params: dict[str, Any], key: str) -> ValueSample:
    def read() -> tuple[list[tuple[str, int]], int, int]:
        with connection.cursor() as cursor:
            limits = {"rows": VALUE_SCAN_ROWS, "top": LOW_CARDINALITY + 1}
            cursor.execute(_VALUES.format(scan=scan), {**params, **limits})
            rows = cursor.fetchall()
        if not rows:
            return [], 0, 0
        return [(str(v), int(n)) for v, n, _, _ in rows], int(rows[0][2]), int(rows[0][3])

    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    found = cache.get_or_set(f"segments:values:{digest}", read, VALUE_CACHE_SECONDS)
    values, distinct, sampled = found if found is not None else read()
    return ValueSample(values if 0 < distinct <= LOW_CARDINALITY else [], distinct, sampled)


def trait_values(*, workspace: Workspace, trait: str) -> ValueSample:
    """The values a trait (or computed trait, or a field of one) holds among the workspace's
    newest profiles, most frequent first — only when there are few of them (≤
    LOW_CARDINALITY distinct in the sample: a plan, a country, a tier; never ids or emails).
    Read at most once a minute per trait."""
    from segments.services import rule_parse

    try:
        node = rule_parse(workspace=workspace, rule={"trait": trait, "op": "exists"})
    except ValidationFailed as exc:
        raise ValidationFailed.at("trait", exc.first("rule") or str(exc)) from exc
    ref = getattr(node, "ref", None)
    if ref is None:
        raise ValidationFailed.at("trait", "expected a trait name")
    key = f"{workspace.pk}|trait|{ref.store}|{join_path(ref.keys)}"
    if ref.store == "column":
        if ref.kind != "number" or ref.name not in PROFILE_COLUMNS:
            return ValueSample([], 0, 0)  # moments: a date picker, not a list
        scan = _COLUMN_SCAN.format(column=ref.name)
        return _sample_values(scan, {"workspace": workspace.pk}, key)
    store = "p.traits" if ref.store == "traits" else "p.computed"
    params = {"workspace": workspace.pk, "keys": list(ref.keys)}
    return _sample_values(_TRAIT_SCAN.format(store=store), params, key)


def property_values(*, workspace: Workspace, event: str, prop: str) -> ValueSample:
    """The values an event's property holds in its newest occurrences, as trait_values."""
    try:
        keys = split_path(prop)
    except PathError as exc:
        raise ValidationFailed.at("property", str(exc)) from exc
    key = f"{workspace.pk}|property|{event}|{join_path(keys)}"
    params = {"workspace": workspace.pk, "keys": list(keys), "event": event}
    return _sample_values(_PROPERTY_SCAN, params, key)


def live_profile_count(*, workspace: Workspace) -> int:
    """How many live (not merged-away) profiles the workspace has: what a count is out of."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM profiles_profile"
            " WHERE workspace_id = %s AND merged_into_id IS NULL",
            [workspace.pk],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


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
