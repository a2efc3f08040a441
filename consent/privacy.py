"""Privacy requests: export everything held about a person, delete all of it, suppress or
unsuppress their identifiers — each requested, approved and executed with an audit trail.

The subject is found from one identifier: the profiles it resolves to (the live one and every
profile merged into it), then every identifier of those profiles. Deletion is set-based SQL in
one transaction: raw and failed events carrying the identifiers, per-profile events, identities
and links, merges, conflicts, split blocks, segment memberships with their history and
schedule, consent decisions, profiles (with their traits and computed traits), earlier export
bundles, examples in the observed schema. What is left is a receipt with salted hashes and
counts, and — unless asked otherwise — keyed hashes on the suppression list so that the
person's SDKs cannot bring them back.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from cdp.errors import Conflict, Forbidden, NotFound, ValidationFailed
from cdp.models import Workspace, audit
from consent.models import (
    PRIVACY_MAX_EXTENSION_DAYS,
    PRIVACY_SLA_DAYS,
    PrivacyExport,
    PrivacyPropagation,
    PrivacyRequest,
    PrivacyRequestStatus,
    PrivacyRequestType,
    PrivacySettings,
    PropagationStatus,
)
from consent.suppression import identifier_digest, suppression_add, suppression_remove
from profiles import identifiers

logger = logging.getLogger(__name__)

# ---- the subject ----------------------------------------------------------------------------


@dataclass
class Subject:
    workspace_id: int
    profile_ids: list[int] = field(default_factory=list)  # live ones and those merged into them
    identifiers: set[tuple[str, str]] = field(default_factory=set)  # (type, normalised value)

    def values(self, *kinds: str) -> list[str]:
        return sorted({v for t, v in self.identifiers if not kinds or t in kinds})


_SUBJECT_PROFILES = """
WITH RECURSIVE found AS (
    SELECT DISTINCT i.profile_id AS id FROM profiles_identity i
    WHERE i.workspace_id = %(ws)s AND i.type = %(type)s AND i.value = %(value)s
),
live AS (  -- follow merged_into to the survivor
    SELECT p.id, p.merged_into_id FROM profiles_profile p WHERE p.id IN (SELECT id FROM found)
    UNION
    SELECT p.id, p.merged_into_id FROM profiles_profile p JOIN live ON p.id = live.merged_into_id
),
family AS (  -- the survivors and everything ever merged into them
    SELECT id FROM live WHERE merged_into_id IS NULL
    UNION
    SELECT p.id FROM profiles_profile p JOIN family f ON p.merged_into_id = f.id
)
SELECT id FROM family
"""


def subject_find(*, workspace_id: int, identifier_type: str, value: str) -> Subject:
    subject = Subject(workspace_id=workspace_id, identifiers={(identifier_type, value)})
    with connection.cursor() as cursor:
        cursor.execute(
            _SUBJECT_PROFILES, {"ws": workspace_id, "type": identifier_type, "value": value}
        )
        subject.profile_ids = sorted(row[0] for row in cursor.fetchall())
        if subject.profile_ids:
            cursor.execute(
                "SELECT type, value FROM profiles_identity WHERE profile_id = ANY(%s)",
                [subject.profile_ids],
            )
            subject.identifiers |= {(t, v) for t, v in cursor.fetchall()}
    return subject


def _trait_values(subject: Subject) -> list[str]:
    """The subject's string trait values long enough to be distinctive (for scrubbing the
    examples of the observed schema)."""
    if not subject.profile_ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT t.value #>> '{}' FROM profiles_profile p, jsonb_each(p.traits) t "
            "WHERE p.id = ANY(%s) AND jsonb_typeof(t.value) = 'string'",
            [subject.profile_ids],
        )
        return sorted(v for (v,) in cursor.fetchall() if v and len(v) >= 5)


def _patterns(values: Iterable[str]) -> list[str]:
    """ILIKE patterns matching each value anywhere in a text (LIKE wildcards escaped)."""
    out = []
    for value in values:
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        out.append(f"%{escaped}%")
    return out


# ---- requests -------------------------------------------------------------------------------


def parse_subject_identifier(spec: str) -> tuple[str, str]:
    try:
        return identifiers.parse_identifier(spec.strip())
    except ValueError as exc:
        raise ValidationFailed(
            str(exc), code="bad_identifier", detail={"field": "identifier"}
        ) from exc


@transaction.atomic
def privacy_request_create(
    *,
    workspace: Workspace,
    type: str,  # noqa: A002 - the request's type, as the API names it
    identifier: str,
    suppress: bool = True,
    note: str = "",
    actor: Any = None,
) -> PrivacyRequest:
    if type not in PrivacyRequestType.values:
        raise ValidationFailed(
            f"type: expected one of {', '.join(PrivacyRequestType.values)}",
            code="bad_type",
            detail={"field": "type"},
        )
    kind, value = parse_subject_identifier(identifier)
    now = timezone.now()
    request = PrivacyRequest.objects.create(
        workspace=workspace,
        type=type,
        identifier_type=kind,
        identifier_value=value,
        identifier_digest=identifier_digest(workspace.pk, kind, value),
        suppress=suppress if type == PrivacyRequestType.DELETE else type != "unsuppress",
        note=note,
        requested_by=actor if getattr(actor, "is_authenticated", False) else None,
        created_at=now,
        due_at=now + timedelta(days=PRIVACY_SLA_DAYS),
    )
    audit(
        workspace=workspace,
        actor=actor,
        action="privacy.request",
        target=request,
        detail={"type": type, "identifier_type": kind, "due_at": request.due_at.isoformat()},
    )
    return request


@transaction.atomic
def privacy_request_extend(
    *, request: PrivacyRequest, days: Any, reason: str, actor: Any = None
) -> PrivacyRequest:
    """Push an open request's due date back by up to PRIVACY_MAX_EXTENSION_DAYS, once, with
    the reason the person is to be told (GDPR art. 12(3): complex or numerous requests)."""
    if isinstance(days, bool) or not isinstance(days, int):
        raise ValidationFailed("days: expected a whole number of days", detail={"field": "days"})
    if not 1 <= days <= PRIVACY_MAX_EXTENSION_DAYS:
        raise ValidationFailed(
            f"days: expected 1 to {PRIVACY_MAX_EXTENSION_DAYS} (the law allows two further "
            "months at most)",
            detail={"field": "days"},
        )
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed(
            "reason: say why, as the person must be told the reason for the delay",
            detail={"field": "reason"},
        )
    locked = PrivacyRequest.objects.select_for_update().get(pk=request.pk)
    if not locked.is_open:
        raise Conflict(f"Request #{locked.pk} is completed: nothing to extend.", code="not_open")
    if locked.extended_at is not None:
        raise Conflict(
            f"Request #{locked.pk} was already extended on {locked.extended_at:%Y-%m-%d}: "
            "a deadline can be extended once.",
            code="already_extended",
        )
    before = locked.due_at
    locked.due_at = before + timedelta(days=days)
    locked.extended_at = timezone.now()
    locked.extension_reason = reason[:2000]
    locked.save(update_fields=["due_at", "extended_at", "extension_reason"])
    audit(
        workspace=locked.workspace,
        actor=actor,
        action="privacy.extend",
        target=locked,
        detail={
            "days": days,
            "due_before": before.isoformat(),
            "due_at": locked.due_at.isoformat(),
        },
    )
    return locked


# ---- settings -------------------------------------------------------------------------------


def privacy_settings_of(*, workspace: Workspace) -> PrivacySettings:
    """The workspace's settings (an unsaved row with the defaults when it never set any)."""
    found = PrivacySettings.objects.filter(workspace=workspace).first()
    return found or PrivacySettings(workspace=workspace)


