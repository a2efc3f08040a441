# ruff: noqa: S608 - SQL from constants and placeholders only
"""The delivery engine: claims a destination's due deliveries, checks consent, sends them
through the destination's connector and records the outcome.

- A destination has `concurrency` slots (session advisory locks): at most that many workers
  send to it at once, and a worker that dies releases its slot with its session.
- A claim takes due `pending` rows in id order with FOR UPDATE SKIP LOCKED, skipping any row
  whose profile has an earlier open delivery to the same destination — a row of its own or
  an item of a bulk row (a failing delivery holds back only that profile's later ones) — up
  to a batch's worth of items, and marks them `sending` with a lease. A worker killed
  mid-send leaves rows whose lease expires; the sweeper returns them to `pending` and they
  go out again with the same idempotency key.
- A bulk row (an initial or full sync run's members, activation.delivery.bulk) goes out as
  its items; what must be handled per member (consent refusals, items the destination
  rejected, a dead letter) leaves it as per-profile rows.
- Outcomes: delivered; 429 → back to pending after Retry-After, not counted as an attempt,
  and the whole destination paused until then; 408/5xx/timeouts/connection errors → retry
  with exponential backoff and jitter until both `max_attempts` and `max_age_seconds` are
  spent, then a dead letter; any other failure → a dead letter at once. Each request is a
  DeliveryAttempt row.
- The circuit breaker opens after `circuit_threshold` consecutive failed requests; after the
  cool-off one worker sends a single probe (half-open); success closes it.
- Times are the clock's (clock_timestamp()), not the transaction's start (now()).
- A destination's requests are spaced to `rate_per_second` by reserving send times on its
  row (one UPDATE per request), so the limit holds across workers and machines."""

from __future__ import annotations

import logging
import random
import time
from datetime import timedelta
from typing import Any

import orjson
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from activation import connectors, secrets
from activation.connectors.base import Outcome, Target, scrub
from activation.delivery import after, bulk
from activation.delivery.bulk import Row
from activation.models import (
    AttemptOutcome,
    CircuitState,
    Delivery,
    DeliveryAttempt,
    DeliveryKind,
    DeliveryStatus,
    Destination,
)
from cdp import metrics
from consent.enforcement import consent_allowed_profiles

logger = logging.getLogger(__name__)

SLOT_NAMESPACE = 7401  # advisory-lock namespace of destination send slots
SLOTS_MAX = 64
LEASE_GRACE = 30.0  # seconds a claim outlives the request timeout before it is swept
SCAN_FACTOR = 2  # rows looked at per claim, for those held back by ordering
WORK_BUDGET = 20.0  # seconds one task sends before handing over (fairness across tasks)
CONSENT_KINDS = (DeliveryKind.UPSERT, DeliveryKind.EVENT)


def target_of(destination: Destination) -> Target:
    return Target(
        id=destination.pk,
        workspace_id=destination.workspace_id,
        name=destination.name,
        kind=destination.kind,
        config=dict(destination.config or {}),
        secrets=secrets.decrypt(destination.secrets_encrypted),
        timeout=float(destination.timeout_seconds),
        batch_size=int(destination.batch_size),
    )


# ---- slots ----------------------------------------------------------------------------------


def _slot_key(destination_id: int, slot: int) -> int:
    return destination_id * SLOTS_MAX + slot


def acquire_slot(destination: Destination) -> int | None:
    with connection.cursor() as cursor:
        for slot in range(min(max(1, destination.concurrency), SLOTS_MAX)):
            cursor.execute(
                "SELECT pg_try_advisory_lock(%s, %s)",
                [SLOT_NAMESPACE, _slot_key(destination.pk, slot)],
            )
            if cursor.fetchone()[0]:
                return slot
    return None


def release_slot(destination_id: int, slot: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_unlock(%s, %s)", [SLOT_NAMESPACE, _slot_key(destination_id, slot)]
        )


# ---- claiming -------------------------------------------------------------------------------

