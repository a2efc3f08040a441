"""Segments: validating rules in a workspace, previewing them, versions, publishing with a full
evaluation that updates membership history atomically."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify
from guardian.shortcuts import assign_perm, get_users_with_perms, remove_perm

from cdp import metrics
from cdp.errors import NON_FIELD, Conflict, NotFound, ValidationFailed
from cdp.models import Workspace, audit
from consent.models import Purpose
from profiles.computed import builtin
from profiles.identity.resolve import lock_workspaces
from profiles.models import ComputedTrait
from segments.ml import selectors as ml_selectors
from segments.ml.models import ModelKind
from segments.models import (
    Expiry,
    Membership,
    MLModel,
    Segment,
    SegmentStatus,
    SegmentVersion,
    normalise_tag,
)
from segments.rules import compile as compiler
from segments.rules import nodes as n
from segments.rules.validate import RuleContext, parse_rule

# built-in computed traits kept as Profile columns, by the key a rule uses
_COLUMN_KINDS = {"datetime": "datetime", "integer": "number", "number": "number"}


def rule_context(workspace: Workspace, *, exclude_segment: int | None = None) -> RuleContext:
    columns: dict[str, tuple[str, str]] = {}
    computed_keys = set(
        ComputedTrait.objects.filter(workspace=workspace).values_list("key", flat=True)
    )
    # ML models' outputs: scores `key` (0–1) and `key_decile` (1–10), a cluster's label,
    # recommended item ids
    clusters: dict[str, dict[str, str]] = {}
    for model in MLModel.objects.with_champion().filter(workspace=workspace):
        computed_keys |= set(model.trait_keys)
        if model.kind == ModelKind.CLUSTERS:
            clusters[model.key] = ml_selectors.cluster_labels_ever(model)
    for trait in builtin.BUILTIN_TRAITS:
        if trait.column and trait.column in compiler.PROFILE_COLUMNS:
            columns[trait.key] = (trait.column, _COLUMN_KINDS.get(trait.type, "number"))
        elif trait.computed_key:
            computed_keys.add(trait.computed_key)

    def find_segment(ref: Any) -> int | None:
        rows = Segment.objects.filter(workspace=workspace, status=SegmentStatus.PUBLISHED)
        if exclude_segment is not None:
            rows = rows.exclude(pk=exclude_segment)  # a segment may not contain itself
        if isinstance(ref, int):
            rows = rows.filter(pk=ref)
        else:
            rows = rows.filter(key=str(ref))
        return rows.values_list("pk", flat=True).first()

    purposes = set(Purpose.objects.filter(workspace=workspace).values_list("key", flat=True))
    return RuleContext(
        columns=columns,
        computed_keys=computed_keys,
        find_segment=find_segment,
        consent_purposes=purposes or None,
        regex_error=postgres_regex_error,
        clusters=clusters,
    )


def postgres_regex_error(pattern: str) -> str | None:
    """Postgres's own verdict on a pattern (its ARE dialect differs from Python's `re`: no
    `(?P<name>…)`, `\\d` inside brackets, …), asked in a savepoint so a bad pattern never
    aborts the caller's transaction."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT '' ~ %s", [pattern])
    except DatabaseError as exc:
        message = str(exc).strip().splitlines()[0]
        return message.removeprefix("invalid regular expression: ")
    return None


def rule_parse(*, workspace: Workspace, rule: Any, segment_id: int | None = None) -> n.Node:
    return parse_rule(rule, rule_context(workspace, exclude_segment=segment_id))


@dataclass(slots=True)
class Preview:
    count: int
    sample: list[int]
    milliseconds: int


