"""The segment pages: the list and the builder, who may see and edit them, workspace isolation,
and what the builder page is given (the rule, name suggestions, members and history)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cdp.models import AuditLog, Role
from cdp.models import Membership as WorkspaceMembership
from profiles.models import Identity
from segments import selectors, services
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
    # the export link asks for the default trait columns: none that are personal data for a
    # marketer (who may not see it)
    assert f'href="/api/v1/segments/{pro_segment.pk}/export/?traits="' in page
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


# ---- the segment page: size since publication, members, export columns, suggestions ---------


def csv_rows(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.content
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_sizes_start_at_the_first_publication(tenant_a: Tenant, client: Client) -> None:
    day = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    with time_machine.travel(day - timedelta(days=4), tick=False):  # written, not published
        segment = services.segment_create(workspace=tenant_a.workspace, name="Pros", rule=RULE)
    api = tenant_a.api(Role.ANALYST)
    never = api.get(f"/api/v1/segments/{segment.pk}/sizes/?days=30").json()
    assert never == {"published_at": None, "days": []}
    with time_machine.travel(day, tick=False):
        send(client, tenant_a, *[
            {"type": "identify", "userId": f"u{i}", "traits": {"plan": "pro"}} for i in range(3)
        ])  # fmt: skip
        services.segment_publish(segment=segment)
    with time_machine.travel(day + timedelta(days=2, hours=3), tick=False):
        send(
            client,
            tenant_a,
            {"type": "identify", "userId": "u0", "traits": {"plan": "free"}},
            {"type": "identify", "userId": "u3", "traits": {"plan": "pro"}},
            {"type": "identify", "userId": "u4", "traits": {"plan": "pro"}},
        )
    with time_machine.travel(day + timedelta(days=3, hours=1), tick=False):
        answer = api.get(f"/api/v1/segments/{segment.pk}/sizes/?days=30").json()
        week = api.get(f"/api/v1/segments/{segment.pk}/sizes/?days=2").json()
    assert answer["published_at"].startswith("2026-03-10T09:00:00")
    # no leading zeros for the days before the segment existed: it starts on its first day
    assert answer["days"] == [
        {"date": "2026-03-10", "size": 3, "entered": 3, "exited": 0},
        {"date": "2026-03-11", "size": 3, "entered": 0, "exited": 0},
        {"date": "2026-03-12", "size": 4, "entered": 2, "exited": 1},
        {"date": "2026-03-13", "size": 4, "entered": 0, "exited": 0},
    ]
    assert [d["date"] for d in week["days"]] == ["2026-03-12", "2026-03-13"]
    assert week["days"][0]["size"] == 4  # what came before the period counts as its start


def test_members_table_pages_and_searches(tenant_a: Tenant, client: Client) -> None:
    events: list[dict[str, Any]] = [
        {
            "type": "identify",
            "userId": f"user-{i:02d}",
            "traits": {"plan": "pro", "name": f"Person {i:02d}", "email": f"p{i:02d}@example.com"},
        }
        for i in range(60)
    ]
    events[59]["traits"]["name"] = "Ada Lovelace"  # the newest: on the first page
    events.append({"type": "identify", "anonymousId": "anon-1", "traits": {"plan": "pro"}})
    send(client, tenant_a, *events)
    segment = services.segment_create(
        workspace=tenant_a.workspace, name="Pros", rule=RULE, publish=True
    )
    session = tenant_a.session(Role.ANALYST)
    url = f"/segments/{segment.pk}/"

    def rows(html: str) -> list[str]:
        table = html[html.index('id="members-results"') :]
        table = table.split("</section>")[0]
        return [part.split('"', 1)[0] for part in table.split('<tr data-profile="')[1:]]

    first = session.get(url).content.decode()
    assert len(rows(first)) == 25
    assert 'id="members-search"' in first and "Page 1 of 3 · 1–25 of 61" in first
    assert 'href="?page=2" rel="next"' in first
    ada = Identity.objects.get(workspace=tenant_a.workspace, value="user-59").profile_id
    # each row: the name linked to the profile, the email under it
    assert f'<a href="/profiles/{ada}/">Ada Lovelace</a>' in first
    assert '<div class="muted small member-detail">p59@example.com</div>' in first
    third = session.get(url + "?page=3").content.decode()
    assert len(rows(third)) == 11 and "Page 3 of 3" in third
    assert not set(rows(first)) & set(rows(third))
    # the table alone, as the page swaps it in while paging and searching
    fragment = session.get(f"/segments/{segment.pk}/members/?page=2").content.decode()
    assert "<html" not in fragment and len(rows('id="members-results"' + fragment)) == 25
    assert "Page 2 of 3" in fragment and 'href="?page=3" rel="next"' in fragment
    for query, expected in [("lovelace", [ada]), ("P59@EXAMPLE", [ada]), ("user-59", [ada])]:
        found = session.get(f"/segments/{segment.pk}/members/?q={query}").content.decode()
        assert rows('id="members-results"' + found) == [str(p) for p in expected], query
        assert "1 member match" in found
    # every word must match (somewhere): p10@example.com … p19@example.com
    several = session.get(f"/segments/{segment.pk}/members/?q=example.com+P1").content.decode()
    assert len(rows('id="members-results"' + several)) == 10
    nobody = session.get(f"{url}?q=zebra").content.decode()
    assert 'id="members-no-match"' in nobody and 'value="zebra"' in nobody
    # the anonymous visitor: named by the page, no email to show
    anon = session.get(f"/segments/{segment.pk}/members/?q=anon-1").content.decode()
    assert "Anonymous visitor" not in anon  # not found by an anonymous id (not a user id)
    # the members API searches alike
    api = tenant_a.api(Role.ANALYST).get(f"/api/v1/segments/{segment.pk}/members/?q=lovelace")
    assert [p["id"] for p in api.json()["results"]] == [ada]
    other = make_other_workspace_session()
    assert other.get(f"/segments/{segment.pk}/members/").status_code == 404


def make_other_workspace_session() -> Client:
    from tests.fixtures import make_tenant

    return make_tenant("Gamma").session(Role.OWNER)


def test_export_has_a_column_per_chosen_trait(tenant_a: Tenant, client: Client) -> None:
    send(
        client,
        tenant_a,
        {
            "type": "identify",
            "userId": "u-ann",
            "traits": {
                "plan": "pro",
                "email": "ann@example.com",
                "first_name": "Ann",
                "last_name": '=HYPERLINK("http://x")',
                "address": {"city": "Berlin", "zip": "10115", "geo": {"lat": 52.5}},
                "tags": ["vip", "beta"],
                "score": -3,
                "note": "-not a number",
                "vip": True,
            },
        },
        {
            "type": "identify",
            "userId": "+u-ben",
            "traits": {"plan": "pro", "first_name": "@Ben", "address": {"city": "Paris"}},
        },
    )
    segment = services.segment_create(
        workspace=tenant_a.workspace, name="Pros", rule=RULE, publish=True
    )
    path = f"/api/v1/segments/{segment.pk}/export/"
    admin = tenant_a.api(Role.ADMIN)
    rows = csv_rows(
        admin.get(path + "?traits=email,first_name,last_name,address,tags,score,note,vip,missing")
    )
    assert list(rows[0]) == [
        "profile_id", "user_id", "entered_at", "email", "first_name", "last_name",
        "address.city", "address.geo.lat", "address.zip", "tags", "score", "note", "vip",
        "missing",
    ]  # fmt: skip
    ann, ben = sorted(rows, key=lambda r: r["user_id"] != "u-ann")
    assert ann["email"] == "ann@example.com" and ann["first_name"] == "Ann"
    assert ann["last_name"] == '\'=HYPERLINK("http://x")'  # never a live formula
    assert ann["address.city"] == "Berlin" and ann["address.zip"] == "10115"
    assert ann["address.geo.lat"] == "52.5"
    assert ann["tags"] == "vip, beta" and ann["vip"] == "true" and ann["missing"] == ""
    assert ann["score"] == "-3"  # a number stays a number
    assert ann["note"] == "'-not a number"
    assert ben["user_id"] == "'+u-ben" and ben["first_name"] == "'@Ben"
    assert ben["address.city"] == "Paris" and ben["address.zip"] == "" and ben["email"] == ""
    # repeated parameters work as well, and a nested field can be chosen alone
    rows = csv_rows(admin.get(path + "?traits=address.city&traits=first_name"))
    assert list(rows[0]) == [*selectors.EXPORT_BASE_COLUMNS, "address.city", "first_name"]
    # a role that may not see personal data gets the columns without the PII traits (the
    # workspace's list: email, names, address… by default); the export is audited with them
    rows = csv_rows(tenant_a.api(Role.ANALYST).get(path + "?traits=email,first_name,plan,address"))
    assert list(rows[0]) == [*selectors.EXPORT_BASE_COLUMNS, "plan"]
    audits = AuditLog.objects.filter(action="segment.export").order_by("id")
    assert audits.last().detail == {  # type: ignore[union-attr]
        "members": 2,
        "pii": False,
        "traits": ["plan"],
        "left_out": ["email", "first_name", "address"],
    }
    bad = admin.get(path + "?traits=a..b")
    assert bad.status_code == 400 and "traits[0]" in bad.json()["error"]["detail"]["fields"]


def test_export_columns_on_the_page(tenant_a: Tenant, pro_segment: Segment) -> None:
    html = tenant_a.session(Role.OWNER).get(f"/segments/{pro_segment.pk}/").content.decode()
    panel = html[
        html.index('id="export-columns"') : html.index(
            "</details>", html.index('id="export-columns"')
        )
    ]
    # every known trait offered; the defaults that were sent ticked (no name parts here)
    assert '<input type="checkbox" name="traits" value="email" checked>' in panel
    assert '<input type="checkbox" name="traits" value="plan">' in panel
    assert f'href="/api/v1/segments/{pro_segment.pk}/export/?traits=email"' in html
    analyst = tenant_a.session(Role.ANALYST).get(f"/segments/{pro_segment.pk}/").content.decode()
    assert 'value="email" disabled>' in analyst and "left out for your role" in analyst


def test_value_suggestions(tenant_a: Tenant, client: Client) -> None:
    plans = ["pro", "pro", "free"]
    send(
        client,
        tenant_a,
        *[
            {
                "type": "identify",
                "userId": f"u{i}",
                "traits": {
                    "plan": plans[i % 3],
                    "code": f"C-{i:03d}",
                    "email": f"u{i}@example.com",
                    "address": {"country": "DE" if i % 2 else "FR"},
                },
            }
            for i in range(60)
        ],
        *[
            {
                "type": "track",
                "userId": f"u{i}",
                "event": "Order Completed",
                "properties": {"currency": "EUR" if i % 4 else "USD", "order_id": f"o-{i}"},
            }
            for i in range(60)
        ],
    )
    owner = tenant_a.api(Role.OWNER)

    def values(query: str, api: Client = owner) -> dict[str, Any]:
        response = api.get("/api/v1/segments/values/?" + query)
        assert response.status_code == 200, response.content
        return response.json()

    plan = values("trait=plan")
    assert plan["values"] == [{"value": "pro", "count": 40}, {"value": "free", "count": 20}]
    assert plan["low_cardinality"] is True and plan["distinct"] == 2 and plan["sampled"] == 60
    country = values("trait=address.country")
    assert {v["value"] for v in country["values"]} == {"DE", "FR"}
    code = values("trait=code")  # 60 distinct values: an identifier, nothing to suggest
    assert code["values"] == [] and code["low_cardinality"] is False and code["distinct"] == 60
    currency = values("event=Order+Completed&property=currency")
    assert currency["values"] == [{"value": "EUR", "count": 45}, {"value": "USD", "count": 15}]
    assert values("event=Order+Completed&property=order_id")["values"] == []
    assert values("event=Nothing&property=currency")["values"] == []
    # a computed trait kept as a column (numbers)
    assert values("trait=order_count")["values"] == [{"value": "1", "count": 60}]
    # personal traits: values only for roles that may see personal data
    assert values("trait=email")["values"] == []  # 60 distinct anyway
    hidden = values("trait=address.country", tenant_a.api(Role.ANALYST))
    assert hidden["values"] == [] and hidden["personal"] is True
    assert values("trait=plan", tenant_a.api(Role.ANALYST))["values"][0]["value"] == "pro"
    bad = owner.get("/api/v1/segments/values/")
    assert bad.status_code == 400
    assert owner.get("/api/v1/segments/values/?trait=a..b").status_code == 400
    assert tenant_a.api(Role.OWNER).get("/api/v1/segments/values/?trait=plan").status_code == 200


def test_preview_count_is_out_of_the_live_profiles(tenant_a: Tenant, client: Client) -> None:
    send(client, tenant_a, *[
        {"type": "identify", "userId": f"u{i}", "traits": {"plan": "pro" if i < 3 else "free"}}
        for i in range(8)
    ])  # fmt: skip
    answer = tenant_a.api(Role.ANALYST).post(
        "/api/v1/segments/preview/", {"rule": RULE, "sample": 5}, content_type="application/json"
    )
    body = answer.json()
    assert body["count"] == 3 and body["total"] == 8 and len(body["sample"]) == 3


def test_builder_suggestions_name_kinds_and_titles(tenant_a: Tenant, client: Client) -> None:
    send(
        client,
        tenant_a,
        {"type": "identify", "userId": "u1", "traits": {"firstName": "Ann", "plan": "pro"}},
        {"type": "track", "userId": "u1", "event": "Order Completed", "properties": {"a_b": 1}},
        {"type": "page", "userId": "u1", "name": "Pricing"},
        {"type": "screen", "userId": "u1", "name": "Home"},
    )
    html = tenant_a.session(Role.MARKETER).get("/segments/new/")
    suggestions = config(html)["suggestions"]
    traits = {t["name"]: t for t in suggestions["traits"]}
    assert traits["firstName"]["kind"] == "trait" and traits["firstName"]["title"] == "First name"
    assert traits["order_count"]["kind"] == "computed"
    assert traits["order_count"]["title"] == "Orders"
    assert traits["order_count"]["label"] == "Orders (computed)"
    # event conditions count track events: pages and screens are told apart, not mixed in
    assert suggestions["events"] == ["Order Completed"]
    kinds = {(e["name"], e["type"]) for e in suggestions["event_kinds"]}
    assert kinds == {("Order Completed", "track"), ("Pricing", "page"), ("Home", "screen")}
    assert suggestions["properties"]["Order Completed"][0]["title"] == "A b"