# `in_bulk`: open bulk rows outside the claim that carry a candidate's profile — one GIN
# look-up per claim (materialised: inlined, it would run once per candidate), skipped when
# the destination has no open bulk row at all (a tiny partial index says so).
# `chosen`: the ready rows in id order up to `limit` items (a bulk row counts its items; the
# first ready row is always taken, so a bulk row larger than today's batch size still goes)
_CLAIM = """
WITH cand AS (
    SELECT d.id, d.profile_id, COALESCE(cardinality(d.profile_ids), 1) AS n
    FROM activation_delivery d
    WHERE d.destination_id = %(dest)s AND d.status = 'pending'
      AND d.next_attempt_at <= clock_timestamp()
    ORDER BY d.id LIMIT ({window}) FOR UPDATE SKIP LOCKED
), in_bulk AS MATERIALIZED (
    SELECT u.id AS profile_id, min(b.id) AS first_id
    FROM activation_delivery b, unnest(b.profile_ids) AS u(id)
    WHERE EXISTS (SELECT 1 FROM activation_delivery x WHERE x.destination_id = %(dest)s
                  AND x.kind = 'bulk' AND x.status IN ('pending', 'sending'))
      AND b.kind = 'bulk' AND b.destination_id = %(dest)s
      AND b.profile_ids && ARRAY(SELECT profile_id FROM cand WHERE profile_id IS NOT NULL)
      AND b.status IN ('pending', 'sending') AND b.id NOT IN (SELECT id FROM cand)
      AND u.id IN (SELECT profile_id FROM cand)
    GROUP BY u.id
), ready AS (
    SELECT c.id, c.n FROM cand c
    WHERE c.profile_id IS NULL OR (NOT EXISTS (
        SELECT 1 FROM activation_delivery e
        WHERE e.destination_id = %(dest)s AND e.profile_id = c.profile_id AND e.id < c.id
          AND e.status IN ('pending', 'sending')
          AND e.id NOT IN (SELECT id FROM cand)
    ) AND NOT EXISTS (
        SELECT 1 FROM in_bulk k WHERE k.profile_id = c.profile_id AND k.first_id < c.id
    ))
), chosen AS (
    SELECT r.id FROM (
        SELECT id, sum(n) OVER (ORDER BY id) AS upto, row_number() OVER (ORDER BY id) AS rank
        FROM ready
    ) r
    WHERE r.upto <= %(limit)s OR r.rank = 1
)
UPDATE activation_delivery d
SET status = 'sending', lease_until = clock_timestamp() + %(lease)s * interval '1 second',
    attempts = d.attempts + 1, last_attempt_at = clock_timestamp(), claimed_by = pg_backend_pid()
FROM chosen WHERE d.id = chosen.id
RETURNING d.id, d.key, d.kind, d.profile_id, d.payload, d.attempts, d.created_at, d.sync_id,
    d.run_id
""".replace(
    "{window}",
    # how many rows to lock: as many as cover `scan` items in id order (counted without
    # locks), so a claim of bulk rows locks two or three rows, not every pending one — the
    # destination's other senders, skipping what is locked, find the next rows
    """SELECT GREATEST(1, count(*)) FROM (
        SELECT sum(w.n) OVER (ORDER BY w.id) - w.n AS before FROM (
            SELECT v.id, COALESCE(cardinality(v.profile_ids), 1) AS n
            FROM activation_delivery v
            WHERE v.destination_id = %(dest)s AND v.status = 'pending'
              AND v.next_attempt_at <= clock_timestamp()
            ORDER BY v.id LIMIT %(scan)s) w) x
    WHERE x.before < %(scan)s""",
)


def claim(destination: Destination, limit: int) -> list[Row]:
    """Claim up to `limit` items' worth of due rows (committed at once: the lease is what
    holds them)."""
    lease = float(destination.timeout_seconds) * 2 + LEASE_GRACE
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")  # key look-ups: compiling costs more than running
        cursor.execute(
            _CLAIM,
            {"dest": destination.pk, "scan": limit * SCAN_FACTOR, "limit": limit, "lease": lease},
        )
        rows = cursor.fetchall()
    claimed = [
        Row(
            id=r[0],
            key=str(r[1]),
            kind=r[2],
            profile_id=r[3],
            payload=orjson.loads(r[4]) if isinstance(r[4], str | bytes) else dict(r[4] or {}),
            attempts=r[5],
            created_at=r[6],
            sync_id=r[7],
            run_id=r[8],
            workspace_id=destination.workspace_id,
            destination_id=destination.pk,
        )
        for r in rows
    ]
    claimed.sort(key=lambda c: c.id)
    return claimed


def sweep_expired_leases() -> int:
    """Rows a worker claimed and never finished: due again, same key — at once when the
    claimer's database session is gone (the worker died), else when the lease expires."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE activation_delivery SET status = 'pending', lease_until = NULL, "
            "claimed_by = NULL, next_attempt_at = clock_timestamp() "
            "WHERE status = 'sending' AND (lease_until < clock_timestamp() OR NOT EXISTS "
            "(SELECT 1 FROM pg_stat_activity a WHERE a.pid = activation_delivery.claimed_by))"
        )
        return cursor.rowcount


# ---- consent at send time -------------------------------------------------------------------


def _bulk_upserts(row: Row) -> list[tuple[int, int]]:
    """A bulk row's (index, profile id) of the items that need consent."""
    return [
        (n, int(e["profile_id"]))
        for n, e in enumerate(row.payload.get("items") or [])
        if (e.get("op") or "upsert") in CONSENT_KINDS
    ]


