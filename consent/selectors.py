"""Reading the consent log: one person's decisions (the profile page) and where each purpose
stands across the workspace (the privacy center)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from cdp.errors import ValidationFailed
from cdp.models import Workspace
from consent.models import (
    ConsentRecord,
    ConsentStatus,
    PrivacyRequest,
    PrivacyRequestStatus,
    Purpose,
)


def consent_history(*, workspace_id: int, profile_id: int) -> QuerySet[ConsentRecord]:
    """The decisions recorded for a profile (those of profiles merged into it included: they
    moved with the merge), newest decision first."""
    return ConsentRecord.objects.filter(workspace_id=workspace_id, profile_id=profile_id).order_by(
        "-occurred_at", "-id"
    )


@dataclass(frozen=True, slots=True)
class PurposeOverview:
    """Where a purpose stands across the workspace's people (live profiles only)."""

    purpose: Purpose
    profiles: int
    granted: int
    denied: int
    withdrawn: int
    recent_granted: int  # decisions recorded in the last RECENT_DAYS
    recent_refused: int  # denied or withdrawn, same window

    @property
    def undecided(self) -> int:
        return self.profiles - self.granted - self.denied - self.withdrawn

    @property
    def allowed(self) -> int:
        """How many may be used for it now: the enforcement rule (granted, or undecided when
        the purpose is granted by default) counted for everybody."""
        return self.granted + (self.undecided if self.purpose.default_granted else 0)


RECENT_DAYS = 30

# The state table holds live profiles only (a merge moves the loser's decisions to the survivor
# and re-derives both; a deletion removes them), so it is counted on its own, through its
# (workspace, purpose, status) index: 0.13 s for 2.5M states, against 1 s joined to profiles.
_STATES = """
SELECT s.purpose, s.status, count(*)
FROM consent_consentstate s
WHERE s.workspace_id = %(ws)s
GROUP BY 1, 2
"""
_RECENT = """
SELECT purpose, status, count(*) FROM consent_consentrecord
WHERE workspace_id = %(ws)s AND recorded_at >= %(since)s
GROUP BY 1, 2
"""
_PROFILES = """
SELECT count(*) FROM profiles_profile WHERE workspace_id = %(ws)s AND merged_into_id IS NULL
"""


def consent_overview(*, workspace: Workspace) -> tuple[int, list[PurposeOverview]]:
    """Per purpose of the workspace: current decisions (granted, denied, withdrawn, none), how
    many people it may use, and the decisions of the last RECENT_DAYS days (three queries).
    Returns the number of (live) profiles and a row per purpose."""
    params: dict[str, Any] = {
        "ws": workspace.pk,
        "since": timezone.now() - timedelta(days=RECENT_DAYS),
    }
    states: dict[tuple[str, str], int] = {}
    recent: dict[tuple[str, str], int] = {}
    with connection.cursor() as cursor:
        cursor.execute(_PROFILES, params)
        row = cursor.fetchone()
        profiles = int(row[0]) if row else 0
        cursor.execute(_STATES, params)
        states = {(p, s): int(n) for p, s, n in cursor}
        cursor.execute(_RECENT, params)
        recent = {(p, s): int(n) for p, s, n in cursor}
    return profiles, [
        PurposeOverview(
            purpose=purpose,
            profiles=profiles,
            granted=states.get((purpose.key, ConsentStatus.GRANTED), 0),
            denied=states.get((purpose.key, ConsentStatus.DENIED), 0),
            withdrawn=states.get((purpose.key, ConsentStatus.WITHDRAWN), 0),
            recent_granted=recent.get((purpose.key, ConsentStatus.GRANTED), 0),
            recent_refused=recent.get((purpose.key, ConsentStatus.DENIED), 0)
            + recent.get((purpose.key, ConsentStatus.WITHDRAWN), 0),
        )
        for purpose in Purpose.objects.filter(workspace=workspace).order_by("key")
    ]


# ---- privacy request deadlines ----------------------------------------------------------------

DUE_SOON_DAYS = 7
DEADLINE_FILTERS = {
    "overdue": "open and past the due date",
    "soon": f"open and due within {DUE_SOON_DAYS} days",
}


def _deadlines(now: datetime) -> dict[str, Q]:
    """The conditions behind DEADLINE_FILTERS, for open requests."""
    return {
        "overdue": Q(due_at__lt=now),
        "soon": Q(due_at__gte=now, due_at__lt=now + timedelta(days=DUE_SOON_DAYS)),
    }


def privacy_requests_due(
    rows: QuerySet[PrivacyRequest], due: str, *, now: datetime | None = None
) -> QuerySet[PrivacyRequest]:
    """Open requests past their due date (`overdue`) or due within DUE_SOON_DAYS (`soon`),
    the most urgent first."""
    condition = _deadlines(now or timezone.now()).get(due)
    if condition is None:
        raise ValidationFailed(
            f"due: expected one of {', '.join(DEADLINE_FILTERS)}", detail={"field": "due"}
        )
    open_rows = rows.exclude(status=PrivacyRequestStatus.COMPLETED)
    return open_rows.filter(condition).order_by("due_at", "id")


def privacy_deadline_counts(*, workspace: Workspace) -> dict[str, int]:
    """How many open requests are overdue and how many are due soon (one query)."""
    counts = {
        name: Count("id", filter=condition)
        for name, condition in _deadlines(timezone.now()).items()
    }
    return (
        PrivacyRequest.objects.filter(workspace=workspace)
        .exclude(status=PrivacyRequestStatus.COMPLETED)
        .aggregate(**counts)
    )
