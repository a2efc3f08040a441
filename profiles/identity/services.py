"""Writes on the identity graph outside the pipeline: splitting a merge, merging two profiles
on request (the rebuild job), recomputing profiles from their events, and the rules."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from cdp.errors import Conflict, NotFound, ValidationFailed
from cdp.models import Workspace, audit
from profiles import identifiers
from profiles.identity import hooks
from profiles.identity.extract import Key, event_ids
from profiles.identity.profile_state import ProfileState
from profiles.identity.resolve import (
    lock_workspaces,
    move_profile_rows,
    update_profiles,
)
from profiles.identity.rules import Rules, load_rules, rules_row, validate_rules
from profiles.models import (
    Event,
    IdentityRules,
    MergeStatus,
    Profile,
    ProfileEvent,
    ProfileMerge,
    SplitBlock,
)
from profiles.pipeline.rows import EventLike

MAX_MERGE_CHAIN = 1000


def live_profile_id(*, workspace_id: int, profile_id: int) -> int | None:
    """Follows merged_into to the surviving profile; None when the id is unknown here."""
    seen = 0
    current: int | None = profile_id
    while current is not None and seen < MAX_MERGE_CHAIN:
        row = (
            Profile.objects.filter(workspace_id=workspace_id, pk=current)
            .values_list("merged_into_id", flat=True)
            .first()
        )
        if row is None and seen == 0 and not _exists(workspace_id, current):
            return None
        if row is None:
            return current
        current, seen = row, seen + 1
    return current


def _exists(workspace_id: int, profile_id: int) -> bool:
    return Profile.objects.filter(workspace_id=workspace_id, pk=profile_id).exists()


def _profile_events(profile_id: int) -> list[EventLike]:
    event_ids_ = ProfileEvent.objects.filter(profile_id=profile_id).values("event_id")
    return list(Event.objects.filter(id__in=event_ids_).order_by("timestamp", "id"))


def profile_recompute(
    *, workspace_id: int, profile_ids: Iterable[int]
) -> dict[int, list[EventLike]]:
    """Rebuild traits and built-in aggregates of live profiles from their own events (after a
    split, or when identities were re-partitioned). Returns each profile's events."""
    rules = load_rules(workspace_id)
    states: list[ProfileState] = []
    events_of: dict[int, list[EventLike]] = {}
    for pid in sorted(set(profile_ids)):
        state = ProfileState(pid=pid)
        events_of[pid] = _profile_events(pid)
        for event in events_of[pid]:
            state.apply_event(event, rules)
        states.append(state)
    if states:
        update_profiles(states)
    _recompute_computed(workspace_id, events_of)
    return events_of


def _recompute_computed(workspace_id: int, events_of: dict[int, list[EventLike]]) -> None:
    from profiles.computed import services as computed

    computed.computed_traits_recompute_profiles(
        workspace_id=workspace_id, profile_ids=list(events_of)
    )


def _subtree(profile_id: int) -> list[int]:
    """The profile and every profile merged into it, directly or through others."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH RECURSIVE t(id) AS (
                SELECT %s::bigint
                UNION
                SELECT p.id FROM profiles_profile p JOIN t ON p.merged_into_id = t.id
            )
            SELECT id FROM t
            """,
            [profile_id],
        )
        return [row[0] for row in cursor.fetchall()]


def _lock(profile_ids: Iterable[int]) -> None:
    list(Profile.objects.filter(pk__in=sorted(set(profile_ids))).order_by("pk").select_for_update())