def _refuse_without_consent(destination: Destination, rows: list[Row]) -> tuple[list[Row], int]:
    """Cancel what the person has no consent for (rows, and bulk items as rows of their own);
    returns the rows left to send and how many deliveries were cancelled."""
    concerned = {r.profile_id for r in rows if r.kind in CONSENT_KINDS and r.profile_id}
    upserts = {r.id: _bulk_upserts(r) for r in rows if r.kind == DeliveryKind.BULK}
    for pairs in upserts.values():
        concerned.update(p for _, p in pairs)
    if not concerned and not any(r.kind in CONSENT_KINDS for r in rows):
        return rows, 0
    allowed = consent_allowed_profiles(
        workspace_id=destination.workspace_id, purpose=destination.purpose, profile_ids=concerned
    )
    error = "no consent for " + destination.purpose
    refused = [r for r in rows if r.kind in CONSENT_KINDS and r.profile_id not in allowed]
    if refused:
        _cancel(refused, reason="consent", error=error)
    cancelled = len(refused)
    gone = {r.id for r in refused}
    for row in rows:
        if row.kind != DeliveryKind.BULK:
            continue
        indexes = {n for n, p in upserts[row.id] if p not in allowed}
        if indexes:
            with transaction.atomic():
                after.dead(
                    bulk.split(
                        row, indexes, status=DeliveryStatus.CANCELLED, reason="consent", error=error
                    )
                )
            cancelled += len(indexes)
            if not row.payload.get("items"):  # every item went: the row was cancelled
                gone.add(row.id)
    return [r for r in rows if r.id not in gone], cancelled


def size(row: Row) -> int:
    """How many deliveries a row stands for (a bulk row: its items)."""
    if row.kind == DeliveryKind.BULK:
        return len(row.payload.get("items") or [])
    return 1


# ---- the send loop --------------------------------------------------------------------------


def deliver(destination_id: int, *, budget: float = WORK_BUDGET) -> dict[str, int]:
    """Send what is due for one destination until nothing is, or `budget` seconds passed.
    Returns counts; {"more": 1} when work remains (the caller re-kicks)."""
    counts = {"sent": 0, "delivered": 0, "failed": 0, "dead": 0, "cancelled": 0, "more": 0}
    destination = Destination.objects.filter(pk=destination_id).first()
    if destination is None or not destination.enabled:
        return counts
    slot = acquire_slot(destination)
    if slot is None:
        return counts
    started = time.monotonic()
    try:
        connector = connectors.get(destination.kind)
        target = target_of(destination)
        while True:
            destination.refresh_from_db()
            if not destination.enabled or _paused(destination):
                break
            probe = _circuit_gate(destination)
            if probe is None:
                break
            limit = 1 if probe else max(1, min(destination.batch_size, connector.max_batch))
            rows = claim(destination, limit)
            if not rows:
                break
            rows, cancelled = _refuse_without_consent(destination, rows)
            counts["cancelled"] += cancelled
            if cancelled:
                metrics.DELIVERIES.labels(kind=destination.kind, outcome="cancelled").inc(cancelled)
            if not rows:
                continue
            _wait_for_rate(destination)
            items, origin = bulk.expand(rows)
            began = time.monotonic()
            try:
                outcome = connector.send(target, items)
            except Exception as exc:  # a connector bug must not lose the rows: retry them
                logger.exception("connector %s failed", destination.kind)
                outcome = Outcome.retry("internal_error", f"{type(exc).__name__}: {exc}")
            elapsed = (time.monotonic() - began) * 1000
            # whatever a driver put in its message, no secret reaches a row or a page
            outcome.error = scrub(outcome.error, target.secrets)
            outcome.response = scrub(outcome.response, target.secrets)
            counts["sent"] += len(items)
            result = record(destination, rows, outcome, duration_ms=elapsed, origin=origin)
            metrics.DELIVERY_SEND_SECONDS.labels(kind=destination.kind).observe(elapsed / 1000)
            for name, n in result.items():
                counts[name] = counts.get(name, 0) + n
                if n:
                    metrics.DELIVERIES.labels(kind=destination.kind, outcome=name).inc(n)
            if not outcome.ok and not outcome.throttled:
                if probe or destination.circuit_state != CircuitState.CLOSED:
                    break
            if outcome.throttled:
                break
            if time.monotonic() - started > budget:
                counts["more"] = 1
                break
    except secrets.SecretsUnreadable:
        logger.error("destination %s: secrets unreadable; nothing sent", destination_id)
    finally:
        release_slot(destination_id, slot)
    return counts


