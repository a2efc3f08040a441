"""Managing segments: who may edit which (django-guardian grants), discarding drafts, deleting
a segment others use, size over time and trends, CSV export, the scheduled full refresh."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from django.contrib.auth import get_user_model
from django.test import Client

from cdp.models import ApiToken, AuditLog, Membership, Role
from profiles.models import Profile
from profiles.tests.test_identity_resolution import process, profile_of, send
from segments import services
from segments.models import Membership as SegmentMembership
from segments.models import Segment
from tests.fixtures import Tenant

PRO = {"trait": "plan", "op": "eq", "value": "pro"}


def post(client: Client, path: str, body: Any) -> Any:
    return client.post(path, body, content_type="application/json")


def patch(client: Client, path: str, body: Any) -> Any:
    return client.patch(path, body, content_type="application/json")


def second_marketer(tenant: Tenant) -> tuple[Any, Client]:
    user = get_user_model().objects.create_user(username="mia@alpha")
    Membership.objects.create(workspace=tenant.workspace, user=user, role=Role.MARKETER)
    token = ApiToken.objects.create(workspace=tenant.workspace, user=user, name="t").secret
    return user, Client(HTTP_AUTHORIZATION=f"Token {token}")


def identify(client: Client, tenant: Tenant, user: str, **traits: Any) -> None:
    send(client, tenant, {"type": "identify", "userId": user, "traits": traits})


# ---- permissions -----------------------------------------------------------------------------


def test_marketers_edit_their_own_and_granted_segments(tenant_a: Tenant) -> None:
    owner = tenant_a.api(Role.MARKETER)
    mia, mia_api = second_marketer(tenant_a)
    created = post(owner, "/api/v1/segments/", {"name": "Pros", "rule": PRO})
    assert created.status_code == 201
    sid = created.json()["id"]
    assert created.json()["can_manage"] is True
    path = f"/api/v1/segments/{sid}/"

    # another marketer reads it but may not change, publish, share or delete it
    assert mia_api.get(path).json()["can_manage"] is False
    assert patch(mia_api, path, {"name": "Mine now"}).status_code == 403
    assert post(mia_api, f"{path}publish/", {}).status_code == 403
    assert post(mia_api, f"{path}grants/", {"user_id": mia.pk}).status_code == 403
    assert mia_api.delete(path).status_code == 403

    # shared with her by its owner: now she may
    shared = post(owner, f"{path}grants/", {"user_id": mia.pk})
    assert shared.status_code == 201, shared.content
    grants = {g["username"]: g["owner"] for g in shared.json()["grants"]}
    assert grants == {"marketer@alpha": True, "mia@alpha": False}
    assert patch(mia_api, path, {"name": "Pro plan"}).json()["name"] == "Pro plan"
    assert post(mia_api, f"{path}publish/", {}).status_code == 200

    # analysts stay read-only: they cannot be granted a segment
    analyst = tenant_a.users[Role.ANALYST]
    refused = post(owner, f"{path}grants/", {"user_id": analyst.pk})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "validation_failed"
    assert patch(tenant_a.api(Role.ANALYST), path, {"name": "x"}).status_code == 403

    # admins manage every segment; revoking takes the grant back; the owner keeps theirs
    assert patch(tenant_a.api(Role.ADMIN), path, {"description": "by admin"}).status_code == 200
    assert owner.delete(f"{path}grants/{mia.pk}/").status_code == 204
    assert patch(mia_api, path, {"name": "again"}).status_code == 403
    marketer = tenant_a.users[Role.MARKETER]
    kept = tenant_a.api(Role.ADMIN).delete(f"{path}grants/{marketer.pk}/")
    assert kept.status_code == 409 and kept.json()["error"]["code"] == "owner"

    # a grant counts only while the role may edit segments
    Membership.objects.filter(user=marketer).update(role=Role.ANALYST)
    demoted = Client(HTTP_AUTHORIZATION=f"Token {tenant_a.tokens[Role.MARKETER]}")
    assert patch(demoted, path, {"name": "x"}).status_code == 403
    actions = set(AuditLog.objects.values_list("action", flat=True))
    assert {"segment.grant", "segment.revoke"} <= actions


def test_grants_stay_inside_the_workspace(tenant_a: Tenant, tenant_b: Tenant) -> None:
    sid = post(tenant_a.api(), "/api/v1/segments/", {"name": "Pros", "rule": PRO}).json()["id"]
    stranger = tenant_b.users[Role.MARKETER]
    response = post(tenant_a.api(), f"/api/v1/segments/{sid}/grants/", {"user_id": stranger.pk})
    assert response.status_code == 404
    assert tenant_b.api().get(f"/api/v1/segments/{sid}/grants/").status_code == 404


# ---- drafts and deletion ---------------------------------------------------------------------


def test_discard_a_draft_and_refuse_deleting_a_segment_in_use(tenant_a: Tenant) -> None:
    api = tenant_a.api()
    sid = post(api, "/api/v1/segments/", {"name": "Pros", "rule": PRO, "publish": True}).json()[
        "id"
    ]
    path = f"/api/v1/segments/{sid}/"
    never = api.delete(f"{path}draft/")
    assert never.status_code == 409 and never.json()["error"]["code"] == "no_draft"
    patch(api, path, {"rule": {"trait": "plan", "op": "eq", "value": "free"}})
    assert api.get(path).json()["draft"]["number"] == 2
    assert api.delete(f"{path}draft/").status_code == 204
    body = api.get(path).json()
    assert body["draft"] is None and body["published"]["rule"] == PRO

    # a draft-only segment is deleted, not discarded
    lone = post(api, "/api/v1/segments/", {"name": "Lone", "rule": PRO}).json()["id"]
    refused = api.delete(f"/api/v1/segments/{lone}/draft/")
    assert refused.json()["error"]["code"] == "never_published"

    user = post(
        api,
        "/api/v1/segments/",
        {
            "name": "Pro buyers",
            "rule": {"all": [{"segment": "pros"}, {"trait": "x", "op": "exists"}]},
        },
    ).json()
    in_use = api.delete(path)
    assert in_use.status_code == 409
    error = in_use.json()["error"]
    assert error["code"] == "segment_in_use"
    assert error["detail"]["segments"] == [
        {"id": user["id"], "key": "pro-buyers", "name": "Pro buyers"}
    ]
    assert api.delete(f"/api/v1/segments/{user['id']}/").status_code == 204
    assert api.delete(path).status_code == 204
    assert not SegmentMembership.objects.filter(segment_id=sid).exists()


# ---- size over time, trends ------------------------------------------------------------------


def test_size_over_time_and_trends(tenant_a: Tenant, client: Client) -> None:
    api = tenant_a.api()
    day = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    with time_machine.travel(day, tick=False):
        sid = post(api, "/api/v1/segments/", {"name": "Pros", "rule": PRO, "publish": True}).json()[
            "id"
        ]
        identify(client, tenant_a, "a", plan="pro")
        identify(client, tenant_a, "b", plan="pro")
        process()
    with time_machine.travel(day + timedelta(days=2), tick=False):
        identify(client, tenant_a, "c", plan="pro")
        identify(client, tenant_a, "a", plan="free")  # leaves
        process()
    with time_machine.travel(day + timedelta(days=3, hours=5), tick=False):
        identify(client, tenant_a, "d", plan="pro")
        process()
        sizes = api.get(f"/api/v1/segments/{sid}/sizes/?days=5").json()["days"]
        listed = api.get("/api/v1/segments/").json()["results"][0]
    # from the day it was first published: no zeros for the days before it existed
    assert sizes == [
        {"date": "2026-11-01", "size": 2, "entered": 2, "exited": 0},
        {"date": "2026-11-02", "size": 2, "entered": 0, "exited": 0},
        {"date": "2026-11-03", "size": 2, "entered": 1, "exited": 1},
        {"date": "2026-11-04", "size": 3, "entered": 1, "exited": 0},
    ]
    assert listed["member_count"] == 3
    assert listed["trend"] == {"entered_7d": 4, "exited_7d": 1, "change_7d": 3}
    with time_machine.travel(day + timedelta(days=8, hours=1), tick=False):
        # the history before the range counts as the starting size
        later = api.get(f"/api/v1/segments/{sid}/sizes/?days=2").json()["days"]
        assert [d["size"] for d in later] == [3, 3]
        trend = api.get("/api/v1/segments/").json()["results"][0]["trend"]
        assert trend == {"entered_7d": 2, "exited_7d": 1, "change_7d": 1}
    bad = api.get(f"/api/v1/segments/{sid}/sizes/?days=0")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_failed"


# ---- export ----------------------------------------------------------------------------------


def test_export_members_as_csv(tenant_a: Tenant, client: Client) -> None:
    api = tenant_a.api(Role.ANALYST)
    sid = post(
        tenant_a.api(), "/api/v1/segments/", {"name": "Pros", "rule": PRO, "publish": True}
    ).json()["id"]
    send(
        client,
        tenant_a,
        {
            "type": "identify",
            "userId": "u1",
            "traits": {"plan": "pro", "email": "Ann@Example.com", "name": "Ann, Jr."},
        },
        {"type": "identify", "userId": "=HYPERLINK(1)", "traits": {"plan": "pro"}},
        {"type": "identify", "userId": "u3", "traits": {"plan": "free"}},
    )
    process()
    response = api.get(f"/api/v1/segments/{sid}/export/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="segment-pros.csv"'
    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    rows = list(csv.DictReader(io.StringIO(text)))
    ann = profile_of(tenant_a, "user_id", "u1").pk
    formula = profile_of(tenant_a, "user_id", "=HYPERLINK(1)").pk
    assert [r["profile_id"] for r in rows] == [str(min(ann, formula)), str(max(ann, formula))]
    by_id = {r["profile_id"]: r for r in rows}
    # an analyst may not see personal data: no email or phone column, no PII traits
    assert list(rows[0]) == ["profile_id", "entered_at", "user_id", "traits"]
    assert by_id[str(ann)]["user_id"] == "u1"
    assert json.loads(by_id[str(ann)]["traits"]) == {"plan": "pro"}
    assert by_id[str(formula)]["user_id"] == "'=HYPERLINK(1)"  # never a live formula
    # an admin gets it all
    full = tenant_a.api(Role.ADMIN).get(f"/api/v1/segments/{sid}/export/")
    full_rows = list(
        csv.DictReader(io.StringIO(b"".join(full.streaming_content).decode()))  # type: ignore[attr-defined]
    )
    ann_row = next(r for r in full_rows if r["profile_id"] == str(ann))
    assert ann_row["email"] == "ann@example.com"
    assert '"name": "Ann, Jr."' in ann_row["traits"]
    exports = AuditLog.objects.filter(action="segment.export").order_by("id")
    assert [e.detail["pii"] for e in exports] == [False, True]
    # the workspace decides which traits are personal
    tenant_a.api(Role.OWNER).patch(
        "/api/v1/privacy/settings/", {"pii_traits": ["plan"]}, content_type="application/json"
    )
    text = b"".join(api.get(f"/api/v1/segments/{sid}/export/").streaming_content).decode()  # type: ignore[attr-defined]
    ann_row = next(r for r in csv.DictReader(io.StringIO(text)) if r["profile_id"] == str(ann))
    assert json.loads(ann_row["traits"]) == {"email": "Ann@Example.com", "name": "Ann, Jr."}


# ---- scheduled refresh -----------------------------------------------------------------------


def test_scheduled_refresh_catches_changes_no_event_signalled(
    tenant_a: Tenant, client: Client
) -> None:
    from profiles.models import ComputedTrait

    api = tenant_a.api()
    # a user-defined computed trait: its values are written by its own schedule
    ComputedTrait.objects.create(
        workspace=tenant_a.workspace, key="ltv_band", name="LTV band", aggregation="count"
    )
    vip = {"trait": "ltv_band", "op": "eq", "value": "high"}
    vip_id = post(api, "/api/v1/segments/", {"name": "VIP", "rule": vip, "publish": True}).json()[
        "id"
    ]
    # refers to VIP: must be evaluated after it in the same run
    vip_pro_id = post(
        api,
        "/api/v1/segments/",
        {"name": "VIP pros", "rule": {"all": [{"segment": "vip"}, PRO]}, "publish": True},
    ).json()["id"]
    identify(client, tenant_a, "zed", plan="pro")
    process()
    zed = profile_of(tenant_a, "user_id", "zed").pk
    assert not SegmentMembership.objects.filter(profile_id=zed).exists()
    # a computed trait written by its own schedule: no event, no real-time evaluation
    Profile.objects.filter(pk=zed).update(computed={"ltv_band": "high"})
    results = services.segments_refresh_all()
    assert list(results) == [vip_id, vip_pro_id]
    live = set(
        SegmentMembership.objects.filter(profile_id=zed, exited_at=None).values_list(
            "segment_id", flat=True
        )
    )
    assert live == {vip_id, vip_pro_id}
    again = services.segments_refresh_all()  # idempotent
    assert all(r.entered == 0 and r.exited == 0 for r in again.values())
    assert Segment.objects.get(pk=vip_pro_id).member_count == 1
