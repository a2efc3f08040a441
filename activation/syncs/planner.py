# ruff: noqa: S608 - SQL from constants and placeholders only
"""The audience-sync planner: turns what changed into deliveries, as deltas.

A sync keeps, per profile, what it has sent (`SyncMember.sent_*`) and what the destination
acknowledged (`acked_*`). A run computes each candidate profile's desired state — a live
member of the segment, allowed by consent for the destination's purpose, with at least one
usable identifier: its identifier digests and mapped fields — and writes one delivery per
profile whose desired state differs from what was sent: an upsert with the identifiers
added and removed (and the fields, in mirror mode), or a removal. Nothing differs, nothing
is sent.

- A delta run's candidates are the profiles named since its cursors: membership changes of
  the segment (the segments app's outbox), consent decisions for the purpose, and profiles
  marked dirty by the pipeline stage and the merge/split hooks (traits and identifiers).
- An initial or full run's candidates are every member and every profile the sync holds; a
  full resync compares with the acknowledged state (the destination's truth) for profiles
  with nothing on the way, so it repairs dead letters; a second one finds nothing to do.
  Such a run writes its changes as bulk deliveries, a destination batch per row
  (activation.delivery.bulk), except for profiles with something still on its way to the
  destination: theirs are rows of their own, so they go out after it.

Deliveries and the new sent state are written in one transaction per chunk, with the
cursors advanced in the last one: a run that dies is re-run from its cursors and finds the
chunks already planned unchanged (nothing is sent twice)."""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from activation import connectors
from activation.delivery import bulk
from activation.experiments import bucketing
from activation.models import RunKind, Sync, SyncMember, SyncRun
from activation.syncs import mapping as mappings
from activation.syncs.mapping import json_object
from cdp.paths import path_keys
from consent.enforcement import consent_sql

logger = logging.getLogger(__name__)

PLAN_LOCK_NAMESPACE = 7402
CHUNK = 5_000


@dataclass(slots=True)
class Counts:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped_consent: int = 0
    skipped_no_identifier: int = 0
    skipped_holdout: int = 0
    deliveries: int = 0
    destinations: set[int] = field(default_factory=set)

    def add(self, other: Counts) -> None:
        """Another part's counts (a planner thread's chunk) added to these."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            setattr(self, f.name, mine | theirs if isinstance(mine, set) else mine + theirs)


HOLDOUT = "holdout"  # the holdout experiment's control: members not sent

# the chunk's profiles: alive, member, allowed for the purpose (consent.enforcement's SQL
# form), the mapping's identifier types, and the traits when the mapping sends fields. Each
# is a look-up by key per id (scalar subqueries), whatever the planner estimates: a join
# could be planned as a scan of the whole profiles table for 5,000 ids.
_PROFILES = """
SELECT c.id,
       COALESCE((SELECT p.merged_into_id IS NULL FROM profiles_profile p
                 WHERE p.id = c.id AND p.workspace_id = %(ws)s), false) AS live,
       CASE WHEN %(traits)s THEN (SELECT (p.computed - '_updated') || p.traits
                                   FROM profiles_profile p WHERE p.id = c.id) END,
       %(members)s OR COALESCE((SELECT true FROM segments_membership m
                 WHERE m.segment_id = %(segment)s AND m.profile_id = c.id
                 AND m.exited_at IS NULL LIMIT 1), false) AS member,
       ARRAY(SELECT i.type || chr(9) || i.value FROM profiles_identity i
             WHERE i.profile_id = c.id AND i.type = ANY(%(types)s) ORDER BY i.id) AS identities,
       {consent} AS allowed
FROM unnest(%(ids)s::bigint[]) AS c(id)
"""

# joined with the chunk's ids (not `= ANY(array)`, which a plan with stale statistics turns
# into a scan comparing every row with every id)
_MEMBERS = """
SELECT m.profile_id, m.sent_identifiers, m.sent_fields_hash, m.acked_identifiers,
       m.acked_fields_hash
FROM unnest(%(ids)s::bigint[]) AS c(id)
JOIN activation_syncmember m ON m.sync_id = %(sync)s AND m.profile_id = c.id
"""

_COPY_DELIVERIES = (
    "COPY activation_delivery (workspace_id, destination_id, kind, key, profile_id, "
    "profile_ids, sync_id, run_id, payload, status, attempts, created_at, next_attempt_at, "
    "reason, error) FROM STDIN"
)

# what was sent, per profile: copied into a temporary table, then upserted in one statement
_STAGE_MEMBERS = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS activation_plan_members (profile_id bigint, "
    "sent text[], fields_hash text) ON COMMIT DELETE ROWS"
)
_UPSERT_MEMBERS = """
INSERT INTO activation_syncmember (sync_id, profile_id, sent_identifiers, sent_fields_hash,
    acked_identifiers, acked_fields_hash, updated_at)