@transaction.atomic
def privacy_settings_set(
    *, workspace: Workspace, two_person_approval: Any, actor: Any = None
) -> PrivacySettings:
    if not isinstance(two_person_approval, bool):
        raise ValidationFailed(
            "two_person_approval: expected true or false", detail={"field": "two_person_approval"}
        )
    row = PrivacySettings.objects.select_for_update().filter(workspace=workspace).first()
    before = row.two_person_approval if row else False
    row = row or PrivacySettings(workspace=workspace)
    row.two_person_approval = two_person_approval
    row.updated_at = timezone.now()
    row.updated_by_id = actor.pk if getattr(actor, "is_authenticated", False) else None
    row.save()
    audit(
        workspace=workspace,
        actor=actor,
        action="privacy.settings",
        target=row,
        detail={"two_person_approval": {"before": before, "after": two_person_approval}},
    )
    return row


def approval_refusal(*, request: PrivacyRequest, actor: Any) -> str | None:
    """Why `actor` may not approve `request` under the workspace's rules (None: they may).
    Status is checked separately, when the approval claims the request."""
    if not privacy_settings_of(workspace=request.workspace).two_person_approval:
        return None
    if not getattr(actor, "is_authenticated", False):
        return "Two-person approval is on: a request is approved by a named privacy manager."
    if request.requested_by_id is not None and request.requested_by_id == actor.pk:
        return (
            f"Two-person approval is on: request #{request.pk} was recorded by you, so another "
            "privacy manager must approve it."
        )
    return None


