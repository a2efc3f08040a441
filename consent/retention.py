"""Retention: each workspace keeps event-level data for a set number of days.

The events table is partitioned by UTC day of arrival (`received_at`, profiles/partitions.py):
a day partition older than every workspace's cut-off is detached and dropped whole (its
derived profile-event and queue rows deleted first); only workspaces with a shorter period
than the longest-keeping one need row deletes, whole days at a time, oldest first, one day per
transaction, so a crash leaves a consistent prefix done and a re-run carries on. Kept at least
N full days, at most N + 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from cdp import access
from cdp.errors import Conflict, Forbidden, ValidationFailed
from cdp.models import Role, Workspace, audit
from consent.models import MAX_RETENTION_DAYS, RetentionPolicy
from profiles import partitions

FAILED_CHUNK = 5000


def retention_policy_of(*, workspace: Workspace) -> RetentionPolicy:
    """The workspace's policy (an unsaved one with the defaults when it never set one)."""
    policy = RetentionPolicy.objects.filter(workspace=workspace).first()
    return policy or RetentionPolicy(workspace=workspace)


def _days(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed.at(
            f"{name}", "expected a whole number of days or null (keep forever)"
        )
    if not 1 <= value <= MAX_RETENTION_DAYS:
        raise ValidationFailed.at(
            f"{name}", f"expected 1 to {MAX_RETENTION_DAYS:,} days, or null (keep forever)"
        )
    return value


def _shorter(new: int | None, old: int | None) -> bool:
    """Whether keeping `new` days (None: forever) deletes more than keeping `old` days."""
    return new is not None and (old is None or new < old)


@transaction.atomic
def retention_policy_set(
    *, workspace: Workspace, event_days: Any, failed_event_days: Any, actor: Any = None
) -> RetentionPolicy:
    """Set the retention periods. A longer period (or keeping forever) applies at once; a
    shorter one deletes in bulk, so only an owner may ask for it and it waits out
    CDP_RETENTION_GRACE_DAYS (`pending`, shown on the page, cancellable) before the job applies
    it. Calls without an actor (the system, the command line) apply at once."""
    event_days = _days("event_days", event_days)
    failed_event_days = _days("failed_event_days", failed_event_days)
    policy = RetentionPolicy.objects.select_for_update().filter(workspace=workspace).first()
    policy = policy or RetentionPolicy(workspace=workspace)
    before = {"event_days": policy.event_days, "failed_event_days": policy.failed_event_days}
    after = {"event_days": event_days, "failed_event_days": failed_event_days}
    shortened = _shorter(event_days, policy.event_days) or _shorter(
        failed_event_days, policy.failed_event_days
    )
    now = timezone.now()
    policy.updated_at = now
    policy.updated_by_id = actor.pk if getattr(actor, "is_authenticated", False) else None
    if shortened and actor is not None:
        if access.role_of(actor, workspace) != Role.OWNER:
            raise Forbidden(
                "Only an owner can shorten retention: it deletes data in bulk.",
                code="owner_required",
            )
        effective = now + timedelta(days=settings.CDP_RETENTION_GRACE_DAYS)
        policy.pending = {
            **after,
            "effective_at": effective.isoformat(),
            "requested_by": policy.updated_by_id,
        }
        policy.save()
        audit(
            workspace=workspace,
            actor=actor,
            action="retention.cut_scheduled",
            target=policy,
            detail={"before": before, "after": after, "effective_at": effective.isoformat()},
        )
        return policy
    cancelled = policy.pending
    policy.event_days, policy.failed_event_days = event_days, failed_event_days
    policy.pending = None  # a new choice replaces a shortening still waiting
    policy.save()
    audit(
        workspace=workspace,
        actor=actor,
        action="retention.update",
        target=policy,
        detail={"before": before, "after": after, "replaced_pending": cancelled},
    )
    return policy


@transaction.atomic
def retention_cut_cancel(*, workspace: Workspace, actor: Any = None) -> RetentionPolicy:
    """Drop a shortening still in its grace period (any privacy manager: it deletes nothing)."""
    policy = RetentionPolicy.objects.select_for_update().filter(workspace=workspace).first()
    if policy is None or policy.pending is None:
        raise Conflict("No shortening of retention is waiting.", code="no_pending_cut")
    cancelled, policy.pending = policy.pending, None
    policy.save(update_fields=["pending"])
    audit(
        workspace=workspace,
        actor=actor,
        action="retention.cut_cancelled",
        target=policy,
        detail={"cancelled": cancelled},
    )
    return policy


def _apply_due_cut(policy: RetentionPolicy, now: datetime) -> RetentionPolicy:
    """The job applies a shortening whose grace period is over (once: a claimed update)."""
    pending = policy.pending
    if not pending or datetime.fromisoformat(pending["effective_at"]) > now:
        return policy
    applied = RetentionPolicy.objects.filter(pk=policy.pk, pending=pending).update(
        event_days=pending["event_days"],
        failed_event_days=pending["failed_event_days"],
        pending=None,
        updated_at=now,
    )
    if applied:
        audit(
            workspace=policy.workspace,
            actor=None,
            action="retention.cut_applied",
            target=policy,
            detail={"applied": pending},
        )
    return RetentionPolicy.objects.get(pk=policy.pk)


@dataclass
class RetentionReport:
    workspace_id: int
    event_cutoff: str | None = None  # events that arrived before this moment are gone
    failed_event_cutoff: str | None = None
    days: int = 0  # whole days of arrival deleted
    events: int = 0
    profile_events: int = 0
    pending_events: int = 0
    failed_events: int = 0
    day_counts: dict[str, int] = field(default_factory=dict)

    @property
    def deleted(self) -> int:
        return self.events + self.failed_events


def _midnight(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def retention_cutoff(days: int | None, now: datetime) -> datetime | None:
    """Start of the UTC day `days` days before now: arrivals before it are past retention."""
    return None if days is None else _midnight(now - timedelta(days=days))


_OLDEST = """
SELECT received_at FROM profiles_event WHERE workspace_id = %s ORDER BY workspace_id, id
LIMIT 1
"""

# one day of one workspace: the raw events, the profile-event rows derived from them, and
# the outbox rows of those not processed yet
_DELETE_DAY = """
WITH gone AS (
    DELETE FROM profiles_event
    WHERE workspace_id = %(ws)s AND received_at >= %(start)s AND received_at < %(end)s
    RETURNING id
),
derived AS (
    DELETE FROM profiles_profileevent WHERE event_id IN (SELECT id FROM gone) RETURNING 1
),
pending AS (
    DELETE FROM profiles_pendingevent WHERE event_id IN (SELECT id FROM gone) RETURNING 1
)
SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM derived),
       (SELECT count(*) FROM pending)
"""

_DELETE_FAILED = """
DELETE FROM profiles_failedevent WHERE id IN (
    SELECT id FROM profiles_failedevent
    WHERE workspace_id = %(ws)s AND received_at < %(cutoff)s
    ORDER BY workspace_id, id LIMIT %(limit)s
)
"""


def retention_enforce(
    *,
    workspace: Workspace,
    now: datetime | None = None,
    dropped: partitions.DroppedDays | None = None,
    policy: RetentionPolicy | None = None,
) -> RetentionReport:
    """Delete the workspace's event-level data past its retention period (`dropped`: what
    the partition drop already removed, counted in the report; `policy`: the one in force,
    when the caller has it already). Safe to run twice or concurrently (a second run finds
    nothing to delete)."""
    now = now or timezone.now()
    policy = policy or _policy_in_force(workspace, now)
    report = RetentionReport(workspace_id=workspace.pk)
    if dropped is not None and workspace.pk in dropped.events:
        days = dropped.events[workspace.pk]
        report.days += len(days)
        report.day_counts.update(days)
        report.events += sum(days.values())
        report.profile_events += dropped.profile_events.get(workspace.pk, 0)
        report.pending_events += dropped.pending_events.get(workspace.pk, 0)
    cutoff = retention_cutoff(policy.event_days, now)
    if cutoff is not None:
        report.event_cutoff = cutoff.isoformat()
        with connection.cursor() as cursor:
            cursor.execute(_OLDEST, [workspace.pk])
            row = cursor.fetchone()
        day = _midnight(row[0]) if row else cutoff
        while day < cutoff:
            end = day + timedelta(days=1)
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(_DELETE_DAY, {"ws": workspace.pk, "start": day, "end": end})
                events, derived, pending = cursor.fetchone()
            if events:
                report.days += 1
                report.day_counts[day.date().isoformat()] = int(events)
                report.events += int(events)
                report.profile_events += int(derived)
                report.pending_events += int(pending)
            day = end
    failed_cutoff = retention_cutoff(policy.failed_event_days, now)
    if failed_cutoff is not None:
        report.failed_event_cutoff = failed_cutoff.isoformat()
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    _DELETE_FAILED,
                    {"ws": workspace.pk, "cutoff": failed_cutoff, "limit": FAILED_CHUNK},
                )
                deleted = cursor.rowcount
            report.failed_events += deleted
            if deleted < FAILED_CHUNK:
                break
    summary = asdict(report)
    summary.pop("day_counts")
    with transaction.atomic():
        if policy.pk is None:
            policy, _ = RetentionPolicy.objects.get_or_create(workspace=workspace)
        RetentionPolicy.objects.filter(pk=policy.pk).update(last_run_at=now, last_run=summary)
        if report.deleted:
            audit(
                workspace=workspace,
                actor=None,
                action="retention.enforce",
                target=policy,
                detail={**summary, "day_counts": report.day_counts},
            )
    return report


def retention_enforce_all(*, now: datetime | None = None) -> list[RetentionReport]:
    """Every workspace's retention. The days past every workspace's cut-off are dropped as
    whole partitions of the events table first; only workspaces keeping less than the
    longest-keeping one then need row deletes (none when all keep the same period). A
    workspace keeping events forever keeps every partition."""
    now = now or timezone.now()
    workspaces = list(Workspace.objects.order_by("id"))
    policies = [_policy_in_force(w, now) for w in workspaces]
    cutoffs = [retention_cutoff(p.event_days, now) for p in policies]
    dropped = None
    if policies and None not in cutoffs and partitions.is_partitioned():
        dropped = partitions.drop_partitions_before(min(c for c in cutoffs if c is not None))
    return [
        retention_enforce(workspace=w, now=now, dropped=dropped, policy=p)
        for w, p in zip(workspaces, policies, strict=True)
    ]


def _policy_in_force(workspace: Workspace, now: datetime) -> RetentionPolicy:
    """The workspace's policy, with a pending cut applied once its grace period is over."""
    policy = retention_policy_of(workspace=workspace)
    return _apply_due_cut(policy, now) if policy.pk is not None else policy
