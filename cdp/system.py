"""The System page (`/system/`, README "Health checks"): is it healthy, is it keeping up,
what broke. The core draws the components of `cdp.health` and the database's size; the apps
that own the rest contribute in their `AppConfig.ready()` — the core imports none of them:

- `register_section`: a card of the page, a template rendered with the context its function
  makes (`section`), e.g. the pipeline's backlog, the events table's partitions;
- `register_dead_letters`: a row of the "Dead letters" card, the number of things given up
  on since a time and the page where to act on them.

Every function must answer from a bounded query (an index, a capped count): the page is
opened when something is wrong, often when the database is busy."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, connection
from django.urls import reverse
from django.utils import timezone

from cdp import access, health
from cdp.models import Workspace

logger = logging.getLogger(__name__)

DEAD_LETTER_HOURS = 24
DEAD_LETTER_CAP = 10_000  # counts stop there (a capped index scan)

SectionContext = Callable[[Workspace], dict[str, Any]]
DeadLetterCount = Callable[[Workspace, datetime], int]


@dataclass(frozen=True, slots=True)
class SystemSection:
    key: str
    title: str
    order: int
    template: str  # rendered with its context as `section`
    context_fn: SectionContext
    capability: str | None = None  # beyond system.view (None: whoever sees the page)


@dataclass(frozen=True, slots=True)
class DeadLetters:
    key: str
    label: str
    order: int
    count_fn: DeadLetterCount
    url_name: str
    query: str = ""  # appended to the page's URL, e.g. "status=dead"


_SECTIONS: dict[str, SystemSection] = {}
_DEAD_LETTERS: dict[str, DeadLetters] = {}


def register_section(
    *,
    key: str,
    title: str,
    order: int,
    template: str,
    context_fn: SectionContext,
    capability: str | None = None,
) -> None:
    """Add (or replace, keyed by `key`) a card of the System page."""
    if capability is not None and capability not in access.CAPABILITIES:
        raise KeyError(f"system section {key!r}: unknown capability {capability!r}")
    _SECTIONS[key] = SystemSection(key, title, order, template, context_fn, capability)


def register_dead_letters(
    *,
    key: str,
    label: str,
    order: int,
    count_fn: DeadLetterCount,
    url_name: str,
    query: str = "",
) -> None:
    """Add (or replace, keyed by `key`) a row of the dead letters: `count_fn(workspace,
    since)` counts them (up to DEAD_LETTER_CAP), `url_name` is the page to act on them."""
    _DEAD_LETTERS[key] = DeadLetters(key, label, order, count_fn, url_name, query)


def page_sections(user: Any, workspace: Workspace) -> list[dict[str, Any]]:
    """[{"key", "title", "template", "context"}] of the sections the user may see; a
    section that fails is shown as such, the others still are."""
    out = []
    for s in sorted(_SECTIONS.values(), key=lambda s: (s.order, s.key)):
        if s.capability is not None and not access.can(user, workspace, s.capability):
            continue
        try:
            context, error = s.context_fn(workspace), ""
        except DatabaseError as exc:
            logger.warning("system: section %s failed", s.key, exc_info=True)
            context, error = {}, health.describe(exc)
        out.append(
            {"key": s.key, "title": s.title, "template": s.template, "context": context,
             "error": error}
        )  # fmt: skip
    return out


def dead_letters(workspace: Workspace) -> dict[str, Any]:
    """{"since", "hours", "cap", "rows": [{"key", "label", "count", "href"}]}."""
    since = timezone.now() - timedelta(hours=DEAD_LETTER_HOURS)
    rows = []
    for d in sorted(_DEAD_LETTERS.values(), key=lambda d: (d.order, d.key)):
        href = reverse(d.url_name) + (f"?{d.query}" if d.query else "")
        rows.append(
            {"key": d.key, "label": d.label, "count": d.count_fn(workspace, since), "href": href}
        )
    return {"since": since, "hours": DEAD_LETTER_HOURS, "cap": DEAD_LETTER_CAP, "rows": rows}


# what each component's row says, from its readiness report
_COMPONENT_LABELS = {
    "database": "Database",
    "migrations": "Migrations",
    "broker": "Broker (Redis)",
    "worker": "Workers",
    "beat": "Beat (scheduler)",
}


def components() -> list[dict[str, Any]]:
    """The readiness checks of `cdp.health`, one row each: {"key", "label", "ok", and the
    report's own fields (latency_ms, age_seconds, fresh_workers, unapplied, error)}."""
    report = health.readiness()["components"]
    now = timezone.now()
    rows = []
    for key, value in report.items():
        age = value.get("age_seconds")
        seen = now - timedelta(seconds=age) if age is not None else None
        rows.append(
            {"key": key, "label": _COMPONENT_LABELS.get(key, key), "seen_at": seen, **value}
        )
    return rows


def database_megabytes() -> float:
    """The size of the whole database (every workspace), in MiB."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        return int(cursor.fetchone()[0]) / 2**20