def segment_preview(
    *, workspace: Workspace, rule: Any, sample: int = 20, now: datetime | None = None
) -> Preview:
    """Count and a sample of members of an unsaved rule (the builder calls it on every edit)."""
    node = rule_parse(workspace=workspace, rule=rule)
    started = time.monotonic()
    when = now or timezone.now()
    count = compiler.count_members(node, workspace_id=workspace.pk, now=when)
    ids = (
        compiler.sample_members(node, workspace_id=workspace.pk, now=when, limit=sample)
        if count
        else []
    )
    return Preview(count, ids, round((time.monotonic() - started) * 1000))


def _unique_key(workspace: Workspace, name: str) -> str:
    base = slugify(name)[:90] or "segment"
    key, n_ = base, 2
    while Segment.objects.filter(workspace=workspace, key=key).exists():
        key, n_ = f"{base}-{n_}", n_ + 1
    return key


MAX_TAGS = 10
_TAG = re.compile(r"[^\W_][\w \-]{0,39}")  # letters of any script, digits, space, _ and -


def normalise_tags(value: Any) -> list[str]:
    """Tags as stored: trimmed, lower-case, single spaces, each once, in the order given.
    Errors name the position of the bad tag (tags[2])."""
    if not isinstance(value, list):
        raise ValidationFailed.at("tags", "expected a list of strings")
    tags: list[str] = []
    for i, raw in enumerate(value):
        if not isinstance(raw, str):
            raise ValidationFailed.at(f"tags[{i}]", "expected a string")
        tag = normalise_tag(raw)
        if not _TAG.fullmatch(tag):
            raise ValidationFailed.at(
                f"tags[{i}]",
                f"{raw!r} is not a tag: 1 to 40 letters, digits, spaces, - or _, starting with "
                "a letter or digit",
            )
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ValidationFailed.at("tags", f"at most {MAX_TAGS} tags per segment")
    return tags


@transaction.atomic
def segment_create(
    *,
    workspace: Workspace,
    name: str,
    rule: Any,
    description: str = "",
    tags: Any = None,
    publish: bool = False,
    actor: Any = None,
    key: str | None = None,
) -> Segment:
    """A new segment, its rule the draft (published at once with `publish`); its key is made
    from the name unless given (configuration as code keeps keys across workspaces)."""
    if not name.strip():
        raise ValidationFailed.at("name", "expected a segment name")
    if key is not None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,99}", key):
            raise ValidationFailed.at("key", "expected lower-case letters, digits, - and _")
        if Segment.objects.filter(workspace=workspace, key=key).exists():
            raise ValidationFailed.at("key", f"a segment {key!r} exists already")
    clean_tags = normalise_tags(tags) if tags is not None else []
    rule_parse(workspace=workspace, rule=rule)
    segment = Segment.objects.create(
        workspace=workspace,
        key=key if key is not None else _unique_key(workspace, name),
        name=name.strip(),
        description=description,
        tags=clean_tags,
        owner=actor if getattr(actor, "is_authenticated", False) else None,
    )
    version = SegmentVersion.objects.create(
        segment=segment, number=1, rule=rule, created_by=segment.owner
    )
    segment.draft_version = version
    segment.save(update_fields=["draft_version"])
    if segment.owner is not None:  # the creator manages it, whatever their role
        assign_perm("segments.change_segment", segment.owner, segment)
    audit(workspace=workspace, actor=actor, action="segment.create", target=segment)
    if publish:
        segment_publish(segment=segment, actor=actor)
    return segment


@transaction.atomic
def segment_duplicate(*, segment: Segment, actor: Any = None, name: str | None = None) -> Segment:
    """A new segment with the source's current rule (its draft when it has one, else the live
    version), owned by whoever duplicates it and not published: a starting point for a variant
    (another window, a holdout) that does not touch the original or its audience."""
    source = segment.draft_version or segment.published_version
    if source is None:  # every segment has a version; a broken row is not copied silently
        raise ValidationFailed.at(NON_FIELD, f"segment {segment.key!r} has no rule to copy")
    workspace = Workspace.objects.get(pk=segment.workspace_id)
    copy = segment_create(
        workspace=workspace,
        name=name if name is not None else f"Copy of {segment.name}"[:200],
        description=segment.description,
        tags=segment.tags,
        rule=source.rule,
        actor=actor,
    )
    audit(
        workspace=workspace,
        actor=actor,
        action="segment.duplicate",
        target=copy,
        detail={"from": segment.key, "version": source.number},
    )
    return copy


