"""Privacy requests: export everything held about a person, delete all of it, suppress or
unsuppress their identifiers — each requested, approved and executed with an audit trail.

The subject is found from one identifier (profiles.privacy.subject_find): the profiles it
resolves to and every identifier of those profiles. Export and deletion are orchestrated
here over the privacy handlers each app registers for its own tables (profiles.privacy): the
deletion runs them all in one transaction, set-based SQL each — raw and failed events, per-
profile events, identities and links, merges, conflicts, split blocks, profiles (profiles);
consent decisions and earlier export bundles (consent, below); segment memberships with their
history and schedule (segments); whatever a later app holds. What is left is a receipt with
salted hashes and counts, and — unless asked otherwise — keyed hashes on the suppression list
so that the person's SDKs cannot bring them back.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from cdp import access
from cdp.errors import Conflict, Forbidden, NotFound, ValidationFailed
from cdp.models import Role, Workspace, audit
from consent.models import (
    APPROVABLE_STATUSES,
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
from profiles import identifiers, privacy
from profiles.identity.resolve import lock_workspaces
from profiles.privacy import Subject, handlers, subject_find

logger = logging.getLogger(__name__)

# ---- requests -------------------------------------------------------------------------------


def parse_subject_identifier(spec: str) -> tuple[str, str]:
    try:
        return identifiers.parse_identifier(spec.strip())
    except ValueError as exc:
        raise ValidationFailed({"identifier": [str(exc)]}, message=str(exc)) from exc


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
        raise ValidationFailed.at("type", f"expected one of {', '.join(PrivacyRequestType.values)}")
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
        raise ValidationFailed.at("days", "expected a whole number of days")
    if not 1 <= days <= PRIVACY_MAX_EXTENSION_DAYS:
        raise ValidationFailed.at(
            "days",
            f"expected 1 to {PRIVACY_MAX_EXTENSION_DAYS} (the law allows two further months "
            "at most)",
        )
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed.at(
            "reason", "say why, as the person must be told the reason for the delay"
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


def _clean_pii_traits(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationFailed.at("pii_traits", "expected a list of trait names")
    blank = [index for index, v in enumerate(value) if not v.strip()]
    if blank:
        raise ValidationFailed.at(f"pii_traits[{blank[0]}]", "a trait name, not blank")
    clean = sorted({v.strip() for v in value})
    if len(clean) > 200 or any(len(v) > 100 for v in clean):
        raise ValidationFailed.at("pii_traits", "at most 200 names of at most 100 characters")
    return clean


UNCHANGED: Any = object()  # a setting left as it is (None would be a value to refuse)


@transaction.atomic
def privacy_settings_set(
    *,
    workspace: Workspace,
    two_person_approval: Any,
    pii_traits: Any = UNCHANGED,
    actor: Any = None,
) -> PrivacySettings:
    """`pii_traits` UNCHANGED (the default): kept as they are."""
    if not isinstance(two_person_approval, bool):
        raise ValidationFailed.at("two_person_approval", "expected true or false")
    pii = _clean_pii_traits(pii_traits) if pii_traits is not UNCHANGED else None
    row = PrivacySettings.objects.select_for_update().filter(workspace=workspace).first()
    before = row.two_person_approval if row else False
    lifting = before and not two_person_approval
    if lifting and actor is not None and access.role_of(actor, workspace) != Role.OWNER:
        # the rule is what stops one person approving their own request: the person it
        # binds may not lift it alone
        raise Forbidden("Only an owner can turn two-person approval off.", code="owner_required")
    row = row or PrivacySettings(workspace=workspace)
    before_pii = list(row.pii_traits)
    row.two_person_approval = two_person_approval
    if pii is not None:
        row.pii_traits = pii
    row.updated_at = timezone.now()
    row.updated_by_id = actor.pk if getattr(actor, "is_authenticated", False) else None
    row.save()
    audit(
        workspace=workspace,
        actor=actor,
        action="privacy.settings",
        target=row,
        detail={
            "two_person_approval": {"before": before, "after": two_person_approval},
            **({"pii_traits": {"before": before_pii, "after": pii}} if pii is not None else {}),
        },
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
    claimed = PrivacyRequest.objects.filter(pk=request.pk, status__in=APPROVABLE_STATUSES).update(
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
        raise Conflict(
            "the request's identifier was already forgotten (the person was deleted)",
            code="identifier_forgotten",
        )
    subject = subject_find(
        workspace_id=request.workspace_id,
        identifier_type=request.identifier_type,
        value=request.identifier_value,
    )
    subject.request_id = request.pk
    subject.digests = sorted(
        identifier_digest(request.workspace_id, t, v) for t, v in subject.identifiers
    )
    return subject


# ---- export ---------------------------------------------------------------------------------


def privacy_bundle(subject: Subject) -> dict[str, Any]:
    """Everything held about the subject: each app's handler adds its sections."""
    bundle: dict[str, Any] = {
        "generated_at": timezone.now().isoformat(),
        "identifiers": [{"type": t, "value": v} for t, v in sorted(subject.identifiers)],
    }
    for handler in handlers():
        bundle.update(handler.export(subject))
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

