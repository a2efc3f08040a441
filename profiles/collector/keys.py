"""Write-key extraction and look-up, with a short in-process cache so the hot path does not
query Postgres on every request (revocations take effect within CDP_KEY_CACHE_SECONDS)."""

from __future__ import annotations

import base64
import binascii
import threading
import time
from dataclasses import dataclass

from django.conf import settings

from profiles.models import Source, WriteKey


@dataclass(frozen=True, slots=True)
class SourceInfo:
    source_id: int
    workspace_id: int
    name: str
    enabled: bool
    rate_limit_per_second: int
    max_event_bytes: int
    allowed_origins: tuple[str, ...] = ()  # empty: any origin
    dead_letter_quota: int = 0  # invalid events kept per day (the rest are counted)

    @classmethod
    def of(cls, source: Source) -> SourceInfo:
        """What the collector works with, platform defaults filled in."""
        return cls(
            source_id=source.pk,
            workspace_id=source.workspace_id,
            name=source.name,
            enabled=source.enabled,
            rate_limit_per_second=source.rate_limit_per_second or settings.CDP_DEFAULT_RATE_LIMIT,
            max_event_bytes=source.max_event_bytes or settings.CDP_MAX_EVENT_BYTES,
            allowed_origins=tuple(source.allowed_origins),
            dead_letter_quota=(
                settings.CDP_DEAD_LETTER_QUOTA
                if source.dead_letter_quota is None
                else source.dead_letter_quota
            ),
        )


_cache: dict[str, tuple[float, SourceInfo | None]] = {}
_lock = threading.Lock()


def header_write_key(authorization: str) -> str | None:
    """Basic auth username (password ignored, colon optional) or a Bearer token."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=False).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError):
            return None
        username = decoded.split(":", 1)[0].strip()
        return username or None
    if scheme.lower() == "bearer" and value:
        return value
    return None


def lookup(key: str) -> SourceInfo | None:
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    row = (
        WriteKey.objects.filter(key=key, revoked_at__isnull=True)
        .select_related("source")
        .only(
            "source__id",
            "source__workspace_id",
            "source__name",
            "source__enabled",
            "source__rate_limit_per_second",
            "source__max_event_bytes",
            "source__allowed_origins",
            "source__dead_letter_quota",
        )
        .first()
    )
    info = SourceInfo.of(row.source) if row is not None else None
    with _lock:
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[key] = (now + settings.CDP_KEY_CACHE_SECONDS, info)
    return info


def forget_all() -> None:
    """Drop cached keys (called when a key or source changes in this process)."""
    with _lock:
        _cache.clear()
