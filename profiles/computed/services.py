"""Computed traits: definitions (create / update / delete with validation), and the writes of
their values into Profile.computed: per pipeline batch (incremental), full refresh (backfill),
window expiry, and the scheduled built-ins (RFM, average order value, engagement score).

Every value write is one set-based statement per trait over a set of profiles (see sql.py).
Outside the pipeline, writes go in chunks of profiles, each chunk in its own transaction that
first locks its profile rows in id order (as identity resolution does): so a long backfill
never holds the whole workspace, and a value computed from a snapshot can never overwrite a
fresher one written by a concurrent pipeline batch (the batch holds those rows until it
commits, and the chunk's statement starts after that)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.db import IntegrityError, transaction
from django.utils import timezone

from cdp.db import server_cursor
from cdp.errors import NON_FIELD, ValidationFailed, duplicate
from cdp.models import Workspace, audit
from cdp.paths import PathError, split_path
from profiles.computed import builtin, hooks
from profiles.computed import sql as trait_sql
from profiles.computed.selectors import profile_computed_traits as profile_computed_traits
from profiles.computed.sql import Query, update_query, window_leavers_query
from profiles.identity import profile_state
from profiles.identity.resolve import Resolution, lock_workspaces
from profiles.models import Aggregation, ComputedTrait
from profiles.pipeline.rows import EventLike

REFRESH_CHUNK = 5000  # profiles per statement / transaction outside the pipeline
# a trait created or redefined this long ago and still never refreshed lost its backfill task
BACKFILL_GRACE = timedelta(minutes=10)

KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
FIELDS = ("key", "name", "description", "aggregation", "event", "property", "where", "window_days")
# changing one of these changes the values: the trait is backfilled again
DEFINITION_FIELDS = frozenset({"aggregation", "event", "property", "where", "window_days"})
OPS = (
    "eq",
    "neq",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "not_contains",
    "exists",
    "not_exists",
    "in",
)
MAX_FILTERS = 20
MAX_IN_VALUES = 1000
MAX_PATH_SEGMENTS = 16
MAX_WINDOW_DAYS = 3650


# ---- validation ------------------------------------------------------------------------------


def _invalid(path: str, message: str) -> ValidationFailed:
    return ValidationFailed.at(path, message)


def _text(data: Mapping[str, Any], name: str, *, max_length: int) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _invalid(name, "expected a string")
    if len(value) > max_length:
        raise _invalid(name, f"at most {max_length} characters")
    return value


def _check_path(path: str, where: str) -> None:
    if not path:
        raise _invalid(where, "must not be empty")
    if len(path) > 255:
        raise _invalid(where, "at most 255 characters")
    try:
        segments = split_path(path)
    except PathError as exc:
        message = f"{path!r} is not a dotted property path (e.g. 'product.price')"
        raise _invalid(where, message) from exc
    if len(segments) > MAX_PATH_SEGMENTS:
        raise _invalid(where, f"at most {MAX_PATH_SEGMENTS} dotted segments")
    for segment in segments:
        if not segment or segment != segment.strip():
            raise _invalid(where, f"{path!r} is not a dotted property path (e.g. 'product.price')")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | bool) or _is_number(value)


def _clean_filter(item: Any, path: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _invalid(path, 'expected an object {"property": ..., "op": ..., "value": ...}')
    unknown = sorted(set(item) - {"property", "op", "value"})
    if unknown:
        raise _invalid(f"{path}.{unknown[0]}", "unknown field")
    prop = item.get("property")
    if not isinstance(prop, str):
        raise _invalid(f"{path}.property", "expected a dotted property path")
    _check_path(prop, f"{path}.property")
    op = item.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise _invalid(f"{path}.op", f"unknown operator {op!r} (one of {', '.join(OPS)})")
    value = item.get("value")
    vpath = f"{path}.value"
    if op in ("exists", "not_exists"):
        if value is not None:
            raise _invalid(vpath, f"{op} takes no value")
        return {"property": prop, "op": op}
    if op in ("eq", "neq") and not _is_scalar(value):
        raise _invalid(vpath, "expected a string, number or boolean")
    if op in ("gt", "gte", "lt", "lte") and not _is_number(value):
        raise _invalid(vpath, "expected a number")
    if op in ("contains", "not_contains") and not (isinstance(value, str) and value):
        raise _invalid(vpath, "expected a non-empty string")
    if op == "in":
        if not isinstance(value, list) or not value:
            raise _invalid(vpath, "expected a non-empty list")
        if len(value) > MAX_IN_VALUES:
            raise _invalid(vpath, f"at most {MAX_IN_VALUES} values")
        for index, element in enumerate(value):
            if not _is_scalar(element):
                raise _invalid(f"{vpath}[{index}]", "expected a string, number or boolean")
    return {"property": prop, "op": op, "value": value}


def _clean(data: Mapping[str, Any], *, current: ComputedTrait | None) -> dict[str, Any]:
    """The validated fields of `data` (all of them on create; those present on update),
    checked against the resulting definition as a whole."""
    if not isinstance(data, Mapping):
        raise ValidationFailed.at(NON_FIELD, "expected a JSON object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise _invalid(unknown[0], "unknown field")
    creating = current is None
    clean: dict[str, Any] = {}
    for name in ("key", "name", "aggregation"):
        if creating and data.get(name) in (None, ""):
            raise _invalid(name, "required")
    if "key" in data:
        key = _text(data, "key", max_length=64)
        if not creating and current is not None and key != current.key:
            raise _invalid("key", "cannot be changed (segments refer to it); create a new trait")
        if not KEY_RE.fullmatch(key):
            raise _invalid(
                "key",
                "must be lower-case letters, digits and underscores, starting with a letter "
                "(at most 64 characters)",
            )
        if key in builtin.KEYS:
            raise _invalid("key", f"{key!r} is a built-in trait")
        clean["key"] = key
    if "name" in data:
        name = _text(data, "name", max_length=200).strip()
        if not name:
            raise _invalid("name", "must not be empty")
        clean["name"] = name
    if "description" in data:
        clean["description"] = _text(data, "description", max_length=2000)
    if "aggregation" in data:
        aggregation = data["aggregation"]
        if aggregation not in Aggregation.values:
            raise _invalid(
                "aggregation",
                f"unknown aggregation {aggregation!r} (one of {', '.join(Aggregation.values)})",
            )
        clean["aggregation"] = aggregation
    if "event" in data:
        clean["event"] = _text(data, "event", max_length=255)
    if "property" in data:
        clean["property"] = _text(data, "property", max_length=255)
    if "where" in data:
        where = data["where"] if data["where"] is not None else []
        if not isinstance(where, list):
            raise _invalid("where", "expected a list of filters")
        if len(where) > MAX_FILTERS:
            raise _invalid("where", f"at most {MAX_FILTERS} filters")
        clean["where"] = [_clean_filter(item, f"where[{i}]") for i, item in enumerate(where)]
    if "window_days" in data:
        window = data["window_days"]
        if window is not None and (
            not isinstance(window, int)
            or isinstance(window, bool)
            or not 1 <= window <= MAX_WINDOW_DAYS
        ):
            raise _invalid("window_days", f"must be a whole number of days, 1 to {MAX_WINDOW_DAYS}")
        clean["window_days"] = window
    # checks on the definition as a whole
    aggregation = clean.get("aggregation", current.aggregation if current else None)
    prop = clean.get("property", current.property if current else "")
    if aggregation == Aggregation.COUNT:
        if prop:
            raise _invalid(
                "property",
                "must be empty for count (to count events that have a property, "
                "add a where filter with op 'exists')",
            )
    elif not prop:
        raise _invalid("property", f"required for aggregation {aggregation!r}")
    else:
        _check_path(prop, "property")
    return clean


# ---- definitions -----------------------------------------------------------------------------


def _enqueue_backfill(trait_id: int) -> None:
    from profiles import tasks

    transaction.on_commit(lambda: tasks.computed_trait_backfill.delay(trait_id))


@transaction.atomic
def computed_trait_create(
    *, workspace: Workspace, actor: Any | None, data: Mapping[str, Any]
) -> ComputedTrait:
    clean = _clean(data, current=None)
    if ComputedTrait.objects.filter(workspace=workspace, key=clean["key"]).exists():
        raise duplicate("key", f"a computed trait {clean['key']!r} already exists")
    now = timezone.now()
    try:
        with transaction.atomic():
            trait = ComputedTrait.objects.create(
                workspace=workspace,
                created_by=actor if getattr(actor, "is_authenticated", False) else None,
                created_at=now,
                updated_at=now,
                **clean,
            )
    except IntegrityError:
        raise duplicate("key", f"a computed trait {clean['key']!r} already exists") from None
    audit(
        workspace=workspace,
        actor=actor,
        action="computed_trait.create",
        target=trait,
        detail={"key": trait.key},
    )
    _enqueue_backfill(trait.pk)
    return trait


@transaction.atomic
def computed_trait_update(
    *, trait: ComputedTrait, actor: Any | None, data: Mapping[str, Any]
) -> ComputedTrait:
    trait = ComputedTrait.objects.select_for_update().get(pk=trait.pk)
    clean = _clean(data, current=trait)
    changes = {name: value for name, value in clean.items() if getattr(trait, name) != value}
    if not changes:
        return trait
    for name, value in changes.items():
        setattr(trait, name, value)
    trait.updated_at = timezone.now()  # also the version a running backfill checks
    redefined = bool(changes.keys() & DEFINITION_FIELDS)
    if redefined:
        trait.last_refreshed_at = None  # the values are of the old definition until backfilled
    trait.save(update_fields=[*changes, "updated_at", "last_refreshed_at"])
    audit(
        workspace=trait.workspace,
        actor=actor,
        action="computed_trait.update",
        target=trait,
        detail={"changed": sorted(changes)},
    )
    if redefined:
        _enqueue_backfill(trait.pk)
    return trait


@transaction.atomic
def computed_trait_delete(*, trait: ComputedTrait, actor: Any | None) -> None:
    """Delete the definition, then its values from every profile. The trait row goes first:
    a running backfill chunk holds it (FOR SHARE) until that chunk commits, and the next
    chunk finds it gone, so no value is written after the clean-up."""
    locked = ComputedTrait.objects.select_for_update().filter(pk=trait.pk).first()
    if locked is None:
        return
    hooks.check_delete(locked)
    workspace, key, trait_id = locked.workspace, locked.key, locked.pk
    locked.delete()
    _execute(trait_sql.remove_key_query(workspace_id=workspace.pk, key=key))
    audit(
        workspace=workspace,
        actor=actor,
        action="computed_trait.delete",
        detail={"key": key, "id": trait_id},
    )


@transaction.atomic
def computed_trait_refresh_enqueue(*, trait: ComputedTrait, actor: Any | None) -> None:
    audit(workspace=trait.workspace, actor=actor, action="computed_trait.refresh", target=trait)
    _enqueue_backfill(trait.pk)


# ---- values ----------------------------------------------------------------------------------


def _execute(query: Query) -> int:
    with server_cursor() as cursor:
        cursor.execute(query.sql, query.params)
        return max(cursor.rowcount, 0)


def _changed_ids(query: Query) -> list[int]:
    """Run an UPDATE ... RETURNING p.id: the profiles whose values it changed."""
    with server_cursor() as cursor:
        cursor.execute(query.sql, query.params)
        return [row[0] for row in cursor.fetchall()]


def _recompute(
    trait: ComputedTrait,
    profile_ids: Sequence[int],
    now: datetime,
    fill_ids: Sequence[int] = (),
) -> list[int]:
    """One statement: recompute the trait for these (already locked) profiles; returns the
    ids of those whose value changed."""
    if not profile_ids and not (fill_ids and trait_sql.empty_value(trait) is not None):
        return []
    query = update_query(
        trait,
        workspace_id=trait.workspace_id,
        now=now,
        profile_ids=sorted(profile_ids),
        fill_ids=sorted(fill_ids),
    )
    return _changed_ids(query)


def _event_matches(trait: ComputedTrait, event: EventLike, since: datetime | None) -> bool:
    if event.type != "track" or (trait.event and event.event != trait.event):
        return False
    return since is None or event.timestamp >= since


def computed_traits_update_for_batch(resolution: Resolution) -> None:
    """Pipeline stage (inside the batch's transaction, after identity resolution): for each
    trait of each workspace in the batch, recompute the touched profiles that got at least one
    matching event, with one statement per trait. Its cost depends on the batch's profiles and
    their events only, not on the size of the workspace. The profiles are locked already."""
    if not resolution.touched:
        return
    by_workspace: dict[int, dict[int, list[EventLike]]] = {}
    for profile_id, events in resolution.touched.items():
        if events:
            by_workspace.setdefault(events[0].workspace_id, {})[profile_id] = events
    now = timezone.now()
    traits = ComputedTrait.objects.filter(workspace_id__in=list(by_workspace)).order_by("id")
    for trait in traits:
        since = now - timedelta(days=trait.window_days) if trait.window_days else None
        touched = by_workspace[trait.workspace_id]
        profile_ids = [
            profile_id
            for profile_id, events in touched.items()
            if any(_event_matches(trait, event, since) for event in events)
        ]
        # a merge in this batch moved the loser's events: every trait of the winner changes
        profile_ids += [
            pid for pid in resolution.merged if pid in touched and pid not in set(profile_ids)
        ]
        hit = set(profile_ids)
        # the others only get a count trait's 0 where they have no value yet (new profiles)
        _recompute(trait, profile_ids, now, [pid for pid in touched if pid not in hit])


def computed_traits_recompute_profiles(*, workspace_id: int, profile_ids: Sequence[int]) -> int:
    """Recompute every trait of the workspace for a few profiles whose events changed
    wholesale (a merge moved the loser's events to the winner; a split moved some back).
    The caller holds the profiles' locks."""
    ids = sorted(set(profile_ids))
    if not ids:
        return 0
    now = timezone.now()
    return sum(
        len(_recompute(trait, ids, now))
        for trait in ComputedTrait.objects.filter(workspace_id=workspace_id).order_by("id")
    )


_TRAIT_VERSION = "SELECT updated_at FROM profiles_computedtrait WHERE id = %s FOR SHARE"
_NEXT_CHUNK = """SELECT id FROM profiles_profile
WHERE workspace_id = %s AND merged_into_id IS NULL AND id > %s
ORDER BY id LIMIT %s FOR UPDATE"""
_LOCK_PROFILES = """SELECT id FROM profiles_profile
WHERE id = ANY(%s::bigint[]) AND workspace_id = %s AND merged_into_id IS NULL
ORDER BY id FOR UPDATE"""


def _still_current(trait: ComputedTrait) -> bool:
    """Hold the definition (FOR SHARE) for this chunk's transaction; False once it was
    changed or deleted (the backfill enqueued by that change does the work)."""
    with server_cursor() as cursor:
        cursor.execute(_TRAIT_VERSION, [trait.pk])
        row = cursor.fetchone()
    return row is not None and row[0] == trait.updated_at


def _lock_chunk(workspace_id: int, after: int, size: int) -> list[int]:
    with server_cursor() as cursor:
        cursor.execute(_NEXT_CHUNK, [workspace_id, after, size])
        return [row[0] for row in cursor.fetchall()]


def _lock_profiles(workspace_id: int, profile_ids: Sequence[int]) -> list[int]:
    with server_cursor() as cursor:
        cursor.execute(_LOCK_PROFILES, [list(profile_ids), workspace_id])
        return [row[0] for row in cursor.fetchall()]


def _chunks(ids: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _values_written(workspace_id: int, keys: set[str], profile_ids: list[int]) -> int:
    """A refresh job (not the pipeline: its segments stage follows) changed these profiles'
    values: let the apps reading them react in the same transaction. Callers hold the
    workspace's identity lock (shared) taken before the profiles', in the pipeline's order,
    so a segment being published meanwhile waits for the chunk and then sees its values."""
    hooks.run_values_changed(workspace_id, frozenset(keys), profile_ids)
    return len(profile_ids)


def computed_values_write(
    *,
    workspace_id: int,
    values: Mapping[str, Mapping[int, Any]],
    exclusive: bool = True,
    now: datetime | None = None,
    chunk_size: int = REFRESH_CHUNK,
) -> int:
    """Write values computed outside the event pipeline (model scores) to Profile.computed,
    every key of a profile in one write: each profile given gets its values, and with
    `exclusive` every other profile of the workspace loses the keys (a profile no longer
    scored keeps no old score). The apps reading computed values react to the changes
    (segments re-evaluate), chunk by chunk, under the workspace's identity lock as a refresh
    takes it. Returns how many profiles' values changed."""
    at = (now or timezone.now()).isoformat()
    changed = 0
    keys = set(values)
    ids = sorted({pid for by_profile in values.values() for pid in by_profile})
    for chunk in _chunks(ids, chunk_size):
        objects = [
            orjson.dumps({k: v[pid] for k, v in values.items() if pid in v}).decode()
            for pid in chunk
        ]
        with transaction.atomic():
            lock_workspaces([workspace_id], exclusive=False)
            query = trait_sql.external_values_query(
                workspace_id=workspace_id, profile_ids=chunk, objects=objects, at=at
            )
            changed += _values_written(workspace_id, keys, _changed_ids(query))
    if exclusive:
        for key, by_profile in values.items():
            with transaction.atomic():
                lock_workspaces([workspace_id], exclusive=False)
                query = trait_sql.drop_key_except_query(
                    workspace_id=workspace_id, key=key, keep=sorted(by_profile)
                )
                changed += _values_written(workspace_id, {key}, _changed_ids(query))
    return changed


def computed_trait_refresh(
    *, trait: ComputedTrait, now: datetime | None = None, chunk_size: int = REFRESH_CHUNK
) -> int:
    """Full recompute for every live profile of the workspace (profiles without matching
    events get the empty value), chunk by chunk; then sets last_refreshed_at. Stops early,
    without setting it, when the definition changes meanwhile. Returns how many profiles'
    values changed."""
    now = now or timezone.now()
    changed, after = 0, 0
    while True:
        with transaction.atomic():
            lock_workspaces([trait.workspace_id], exclusive=False)
            if not _still_current(trait):
                return changed
            ids = _lock_chunk(trait.workspace_id, after, chunk_size)
            if not ids:
                break
            changed += _values_written(trait.workspace_id, {trait.key}, _recompute(trait, ids, now))
            after = ids[-1]
    ComputedTrait.objects.filter(pk=trait.pk, updated_at=trait.updated_at).update(
        last_refreshed_at=now
    )
    trait.last_refreshed_at = now
    return changed


def computed_traits_backfill_missing(
    *, now: datetime | None = None, grace: timedelta = BACKFILL_GRACE
) -> int:
    """The sweeper behind the backfill tasks (a lost Celery message only delays the work):
    fully refresh every trait created or redefined more than `grace` ago and never refreshed
    since. Returns how many traits it refreshed."""
    now = now or timezone.now()
    stale = ComputedTrait.objects.filter(
        last_refreshed_at__isnull=True, updated_at__lt=now - grace
    ).order_by("id")
    count = 0
    for trait in stale:
        computed_trait_refresh(trait=trait, now=now)
        count += 1
    return count


def _refresh_window(trait: ComputedTrait, now: datetime, chunk_size: int) -> int:
    assert trait.window_days is not None and trait.last_refreshed_at is not None
    window = timedelta(days=trait.window_days)
    since, until = trait.last_refreshed_at - window, now - window
    changed = 0
    if until > since:
        query = window_leavers_query(
            trait, workspace_id=trait.workspace_id, since=since, until=until
        )
        with server_cursor() as cursor:
            cursor.execute(query.sql, query.params)
            candidates = [row[0] for row in cursor.fetchall()]
        for chunk in _chunks(candidates, chunk_size):
            with transaction.atomic():
                lock_workspaces([trait.workspace_id], exclusive=False)
                if not _still_current(trait):
                    return changed
                ids = _lock_profiles(trait.workspace_id, chunk)
                changed += _values_written(
                    trait.workspace_id, {trait.key}, _recompute(trait, ids, now)
                )
    ComputedTrait.objects.filter(pk=trait.pk, updated_at=trait.updated_at).update(
        last_refreshed_at=now
    )
    trait.last_refreshed_at = now
    return changed


def computed_traits_refresh_windows(
    *, now: datetime | None = None, chunk_size: int = REFRESH_CHUNK
) -> int:
    """For every windowed trait: recompute the profiles with matching events that left the
    window since the trait's last refresh (timestamps in [last_refreshed_at - window,
    now - window)). Traits not refreshed yet are left to their backfill (or to
    computed_traits_backfill_missing). Returns how many profiles' values changed."""
    now = now or timezone.now()
    total = 0
    windowed = ComputedTrait.objects.filter(
        window_days__isnull=False, last_refreshed_at__isnull=False
    ).order_by("id")
    for trait in windowed:
        total += _refresh_window(trait, now, chunk_size)
    return total


# ---- built-ins -------------------------------------------------------------------------------


def _rfm_thresholds(workspace_id: int, now: datetime) -> dict[str, Any]:
    """{r1..r4, f1..f4, m1..m4}: the largest value of NTILE bucket 1..4 (None when the bucket
    is empty: fewer than five customers)."""
    params: dict[str, Any] = {f"{dim}{b}": None for dim in "rfm" for b in range(1, 5)}
    with server_cursor() as cursor:
        cursor.execute(trait_sql.RFM_THRESHOLDS, {"ws": workspace_id, "now": now})
        for dim, bucket, largest in cursor.fetchall():
            if bucket <= 4:
                params[f"{dim}{bucket}"] = largest
    return params


def builtin_traits_refresh(
    *, workspace_id: int, now: datetime | None = None, chunk_size: int = REFRESH_CHUNK
) -> int:
    """Write the scheduled built-ins (builtin.SCHEDULED_KEYS) into Profile.computed of every
    live profile of the workspace: one statement for the RFM quintile boundaries, then one
    statement per chunk of profiles. Returns how many profiles changed."""
    now = now or timezone.now()
    days = (now - profile_state.ENGAGEMENT_EPOCH).total_seconds() / 86400.0
    params: dict[str, Any] = {
        **_rfm_thresholds(workspace_id, now),
        "ws": workspace_id,
        "now": now,
        "at": now.isoformat(),
        "keys": list(builtin.SCHEDULED_KEYS),
        "days": days,
        "half_life": profile_state.ENGAGEMENT_HALF_LIFE_DAYS,
        "scale": profile_state.ENGAGEMENT_SCALE,
    }
    changed, after = 0, 0
    keys = set(builtin.SCHEDULED_KEYS)
    while True:
        with transaction.atomic():
            lock_workspaces([workspace_id], exclusive=False)
            ids = _lock_chunk(workspace_id, after, chunk_size)
            if not ids:
                return changed
            query = Query(trait_sql.BUILTIN_UPDATE, {**params, "ids": ids})
            changed += _values_written(workspace_id, keys, _changed_ids(query))
            after = ids[-1]
