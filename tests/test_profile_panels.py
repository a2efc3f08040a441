"""The profile page composes the panels other apps register: segments (current memberships)
and consent (where each purpose stands, the decision history), each shown to the roles that
may see it."""

from __future__ import annotations

from django.test import Client

from cdp.models import Role
from profiles.tests.test_profile_pages import profile_of, send
from tests.fixtures import Tenant


def test_profile_page_shows_segments_and_consent_history(
    tenant_a: Tenant, tenant_b: Tenant, client: Client
) -> None:
    from consent.services import purposes_install_defaults
    from segments.services import segment_create

    purposes_install_defaults(workspace=tenant_a.workspace)
    segment = segment_create(
        workspace=tenant_a.workspace,
        name="Pro customers",
        rule={"trait": "plan", "op": "eq", "value": "pro"},
        publish=True,
    )
    consent = {"categoryPreferences": {"marketing_email": True}, "policyVersion": "2026-10"}
    send(
        client,
        tenant_a,
        {
            "type": "identify",
            "userId": "u-cy",
            "traits": {"name": "Cy Young", "plan": "pro"},
            "timestamp": "2026-03-01T10:00:00Z",
            "context": {"consent": consent, "ip": "203.0.113.9", "userAgent": "Mozilla/5.0 Cy"},
            "messageId": "cy-consent-1",
        },
    )
    consent = {"categoryPreferences": {"marketing_email": False}, "policyVersion": "2026-11"}
    send(
        client,
        tenant_a,
        {
            "type": "track",
            "userId": "u-cy",
            "event": "Segment Consent Preference Updated",
            "timestamp": "2026-04-01T10:00:00Z",
            "context": {"consent": consent},
            "messageId": "cy-consent-2",
        },
    )
    cy = profile_of(tenant_a, "user_id", "u-cy")
    html = tenant_a.session(Role.ANALYST).get(f"/profiles/{cy.pk}/").content.decode()
    segments = html[html.index('id="segments"') : html.index('id="consents"')]
    assert f'href="/segments/{segment.pk}/">Pro customers</a>' in segments
    consents = html[html.index('id="consents"') :]
    row = consents[consents.index('data-purpose="marketing_email"') :]
    row = row[: row.index("</tr>")]
    assert "pill bad" in row and "Denied <time" in row and "1 Apr 2026, 10:00 UTC" in row
    log = consents[consents.index('id="consent-log-table"') :]
    # newest decision first, with its proof
    assert log.index("2026-04-01") < log.index("2026-03-01")
    assert (
        "cy-consent-1" in log and "203.0.113.9" in log and '<td class="nowrap">2026-10</td>' in log
    )

    # a privacy officer sees consent but not segments; workspace B sees nothing
    officer = tenant_a.session(Role.PRIVACY_OFFICER).get(f"/profiles/{cy.pk}/").content.decode()
    assert 'id="consents"' in officer and 'id="segments"' not in officer
    assert tenant_b.session(Role.OWNER).get(f"/profiles/{cy.pk}/").status_code == 404