def _owners(workspace_id: int, keys: set[Key]) -> dict[Key, int]:
    if not keys:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.type, i.value, i.profile_id FROM profiles_identity i
            JOIN unnest(%s::text[], %s::text[]) AS k(type, value)
              ON i.type = k.type AND i.value = k.value
            WHERE i.workspace_id = %s
            """,
            [[k[0] for k in keys], [k[1] for k in keys], workspace_id],
        )
        return {(t, v): pid for t, v, pid in cursor.fetchall()}


def event_keys(event: Event, rules: Rules) -> list[Key]:
    ids = event_ids(event, rules)
    keys = list(ids.keys)
    if ids.previous_id:
        keys += [
            (identifiers.USER_ID, ids.previous_id),
            (identifiers.ANONYMOUS_ID, ids.previous_id),
        ]
    return keys


def reassign_events(
    *, workspace_id: int, rules: Rules, events: list[Event], from_profile: int, candidates: set[int]
) -> int:
    """Events follow the profile owning their highest-priority identifier: move those of
    `events` (now on from_profile) whose best owned identifier belongs to a candidate."""
    keyed = [(event, event_keys(event, rules)) for event in events]
    owners = _owners(workspace_id, {k for _, keys in keyed for k in keys})
    moves: dict[int, list[int]] = {}
    for event, keys in keyed:
        for key in keys:
            owner = owners.get(key)
            if owner is not None:
                if owner in candidates:
                    moves.setdefault(owner, []).append(event.pk)
                break
    with connection.cursor() as cursor:
        for target, ids in moves.items():
            cursor.execute(
                "UPDATE profiles_profileevent SET profile_id = %s "
                "WHERE profile_id = %s AND event_id = ANY(%s)",
                [target, from_profile, ids],
            )
    return sum(len(ids) for ids in moves.values())


@dataclass(slots=True)
class SplitResult:
    merge: ProfileMerge
    survivor_id: int
    restored_id: int
    identities_moved: int
    events_moved: int


@transaction.atomic
def profile_split(*, workspace: Workspace, merge_id: int, actor: Any = None) -> SplitResult:
    """Undo a merge: the loser (with everything merged into it before) gets back its
    identifiers and events, both sides are recomputed from their events, and the pair is
    kept apart from then on."""
    lock_workspaces([workspace.pk], exclusive=True)  # no pipeline batch may interleave
    merge = (
        ProfileMerge.objects.select_for_update().filter(workspace=workspace, pk=merge_id).first()
    )
    if merge is None:
        raise NotFound(f"merge {merge_id} does not exist in this workspace")
    if merge.status != MergeStatus.ACTIVE:
        raise Conflict(f"merge {merge_id} was already split", code="already_split")
    restored_id = merge.loser_id
    survivor_id = live_profile_id(workspace_id=workspace.pk, profile_id=merge.winner_id)
    assert survivor_id is not None
    _lock([survivor_id, restored_id])
    subtree = _subtree(restored_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE profiles_identity SET profile_id = %s "
            "WHERE profile_id = %s AND origin_profile_id = ANY(%s)",
            [restored_id, survivor_id, subtree],
        )
        identities_moved = cursor.rowcount
        cursor.execute(
            "UPDATE profiles_profileevent SET profile_id = %s "
            "WHERE profile_id = %s AND origin_profile_id = ANY(%s)",
            [restored_id, survivor_id, subtree],
        )
        events_moved = cursor.rowcount
    Profile.objects.filter(pk=restored_id).update(
        merged_into=None, merged_at=None, updated_at=timezone.now()
    )
    # Events processed after the merge were assigned to the survivor whatever they carried;
    # those whose best identifier is now the restored profile's go back with it.
    rules = load_rules(workspace.pk)
    later = ProfileEvent.objects.filter(profile_id=survivor_id)
    if merge.event_id is not None:
        later = later.filter(event_id__gt=merge.event_id)
    later_events = list(Event.objects.filter(id__in=later.values("event_id")))
    events_moved += reassign_events(
        workspace_id=workspace.pk,
        rules=rules,
        events=later_events,
        from_profile=survivor_id,
        candidates={restored_id},
    )
    merge.status = MergeStatus.SPLIT
    merge.split_at = timezone.now()
    merge.split_by = actor if getattr(actor, "is_authenticated", False) else None
    merge.save(update_fields=["status", "split_at", "split_by"])
    low, high = sorted((survivor_id, restored_id))
    SplitBlock.objects.get_or_create(
        profile_a_id=low, profile_b_id=high, defaults={"workspace": workspace, "merge": merge}
    )
    profile_recompute(workspace_id=workspace.pk, profile_ids=[survivor_id, restored_id])
    hooks.run_split_hooks(workspace.pk, survivor_id, restored_id)
    audit(
        workspace=workspace,
        actor=actor,
        action="profile.split",
        target=merge,
        detail={
            "survivor": survivor_id,
            "restored": restored_id,
            "identities_moved": identities_moved,
            "events_moved": events_moved,
        },
    )
    return SplitResult(merge, survivor_id, restored_id, identities_moved, events_moved)


@transaction.atomic
def profiles_merge(
    *,
    workspace_id: int,
    winner_id: int,
    loser_id: int,
    rule: str,
    identifiers_: list[dict[str, str]],
    detail: dict[str, Any] | None = None,
) -> ProfileMerge:
    """Merge two live profiles outside the pipeline (the rebuild job). The older one should be
    passed as the winner; the caller holds the workspace lock exclusively."""
    _lock([winner_id, loser_id])
    rows = {p.pk: p for p in Profile.objects.filter(pk__in=[winner_id, loser_id])}
    if len(rows) != 2 or any(p.merged_into_id for p in rows.values()):
        raise Conflict("both profiles must exist and be live to merge them")
    rules = load_rules(workspace_id)
    winner, loser = ProfileState.from_row(rows[winner_id]), ProfileState.from_row(rows[loser_id])
    move_profile_rows(winner_id=winner_id, loser_id=loser_id)
    winner.absorb(loser, rules)
    loser.forward, loser.merged_at = winner, timezone.now()
    update_profiles([winner, loser])
    merge = ProfileMerge.objects.create(
        workspace_id=workspace_id,
        winner_id=winner_id,
        loser_id=loser_id,
        identifiers=identifiers_,
        rule=rule,
        detail={"loser": {"traits": loser.traits, "event_count": loser.event_count}}
        | (detail or {}),
    )
    hooks.run_merge_hooks(workspace_id, winner_id, loser_id)
    return merge


@transaction.atomic
def identity_rules_update(
    *, workspace: Workspace, data: dict[str, Any], actor: Any = None
) -> IdentityRules:
    clean, errors = validate_rules(data)
    if errors:
        raise ValidationFailed(errors)
    row = rules_row(workspace.pk)
    row = IdentityRules.objects.select_for_update().get(pk=row.pk)
    for name, value in clean.items():
        setattr(row, name, value)
    row.version += 1
    row.updated_at = timezone.now()
    row.save()
    audit(workspace=workspace, actor=actor, action="identity_rules.update", detail=clean)
    return row


def identity_rebuild_request(*, workspace: Workspace, dry_run: bool, actor: Any = None) -> None:
    """Queue a full identity-graph rebuild (or a dry run) of the workspace."""
    from profiles.tasks.identity import identity_graph_rebuild_task

    audit(
        workspace=workspace,
        actor=actor,
        action="identity.rebuild_requested",
        detail={"dry_run": dry_run},
    )
    transaction.on_commit(
        lambda: identity_graph_rebuild_task.apply_async(
            kwargs={"workspace_id": workspace.pk, "apply": not dry_run}
        )
    )


def identity_rebuild_record(*, workspace_id: int, report: dict[str, Any]) -> None:
    """Keep the latest rebuild report where the rules page can show it."""
    rules_row(workspace_id)
    IdentityRules.objects.filter(workspace_id=workspace_id).update(
        last_rebuild={**report, "finished_at": timezone.now().isoformat()}
    )