@transaction.atomic
def privacy_request_approve(*, request: PrivacyRequest, actor: Any = None) -> PrivacyRequest:
    """Approve a pending request (or re-approve a failed one); execution is queued once the
    approval is committed. By default any privacy manager may approve, the requester included
    (small teams have one); with two-person approval on, someone other than the requester
    must. Who requested and who approved are both recorded."""
    refusal = approval_refusal(request=request, actor=actor)
    if refusal:
        raise Forbidden(refusal, code="second_approver_required")
    claimed = PrivacyRequest.objects.filter(
        pk=request.pk,
        status__in=[PrivacyRequestStatus.PENDING_APPROVAL, PrivacyRequestStatus.FAILED],
    ).update(
        status=PrivacyRequestStatus.APPROVED,
        approved_by=actor if getattr(actor, "is_authenticated", False) else None,
        approved_at=timezone.now(),
        error="",
    )
    request.refresh_from_db()
    if not claimed:
        raise Conflict(
            f"Request #{request.pk} is {request.get_status_display().lower()}: only a request "
            "pending approval (or one that failed) can be approved.",
            code="not_pending",
            detail={"status": request.status},
        )
    audit(
        workspace=request.workspace,
        actor=actor,
        action="privacy.approve",
        target=request,
        detail={"type": request.type},
    )
    from consent import tasks

    request_id = request.pk
    transaction.on_commit(lambda: tasks.privacy_request_execute.delay(request_id))
    return request


def privacy_request_execute(*, request_id: int) -> PrivacyRequest | None:
    """Run an approved request. Claims it first (approved → running): a second run, or a
    duplicate task, finds nothing to claim and returns None."""
    now = timezone.now()
    claimed = PrivacyRequest.objects.filter(
        pk=request_id, status=PrivacyRequestStatus.APPROVED
    ).update(status=PrivacyRequestStatus.RUNNING, started_at=now)
    if not claimed:
        return None
    request = PrivacyRequest.objects.select_related("workspace").get(pk=request_id)
    PrivacyRequest.objects.filter(pk=request_id).update(attempts=request.attempts + 1)
    try:
        _RUNNERS[request.type](request)
    except Exception as exc:  # the work rolled back: failed, to be looked at and re-approved
        logger.exception("privacy request #%s failed", request_id)
        PrivacyRequest.objects.filter(pk=request_id).update(
            status=PrivacyRequestStatus.FAILED, error=f"{type(exc).__name__}: {exc}"
        )
        audit(
            workspace=request.workspace,
            actor=None,
            action="privacy.fail",
            target=request,
            detail={"type": request.type, "error": type(exc).__name__},
        )
        request.refresh_from_db()
        return request
    request.refresh_from_db()
    _propagate(request)
    request.refresh_from_db()
    return request


def _complete(
    request: PrivacyRequest, receipt: dict[str, Any], *, forget: Iterable[str] = ()
) -> None:
    """Mark the request completed with its receipt; `forget` (keyed digests of the person's
    identifiers) drops the identifier in clear from every request about the person."""
    now = timezone.now()
    receipt = {**receipt, "completed_at": now.isoformat()}
    PrivacyRequest.objects.filter(pk=request.pk).update(
        status=PrivacyRequestStatus.COMPLETED, completed_at=now, receipt=receipt, error=""
    )
    digests = {request.identifier_digest, *forget} if forget else set()
    if digests:
        PrivacyRequest.objects.filter(
            workspace_id=request.workspace_id, identifier_digest__in=digests
        ).update(identifier_value="")
    audit(
        workspace=request.workspace,
        actor=None,
        action="privacy.complete",
        target=request,
        detail={"type": request.type, "counts": receipt.get("counts", {})},
    )


