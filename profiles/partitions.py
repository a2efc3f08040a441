"""The events table is partitioned by UTC day of arrival (`received_at`, native declarative
partitioning), so retention is a partition detach + drop instead of a mass DELETE.

- One partition per day, named `profiles_event_pYYYYMMDD`, created ahead by the beat
  (`ensure_partitions`, CDP_EVENT_PARTITIONS_AHEAD days); a DEFAULT partition catches any row
  whose day has no partition yet, so an insert never fails. `ensure_partitions` moves such
  rows into the day's partition when it creates it.
- The messageId dedup is permanent per workspace and lives in `profiles_eventmessage` (a
  unique index on a partitioned table must include the partition key), written in the same
  statement as the event; it keeps the event's id and arrival time, so a messageId finds its
  event in one partition.
- Readers that know when an event arrived (the pipeline's queue keeps it) bound their
  queries by `received_at`, so Postgres prunes to the partitions concerned.
- `drop_partitions_before(cutoff)` removes the days that every workspace's retention has
  passed: the rows derived from their events (profile-event rows, queue rows) first, then the
  partition is detached and dropped.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

logger = logging.getLogger(__name__)

PARENT = "profiles_event"
DEFAULT_PARTITION = "profiles_event_default"
_PREFIX = "profiles_event_p"

_LIST = """
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'profiles_event'::regclass
ORDER BY c.relname
"""


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    day: date | None  # None: the default partition

    @property
    def start(self) -> datetime | None:
        return None if self.day is None else datetime.combine(self.day, time(), tzinfo=UTC)

    @property
    def end(self) -> datetime | None:
        return None if self.start is None else self.start + timedelta(days=1)


def partition_name(day: date) -> str:
    return f"{_PREFIX}{day:%Y%m%d}"


def _day_of(name: str) -> date | None:
    if not name.startswith(_PREFIX):
        return None
    try:
        return datetime.strptime(name[len(_PREFIX) :], "%Y%m%d").replace(tzinfo=UTC).date()
    except ValueError:
        return None


def is_partitioned() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = 'profiles_event'::regclass")
        row = cursor.fetchone()
    return bool(row and row[0] == "p")


def partitions() -> list[Partition]:
    """Every partition of the events table, the daily ones by day, then the default."""
    with connection.cursor() as cursor:
        cursor.execute(_LIST)
        rows = cursor.fetchall()
    daily = sorted(
        (Partition(name, day) for name, _ in rows if (day := _day_of(name)) is not None),
        key=lambda p: p.day or date.min,
    )
    default = [Partition(name, None) for name, bound in rows if bound == "DEFAULT"]
    return daily + default


def create_partition(day: date) -> bool:
    """Create the partition of one UTC day unless it exists; rows of that day waiting in the
    default partition are moved into it. Returns whether it was created."""
    name = partition_name(day)
    start = datetime.combine(day, time(), tzinfo=UTC)
    end = start + timedelta(days=1)
    with transaction.atomic(), connection.cursor() as cursor:
        # one creator at a time (the beat, a migration, a test); creating and attaching take
        # short ACCESS EXCLUSIVE locks on the parent, so do not queue behind a long query
        cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [PARTITION_LOCK_NAMESPACE])
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        if cursor.fetchone()[0]:  # type: ignore[index]
            return False
        cursor.execute("SET LOCAL lock_timeout = '10s'")
        cursor.execute(f'CREATE TABLE "{name}" (LIKE {PARENT} INCLUDING DEFAULTS)')
        moved = 0
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [DEFAULT_PARTITION])
        if cursor.fetchone()[0]:  # type: ignore[index]
            cursor.execute(
                f'WITH moved AS (DELETE FROM "{DEFAULT_PARTITION}" '  # noqa: S608
                "WHERE received_at >= %s AND received_at < %s RETURNING *) "
                f'INSERT INTO "{name}" SELECT * FROM moved',
                [start, end],
            )
            moved = cursor.rowcount
        cursor.execute(
            f'ALTER TABLE {PARENT} ATTACH PARTITION "{name}" FOR VALUES FROM (%s) TO (%s)',
            [start, end],
        )
    if moved:
        logger.warning("moved %s events of %s out of the default partition", moved, day)
    return True


PARTITION_LOCK_NAMESPACE = 7304  # advisory lock space of partition maintenance


def ensure_partitions(*, today: date | None = None, ahead: int | None = None) -> list[str]:
    """Partitions for yesterday, today and `ahead` days ahead (idempotent); returns the
    names created."""
    if not is_partitioned():
        return []
    today = today or timezone.now().astimezone(UTC).date()
    ahead = settings.CDP_EVENT_PARTITIONS_AHEAD if ahead is None else ahead
    created = []
    for offset in range(-1, ahead + 1):
        day = today + timedelta(days=offset)
        if create_partition(day):
            created.append(partition_name(day))
    return created


@dataclass
class DroppedDays:
    """What a drop removed, per workspace: events per day, and the rows derived from them."""

    partitions: list[str] = field(default_factory=list)
    events: dict[int, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    profile_events: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    pending_events: dict[int, int] = field(default_factory=lambda: defaultdict(int))


def _count_deleted(cursor: CursorWrapper, sql: str, alias: str) -> dict[int, int]:
    cursor.execute(
        f"WITH gone AS ({sql} RETURNING {alias}.workspace_id) "  # noqa: S608 - built from constants
        "SELECT workspace_id, count(*) FROM gone GROUP BY 1"
    )
    return {int(ws): int(n) for ws, n in cursor.fetchall()}


def drop_partitions_before(cutoff: datetime) -> DroppedDays:
    """Detach and drop every daily partition whose whole day lies before `cutoff` (events
    that arrived before it are past every workspace's retention). The rows derived from their
    events go first, in the same transaction; a crash leaves the partition in place for the
    next run."""
    report = DroppedDays()
    for part in partitions():
        if part.end is None or part.end > cutoff:
            continue
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f'SELECT workspace_id, count(*) FROM "{part.name}" GROUP BY 1'  # noqa: S608
            )
            for workspace_id, count in cursor.fetchall():
                report.events[int(workspace_id)][str(part.day)] = int(count)
            derived = _count_deleted(
                cursor,
                # names come from pg_inherits and match _PREFIX + a date
                f'DELETE FROM profiles_profileevent pe USING "{part.name}" e '  # noqa: S608
                "WHERE pe.event_id = e.id",
                "pe",
            )
            queued = _count_deleted(
                cursor,
                f'DELETE FROM profiles_pendingevent q USING "{part.name}" e '  # noqa: S608
                "WHERE q.event_id = e.id",
                "q",
            )
            cursor.execute("SET LOCAL lock_timeout = '10s'")
            cursor.execute(f'ALTER TABLE {PARENT} DETACH PARTITION "{part.name}"')
            cursor.execute(f'DROP TABLE "{part.name}"')
        for workspace_id, n in derived.items():
            report.profile_events[workspace_id] += n
        for workspace_id, n in queued.items():
            report.pending_events[workspace_id] += n
        report.partitions.append(part.name)
        logger.info("dropped events partition %s (retention cut-off %s)", part.name, cutoff)
    return report
