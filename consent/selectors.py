"""Reading the consent log: one person's decisions, for the profile page and privacy center."""

from __future__ import annotations

from django.db.models import QuerySet

from consent.models import ConsentRecord


def consent_history(*, workspace_id: int, profile_id: int) -> QuerySet[ConsentRecord]:
    """The decisions recorded for a profile (those of profiles merged into it included: they
    moved with the merge), newest decision first."""
    return ConsentRecord.objects.filter(workspace_id=workspace_id, profile_id=profile_id).order_by(
        "-occurred_at", "-id"
    )