SELECT %(sync)s, r.profile_id, r.sent, r.fields_hash, '{}', '', now()
FROM activation_plan_members r
ON CONFLICT (sync_id, profile_id) DO UPDATE
SET sent_identifiers = EXCLUDED.sent_identifiers, sent_fields_hash = EXCLUDED.sent_fields_hash,
    updated_at = now()
"""


def plan(sync_id: int, *, kind: str = RunKind.DELTA) -> SyncRun | None:
    """Plan one run of a sync. Returns the run (None when another run of the sync is being
    planned right now, or when a delta found nothing to look at)."""
    sync = (
        Sync.objects.select_related("destination", "segment", "holdout_experiment")
        .filter(pk=sync_id)
        .first()
    )
    if sync is None or not sync.enabled:
        return None
    if not sync.initialised and kind == RunKind.DELTA:
        kind = RunKind.INITIAL
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [PLAN_LOCK_NAMESPACE, sync_id])
        if not cursor.fetchone()[0]:
            return None
    try:
        sync.refresh_from_db()
        return _plan_locked(sync, kind)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [PLAN_LOCK_NAMESPACE, sync_id])


def _plan_locked(sync: Sync, kind: str) -> SyncRun | None:
    from activation import tasks  # tasks import the planner

    connector = connectors.get(sync.destination.kind)
    rule = mappings.parse(sync.mapping, connector)
    cursors = _cursor_heads(sync)
    counts = Counts()
    run: SyncRun | None = None
    if kind == RunKind.DELTA:
        candidates = _delta_candidates(sync, cursors)
        if not candidates:
            _advance(sync, cursors, kind)
            return None
        run = SyncRun.objects.create(sync=sync, kind=kind)
        with transaction.atomic():
            _plan_chunk(sync, rule, connector, candidates, run, counts, repair=False)
            _advance(sync, cursors, kind)
    else:
        run = SyncRun.objects.create(sync=sync, kind=kind)
        # nothing sent yet (a first run that was not interrupted): the chunks' members, each
        # met once, have no state to read and none to update
        fresh = not SyncMember.objects.filter(sync=sync).exists()
        batch = max(1, min(sync.destination.batch_size, connector.max_batch, bulk.ITEM_SPAN))
        # nothing on its way to the destination: no member of the run can have something
        # (the run's own bulk rows carry other members)
        quiet = bulk.destination_quiet(sync.destination_id)
        destination_id = sync.destination_id
        kicked = False
        planners = settings.CDP_SYNC_PLANNERS
        if (
            planners > 1
            and fresh
            and quiet
            and batch
            and not connection.in_atomic_block  # the caller's data must be visible to all
            and set_based(sync, rule, connector)
        ):
            _plan_in_parallel(
                sync,
                rule,
                connector,
                run,
                counts,
                planners=planners,
                repair=kind == RunKind.FULL,
                batch=batch,
            )
        else:
            for n, (chunk, members) in enumerate(_all_candidates(sync)):
                with transaction.atomic():
                    _plan_chunk(
                        sync,
                        rule,
                        connector,
                        chunk,
                        run,
                        counts,
                        repair=kind == RunKind.FULL,
                        fresh=fresh,
                        batch=batch,
                        quiet=quiet,
                        members=members,
                    )
                    if counts.deliveries:
                        # senders start on the first chunk while it plans on (all of the
                        # destination's slots); one more per chunk, for a sender that found
                        # the queue empty and ended before this chunk landed
                        slots = 1 if kicked else sync.destination.concurrency
                        transaction.on_commit(partial(tasks.kick, destination_id, slots=slots))
                        kicked = True
                if n in (1, 20):  # the tables grew a lot: plans need their new size
                    _analyze()
        with transaction.atomic():
            _advance(sync, cursors, kind)
    SyncRun.objects.filter(pk=run.pk).update(
        finished_at=timezone.now(),
        added=counts.added,
        updated=counts.updated,
        removed=counts.removed,
        unchanged=counts.unchanged,
        skipped_consent=counts.skipped_consent,
        skipped_no_identifier=counts.skipped_no_identifier,
        skipped_holdout=counts.skipped_holdout,
    )
    run.refresh_from_db()
    if counts.deliveries:
        # planning is over: every slot a sender left while the queue was briefly empty is
        # taken again for what remains (a task finding no free slot ends at once)
        destination_id, slots = sync.destination_id, max(1, sync.destination.concurrency)
        transaction.on_commit(lambda: tasks.kick(destination_id, slots=slots))
    return run


def _plan_in_parallel(
    sync: Sync,
    rule: mappings.Mapping,
    connector: Any,
    run: SyncRun,
    counts: Counts,
    *,
    planners: int,
    repair: bool,
    batch: int,
) -> None:
    """A set-based first run, its chunks planned by `planners` threads, each on its own
    database connection: while Postgres runs one chunk's statement, another's runs on the
    other core. Each chunk is still its own transaction (what sequential planning does), the
    cursors still move after the last one, so a crash is recovered the same way."""
    from activation import tasks  # tasks import the planner

    todo: queue.Queue[tuple[list[int], bool] | None] = queue.Queue(maxsize=planners)
    lock = threading.Lock()
    failures: list[BaseException] = []
    first = threading.Event()
    destination_id = sync.destination_id

    def work() -> None:
        try:
            while (job := todo.get()) is not None:
                if failures:
                    continue  # drained, not planned: the run fails below
                chunk, members = job
                local = Counts()
                try:
                    with transaction.atomic():
                        _plan_chunk(
                            sync,
                            rule,
                            connector,
                            chunk,
                            run,
                            local,
                            repair=repair,
                            fresh=True,
                            batch=batch,
                            quiet=True,
                            members=members,
                        )
                        if local.deliveries:
                            slots = 1 if first.is_set() else sync.destination.concurrency
                            first.set()
                            transaction.on_commit(partial(tasks.kick, destination_id, slots=slots))
                except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
                    failures.append(exc)
                    continue
                with lock:
                    counts.add(local)
        finally:
            connection.close()  # the thread's own connection

    threads = [
        threading.Thread(target=work, name=f"sync-{sync.pk}-planner-{n}", daemon=True)
        for n in range(planners)
    ]
    for thread in threads:
        thread.start()
    try:
        for n, job in enumerate(_all_candidates(sync)):
            if failures:
                break
            todo.put(job)
            if n in (2, 20):  # the tables grew a lot: plans need their new size
                _analyze()
    finally:
        for _ in threads:
            todo.put(None)
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]


def _analyze() -> None:
    """Refresh the statistics of the tables a large run fills (autovacuum may be off, or
    late): the delivery claims and the next chunks are planned with their real size."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE activation_syncmember, activation_delivery")


