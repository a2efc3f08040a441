# ruff: noqa: S608 - SQL from constants, a checked column name and placeholders only
"""The one consent check every use of personal data calls — segments' `consent` condition,
activation, the decision API, ML training sets — in a Python form (for a few profiles) and a
SQL form (for set-based queries). Both read the same derived state and apply the same rule:

    a profile may be used for a purpose when its latest decision for it is "granted", or,
    having never decided, when the purpose is granted by default (legitimate interest).

"denied" and "withdrawn" both mean no. A purpose the workspace does not define is never
allowed (fail closed)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from django.db import connection

from consent.models import ConsentState, Purpose

_COLUMN = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")


def purpose_default(*, workspace_id: int, purpose: str) -> bool | None:
    """Whether the purpose is granted without a decision; None when it is not defined."""
    found = (
        Purpose.objects.filter(workspace_id=workspace_id, key=purpose)
        .values_list("default_granted", flat=True)
        .first()
    )
    return found


def consent_allowed_profiles(
    *, workspace_id: int, purpose: str, profile_ids: Iterable[int]
) -> set[int]:
    """The given profiles that may be used for the purpose (one query)."""
    ids = sorted(set(profile_ids))
    default = purpose_default(workspace_id=workspace_id, purpose=purpose)
    if default is None or not ids:
        return set()
    # one array parameter (`= ANY`), not a placeholder per id: a destination batch asks
    # about a thousand profiles at a time
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT cs.profile_id, cs.status FROM consent_consentstate cs "
            "WHERE cs.workspace_id = %s AND cs.purpose = %s AND cs.profile_id = ANY(%s)",
            [workspace_id, purpose, ids],
        )
        decided = dict(cursor.fetchall())
    return {pid for pid in ids if consent_allowed(decided.get(pid), default)}


def consent_allows(*, workspace_id: int, profile_id: int, purpose: str) -> bool:
    return profile_id in consent_allowed_profiles(
        workspace_id=workspace_id, purpose=purpose, profile_ids=[profile_id]
    )


def consent_sql(
    *,
    profile_column: str,
    workspace_id: int,
    purpose: str,
    param: Callable[[object], str],
    per_profile: bool = False,
) -> str:
    """A SQL predicate, true when the profile in `profile_column` may be used for `purpose`.
    `param` binds a value and returns its placeholder (the caller's parameter style), so the
    predicate composes into any query. Set-based by default (one scan of the purpose's
    decisions); `per_profile` for a few given profiles (an index look-up each). The purpose's
    default is read now (a query built later sees a changed
    default); an undefined purpose allows nobody."""
    if not _COLUMN.fullmatch(profile_column):
        raise ValueError(f"not a column reference: {profile_column!r}")
    default = purpose_default(workspace_id=workspace_id, purpose=purpose)
    if default is None:
        return "false"
    if per_profile:  # a few profiles: one index look-up each
        status = (
            f"(SELECT cs.status FROM consent_consentstate cs "
            f"WHERE cs.profile_id = {profile_column} AND cs.purpose = {param(purpose)})"
        )
        fallback = "'granted'" if default else "'denied'"
        return f"(COALESCE({status}, {fallback}) = 'granted')"
    decided = (
        f"SELECT cs.profile_id FROM consent_consentstate cs "
        f"WHERE cs.workspace_id = {param(workspace_id)} AND cs.purpose = {param(purpose)}"
    )
    if default:  # everybody, except those whose latest decision is a no
        return f"({profile_column} NOT IN ({decided} AND cs.status <> 'granted'))"
    return f"({profile_column} IN ({decided} AND cs.status = 'granted'))"


def consent_allowed(status: str | None, default_granted: bool | None) -> bool:
    """The rule itself, for one profile: its latest decision (None = never decided) and the
    purpose's default (None = not a purpose of the workspace)."""
    if default_granted is None:
        return False
    return status == "granted" if status is not None else default_granted


def consent_state(*, workspace_id: int, profile_id: int) -> dict[str, dict[str, object]]:
    """Per defined purpose: the effective answer and, when there is one, the decision behind it
    (status and time); for the profile page and the profile API."""
    purposes = list(Purpose.objects.filter(workspace_id=workspace_id).order_by("key"))
    decided = {
        s.purpose: s
        for s in ConsentState.objects.filter(workspace_id=workspace_id, profile_id=profile_id)
    }
    out: dict[str, dict[str, object]] = {}
    for purpose in purposes:
        state = decided.get(purpose.key)
        out[purpose.key] = {
            "allowed": state.status == "granted" if state else purpose.default_granted,
            "status": state.status if state else None,
            "decided_at": state.decided_at if state else None,
            "legal_basis": purpose.legal_basis,
            "default_granted": purpose.default_granted,
        }
    return out
