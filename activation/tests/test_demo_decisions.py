"""`bin/start --demo-data` ends with personalisation: placements, offers on the demo's segments,
a recommendations rail, an experiment and every profile's decision record, so the decision
API answers for the demo's customers at once."""

from __future__ import annotations

import io

import orjson
import pytest
from django.core.management import call_command
from django.test import Client

from activation.decisions.models import DecisionRecord, Offer
from activation.services import server_key_create
from cdp.models import Workspace
from profiles.models import Identity, Profile


@pytest.mark.django_db(transaction=True)
def test_the_demo_personalises_at_once() -> None:
    call_command("cdp_demo_data", profiles=300, workspace="Demo D", stdout=io.StringIO())
    call_command("cdp_demo_models", workspace="Demo D", stdout=io.StringIO())
    out = io.StringIO()
    call_command("cdp_demo_decisions", workspace="Demo D", stdout=out)
    workspace = Workspace.objects.get(name="Demo D")
    live = Profile.objects.filter(workspace=workspace, merged_into__isnull=True).count()
    assert DecisionRecord.objects.filter(workspace_id=workspace.pk).count() == live
    assert f"{live:,} decision records" in out.getvalue()
    key = server_key_create(workspace=workspace, name="demo")
    site = Client(HTTP_AUTHORIZATION=f"Bearer {key.secret}")
    loyal = (
        Profile.objects.filter(workspace=workspace, merged_into__isnull=True, order_count__gte=3)
        .order_by("id")
        .values_list("id", flat=True)
    )
    shown = 0
    for profile_id in loyal[:20]:
        user = Identity.objects.filter(profile_id=profile_id, type="user_id").first()
        if user is None:
            continue
        body = {"userId": user.value, "placements": ["home_hero", "for_you"],
                "experiments": ["hero_copy"]}  # fmt: skip
        answer = site.post("/v1/decide", orjson.dumps(body), content_type="application/json")
        data = answer.json()
        assert answer.status_code == 200 and data["degraded"] is False
        assert "loyal-customers" in data["segments"]
        assert data["experiments"]["hero_copy"]["variant"] in ("generic", "personal")
        hero = data["placements"]["home_hero"]
        if hero["offer"] == "loyal_thanks":  # unless they did not consent to personalisation
            shown += 1
            assert len(data["recommendations"]["for_you"]) == 6
            assert all(item["name"] for item in data["recommendations"]["for_you"])
    assert shown > 0
    # again: nothing duplicated
    call_command("cdp_demo_decisions", workspace="Demo D", stdout=io.StringIO())
    assert Offer.objects.filter(workspace=workspace).count() in (3, 4)