@transaction.atomic
def segment_update(
    *,
    segment: Segment,
    actor: Any = None,
    name: str | None = None,
    description: str | None = None,
    tags: Any = None,
    rule: Any = None,
) -> Segment:
    """A new rule becomes (or replaces) the draft version; the published one stays live until
    the draft is published. Name, description and tags are not versioned."""
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    stale: SegmentVersion | None = None  # a draft made pointless by this change
    if tags is not None:
        segment.tags = normalise_tags(tags)
    if name is not None:
        if not name.strip():
            raise ValidationFailed.at("name", "expected a segment name")
        segment.name = name.strip()
    if description is not None:
        segment.description = description
    if rule is not None:
        workspace = Workspace.objects.get(pk=segment.workspace_id)
        rule_parse(workspace=workspace, rule=rule, segment_id=segment.pk)
        pending = segment.pending_draft
        live = segment.published_version
        if live is not None and rule == live.rule:
            # the live rule again (a save that changed only the name or tags, or an edit
            # undone): nothing to publish, so no draft is kept
            if pending is not None:
                segment.draft_version = None
                stale = pending
        elif pending is not None:
            pending.rule = rule
            pending.save(update_fields=["rule"])
        else:
            last = segment.versions.order_by("-number").first()
            segment.draft_version = SegmentVersion.objects.create(
                segment=segment,
                number=(last.number if last else 0) + 1,
                rule=rule,
                created_by=actor if getattr(actor, "is_authenticated", False) else None,
            )
    segment.updated_at = timezone.now()
    segment.save()
    if stale is not None:
        stale.delete()
    return segment


@transaction.atomic
def segment_restore_version(*, segment: Segment, number: int, actor: Any = None) -> Segment:
    """Bring an earlier version's rule back as the draft, to review its diff and publish it
    (a roll-back). Restoring the live rule simply drops the draft."""
    version = SegmentVersion.objects.filter(segment=segment, number=number).first()
    if version is None:
        raise NotFound(f"Segment {segment.key!r} has no version {number}.")
    if segment.draft_version_id == version.pk:
        raise Conflict(f"Version {number} is the draft already.", code="already_draft")
    restored = segment_update(segment=segment, rule=version.rule, actor=actor)
    audit(
        workspace=Workspace.objects.get(pk=segment.workspace_id),
        actor=actor,
        action="segment.restore",
        target=segment,
        detail={"version": number},
    )
    return restored


@dataclass(slots=True)
class Evaluation:
    version: int
    members: int
    entered: int
    exited: int
    milliseconds: int


def apply_sql(members_sql: str, *, only_profiles: bool) -> str:
    """One statement: the target members, exits and entries recorded as membership rows and
    as change events. With only_profiles, exits are looked for among %(profiles)s only (the
    real-time path evaluates just the profiles a batch touched)."""
    scope = "AND m.profile_id = ANY(%(profiles)s::bigint[])" if only_profiles else ""
    return f"""
WITH target AS ({members_sql}),
exited AS (
    UPDATE segments_membership m SET exited_at = %(at)s
    WHERE m.segment_id = %(segment)s AND m.exited_at IS NULL {scope}
      AND m.profile_id NOT IN (SELECT id FROM target)
    RETURNING m.profile_id
),
entered AS (
    INSERT INTO segments_membership (segment_id, profile_id, version, entered_at)
    SELECT %(segment)s, t.id, %(version)s, %(at)s FROM target t
    WHERE NOT EXISTS (
        SELECT 1 FROM segments_membership m
        WHERE m.segment_id = %(segment)s AND m.profile_id = t.id AND m.exited_at IS NULL
    )
    RETURNING profile_id
),
changes AS (
    INSERT INTO segments_membershipchange (workspace_id, segment_id, profile_id, kind, version, at)
    SELECT %(workspace)s, %(segment)s, profile_id, 'entered', %(version)s, %(at)s FROM entered
    UNION ALL
    SELECT %(workspace)s, %(segment)s, profile_id, 'exited', %(version)s, %(at)s FROM exited
)
SELECT (SELECT count(*) FROM target), (SELECT count(*) FROM entered),
       (SELECT count(*) FROM exited)
"""  # noqa: S608 - built from compiled SQL and placeholders


