"""Incremental identity resolution: the pipeline stage that turns a batch of stored events into
profiles.

Per workspace and batch: one look-up of every identifier the batch carries, one statement that
locks the profiles they point at (FOR UPDATE, in id order), then the events are resolved in
memory and the results written with a handful of bulk statements. Every query is an index
look-up on the batch's own identifiers and profiles, so the cost per event does not depend on
how many profiles the workspace holds.

Concurrency: workers hold the workspace's advisory lock in shared mode and lock the profiles
they touch. What a lock cannot cover — another worker creating the same new identifier, or
merging a profile between our look-up and our lock — is detected (identity insert conflicts,
a locked profile found merged, a changed mapping after the lock) and raised as IdentityRace;
the queue then re-runs the batch holding the workspace lock exclusively, which cannot race.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import psycopg
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from cdp.db import json_rows, json_rows_select, server_cursor
from profiles import identifiers
from profiles.identity import hooks
from profiles.identity.extract import EventIds, Key, event_ids
from profiles.identity.profile_state import ProfileState
from profiles.identity.rules import Rules, load_rules
from profiles.models import ConflictReason, IdentityConflict, ProfileMerge
from profiles.pipeline.rows import EventLike as Event


class IdentityRace(Exception):
    """Another worker changed identities this batch depends on; re-run it exclusively."""


@dataclass(slots=True)
class Resolution:
    """What the stage did, for later stages and for tests."""

    profile_of: dict[int, int] = field(default_factory=dict)  # event id -> profile id
    touched: dict[int, list[Event]] = field(default_factory=dict)  # profile id -> its events
    merged: set[int] = field(default_factory=set)  # survivors of merges: all their events moved
    merges: int = 0
    conflicts: int = 0
    created: int = 0
    # events left for a later batch: they touch a profile another worker holds right now
    deferred: list[Event] = field(default_factory=list)


def lock_workspaces(workspace_ids: Sequence[int], *, exclusive: bool) -> None:
    fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with connection.cursor() as cursor:
        for workspace_id in sorted(set(workspace_ids)):
            # two-key form: (namespace, workspace) so other advisory users cannot collide
            cursor.execute(f"SELECT {fn}(%s, %s)", [IDENTITY_LOCK_NAMESPACE, workspace_id])


IDENTITY_LOCK_NAMESPACE = 7301

_LOOKUP = f"""
SELECT i.id, i.type, i.value, i.profile_id
FROM profiles_identity i
JOIN ({json_rows_select([("type", "text"), ("value", "text")])}) AS k
  ON i.type = k.type AND i.value = k.value
WHERE i.workspace_id = %s
"""  # noqa: S608 - built from constants

_LOCK_PROFILES = """
SELECT id, merged_into_id, traits::text, trait_times::text, group_ids::text, first_seen,
       last_seen, event_count, event_counts::text, order_count, revenue, first_order_at,
       last_order_at, engagement_log2
FROM profiles_profile WHERE id = ANY(%b) ORDER BY id FOR UPDATE
"""
_LOCK_PROFILES_NOWAIT = _LOCK_PROFILES.replace("FOR UPDATE", "FOR UPDATE NOWAIT")
_LOCK_PROFILES_SKIP = _LOCK_PROFILES.replace("FOR UPDATE", "FOR UPDATE SKIP LOCKED")
LOCK_ROUNDS = 4

# the 15 columns of _state_columns(), in order
# the 15 values of _state_columns(), in order
_STATE_ROWS = json_rows_select(
    [
        ("id", "bigint"),
        ("t", "jsonb"),
        ("tt", "jsonb"),
        ("g", "jsonb"),
        ("fs", "timestamptz"),
        ("ls", "timestamptz"),
        ("ec", "bigint"),
        ("ecs", "jsonb"),
        ("oc", "int"),
        ("rev", "numeric"),
        ("fo", "timestamptz"),
        ("lo", "timestamptz"),
        ("eng", "float8"),
        ("mi", "bigint"),
        ("ma", "timestamptz"),
    ]
)

_INSERT_PROFILES = f"""
INSERT INTO profiles_profile (
    id, workspace_id, created_at, updated_at, traits, trait_times, group_ids, first_seen,
    last_seen, event_count, event_counts, order_count, revenue, first_order_at, last_order_at,
    engagement_log2, merged_into_id, merged_at, computed)
