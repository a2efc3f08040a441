"""The profiles app's part of the System page (cdp/system.py, registered in
ProfilesConfig.ready): the pipeline's backlog, the throughput, the events table's partitions
and the failed events (dead letters of the collector). Each reads through an index or the
catalogue, never the events themselves."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from cdp import system
from cdp.models import Workspace
from profiles import partitions
from profiles.models import EventCounter, FailedEvent, FailedEventStatus
from profiles.pipeline import metrics as pipeline_metrics

THROUGHPUT_HOURS = 24
PARTITIONS_SHOWN = 14


def backlog(workspace: Workspace) -> dict[str, Any]:
    """This workspace's backlog and the worst over every workspace (the Prometheus gauges'
    query: `profiles.pipeline.metrics.backlog`)."""
    rows = pipeline_metrics.backlog()
    mine = next((r for r in rows if r[0] == workspace.pk), (workspace.pk, 0.0, 0))
    now = timezone.now()
    return {
        "lag_seconds": mine[1],
        "depth": mine[2],
        "oldest_at": now - timedelta(seconds=mine[1]) if mine[2] else None,
        "all_lag_seconds": max((r[1] for r in rows), default=0.0),
        "all_depth": sum(r[2] for r in rows),
        "workspaces_behind": sum(1 for r in rows if r[2]),
        "workspaces": len(rows),
        "cap": pipeline_metrics.QUEUE_DEPTH_CAP,
    }


def throughput(workspace: Workspace) -> dict[str, Any]:
    """Processed events per hour over the last 24 hours (the hourly counters), oldest first,
    and the rate of the last complete hour per minute."""
    now = timezone.now()
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    first = this_hour - timedelta(hours=THROUGHPUT_HOURS - 1)
    counts = dict(
        EventCounter.objects.filter(workspace=workspace, hour__gte=first)
        .values("hour")
        .annotate(n=Sum("count"))
        .values_list("hour", "n")
    )
    hours = [first + timedelta(hours=i) for i in range(THROUGHPUT_HOURS)]
    rows: list[dict[str, Any]] = [{"hour": h, "count": int(counts.get(h) or 0)} for h in hours]
    last_full = rows[-2]["count"] if len(rows) > 1 else 0
    return {
        "rows": rows,
        "total": sum(r["count"] for r in rows),
        "per_minute": last_full / 60,
        "this_hour": rows[-1]["count"],
        # for the chart (system.js): ISO hours and counts
        "chart": [{"hour": r["hour"].isoformat(), "count": r["count"]} for r in rows],
    }


def partition_sizes(workspace: Workspace) -> dict[str, Any]:
    """The events table's partitions (every workspace's events), the newest days first, the
    default partition last: name, day and size in MiB (table, indexes and TOAST)."""
    if not partitions.is_partitioned():
        return {"partitioned": False, "rows": []}
    listed = partitions.partitions()  # the days in order, then the default
    daily = [p for p in listed if p.day is not None]
    newest = [*reversed(daily), *(p for p in listed if p.day is None)][:PARTITIONS_SHOWN]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
            "WHERE relname = ANY(%s) AND relkind = 'r'",
            [[p.name for p in newest]],
        )
        sizes = dict(cursor.fetchall())
    rows = [{"name": p.name, "day": p.day, "mb": sizes.get(p.name, 0) / 2**20} for p in newest]
    return {"partitioned": True, "rows": rows, "shown": PARTITIONS_SHOWN}


def failed_events_count(workspace: Workspace, since: datetime) -> int:
    """Events the collector refused since `since`, not replayed yet (the newest first
    through failed_ws_id, counted up to the cap)."""
    ids = (
        FailedEvent.objects.filter(
            workspace=workspace, status=FailedEventStatus.FAILED, received_at__gte=since
        )
        .order_by("-id")
        .values("id")[: system.DEAD_LETTER_CAP]
    )
    return FailedEvent.objects.filter(id__in=ids).count()


def register() -> None:
    system.register_section(
        key="pipeline",
        title="Pipeline backlog",
        order=10,
        template="profiles/_system_pipeline.html",
        context_fn=backlog,
    )
    system.register_section(
        key="throughput",
        title="Throughput, last 24 hours",
        order=20,
        template="profiles/_system_throughput.html",
        context_fn=throughput,
    )
    system.register_section(
        key="partitions",
        title="Events table by day",
        order=60,
        template="profiles/_system_partitions.html",
        context_fn=partition_sizes,
    )
    system.register_dead_letters(
        key="failed_events",
        label="Failed events (refused by the collector)",
        order=10,
        count_fn=failed_events_count,
        url_name="ui-debugger",
    )