_SCHEDULE = """
WITH due AS ({boundaries}),
cleared AS (
    DELETE FROM segments_expiry x
    WHERE x.segment_id = %(segment)s {scope}
      AND x.profile_id NOT IN (SELECT profile_id FROM due)
)
INSERT INTO segments_expiry (segment_id, profile_id, due_at)
SELECT %(segment)s, profile_id, due FROM due
ON CONFLICT (segment_id, profile_id) DO UPDATE SET due_at = EXCLUDED.due_at
    WHERE segments_expiry.due_at IS DISTINCT FROM EXCLUDED.due_at
"""


def schedule_expiries(
    *,
    segment_id: int,
    node: n.Node,
    workspace_id: int,
    now: datetime,
    profile_ids: list[int] | None = None,
) -> None:
    """Record, for every profile whose answer could change by time alone, the next moment it
    might (an event leaving a window, a date trait passing a relative bound; see
    compile.window_boundaries_query); drop stale entries."""
    built = compiler.window_boundaries_query(
        node, workspace_id=workspace_id, now=now, profile_ids=profile_ids
    )
    with connection.cursor() as cursor:
        if built is None:
            cursor.execute("DELETE FROM segments_expiry WHERE segment_id = %s", [segment_id])
            return
        sql, params = built
        scope = "AND x.profile_id = ANY(%(scope_ids)s::bigint[])" if profile_ids else ""
        cursor.execute(
            _SCHEDULE.format(boundaries=sql, scope=scope),
            {**params, "segment": segment_id, "scope_ids": profile_ids or []},
        )


# advisory lock space of segment evaluations, apart from the others (README "Scale-out")
EVALUATION_LOCK_NAMESPACE = 7303


def segment_evaluate(
    *, segment: Segment, now: datetime | None = None, kind: str = "full"
) -> Evaluation:
    """Full evaluation of the published version: one statement computes the members and
    records who entered and who left, inside the caller's transaction, so a crash or a re-run
    never leaves a half-updated segment (re-running changes nothing). `kind` names it in the
    metrics (full: a scheduled or requested re-evaluation; publish)."""
    version = segment.published_version
    if version is None:
        raise Conflict("the segment has no published version", code="not_published")
    workspace = Workspace.objects.get(pk=segment.workspace_id)
    node = rule_parse(workspace=workspace, rule=version.rule, segment_id=segment.pk)
    when = now or timezone.now()
    started = time.monotonic()
    sql, params = compiler.members_query(node, workspace_id=workspace.pk, now=when)
    with connection.cursor() as cursor:
        # one evaluation of a segment at a time
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)", [EVALUATION_LOCK_NAMESPACE, segment.pk]
        )
        cursor.execute(
            apply_sql(sql, only_profiles=False),
            {
                **params,
                "at": when,
                "segment": segment.pk,
                "version": version.number,
                "workspace": workspace.pk,
            },
        )
        row = cursor.fetchone()
    assert row is not None
    members, entered, exited = (int(v) for v in row)
    schedule_expiries(segment_id=segment.pk, node=node, workspace_id=workspace.pk, now=when)
    seconds = time.monotonic() - started
    Segment.objects.filter(pk=segment.pk).update(
        member_count=members, evaluated_at=when, evaluation_ms=round(seconds * 1000)
    )
    metrics.segment_evaluated(kind=kind, entered=entered, exited=exited, seconds=seconds)
    return Evaluation(version.number, members, entered, exited, round(seconds * 1000))