def _subject_of(request: PrivacyRequest) -> Subject:
    if not request.identifier_value:
        raise ValidationFailed(
            "the request's identifier was already forgotten (the person was deleted)",
            code="identifier_forgotten",
        )
    return subject_find(
        workspace_id=request.workspace_id,
        identifier_type=request.identifier_type,
        value=request.identifier_value,
    )


# ---- export ---------------------------------------------------------------------------------

# each section: SQL returning one JSON row per record (row_to_json: every column, so a column
# added later is exported without touching this list)
_EXPORT_SECTIONS: dict[str, str] = {
    "profiles": "SELECT row_to_json(t) FROM profiles_profile t WHERE t.id = ANY(%(p)s) "
    "ORDER BY t.id",
    "identities": "SELECT row_to_json(t) FROM profiles_identity t WHERE t.profile_id = ANY(%(p)s)"
    " ORDER BY t.id",
    "events": "SELECT row_to_json(t) FROM profiles_event t WHERE t.id = ANY(%(events)s)"
    " ORDER BY t.timestamp, t.id",
    "failed_events": "SELECT row_to_json(t) FROM profiles_failedevent t WHERE t.id IN ("
    "SELECT id FROM ({failed}) AS f) ORDER BY t.id",
    "consent_decisions": "SELECT row_to_json(t) FROM consent_consentrecord t "
    "WHERE t.workspace_id = %(ws)s AND t.profile_id = ANY(%(p)s) ORDER BY t.occurred_at, t.id",
    "consent_state": "SELECT row_to_json(t) FROM consent_consentstate t "
    "WHERE t.profile_id = ANY(%(p)s) ORDER BY t.purpose",
    "segment_memberships": "SELECT json_build_object('segment', s.name, 'segment_key', s.key,"
    " 'entered_at', m.entered_at, 'exited_at', m.exited_at, 'version', m.version,"
    " 'profile_id', m.profile_id) FROM segments_membership m"
    " JOIN segments_segment s ON s.id = m.segment_id"
    " WHERE s.workspace_id = %(ws)s AND m.profile_id = ANY(%(p)s) ORDER BY m.entered_at, m.id",
    "segment_changes": "SELECT json_build_object('segment', s.name, 'kind', c.kind, 'at', c.at,"
    " 'version', c.version, 'profile_id', c.profile_id) FROM segments_membershipchange c"
    " JOIN segments_segment s ON s.id = c.segment_id"
    " WHERE c.workspace_id = %(ws)s AND c.profile_id = ANY(%(p)s) ORDER BY c.at, c.id",
    "merges": "SELECT row_to_json(t) FROM profiles_profilemerge t WHERE t.workspace_id = %(ws)s"
    " AND (t.winner_id = ANY(%(p)s) OR t.loser_id = ANY(%(p)s)) ORDER BY t.id",
    "identity_conflicts": "SELECT row_to_json(t) FROM profiles_identityconflict t"
    " WHERE t.workspace_id = %(ws)s AND (t.profile_id = ANY(%(p)s)"
    " OR t.identifier_value = ANY(%(all)s)) ORDER BY t.id",
}

# failed events that carry one of the identifiers: the ids they were sent with, or the value
# anywhere in what was received (failed events are stored as sent, not normalised)
_FAILED = (
    "SELECT id FROM profiles_failedevent WHERE workspace_id = %(ws)s AND ("
    " payload->>'userId' = ANY(%(all)s) OR payload->>'anonymousId' = ANY(%(all)s)"
    " OR payload::text ILIKE ANY(%(patterns)s) OR raw ILIKE ANY(%(patterns)s))"
)


_SUBJECT_EVENTS = """
SELECT event_id FROM profiles_profileevent WHERE profile_id = ANY(%(p)s)
UNION
SELECT id FROM profiles_event WHERE workspace_id = %(ws)s
  AND (user_id = ANY(%(users)s) OR anonymous_id = ANY(%(anons)s) OR previous_id = ANY(%(all)s))
"""

# emails and phones as the person's SDKs sent them (before normalisation): a dead letter
# carries them in that form
_SENT_FORMS = """
SELECT DISTINCT v FROM profiles_event e,
    LATERAL (VALUES (e.traits->>'email'), (e.traits->>'phone'),
                    (e.context->'traits'->>'email'), (e.context->'traits'->>'phone')) AS x(v)
WHERE e.id = ANY(%(events)s) AND v IS NOT NULL AND length(v) >= 5
"""