def _cursor_heads(sync: Sync) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(max(id), 0) FROM segments_membershipchange WHERE workspace_id = %s",
            [sync.workspace_id],
        )
        change = cursor.fetchone()[0]
        cursor.execute(
            "SELECT COALESCE(max(id), 0) FROM consent_consentrecord WHERE workspace_id = %s",
            [sync.workspace_id],
        )
        consent = cursor.fetchone()[0]
        cursor.execute(
            "SELECT COALESCE(max(id), 0) FROM activation_syncdirty WHERE sync_id = %s", [sync.pk]
        )
        dirty = cursor.fetchone()[0]
    return {"change": change, "consent": consent, "dirty": dirty}


def _delta_candidates(sync: Sync, heads: dict[str, Any]) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT profile_id FROM segments_membershipchange "
            "WHERE workspace_id = %s AND segment_id = %s AND id > %s AND id <= %s",
            [sync.workspace_id, sync.segment_id, sync.change_cursor, heads["change"]],
        )
        ids = {r[0] for r in cursor.fetchall()}
        cursor.execute(
            "SELECT DISTINCT r.profile_id FROM consent_consentrecord r "
            "WHERE r.workspace_id = %s AND r.purpose = %s AND r.id > %s AND r.id <= %s",
            [sync.workspace_id, sync.destination.purpose, sync.consent_cursor, heads["consent"]],
        )
        ids |= {r[0] for r in cursor.fetchall()}
        cursor.execute(
            "SELECT profile_id FROM activation_syncdirty WHERE sync_id = %s AND id <= %s",
            [sync.pk, heads["dirty"]],
        )
        ids |= {r[0] for r in cursor.fetchall()}
    return sorted(ids)


