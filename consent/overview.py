"""The consent app's cards on the overview (registered in ConsentConfig.ready()): how many
people each purpose may use, and privacy requests due soon."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from cdp import overview
from cdp.models import Workspace
from consent import selectors

SHOWN_PURPOSES = 3


def consent_cards(workspace: Workspace) -> dict[str, Any]:
    profiles, rows = selectors.consent_overview(workspace=workspace)
    if not rows or not profiles:
        return {"cards": []}
    # the purposes people decide on most, by decisions recorded
    rows = sorted(rows, key=lambda r: -(r.granted + r.denied + r.withdrawn))[:SHOWN_PURPOSES]
    return {
        "cards": [
            {
                "label": f"May use for {row.purpose.name}",
                "value": row.allowed / profiles,
                "format": "pct",
                "hint": f"{row.granted:,} granted · {row.denied + row.withdrawn:,} refused",
                "href": reverse("ui-privacy-purposes"),
            }
            for row in rows
        ]
    }


def privacy_cards(workspace: Workspace) -> dict[str, Any]:
    counts = selectors.privacy_deadline_counts(workspace=workspace)
    open_requests = selectors.privacy_request_counts(workspace=workspace)
    overdue, soon = int(counts.get("overdue") or 0), int(counts.get("soon") or 0)
    total_open = sum(n for status, n in open_requests.items() if status != "completed")
    return {
        "cards": [
            {
                "label": "Privacy requests due soon (7 days)",
                "value": soon + overdue,
                "format": "num",
                "hint": f"{overdue:,} overdue · {total_open:,} open",
                "tone": "bad" if overdue else ("warn" if soon else "ok"),
                "href": reverse("ui-privacy") + ("?due=overdue" if overdue else "?due=soon"),
            }
        ]
    }


def register() -> None:
    overview.register(
        key="consent",
        title="Consent",
        kind="cards",
        order=70,
        capability="consent.view",
        compute=consent_cards,
        ttl=300,
        heavy=True,  # counts every profile and every consent state
    )
    overview.register(
        key="privacy",
        title="Privacy requests",
        kind="cards",
        order=75,
        capability="privacy.manage",
        compute=privacy_cards,
    )