SELECT id, %s, now(), now(), t, tt, g, fs, ls, ec, ecs, oc, rev, fo, lo, eng, mi, ma,
       '{{}}'::jsonb
FROM ({_STATE_ROWS}) AS r
"""  # noqa: S608 - built from constants

# ids are taken from the sequence first, so each new state knows its id without relying on
# the order of RETURNING rows
_NEXT_PROFILE_IDS = (
    "SELECT nextval(pg_get_serial_sequence('profiles_profile', 'id')) FROM generate_series(1, %s)"
)

_UPDATE_PROFILES = f"""
UPDATE profiles_profile p SET
    updated_at = now(), traits = r.t, trait_times = r.tt, group_ids = r.g,
    first_seen = r.fs, last_seen = r.ls, event_count = r.ec, event_counts = r.ecs,
    order_count = r.oc, revenue = r.rev, first_order_at = r.fo, last_order_at = r.lo,
    engagement_log2 = r.eng, merged_into_id = r.mi, merged_at = r.ma
FROM ({_STATE_ROWS}) AS r
WHERE p.id = r.id
"""  # noqa: S608 - built from constants

_MOVE_IDENTITIES = """
UPDATE profiles_identity i SET profile_id = m.w
FROM unnest(%b::bigint[], %b::bigint[]) AS m(l, w) WHERE i.profile_id = m.l
"""

_MOVE_PROFILE_EVENTS = """
UPDATE profiles_profileevent e SET profile_id = m.w
FROM unnest(%b::bigint[], %b::bigint[]) AS m(l, w) WHERE e.profile_id = m.l
"""

_INSERT_IDENTITIES = f"""
INSERT INTO profiles_identity (
    workspace_id, profile_id, origin_profile_id, type, value, first_seen, first_event_id)
SELECT %s, p, o, t, v, fs, e
FROM ({
    json_rows_select(
        [
            ("p", "bigint"),
            ("o", "bigint"),
            ("t", "text"),
            ("v", "text"),
            ("fs", "timestamptz"),
            ("e", "bigint"),
        ]
    )
}) AS r
ON CONFLICT (workspace_id, type, value) DO NOTHING
RETURNING id, type, value
"""  # noqa: S608 - built from constants

_LINK_ROWS = json_rows_select(
    [("a", "bigint"), ("b", "bigint"), ("e", "bigint"), ("fs", "timestamptz")]
)
_INSERT_LINKS = f"""
INSERT INTO profiles_identitylink (workspace_id, a_id, b_id, first_event_id, first_seen)
SELECT %s, a, b, e, fs
FROM ({_LINK_ROWS}) AS r
ON CONFLICT (a_id, b_id) DO NOTHING
"""  # noqa: S608 - built from constants

_COPY_PROFILE_EVENTS = (
    "COPY profiles_profileevent "
    '(event_id, workspace_id, profile_id, origin_profile_id, "timestamp", type, event, '
    "properties) FROM STDIN"
)


_MOVE_BLOCKS = """
INSERT INTO profiles_splitblock (workspace_id, profile_a_id, profile_b_id, merge_id, created_at)
SELECT workspace_id, LEAST(%(w)s, other), GREATEST(%(w)s, other), merge_id, created_at
FROM (
    SELECT workspace_id, merge_id, created_at,
           CASE WHEN profile_a_id = %(l)s THEN profile_b_id ELSE profile_a_id END AS other
    FROM profiles_splitblock WHERE profile_a_id = %(l)s OR profile_b_id = %(l)s
) s
WHERE other <> %(w)s
ON CONFLICT (profile_a_id, profile_b_id) DO NOTHING
"""


def move_profile_rows(*, winner_id: int, loser_id: int) -> None:
    """The database side of a merge: identities, event assignments and split blocks move to
    the winner (both rows must be locked by the caller)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE profiles_identity SET profile_id = %s WHERE profile_id = %s",
            [winner_id, loser_id],
        )
        cursor.execute(
            "UPDATE profiles_profileevent SET profile_id = %s WHERE profile_id = %s",
            [winner_id, loser_id],
        )
        cursor.execute(_MOVE_BLOCKS, {"w": winner_id, "l": loser_id})


