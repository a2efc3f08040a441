"""Reads of activation, scoped by workspace."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from activation.models import (
    CircuitState,
    Delivery,
    DeliveryAttempt,
    Destination,
    ServerKey,
    Stream,
    Sync,
    SyncRun,
)
from cdp.errors import NotFound
from cdp.models import Workspace


def server_key_list(*, workspace: Workspace) -> QuerySet[ServerKey]:
    return ServerKey.objects.filter(workspace=workspace).order_by("id")


# ---- destinations, deliveries, syncs --------------------------------------------------------


def destination_list(*, workspace: Workspace) -> QuerySet[Destination]:
    return Destination.objects.filter(workspace=workspace).order_by("name")


def destination_get(*, workspace: Workspace, destination_id: Any) -> Destination:
    try:
        pk = int(destination_id)
    except (TypeError, ValueError):
        pk = 0
    found = Destination.objects.filter(workspace=workspace, pk=pk).first()
    if found is None:
        raise NotFound("No such destination.")
    return found


def _open_and_dead(
    *, destination_id: int, workspace_id: int, sync_id: int | None = None
) -> dict[str, int]:
    """Deliveries on the way (a bulk row counts its items) and dead letters (of one sync, when
    given), counted through the partial indexes that hold only those (a destination may have
    millions delivered)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT status, sum(COALESCE(cardinality(profile_ids), 1)) "
            "FROM activation_delivery WHERE destination_id = %s "
            "AND status IN ('pending', 'sending') AND (%s::bigint IS NULL OR sync_id = %s) "
            "GROUP BY status",
            [destination_id, sync_id, sync_id],
        )
        out = {status: n for status, n in cursor.fetchall()}
        cursor.execute(
            "SELECT count(*) FROM activation_delivery WHERE workspace_id = %s "
            "AND status = 'dead' AND destination_id = %s "
            "AND (%s::bigint IS NULL OR sync_id = %s)",
            [workspace_id, destination_id, sync_id, sync_id],
        )
        out["dead"] = cursor.fetchone()[0]
    return out


def destination_health(*, destination: Destination, minutes: int = 60) -> dict[str, Any]:
    """Deliveries per minute, success rate and p95 request latency over the last `minutes`,
    the circuit, the queue and the last errors."""
    since = timezone.now() - timedelta(minutes=minutes)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT date_trunc('minute', at) AS m, "
            "sum(items) FILTER (WHERE outcome = 'ok'), "
            "sum(items) FILTER (WHERE outcome <> 'ok'), count(*) "
            "FROM activation_deliveryattempt WHERE destination_id = %s AND at >= %s "
            "GROUP BY m ORDER BY m",
            [destination.pk, since],
        )
        per_minute = [
            {"minute": m.isoformat(), "delivered": ok or 0, "failed": bad or 0, "requests": n}
            for m, ok, bad, n in cursor.fetchall()
        ]
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE outcome = 'ok'), "
            "percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) "
            "FROM activation_deliveryattempt WHERE destination_id = %s AND at >= %s",
            [destination.pk, since],
        )
        requests, ok, p95 = cursor.fetchone()
    queue = _open_and_dead(destination_id=destination.pk, workspace_id=destination.workspace_id)
    errors = list(
        DeliveryAttempt.objects.filter(destination=destination)
        .exclude(outcome="ok")
        .order_by("-at")
        .values("at", "outcome", "status_code", "reason", "error")[:5]
    )
    return {
        "minutes": minutes,
        "per_minute": per_minute,
        "requests": requests,
        "success_rate": round(ok / requests, 4) if requests else None,
        "p95_latency_ms": round(p95, 1) if p95 is not None else None,
        "circuit": destination.circuit_state,
        "consecutive_failures": destination.consecutive_failures,
        "paused_until": destination.paused_until,
        "pending": queue.get("pending", 0),
        "sending": queue.get("sending", 0),
        "dead": queue.get("dead", 0),
        "last_errors": errors,
    }


