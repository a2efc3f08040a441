"""A profile's activity at a glance (the chart above its timeline): events per week by type
over the year before its last event, and orders and revenue per month over two years — read
through the profile's (profile, timestamp) index, one query each."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection

from profiles.identity.profile_state import REVENUE_KEYS
from profiles.identity.rules import load_rules
from profiles.models import Profile

WEEKS = 52
MONTHS = 24
TYPES = ("track", "page", "screen", "identify")

_WEEKLY = """
SELECT (date_trunc('week', timestamp AT TIME ZONE 'UTC'))::date, type, count(*)
FROM profiles_profileevent
WHERE profile_id = %(profile)s AND timestamp >= %(since)s AND timestamp < %(until)s
GROUP BY 1, 2
"""

# an order's revenue: the first of REVENUE_KEYS that holds a number or a numeric string (as
# the pipeline reads it)
_NUMBER = r"'^\s*-?[0-9]+(\.[0-9]+)?\s*$'"
_REVENUE = ",\n".join(
    f"CASE WHEN properties ->> %(k{i})s ~ {_NUMBER} THEN trim(properties ->> %(k{i})s)::numeric END"
    for i in range(len(REVENUE_KEYS))
)
_MONTHLY = f"""
SELECT (date_trunc('month', timestamp AT TIME ZONE 'UTC'))::date, count(*),
       sum(coalesce({_REVENUE}, 0))
FROM profiles_profileevent
WHERE profile_id = %(profile)s AND type = 'track' AND event = %(order_event)s
  AND timestamp >= %(since)s AND timestamp < %(until)s
GROUP BY 1
"""  # noqa: S608 - built from constants

_NAMES = """
SELECT type, event, count(*) FROM profiles_profileevent
WHERE profile_id = %(profile)s AND event <> ''
GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 100
"""


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _month_start(day: date, back: int = 0) -> date:
    index = day.year * 12 + day.month - 1 - back
    return date(index // 12, index % 12 + 1, 1)


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def profile_activity(*, profile: Profile) -> dict[str, Any]:
    """{"weeks": [...], "series": [{key, label, values}], "months": [...], "orders": [...],
    "revenue": [...], "order_event": name} — empty lists for a profile without events."""
    if profile.last_seen is None:
        return {"weeks": [], "series": [], "months": [], "orders": [], "revenue": []}
    last = profile.last_seen.astimezone(UTC).date()
    first_week = _monday(last) - timedelta(weeks=WEEKS - 1)
    weeks = [first_week + timedelta(weeks=i) for i in range(WEEKS)]
    first_month = _month_start(last, MONTHS - 1)
    months = [_month_start(last, MONTHS - 1 - i) for i in range(MONTHS)]
    order_event = load_rules(profile.workspace_id).order_event
    counts: dict[tuple[date, str], int] = {}
    orders: dict[date, tuple[int, Decimal]] = {}
    until = _at(last + timedelta(days=1))
    with connection.cursor() as cursor:
        cursor.execute(_WEEKLY, {"profile": profile.pk, "since": _at(first_week), "until": until})
        for week, kind, n in cursor:
            key = kind if kind in TYPES else "other"
            counts[(week, key)] = counts.get((week, key), 0) + int(n)
        cursor.execute(
            _MONTHLY,
            {
                "profile": profile.pk,
                "since": _at(first_month),
                "until": until,
                "order_event": order_event,
                **{f"k{i}": key for i, key in enumerate(REVENUE_KEYS)},
            },
        )
        for month, n, revenue in cursor:
            orders[month] = (int(n), Decimal(revenue or 0))
    labels = {"track": "Track", "page": "Page", "screen": "Screen", "identify": "Identify"}
    series = [
        {
            "key": key,
            "label": labels.get(key, "Other"),
            "values": [counts.get((w, key), 0) for w in weeks],
        }
        for key in (*TYPES, "other")
    ]
    return {
        "weeks": [w.isoformat() for w in weeks],
        "series": [s for s in series if any(s["values"])],
        "months": [m.isoformat() for m in months],
        "orders": [orders.get(m, (0, Decimal(0)))[0] for m in months],
        "revenue": [float(orders.get(m, (0, Decimal(0)))[1]) for m in months],
        "order_event": order_event,
    }


def profile_event_names(*, profile: Profile) -> list[dict[str, Any]]:
    """The event and page names this profile sent, most frequent first (the timeline's
    filter)."""
    with connection.cursor() as cursor:
        cursor.execute(_NAMES, {"profile": profile.pk})
        return [{"type": t, "name": e, "count": int(n)} for t, e, n in cursor]
