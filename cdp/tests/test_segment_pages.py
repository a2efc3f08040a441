"""The segment pages: the list and the builder, who may see and edit them, workspace isolation,
and what the builder page is given (the rule, name suggestions, members and history)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from cdp.models import Role
from cdp.testing import PASSWORD, Tenant, post_collector
from profiles.models import Identity
from profiles.pipeline import queue
from segments import services
from segments.models import Segment

VIEWERS = {Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST}
MANAGERS = {Role.OWNER, Role.ADMIN, Role.MARKETER}
RULE = {"all": [{"trait": "plan", "op": "eq", "value": "pro"}]}


def send(client: Client, tenant: Tenant, *events: dict[str, Any]) -> None:
    for event in events:
        event.setdefault("messageId", str(uuid.uuid4()))
    response = post_collector(
        client, "/v1/batch", {"batch": list(events)}, write_key=tenant.write_key
    )
    assert response.status_code == 200, response.content
    queue.drain(batch_size=500)


@pytest.fixture
def pro_segment(tenant_a: Tenant, client: Client) -> Segment:
    send(
        client,
        tenant_a,
        {
            "type": "identify",
            "userId": "u-ada",
            "traits": {"email": "ada@example.com", "name": "Ada Lovelace", "plan": "pro"},
        },
        {"type": "identify", "userId": "u-ben", "traits": {"plan": "free"}},
        {
            "type": "track",
            "userId": "u-ada",
            "event": "Order Completed",
            "properties": {"revenue": 42.5, "currency": "EUR"},
        },
    )
    return services.segment_create(
        workspace=tenant_a.workspace,
        name="Pro customers",
        rule=RULE,
        publish=True,
        actor=tenant_a.users[Role.MARKETER],
    )


def config(response: Any) -> dict[str, Any]:
    html = response.content.decode()
    start = html.index('<script id="segment-config" type="application/json">')
    start = html.index(">", start) + 1
    return json.loads(html[start : html.index("</script>", start)])


@pytest.mark.parametrize("role", list(Role.values))
def test_pages_per_role(tenant_a: Tenant, pro_segment: Segment, role: str) -> None:
    client = tenant_a.session(role)
    listing = client.get("/segments/")
    detail = client.get(f"/segments/{pro_segment.pk}/")
    new = client.get("/segments/new/")
    nav = client.get("/sources/").content.decode()
    if role not in VIEWERS:
        assert listing.status_code == detail.status_code == new.status_code == 403
        assert '<a href="/segments/"' not in nav
        return
    assert listing.status_code == detail.status_code == 200
    assert '<a href="/segments/"' in nav
    assert nav.index('<a href="/profiles/"') < nav.index('<a href="/segments/"')
    html = listing.content.decode()
    assert "Pro customers" in html and f'href="/segments/{pro_segment.pk}/"' in html
    manager = role in MANAGERS
    assert ('id="new-segment"' in html) is manager
    assert new.status_code == (200 if manager else 403)
    page = detail.content.decode()
    assert ('id="publish"' in page) is manager
    assert ('id="read-only-note"' in page) is not manager
    assert config(detail)["can_manage"] is manager


def test_list_shows_status_members_and_owner(tenant_a: Tenant, pro_segment: Segment) -> None:
    services.segment_create(
        workspace=tenant_a.workspace, name="Never published", rule=RULE, publish=False
    )
    html = tenant_a.session(Role.ANALYST).get("/segments/").content.decode()
    row = html[html.index('data-segment="pro-customers"') :]
    row = row[: row.index("</tr>")]
    assert "Published" in row and '<td class="num member-count">1</td>' in row
    assert "marketer@alpha" in row
    draft_row = html[html.index('data-segment="never-published"') :]
    assert "Draft" in draft_row[: draft_row.index("</tr>")]


def test_empty_list(tenant_a: Tenant) -> None:
    html = tenant_a.session(Role.MARKETER).get("/segments/").content.decode()
    assert 'id="segments-empty"' in html and "Create the first segment" in html
    analyst = tenant_a.session(Role.ANALYST).get("/segments/").content.decode()
    assert 'id="segments-empty"' in analyst and "Create the first segment" not in analyst


def test_builder_gets_rule_suggestions_members_and_history(
    tenant_a: Tenant, pro_segment: Segment
) -> None:
    services.segment_create(workspace=tenant_a.workspace, name="Other", rule=RULE, publish=True)
    response = tenant_a.session(Role.MARKETER).get(f"/segments/{pro_segment.pk}/")
    data = config(response)
    assert data["segment"]["published"]["rule"] == RULE
    suggestions = data["suggestions"]
    traits = {t["name"]: t for t in suggestions["traits"]}
    assert traits["plan"]["type"] == "string"
    assert traits["event_count"]["type"] == "number"  # a built-in computed trait
    assert traits["event_count"]["label"].endswith("(computed)")
    assert "Order Completed" in suggestions["events"]
    assert {p["name"] for p in suggestions["properties"]["Order Completed"]} >= {"revenue"}
    # a segment cannot contain itself, so only the other one is offered
    assert [s["key"] for s in suggestions["segments"]] == ["other"]
    ada = Identity.objects.get(workspace=tenant_a.workspace, value="u-ada").profile_id
    html = response.content.decode()
    members = html[html.index('id="members"') : html.index('id="history"')]
    assert f'href="/profiles/{ada}/"' in members and "Ada Lovelace" in members
    history = html[html.index('id="history"') :]
    assert "still in" in history and "v1" in history


def test_other_workspace_gets_404(tenant_a: Tenant, tenant_b: Tenant, pro_segment: Segment) -> None:
    client = tenant_b.session(Role.OWNER)
    assert client.get(f"/segments/{pro_segment.pk}/").status_code == 404
    assert "Pro customers" not in client.get("/segments/").content.decode()
    assert client.get("/segments/999999/").status_code == 404


def test_pages_need_a_login_and_a_membership(db: Any) -> None:
    for path in ["/segments/", "/segments/new/", "/segments/1/"]:
        response = Client().get(path)
        assert response.status_code == 302 and "/login/" in response["Location"]
    outsider = get_user_model().objects.create_user(username="nobody", password=PASSWORD)
    client = Client()
    client.force_login(outsider)
    assert client.get("/segments/").status_code == 403


def owned_by_owner(tenant: Tenant) -> Segment:
    segment = services.segment_create(
        workspace=tenant.workspace,
        name="Pro plan",
        rule={"trait": "plan", "op": "eq", "value": "pro"},
        publish=True,
        actor=tenant.users[Role.OWNER],
    )
    segment.refresh_from_db()
    return segment


@pytest.mark.usefixtures("pro_segment")
def test_list_shows_seven_day_trends(tenant_a: Tenant) -> None:
    segment = owned_by_owner(tenant_a)
    html = tenant_a.session(Role.ANALYST).get("/segments/").content.decode()
    row = html[html.index(f'data-segment="{segment.key}"') :]
    row = row[: row.index("</tr>")]
    assert segment.member_count == 1
    assert "↑ +1" in row and "+1 / −0" in row


@pytest.mark.usefixtures("pro_segment")
def test_managing_controls_follow_permissions(tenant_a: Tenant, tenant_b: Tenant) -> None:
    segment = owned_by_owner(tenant_a)
    url = f"/segments/{segment.pk}/"
    owner = tenant_a.session(Role.OWNER).get(url).content.decode()
    for control in ('id="export-csv"', 'id="delete-segment"', 'id="sharing"', 'id="size-card"'):
        assert control in owner, control
    assert "marketer@alpha" in owner  # offered in the sharing select
    analyst = tenant_a.session(Role.ANALYST).get(url).content.decode()
    assert 'id="export-csv"' in analyst and 'id="size-card"' in analyst
    for control in ('id="delete-segment"', 'id="sharing"', 'id="discard-draft"'):
        assert control not in analyst, control
    marketer = tenant_a.session(Role.MARKETER)
    assert 'id="delete-segment"' not in marketer.get(url).content.decode()
    services.segment_grant(segment=segment, user=tenant_a.users["marketer"])
    granted = marketer.get(url).content.decode()
    assert 'id="delete-segment"' in granted and 'id="sharing"' in granted
    assert tenant_b.session(Role.OWNER).get(url).status_code == 404