def delivery_list(
    *,
    workspace: Workspace,
    destination_id: int | None = None,
    status: str | None = None,
    kind: str | None = None,
) -> QuerySet[Delivery]:
    rows = Delivery.objects.filter(workspace_id=workspace.pk).select_related("destination")
    if destination_id is not None:
        rows = rows.filter(destination_id=destination_id)
    if status:
        rows = rows.filter(status=status)
    if kind:
        rows = rows.filter(kind=kind)
    return rows.order_by("-id")


def delivery_get(*, workspace: Workspace, delivery_id: Any) -> Delivery:
    try:
        pk = int(delivery_id)
    except (TypeError, ValueError):
        pk = 0
    found = (
        Delivery.objects.filter(workspace_id=workspace.pk, pk=pk)
        .select_related("destination")
        .first()
    )
    if found is None:
        raise NotFound("No such delivery.")
    return found


def delivery_attempts(*, delivery: Delivery) -> QuerySet[DeliveryAttempt]:
    """The requests that carried it (a member that left an audience batch: the batch's too)."""
    carried = Q(delivery_ids__contains=[delivery.pk])
    if delivery.batch_id:
        carried |= Q(delivery_ids__contains=[delivery.batch_id])
    return (
        DeliveryAttempt.objects.filter(destination_id=delivery.destination_id)
        .filter(carried)
        .order_by("at")
    )


def sync_list(*, workspace: Workspace, segment_id: int | None = None) -> QuerySet[Sync]:
    rows = Sync.objects.filter(workspace=workspace).select_related("segment", "destination")
    if segment_id is not None:
        rows = rows.filter(segment_id=segment_id)
    return rows.order_by("name")


def sync_runs(*, sync: Sync) -> QuerySet[SyncRun]:
    return SyncRun.objects.filter(sync=sync).order_by("-started_at")


def sync_status(*, sync: Sync) -> dict[str, Any]:
    """Members held by the destination, deliveries on the way and dead letters."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE acked_identifiers <> '{}'), count(*) "
            "FROM activation_syncmember WHERE sync_id = %s",
            [sync.pk],
        )
        acked, held = cursor.fetchone()
        queue = _open_and_dead(
            destination_id=sync.destination_id, workspace_id=sync.workspace_id, sync_id=sync.pk
        )
    return {
        "in_destination": acked,
        "tracked": held,
        "pending": queue.get("pending", 0) + queue.get("sending", 0),
        "dead": queue.get("dead", 0),
    }


def stream_list(*, workspace: Workspace) -> QuerySet[Stream]:
    return (
        Stream.objects.filter(workspace=workspace)
        .select_related("source", "destination")
        .order_by("name")
    )


# ---- the System page (activation/system.py) -------------------------------------------------


def dead_deliveries_count(*, workspace_id: int, since: Any, cap: int) -> int:
    """Deliveries given up on since `since` (through the delivery_dead index), up to `cap`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM (SELECT 1 FROM activation_delivery WHERE workspace_id = %s "
            "AND status = 'dead' AND finished_at >= %s LIMIT %s) d",
            [workspace_id, since, cap],
        )
        return int(cursor.fetchone()[0])


def failing_destinations(
    *, workspace: Workspace, since: Any, cap: int, limit: int = 20
) -> list[dict[str, Any]]:
    """Destinations whose circuit is not closed or with dead deliveries since `since`, the
    worst first: {"destination", "dead", "circuit"}. Dead letters are counted through the
    delivery_dead index (the first `cap` of them), grouped by destination."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT destination_id, count(*) FROM (SELECT destination_id FROM activation_delivery "
            "WHERE workspace_id = %s AND status = 'dead' AND finished_at >= %s LIMIT %s) d "
            "GROUP BY destination_id",
            [workspace.pk, since, cap],
        )
        dead = dict(cursor.fetchall())
    candidates = Destination.objects.filter(workspace=workspace).filter(
        Q(pk__in=list(dead)) | ~Q(circuit_state=CircuitState.CLOSED)
    )
    rows = [
        {"destination": d, "dead": dead.get(d.pk, 0), "circuit": d.circuit_state}
        for d in candidates
    ]
    rows.sort(
        key=lambda r: (r["circuit"] == CircuitState.CLOSED, -r["dead"], r["destination"].name)
    )
    return rows[:limit]