def _all_candidates(sync: Sync) -> Iterator[tuple[list[int], bool]]:
    """Every current member, then every profile the sync holds that is not one, in chunks
    (each with whether it was read as members)."""
    last = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT profile_id FROM segments_membership WHERE segment_id = %s "
                "AND exited_at IS NULL AND profile_id > %s ORDER BY profile_id LIMIT %s",
                [sync.segment_id, last, CHUNK],
            )
            chunk = [r[0] for r in cursor.fetchall()]
        if not chunk:
            break
        last = chunk[-1]
        yield chunk, True
    last = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT s.profile_id FROM activation_syncmember s WHERE s.sync_id = %s "
                "AND s.profile_id > %s AND NOT EXISTS (SELECT 1 FROM segments_membership m "
                "WHERE m.segment_id = %s AND m.profile_id = s.profile_id AND m.exited_at IS NULL)"
                " ORDER BY s.profile_id LIMIT %s",
                [sync.pk, last, sync.segment_id, CHUNK],
            )
            chunk = [r[0] for r in cursor.fetchall()]
        if not chunk:
            break
        last = chunk[-1]
        yield chunk, False


def _advance(sync: Sync, heads: dict[str, Any], kind: str) -> None:
    now = timezone.now()
    updates: dict[str, Any] = {
        "change_cursor": heads["change"],
        "consent_cursor": heads["consent"],
        "last_run_at": now,
        "updated_at": now,
    }
    if kind != RunKind.DELTA:
        updates["initialised"] = True
        updates["resync_requested"] = False
    Sync.objects.filter(pk=sync.pk).update(**updates)
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM activation_syncdirty WHERE sync_id = %s AND id <= %s",
            [sync.pk, heads["dirty"]],
        )


def _plan_chunk(
    sync: Sync,
    rule: mappings.Mapping,
    connector: Any,
    ids: list[int],
    run: SyncRun,
    counts: Counts,
    *,
    repair: bool,
    fresh: bool = False,
    batch: int = 0,
    quiet: bool = False,
    members: bool = False,
) -> None:
    for start in range(0, len(ids), CHUNK):
        _plan_ids(
            sync,
            rule,
            connector,
            ids[start : start + CHUNK],
            run,
            counts,
            repair=repair,
            fresh=fresh,
            batch=batch,
            quiet=quiet,
            members=members,
        )


def _holdout(sync: Sync, profile_ids: list[int]) -> set[int]:
    """The members the sync's running holdout withholds. Each member's side is its first
    exposure to the holdout experiment (recorded here, when the planner first meets it as a
    sendable member), so it never changes; the experiment's results compare the two sides."""
    experiment = sync.holdout_experiment
    if experiment is None or experiment.status != "running" or not profile_ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT profile_id, variant FROM activation_exposure "
            "WHERE experiment_id = %s AND profile_id = ANY(%s)",
            [experiment.pk, profile_ids],
        )
        sides = dict(cursor.fetchall())
        new = [p for p in profile_ids if p not in sides]
        if new:
            keys = experiment.variant_keys
            for profile_id in new:
                index = bucketing.choose_variant(experiment.seed, str(profile_id),
                                                 experiment.weights)  # fmt: skip
                sides[profile_id] = keys[index if index is not None else -1]
            cursor.execute(
                "INSERT INTO activation_exposure (experiment_id, workspace_id, profile_id, "
                "variant, exposed_at) SELECT %s, %s, u.p, u.v, now() "
                "FROM unnest(%s::bigint[], %s::text[]) AS u(p, v) "
                "ON CONFLICT (experiment_id, profile_id) DO NOTHING",
                [experiment.pk, sync.workspace_id, new, [sides[p] for p in new]],
            )
    return {p for p, side in sides.items() if side == HOLDOUT}


def _binder(params: dict[str, Any]) -> Callable[[object], str]:
    """Binds a value into `params` and returns its placeholder."""

    def bind(value: object) -> str:
        name = f"c{len(params)}"
        params[name] = value
        return f"%({name})s"

    return bind


def _consent(sync: Sync, bind: Callable[[object], str]) -> str:
    """consent.enforcement's predicate for the destination's purpose, over `c.id`."""
    return consent_sql(
        profile_column="c.id",
        workspace_id=sync.workspace_id,
        purpose=sync.destination.purpose,
        param=bind,
    )


def _profiles_sql(sync: Sync, params: dict[str, Any]) -> str:
    return _PROFILES.replace("{consent}", _consent(sync, _binder(params)))


