"""The collector's door checks that need shared state across processes, in one Redis round
trip: the per-source rate limit (fixed one-second window), whether the door's filters could
drop anything in this workspace (the cached size of their lists, see door.py; a missing key
means "ask Postgres", never "nothing", so a Redis restart cannot let a suppressed person back
in), and whether this request should kick the processing task.

Redis being unavailable never loses an event: the gate fails open (no rate limit, the door's
filters asked in Postgres, kick sent) and logs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings

from cdp.redis import client

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GateResult:
    allowed: bool
    retry_after: int
    door_size: int | None  # entries on the door filters' lists; None = unknown, ask Postgres
    kick: bool


DOOR_SIZE_TTL = 30


def door_size_key(workspace_id: int) -> str:
    return f"cdp:door:{workspace_id}"


# One server-side call instead of a four-command pipeline: the client parses one reply.
# KEYS: rate window, door size, kick throttle. ARGV: events, limit, kick interval (ms).
# Returns {allowed 0/1, door size or -1 when unknown, kick 0/1}.
_GATE_LUA = """
local used = redis.call('INCRBY', KEYS[1], ARGV[1])
if used == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], 3) end
if used > tonumber(ARGV[2]) then return {0, -1, 0} end
local size = redis.call('GET', KEYS[2])
local kicked = redis.call('SET', KEYS[3], 1, 'NX', 'PX', ARGV[3])
return {1, size and tonumber(size) or -1, kicked and 1 or 0}
"""
_gate_script: Any = None


def check(*, source_id: int, workspace_id: int, events: int, limit: int) -> GateResult:
    global _gate_script
    window = int(time.time())
    keys = [
        f"cdp:rl:{source_id}:{window}",
        door_size_key(workspace_id),
        f"cdp:kick:{workspace_id}",
    ]
    try:
        if _gate_script is None:
            _gate_script = client().register_script(_GATE_LUA)
        allowed, size, kicked = _gate_script(
            keys=keys, args=[events, limit, settings.CDP_KICK_INTERVAL_MS]
        )
    except redis.RedisError:
        logger.warning("redis unavailable: collector gate fails open", exc_info=True)
        return GateResult(allowed=True, retry_after=0, door_size=None, kick=True)
    if not allowed:
        return GateResult(allowed=False, retry_after=1, door_size=None, kick=False)
    return GateResult(
        allowed=True,
        retry_after=0,
        door_size=int(size) if size >= 0 else None,
        kick=bool(kicked),
    )


def remember_door_size(workspace_id: int, size: int) -> None:
    try:
        client().set(door_size_key(workspace_id), size, ex=DOOR_SIZE_TTL)
    except redis.RedisError:
        logger.warning("redis unavailable: door size not cached", exc_info=True)


def forget_door_size(workspace_id: int) -> None:
    """Called by a door filter whose list changed: the next request asks Postgres."""
    try:
        client().delete(door_size_key(workspace_id))
    except redis.RedisError:
        logger.warning("redis unavailable: door size not cleared", exc_info=True)
