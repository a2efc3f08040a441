"""Real-time membership: after identity resolution, the profiles a batch touched are
re-evaluated against every published segment of their workspace — one statement per segment
for all of them — and entries and exits are recorded (membership history + change events)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import connection
from django.utils import timezone

from cdp.models import Workspace
from profiles.identity.resolve import Resolution
from segments.models import Segment, SegmentStatus
from segments.rules import compile as compiler
from segments.rules.validate import parse_rule
from segments.services import apply_sql, rule_context


def segments_update_for_batch(resolution: Resolution) -> int:
    """Returns how many (segment, profile) changes were recorded."""
    by_workspace: dict[int, list[int]] = defaultdict(list)
    for profile_id, events in resolution.touched.items():
        if events:
            by_workspace[int(events[0].workspace_id)].append(profile_id)
    changed = 0
    for workspace_id, profile_ids in by_workspace.items():
        changed += segments_evaluate_profiles(workspace_id=workspace_id, profile_ids=profile_ids)
    return changed


def segments_evaluate_profiles(*, workspace_id: int, profile_ids: list[int]) -> int:
    segments = list(
        Segment.objects.filter(workspace_id=workspace_id, status=SegmentStatus.PUBLISHED)
        .select_related("published_version")
        .order_by("id")
    )
    if not segments or not profile_ids:
        return 0
    workspace = Workspace.objects.get(pk=workspace_id)
    now = timezone.now()
    ids = sorted(set(profile_ids))
    changed = 0
    with connection.cursor() as cursor:
        for segment in segments:
            version = segment.published_version
            if version is None:
                continue
            node = parse_rule(version.rule, rule_context(workspace, exclude_segment=segment.pk))
            sql, params = compiler.members_query(
                node, workspace_id=workspace_id, now=now, profile_ids=ids
            )
            values: dict[str, Any] = {
                **params,
                "profiles": ids,
                "at": now,
                "segment": segment.pk,
                "version": version.number,
                "workspace": workspace_id,
            }
            cursor.execute(apply_sql(sql, only_profiles=True), values)
            row = cursor.fetchone()
            if row:
                changed += int(row[1]) + int(row[2])
    return changed


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
