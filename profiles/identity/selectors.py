"""Reads for the profile explorer and the API, scoped by workspace."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet

from cdp.errors import ValidationFailed
from cdp.models import Workspace
from profiles import identifiers
from profiles.identity.rules import Rules, load_rules
from profiles.identity.services import live_profile_id
from profiles.models import (
    Event,
    Identity,
    IdentityConflict,
    Profile,
    ProfileEvent,
    ProfileMerge,
)

NAME_TRAITS = ("name", "full_name")


def identity_order(rules: Rules) -> Any:
    """The sort key of a profile's identities: by the rules' priority of their type, then the
    oldest first."""
    return lambda i: (rules.rank(i.type), i.first_seen, i.pk)


def _identity_order(workspace_id: int) -> Any:
    return identity_order(load_rules(workspace_id))


def profile_list(*, workspace: Workspace, identifier: str | None = None) -> QuerySet[Profile]:
    """Live profiles, newest first; `identifier` is an exact "<type>:<value>" (the explorer,
    profiles.explorer, searches by text)."""
    profiles = Profile.objects.filter(workspace=workspace, merged_into__isnull=True)
    if identifier:
        try:
            kind, value = identifiers.parse_identifier(identifier)
        except ValueError as exc:
            raise ValidationFailed({"identifier": [str(exc)]}, message=str(exc)) from exc
        owners = Identity.objects.filter(workspace=workspace, type=kind, value=value)
        profiles = profiles.filter(pk__in=owners.values("profile_id"))
    return profiles.order_by("-id").prefetch_related(
        Prefetch("identities", queryset=Identity.objects.order_by("id"))
    )


def profile_get(*, workspace: Workspace, profile_id: Any) -> Profile | None:
    """The live profile for an id; a merged-away id resolves to the profile it merged into."""
    try:
        pid = int(profile_id)
    except (TypeError, ValueError):
        return None
    live = live_profile_id(workspace_id=workspace.pk, profile_id=pid)
    if live is None:
        return None
    return Profile.objects.filter(workspace=workspace, pk=live).first()


def profile_identities(*, profile: Profile) -> list[Identity]:
    rows = list(Identity.objects.filter(profile=profile))
    rows.sort(key=_identity_order(profile.workspace_id))
    return rows


def display_name(profile: Profile, identities: list[Identity] | None = None) -> str:
    traits = profile.traits or {}
    for key in NAME_TRAITS:
        if isinstance(traits.get(key), str) and traits[key].strip():
            return str(traits[key]).strip()
    first, last = traits.get("first_name"), traits.get("last_name")
    parts = [str(p).strip() for p in (first, last) if isinstance(p, str) and p.strip()]
    if parts:
        return " ".join(parts)
    if isinstance(traits.get("email"), str) and traits["email"]:
        return str(traits["email"])
    chosen = identities if identities is not None else list(profile.identities.all())
    for kind in (identifiers.USER_ID, identifiers.EMAIL, identifiers.PHONE):
        for identity in chosen:
            if identity.type == kind:
                return identity.value
    return f"Anonymous visitor #{profile.pk}"


def profile_events(
    *, profile: Profile, event_type: str | None = None, event_name: str | None = None
) -> QuerySet[ProfileEvent]:
    """The profile's events, newest first; of one type and/or one event (track) or page/screen
    name."""
    rows = ProfileEvent.objects.filter(profile=profile)
    if event_type:
        rows = rows.filter(type=event_type)
    if event_name:
        rows = rows.filter(event=event_name)
    return rows.order_by("-timestamp", "-event_id")


def events_for(rows: list[ProfileEvent]) -> list[Event]:
    """The stored events behind a page of ProfileEvent rows, in the rows' order."""
    by_id = {e.pk: e for e in Event.objects.filter(id__in=[r.event_id for r in rows])}
    return [by_id[r.event_id] for r in rows if r.event_id in by_id]


