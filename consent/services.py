"""Purposes and the consent log: decisions from events (context.consent.categoryPreferences and
"Segment Consent Preference Updated"), from the API, and their move with profile merges and
splits. The current state per profile and purpose is derived from the log."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from cdp.errors import NotFound, ValidationFailed, duplicate
from cdp.models import Workspace, audit
from consent.models import ConsentRecord, ConsentStatus, LegalBasis, Purpose
from profiles.pipeline.stages import Batch

CONSENT_EVENT = "Segment Consent Preference Updated"
PURPOSE_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

# ---- purposes -------------------------------------------------------------------------------


def normalise_purpose(name: str) -> str:
    """ "Marketing Email", "marketing-email" and "marketing_email" are the same purpose."""
    return re.sub(r"[\s\-]+", "_", name.strip()).lower()


def purpose_create(
    *,
    workspace: Workspace,
    key: str,
    name: str,
    legal_basis: str,
    default_granted: bool | None = None,
    description: str = "",
    actor: Any = None,
) -> Purpose:
    key = normalise_purpose(key)
    if not PURPOSE_KEY.match(key):
        raise ValidationFailed.at(
            "key", "expected letters, digits and underscores, starting with a letter"
        )
    if legal_basis not in LegalBasis.values:
        raise ValidationFailed.at("legal_basis", f"expected one of {', '.join(LegalBasis.values)}")
    if Purpose.objects.filter(workspace=workspace, key=key).exists():
        raise duplicate("key", f"the purpose {key!r} exists already")
    if default_granted is None:  # opt-in under consent, opt-out under legitimate interest
        default_granted = legal_basis == LegalBasis.LEGITIMATE_INTEREST
    if default_granted and legal_basis == LegalBasis.CONSENT:
        raise ValidationFailed.at(
            "default_granted", "under consent nobody is in before they say yes"
        )
    purpose = Purpose.objects.create(
        workspace=workspace,
        key=key,
        name=name.strip() or key,
        legal_basis=legal_basis,
        default_granted=default_granted,
        description=description,
    )
    audit(workspace=workspace, actor=actor, action="consent.purpose_create", target=purpose)
    return purpose


DEFAULT_PURPOSES = [
    ("analytics", "Analytics", LegalBasis.LEGITIMATE_INTEREST),
    ("personalization", "Personalization", LegalBasis.CONSENT),
    ("marketing_email", "Marketing email", LegalBasis.CONSENT),
    ("advertising", "Advertising", LegalBasis.CONSENT),
    ("ml_training", "ML training", LegalBasis.LEGITIMATE_INTEREST),
]


def purposes_install_defaults(*, workspace: Workspace) -> list[Purpose]:
    """The usual purposes, for a new workspace (existing ones are left alone)."""
    made = []
    for key, name, basis in DEFAULT_PURPOSES:
        if not Purpose.objects.filter(workspace=workspace, key=key).exists():
            made.append(purpose_create(workspace=workspace, key=key, name=name, legal_basis=basis))
    return made


# ---- recording ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    workspace_id: int
    profile_id: int
    purpose: str
    status: str
    occurred_at: datetime
    source: str
    event_id: int | None = None
    message_id: str = ""
    policy_version: str = ""
    ip: str = ""
    user_agent: str = ""
    actor_id: int | None = None


def consent_record(
    *,
    workspace: Workspace,
    profile_id: int,
    purpose: str,
    status: str,
    occurred_at: datetime | None = None,
    policy_version: str = "",
    message_id: str = "",
    ip: str = "",
    user_agent: str = "",
    actor: Any = None,
    source: str = "api",
) -> ConsentRecord:
    """Record one decision made outside an event stream (a form, a call-centre, the API)."""
    from profiles.models import Profile

    key = normalise_purpose(purpose)
    if not Purpose.objects.filter(workspace=workspace, key=key).exists():
        raise ValidationFailed.at("purpose", f"{purpose!r} is not a purpose of this workspace")
    if status not in ConsentStatus.values:
        raise ValidationFailed.at("status", f"expected one of {', '.join(ConsentStatus.values)}")
    profile = Profile.objects.filter(workspace=workspace, pk=profile_id).first()
    if profile is None:
        raise NotFound(f"No profile {profile_id} in this workspace.")
    live_id = profile.merged_into_id or profile.pk
    when = occurred_at or timezone.now()
    if when > timezone.now() + timedelta(minutes=5):
        raise ValidationFailed.at("occurred_at", "a decision cannot be in the future")
    actor_id = actor.pk if getattr(actor, "is_authenticated", False) else None
    with transaction.atomic():
        (record_id,) = _insert(
            [
                Decision(
                    workspace.pk, live_id, key, status, when, source, None, message_id,
                    policy_version, ip, user_agent, actor_id,
                )
            ]
        )  # fmt: skip
        consent_state_refresh(profile_ids=[live_id])
        audit(
            workspace=workspace,
            actor=actor,
            action="consent.record",
            detail={"profile": live_id, "purpose": key, "status": status},
        )
    return ConsentRecord.objects.get(pk=record_id)


def _insert(decisions: Sequence[Decision]) -> list[int]:
    if not decisions:
        return []
    now = timezone.now()
    rows = [
        ConsentRecord(
            workspace_id=d.workspace_id,
            profile_id=d.profile_id,
            origin_profile_id=d.profile_id,
            purpose=d.purpose,
            status=d.status,
            occurred_at=d.occurred_at,
            recorded_at=now,
            source=d.source,
            event_id=d.event_id,
            message_id=d.message_id[:255],
            policy_version=d.policy_version[:64],
            ip=d.ip[:64],
            user_agent=d.user_agent,
            actor_id=d.actor_id,
        )
        for d in decisions
    ]
    return [r.pk for r in ConsentRecord.objects.bulk_create(rows)]


_REFRESH = """
WITH latest AS (
    SELECT DISTINCT ON (profile_id, purpose)
           workspace_id, profile_id, purpose, status, occurred_at, id
    FROM consent_consentrecord
    WHERE profile_id = ANY(%(ids)s)
    ORDER BY profile_id, purpose, occurred_at DESC, recorded_at DESC, id DESC
),
gone AS (
    DELETE FROM consent_consentstate s
    WHERE s.profile_id = ANY(%(ids)s)
      AND NOT EXISTS (
          SELECT 1 FROM latest l WHERE l.profile_id = s.profile_id AND l.purpose = s.purpose
      )
)
INSERT INTO consent_consentstate (workspace_id, profile_id, purpose, status, decided_at, record_id)
SELECT workspace_id, profile_id, purpose, status, occurred_at, id FROM latest
ON CONFLICT (profile_id, purpose) DO UPDATE
SET status = EXCLUDED.status, decided_at = EXCLUDED.decided_at, record_id = EXCLUDED.record_id,
    workspace_id = EXCLUDED.workspace_id