def _state_columns(s: ProfileState) -> tuple[Any, ...]:
    # the direct winner, not the root: a split walks this tree to find what to restore
    forward = s.forward.id if s.forward is not None else None
    return (
        s.id,
        s.traits,
        s.trait_times,
        s.group_ids,
        s.first_seen,
        s.last_seen,
        s.event_count,
        s.event_counts,
        s.order_count,
        s.revenue,
        s.first_order_at,
        s.last_order_at,
        s.engagement_log2,
        forward,
        s.merged_at,
    )


def update_profiles(states: list[ProfileState]) -> None:
    """Write working copies back (traits, aggregates, merge pointers), one statement."""
    with server_cursor() as cursor:
        cursor.execute(_UPDATE_PROFILES, [json_rows(_state_columns(s) for s in states)])


def _properties_copy(event: Event) -> str:
    if event.type != "track":
        return "{}"
    raw = getattr(event, "properties_json", None)
    return raw if isinstance(raw, str) else orjson.dumps(event.properties or {}).decode()


def event_name(event: Event) -> str:
    if event.type == "track":
        return event.event or ""
    if event.type in ("page", "screen"):
        return event.name or ""
    return ""


@dataclass(slots=True)
class _PendingIdentity:
    key: Key
    state: ProfileState  # the profile it was attached to (its root at flush time)
    origin: ProfileState
    first_seen: datetime
    event_id: int


@dataclass(slots=True)
class _PendingMerge:
    winner: ProfileState  # the direct winner (not necessarily the final root)
    loser: ProfileState
    event: Event
    key: Key
    rule: str
    snapshot: dict[str, Any]


@dataclass(slots=True)
class _PendingConflict:
    state: ProfileState
    other: ProfileState | None
    event: Event
    key: Key
    reason: str
    detail: dict[str, Any]


def _all_keys(ids: EventIds) -> list[Key]:
    keys = list(ids.keys)
    if ids.previous_id:
        keys += [
            (identifiers.USER_ID, ids.previous_id),
            (identifiers.ANONYMOUS_ID, ids.previous_id),
        ]
    return keys


