"""The segment pages: the list and the builder, who may see and edit them, workspace isolation,
and what the builder page is given (the rule, name suggestions, members and history)."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cdp.models import Membership as WorkspaceMembership
from cdp.models import Role
from profiles.models import Identity
from segments import services
from segments.models import Membership, Segment
from tests.fixtures import PASSWORD, Tenant, send_events

VIEWERS = {Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST}
MANAGERS = {Role.OWNER, Role.ADMIN, Role.MARKETER}
RULE = {"all": [{"trait": "plan", "op": "eq", "value": "pro"}]}


send = partial(send_events, drain=500)


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


def trend_cell(html: str, key: str) -> str:
    row = html[html.index(f'data-segment="{key}"') :]
    row = row[: row.index("</tr>")]
    return row[row.index('class="num nowrap trend"') :]


def test_list_trends_show_drops_flat_and_drafts(tenant_a: Tenant, pro_segment: Segment) -> None:
    # the segment existed for weeks; republishing a narrower rule today lets Ada out
    Membership.objects.filter(segment=pro_segment).update(
        entered_at=timezone.now() - timedelta(days=20)
    )
    steady = services.segment_create(
        workspace=tenant_a.workspace,
        name="Steady",
        rule={"trait": "plan", "op": "eq", "value": "free"},
        publish=True,
    )
    Membership.objects.filter(segment=steady).update(entered_at=timezone.now() - timedelta(days=20))
    services.segment_create(workspace=tenant_a.workspace, name="Idea", rule=RULE, publish=False)
    services.segment_update(
        segment=pro_segment, rule={"trait": "plan", "op": "eq", "value": "enterprise"}
    )
    services.segment_publish(segment=pro_segment)
    html = tenant_a.session(Role.ANALYST).get("/segments/").content.decode()
    assert "7-day trend" in html
    dropped = trend_cell(html, "pro-customers")
    assert 'class="trend-net down"' in dropped and "↓ −1" in dropped and "+0 / −1" in dropped
    flat = trend_cell(html, "steady")
    assert 'class="trend-net "' in flat and "±0" in flat and "+0 / −0" in flat
    assert '<span class="muted">—</span>' in trend_cell(html, "idea")


def test_list_reads_trends_in_one_query(tenant_a: Tenant, pro_segment: Segment) -> None:
    client = tenant_a.session(Role.MARKETER)
    client.get("/segments/")  # warm up (session, content types)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/segments/").status_code == 200
        return len(captured)

    one = queries()
    for n in range(4):
        services.segment_create(
            workspace=tenant_a.workspace, name=f"More {n}", rule=RULE, publish=True
        )
    assert queries() == one


def test_never_published_segment_has_an_empty_chart_and_nothing_to_export(
    tenant_a: Tenant,
) -> None:
    draft = services.segment_create(
        workspace=tenant_a.workspace,
        name="Idea",
        rule=RULE,
        publish=False,
        actor=tenant_a.users[Role.MARKETER],
    )
    html = tenant_a.session(Role.MARKETER).get(f"/segments/{draft.pk}/").content.decode()
    assert 'id="size-card"' in html and 'id="size-empty"' in html
    assert "data-days" not in html  # no period toggles without a history
    assert 'id="export-csv"' not in html
    assert 'id="discard-draft"' not in html  # it has nothing to fall back to
    assert 'id="delete-segment"' in html


def test_discard_is_offered_for_a_draft_of_a_published_segment(
    tenant_a: Tenant, pro_segment: Segment
) -> None:
    url = f"/segments/{pro_segment.pk}/"
    marketer = tenant_a.session(Role.MARKETER)  # the owner
    page = marketer.get(url).content.decode()
    assert 'id="discard-draft"' not in page and 'id="draft-pill"' not in page
    services.segment_update(segment=pro_segment, rule={"trait": "plan", "op": "eq", "value": "x"})
    page = marketer.get(url).content.decode()
    assert 'id="discard-draft"' in page and 'id="draft-pill"' in page
    assert f'href="/api/v1/segments/{pro_segment.pk}/export/"' in page
    analyst = tenant_a.session(Role.ANALYST).get(url).content.decode()
    assert 'id="draft-pill"' in analyst and 'id="discard-draft"' not in analyst


def test_sharing_panel_lists_owner_grants_and_marketers_to_share_with(
    tenant_a: Tenant, tenant_b: Tenant, pro_segment: Segment
) -> None:
    other = get_user_model().objects.create_user(username="zoe@alpha", password=PASSWORD)
    WorkspaceMembership.objects.create(workspace=tenant_a.workspace, user=other, role="marketer")
    services.segment_grant(segment=pro_segment, user=other)
    html = tenant_a.session(Role.ADMIN).get(f"/segments/{pro_segment.pk}/").content.decode()
    panel = html[html.index('id="sharing"') :]
    table = panel[: panel.index("</table>")]
    owner_row = table[table.index('class="owner-row"') :]
    assert "marketer@alpha" in owner_row[: owner_row.index("</tr>")] and "Owner" in owner_row
    assert f'data-revoke="{other.pk}"' in table and "zoe@alpha" in table
    assert f'data-revoke="{tenant_a.users[Role.MARKETER].pk}"' not in table  # owner stays
    select = panel[panel.index('id="grant-user"') : panel.index("</select>")]
    # both marketers already edit it; other roles and other workspaces are never offered
    assert "<option" not in select
    assert 'id="no-candidates" hidden' not in panel
    services.segment_revoke(segment=pro_segment, user=other)
    html = tenant_a.session(Role.ADMIN).get(f"/segments/{pro_segment.pk}/").content.decode()
    panel = html[html.index('id="sharing"') :]
    select = panel[panel.index('id="grant-user"') : panel.index("</select>")]
    assert f'<option value="{other.pk}">zoe@alpha</option>' in select
    assert "bravo" not in select and "analyst@alpha" not in select
    assert "Not shared with anyone yet." in panel


def test_read_only_note_tells_a_marketer_whom_to_ask(tenant_a: Tenant) -> None:
    segment = owned_by_owner(tenant_a)
    url = f"/segments/{segment.pk}/"
    marketer = tenant_a.session(Role.MARKETER).get(url).content.decode()
    note = marketer[marketer.index('id="read-only-note"') :]
    assert "its owner, owner@alpha, or an admin to share" in note[: note.index("</div>")]
    analyst = tenant_a.session(Role.ANALYST).get(url).content.decode()
    note = analyst[analyst.index('id="read-only-note"') :]
    assert "your role can view segments" in note[: note.index("</div>")]


def test_list_search_and_filters(tenant_a: Tenant, pro_segment: Segment) -> None:
    services.segment_create(
        workspace=tenant_a.workspace,
        name="Winback",
        description="lapsed buyers",
        rule=RULE,
        publish=False,
        actor=tenant_a.users[Role.MARKETER],
    )
    marketer = tenant_a.session(Role.MARKETER)

    def rows(query: str) -> tuple[list[str], str]:
        html = marketer.get("/segments/" + query).content.decode()
        keys = [part.split('"', 1)[0] for part in html.split('data-segment="')[1:]]
        return keys, html

    keys, html = rows("")
    assert keys == ["pro-customers", "winback"]
    assert 'id="segment-filters"' in html and 'id="segment-count">2 segments<' in html
    assert 'id="segment-filter-clear"' not in html
    keys, html = rows("?q=LAPSED")
    assert keys == ["winback"] and 'id="segment-count">1 of 2 segments<' in html
    assert 'value="LAPSED"' in html and 'id="segment-filter-clear"' in html
    keys, html = rows("?status=published&order=-members")
    assert keys == ["pro-customers"] and '<option value="published" selected>' in html
    assert '<option value="-members" selected>' in html
    keys, html = rows("?owner=me&status=draft")
    assert keys == ["winback"] and 'id="segment-owner"' in html
    # analysts own nothing: no "Mine" filter for them
    analyst = tenant_a.session(Role.ANALYST).get("/segments/").content.decode()
    assert 'id="segment-filters"' in analyst and 'id="segment-owner"' not in analyst
    keys, html = rows("?q=nothing+like+this")
    assert keys == [] and 'id="segments-no-match"' in html and 'id="segments-empty"' not in html
    assert "Nothing matches “nothing like this”" in html and "has 2 segments" in html
    # an edited URL falls back to the defaults instead of failing
    keys, html = rows("?status=bogus&order=bogus&owner=bogus")
    assert keys == ["pro-customers", "winback"] and 'id="segment-filter-clear"' not in html


def test_duplicate_is_offered_to_whoever_may_create(tenant_a: Tenant) -> None:
    segment = owned_by_owner(tenant_a)  # not the marketer's: read-only for them
    url = f"/segments/{segment.pk}/"
    for role, offered in [
        (Role.OWNER, True),
        (Role.ADMIN, True),
        (Role.MARKETER, True),
        (Role.ANALYST, False),
    ]:
        html = tenant_a.session(role).get(url).content.decode()
        assert ('id="duplicate-segment"' in html) == offered, role


def test_tags_on_the_list_and_in_the_builder(tenant_a: Tenant, pro_segment: Segment) -> None:
    services.segment_update(segment=pro_segment, tags=["lifecycle", "q4 campaign"])
    services.segment_create(
        workspace=tenant_a.workspace, name="Loyal", rule=RULE, tags=["lifecycle"]
    )
    services.segment_create(workspace=tenant_a.workspace, name="Plain", rule=RULE)
    session = tenant_a.session(Role.MARKETER)
    html = session.get("/segments/").content.decode()
    select = html[
        html.index('id="segment-tag"') : html.index("</select>", html.index('id="segment-tag"'))
    ]
    assert '<option value="lifecycle">lifecycle (2)</option>' in select
    assert '<option value="q4 campaign">q4 campaign (1)</option>' in select
    assert 'class="tag" href="?tag=q4%20campaign">q4 campaign</a>' in html
    filtered = session.get("/segments/?tag=lifecycle").content.decode()
    keys = [part.split('"', 1)[0] for part in filtered.split('data-segment="')[1:]]
    assert keys == ["loyal", "pro-customers"]
    assert '<option value="lifecycle" selected>' in filtered and 'class="tag on"' in filtered
    unknown = session.get("/segments/?tag=nope").content.decode()  # an edited URL: ignored
    assert unknown.count('data-segment="') == 3
    builder = session.get(f"/segments/{pro_segment.pk}/").content.decode()
    assert 'id="segment-tags"' in builder and 'value="lifecycle, q4 campaign"' in builder
    assert '<option value="q4 campaign">' in builder  # offered while typing


def test_segment_page_names_the_segments_that_use_it(
    tenant_a: Tenant, pro_segment: Segment
) -> None:
    url = f"/segments/{pro_segment.pk}/"
    assert 'id="used-by"' not in tenant_a.session(Role.ANALYST).get(url).content.decode()
    user = services.segment_create(
        workspace=tenant_a.workspace,
        name="Not pro",
        rule={"not": {"segment": "pro-customers"}},
        publish=True,
    )
    html = tenant_a.session(Role.ANALYST).get(url).content.decode()
    used = html[html.index('id="used-by"') :]
    assert f'<a href="/segments/{user.pk}/">Not pro</a>' in used[: used.index("</p>")]


def test_large_counts_are_grouped(tenant_a: Tenant, pro_segment: Segment) -> None:
    Segment.objects.filter(pk=pro_segment.pk).update(member_count=1234567)
    session = tenant_a.session(Role.ANALYST)
    listed = session.get("/segments/").content.decode()
    assert '<td class="num member-count">1,234,567</td>' in listed
    page = session.get(f"/segments/{pro_segment.pk}/").content.decode()
    assert '<strong id="member-count">1,234,567</strong>' in page
