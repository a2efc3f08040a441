"""The privacy center: data subjects' requests (export, delete, suppress, unsuppress), consent
purposes, the suppression list, retention and the privacy audit log. For owners, admins and
privacy officers (capability privacy.manage)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from cdp.errors import ApplicationError, ValidationFailed
from cdp.models import AuditLog
from cdp.ui.profile_views import _page, _query_string
from cdp.ui.views import _require
from consent import privacy, retention, services
from consent import selectors as consent_selectors
from consent.models import (
    MAX_RETENTION_DAYS,
    PRIVACY_MAX_EXTENSION_DAYS,
    LegalBasis,
    PrivacyExport,
    PrivacyRequest,
    PrivacyRequestStatus,
    PrivacyRequestType,
    SuppressedIdentifier,
    SuppressionDropCount,
)
from consent.suppression import identifier_digest, suppression_import
from profiles import identifiers

AUDIT_PAGE_SIZE = 50
SUPPRESSION_PAGE_SIZE = 50
# audit actions shown in the privacy center (prefixes)
PRIVACY_ACTIONS = ("privacy.", "consent.", "retention.", "suppression.")
AUDIT_FILTERS = [
    ("", "All privacy actions"),
    ("privacy.", "Privacy requests"),
    ("consent.", "Consent decisions"),
    ("retention.", "Retention"),
    ("export", "Data exports"),
]


def _paging(request: HttpRequest, page: Any) -> dict[str, Any]:
    return {
        "page": page,
        "prev_query": _query_string(request, page=str(page.number - 1)),
        "next_query": _query_string(request, page=str(page.number + 1)),
    }


def _privacy_audit(workspace: Any, kind: str) -> Any:
    """The workspace's audit entries about personal data: privacy requests, consent,
    purposes, retention, suppression, and every export of personal data."""
    if kind == "export":
        condition = Q(action__endswith=".export")
    elif kind:
        condition = Q(action__startswith=kind)
    else:
        condition = Q(action__endswith=".export")
        for prefix in PRIVACY_ACTIONS:
            condition |= Q(action__startswith=prefix)
    return (
        AuditLog.objects.filter(workspace=workspace)
        .filter(condition)
        .select_related("actor")
        .order_by("-created_at", "-id")
    )


@login_required
def purposes(request: HttpRequest) -> HttpResponse:
    workspace = _require(request, "privacy.manage")
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
        except ValidationFailed as exc:
            error, status = exc.message, 400
        else:
            messages.success(request, f"Purpose {purpose.key!r} added.")
            return redirect("ui-privacy-purposes")
    profiles, overview = consent_selectors.consent_overview(workspace=workspace)
    return render(
        request,
        "consent/privacy/purposes.html",
        {
            "purposes": overview,
            "profiles": profiles,
            "recent_days": consent_selectors.RECENT_DAYS,
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
    workspace = _require(request, "privacy.manage")
    import_error: dict[str, Any] | None = None
    status = 200
    if request.method == "POST":
        text = request.POST.get("identifiers", "")
        try:
            result = suppression_import(
                workspace=workspace, lines=text.splitlines(), actor=request.user
            )
        except ValidationFailed as exc:
            import_error = {"message": exc.message, "errors": exc.detail.get("errors", [])[:20]}
            status = 400
        else:
            messages.success(
                request,
                f"Imported: {result.added} identifier{'s' if result.added != 1 else ''} "
                f"suppressed, {result.already} already on the list. Only their keyed hashes "
                "are kept.",
            )
            return redirect("ui-privacy-suppression")
    rows = SuppressedIdentifier.objects.filter(workspace=workspace).order_by("-created_at", "-id")
    page = _page(request, rows, SUPPRESSION_PAGE_SIZE)
    since = timezone.now().date() - timedelta(days=29)
    drops = SuppressionDropCount.objects.filter(workspace=workspace, day__gte=since)
    by_day = list(drops.values("day").annotate(dropped=Sum("dropped")).order_by("-day"))
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
            checked["row"] = rows.filter(digest=digest).first()
    return render(
        request,
        "consent/privacy/suppression.html",
        {
            **_paging(request, page),
            "total": page.paginator.count,
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
    workspace = _require(request, "privacy.manage")
    policy = retention.retention_policy_of(workspace=workspace)
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST" and request.POST.get("form") == "approval":
        privacy.privacy_settings_set(
            workspace=workspace,
            two_person_approval=request.POST.get("two_person_approval") == "1",
            actor=request.user,
        )
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
    if request.method == "POST":
        try:
            retention.retention_policy_set(
                workspace=workspace,
                event_days=_retention_field(request, "event_days"),
                failed_event_days=_retention_field(request, "failed_event_days"),
                actor=request.user,
            )
        except ValidationFailed as exc:
            field = str(exc.detail.get("field") or "form")
            errors[field] = exc.message.split(": ", 1)[-1]
            status = 400
            messages.error(request, "Not saved: correct the field marked below.")
        else:
            messages.success(
                request, "Retention saved. The hourly job applies it from its next run."
            )
            return redirect("ui-privacy-retention")
    return render(
        request,
        "consent/privacy/retention.html",
        {
            "policy": policy,
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
    workspace = _require(request, "privacy.manage")
    kind = request.GET.get("kind", "")
    if kind not in {k for k, _ in AUDIT_FILTERS}:
        kind = ""
    page = _page(request, _privacy_audit(workspace, kind), AUDIT_PAGE_SIZE)
    for row in page.object_list:
        row.detail_items = [  # type: ignore[attr-defined]
            (key, orjson.dumps(value, default=str).decode())
            for key, value in sorted((row.detail or {}).items())
        ]
    return render(
        request,
        "consent/privacy/audit.html",
        {
            **_paging(request, page),
            "kind": kind,
            "filters": AUDIT_FILTERS,
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


def _request_or_404(workspace: Any, request_id: int) -> PrivacyRequest:
    found = (
        PrivacyRequest.objects.filter(workspace=workspace, pk=request_id)
        .select_related("requested_by", "approved_by")
        .first()
    )
    if found is None:
        raise Http404("No such privacy request in this workspace.")
    return found


@login_required
def requests_page(request: HttpRequest) -> HttpResponse:
    workspace = _require(request, "privacy.manage")
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
    rows = PrivacyRequest.objects.filter(workspace=workspace).select_related("requested_by")
    shown = request.GET.get("status", "")
    counts = dict(rows.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    if shown in PrivacyRequestStatus.values:
        rows = rows.filter(status=shown).order_by("-created_at", "-id")
    elif shown in consent_selectors.DEADLINE_FILTERS:
        rows = consent_selectors.privacy_requests_due(rows, shown)  # the most urgent first
    else:
        shown = ""
        rows = rows.order_by("-created_at", "-id")
    page = _page(request, rows, REQUEST_PAGE_SIZE)
    for row in page.object_list:
        row.pill = STATUS_PILLS.get(row.status, "off")  # type: ignore[attr-defined]
    return render(
        request,
        "consent/privacy/requests.html",
        {
            **_paging(request, page),
            "form": form,
            "error": error,
            "types": PrivacyRequestType.choices,
            "statuses": [
                (value, label, counts.get(value, 0))
                for value, label in PrivacyRequestStatus.choices
            ],
            "shown": shown,
            "deadlines": consent_selectors.privacy_deadline_counts(workspace=workspace),
            "due_soon_days": consent_selectors.DUE_SOON_DAYS,
            "open_count": sum(n for s, n in counts.items() if s not in ("completed",)),
            "tab": "requests",
            "section": "privacy",
        },
        status=status,
    )


@login_required
def request_detail(request: HttpRequest, request_id: int) -> HttpResponse:
    workspace = _require(request, "privacy.manage")
    found = _request_or_404(workspace, request_id)
    trail = (
        AuditLog.objects.filter(
            workspace=workspace, target_type="consent.privacyrequest", target_id=str(found.pk)
        )
        .select_related("actor")
        .order_by("created_at", "id")
    )
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
            "trail": trail,
            "counts": counts,
            "receipt_identifiers": (found.receipt or {}).get("identifiers") or [],
            "propagations": found.propagations.order_by("destination"),
            "has_export": PrivacyExport.objects.filter(request=found).exists(),
            "export_days": settings.CDP_PRIVACY_EXPORT_DAYS,
            "can_approve": found.status in ("pending_approval", "failed"),
            "max_extension_days": PRIVACY_MAX_EXTENSION_DAYS,
            "approval_refusal": privacy.approval_refusal(request=found, actor=request.user),
            "tab": "requests",
            "section": "privacy",
        },
    )


@login_required
@require_POST
def request_extend(request: HttpRequest, request_id: int) -> HttpResponse:
    workspace = _require(request, "privacy.manage")
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
    workspace = _require(request, "privacy.manage")
    found = _request_or_404(workspace, request_id)
    try:
        privacy.privacy_request_approve(request=found, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Request #{found.pk} approved: it is being carried out.")
    return redirect("ui-privacy-request", request_id=found.pk)