def _params(subject: Subject) -> dict[str, Any]:
    """Query parameters describing the subject: profiles, identifiers, their events, and
    ILIKE patterns of every form of their identifiers."""
    params: dict[str, Any] = {
        "ws": subject.workspace_id,
        "p": subject.profile_ids,
        "users": subject.values("user_id"),
        "anons": subject.values("anonymous_id"),
        "all": subject.values(),
    }
    with connection.cursor() as cursor:
        cursor.execute(_SUBJECT_EVENTS, params)
        params["events"] = [row[0] for row in cursor.fetchall()]
        cursor.execute(_SENT_FORMS, params)
        params["sent"] = sorted(row[0] for row in cursor.fetchall())
    params["patterns"] = _patterns(sorted(set(subject.values()) | set(params["sent"])))
    return params


def privacy_bundle(subject: Subject) -> dict[str, Any]:
    params = _params(subject)
    bundle: dict[str, Any] = {
        "generated_at": timezone.now().isoformat(),
        "identifiers": [{"type": t, "value": v} for t, v in sorted(subject.identifiers)],
    }
    with connection.cursor() as cursor:
        for name, sql in _EXPORT_SECTIONS.items():
            cursor.execute(sql.replace("{failed}", _FAILED), params)
            bundle[name] = [row[0] for row in cursor.fetchall()]
    return bundle


