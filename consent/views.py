"""Pages of the consent app: the privacy center — data subjects' requests (export, delete,
suppress, unsuppress), consent purposes, the suppression list, retention and the privacy
audit log, for owners, admins and privacy officers (capability privacy.manage) — and the
consent decision a privacy manager records from a profile page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from cdp import pages
from cdp.errors import ApplicationError, ValidationFailed
from cdp.models import Workspace
from consent import audit_display, privacy, retention, selectors, services
from consent.enforcement import consent_state
from consent.models import (
    MAX_RETENTION_DAYS,
    PRIVACY_MAX_EXTENSION_DAYS,
    ConsentStatus,
    LegalBasis,
    PrivacyRequest,
    PrivacyRequestStatus,
    PrivacyRequestType,
)
from consent.suppression import identifier_digest, line_of, suppression_import
from profiles import identifiers
from profiles.identity.selectors import profile_get

AUDIT_PAGE_SIZE = 50
SUPPRESSION_PAGE_SIZE = 50
IMPORT_ERRORS_SHOWN = 20
DROPS_DAYS = 30


@login_required
def purposes(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "privacy.manage")
    form: dict[str, Any] = {"key": "", "name": "", "description": "", "legal_basis": "consent"}
    error = ""
    status = 200
    if request.method == "POST":
        form = {name: request.POST.get(name, "").strip() for name in form}
        default = request.POST.get("default_granted", "")
        try:
            purpose = services.purpose_create(
                workspace=workspace,
                key=form["key"],
                name=form["name"] or form["key"],
                description=form["description"],
                legal_basis=form["legal_basis"],
                default_granted={"yes": True, "no": False}.get(default),
                actor=request.user,
            )
        except ApplicationError as exc:  # a bad field, or the key taken (409)
            error, status = exc.message, 400
        else:
            messages.success(request, f"Purpose {purpose.key!r} added.")
            return redirect("ui-privacy-purposes")
    profiles, overview = selectors.consent_overview(workspace=workspace)
    return render(
        request,
        "consent/privacy/purposes.html",
        {
            "purposes": overview,
            "profiles": profiles,
            "recent_days": selectors.RECENT_DAYS,
            "legal_bases": LegalBasis.choices,
            "form": form,
            "error": error,
            "tab": "purposes",
            "section": "privacy",
        },
        status=status,
    )


@login_required
def suppression(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "privacy.manage")
    import_error: dict[str, Any] | None = None
    status = 200
    if request.method == "POST":
        text = request.POST.get("identifiers", "")
        try:
            result = suppression_import(
                workspace=workspace, lines=text.splitlines(), actor=request.user
            )
        except ValidationFailed as exc:
            import_error = {
                "message": exc.message,
                "lines": [
                    {"line": line_of(path), "message": message}
                    for path, message in list(pages.field_errors(exc).items())[:IMPORT_ERRORS_SHOWN]
                ],
            }
            status = 400
        else:
            messages.success(
                request,
                f"Imported: {result.added} identifier{'s' if result.added != 1 else ''} "
                f"suppressed, {result.already} already on the list. Only their keyed hashes "
                "are kept.",
            )
            return redirect("ui-privacy-suppression")
    rows = selectors.suppression_list(workspace=workspace)
    paging = pages.paginate(request, rows, SUPPRESSION_PAGE_SIZE)
    by_day = selectors.suppression_drops_by_day(workspace=workspace, days=DROPS_DAYS)
    check = request.GET.get("identifier", "").strip()
    checked: dict[str, Any] | None = None
    if check:
        checked = {"identifier": check}
        try:
            kind, value = identifiers.parse_identifier(check)
        except ValueError as exc:
            checked["error"] = str(exc)
        else:
            digest = identifier_digest(workspace.pk, kind, value)
            checked["normalized"] = f"{kind}:{value}"
            checked["row"] = selectors.suppression_find(workspace=workspace, digest=digest)
    return render(
        request,
        "consent/privacy/suppression.html",
        {
            **paging,
            "total": paging["page"].paginator.count,
            "drops_by_day": by_day,
            "dropped_30d": sum(int(d["dropped"]) for d in by_day),
            "checked": checked,
            "import_error": import_error,
            "import_text": request.POST.get("identifiers", "") if import_error else "",
            "tab": "suppression",
            "section": "privacy",
        },
        status=status,
    )


def _retention_field(request: HttpRequest, name: str) -> Any:
    """A days field of the form: None when "keep forever" is ticked, else the number (or
    the text as typed, for the service to refuse with a specific message)."""
    if request.POST.get(f"{name}_forever") == "1":
        return None
    text = request.POST.get(name, "").strip()
    return int(text) if text.isdigit() else text


@login_required
def retention_page(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "privacy.manage")
    policy = retention.retention_policy_of(workspace=workspace)
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST" and request.POST.get("form") == "approval":
        try:
            privacy.privacy_settings_set(
                workspace=workspace,
                two_person_approval=request.POST.get("two_person_approval") == "1",
                actor=request.user,
            )
        except ApplicationError as exc:
            messages.error(request, f"Not saved: {exc.message}")
            return redirect("ui-privacy-retention")
        messages.success(
            request,
            "Approval rule saved: "
            + (
                "a request is now approved by someone other than whoever recorded it."
                if request.POST.get("two_person_approval") == "1"
                else "any privacy manager may approve a request, their own included."
            ),
        )
        return redirect("ui-privacy-retention")
    if request.method == "POST" and request.POST.get("form") == "cancel_cut":
        try:
            retention.retention_cut_cancel(workspace=workspace, actor=request.user)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "The shortening of retention is cancelled.")
        return redirect("ui-privacy-retention")
    if request.method == "POST":
        try:
            saved = retention.retention_policy_set(
                workspace=workspace,
                event_days=_retention_field(request, "event_days"),
                failed_event_days=_retention_field(request, "failed_event_days"),
                actor=request.user,
            )
        except ValidationFailed as exc:
            errors = pages.field_errors(exc)
            status = 400
            messages.error(request, "Not saved: correct the field marked below.")
        except ApplicationError as exc:  # not for this role: nothing to correct on the form
            messages.error(request, f"Not saved: {exc.message}")
            return redirect("ui-privacy-retention")
        else:
            messages.success(
                request,
                f"Retention will be shortened on {saved.pending['effective_at'][:10]} (UTC), "
                "after a grace period: until then it can be cancelled below."
                if saved.pending
                else "Retention saved. The hourly job applies it from its next run.",
            )
            return redirect("ui-privacy-retention")
    return render(
        request,
        "consent/privacy/retention.html",
        {
            "policy": policy,
            "pending_effective": (
                datetime.fromisoformat(policy.pending["effective_at"]) if policy.pending else None
            ),
            "privacy_settings": privacy.privacy_settings_of(workspace=workspace),
            "errors": errors,
            "max_days_text": f"{MAX_RETENTION_DAYS:,}",
            "posted": request.POST if request.method == "POST" else None,
            "tab": "retention",
            "section": "privacy",
        },
        status=status,
    )


@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "privacy.manage")
    kind = pages.choice(request, "kind", selectors.AUDIT_FILTERS)
    paging = pages.paginate(
        request, selectors.privacy_audit(workspace=workspace, kind=kind), AUDIT_PAGE_SIZE
    )
    for row in paging["page"].object_list:
        row.detail_lines = audit_display.detail_lines(row.detail)  # type: ignore[attr-defined]
        row.detail_json = audit_display.detail_json(row.detail)  # type: ignore[attr-defined]
    return render(
        request,
        "consent/privacy/audit.html",
        {
            **paging,
            "kind": kind,
            "filters": selectors.AUDIT_FILTERS.items(),
            "tab": "audit",
            "section": "privacy",
        },
    )


# ---- requests -------------------------------------------------------------------------------

REQUEST_PAGE_SIZE = 50
STATUS_PILLS = {
    "pending_approval": "warn",
    "approved": "rfm",
    "running": "rfm",
    "completed": "ok",
    "failed": "bad",
}


def _request_or_404(workspace: Workspace, request_id: int) -> PrivacyRequest:
    request = selectors.privacy_request_get(workspace=workspace, request_id=request_id)
    return pages.found(request, "privacy request")


@login_required
def requests_page(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "privacy.manage")
    form: dict[str, Any] = {"type": "export", "identifier": "", "note": "", "suppress": True}
    error = ""
    status = 200
    if request.method == "POST":
        form = {
            "type": request.POST.get("type", ""),
            "identifier": request.POST.get("identifier", "").strip(),
            "note": request.POST.get("note", "").strip(),
            "suppress": request.POST.get("suppress") == "1",
        }
        try:
            made = privacy.privacy_request_create(
                workspace=workspace,
                type=form["type"],
                identifier=form["identifier"],
                suppress=form["suppress"],
                note=form["note"],
                actor=request.user,
            )
        except ValidationFailed as exc:
            error, status = exc.message, 400
        else:
            messages.success(
                request,
                f"Request #{made.pk} recorded. It runs once "
                + (
                    "another privacy manager"
                    if privacy.privacy_settings_of(workspace=workspace).two_person_approval
                    else "a privacy manager"
                )
                + " approves it.",
            )
            return redirect("ui-privacy-request", request_id=made.pk)
    # one filter: a status, or a deadline (overdue, due soon)
    shown = pages.choice(
        request, "status", [*PrivacyRequestStatus.values, *selectors.DEADLINE_FILTERS]
    )
    rows = selectors.privacy_request_list(
        workspace=workspace,
        status=shown if shown in PrivacyRequestStatus.values else "",
        due=shown if shown in selectors.DEADLINE_FILTERS else "",
    )
    counts = selectors.privacy_request_counts(workspace=workspace)
    paging = pages.paginate(request, rows, REQUEST_PAGE_SIZE)
    for row in paging["page"].object_list:
        row.pill = STATUS_PILLS.get(row.status, "off")  # type: ignore[attr-defined]
    return render(
        request,
        "consent/privacy/requests.html",
        {
            **paging,
            "form": form,
            "error": error,
            "types": PrivacyRequestType.choices,
            "statuses": [
                (value, label, counts.get(value, 0))
                for value, label in PrivacyRequestStatus.choices
            ],
            "shown": shown,
            "deadlines": selectors.privacy_deadline_counts(workspace=workspace),
            "due_soon_days": selectors.DUE_SOON_DAYS,
            "tab": "requests",
            "section": "privacy",
        },
        status=status,
    )


@login_required
def request_detail(request: HttpRequest, request_id: int) -> HttpResponse:
    workspace = pages.require(request, "privacy.manage")
    found = _request_or_404(workspace, request_id)
    counts = [
        (name.replace("_", " ").capitalize(), n)
        for name, n in sorted(((found.receipt or {}).get("counts") or {}).items())
    ]
    return render(
        request,
        "consent/privacy/request.html",
        {
            "req": found,
            "pill": STATUS_PILLS.get(found.status, "off"),
            "trail": selectors.privacy_request_trail(request=found),
            "counts": counts,
            "receipt_identifiers": (found.receipt or {}).get("identifiers") or [],
            "propagations": found.propagations.order_by("destination"),
            "export_days": settings.CDP_PRIVACY_EXPORT_DAYS,
            "can_approve": found.approvable,
            "max_extension_days": PRIVACY_MAX_EXTENSION_DAYS,
            "approval_refusal": privacy.approval_refusal(request=found, actor=request.user),
            "tab": "requests",
            "section": "privacy",
        },
    )


@login_required
@require_POST
def request_extend(request: HttpRequest, request_id: int) -> HttpResponse:
    workspace = pages.require(request, "privacy.manage")
    found = _request_or_404(workspace, request_id)
    days = request.POST.get("days", "")
    try:
        extended = privacy.privacy_request_extend(
            request=found,
            days=int(days) if days.isdigit() else days,
            reason=request.POST.get("reason", ""),
            actor=request.user,
        )
    except ApplicationError as exc:
        messages.error(request, f"Not extended: {exc.message}")
    else:
        messages.success(
            request,
            f"Request #{found.pk} is now due {extended.due_at:%Y-%m-%d}. Tell the person why, "
            "within the first month.",
        )
    return redirect("ui-privacy-request", request_id=found.pk)


@login_required
@require_POST
def request_approve(request: HttpRequest, request_id: int) -> HttpResponse:
    workspace = pages.require(request, "privacy.manage")
    found = _request_or_404(workspace, request_id)
    try:
        privacy.privacy_request_approve(request=found, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Request #{found.pk} approved: it is being carried out.")
    return redirect("ui-privacy-request", request_id=found.pk)


# ---- on the profile page --------------------------------------------------------------------

CONSENT_LOG_ROWS = 50


def profile_panel(request: HttpRequest, workspace: Workspace, profile: Any) -> dict[str, Any]:
    """The consent panel of the profile page (registered in ConsentConfig.ready()): where each
    purpose stands for the person, and the decision history with who recorded what."""
    log = list(
        selectors.consent_history(workspace_id=workspace.pk, profile_id=profile.pk)[
            : CONSENT_LOG_ROWS + 1
        ]
    )
    recorders = selectors.usernames(ids={r.actor_id for r in log if r.actor_id})
    for record in log:
        record.actor_name = recorders.get(record.actor_id or 0, "")  # type: ignore[attr-defined]
    return {
        "consents": consent_state(workspace_id=workspace.pk, profile_id=profile.pk),
        "log": log[:CONSENT_LOG_ROWS],
        "log_more": len(log) > CONSENT_LOG_ROWS,
        "can_record": pages.can(request, "consent.manage"),
        "statuses": ConsentStatus.choices,
    }


@login_required
@require_POST
def profile_consent_record(request: HttpRequest, profile_id: int) -> HttpResponse:
    """A decision told to the company outside the apps (a call, a letter, a support ticket),
    recorded by a privacy manager with a reference as its proof."""
    workspace = pages.require(request, "consent.manage")
    profile = pages.found(profile_get(workspace=workspace, profile_id=profile_id), "profile")
    purpose = request.POST.get("purpose", "")
    decision = request.POST.get("status", "")
    reference = request.POST.get("reference", "").strip()[:255]
    back = redirect(f"{reverse('ui-profile', args=[profile.pk])}#consent-history")
    if not reference:
        messages.error(
            request,
            "Not recorded: give a reference (ticket, call or letter) as the proof of the decision.",
        )
        return back
    try:
        record = services.consent_record(
            workspace=workspace,
            profile_id=profile.pk,
            purpose=purpose,
            status=decision,
            message_id=reference,
            actor=request.user,
            source="ui",
        )
    except ApplicationError as exc:
        messages.error(request, f"Not recorded: {exc.message}")
        return back
    messages.success(
        request,
        f"Recorded: {record.purpose} {record.status} (reference {reference}). "
        "Segments and activation follow it from now on.",
    )
    return back
