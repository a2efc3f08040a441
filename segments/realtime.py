"""Real-time membership: after identity resolution, the profiles a batch touched are
re-evaluated against every published segment of their workspace — one statement per segment
for all of them — and entries and exits are recorded (membership history + change events)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from cdp import metrics
from cdp.models import Workspace
from profiles.identity.resolve import Resolution
from profiles.pipeline.stages import Batch
from segments.models import Segment, SegmentStatus
from segments.rules import compile as compiler
from segments.rules.validate import parse_rule
from segments.services import (
    apply_sql,
    rule_context,
    schedule_expiries,
    segments_reading_traits,
)

COUNT_DELTAS = "segments.member_count_deltas"


def segments_stage(batch: Batch) -> None:
    """The pipeline stage (registered in SegmentsConfig.ready()): the touched profiles'
    memberships, re-evaluated against every published segment. The segments' member counts
    change in `segments_counts_stage`, the batch's last statement: two drains updating the
    same segment row then hold its lock only for their commit, not for the rest of their
    batch."""
    deltas: dict[int, int] = batch.notes.setdefault(COUNT_DELTAS, defaultdict(int))
    segments_update_for_batch(batch.resolution, count_deltas=deltas)


def segments_counts_stage(batch: Batch) -> None:
    """The pipeline stage after every other: apply the batch's member-count changes, one
    statement, segments in id order (two drains lock them in the same order)."""
    deltas = {k: v for k, v in batch.notes.get(COUNT_DELTAS, {}).items() if v}
    if not deltas:
        return
    ids = sorted(deltas)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE segments_segment s SET member_count = s.member_count + d.delta "
            "FROM unnest(%s::bigint[], %s::int[]) AS d(id, delta) WHERE s.id = d.id",
            [ids, [deltas[i] for i in ids]],
        )


def segments_update_for_batch(
    resolution: Resolution, count_deltas: dict[int, int] | None = None
) -> int:
    """Returns how many (segment, profile) changes were recorded. With `count_deltas`, the
    member-count changes are added there for the caller to apply, else applied at once."""
    by_workspace: dict[int, list[int]] = defaultdict(list)
    for profile_id, events in resolution.touched.items():
        if events:
            by_workspace[int(events[0].workspace_id)].append(profile_id)
    changed = 0
    for workspace_id, profile_ids in by_workspace.items():
        changed += segments_evaluate_profiles(
            workspace_id=workspace_id, profile_ids=profile_ids, count_deltas=count_deltas
        )
    return changed


def segments_evaluate_profiles(
    *,
    workspace_id: int,
    profile_ids: list[int],
    now: datetime | None = None,
    segment_ids: list[int] | None = None,
    count_deltas: dict[int, int] | None = None,
) -> int:
    """Evaluate some profiles against the workspace's published segments (or some of them)
    as of `now`; record entries/exits at that time and reschedule their window expiries.
    Member counts change at once, or are added to `count_deltas` for the caller to apply."""
    segments = Segment.objects.filter(
        workspace_id=workspace_id, status=SegmentStatus.PUBLISHED
    ).select_related("published_version")
    if segment_ids is not None:
        segments = segments.filter(pk__in=segment_ids)
    if not profile_ids or not segments:
        return 0
    workspace = Workspace.objects.get(pk=workspace_id)
    when = now or timezone.now()
    ids = sorted(set(profile_ids))
    started = time.monotonic()
    changed = evaluated = entered = exited = 0
    for segment in segments.order_by("id"):
        version = segment.published_version
        if version is None:
            continue
        node = parse_rule(version.rule, rule_context(workspace, exclude_segment=segment.pk))
        sql, params = compiler.members_query(
            node, workspace_id=workspace_id, now=when, profile_ids=ids
        )
        values: dict[str, Any] = {
            **params,
            "profiles": ids,
            "at": when,
            "segment": segment.pk,
            "version": version.number,
            "workspace": workspace_id,
        }
        with connection.cursor() as cursor:
            cursor.execute(apply_sql(sql, only_profiles=True), values)
            row = cursor.fetchone()
        evaluated += 1
        if row and (int(row[1]) or int(row[2])):
            entered, exited = entered + int(row[1]), exited + int(row[2])
            changed += int(row[1]) + int(row[2])
            if count_deltas is not None:
                count_deltas[segment.pk] += int(row[1]) - int(row[2])
            else:
                Segment.objects.filter(pk=segment.pk).update(
                    member_count=F("member_count") + int(row[1]) - int(row[2])
                )
        schedule_expiries(
            segment_id=segment.pk, node=node, workspace_id=workspace_id, now=when, profile_ids=ids
        )
    metrics.segment_evaluated(
        kind="realtime",
        evaluations=evaluated,
        entered=entered,
        exited=exited,
        seconds=time.monotonic() - started,
    )
    return changed


def reevaluate_for_traits(
    workspace_id: int, keys: frozenset[str], profile_ids: Sequence[int]
) -> int:
    """Registered as a computed-trait values hook: a refresh job (a trait's backfill after it
    was created or redefined, a window's expiry, the hourly built-ins) changed these profiles'
    values; the segments reading them (and those referring to these) re-evaluate them now,
    in the job's transaction, instead of at the next scheduled full evaluation."""
    changed = 0
    for segment in segments_reading_traits(workspace_id=workspace_id, keys=keys):
        changed += segments_evaluate_profiles(
            workspace_id=workspace_id, profile_ids=list(profile_ids), segment_ids=[segment.pk]
        )
    return changed


_CLAIM_DUE = """
DELETE FROM segments_expiry x
USING segments_segment s
WHERE x.id IN (
    SELECT id FROM segments_expiry WHERE due_at <= %(now)s
    ORDER BY due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
) AND s.id = x.segment_id
RETURNING s.workspace_id, x.segment_id, x.profile_id, x.due_at
"""


@transaction.atomic
def segments_process_expiries(*, now: datetime | None = None, limit: int = 5000) -> int:
    """Re-evaluate the profiles whose window expired, each as of its exact expiry moment,
    so history records the exit at the time the window ran out, however late this runs."""
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_DUE, {"now": now or timezone.now(), "limit": limit})
        due = cursor.fetchall()
    groups: dict[tuple[int, int, datetime], list[int]] = defaultdict(list)
    for workspace_id, segment_id, profile_id, due_at in due:
        groups[(workspace_id, segment_id, due_at)].append(profile_id)
    for (workspace_id, segment_id, due_at), profile_ids in sorted(groups.items(), key=_by_time):
        segments_evaluate_profiles(
            workspace_id=workspace_id,
            profile_ids=profile_ids,
            now=due_at,
            segment_ids=[segment_id],
        )
    return len(due)


def _by_time(item: tuple[tuple[int, int, datetime], list[int]]) -> datetime:
    return item[0][2]


def exit_merged_profile(workspace_id: int, winner_id: int, loser_id: int) -> None:
    """Merge hook: a merged-away profile leaves every segment (the survivor is re-evaluated
    with the batch that merged them)."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH exited AS (
                UPDATE segments_membership m SET exited_at = %(at)s
                FROM segments_segment s
                WHERE m.segment_id = s.id AND s.workspace_id = %(ws)s
                  AND m.profile_id = %(loser)s AND m.exited_at IS NULL
                RETURNING m.segment_id, m.version
            )
            INSERT INTO segments_membershipchange
                (workspace_id, segment_id, profile_id, kind, version, at)
            SELECT %(ws)s, segment_id, %(loser)s, 'exited', version, %(at)s FROM exited
            """,
            {"at": now, "ws": workspace_id, "loser": loser_id},
        )


def evaluate_split(workspace_id: int, survivor_id: int, restored_id: int) -> None:
    """Split hook: both sides are re-evaluated."""
    segments_evaluate_profiles(workspace_id=workspace_id, profile_ids=[survivor_id, restored_id])