WHERE consent_consentstate.record_id IS DISTINCT FROM EXCLUDED.record_id
"""


def consent_state_refresh(*, profile_ids: Iterable[int]) -> None:
    """Re-derive the current state of these profiles from the log."""
    ids = sorted(set(profile_ids))
    if ids:
        with connection.cursor() as cursor:
            cursor.execute(_REFRESH, {"ids": ids})


# ---- from events (a pipeline stage) ---------------------------------------------------------


def _preferences(context: Any) -> dict[str, bool]:
    consent = context.get("consent") if isinstance(context, dict) else None
    prefs = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    if not isinstance(prefs, dict):
        return {}
    return {normalise_purpose(k): v for k, v in prefs.items() if isinstance(v, bool) and k}


def consent_stage(batch: Batch) -> None:
    """The pipeline stage (registered in ConsentConfig.ready()): decisions carried by the
    batch's events, recorded against the profiles identity resolution found."""
    consent_from_events(events=batch.events, profile_of=batch.resolution.profile_of)


def consent_from_events(*, events: Sequence[Any], profile_of: dict[int, int]) -> int:
    """Decisions carried by a processed batch. `context.consent.categoryPreferences` rides on
    every event once the person chose, so it is recorded when it changes what is known; the
    explicit "Segment Consent Preference Updated" event is always a decision. Categories the
    workspace has no purpose for are ignored. Returns how many records were written."""
    with_prefs = [
        (e, prefs)
        for e in events
        if (prefs := _preferences(e.context)) and profile_of.get(int(e.pk)) is not None
    ]
    if not with_prefs:
        return 0
    workspaces = {int(e.workspace_id) for e, _ in with_prefs}
    purposes = {
        (ws, key)
        for ws, key in Purpose.objects.filter(workspace_id__in=workspaces).values_list(
            "workspace_id", "key"
        )
    }
    profiles = {profile_of[int(e.pk)] for e, _ in with_prefs}
    known: dict[tuple[int, str], tuple[str, datetime]] = {}
    from consent.models import ConsentState

    for state in ConsentState.objects.filter(profile_id__in=profiles):
        known[(state.profile_id, state.purpose)] = (state.status, state.decided_at)
    decisions = []
    for event, prefs in sorted(with_prefs, key=lambda pair: (pair[0].timestamp, pair[0].pk)):
        ws, pid = int(event.workspace_id), profile_of[int(event.pk)]
        explicit = event.type == "track" and event.event == CONSENT_EVENT
        context = event.context if isinstance(event.context, dict) else {}
        for key, granted in prefs.items():
            if (ws, key) not in purposes:
                continue
            status = ConsentStatus.GRANTED if granted else ConsentStatus.DENIED
            current = known.get((pid, key))
            if not explicit and current is not None and current[0] == status:
                continue
            if not explicit and current is not None and event.timestamp < current[1]:
                continue  # an old event repeating an old answer is not a new decision
            consent = context.get("consent") or {}
            decisions.append(
                Decision(
                    ws,
                    pid,
                    key,
                    status,
                    event.timestamp,
                    "event",
                    int(event.pk),
                    str(event.message_id),
                    str(consent.get("policyVersion") or consent.get("policy_version") or ""),
                    str(context.get("ip") or ""),
                    str(context.get("userAgent") or ""),
                )
            )
            if current is None or event.timestamp >= current[1]:
                known[(pid, key)] = (status, event.timestamp)
    _insert(decisions)
    consent_state_refresh(profile_ids={d.profile_id for d in decisions})
    return len(decisions)


