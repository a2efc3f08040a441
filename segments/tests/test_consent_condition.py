"""The segment rule language's consent condition, evaluated in real time with the one
enforcement rule of consent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from consent.models import LegalBasis
from consent.services import purposes_install_defaults
from consent.tests.test_consent_log import page, post, prefs
from profiles.tests.test_identity_resolution import process, profile_of, send
from segments.models import Membership
from tests.fixtures import Tenant


@pytest.fixture
def purposes(tenant_a: Tenant) -> None:
    purposes_install_defaults(workspace=tenant_a.workspace)


def test_segment_consent_condition_in_real_time(
    tenant_a: Tenant, client: Client, purposes: None
) -> None:
    """Nobody without marketing consent is ever in a segment that requires it, and a
    withdrawal takes the person out with the event that carries it."""
    rule = {
        "all": [
            {"trait": "plan", "op": "eq", "value": "pro"},
            {"consent": "marketing_email", "status": "granted"},
        ]
    }
    created = post(
        tenant_a, "/api/v1/segments/", {"name": "Emailable pros", "rule": rule, "publish": True}
    )
    assert created.status_code == 201, created.content
    sid = created.json()["id"]
    now = timezone.now()
    send(
        client,
        tenant_a,
        {
            "type": "identify",
            "userId": "eve",
            "traits": {"plan": "pro"},
            **prefs(now, marketing_email=True),
        },
        {"type": "identify", "userId": "fay", "traits": {"plan": "pro"}},
        {
            "type": "identify",
            "userId": "gil",
            "traits": {"plan": "pro"},
            **prefs(now, marketing_email=False),
        },
    )
    process()
    eve = profile_of(tenant_a, "user_id", "eve").pk
    members = set(
        Membership.objects.filter(segment_id=sid, exited_at=None).values_list(
            "profile_id", flat=True
        )
    )
    assert members == {eve}
    denied = post(
        tenant_a,
        "/api/v1/segments/preview/",
        {"rule": {"consent": "marketing_email", "status": "denied"}},
    ).json()
    assert denied["count"] == 2
    send(client, tenant_a, page("eve", now + timedelta(seconds=5), {"marketing_email": False}))
    process()
    assert not Membership.objects.filter(segment_id=sid, exited_at=None).exists()
    unknown = post(
        tenant_a, "/api/v1/segments/preview/", {"rule": {"consent": "telepathy"}}
    ).json()["error"]
    assert unknown["detail"]["fields"] == {"rule.consent": ["unknown purpose 'telepathy'"]}
    assert LegalBasis.CONSENT == "consent"
