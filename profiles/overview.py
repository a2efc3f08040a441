"""The profiles app's widgets on the overview (registered in ProfilesConfig.ready()): people
and events at a glance, events per day by type, new against returning people, and the RFM
grid. Set-based queries; the scans of all events or profiles are `heavy` (kept warm by the
beat, see cdp.overview)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.db import connection
from django.urls import reverse
from django.utils import timezone

from cdp import overview
from cdp.models import Workspace
from profiles.computed.builtin import rfm_segment

DAYS = 90  # events per day: the chart shows 30 and offers all of them
ACTIVE_DAYS = 30  # new against returning
TYPES = (("track", "Track"), ("page", "Page"), ("screen", "Screen"), ("identify", "Identify"))


def _one(sql: str, params: dict[str, Any]) -> tuple[Any, ...]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return tuple(row) if row else ()


def _rows(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor]


def _days(last: date, n: int) -> list[date]:
    return [last - timedelta(days=n - 1 - i) for i in range(n)]


def _today() -> date:
    return timezone.now().astimezone(UTC).date()


def _change(now: int, before: int) -> float | None:
    return (now - before) / before if before else None


# ---- cards --------------------------------------------------------------------------------

_PEOPLE = """
SELECT (SELECT count(*) FROM profiles_profile
        WHERE workspace_id = %(ws)s AND merged_into_id IS NULL),
       (SELECT count(DISTINCT profile_id) FROM profiles_identity
        WHERE workspace_id = %(ws)s AND type = 'user_id')
"""

_EVENTS_24H = """
SELECT coalesce(sum(count) FILTER (WHERE hour >= %(day)s), 0),
       coalesce(sum(count) FILTER (WHERE hour < %(day)s), 0)
FROM profiles_eventcounter WHERE workspace_id = %(ws)s AND hour >= %(two_days)s
"""


def people_cards(workspace: Workspace) -> dict[str, Any]:
    """Live profiles and the share with a user id: two counts of every profile (heavy)."""
    profiles, identified = (int(v or 0) for v in _one(_PEOPLE, {"ws": workspace.pk}))
    return {
        "cards": [
            {
                "label": "Profiles",
                "value": profiles,
                "format": "num",
                "href": reverse("ui-profiles"),
            },
            {
                "label": "Identified (with a user id)",
                "value": min(1.0, identified / profiles) if profiles else 0,
                "format": "pct",
                "hint": f"{identified:,} of {profiles:,} profiles",
                "href": reverse("ui-profiles"),
            },
        ]
    }


def event_cards(workspace: Workspace) -> dict[str, Any]:
    """Events received in the last 24 hours against the 24 before (hourly counters)."""
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    # the last 24 whole hours and this one against the 24 before them
    day, two_days = hour - timedelta(hours=23), hour - timedelta(hours=47)
    events, before = (
        int(v or 0)
        for v in _one(_EVENTS_24H, {"ws": workspace.pk, "day": day, "two_days": two_days})
    )
    return {
        "cards": [
            {
                "label": "Events, last 24 h",
                "value": events,
                "format": "num",
                "delta": _change(events, before),
                "hint": f"{before:,} the day before",
                "href": reverse("ui-debugger"),
            }
        ]
    }


# ---- events per day by type ---------------------------------------------------------------

_EVENTS_BY_DAY = """
SELECT (timestamp AT TIME ZONE 'UTC')::date AS day, type, count(*)
FROM profiles_profileevent
WHERE workspace_id = %(ws)s AND timestamp >= %(since)s AND timestamp < %(until)s
GROUP BY 1, 2
"""


def events_by_type(workspace: Workspace) -> dict[str, Any]:
    """Processed events per UTC day (when they happened) and type, the last DAYS days."""
    last = _today()
    days = _days(last, DAYS)
    since = datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC)
    counts: dict[tuple[date, str], int] = {}
    for day, kind, n in _rows(
        _EVENTS_BY_DAY, {"ws": workspace.pk, "since": since, "until": since + timedelta(DAYS)}
    ):
        kind = kind if kind in dict(TYPES) else "other"
        counts[(day, kind)] = counts.get((day, kind), 0) + int(n)
    if not counts:
        return {
            "empty": "No events in the last 90 days. Send a first event from a source.",
            "empty_href": reverse("ui-sources"),
            "empty_link": "Sources →",
        }
    series = [
        {"key": key, "label": label, "values": [counts.get((d, key), 0) for d in days]}
        for key, label in (*TYPES, ("other", "Other"))
    ]
    return {
        "days": [d.isoformat() for d in days],
        "series": [s for s in series if any(s["values"])],
        "style": "area",
    }


# ---- new against returning ----------------------------------------------------------------

_ACTIVE = """
WITH active AS (
    SELECT DISTINCT profile_id, (timestamp AT TIME ZONE 'UTC')::date AS day
    FROM profiles_profileevent
    WHERE workspace_id = %(ws)s AND timestamp >= %(since)s AND timestamp < %(until)s
)
SELECT a.day,
       count(*) FILTER (WHERE (p.first_seen AT TIME ZONE 'UTC')::date >= a.day),
       count(*) FILTER (WHERE (p.first_seen AT TIME ZONE 'UTC')::date < a.day)
