"""The demo data's sign-up consent banner reaches the consent log through the pipeline."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from cdp.models import Workspace
from consent.models import ConsentState


@pytest.mark.django_db
def test_every_demo_customer_answered_the_consent_banner() -> None:
    call_command("cdp_demo_data", profiles=30, workspace="Demo test", seed=5, stdout=io.StringIO())
    workspace = Workspace.objects.get(name="Demo test")
    # one decision per default purpose but ml_training (not on the banner), mixed answers
    states = ConsentState.objects.filter(workspace_id=workspace.pk)
    assert states.values("profile_id").distinct().count() == 30
    assert set(states.values_list("purpose", flat=True)) == {
        "analytics",
        "personalization",
        "marketing_email",
        "advertising",
    }
    assert {"granted", "denied"} <= set(states.values_list("status", flat=True))
