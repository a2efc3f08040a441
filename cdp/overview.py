"""The overview (the landing page): widgets that each app registers in its
`AppConfig.ready()`, drawn in order. The core knows none of them.

A widget computes a JSON-able value for a workspace with set-based queries. Values are kept
in Redis for `ttl` seconds, shared by every web process; a widget marked `heavy` (a scan of
all profiles or events) is served stale while a task recomputes it, and the beat keeps the
overviews that people look at warm (`overview_refresh_viewed`), so opening the page never
waits for a scan once it has been computed.

Kinds, and the value each returns (`href` everywhere: the page behind it, may be absent):
- "cards": {"cards": [{"label", "value", "format": num|pct|money, "delta"?: fraction vs the
  previous period, "hint"?, "href"?, "tone"?: ok|warn|bad}]} — all card widgets share the
  strip at the top of the page.
- "stacked": {"days": ["YYYY-MM-DD", …], "series": [{"key", "label", "values": [n, …]}],
  "style": area|bars} — a stacked area (or bars) over days.
- "grid": {"rows": [label, …], "cols": [label, …], "cells": [[n, …], …], "names": [[text,
  …], …], "row_title", "col_title"} — a heat grid (the RFM 5×5).
- "spark": {"items": [{"label", "value", "values": [n, …], "href"?, "hint"?}]} — a list with
  a sparkline per row.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from django.conf import settings
from django.db import connection, transaction

from cdp import access
from cdp import redis as cdp_redis
from cdp.models import Workspace

log = logging.getLogger(__name__)

KINDS = frozenset({"cards", "stacked", "grid", "spark"})
VIEWED_KEY = "cdp:overview:viewed"
PENDING = "pending"  # the value of a heavy widget being computed for the first time
VIEWED_WINDOW = 3600  # an overview opened in the last hour is kept warm by the beat


@dataclass(frozen=True, slots=True)
class Widget:
    key: str
    title: str
    kind: str
    order: int
    capability: str | None
    compute: Callable[[Workspace], dict[str, Any]]
    ttl: int = 60
    heavy: bool = False
    wide: bool = False
    description: str = ""
    href: str = ""  # url name of the page behind the widget


_WIDGETS: dict[str, Widget] = {}


def register(
    *,
    key: str,
    title: str,
    kind: str,
    order: int,
    capability: str | None,
    compute: Callable[[Workspace], dict[str, Any]],
    ttl: int = 60,
    heavy: bool = False,
    wide: bool = False,
    description: str = "",
    href: str = "",
) -> None:
    """Add (or replace, by key) a widget of the overview."""
    if kind not in KINDS:
        raise ValueError(f"overview widget {key!r}: unknown kind {kind!r}")
    if capability is not None and capability not in access.CAPABILITIES:
        raise KeyError(f"overview widget {key!r}: unknown capability {capability!r}")
    _WIDGETS[key] = Widget(
        key, title, kind, order, capability, compute, ttl, heavy, wide, description, href
    )


def widgets() -> list[Widget]:
    return sorted(_WIDGETS.values(), key=lambda w: (w.order, w.key))


def visible(user: Any, workspace: Workspace) -> list[Widget]:
    return [
        w for w in widgets() if w.capability is None or access.can(user, workspace, w.capability)
    ]


def _cache_key(workspace_id: int, key: str) -> str:
    return f"cdp:overview:{workspace_id}:{key}"


def _now() -> float:
    return time.time()


def run(widget: Widget, workspace: Workspace) -> dict[str, Any]:
    """The widget's value, computed now (not stored), without JIT: it spent more time
    compiling these short aggregates than running them (1 s of JIT for 0.2 s of work on 1M
    profiles, bin/bench overview). cdp.db.analytic_settings (256 MB of work_mem) was
    measured too and made the scans slower: the planner gave up their parallel plans."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        return widget.compute(workspace)


def compute(widget: Widget, workspace: Workspace) -> dict[str, Any]:
    """The widget's value now, stored for the others (and for the next `ttl` seconds)."""
    value = run(widget, workspace)
    entry = {"at": _now(), "value": value}
    try:
        cdp_redis.client().set(
            _cache_key(workspace.pk, widget.key),
            json.dumps(entry, default=str),
            ex=max(widget.ttl * 20, 3600),  # kept past its ttl to be served stale
        )
    except redis.RedisError:
        log.warning("overview: Redis unavailable, widget %s not cached", widget.key)
    return value