# ---- merges and splits ----------------------------------------------------------------------


def move_consents_on_merge(workspace_id: int, winner_id: int, loser_id: int) -> None:
    """Merge hook: the loser's decisions join the survivor's; the latest decision per purpose
    wins, whichever profile it was made on."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE consent_consentrecord SET profile_id = %s WHERE profile_id = %s",
            [winner_id, loser_id],
        )
    consent_state_refresh(profile_ids=[winner_id, loser_id])


def move_consents_on_split(workspace_id: int, survivor_id: int, restored_id: int) -> None:
    """Split hook: a decision goes back with the event that carried it; one recorded through
    the API goes back to the profile it was recorded on."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE consent_consentrecord r SET profile_id = pe.profile_id
            FROM profiles_profileevent pe
            WHERE r.profile_id = %(survivor)s AND r.event_id IS NOT NULL
              AND pe.event_id = r.event_id AND pe.profile_id <> r.profile_id
            """,
            {"survivor": survivor_id},
        )
        cursor.execute(
            "UPDATE consent_consentrecord SET profile_id = %(restored)s "
            "WHERE profile_id = %(survivor)s AND event_id IS NULL "
            "AND origin_profile_id = %(restored)s",
            {"survivor": survivor_id, "restored": restored_id},
        )
    consent_state_refresh(profile_ids=[survivor_id, restored_id])