FROM active a JOIN profiles_profile p ON p.id = a.profile_id
GROUP BY a.day
"""


def new_and_returning(workspace: Workspace) -> dict[str, Any]:
    """People active on each of the last ACTIVE_DAYS days: first seen that day (new) or
    before (returning)."""
    days = _days(_today(), ACTIVE_DAYS)
    since = datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC)
    found = {
        row[0]: (int(row[1]), int(row[2]))
        for row in _rows(
            _ACTIVE,
            {"ws": workspace.pk, "since": since, "until": since + timedelta(ACTIVE_DAYS)},
        )
    }
    if not found:
        return {"empty": "Nobody was active in the last 30 days."}
    return {
        "days": [d.isoformat() for d in days],
        "series": [
            {
                "key": "returning",
                "label": "Returning",
                "values": [found.get(d, (0, 0))[1] for d in days],
            },
            {"key": "new", "label": "New", "values": [found.get(d, (0, 0))[0] for d in days]},
        ],
        "style": "bars",
    }


# ---- RFM -----------------------------------------------------------------------------------

_RFM = """
SELECT (computed->>'rfm_recency')::int, (computed->>'rfm_frequency')::int, count(*)
FROM profiles_profile
WHERE workspace_id = %(ws)s AND merged_into_id IS NULL AND computed ? 'rfm_recency'
GROUP BY 1, 2
"""


def rfm_grid(workspace: Workspace) -> dict[str, Any]:
    """Customers by RFM recency (rows, 5 = most recent first) and frequency (columns), each
    cell named by its RFM segment."""
    cells = {(r, f): int(n) for r, f, n in _rows(_RFM, {"ws": workspace.pk}) if r and f}
    if not cells:
        return {
            "empty": "No RFM scores yet: they are computed hourly for people with orders "
            "(Order Completed events)."
        }
    recency = [5, 4, 3, 2, 1]
    frequency = [1, 2, 3, 4, 5]
    names = [[rfm_segment(r, f) for f in frequency] for r in recency]
    return {
        "rows": [str(r) for r in recency],
        "cols": [str(f) for f in frequency],
        "cells": [[cells.get((r, f), 0) for f in frequency] for r in recency],
        "names": names,
        "row_title": "Recency",
        "col_title": "Frequency",
        # each cell opens the explorer filtered on its RFM segment
        "hrefs": [
            [reverse("ui-profiles") + "?" + urlencode({"rfm": name}) for name in row]
            for row in names
        ],
    }


def register() -> None:
    overview.register(
        key="people",
        title="Profiles",
        kind="cards",
        order=10,
        capability="profiles.view",
        compute=people_cards,
        ttl=300,
        heavy=True,
    )
    overview.register(
        key="events",
        title="Events",
        kind="cards",
        order=11,
        capability="events.view",
        compute=event_cards,
    )
    overview.register(
        key="events_by_type",
        title="Events per day by type",
        kind="stacked",
        order=20,
        capability="events.view",
        compute=events_by_type,
        ttl=300,
        heavy=True,
        wide=True,
        description="Processed events by the day they happened (UTC).",
        href="ui-debugger",
    )
    overview.register(
        key="new_returning",
        title="New and returning people",
        kind="stacked",
        order=30,
        capability="profiles.view",
        compute=new_and_returning,
        ttl=600,
        heavy=True,
        description="People active each day: first seen that day, or seen before.",
        href="ui-profiles",
    )
    overview.register(
        key="rfm",
        title="Customers by RFM",
        kind="grid",
        order=40,
        capability="profiles.view",
        compute=rfm_grid,
        ttl=600,
        heavy=True,
        description="Recency against frequency of orders; each cell is an RFM segment.",
        href="ui-profiles",
    )