def _plan_ids(
    sync: Sync,
    rule: mappings.Mapping,
    connector: Any,
    ids: list[int],
    run: SyncRun,
    counts: Counts,
    *,
    repair: bool,
    fresh: bool = False,
    batch: int = 0,
    quiet: bool = False,
    members: bool = False,
) -> None:
    """Plan a chunk. `batch` > 0: changes go into bulk rows of that many items, except for
    profiles with something on its way to the destination (none when `quiet`). `members`:
    the ids were just read as the segment's members (not looked up again)."""
    if fresh and batch and quiet and members and set_based(sync, rule, connector):
        ids = _plan_fresh_sql(sync, rule, connector, ids, run, counts, batch=batch)
        if not ids:
            return
        # the few the statement left to Python (identifiers beyond printable ASCII)
    params: dict[str, Any] = {
        "ids": ids,
        "segment": sync.segment_id,
        "ws": sync.workspace_id,
        "traits": bool(rule.fields),
        "types": sorted({r.type for r in rule.identifiers}),
        "members": members,
    }
    with connection.cursor() as cursor:
        # index look-ups only: compiling the query (JIT) would cost more than running it.
        # The chunk's commit need not wait for its WAL flush: a crash can only lose the last
        # transactions, in order, and the run's cursors move in the last one — a lost chunk
        # is planned again by the next run
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute(_profiles_sql(sync, params), params)
        profiles = cursor.fetchall()
        held = {}
        if not fresh:
            cursor.execute(_MEMBERS, {"ids": ids, "sync": sync.pk})
            held = {r[0]: r for r in cursor.fetchall()}
    held_out = _holdout(sync, [r[0] for r in profiles if r[1] and r[3] and r[5]])
    on_the_way = (
        set() if quiet or not (batch or repair) else bulk.open_profiles(sync.destination_id, ids)
    )
    deliveries: list[tuple[str, int, bytes]] = []
    items: list[dict[str, Any]] = []
    states: list[tuple[int, list[str], str]] = []
    audience = {"id": sync.segment_id, "key": sync.segment.key}
    head = {"sync": sync.pk, "audience": audience}
    mirror = sync.mode == "mirror"
    dumps = orjson.dumps

    def send(profile_id: int, change: dict[str, Any]) -> None:
        """Into the chunk's bulk rows, or a row of its own behind what is on its way."""
        if batch and profile_id not in on_the_way:
            change["profile_id"] = profile_id
            items.append(change)
        else:
            deliveries.append((change["op"], profile_id, dumps({**head, **change})))

    for profile_id, live, traits, member, identities, allowed in profiles:
        desired_ids: dict[str, list[str]] = {}
        fields: dict[str, Any] = {}
        if live and member:
            if not allowed:
                counts.skipped_consent += 1
            elif profile_id in held_out:
                counts.skipped_holdout += 1
            else:
                pairs = [tuple(x.split("\t", 1)) for x in identities]
                desired_ids, fields = rule.desired(connector, pairs, json_object(traits))  # type: ignore[arg-type]
                if not desired_ids:
                    counts.skipped_no_identifier += 1
        flat = mappings.flat(desired_ids)
        state = set(flat)
        f_hash = mappings.fields_hash(fields) if mirror else ""
        row = held.get(profile_id)
        if row is None:
            base, base_hash = set(), ""
        elif repair and profile_id not in on_the_way:
            base, base_hash = set(row[3]), row[4]
        else:
            base, base_hash = set(row[1]), row[2]
        if not state:
            if not base:
                continue
            removal = {
                "op": "remove",
                "identifiers": {},
                "added": {},
                "removed": mappings.unflat(base),
                "fields": {},
            }
            send(profile_id, removal)
            states.append((profile_id, [], ""))
            counts.removed += 1
            continue
        added, removed = state - base, base - state
        if not added and not removed and f_hash == base_hash:
            counts.unchanged += 1
            if row is not None and (set(row[1]) != state or row[2] != f_hash):
                # a repair found the destination right: so is our record now
                states.append((profile_id, flat, f_hash))
            continue
        change = {
            "op": "upsert",
            "identifiers": desired_ids,
            "added": desired_ids if not base else mappings.unflat(added),
            "removed": mappings.unflat(removed) if removed else {},
            "fields": fields,
        }
        if f_hash:
            change["fields_hash"] = f_hash
        send(profile_id, change)
        states.append((profile_id, flat, f_hash))
        if base:
            counts.updated += 1
        else:
            counts.added += 1
    bulks = [
        (
            [int(i["profile_id"]) for i in items[at : at + batch]],
            dumps({**head, "items": items[at : at + batch]}),
        )
        for at in range(0, len(items), batch or 1)
    ]
    _write(sync, run, deliveries, states, fresh=fresh, bulks=bulks)
    counts.deliveries += len(deliveries) + len(items)