def _cached(widget: Widget, workspace_id: int) -> tuple[dict[str, Any], float] | None:
    try:
        raw = cdp_redis.client().get(_cache_key(workspace_id, widget.key))
    except redis.RedisError:
        return None
    if not raw:
        return None
    entry = json.loads(raw)
    return entry["value"], float(entry["at"])


def value_of(widget: Widget, workspace: Workspace) -> tuple[dict[str, Any], datetime]:
    """The widget's value and when it was computed: the stored one while fresh; a heavy
    widget's stale one while a task recomputes it; else computed now."""
    cached = _cached(widget, workspace.pk)
    if cached is not None:
        value, at = cached
        age = _now() - at
        if age < widget.ttl:
            return value, datetime.fromtimestamp(at, UTC)
        if widget.heavy:
            _kick_refresh(workspace.pk, widget.key)
            return value, datetime.fromtimestamp(at, UTC)
    elif widget.heavy and not settings.CDP_OVERVIEW_INLINE:
        # never computed: a task does it while the page says so (and asks again)
        _kick_refresh(workspace.pk, widget.key)
        return {PENDING: True}, datetime.now(UTC)
    return compute(widget, workspace), datetime.now(UTC)


def pending(workspace_id: int, keys: list[str]) -> list[str]:
    """Which of these widgets have no value yet."""
    return [w.key for w in widgets() if w.key in keys and _cached(w, workspace_id) is None]


def _kick_refresh(workspace_id: int, key: str) -> None:
    """One recomputation at a time per widget and workspace (a lock that expires)."""
    try:
        if not cdp_redis.client().set(
            f"cdp:overview:lock:{workspace_id}:{key}", 1, nx=True, ex=300
        ):
            return
    except redis.RedisError:
        return
    from cdp.tasks import overview_refresh  # the task module imports this one

    overview_refresh.delay(workspace_id, key)


def refresh(workspace_id: int, key: str | None = None) -> int:
    """Recompute one widget (or all) of a workspace; the number computed."""
    workspace = Workspace.objects.filter(pk=workspace_id).first()
    if workspace is None:
        return 0
    done = 0
    for widget in widgets():
        if key is None or widget.key == key:
            compute(widget, workspace)
            done += 1
    try:
        if key is not None:
            cdp_redis.client().delete(f"cdp:overview:lock:{workspace_id}:{key}")
    except redis.RedisError:
        pass
    return done


def mark_viewed(workspace_id: int) -> None:
    try:
        cdp_redis.client().zadd(VIEWED_KEY, {str(workspace_id): _now()})
    except redis.RedisError:
        pass


def recently_viewed() -> list[int]:
    """Workspaces whose overview was opened within the window."""
    try:
        client = cdp_redis.client()
        client.zremrangebyscore(VIEWED_KEY, "-inf", _now() - VIEWED_WINDOW)
        members: list[bytes] = list(client.zrange(VIEWED_KEY, 0, -1))  # type: ignore[arg-type]
        return [int(m) for m in members]
    except redis.RedisError:
        return []


def stale_heavy(workspace_id: int) -> list[str]:
    """The heavy widgets of a workspace due for recomputation."""
    due = []
    for widget in widgets():
        if not widget.heavy:
            continue
        cached = _cached(widget, workspace_id)
        if cached is None or _now() - cached[1] >= widget.ttl:
            due.append(widget.key)
    return due


# -- the table behind every chart (shown under it, and to screen readers) -----------------


def table_of(widget: Widget, value: dict[str, Any]) -> dict[str, Any] | None:
    """{"head": [...], "rows": [[...], ...]} with the numbers a chart draws."""
    if widget.kind == "stacked":
        series = value.get("series", [])
        return {
            "head": ["Day", *(s["label"] for s in series), "Total"],
            "rows": [
                [day, *(s["values"][i] for s in series), sum(s["values"][i] for s in series)]
                for i, day in reversed(list(enumerate(value.get("days", []))))
            ],
        }
    if widget.kind == "grid":
        cols = value.get("cols", [])
        return {
            "head": [f"{value.get('row_title', '')} \\ {value.get('col_title', '')}", *cols],
            "rows": [[row, *value["cells"][i]] for i, row in enumerate(value.get("rows", []))],
        }
    if widget.kind == "spark":
        return {
            "head": ["", "Now", "Trend (first → last)"],
            "rows": [
                [
                    item["label"],
                    item["value"],
                    f"{item['values'][0]} → {item['values'][-1]}" if item.get("values") else "",
                ]
                for item in value.get("items", [])
            ],
        }
    return None
