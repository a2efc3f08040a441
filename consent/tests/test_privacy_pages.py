"""The privacy center's pages (Django test client): purposes, the suppression list, retention,
the privacy audit log. Only owners, admins and privacy officers get in; workspaces are apart."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from cdp.models import AuditLog, Role
from consent import retention
from consent.models import Purpose, RetentionPolicy, SuppressionDropCount
from consent.services import purposes_install_defaults
from consent.suppression import suppression_add
from tests.fixtures import Tenant

PAGES = [
    "/privacy/",
    "/privacy/suppression/",
    "/privacy/purposes/",
    "/privacy/retention/",
    "/privacy/audit/",
]
MANAGERS = {Role.OWNER, Role.ADMIN, Role.PRIVACY_OFFICER}


@pytest.mark.parametrize("role", list(Role))
def test_only_privacy_managers_get_in(tenant_a: Tenant, role: Role) -> None:
    session = tenant_a.session(role)
    for url in PAGES:
        assert session.get(url).status_code == (200 if role in MANAGERS else 403), (role, url)
    nav = session.get("/profiles/").content.decode()
    assert ('href="/privacy/"' in nav) == (role in MANAGERS)


def test_purposes_page_lists_and_adds(tenant_a: Tenant, tenant_b: Tenant) -> None:
    purposes_install_defaults(workspace=tenant_a.workspace)
    session = tenant_a.session(Role.PRIVACY_OFFICER)
    html = session.get("/privacy/purposes/").content.decode()
    assert 'data-purpose="marketing_email"' in html and "Consent (opt-in)" in html

    answer = session.post(
        "/privacy/purposes/",
        {"key": "SMS Marketing", "name": "SMS marketing", "legal_basis": "consent"},
    )
    assert answer.status_code == 302
    added = Purpose.objects.get(workspace=tenant_a.workspace, key="sms_marketing")
    assert added.default_granted is False
    assert not Purpose.objects.filter(workspace=tenant_b.workspace, key="sms_marketing").exists()

    # a duplicate and a contradiction are refused with the reason, the form kept
    again = session.post("/privacy/purposes/", {"key": "sms_marketing", "legal_basis": "consent"})
    assert again.status_code == 400
    assert "exists already" in again.content.decode()
    bad = session.post(
        "/privacy/purposes/",
        {"key": "push", "legal_basis": "consent", "default_granted": "yes"},
    )
    assert bad.status_code == 400 and "nobody is in before they say yes" in bad.content.decode()
    assert 'value="push"' in bad.content.decode()
    assert not Purpose.objects.filter(workspace=tenant_a.workspace, key="push").exists()


def test_suppression_page_never_shows_identifiers(tenant_a: Tenant, tenant_b: Tenant) -> None:
    suppression_add(
        workspace=tenant_a.workspace, identifier_type="email", normalized_value="gone@example.com"
    )
    SuppressionDropCount.objects.create(
        workspace=tenant_a.workspace, source_id=tenant_a.source.pk, day=date.today(), dropped=7
    )
    session = tenant_a.session(Role.ADMIN)
    html = session.get("/privacy/suppression/").content.decode()
    assert "gone@example.com" not in html
    assert 'id="suppressed-total">1<' in html and 'id="dropped-30d">7<' in html

    hit = session.get("/privacy/suppression/?identifier=email:%20Gone@Example.com").content
    assert b"is suppressed since" in hit and b"email:gone@example.com" in hit
    miss = session.get("/privacy/suppression/?identifier=email:other@example.com").content
    assert b"is not suppressed" in miss
    bad = session.get("/privacy/suppression/?identifier=nonsense").content
    assert b'class="field-error" id="check-result"' in bad
    other = tenant_b.session(Role.OWNER).get("/privacy/suppression/").content.decode()
    assert 'id="suppressed-total">0<' in other


def test_retention_form(tenant_a: Tenant) -> None:
    session = tenant_a.session(Role.OWNER)
    html = session.get("/privacy/retention/").content.decode()
    assert (
        'id="event-days" name="event_days" inputmode="numeric" class="narrow" value="365"' in html
    )

    saved = session.post("/privacy/retention/", {"event_days": "90", "failed_event_days": "14"})
    assert saved.status_code == 302
    policy = RetentionPolicy.objects.get(workspace=tenant_a.workspace)
    # shorter: pending for the grace period, shown with its date and a cancel button
    assert (policy.event_days, policy.failed_event_days) == (365, 30)
    assert (policy.pending or {}).get("event_days") == 90
    page = session.get("/privacy/retention/").content.decode()
    assert 'id="retention-pending"' in page and "Shortening to 90 days of events" in page

    forever = session.post(
        "/privacy/retention/",
        {"event_days": "", "event_days_forever": "1", "failed_event_days": "30"},
    )
    assert forever.status_code == 302
    assert retention.retention_policy_of(workspace=tenant_a.workspace).event_days is None

    bad = session.post("/privacy/retention/", {"event_days": "0", "failed_event_days": "abc"})
    assert bad.status_code == 400
    text = bad.content.decode()
    assert 'id="error-event-days">expected 1 to 36,500 days' in text
    assert retention.retention_policy_of(workspace=tenant_a.workspace).event_days is None


def test_audit_log_shows_privacy_actions_only(tenant_a: Tenant, tenant_b: Tenant) -> None:
    retention.retention_policy_set(workspace=tenant_a.workspace, event_days=30, failed_event_days=7)
    AuditLog.objects.create(workspace=tenant_a.workspace, action="segment.export", target_id="9")
    AuditLog.objects.create(workspace=tenant_a.workspace, action="source.create", target_id="3")
    retention.retention_policy_set(workspace=tenant_b.workspace, event_days=5, failed_event_days=5)
    session = tenant_a.session(Role.PRIVACY_OFFICER)
    html = session.get("/privacy/audit/").content.decode()
    assert "retention.update" in html and "segment.export" in html
    assert "source.create" not in html
    assert html.count("retention.update") == 1  # not workspace B's
    only_exports = session.get("/privacy/audit/?kind=export").content.decode()
    assert "segment.export" in only_exports and "retention.update" not in only_exports


@pytest.fixture
def eager(monkeypatch: pytest.MonkeyPatch) -> None:
    from cdp.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)


@pytest.mark.usefixtures("eager")
def test_request_pages_record_approve_and_show_the_receipt(
    tenant_a: Tenant, tenant_b: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    from django.test import Client

    from profiles.pipeline import queue
    from tests.fixtures import post_collector

    body = {
        "batch": [
            {"type": "identify", "userId": "u-del", "traits": {"email": "del@example.com"}},
            {"type": "track", "userId": "u-del", "event": "Order Completed"},
        ]
    }
    assert post_collector(Client(), "/v1/batch", body, write_key=tenant_a.write_key).status_code
    queue.drain(batch_size=100)
    session = tenant_a.session(Role.PRIVACY_OFFICER)
    empty = session.get("/privacy/").content.decode()
    assert 'id="requests-empty"' in empty

    bad = session.post("/privacy/", {"type": "delete", "identifier": "email:nope"})
    assert bad.status_code == 400 and "is not a valid email" in bad.content.decode()
    assert 'value="email:nope"' in bad.content.decode()
    made = session.post(
        "/privacy/",
        {"type": "delete", "identifier": "email:Del@Example.com", "suppress": "1", "note": "T-9"},
    )
    assert made.status_code == 302
    detail_url = made["Location"]
    page = session.get(detail_url).content.decode()
    assert "Pending approval" in page and "cannot be undone" in page and "T-9" in page
    assert 'id="approve"' in page

    with django_capture_on_commit_callbacks(execute=True):
        approved = session.post(detail_url + "approve/")
    assert approved.status_code == 302
    page = session.get(detail_url).content.decode()
    assert 'id="request-status">Completed<' in page
    assert "forgotten" in page and "del@example.com" not in page
    assert '<td>Events</td><td class="num">2</td>' in page
    assert "2 identifiers suppressed" in page
    assert 'id="approve"' not in page
    again = session.post(detail_url + "approve/", follow=True).content.decode()
    assert "only a request pending approval" in again

    listing = session.get("/privacy/?status=completed").content.decode()
    assert "email: forgotten" in listing and "del@example.com" not in listing
    # other roles and other workspaces
    assert tenant_a.session(Role.MARKETER).get(detail_url).status_code == 403
    assert tenant_b.session(Role.OWNER).get(detail_url).status_code == 404
    assert tenant_b.session(Role.OWNER).post(detail_url + "approve/").status_code == 404


@pytest.mark.usefixtures("eager")
def test_two_person_approval_from_the_pages(
    tenant_a: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    from consent import privacy
    from consent.models import PrivacyRequest

    officer = tenant_a.session(Role.PRIVACY_OFFICER)
    html = officer.get("/privacy/retention/").content.decode()
    card = html[html.index('id="approval-card"') :]
    assert 'id="approval-one" checked' in card and 'id="approval-two" checked' not in card
    saved = officer.post(
        "/privacy/retention/", {"form": "approval", "two_person_approval": "1"}, follow=True
    )
    page = saved.content.decode()
    assert "someone other than whoever recorded it" in page and 'id="approval-two" checked' in page
    assert privacy.privacy_settings_of(workspace=tenant_a.workspace).two_person_approval
    # the retention periods are untouched by the approval form
    assert not RetentionPolicy.objects.filter(workspace=tenant_a.workspace).exists()

    made = officer.post("/privacy/", {"type": "suppress", "identifier": "email:pair@example.com"})
    detail_url = made["Location"]
    page = officer.get(detail_url).content.decode()
    assert 'id="approve" disabled' in page and 'id="approve-form"' not in page
    assert 'id="second-approver-note"' in page and "was recorded by you" in page
    refused = officer.post(detail_url + "approve/", follow=True).content.decode()
    assert "another privacy manager must approve it" in refused
    assert PrivacyRequest.objects.get().status == "pending_approval"

    admin = tenant_a.session(Role.ADMIN)
    page = admin.get(detail_url).content.decode()
    assert 'id="approve-form"' in page and 'id="second-approver-note"' not in page
    with django_capture_on_commit_callbacks(execute=True):
        assert admin.post(detail_url + "approve/").status_code == 302
    assert PrivacyRequest.objects.get().status == "completed"
    trail = officer.get(detail_url).content.decode()
    assert "approved by admin@alpha" in trail

    # the officer the rule binds cannot lift it; an owner can
    lift = officer.post(
        "/privacy/retention/", {"form": "approval", "two_person_approval": "0"}, follow=True
    )
    assert "Only an owner can turn two-person approval off" in lift.content.decode()
    assert privacy.privacy_settings_of(workspace=tenant_a.workspace).two_person_approval
    tenant_a.session(Role.OWNER).post(
        "/privacy/retention/", {"form": "approval", "two_person_approval": "0"}
    )
    assert not privacy.privacy_settings_of(workspace=tenant_a.workspace).two_person_approval


def test_purposes_page_shows_where_each_purpose_stands(tenant_a: Tenant) -> None:
    from django.test import Client

    from profiles.pipeline import queue
    from tests.fixtures import post_collector

    purposes_install_defaults(workspace=tenant_a.workspace)

    def person(user: str, choices: dict[str, bool]) -> dict[str, Any]:
        return {
            "type": "identify",
            "userId": user,
            "context": {"consent": {"categoryPreferences": choices}},
        }

    batch = [
        person("u-yes", {"marketing_email": True, "analytics": True}),
        person("u-no", {"marketing_email": False}),
        person("u-quiet", {}),
    ]
    answer = post_collector(Client(), "/v1/batch", {"batch": batch}, write_key=tenant_a.write_key)
    assert answer.status_code == 200
    queue.drain(batch_size=100)
    html = tenant_a.session(Role.PRIVACY_OFFICER).get("/privacy/purposes/").content.decode()

    def row(key: str) -> str:
        found = html[html.index(f'data-purpose="{key}"') :]
        return found[: found.index("</tr>")]

    email = row("marketing_email")
    assert '<td class="num granted">1</td>' in email
    assert '<td class="num refused" title="1 denied, 0 withdrawn">1</td>' in email
    assert '<td class="num undecided">1</td>' in email
    assert "<strong>1</strong> of 3 · 33%" in email and '<rect width="33"' in email
    assert '<span class="good-ink">+1</span> / <span class="bad-ink">−1</span>' in email
    # legitimate interest: everybody but an objection
    assert "<strong>3</strong> of 3 · 100%" in row("analytics")
    assert "over the workspace's 3 profiles" in html


def test_extend_a_deadline_from_the_request_page(tenant_a: Tenant) -> None:
    from consent.models import PrivacyRequest

    officer = tenant_a.session(Role.PRIVACY_OFFICER)
    made = officer.post("/privacy/", {"type": "export", "identifier": "email:big@example.com"})
    url = made["Location"]
    page = officer.get(url).content.decode()
    assert 'id="extend-form"' in page and 'id="request-extended"' not in page
    refused = officer.post(url + "extend/", {"days": "30", "reason": ""}, follow=True)
    assert "Not extended: reason: say why" in refused.content.decode()
    done = officer.post(url + "extend/", {"days": "60", "reason": "archives on tape"}, follow=True)
    page = done.content.decode()
    request = PrivacyRequest.objects.get()
    assert f"is now due {request.due_at:%Y-%m-%d}" in page
    assert 'id="request-extended"' in page and "archives on tape" in page
    assert 'id="extend-form"' not in page  # once only
    assert tenant_a.session(Role.MARKETER).post(url + "extend/", {"days": "30"}).status_code == 403


def test_requests_page_shows_what_is_overdue_and_due_soon(tenant_a: Tenant) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from consent.models import PrivacyRequest

    officer = tenant_a.session(Role.PRIVACY_OFFICER)
    for name in ("late", "soon", "calm"):
        officer.post("/privacy/", {"type": "export", "identifier": f"email:{name}@example.com"})
    now = timezone.now()
    for name, days in {"late": -1, "soon": 2, "calm": 25}.items():
        PrivacyRequest.objects.filter(identifier_value=f"{name}@example.com").update(
            due_at=now + timedelta(days=days)
        )
    html = officer.get("/privacy/").content.decode()
    assert 'class="deadline urgent" data-status="overdue"' in html
    assert 'Overdue <span class="count">1</span>' in html
    assert 'Due within 7 days <span class="count">1</span>' in html
    overdue = officer.get("/privacy/?status=overdue").content.decode()
    assert overdue.count("data-request=") == 1 and "late@example.com" in overdue
    assert "<strong>overdue</strong>" in overdue
    soon = officer.get("/privacy/?status=soon").content.decode()
    assert soon.count("data-request=") == 1 and "soon@example.com" in soon
    PrivacyRequest.objects.all().update(due_at=now + timedelta(days=25))
    calm = officer.get("/privacy/?status=overdue").content.decode()
    assert "No open request is overdue." in calm and 'class="deadline urgent"' not in calm


def test_import_a_suppression_list_from_the_page(tenant_a: Tenant) -> None:
    from consent.models import SuppressedIdentifier

    officer = tenant_a.session(Role.PRIVACY_OFFICER)
    html = officer.get("/privacy/suppression/").content.decode()
    assert 'id="import-form"' in html
    bad = officer.post(
        "/privacy/suppression/", {"identifiers": "ann@example.com\nemail:nope\nphone:abc"}
    )
    assert bad.status_code == 400
    page = bad.content.decode()
    assert "line 2: identifier &#x27;email:nope&#x27;" in page and "<li>line 3:" in page
    assert "email:nope" in page[page.index('id="import-identifiers"') :]  # the text is kept
    assert not SuppressedIdentifier.objects.exists()
    done = officer.post(
        "/privacy/suppression/",
        {"identifiers": "zed@example.com\r\nphone:+44 20 7946 0000\r\n"},
        follow=True,
    ).content.decode()
    assert "Imported: 2 identifiers suppressed, 0 already on the list." in done
    assert 'id="suppressed-total">2<' in done and "zed@example.com" not in done
    assert (
        tenant_a.session(Role.MARKETER)
        .post("/privacy/suppression/", {"identifiers": "x@y.co"})
        .status_code
        == 403
    )