@transaction.atomic
def segment_publish(*, segment: Segment, actor: Any = None) -> Evaluation:
    """Make the draft live and evaluate it for the whole workspace. Pipeline batches hold the
    workspace's identity lock (shared) from their claim to their commit: taking it exclusively
    waits for the batches in flight — which evaluated the segments they loaded before this
    definition — so the evaluation below sees their profiles, and batches that start after it
    load this definition. No member is left for the next scheduled refresh."""
    lock_workspaces([segment.workspace_id], exclusive=True)
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    draft = segment.pending_draft
    if draft is None:
        raise Conflict("nothing to publish: the segment has no draft", code="no_draft")
    draft.published_at = timezone.now()
    draft.save(update_fields=["published_at"])
    segment.published_version = draft
    segment.draft_version = None
    segment.status = SegmentStatus.PUBLISHED
    segment.updated_at = timezone.now()
    segment.save()
    result = segment_evaluate(segment=segment, kind="publish")
    audit(
        workspace=Workspace.objects.get(pk=segment.workspace_id),
        actor=actor,
        action="segment.publish",
        target=segment,
        detail={"version": draft.number, "members": result.members},
    )
    return result


def segment_dependents(*, segment: Segment) -> list[Segment]:
    """Other segments whose live or draft rule has a `segment` condition on this one."""
    found = []
    others = Segment.objects.filter(workspace_id=segment.workspace_id).exclude(pk=segment.pk)
    for other in others.select_related("published_version", "draft_version"):
        for version in (other.published_version, other.draft_version):
            if version is not None and segment.pk in _referenced_segments(version.rule, segment):
                found.append(other)
                break
    return found


def _referenced_segments(rule: Any, target: Segment) -> set[int]:
    """Ids of the segments a stored rule refers to (by id or key), without validating it."""
    found: set[int] = set()
    stack = [rule]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            ref = node.get("segment")
            if ref is not None and (ref == target.pk or ref == target.key):
                found.add(target.pk)
            stack.extend(v for k, v in node.items() if k in ("all", "any", "not"))
    return found


@transaction.atomic
def segment_discard_draft(*, segment: Segment, actor: Any = None) -> Segment:
    """Drop the unpublished draft; the live version stays as it is."""
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    draft = segment.pending_draft
    if draft is None:
        raise Conflict("the segment has no draft to discard", code="no_draft")
    if segment.published_version is None:
        raise Conflict(
            "this segment was never published: delete it instead of discarding its only version",
            code="never_published",
        )
    segment.draft_version = None
    segment.updated_at = timezone.now()
    segment.save(update_fields=["draft_version", "updated_at"])
    draft.delete()
    audit(
        workspace=Workspace.objects.get(pk=segment.workspace_id),
        actor=actor,
        action="segment.discard_draft",
        target=segment,
        detail={"version": draft.number},
    )
    return segment


def _read_traits(rule: Any) -> set[str]:
    """Names of the traits (profile or computed) a stored rule's trait conditions read."""
    found: set[str] = set()
    stack = [rule]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if isinstance(node.get("trait"), str):
                found.add(node["trait"])
            stack.extend(v for k, v in node.items() if k in ("all", "any", "not"))
    return found