def _run_export(request: PrivacyRequest) -> dict[str, Any]:
    subject = _subject_of(request)
    bundle = privacy_bundle(subject)
    data = orjson.dumps(bundle, option=orjson.OPT_INDENT_2)
    counts = {k: len(v) for k, v in bundle.items() if isinstance(v, list)}
    with transaction.atomic():
        PrivacyExport.objects.update_or_create(
            request=request,
            defaults={
                "content": gzip.compress(data),
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            },
        )
        receipt = {"counts": counts, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        _complete(request, receipt)
    return receipt


def privacy_export_content(*, request: PrivacyRequest, actor: Any = None) -> bytes:
    """The export bundle as JSON bytes (audited: a download of personal data)."""
    export = PrivacyExport.objects.filter(request=request).first()
    if export is None:
        if request.type == PrivacyRequestType.EXPORT and request.receipt.get("expired_at"):
            raise NotFound(
                f"The export of request #{request.pk} expired on "
                f"{request.receipt['expired_at'][:10]}: record a new request to export again.",
                code="export_expired",
            )
        raise NotFound(f"Request #{request.pk} has no export bundle.")
    audit(
        workspace=request.workspace,
        actor=actor,
        action="privacy.export",
        target=request,
        detail={"bytes": export.size, "sha256": export.sha256},
    )
    return gzip.decompress(bytes(export.content))


def privacy_exports_expire(*, now: datetime | None = None) -> int:
    """Delete export bundles older than CDP_PRIVACY_EXPORT_DAYS (they hold a person's data in
    full); the request keeps its receipt, marked with when the bundle expired."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.CDP_PRIVACY_EXPORT_DAYS)
    expired = 0
    old = PrivacyExport.objects.filter(created_at__lt=cutoff).select_related("request__workspace")
    for export in old:
        with transaction.atomic():
            request = export.request
            PrivacyRequest.objects.filter(pk=request.pk).update(
                receipt={**request.receipt, "expired_at": now.isoformat()}
            )
            export.delete()
            audit(
                workspace=request.workspace,
                actor=None,
                action="privacy.export_expired",
                target=request,
            )
        expired += 1
    return expired


# ---- delete ---------------------------------------------------------------------------------

# (name, statement) run in order inside one transaction; each deletes (or scrubs) and its row
# count goes into the receipt. %(events)s are the raw events found before the first delete.
_DELETE_STEPS: list[tuple[str, str]] = [
    # examples in the observed schema that are a value the person sent (compared as JSON, so
    # a string matches only a whole string), or contain one of their identifiers or traits
    (
        "schema_examples",
        "UPDATE profiles_observedproperty o SET example = NULL "
        "WHERE o.workspace_id = %(ws)s AND jsonb_typeof(o.example) = 'string' AND ("
        " o.example::text ILIKE ANY(%(scrub)s) OR EXISTS (SELECT 1 FROM profiles_event e"
        "  WHERE e.id = ANY(%(events)s) AND (strpos(e.properties::text, o.example::text) > 0"
        "   OR strpos(e.traits::text, o.example::text) > 0"
        "   OR strpos(e.context::text, o.example::text) > 0)))",
    ),
    ("pending_events", "DELETE FROM profiles_pendingevent WHERE event_id = ANY(%(events)s)"),
    (
        "profile_events",
        "DELETE FROM profiles_profileevent WHERE profile_id = ANY(%(p)s) "
        "OR event_id = ANY(%(events)s)",
    ),
    ("events", "DELETE FROM profiles_event WHERE id = ANY(%(events)s)"),
    ("failed_events", "DELETE FROM profiles_failedevent WHERE id IN (SELECT id FROM ({failed}) f)"),
    (
        "consent_decisions",
        "DELETE FROM consent_consentrecord WHERE workspace_id = %(ws)s AND profile_id = ANY(%(p)s)",
    ),
    ("consent_state", "DELETE FROM consent_consentstate WHERE profile_id = ANY(%(p)s)"),
    (
        "segment_memberships",
        "DELETE FROM segments_membership m USING segments_segment s "
        "WHERE s.id = m.segment_id AND s.workspace_id = %(ws)s AND m.profile_id = ANY(%(p)s)",
    ),
    (
        "segment_changes",
        "DELETE FROM segments_membershipchange WHERE workspace_id = %(ws)s "
        "AND profile_id = ANY(%(p)s)",
    ),
    (
        "segment_expiries",
        "DELETE FROM segments_expiry x USING segments_segment s "
        "WHERE s.id = x.segment_id AND s.workspace_id = %(ws)s AND x.profile_id = ANY(%(p)s)",
    ),
    (
        "identity_conflicts",
        "DELETE FROM profiles_identityconflict WHERE workspace_id = %(ws)s "
        "AND (profile_id = ANY(%(p)s) OR other_profile_id = ANY(%(p)s) "
        "OR identifier_value = ANY(%(all)s))",
    ),
    (
        "split_blocks",
        "DELETE FROM profiles_splitblock WHERE workspace_id = %(ws)s "
        "AND (profile_a_id = ANY(%(p)s) OR profile_b_id = ANY(%(p)s))",
    ),
    (
        "merges",
        "DELETE FROM profiles_profilemerge WHERE workspace_id = %(ws)s "
        "AND (winner_id = ANY(%(p)s) OR loser_id = ANY(%(p)s) "
        "OR identifiers::text ILIKE ANY(%(patterns)s))",
    ),
    (
        "identity_links",
        "DELETE FROM profiles_identitylink WHERE workspace_id = %(ws)s AND "
        "(a_id IN (SELECT id FROM profiles_identity WHERE profile_id = ANY(%(p)s)) "
        "OR b_id IN (SELECT id FROM profiles_identity WHERE profile_id = ANY(%(p)s)))",
    ),
    ("identities", "DELETE FROM profiles_identity WHERE profile_id = ANY(%(p)s)"),
    # merged_into points among them: clear the pointers first (not counted), then delete
    ("_unlink", "UPDATE profiles_profile SET merged_into_id = NULL WHERE id = ANY(%(p)s)"),
    ("profiles", "DELETE FROM profiles_profile WHERE id = ANY(%(p)s)"),
    (
        "earlier_exports",
        "DELETE FROM consent_privacyexport x USING consent_privacyrequest r "
        "WHERE r.id = x.request_id AND r.workspace_id = %(ws)s "
        "AND r.identifier_digest = ANY(%(digests)s)",
    ),
]


def _digests(workspace_id: int, subject: Subject) -> list[str]:
    return sorted(identifier_digest(workspace_id, t, v) for t, v in subject.identifiers)


def _salted(salt: str, kind: str, value: str) -> str:
    return hashlib.sha256(f"{salt}\x1f{kind}\x1f{value}".encode()).hexdigest()


def _run_delete(request: PrivacyRequest) -> dict[str, Any]:
    from profiles.identity.resolve import lock_workspaces

    workspace = request.workspace
    with transaction.atomic():
        # the pipeline resolves identities under this lock (shared): holding it exclusively
        # waits for batches in flight and keeps new ones from re-creating the person between
        # finding them and deleting them; the suppression commits with the deletion
        lock_workspaces([workspace.pk], exclusive=True)
        subject = _subject_of(request)
        params = _params(subject)
        params["scrub"] = _patterns(
            sorted(set(subject.values()) | set(params["sent"]) | set(_trait_values(subject)))
        )
        params["digests"] = _digests(workspace.pk, subject)
        counts: dict[str, int] = {}
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL cdp.privacy_delete = 'on'")
            for name, sql in _DELETE_STEPS:
                cursor.execute(sql.replace("{failed}", _FAILED), params)
                if not name.startswith("_"):
                    counts[name] = cursor.rowcount
        suppressed = 0
        if request.suppress:
            for kind, value in sorted(subject.identifiers):
                suppression_add(
                    workspace=workspace,
                    identifier_type=kind,
                    normalized_value=value,
                    reason="deletion",
                )
                suppressed += 1
        salt = secrets.token_hex(16)
        receipt = {
            "salt": salt,
            "identifiers": [
                {"type": t, "sha256": _salted(salt, t, v)} for t, v in sorted(subject.identifiers)
            ],
            "counts": counts,
            "suppressed_identifiers": suppressed,
        }
        _complete(request, receipt, forget=params["digests"])
    return receipt


# ---- suppress / unsuppress ------------------------------------------------------------------


def _run_suppress(request: PrivacyRequest) -> dict[str, Any]:
    subject = _subject_of(request)
    with transaction.atomic():
        for kind, value in sorted(subject.identifiers):
            suppression_add(
                workspace=request.workspace,
                identifier_type=kind,
                normalized_value=value,
                reason="request",
            )
        receipt = {
            "suppressed_identifiers": len(subject.identifiers),
            "types": sorted({t for t, _ in subject.identifiers}),
        }
        _complete(request, receipt, forget=_digests(request.workspace_id, subject))
    return receipt


def _run_unsuppress(request: PrivacyRequest) -> dict[str, Any]:
    subject = _subject_of(request)
    with transaction.atomic():
        removed = sum(
            suppression_remove(
                workspace=request.workspace, identifier_type=kind, normalized_value=value
            )
            for kind, value in sorted(subject.identifiers)
        )
        receipt = {"unsuppressed_identifiers": removed}
        _complete(request, receipt)
    return receipt


_RUNNERS: dict[str, Callable[[PrivacyRequest], dict[str, Any]]] = {
    PrivacyRequestType.EXPORT: _run_export,
    PrivacyRequestType.DELETE: _run_delete,
    PrivacyRequestType.SUPPRESS: _run_suppress,
    PrivacyRequestType.UNSUPPRESS: _run_unsuppress,
}

# ---- propagation to destinations ------------------------------------------------------------

# name -> callable(request, hashed identifiers) that asks one destination to erase/suppress;
# destinations (activation) register themselves. The clear identifiers are gone by then: a
# propagator gets the request's type and the receipt's salted hashes plus the suppression
# digests, which is what erasure APIs that match on hashes accept.
Propagator = Callable[[PrivacyRequest], dict[str, Any] | None]
PROPAGATORS: dict[str, Propagator] = {}


def register_propagator(name: str, propagator: Propagator) -> None:
    PROPAGATORS[name] = propagator


def unregister_propagator(name: str) -> None:
    PROPAGATORS.pop(name, None)


def _propagate(request: PrivacyRequest) -> None:
    if request.type not in (PrivacyRequestType.DELETE, PrivacyRequestType.SUPPRESS):
        return
    for name, propagator in sorted(PROPAGATORS.items()):
        row, created = PrivacyPropagation.objects.get_or_create(
            request=request,
            destination=name,
            defaults={"status": PropagationStatus.FAILED, "attempts": 0},
        )
        if row.status == PropagationStatus.SENT:
            continue
        try:
            detail = propagator(request) or {}
        except Exception as exc:  # noqa: BLE001 - one destination failing must not stop others
            row.status, row.error = PropagationStatus.FAILED, f"{type(exc).__name__}: {exc}"
            row.detail = {}
        else:
            row.status, row.error, row.detail = PropagationStatus.SENT, "", detail
        row.attempts += 1
        row.updated_at = timezone.now()
        row.save()
