"""Sign-in and API-token abuse: lockouts are audited (django-axes counts the wrong passwords),
and failed token authentications are counted per client IP in Redis so that guessing tokens
is throttled too."""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest

from cdp import access
from cdp.models import audit
from cdp.redis import client

logger = logging.getLogger(__name__)


def client_ip(request: HttpRequest) -> str:
    """The address the request came from (behind a proxy, set its forwarding in front)."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def lockout_audit(*, username: str, ip_address: str) -> None:
    """A sign-in paused after too many wrong passwords: in the audit log of every workspace the
    user belongs to (an unknown username has none: logged only)."""
    logger.warning("sign-in locked out: username %r from %s", username, ip_address)
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        return
    for workspace in access.workspaces_of(user):
        audit(
            workspace=workspace,
            actor=None,
            action="auth.lockout",
            target=user,
            detail={"username": username, "ip": ip_address},
        )


def on_user_locked_out(sender: Any, request: Any, username: str, ip_address: str, **_: Any) -> None:
    lockout_audit(username=username or "", ip_address=ip_address or "")


def _token_key(ip: str) -> str:
    return f"cdp:tokenfail:{ip}"


def token_failures_exceeded(request: HttpRequest) -> int:
    """Seconds to wait when this client failed token authentication too often, else 0 (and
    0 when Redis is unreachable: authentication itself still runs)."""
    try:
        r = client()
        failures = int(r.get(_token_key(client_ip(request))) or 0)
        if failures >= settings.CDP_TOKEN_FAILURE_LIMIT:
            return max(int(r.ttl(_token_key(client_ip(request)))), 1)
    except redis.RedisError:
        logger.warning("redis unavailable: token failures not checked", exc_info=True)
    return 0


def token_failure_count(request: HttpRequest) -> None:
    try:
        key = _token_key(client_ip(request))
        r = client()
        if r.incr(key) == 1:  # the window starts with the first failure
            r.expire(key, int(settings.AXES_COOLOFF_TIME.total_seconds()))
    except redis.RedisError:
        logger.warning("redis unavailable: token failure not counted", exc_info=True)


def token_failures_forget(ip: str) -> None:
    client().delete(_token_key(ip))