# consent's own rows, for its privacy handler (registered in ConsentConfig.ready())
_EXPORT_SECTIONS: dict[str, str] = {
    "consent_decisions": "SELECT row_to_json(t) FROM consent_consentrecord t "
    "WHERE t.workspace_id = %(ws)s AND t.profile_id = ANY(%(p)s) ORDER BY t.occurred_at, t.id",
    "consent_state": "SELECT row_to_json(t) FROM consent_consentstate t "
    "WHERE t.profile_id = ANY(%(p)s) ORDER BY t.purpose",
}
_DELETE_STEPS: list[tuple[str, str]] = [
    (
        "consent_decisions",
        "DELETE FROM consent_consentrecord WHERE workspace_id = %(ws)s AND profile_id = ANY(%(p)s)",
    ),
    ("consent_state", "DELETE FROM consent_consentstate WHERE profile_id = ANY(%(p)s)"),
    (
        "earlier_exports",
        "DELETE FROM consent_privacyexport x USING consent_privacyrequest r "
        "WHERE r.id = x.request_id AND r.workspace_id = %(ws)s "
        "AND r.identifier_digest = ANY(%(digests)s)",
    ),
]


def register_handler() -> None:
    privacy.register_sql_handler(
        "consent", export_sections=_EXPORT_SECTIONS, delete_steps=_DELETE_STEPS
    )


def _salted(salt: str, kind: str, value: str) -> str:
    return hashlib.sha256(f"{salt}\x1f{kind}\x1f{value}".encode()).hexdigest()


def _run_delete(request: PrivacyRequest) -> dict[str, Any]:
    workspace = request.workspace
    with transaction.atomic():
        # the pipeline resolves identities under this lock (shared): holding it exclusively
        # waits for batches in flight and keeps new ones from re-creating the person between
        # finding them and deleting them; the suppression commits with the deletion
        lock_workspaces([workspace.pk], exclusive=True)
        subject = _subject_of(request)
        with connection.cursor() as cursor:
            # lets the deletion through the consent log's append-only trigger
            cursor.execute("SET LOCAL cdp.privacy_delete = 'on'")
        counts: dict[str, int] = {}
        for handler in reversed(handlers()):  # higher apps' rows point at the profiles
            counts.update(handler.delete(subject))
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
        _complete(request, receipt, forget=subject.digests)
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
        _complete(request, receipt, forget=subject.digests)
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


def privacy_propagation_record(
    *,
    request_id: int,
    destination: str,
    delivered: bool | None,
    detail: dict[str, Any] | None = None,
    error: str = "",
) -> None:
    """Record on a request's receipt what a destination was asked to do and how it went
    (`delivered` None: queued). Activation reports its deletion notices here, in the
    transaction that records their outcome; rows never go back from sent."""
    status = (
        PropagationStatus.PENDING
        if delivered is None
        else PropagationStatus.SENT
        if delivered
        else PropagationStatus.FAILED
    )
    row, created = PrivacyPropagation.objects.get_or_create(
        request_id=request_id,
        destination=destination[:200],
        defaults={
            "status": status,
            "detail": detail or {},
            "error": error[:2000],
            "attempts": 0 if delivered is None else 1,
        },
    )
    if created or row.status == PropagationStatus.SENT:
        return
    row.status, row.detail, row.error = status, detail or {}, error[:2000]
    if delivered is not None:
        row.attempts += 1
    row.updated_at = timezone.now()
    row.save()


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