# -- the set-based path of a first run ---------------------------------------------------
#
# A first run (nothing sent yet, nothing on its way) of a mapping SQL can compute plans each
# chunk in one statement: the members' identifiers normalised and hashed by Postgres, their
# items built and grouped into bulk rows, and what was sent recorded — nothing per member in
# Python. It computes exactly what `_plan_ids` does (a test compares the two on hostile
# data): a profile with an identifier value beyond printable ASCII (where Python's `strip`
# and `lower` differ from Postgres') is left to `_plan_ids`.

_FRESH = """
WITH c AS MATERIALIZED (
    SELECT c.id,
           COALESCE((SELECT p.merged_into_id IS NULL FROM profiles_profile p
                     WHERE p.id = c.id AND p.workspace_id = %(ws)s), false) AS live,
           {consent} AS allowed
    FROM unnest(%(ids)s::bigint[]) AS c(id)
),
v AS MATERIALIZED (
    -- OFFSET 0: a look-up by key per member, never a join planned as a scan
    SELECT c.id, r.name, r.hashed, i.value ~ '^[ -~]*$' AS ascii, {normal} AS normal
    FROM c
    CROSS JOIN LATERAL (SELECT i.type, i.value FROM profiles_identity i
                        WHERE i.profile_id = c.id AND i.type = ANY(%(types)s) OFFSET 0) i
    JOIN unnest(%(rule_types)s::text[], %(rule_names)s::text[], %(rule_hashed)s::boolean[])
         AS r(type, name, hashed) ON r.type = i.type
    WHERE c.live AND c.allowed
),
python AS (SELECT DISTINCT id FROM v WHERE NOT ascii),
nv AS (
    SELECT DISTINCT v.id, v.name,
           CASE WHEN v.hashed THEN encode(sha256(convert_to(v.normal, 'UTF8')), 'hex')
                ELSE v.normal END COLLATE "C" AS value
    FROM v WHERE v.normal IS NOT NULL AND v.id NOT IN (SELECT id FROM python)
),
by_name AS (
    SELECT id, name, json_agg(value ORDER BY value) AS vals FROM nv GROUP BY id, name
),
per AS (SELECT id, json_object_agg(name, vals) AS identifiers FROM by_name GROUP BY id),
flat AS (
    SELECT x.id, array_agg(x.f ORDER BY x.f) AS flat
    FROM (SELECT id, (name || ':' || value) COLLATE "C" AS f FROM nv) x GROUP BY x.id
),
plan AS MATERIALIZED (
    SELECT c.id,
           CASE WHEN NOT c.live THEN 'gone'
                WHEN NOT c.allowed THEN 'consent'
                WHEN c.id IN (SELECT id FROM python) THEN 'python'
                WHEN per.id IS NULL THEN 'no_identifier'
                ELSE 'send' END AS outcome,
           per.identifiers, flat.flat
    FROM c LEFT JOIN per ON per.id = c.id LEFT JOIN flat ON flat.id = c.id
),
sent AS (
    SELECT plan.id, plan.flat, {fields_hash} AS fields_hash,
           -- json (text), not jsonb: the bulk row's payload is parsed once, as a whole
           CASE WHEN {fields_hash} <> ''
                THEN json_build_object('op', 'upsert', 'identifiers', plan.identifiers,
                                       'added', plan.identifiers, 'removed', json_build_object(),
                                       'fields', {fields}, 'profile_id', plan.id,
                                       'fields_hash', {fields_hash})
                ELSE json_build_object('op', 'upsert', 'identifiers', plan.identifiers,
                                       'added', plan.identifiers, 'removed', json_build_object(),
                                       'fields', {fields}, 'profile_id', plan.id) END AS item,
           (row_number() OVER (ORDER BY plan.id) - 1) / %(batch)s AS bulk
    FROM plan {traits_join} {hashes_join}
    WHERE plan.outcome = 'send'
),
members AS (
    INSERT INTO activation_syncmember (sync_id, profile_id, sent_identifiers,
        sent_fields_hash, acked_identifiers, acked_fields_hash, updated_at)
    SELECT %(sync)s, sent.id, sent.flat, sent.fields_hash, '{{}}', '', now() FROM sent
),
bulks AS (
    INSERT INTO activation_delivery (workspace_id, destination_id, kind, key, profile_id,
        profile_ids, sync_id, run_id, payload, status, attempts, created_at, next_attempt_at,
        reason, error)
    SELECT %(ws)s, %(destination)s, 'bulk', gen_random_uuid(), NULL,
           array_agg(sent.id ORDER BY sent.id), %(sync)s, %(run)s,
           (%(head)s || string_agg(sent.item::text, ',' ORDER BY sent.id) || ']}}')::jsonb,
           'pending', 0, now(), now(), '', ''
    FROM sent GROUP BY sent.bulk
)
SELECT outcome, count(*), CASE WHEN outcome = 'python' THEN array_agg(id ORDER BY id) END
FROM plan GROUP BY outcome
"""