def _paused(destination: Destination) -> bool:
    return destination.paused_until is not None and destination.paused_until > timezone.now()


def _circuit_gate(destination: Destination) -> bool | None:
    """None: do not send now; False: send normally; True: send one probe (half-open)."""
    state = destination.circuit_state
    if state == CircuitState.CLOSED:
        return False
    if state == CircuitState.HALF_OPEN:
        return None  # another worker's probe is out
    opened = destination.circuit_opened_at or timezone.now()
    if timezone.now() < opened + timedelta(seconds=destination.circuit_cooldown_seconds):
        return None
    won = Destination.objects.filter(
        pk=destination.pk, circuit_state=CircuitState.OPEN, circuit_opened_at=opened
    ).update(circuit_state=CircuitState.HALF_OPEN)
    if won:
        destination.circuit_state = CircuitState.HALF_OPEN
        return True
    return None


def _wait_for_rate(destination: Destination) -> None:
    """Reserve the next send time on the destination's row and sleep until it."""
    if destination.rate_per_second <= 0:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE activation_destination SET rate_next_at = "
            "GREATEST(COALESCE(rate_next_at, clock_timestamp()), clock_timestamp()) "
            "+ %s * interval '1 second' "
            "WHERE id = %s RETURNING rate_next_at - %s * interval '1 second' - clock_timestamp()",
            [1.0 / destination.rate_per_second, destination.pk, 1.0 / destination.rate_per_second],
        )
        wait = cursor.fetchone()[0]
    seconds = wait.total_seconds() if wait else 0.0
    if seconds > 0:
        time.sleep(min(seconds, 60.0))


def backoff_seconds(destination: Destination, attempts: int) -> float:
    """Exponential (base doubling to the cap) with equal jitter: half fixed, half random."""
    ceiling = min(
        float(destination.retry_max_seconds),
        float(destination.retry_base_seconds) * 2 ** max(0, attempts - 1),
    )
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto


# ---- recording outcomes ---------------------------------------------------------------------


@transaction.atomic
def record(
    destination: Destination,
    rows: list[Row],
    outcome: Outcome,
    *,
    duration_ms: float,
    origin: dict[int, tuple[Row, int]] | None = None,
) -> dict[str, int]:
    """Write a request's outcome on its rows (counts are per delivery: a bulk row counts its
    items). `origin` maps the synthetic ids of bulk items to their row and place."""
    now = timezone.now()
    ids = [r.id for r in rows]
    by_id = {r.id: r for r in rows}
    origin = origin or {}
    counts = {"delivered": 0, "failed": 0, "dead": 0}
    total = sum(size(r) for r in rows)
    if outcome.ok:
        rejected = {i: reason for i, reason in outcome.rejected.items() if i in by_id}
        # items of bulk rows the destination refused: dead letters of their own
        refused: dict[tuple[int, str], set[int]] = {}
        for item, reason in outcome.rejected.items():
            if item in origin:
                row, index = origin[item]
                refused.setdefault((row.id, reason), set()).add(index)
        for (row_id, reason), indexes in sorted(refused.items()):
            after.dead(
                bulk.split(
                    by_id[row_id],
                    indexes,
                    status=DeliveryStatus.DEAD,
                    reason=reason,
                    error="rejected by the destination",
                )
            )
            counts["dead"] += len(indexes)
        good = [i for i in ids if i not in rejected and size(by_id[i])]
        _finish(good, DeliveryStatus.DELIVERED, now=now, rows=[by_id[i] for i in good])
        counts["delivered"] = sum(size(by_id[i]) for i in good)
        for reason in set(rejected.values()):
            _dead(
                [by_id[i] for i, r in rejected.items() if r == reason],
                reason,
                "rejected by the destination",
                now=now,
            )
        counts["dead"] += len(rejected)
        _circuit_success(destination)
        attempt_outcome = AttemptOutcome.OK
    elif outcome.throttled:
        wait = outcome.retry_after if outcome.retry_after is not None else 30.0
        until = now + timedelta(seconds=wait)
        Delivery.objects.filter(id__in=ids, status=DeliveryStatus.SENDING).update(
            status=DeliveryStatus.PENDING,
            attempts=F("attempts") - 1,
            next_attempt_at=until,
            lease_until=None,
            reason=outcome.reason,
            error=outcome.error,
        )
        Destination.objects.filter(pk=destination.pk).update(paused_until=until)
        if destination.circuit_state == CircuitState.HALF_OPEN:  # not a failure: probe again
            Destination.objects.filter(pk=destination.pk).update(
                circuit_state=CircuitState.OPEN, circuit_opened_at=now
            )
        attempt_outcome = AttemptOutcome.THROTTLED
    elif outcome.retryable:
        attempt_outcome = AttemptOutcome.RETRY
        # one backoff for the whole batch: its rows come due together and usually go out
        # together again (the same webhook-id); each row keeps its own key regardless
        delay = backoff_seconds(destination, max(r.attempts for r in rows))
        for row in rows:
            age = (now - row.created_at).total_seconds()
            if row.attempts >= destination.max_attempts and age >= destination.max_age_seconds:
                counts["dead"] += size(row)  # before _dead: splitting empties a bulk row
                _dead(
                    [row],
                    outcome.reason or "gave_up",
                    f"gave up after {row.attempts} attempts over {age / 3600:.1f} h: "
                    f"{outcome.error}",
                    now=now,
                )
                attempt_outcome = AttemptOutcome.DEAD
            else:
                Delivery.objects.filter(pk=row.id, status=DeliveryStatus.SENDING).update(
                    status=DeliveryStatus.PENDING,
                    next_attempt_at=now + timedelta(seconds=delay),
                    lease_until=None,
                    reason=outcome.reason,
                    error=outcome.error[:2000],
                )
                counts["failed"] += size(row)
        _circuit_failure(destination, now=now)
    else:
        counts["dead"] = sum(size(r) for r in rows)  # before _dead: splitting empties bulk rows
        _dead(rows, outcome.reason or "failed", outcome.error, now=now)
        attempt_outcome = AttemptOutcome.DEAD
        # a permanent refusal is an answer: the destination is up
        _circuit_success(destination)
    DeliveryAttempt.objects.create(
        workspace_id=destination.workspace_id,
        destination=destination,
        delivery_ids=ids,
        items=total,
        at=now,
        duration_ms=duration_ms,
        outcome=attempt_outcome,
        status_code=outcome.status_code,
        reason=outcome.reason,
        error=outcome.error[:2000],
        request=outcome.request,
        response=outcome.response[:2048],
    )
    return counts


