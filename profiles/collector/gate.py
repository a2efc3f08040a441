"""The collector's door checks that need shared state across processes, in one Redis round
trip: the per-source rate limit (fixed one-second window), whether the workspace has any
suppressed identifiers (a cached count; a missing key means "ask Postgres", never "none", so a
Redis restart cannot let a deleted person back in), and whether this request should kick the
processing task.

Redis being unavailable never loses an event: the gate fails open (no rate limit, suppression
checked in Postgres, kick sent) and logs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
from django.conf import settings

from cdp.redis import client

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GateResult:
    allowed: bool
    retry_after: int
    suppressions: int | None  # None = unknown, look in Postgres
    kick: bool


SUPPRESSION_COUNT_TTL = 30


def suppression_count_key(workspace_id: int) -> str:
    return f"cdp:suppressions:{workspace_id}"


def check(*, source_id: int, workspace_id: int, events: int, limit: int) -> GateResult:
    now = time.time()
    window = int(now)
    rate_key = f"cdp:rl:{source_id}:{window}"
    kick_key = f"cdp:kick:{workspace_id}"
    try:
        pipe = client().pipeline(transaction=False)
        pipe.incrby(rate_key, events)
        pipe.expire(rate_key, 3)
        pipe.get(suppression_count_key(workspace_id))
        pipe.set(kick_key, 1, nx=True, px=settings.CDP_KICK_INTERVAL_MS)
        used, _, suppressed, kicked = pipe.execute()
    except redis.RedisError:
        logger.warning("redis unavailable: collector gate fails open", exc_info=True)
        return GateResult(allowed=True, retry_after=0, suppressions=None, kick=True)
    if int(used) > limit:
        return GateResult(allowed=False, retry_after=1, suppressions=None, kick=False)
    return GateResult(
        allowed=True,
        retry_after=0,
        suppressions=int(suppressed) if suppressed is not None else None,
        kick=bool(kicked),
    )


def remember_suppression_count(workspace_id: int, count: int) -> None:
    try:
        client().set(suppression_count_key(workspace_id), count, ex=SUPPRESSION_COUNT_TTL)
    except redis.RedisError:
        logger.warning("redis unavailable: suppression count not cached", exc_info=True)


def forget_suppression_count(workspace_id: int) -> None:
    """Called when the suppression list changes: the next request asks Postgres."""
    try:
        client().delete(suppression_count_key(workspace_id))
    except redis.RedisError:
        logger.warning("redis unavailable: suppression count not cleared", exc_info=True)
