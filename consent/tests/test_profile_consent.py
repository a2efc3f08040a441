"""A privacy manager records a consent decision told outside the apps, from the profile
page (consent's page on the profile)."""

from __future__ import annotations

from django.test import Client

from cdp.models import Role
from profiles.tests.test_profile_pages import profile_of, send
from tests.fixtures import Tenant


def test_privacy_manager_records_a_decision_from_the_profile_page(
    tenant_a: Tenant, tenant_b: Tenant, client: Client
) -> None:
    from cdp.models import AuditLog
    from consent.models import ConsentRecord
    from consent.services import purposes_install_defaults

    purposes_install_defaults(workspace=tenant_a.workspace)
    consent = {"categoryPreferences": {"marketing_email": True}}
    send(client, tenant_a, {"type": "identify", "userId": "u-di", "context": {"consent": consent}})
    di = profile_of(tenant_a, "user_id", "u-di")
    url = f"/profiles/{di.pk}/"
    officer = tenant_a.session(Role.PRIVACY_OFFICER)
    assert 'id="consent-form"' in officer.get(url).content.decode()
    for role in (Role.MARKETER, Role.ANALYST):
        page = tenant_a.session(role).get(url).content.decode()
        assert 'id="consent-form"' not in page
        refused = tenant_a.session(role).post(
            url + "consent/",
            {"purpose": "marketing_email", "status": "withdrawn", "reference": "x"},
        )
        assert refused.status_code == 403
    assert (
        tenant_b.session(Role.OWNER)
        .post(
            url + "consent/",
            {"purpose": "marketing_email", "status": "withdrawn", "reference": "x"},
        )
        .status_code
        == 404
    )

    # a reference is the proof: without one nothing is recorded
    page = officer.post(
        url + "consent/", {"purpose": "marketing_email", "status": "withdrawn"}, follow=True
    ).content.decode()
    assert "Not recorded: give a reference" in page
    page = officer.post(
        url + "consent/", {"purpose": "sms", "status": "withdrawn", "reference": "T-1"}, follow=True
    ).content.decode()
    assert "Not recorded: purpose: &#x27;sms&#x27; is not a purpose of this workspace" in page
    assert ConsentRecord.objects.filter(profile_id=di.pk).count() == 1

    answer = officer.post(
        url + "consent/",
        {"purpose": "marketing_email", "status": "withdrawn", "reference": "call 2026-11-30"},
    )
    assert answer.status_code == 302 and answer["Location"] == url + "#consent-history"
    record = ConsentRecord.objects.filter(profile_id=di.pk).latest("id")
    assert (record.status, record.source, record.message_id) == (
        "withdrawn",
        "ui",
        "call 2026-11-30",
    )
    assert record.actor_id == tenant_a.users[Role.PRIVACY_OFFICER].pk
    page = officer.get(url).content.decode()
    row = page[page.index('data-purpose="marketing_email"') :]
    assert "Withdrawn" in row[: row.index("</tr>")]
    assert 'ui <span class="muted small">by privacy_officer@alpha</span>' in page
    assert AuditLog.objects.filter(action="consent.record").count() == 1