class BatchResolver:
    def __init__(
        self,
        workspace_id: int,
        events: Sequence[Event],
        *,
        may_defer: bool = False,
        overdue: frozenset[int] | set[int] = frozenset(),
    ) -> None:
        self.workspace_id = workspace_id
        self.events = events
        # profiles another worker holds are skipped, not waited for: the events that need
        # them (with every event of the batch sharing an identifier with those) are deferred
        self.may_defer = may_defer
        self.overdue = overdue  # events deferred too long already: their batch must wait
        self.busy: set[int] = set()
        self.rules: Rules = load_rules(workspace_id)
        self.now = timezone.now()
        self.owner: dict[Key, ProfileState] = {}  # identifier -> profile (follow .root())
        self.identity_ids: dict[Key, int] = {}
        self.preexisting_owner: dict[Key, int] = {}
        self.states: dict[int, ProfileState] = {}  # real id -> state loaded or created
        self.new_states: list[ProfileState] = []
        self.blocks: set[frozenset[int]] = set()
        self.pending_identities: list[_PendingIdentity] = []
        self.pending_links: dict[tuple[Key, Key], tuple[int, datetime]] = {}
        self.assignments: list[tuple[Event, ProfileState, ProfileState]] = []
        self.conflicts: list[_PendingConflict] = []
        self.merges: list[_PendingMerge] = []
        self.moved: list[ProfileState] = []  # merged losers that had rows before this batch
        self.result = Resolution()

    # ---- reading and locking ------------------------------------------------------------

    def _lookup(self, keys: list[Key]) -> dict[Key, tuple[int, int]]:
        if not keys:
            return {}
        with server_cursor() as cursor:
            cursor.execute(_LOOKUP, [json_rows(keys), self.workspace_id])
            return {(t, v): (iid, pid) for iid, t, v, pid in cursor.fetchall()}

    def _load(self, keys: list[Key]) -> dict[Key, tuple[int, int]]:
        """Look up the batch's identifiers and lock the profiles they point at. Another worker
        may move or create some of them between the look-up and the lock: then the profiles
        that appeared are locked too (without waiting, so lock order cannot deadlock) and the
        look-up repeated, a few rounds before giving up with IdentityRace."""
        found = self._lookup(keys)
        rows: dict[int, Any] = {}
        for round_ in range(LOCK_ROUNDS):
            wanted = sorted({pid for _, pid in found.values()} - rows.keys() - self.busy)
            if wanted and self.may_defer:
                got = self._lock_available(wanted)
                self.busy.update(set(wanted) - got.keys())
                rows.update(got)
            elif wanted:
                rows.update(self._lock(wanted, wait=round_ == 0))
            if not found or round_ == 0 and not wanted:
                break
            again = self._lookup(keys)
            if again == found and all(
                not rows[pid][1] for _, pid in found.values() if pid not in self.busy
            ):
                break
            found = again
        else:
            raise IdentityRace("identities kept changing between the look-up and the lock")
        looked_up = found
        if self.busy:
            found = {key: hit for key, hit in found.items() if hit[1] not in self.busy}
        profile_ids = sorted({pid for _, pid in found.values()})
        if profile_ids:
            for pid in profile_ids:
                self.states[pid] = ProfileState.from_locked_row(rows[pid])
            self._load_counts(profile_ids)
            self._load_blocks(profile_ids)
        for key, (iid, pid) in found.items():
            self.owner[key] = self.states[pid]
            self.identity_ids[key] = iid
            self.preexisting_owner[key] = pid
        return looked_up

    def _defer(
        self, parsed: list[tuple[Event, EventIds]], found: dict[Key, tuple[int, int]]
    ) -> list[tuple[Event, EventIds]]:
        """Leave for a later batch every event that reaches a busy profile, directly or through
        identifiers shared with such an event (so one person's events keep their order and
        no merge is decided without the profile it involves); returns the others."""
        parent = list(range(len(parsed)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        first_with: dict[Key, int] = {}
        for index, (_, ids) in enumerate(parsed):
            for key in _all_keys(ids):
                if key in first_with:
                    parent[root(index)] = root(first_with[key])
                else:
                    first_with[key] = index
        blocked = {
            root(index)
            for index, (_, ids) in enumerate(parsed)
            if any(found.get(key, (0, 0))[1] in self.busy for key in _all_keys(ids))
        }
        if self.overdue and any(
            root(index) in blocked and int(event.pk) in self.overdue
            for index, (event, _) in enumerate(parsed)
        ):
            raise IdentityRace("an event was put off too long; its batch waits for the locks")
        kept = []
        for index, item in enumerate(parsed):
            if root(index) in blocked:
                self.result.deferred.append(item[0])
            else:
                kept.append(item)
        return kept

    def _lock_available(self, profile_ids: list[int]) -> dict[int, Any]:
        """Lock what no other transaction holds (SKIP LOCKED); the rest are busy."""
        with server_cursor() as cursor:
            cursor.execute(_LOCK_PROFILES_SKIP, [profile_ids], binary=True)
            return {row[0]: row for row in cursor.fetchall()}

    def _lock(self, profile_ids: list[int], *, wait: bool) -> dict[int, Any]:
        query = _LOCK_PROFILES if wait else _LOCK_PROFILES_NOWAIT
        # NOWAIT can fail: inside a savepoint, so that the failure is an IdentityRace only
        scope = contextlib.nullcontext() if wait else transaction.atomic()
        try:
            with scope, server_cursor() as cursor:
                cursor.execute(query, [profile_ids], binary=True)
                rows = {row[0]: row for row in cursor.fetchall()}
        except (OperationalError, psycopg.errors.LockNotAvailable) as exc:
            # raw psycopg cursors raise psycopg's error, Django's cursors wrap it
            if isinstance(exc, psycopg.errors.LockNotAvailable) or isinstance(
                exc.__cause__, psycopg.errors.LockNotAvailable
            ):
                raise IdentityRace("a profile is locked by another worker") from exc
            raise
        if len(rows) != len(profile_ids):
            raise IdentityRace("a profile disappeared after the look-up")
        return rows

    def _load_counts(self, profile_ids: list[int]) -> None:
        limited = self.rules.limited_types
        if not limited:
            return
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT profile_id, type, count(*) FROM profiles_identity "
                "WHERE profile_id = ANY(%s) AND type = ANY(%s) GROUP BY 1, 2",
                [profile_ids, limited],
            )
            for pid, kind, count in cursor.fetchall():
                self.states[pid].counts[kind] = count

    def _load_blocks(self, profile_ids: list[int]) -> None:
        with connection.cursor() as cursor:
            # most workspaces never split a merge: one cheap probe instead of an array scan
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM profiles_splitblock WHERE workspace_id = %s)",
                [self.workspace_id],
            )
            row = cursor.fetchone()
            if not row or not row[0]:
                return
            cursor.execute(
                "SELECT profile_a_id, profile_b_id FROM profiles_splitblock "
                "WHERE profile_a_id = ANY(%s) OR profile_b_id = ANY(%s)",
                [profile_ids, profile_ids],
            )
            self.blocks.update(frozenset(row) for row in cursor.fetchall())

    # ---- resolution ---------------------------------------------------------------------

    def run(self) -> Resolution:
        parsed = [(event, event_ids(event, self.rules)) for event in self.events]
        keys: set[Key] = set()
        for _, ids in parsed:
            keys.update(_all_keys(ids))
        found = self._load(sorted(keys))
        if self.busy:
            parsed = self._defer(parsed, found)
        for event, ids in parsed:
            self._resolve_event(event, ids)
        self._flush()
        return self.result

    def _owner(self, key: Key) -> ProfileState | None:
        state = self.owner.get(key)
        return state.root() if state is not None else None

    def _keys_of(self, ids: EventIds) -> list[Key]:
        keys = list(ids.keys)
        if ids.previous_id:
            # alias: previousId is the earlier anonymousId, or sometimes an earlier userId
            as_user = (identifiers.USER_ID, ids.previous_id)
            as_anon = (identifiers.ANONYMOUS_ID, ids.previous_id)
            chosen = as_user if as_user in self.owner else as_anon
            if chosen not in keys:
                keys.append(chosen)
                keys.sort(key=lambda key: self.rules.rank(key[0]))
        return keys

    def _fits(self, state: ProfileState | None, pending: list[Key], extra: dict[str, int]) -> bool:
        """Would `state` (None = a new profile) plus the pending identifiers plus `extra`
        stay within every limit?"""
        for kind, limit in self.rules.limits.items():
            held = state.counts.get(kind, 0) if state is not None else 0
            held += sum(1 for k in pending if k[0] == kind) + extra.get(kind, 0)
            if held > limit:
                return False
        return True

    def _resolve_event(self, event: Event, ids: EventIds) -> None:
        keys = self._keys_of(ids)
        if not keys:
            return  # nothing usable (e.g. every identifier is junk): the event stays unlinked
        current: ProfileState | None = None
        pending: list[Key] = []  # new identifiers that go wherever the event goes
        is_alias = bool(ids.previous_id)
        for key in keys:
            owner = self._owner(key)
            if owner is None:
                if self._fits(current, pending, {key[0]: 1}):
                    pending.append(key)
                else:
                    current = current or self._new_state()
                    self._conflict(current, None, event, key, ConflictReason.LIMIT, pending)
            elif current is None and not pending:
                current = owner
            elif current is None:
                # higher-priority new identifiers meet a known profile: join it if allowed
                if self._fits(owner, pending, {}):
                    current = owner
                else:
                    current = self._new_state()
                    self._conflict(current, owner, event, key, ConflictReason.LIMIT, pending)
            elif owner is not current:
                current = self._try_merge(current, owner, event, key, pending, is_alias)
        if current is None:
            current = self._new_state()
        for key in pending:
            self._attach(key, current, event)
        self._link(keys, event)
        current.apply_event(event, self.rules)
        self.assignments.append((event, current, current))

    def _new_state(self) -> ProfileState:
        state = ProfileState(seq=len(self.new_states))
        state.dirty = True
        self.new_states.append(state)
        return state

    def _attach(self, key: Key, state: ProfileState, event: Event) -> None:
        self.owner[key] = state
        if key[0] in self.rules.limits:
            state.counts[key[0]] = state.counts.get(key[0], 0) + 1
        self.pending_identities.append(
            _PendingIdentity(key, state, state, event.timestamp, event.pk)
        )

    def _link(self, keys: list[Key], event: Event) -> None:
        """Edges of the identity graph: from the event's first identifier to each other one.
        Two identifiers already on one profile before this batch are connected already."""
        head = keys[0]
        for key in keys[1:]:
            before_a = self.preexisting_owner.get(head)
            if before_a is not None and before_a == self.preexisting_owner.get(key):
                continue
            pair = (head, key) if head < key else (key, head)
            self.pending_links.setdefault(pair, (event.pk, event.timestamp))

    def _conflict(
        self,
        state: ProfileState,
        other: ProfileState | None,
        event: Event,
        key: Key,
        reason: str,
        pending: list[Key],
    ) -> None:
        detail: dict[str, Any] = {"limits": self.rules.limits}
        if pending:
            detail["with"] = [{"type": t, "value": v} for t, v in pending]
        self.conflicts.append(_PendingConflict(state, other, event, key, reason, detail))

    def _try_merge(
        self,
        current: ProfileState,
        other: ProfileState,
        event: Event,
        key: Key,
        pending: list[Key],
        is_alias: bool,
    ) -> ProfileState:
        if current.id is not None and other.id is not None:
            if frozenset((current.id, other.id)) in self.blocks:
                self._conflict(current, other, event, key, ConflictReason.SPLIT, pending)
                return current
        if not self._fits(current, pending, other.counts):
            self._conflict(current, other, event, key, ConflictReason.LIMIT, pending)
            return current
        rule = "alias" if is_alias else f"shared_identifier:{key[0]}"
        return self._merge(current, other, event, key, rule)

    def _older(self, a: ProfileState, b: ProfileState) -> bool:
        """Is `a` the older profile (the survivor)? Existing profiles beat new ones."""
        if a.id is not None and b.id is not None:
            return a.id < b.id
        if a.id is not None or b.id is not None:
            return a.id is not None
        return a.seq < b.seq

    def _merge(
        self, a: ProfileState, b: ProfileState, event: Event, key: Key, rule: str
    ) -> ProfileState:
        """Merged in memory; the rows move in one statement per batch at flush time."""
        winner, loser = (a, b) if self._older(a, b) else (b, a)
        if loser.id is not None:
            self.moved.append(loser)
            for pair in [p for p in self.blocks if loser.id in p]:
                other_id = next(iter(pair - {loser.id}), None)
                if other_id is not None and other_id != winner.id and winner.id is not None:
                    self.blocks.add(frozenset((winner.id, other_id)))
        snapshot = {"traits": dict(loser.traits), "event_count": loser.event_count}
        winner.absorb(loser, self.rules)
        loser.forward = winner
        loser.merged_at = self.now
        loser.dirty = True
        self.merges.append(_PendingMerge(winner, loser, event, key, rule, snapshot))
        self.result.merges += 1
        return winner

    # ---- writing ------------------------------------------------------------------------

    def _insert_profiles(self, states: list[ProfileState]) -> None:
        with connection.cursor() as cursor:
            cursor.execute(_NEXT_PROFILE_IDS, [len(states)])
            ids = [row[0] for row in cursor.fetchall()]
        for state, pid in zip(states, ids, strict=True):
            state.id = pid
        with server_cursor() as cursor:
            cursor.execute(
                _INSERT_PROFILES,
                [self.workspace_id, json_rows(_state_columns(s) for s in states)],
            )
        for state in states:
            state.dirty = False
        self.result.created += len(states)

    def _flush(self) -> None:
        # new profiles first (those merged away in this batch too: their row is the evidence
        # the merge record points at), with ids from the sequence
        fresh = [s for s in self.new_states if s.id is None]
        if fresh:
            self._insert_profiles(fresh)
        self._flush_moves()
        dirty = [s for s in self.states.values() if s.dirty]
        if dirty:
            update_profiles(dirty)
        self._flush_identities()
        self._flush_links()
        self._flush_assignments()
        self._flush_conflicts()
        self._flush_merges()

    def _flush_moves(self) -> None:
        """Rows of profiles merged away in this batch move to their final survivor."""
        if not self.moved:
            return
        losers = [s.id for s in self.moved]
        roots = [s.root().id for s in self.moved]
        with server_cursor() as cursor:
            cursor.execute(_MOVE_IDENTITIES, [losers, roots])
            cursor.execute(_MOVE_PROFILE_EVENTS, [losers, roots])
        for state in self.moved:
            if any(state.id in pair for pair in self.blocks):
                assert state.id is not None
                root_id = state.root().id
                with connection.cursor() as cursor:
                    cursor.execute(_MOVE_BLOCKS, {"w": root_id, "l": state.id})

    def _flush_merges(self) -> None:
        if not self.merges:
            return
        records = []
        for m in self.merges:
            assert m.winner.id is not None and m.loser.id is not None
            records.append(
                ProfileMerge(
                    workspace_id=self.workspace_id,
                    winner_id=m.winner.id,
                    loser_id=m.loser.id,
                    event_id=m.event.pk,
                    message_id=m.event.message_id,
                    identifiers=[{"type": m.key[0], "value": m.key[1]}],
                    rule=m.rule,
                    detail={"loser": m.snapshot},
                    created_at=self.now,
                )
            )
        ProfileMerge.objects.bulk_create(records)
        self.result.merged.update(pid for m in self.merges if (pid := m.winner.root().id))
        for m in self.merges:
            assert m.winner.id is not None and m.loser.id is not None
            hooks.run_merge_hooks(self.workspace_id, m.winner.id, m.loser.id)

    def _flush_identities(self) -> None:
        if not self.pending_identities:
            return
        # a fixed order: two workers inserting overlapping identifiers wait instead of deadlocking
        rows = sorted(self.pending_identities, key=lambda p: p.key)
        with server_cursor() as cursor:
            cursor.execute(
                _INSERT_IDENTITIES,
                [
                    self.workspace_id,
                    json_rows(
                        (
                            p.state.root().id,
                            p.origin.id,
                            p.key[0],
                            p.key[1],
                            p.first_seen,
                            p.event_id,
                        )
                        for p in rows
                    ),
                ],
            )
            inserted = cursor.fetchall()
        if len(inserted) != len(rows):
            raise IdentityRace("another worker created some of these identifiers first")
        for iid, kind, value in inserted:
            self.identity_ids[(kind, value)] = iid

    def _flush_links(self) -> None:
        links = []
        for (a, b), (event_id, ts) in sorted(self.pending_links.items()):
            ia, ib = self.identity_ids.get(a), self.identity_ids.get(b)
            if ia is None or ib is None or ia == ib:
                continue  # an identifier refused by a limit was never stored
            links.append((min(ia, ib), max(ia, ib), event_id, ts))
        if links:
            with server_cursor() as cursor:
                cursor.execute(_INSERT_LINKS, [self.workspace_id, json_rows(links)])

    def _flush_assignments(self) -> None:
        if not self.assignments:
            return
        rows = []
        for event, state, origin in self.assignments:
            profile_id = state.root().id
            assert profile_id is not None and origin.id is not None
            rows.append(
                (
                    event.pk,
                    self.workspace_id,
                    profile_id,
                    origin.id,
                    event.timestamp,
                    event.type,
                    event_name(event),
                    _properties_copy(event),
                )
            )
            self.result.profile_of[event.pk] = profile_id
            self.result.touched.setdefault(profile_id, []).append(event)
        # COPY, not INSERT … ON CONFLICT: the events' claims are deleted in this transaction,
        # so no event reaches this point twice
        with server_cursor() as cursor, cursor.copy(_COPY_PROFILE_EVENTS) as copy:
            for row in rows:
                copy.write_row(row)

    def _flush_conflicts(self) -> None:
        if not self.conflicts:
            return
        rows = []
        for c in self.conflicts:
            state = c.state.root()
            other = c.other.root() if c.other is not None else None
            assert state.id is not None
            rows.append(
                IdentityConflict(
                    workspace_id=self.workspace_id,
                    profile_id=state.id,
                    other_profile_id=other.id if other is not None else None,
                    event_id=c.event.pk,
                    message_id=c.event.message_id,
                    identifier_type=c.key[0],
                    identifier_value=c.key[1],
                    reason=c.reason,
                    detail=c.detail,
                    created_at=self.now,
                )
            )
        IdentityConflict.objects.bulk_create(rows)
        self.result.conflicts += len(rows)


def resolve(
    events: Sequence[Event],
    *,
    may_defer: bool = False,
    overdue: frozenset[int] | set[int] = frozenset(),
) -> Resolution:
    """The pipeline stage: resolve every event of the batch, workspace by workspace. With
    `may_defer`, events that need a profile another worker holds are returned as deferred
    instead of waiting for it."""
    total = Resolution()
    by_workspace: dict[int, list[Event]] = {}
    for event in events:
        by_workspace.setdefault(event.workspace_id, []).append(event)
    for workspace_id in sorted(by_workspace):
        part = BatchResolver(
            workspace_id, by_workspace[workspace_id], may_defer=may_defer, overdue=overdue
        ).run()
        total.profile_of.update(part.profile_of)
        for pid, evs in part.touched.items():
            total.touched.setdefault(pid, []).extend(evs)
        total.merged |= part.merged
        total.merges += part.merges
        total.conflicts += part.conflicts
        total.created += part.created
        total.deferred += part.deferred
    return total