# mirror mode with fields: the fields' hash (`mappings.fields_hash`, over orjson's bytes) is
# computed in Python from the fields Postgres builds, and joined in from this table
_STAGE_HASHES = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS activation_plan_hashes (profile_id bigint PRIMARY "
    "KEY, fields_hash text) ON COMMIT DELETE ROWS"
)
_FIELDS = """
SELECT c.id, {fields}
FROM unnest(%(ids)s::bigint[]) AS c(id)
CROSS JOIN LATERAL (SELECT (p.computed - '_updated') || p.traits AS traits
                    FROM profiles_profile p WHERE p.id = c.id OFFSET 0) t
"""


def set_based(sync: Sync, rule: mappings.Mapping, connector: Any) -> bool:
    """Whether a first run of this sync can be planned by `_FRESH`: every identifier type
    normalised in SQL by its connector, no running holdout (its sides are drawn in
    Python)."""
    experiment = sync.holdout_experiment
    if experiment is not None and experiment.status == "running":
        return False
    return all(connector.normalise_sql(r.type, "x") is not None for r in rule.identifiers)


def _fields_sql(rule: mappings.Mapping, bind: Any) -> str:
    """The mapped fields as a jsonb expression over `t.traits` (`Mapping.desired`: a trait
    path read as Postgres' `#>` reads it, left out when missing or JSON null)."""
    parts = []
    for f in rule.fields:
        if f.trait is not None:
            value = f"(t.traits #> {bind(list(path_keys(f.trait)))}::text[])"
            parts.append(
                f"CASE WHEN jsonb_typeof({value}) IS DISTINCT FROM 'null' AND {value} IS NOT "
                f"NULL THEN jsonb_build_object({bind(f.name)}::text, {value}) "
                "ELSE '{}'::jsonb END"
            )
        else:
            constant = orjson.dumps(f.constant).decode()
            parts.append(f"jsonb_build_object({bind(f.name)}::text, {bind(constant)}::jsonb)")
    return " || ".join(parts) or "'{}'::jsonb"


def _plan_fresh_sql(
    sync: Sync,
    rule: mappings.Mapping,
    connector: Any,
    ids: list[int],
    run: SyncRun,
    counts: Counts,
    *,
    batch: int,
) -> list[int]:
    """Plan a chunk of a first run's members in one statement; returns the ids it left to
    `_plan_ids`."""
    params: dict[str, Any] = {
        "ids": ids,
        "ws": sync.workspace_id,
        "sync": sync.pk,
        "run": run.pk,
        "destination": sync.destination_id,
        "batch": batch,
        "types": sorted({r.type for r in rule.identifiers}),
        "rule_types": [r.type for r in rule.identifiers],
        "rule_names": [r.name for r in rule.identifiers],
        "rule_hashed": [r.hashed for r in rule.identifiers],
        # the payload's head, its items appended as text: {"sync": …, "audience": …, "items": [
        "head": orjson.dumps(
            {"sync": sync.pk, "audience": {"id": sync.segment_id, "key": sync.segment.key}}
        ).decode()[:-1]
        + ',"items":[',
    }

    bind = _binder(params)
    consent = _consent(sync, bind)
    normal = " ".join(
        f"WHEN {bind(kind)} THEN {connector.normalise_sql(kind, 'i.value')}"
        for kind in params["types"]
    )
    traits_join = (
        "CROSS JOIN LATERAL (SELECT (p.computed - '_updated') || p.traits AS traits "
        "FROM profiles_profile p WHERE p.id = plan.id OFFSET 0) t"
        if any(f.trait is not None for f in rule.fields)
        else ""
    )
    fields = _fields_sql(rule, bind)
    hashed = sync.mode == "mirror" and bool(rule.fields)
    sql = _FRESH.format(
        consent=consent,
        normal=f"CASE i.type {normal} END",
        fields=fields,
        traits_join=traits_join,
        fields_hash="COALESCE(h.fields_hash, '')" if hashed else "''",
        hashes_join=(
            "LEFT JOIN activation_plan_hashes h ON h.profile_id = plan.id" if hashed else ""
        ),
    )
    left: list[int] = []
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL synchronous_commit = off")
        if hashed:
            _stage_hashes(cursor, _FIELDS.format(fields=fields), params)
        cursor.execute(sql, params)
        for outcome, n, python_ids in cursor.fetchall():
            if outcome == "send":
                counts.added += n
                counts.deliveries += n
            elif outcome == "consent":
                counts.skipped_consent += n
            elif outcome == "no_identifier":
                counts.skipped_no_identifier += n
            elif outcome == "python":
                left = list(python_ids)
    return left