def segments_reading_traits(*, workspace_id: int, keys: Iterable[str]) -> list[Segment]:
    """The published segments whose live rule reads one of these traits, with the segments
    whose rules refer to those (and so on), in dependency order: re-evaluated in that order,
    each sees the fresh membership of the segments it refers to."""
    wanted = set(keys)
    segments = list(
        Segment.objects.filter(workspace_id=workspace_id, status=SegmentStatus.PUBLISHED)
        .select_related("published_version")
        .order_by("id")
    )
    rules = {s.pk: s.published_version.rule if s.published_version else {} for s in segments}
    selected = {s.pk for s in segments if _read_traits(rules[s.pk]) & wanted}
    grew = bool(selected)
    while grew:
        grew = False
        for segment in segments:
            if segment.pk not in selected and any(
                _referenced_segments(rules[segment.pk], other)
                for other in segments
                if other.pk in selected
            ):
                selected.add(segment.pk)
                grew = True
    return _dependency_order([s for s in segments if s.pk in selected])


def segments_guard_trait_delete(trait: ComputedTrait) -> None:
    """Registered as a computed-trait delete guard: a trait that a segment's live or draft rule
    reads cannot be deleted (the segment would silently lose its members)."""
    readers = []
    others = Segment.objects.filter(workspace_id=trait.workspace_id).exclude(
        status=SegmentStatus.ARCHIVED
    )
    for segment in others.select_related("published_version", "draft_version").order_by("id"):
        for version in (segment.published_version, segment.draft_version):
            if version is not None and trait.key in _read_traits(version.rule):
                readers.append(segment)
                break
    if readers:
        names = ", ".join(f"{r.name!r}" for r in readers[:5])
        raise Conflict(
            f"segments read this computed trait in their rules: {names}; change them first",
            code="computed_trait_in_use",
            detail={"segments": [{"id": r.pk, "key": r.key, "name": r.name} for r in readers]},
        )


# what else may use a segment, from higher apps (activation's audience syncs): each guard
# returns the names of what uses it; a segment in use is not deleted
_DELETE_GUARDS: list[Callable[[Segment], list[str]]] = []


def register_delete_guard(guard: Callable[[Segment], list[str]]) -> None:
    if guard not in _DELETE_GUARDS:
        _DELETE_GUARDS.append(guard)


@transaction.atomic
def segment_delete(*, segment: Segment, actor: Any = None) -> None:
    users = [name for guard in _DELETE_GUARDS for name in guard(segment)]
    if users:
        raise Conflict(
            f"this segment is synced by {', '.join(users[:5])}; delete those syncs first",
            code="segment_in_use",
            detail={"segments": [], "used_by": users},
        )
    dependents = segment_dependents(segment=segment)
    if dependents:
        names = ", ".join(f"{d.name!r}" for d in dependents[:5])
        raise Conflict(
            f"other segments use this one in their rules: {names}; change them first",
            code="segment_in_use",
            detail={"segments": [{"id": d.pk, "key": d.key, "name": d.name} for d in dependents]},
        )
    workspace = Workspace.objects.get(pk=segment.workspace_id)
    audit(workspace=workspace, actor=actor, action="segment.delete", detail={"key": segment.key})
    Membership.objects.filter(segment=segment).delete()
    Expiry.objects.filter(segment=segment).delete()
    segment.delete()


@dataclass(slots=True)
class Diff:
    version: int
    members: int
    entering: int
    leaving: int
    entering_sample: list[int]
    leaving_sample: list[int]


_DIFF = """
WITH draft AS ({members}),
current AS (
    SELECT profile_id AS id FROM segments_membership
    WHERE segment_id = %(segment)s AND exited_at IS NULL
),
entering AS (SELECT id FROM draft EXCEPT SELECT id FROM current),
leaving AS (SELECT id FROM current EXCEPT SELECT id FROM draft)
SELECT (SELECT count(*) FROM draft),
       (SELECT count(*) FROM entering),
       (SELECT count(*) FROM leaving),
       ARRAY(SELECT id FROM entering ORDER BY id DESC LIMIT %(sample)s),
       ARRAY(SELECT id FROM leaving ORDER BY id DESC LIMIT %(sample)s)
"""