def _finish(ids: list[int], status: str, *, now: Any, rows: list[Row]) -> None:
    if not ids:
        return
    Delivery.objects.filter(id__in=ids, status=DeliveryStatus.SENDING).update(
        status=status, finished_at=now, lease_until=None, reason="", error=""
    )
    after.delivered(ids, rows=rows)


def _dead(rows: list[Row], reason: str, error: str, *, now: Any) -> None:
    """Dead-letter rows; a bulk row's items become dead letters of their own (each is
    replayed, or superseded, on its own)."""
    ids = [r.id for r in rows if r.kind != DeliveryKind.BULK]
    for row in rows:
        if row.kind == DeliveryKind.BULK:
            after.dead(
                bulk.split(row, None, status=DeliveryStatus.DEAD, reason=reason, error=error)
            )
    if not ids:
        return
    Delivery.objects.filter(id__in=ids, status=DeliveryStatus.SENDING).update(
        status=DeliveryStatus.DEAD,
        finished_at=now,
        lease_until=None,
        reason=reason[:64],
        error=error[:2000],
    )
    after.dead(ids)


def _cancel(rows: list[Row], *, reason: str, error: str) -> None:
    ids = [r.id for r in rows]
    with transaction.atomic():
        Delivery.objects.filter(id__in=ids, status=DeliveryStatus.SENDING).update(
            status=DeliveryStatus.CANCELLED,
            finished_at=timezone.now(),
            lease_until=None,
            reason=reason,
            error=error,
        )
        after.dead(ids)


def _circuit_success(destination: Destination) -> None:
    if destination.consecutive_failures or destination.circuit_state != CircuitState.CLOSED:
        Destination.objects.filter(pk=destination.pk).update(
            consecutive_failures=0, circuit_state=CircuitState.CLOSED, circuit_opened_at=None
        )


def _circuit_failure(destination: Destination, *, now: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE activation_destination SET consecutive_failures = consecutive_failures + 1, "
            "circuit_state = CASE WHEN circuit_state = 'half_open' "
            "  OR consecutive_failures + 1 >= circuit_threshold THEN 'open' "
            "  ELSE circuit_state END, "
            "circuit_opened_at = CASE WHEN circuit_state = 'half_open' "
            "  OR (circuit_state = 'closed' AND consecutive_failures + 1 >= circuit_threshold) "
            "  THEN %s ELSE circuit_opened_at END "
            "WHERE id = %s",
            [now, destination.pk],
        )