def profile_merges(*, profile: Profile) -> QuerySet[ProfileMerge]:
    """Merges into this profile and merges that absorbed it (newest first)."""
    absorbed = Profile.objects.filter(merged_into=profile).values("pk")
    return (
        ProfileMerge.objects.filter(workspace_id=profile.workspace_id)
        .filter(Q(winner=profile) | Q(loser=profile) | Q(winner__in=absorbed))
        .order_by("-created_at", "-id")
    )


def profile_conflicts(*, profile: Profile) -> QuerySet[IdentityConflict]:
    return (
        IdentityConflict.objects.filter(workspace_id=profile.workspace_id)
        .filter(Q(profile=profile) | Q(other_profile=profile))
        .order_by("-id")
    )


def conflict_list(*, workspace: Workspace, reason: str | None = None) -> QuerySet[IdentityConflict]:
    rows = IdentityConflict.objects.filter(workspace=workspace)
    if reason:
        rows = rows.filter(reason=reason)
    return rows.order_by("-id")


def merge_list(*, workspace: Workspace, status: str | None = None) -> QuerySet[ProfileMerge]:
    rows = ProfileMerge.objects.filter(workspace=workspace)
    if status:
        rows = rows.filter(status=status)
    return rows.order_by("-id")


def merge_counts(*, workspace: Workspace) -> dict[str, int]:
    """status -> merges of the workspace in it."""
    rows = ProfileMerge.objects.filter(workspace=workspace).values_list("status")
    return dict(rows.annotate(n=Count("id")).order_by().values_list("status", "n"))


def conflict_counts(*, workspace: Workspace) -> dict[str, int]:
    """reason -> conflicts of the workspace with it."""
    rows = IdentityConflict.objects.filter(workspace=workspace).values_list("reason")
    return dict(rows.annotate(n=Count("id")).order_by().values_list("reason", "n"))


def profile_stats(*, workspace: Workspace) -> dict[str, int]:
    live = Profile.objects.filter(workspace=workspace, merged_into__isnull=True)
    return {
        "profiles": live.count(),
        "merged": Profile.objects.filter(workspace=workspace, merged_into__isnull=False).count(),
        "identities": Identity.objects.filter(workspace=workspace).count(),
        "conflicts": IdentityConflict.objects.filter(workspace=workspace).count(),
    }


def profiles_in_order(*, workspace: Workspace, ids: list[int]) -> list[Profile]:
    """The workspace's profiles of these ids, in the order given (with their identities)."""
    rows = Profile.objects.filter(workspace=workspace, pk__in=ids).prefetch_related("identities")
    by_id = {p.pk: p for p in rows}
    return [by_id[i] for i in ids if i in by_id]


@dataclass(frozen=True, slots=True)
class ProfileLink:
    """How a page names a profile it links to (templates/profiles/_profile_link.html)."""

    id: int
    name: str
    merged_into: int | None

    @property
    def show_id(self) -> bool:
        return not self.name.endswith(f"#{self.id}")  # "Anonymous visitor #12" has it already


def profile_links(*, workspace: Workspace, ids: Iterable[int | None]) -> dict[int, ProfileLink]:
    """id -> its link, for profiles listed by other records (merges, conflicts, members)."""
    wanted = {i for i in ids if i is not None}
    rows = Profile.objects.filter(workspace=workspace, pk__in=wanted).prefetch_related("identities")
    return {p.pk: ProfileLink(p.pk, display_name(p), p.merged_into_id) for p in rows}


def with_merge_people(*, workspace: Workspace, merges: list[ProfileMerge]) -> list[ProfileMerge]:
    """The merges, each with `winner_info` and `loser_info` links (one query)."""
    links = profile_links(
        workspace=workspace, ids=[m.winner_id for m in merges] + [m.loser_id for m in merges]
    )
    for merge in merges:
        merge.winner_info = links.get(merge.winner_id)  # type: ignore[attr-defined]
        merge.loser_info = links.get(merge.loser_id)  # type: ignore[attr-defined]
    return merges