def segment_diff(*, segment: Segment, sample: int = 10, now: datetime | None = None) -> Diff:
    """What publishing the draft would change: who would enter, who would leave."""
    draft = segment.draft_version
    if draft is None:
        raise Conflict("the segment has no draft to compare", code="no_draft")
    workspace = Workspace.objects.get(pk=segment.workspace_id)
    node = rule_parse(workspace=workspace, rule=draft.rule, segment_id=segment.pk)
    sql, params = compiler.members_query(node, workspace_id=workspace.pk, now=now or timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            _DIFF.format(members=sql), {**params, "segment": segment.pk, "sample": sample}
        )
        row = cursor.fetchone()
    assert row is not None
    return Diff(draft.number, int(row[0]), int(row[1]), int(row[2]), list(row[3]), list(row[4]))


# ---- sharing --------------------------------------------------------------------------------


def segment_grant(*, segment: Segment, user: Any, actor: Any = None) -> None:
    """Let another member of the workspace edit and publish this segment. Only roles that
    may create segments can be granted one (analysts stay read-only)."""
    from cdp import access

    workspace = Workspace.objects.get(pk=segment.workspace_id)
    role = access.role_of(user, workspace)
    if role is None:
        raise ValidationFailed.at("user", "not a member of this workspace")
    if role not in access.CAPABILITIES["segments.create"]:
        raise ValidationFailed.at("user", f"a member with the {role} role can only read segments")
    assign_perm("segments.change_segment", user, segment)
    audit(
        workspace=workspace,
        actor=actor,
        action="segment.grant",
        target=segment,
        detail={"user": user.pk},
    )


def segment_revoke(*, segment: Segment, user: Any, actor: Any = None) -> None:
    if segment.owner_id == user.pk:
        raise Conflict("the segment's owner keeps access to it", code="owner")
    remove_perm("segments.change_segment", user, segment)
    audit(
        workspace=Workspace.objects.get(pk=segment.workspace_id),
        actor=actor,
        action="segment.revoke",
        target=segment,
        detail={"user": user.pk},
    )


def segment_grantees(*, segment: Segment) -> list[Any]:
    """Users holding an explicit grant on the segment (its owner included), by username."""
    users = get_users_with_perms(
        segment, only_with_perms_in=["change_segment"], with_group_users=False
    )
    return sorted(users, key=lambda u: u.username)


# ---- schedule -------------------------------------------------------------------------------


def segments_refresh_all(*, now: datetime | None = None) -> dict[int, Evaluation]:
    """Scheduled full re-evaluation of every published segment, each in its own transaction
    (a crash leaves each segment either fully updated or untouched). Catches what no event
    signals: computed traits refreshed by their own schedule, rule changes of segments that a
    rule refers to, and anything real-time missed. Segments are evaluated in dependency order
    so a segment condition sees the fresh membership of the segment it refers to."""
    results: dict[int, Evaluation] = {}
    segments = list(
        Segment.objects.filter(status=SegmentStatus.PUBLISHED)
        .select_related("published_version")
        .order_by("id")
    )
    for segment in _dependency_order(segments):
        with transaction.atomic():
            results[segment.pk] = segment_evaluate(segment=segment, now=now)
    return results


def _dependency_order(segments: list[Segment]) -> list[Segment]:
    by_id = {s.pk: s for s in segments}
    done: set[int] = set()
    ordered: list[Segment] = []

    def visit(segment: Segment, trail: frozenset[int]) -> None:
        if segment.pk in done or segment.pk in trail:
            return
        rule = segment.published_version.rule if segment.published_version else {}
        for other in segments:
            if other.workspace_id == segment.workspace_id and other.pk != segment.pk:
                if _referenced_segments(rule, other):
                    visit(by_id[other.pk], trail | {segment.pk})
        done.add(segment.pk)
        ordered.append(segment)

    for segment in segments:
        visit(segment, frozenset())
    return ordered