def _stage_hashes(cursor: Any, sql: str, params: dict[str, Any]) -> None:
    """The chunk's fields hashes, as `_plan_ids` computes them, into activation_plan_hashes
    (one row per profile whose fields are not empty)."""
    cursor.execute(sql, params)
    loads, digest = orjson.loads, mappings.fields_hash
    lines = []
    for profile_id, mapped in cursor.fetchall():
        value = digest(loads(mapped) if isinstance(mapped, str | bytes) else mapped)
        if value:
            lines.append(f"{profile_id}\t{value}\n")
    cursor.execute(_STAGE_HASHES)
    with cursor.cursor.copy(
        "COPY activation_plan_hashes (profile_id, fields_hash) FROM STDIN"
    ) as copy:
        copy.write("".join(lines))


def _copy_text(value: str) -> str:
    """A value in COPY's text format (backslash, tab and line breaks escaped)."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _text_array(values: list[str]) -> str:
    """A text[] literal: every element quoted (digests, ids and e-mails need no more)."""
    quoted = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{v}"' for v in quoted) + "}"


def _write(
    sync: Sync,
    run: SyncRun,
    deliveries: list[tuple[str, int, bytes]],
    states: list[tuple[int, list[str], str]],
    *,
    fresh: bool = False,
    bulks: list[tuple[list[int], bytes]] | None = None,
) -> None:
    """COPY the chunk's deliveries and what was sent, each as one block of COPY text (the
    bulk path of Postgres; rows written one by one through the driver cost more than the
    rest of the planning)."""
    bulks = bulks or []
    if not deliveries and not states and not bulks:
        return
    now = timezone.now().isoformat()
    with connection.cursor() as cursor:
        raw = cursor.cursor
        if states and fresh:  # no member of the chunk has a row yet
            member_tail = f"\t{{}}\t\t{now}\n"
            lines = "".join(
                f"{sync.pk}\t{profile_id}\t{_copy_text(_text_array(sent))}\t{f_hash}{member_tail}"
                for profile_id, sent, f_hash in states
            )
            with raw.copy(
                "COPY activation_syncmember (sync_id, profile_id, sent_identifiers, "
                "sent_fields_hash, acked_identifiers, acked_fields_hash, updated_at) "
                "FROM STDIN"
            ) as copy:
                copy.write(lines)
        elif states:
            lines = "".join(
                f"{profile_id}\t{_copy_text(_text_array(sent))}\t{f_hash}\n"
                for profile_id, sent, f_hash in states
            )
            cursor.execute(_STAGE_MEMBERS)
            with raw.copy(
                "COPY activation_plan_members (profile_id, sent, fields_hash) FROM STDIN"
            ) as copy:
                copy.write(lines)
            cursor.execute(_UPSERT_MEMBERS, {"sync": sync.pk})
            cursor.execute("TRUNCATE activation_plan_members")
        if deliveries or bulks:
            head = f"{sync.workspace_id}\t{sync.destination_id}\t"
            tail = f"\t{sync.pk}\t{run.pk}\t"
            rest = f"\tpending\t0\t{now}\t{now}\t\t\n"
            # bulk rows first: a profile is in one or the other, never both
            data = "".join(
                f"{head}bulk\t{uuid.uuid4()}\t\\N\t{{{','.join(map(str, members))}}}{tail}"
                f"{_copy_text(payload.decode())}{rest}"
                for members, payload in bulks
            ) + "".join(
                f"{head}{kind}\t{uuid.uuid4()}\t{profile_id}\t\\N{tail}"
                f"{_copy_text(payload.decode())}{rest}"
                for kind, profile_id, payload in deliveries
            )
            with raw.copy(_COPY_DELIVERIES) as copy:
                copy.write(data)
