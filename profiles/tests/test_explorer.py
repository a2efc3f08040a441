"""The profile explorer (the Profiles page and `GET /api/v1/profiles/`): search over names,
emails, phones and ids; sorting by columns and computed traits with absent values last;
RFM, segment and rule filters (the last two registered by the segments app); bad parameters;
saved views, each its owner's in one workspace; creating a segment from a filter."""

from __future__ import annotations

import json
from functools import partial
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client

from cdp.models import AuditLog, Role
from profiles import privacy
from profiles.models import ComputedTrait, Identity, Profile, SavedView
from tests.fixtures import Tenant, send_events

send = partial(send_events, drain=500)

PRO_BIG_SPENDERS = {
    "all": [
        {"trait": "plan", "op": "eq", "value": "pro"},
        {"event": "Order Completed", "count": {"op": "gte", "value": 3}},
    ]
}


def order(user: str, revenue: float, day: int) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": "Order Completed",
        "properties": {"revenue": revenue},
        "timestamp": f"2026-02-{day:02d}T10:00:00Z",
    }


def profile_of(tenant: Tenant, kind: str, value: str) -> Profile:
    return Identity.objects.get(workspace=tenant.workspace, type=kind, value=value).profile


@pytest.fixture
def people(tenant_a: Tenant, tenant_b: Tenant, client: Client) -> dict[str, Profile]:
    """Kevin Novak (3 orders), Ada Lovelace (1), Grace Hopper (2, the top spender), Kevin
    Smith (none) and an anonymous visitor; computed values as the scheduled refresh and a
    custom trait would write them. Workspace B has a Kevin Novak of its own."""
    send(
        client,
        tenant_a,
        {
            "type": "identify",
            "userId": "u-kevin-77",
            "traits": {
                "first_name": "Kevin",
                "last_name": "Novak",
                "email": "Kevin.Novak@Acme.io",
                "phone": "+1 (415) 555-0134",
                "plan": "pro",
            },
            "timestamp": "2026-01-05T09:00:00Z",
        },
        order("u-kevin-77", 200, 1),
        order("u-kevin-77", 150, 5),
        order("u-kevin-77", 150, 20),
        {
            "type": "identify",
            "userId": "u-ada",
            "traits": {"name": "Ada Lovelace", "email": "ada@example.com", "plan": "plus"},
            "timestamp": "2026-01-02T09:00:00Z",
        },
        order("u-ada", 42.5, 3),
        {
            "type": "identify",
            "userId": "u-grace",
            "traits": {
                "first_name": "Grace",
                "last_name": "Hopper",
                "email": "grace@navy.example",
                "phone": "+44 20 7946 0958",
                "plan": "pro",
            },
            "timestamp": "2026-01-10T09:00:00Z",
        },
        order("u-grace", 400, 8),
        order("u-grace", 500, 25),
        {
            "type": "identify",
            "userId": "u-ksmith",
            "traits": {"first_name": "Kevin", "last_name": "Smith", "email": "ks@example.com"},
            "timestamp": "2026-01-20T09:00:00Z",
        },
        {
            "type": "page",
            "anonymousId": "anon-visitor-1",
            "name": "Home",
            "timestamp": "2026-01-15T09:00:00Z",
        },
    )
    send(
        client,
        tenant_b,
        {
            "type": "identify",
            "userId": "u-kevin-b",
            "traits": {"first_name": "Kevin", "last_name": "Novak", "plan": "pro"},
        },
    )
    found = {
        "kevin": profile_of(tenant_a, "user_id", "u-kevin-77"),
        "ada": profile_of(tenant_a, "user_id", "u-ada"),
        "grace": profile_of(tenant_a, "user_id", "u-grace"),
        "smith": profile_of(tenant_a, "user_id", "u-ksmith"),
        "anon": profile_of(tenant_a, "anonymous_id", "anon-visitor-1"),
    }
    ComputedTrait.objects.create(
        workspace=tenant_a.workspace, key="ltv", name="Lifetime value", aggregation="last"
    )
    computed = {
        "kevin": {"rfm_segment": "Champions", "engagement_score": 80, "ltv": 100},
        "ada": {"rfm_segment": "At Risk", "engagement_score": 20, "ltv": "9"},
        "grace": {"rfm_segment": "Champions", "engagement_score": 95, "ltv": 10},
        "smith": {"engagement_score": 5, "ltv": "n/a"},
        "anon": {},
    }
    for who, values in computed.items():
        Profile.objects.filter(pk=found[who].pk).update(computed=values)
    return found


def page_names(client: Client, **params: Any) -> list[str]:
    response = client.get("/profiles/", params)
    assert response.status_code == 200
    return [row["name"] for row in response.context["rows"]]


def api_ids(tenant: Tenant, role: str = Role.OWNER, **params: Any) -> list[int]:
    response = tenant.api(role).get(f"/api/v1/profiles/?{urlencode(params, doseq=True)}")
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# ---- search ---------------------------------------------------------------------------------


def test_search_by_name_email_phone_and_ids(tenant_a: Tenant, people: dict[str, Profile]) -> None:
    client = tenant_a.session(Role.MARKETER)
    kevin = people["kevin"].pk
    assert page_names(client, q="Kevin Novak") == ["Kevin Novak"]
    assert page_names(client, q="novak kevin") == ["Kevin Novak"]  # words in any order
    assert sorted(page_names(client, q="kevin")) == ["Kevin Novak", "Kevin Smith"]
    assert page_names(client, q="novak@acme") == ["Kevin Novak"]  # part of an email
    assert page_names(client, q="ACME.IO") == ["Kevin Novak"]
    assert page_names(client, q="4155550134") == ["Kevin Novak"]  # phone digits, unformatted
    assert page_names(client, q="+1 415 555 0134") == ["Kevin Novak"]  # the E.164 identity
    assert page_names(client, q="7946") == ["Grace Hopper"]
    assert page_names(client, q="u-kevin-77") == ["Kevin Novak"]  # a user id
    assert page_names(client, q="u-kev") == ["Kevin Novak"]  # its beginning
    assert page_names(client, q="anon-visitor") == [f"Anonymous visitor #{people['anon'].pk}"]
    assert page_names(client, q=str(kevin)) == ["Kevin Novak"]  # a profile's number
    assert page_names(client, q="email:kevin.novak@acme.io") == ["Kevin Novak"]
    assert page_names(client, q="Kevin Hopper") == []
    assert page_names(client, q="100%_") == []  # LIKE wildcards are text
    # the API answers the same
    assert api_ids(tenant_a, q="Kevin Novak") == [kevin]
    assert api_ids(tenant_a, q="novak@acme") == [kevin]
    assert api_ids(tenant_a, q="4155550134") == [kevin]
    assert api_ids(tenant_a, q="u-kevin-77") == [kevin]


def test_search_stays_in_the_workspace(
    tenant_a: Tenant, tenant_b: Tenant, people: dict[str, Profile]
) -> None:
    other = profile_of(tenant_b, "user_id", "u-kevin-b")
    assert api_ids(tenant_b, q="Kevin Novak") == [other.pk]
    assert api_ids(tenant_b, q=str(people["kevin"].pk)) == []
    assert page_names(tenant_b.session(Role.OWNER), q="acme") == []


# ---- sorting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ("-revenue", ["grace", "kevin", "ada", "anon", "smith"]),  # ties: newest first
        ("revenue", ["smith", "anon", "ada", "kevin", "grace"]),
        ("-orders", ["kevin", "grace", "ada", "anon", "smith"]),
        ("-last_seen", ["grace", "kevin", "ada", "smith", "anon"]),
        ("first_seen", ["ada", "kevin", "grace", "anon", "smith"]),
        ("-engagement", ["grace", "kevin", "ada", "smith", "anon"]),  # absent: last
        ("engagement", ["smith", "ada", "kevin", "grace", "anon"]),  # last that way too
        # numbers (a numeric string too) by value, then text, then absent values
        ("-computed:ltv", ["kevin", "grace", "ada", "smith", "anon"]),
        ("computed:ltv", ["ada", "grace", "kevin", "smith", "anon"]),
        ("computed:rfm_segment", ["ada", "kevin", "grace", "smith", "anon"]),  # ties: oldest first
        ("-created", ["anon", "smith", "grace", "ada", "kevin"]),
    ],
)
def test_sort(
    tenant_a: Tenant, people: dict[str, Profile], order: str, expected: list[str]
) -> None:
    by_id = {p.pk: who for who, p in people.items()}
    assert [by_id[i] for i in api_ids(tenant_a, order=order)] == expected
    response = tenant_a.session(Role.ANALYST).get("/profiles/", {"order": order})
    assert [by_id[r["profile"].pk] for r in response.context["rows"]] == expected


def test_sortable_headers_and_the_computed_column(
    tenant_a: Tenant, people: dict[str, Profile]
) -> None:
    client = tenant_a.session(Role.MARKETER)
    html = client.get("/profiles/", {"order": "-revenue"}).content.decode()
    # the sorted column says so, and its link turns the order around
    assert 'aria-sort="descending" data-sort="revenue"><a href="?order=revenue"' in html
    assert 'data-sort="orders"><a href="?order=-orders"' in html
    assert "$900.00" in html and "$42.50" in html  # revenue as money
    assert '<option value="-computed:ltv">Lifetime value: high → low</option>' in html
    html = client.get("/profiles/", {"order": "-computed:ltv"}).content.decode()
    assert 'id="sort-column"' in html and "Lifetime value" in html


def test_pages_and_grouped_counts(tenant_a: Tenant, people: dict[str, Profile]) -> None:
    Profile.objects.bulk_create(
        Profile(workspace=tenant_a.workspace, traits={"first_name": "Bulk", "last_name": str(n)})
        for n in range(1230)
    )
    client = tenant_a.session(Role.MARKETER)
    response = client.get("/profiles/", {"q": "bulk", "page": "3"})
    html = response.content.decode()
    assert "<strong>1,230</strong> profiles match" in html
    assert "51–75 shown" in html
    assert 'aria-current="page">3</span>' in html
    assert 'href="?q=bulk&amp;page=50"' in html  # the last page
    assert len(response.context["rows"]) == 25


# ---- filters --------------------------------------------------------------------------------


def test_rfm_filter(tenant_a: Tenant, people: dict[str, Profile]) -> None:
    grace, kevin, ada = people["grace"].pk, people["kevin"].pk, people["ada"].pk
    assert api_ids(tenant_a, rfm="Champions") == [grace, kevin]
    assert api_ids(tenant_a, rfm="champions,at risk") == [grace, ada, kevin]
    assert api_ids(tenant_a, rfm=["At Risk", "Champions"], order="-revenue") == [grace, kevin, ada]
    client = tenant_a.session(Role.MARKETER)
    assert page_names(client, rfm="At Risk") == ["Ada Lovelace"]
    html = client.get("/profiles/", {"rfm": "Champions", "q": "kevin"}).content.decode()
    assert "RFM: Champions" in html and "Search: kevin" in html  # the chips
    assert 'href="?q=kevin"' in html  # the chip that removes the RFM filter


def publish_segment(tenant: Tenant, name: str, rule: dict[str, Any]) -> dict[str, Any]:
    created = tenant.api(Role.OWNER).post(
        "/api/v1/segments/",
        {"name": name, "rule": rule, "publish": True},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    return dict(created.json())


def segments_of(tenant: Tenant) -> list[dict[str, Any]]:
    answer = tenant.api(Role.OWNER).get("/api/v1/segments/")
    assert answer.status_code == 200
    return list(answer.json()["results"])


def test_segment_filter(tenant_a: Tenant, people: dict[str, Profile]) -> None:
    # through the segments API: the profiles app's tests do not import the segments app
    segment = publish_segment(
        tenant_a, "Pro customers", {"trait": "plan", "op": "eq", "value": "pro"}
    )
    expected = [people["grace"].pk, people["kevin"].pk]
    assert api_ids(tenant_a, segment=segment["key"]) == expected
    assert api_ids(tenant_a, segment=str(segment["id"])) == expected
    assert api_ids(tenant_a, segment=segment["key"], q="kevin") == [people["kevin"].pk]
    client = tenant_a.session(Role.ANALYST)
    response = client.get("/profiles/", {"segment": segment["key"]})
    assert sorted(r["name"] for r in response.context["rows"]) == ["Grace Hopper", "Kevin Novak"]
    assert "In segment: Pro customers" in response.content.decode()
    # a privacy officer sees profiles but not segments: no such filter for them
    officer = tenant_a.api(Role.PRIVACY_OFFICER).get(f"/api/v1/profiles/?segment={segment['key']}")
    assert officer.status_code == 400
    assert officer.json()["error"]["detail"]["fields"] == {
        "segment": ["your role cannot filter by segment"]
    }
    html = tenant_a.session(Role.PRIVACY_OFFICER).get("/profiles/").content.decode()
    assert 'name="segment"' not in html and 'name="rule"' not in html


def test_rule_filter(tenant_a: Tenant, people: dict[str, Profile]) -> None:
    rule = json.dumps(PRO_BIG_SPENDERS)
    assert api_ids(tenant_a, rule=rule) == [people["kevin"].pk]
    pro = json.dumps({"trait": "plan", "op": "eq", "value": "pro"})
    assert api_ids(tenant_a, rule=pro, order="-revenue") == [people["grace"].pk, people["kevin"].pk]
    never_ordered = {"event": "Order Completed", "never": True}
    assert api_ids(tenant_a, rule=json.dumps(never_ordered), rfm="Champions") == []
    client = tenant_a.session(Role.MARKETER)
    response = client.get("/profiles/", {"rule": rule})
    assert [r["name"] for r in response.context["rows"]] == ["Kevin Novak"]
    html = response.content.decode()
    assert "Conditions: plan is pro and 1 more" in html
    # the condition editor gets the builder's modules and language
    config = response.context["explorer_config"]
    editor = config["filters"][0]["editor"]
    assert editor["kind"] == "rule"
    assert editor["modules"]["tree"].endswith("segments/tree.js")
    assert "eq" in editor["language"]["op_labels"]


# ---- bad parameters -------------------------------------------------------------------------


def test_bad_parameters_are_400s_naming_each_field(
    tenant_a: Tenant, people: dict[str, Profile]
) -> None:
    bad_rule = json.dumps({"all": [{"trait": "plan", "op": "bigger", "value": 1}]})
    response = tenant_a.api(Role.OWNER).get(
        "/api/v1/profiles/?"
        + urlencode(
            {"order": "-shoe_size", "rfm": "Superfans", "rule": bad_rule, "segment": "nope"}
        )
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    fields = error["detail"]["fields"]
    assert set(fields) == {"order", "rfm", "segment", "rule.all[0].op"}
    assert "unknown sort '-shoe_size'" in fields["order"][0]
    assert "'Superfans' is not an RFM segment" in fields["rfm"][0]
    assert fields["segment"] == ["no published segment 'nope' in this workspace"]
    for params in (
        {"rule": "{not json"},
        {"q": "x" * 201},
        {"identifier": "email"},
        {"page": "0"},
        {"order": "computed:"},
    ):
        answer = tenant_a.api(Role.OWNER).get(f"/api/v1/profiles/?{urlencode(params)}")
        assert answer.status_code == 400, params
        assert answer.json()["error"]["detail"]["fields"], params


def test_bad_parameters_give_a_friendly_page(tenant_a: Tenant, people: dict[str, Profile]) -> None:
    client = tenant_a.session(Role.MARKETER)
    bad_rule = json.dumps({"all": [{"trait": "plan", "op": "bigger", "value": 1}]})
    response = client.get("/profiles/", {"order": "sideways", "rule": bad_rule})
    assert response.status_code == 200
    html = response.content.decode()
    assert "These parts of the address could not be used" in html
    assert "<strong>Sort</strong>: unknown sort &#x27;sideways&#x27;" in html
    assert "<strong>Conditions</strong> <code>all[0].op</code>" in html
    assert response.context["rows"] == []
    # the rule's errors go to the condition editor, on the node they name
    assert response.context["explorer_config"]["errors"][0]["path"] == "rule.all[0].op"
    one = client.get("/profiles/", {"q": "email:not-an-email"})
    assert one.context["error"] == (
        "identifier 'email:not-an-email': 'not-an-email' is not a valid email"
    )


# ---- saved views ----------------------------------------------------------------------------


def test_saved_views_are_each_owners_own(
    tenant_a: Tenant, tenant_b: Tenant, people: dict[str, Profile]
) -> None:
    marketer = tenant_a.session(Role.MARKETER)
    saved = marketer.post(
        "/profiles/views/",
        {"name": "  Top  champions ", "query": "rfm=Champions&order=-revenue&page=2"},
    )
    assert saved.status_code == 302
    assert saved["Location"] == "/profiles/?rfm=Champions&order=-revenue"
    view = SavedView.objects.get()
    assert (view.name, view.params) == (
        "Top champions",
        [["rfm", "Champions"], ["order", "-revenue"]],
    )
    html = marketer.get("/profiles/", {"rfm": "Champions", "order": "-revenue"}).content.decode()
    assert (
        'href="/profiles/?rfm=Champions&amp;order=-revenue" aria-current="page">Top champions'
        in (html)
    )
    # saving under the same name replaces the view
    marketer.post("/profiles/views/", {"name": "Top champions", "query": "q=kevin"})
    assert list(SavedView.objects.values_list("name", "params")) == [
        ("Top champions", [["q", "kevin"]])
    ]
    # another user of the workspace, and the owner in another workspace, do not see it
    analyst = tenant_a.session(Role.ANALYST)
    assert "Top champions" not in analyst.get("/profiles/").content.decode()
    assert analyst.post(f"/profiles/views/{view.pk}/delete/").status_code == 404
    outsider = tenant_b.session(Role.OWNER)
    assert "Top champions" not in outsider.get("/profiles/").content.decode()
    assert outsider.post(f"/profiles/views/{view.pk}/delete/").status_code == 404
    assert SavedView.objects.count() == 1
    # a query that does not check is not saved
    bad = marketer.post(
        "/profiles/views/", {"name": "Broken", "query": "order=sideways"}, follow=True
    )
    assert "View not saved: unknown sort" in bad.content.decode()
    nameless = marketer.post("/profiles/views/", {"name": " ", "query": "q=ada"}, follow=True)
    assert "View not saved: give the view a name" in nameless.content.decode()
    assert SavedView.objects.count() == 1
    # the owner deletes it
    assert marketer.post(f"/profiles/views/{view.pk}/delete/").status_code == 302
    assert not SavedView.objects.exists()
    actions = list(AuditLog.objects.filter(action__startswith="saved_view.").values_list(
        "action", "actor__username", "workspace_id"
    ).order_by("id"))  # fmt: skip
    user = tenant_a.users[Role.MARKETER].username
    workspace = tenant_a.workspace.pk
    assert actions == [
        ("saved_view.create", user, workspace),
        ("saved_view.update", user, workspace),
        ("saved_view.delete", user, workspace),
    ]


def test_a_privacy_deletion_removes_views_that_search_for_the_subject(
    tenant_a: Tenant, people: dict[str, Profile]
) -> None:
    marketer = tenant_a.session(Role.MARKETER)
    marketer.post("/profiles/views/", {"name": "Ada", "query": "q=ada%40example.com"})
    marketer.post("/profiles/views/", {"name": "Champions", "query": "rfm=Champions"})
    subject = privacy.subject_find(
        workspace_id=tenant_a.workspace.pk, identifier_type="email", value="ada@example.com"
    )
    handler = next(h for h in privacy.handlers() if h.app == "profiles")
    counts = handler.delete(subject)
    assert counts["saved_views"] == 1
    assert list(SavedView.objects.values_list("name", flat=True)) == ["Champions"]


# ---- create a segment from the filter -------------------------------------------------------


def test_create_segment_from_the_filter(tenant_a: Tenant, people: dict[str, Profile]) -> None:
    query = urlencode({"rfm": "Champions", "rule": json.dumps(PRO_BIG_SPENDERS), "q": "kevin"})
    analyst = tenant_a.session(Role.ANALYST)
    assert (
        "Create segment from this filter" not in analyst.get(f"/profiles/?{query}").content.decode()
    )
    assert analyst.post("/profiles/actions/create-segment/", {"query": query}).status_code == 403
    marketer = tenant_a.session(Role.MARKETER)
    html = marketer.get(f"/profiles/?{query}").content.decode()
    assert "Create segment from this filter" in html
    assert "(the search text is not part of it)" in html
    response = marketer.post("/profiles/actions/create-segment/", {"query": query})
    [segment] = segments_of(tenant_a)
    assert response.status_code == 302
    assert response["Location"] == f"/segments/{segment['id']}/"
    assert segment["status"] == "draft"  # not published: the builder is where it is reviewed
    assert segment["owner"] == tenant_a.users[Role.MARKETER].username
    assert segment["draft"]["rule"] == {
        "all": [
            {"trait": "rfm_segment", "op": "eq", "value": "Champions"},
            *PRO_BIG_SPENDERS["all"],
        ]
    }
    assert segment["name"] == "Champions, plan is pro and 1 more"
    # the builder opens with that rule as the draft
    builder = marketer.get(response["Location"])
    assert builder.context["config"]["segment"]["draft"]["rule"] == segment["draft"]["rule"]
    # without a filter there is nothing to make a segment of
    nothing = marketer.post("/profiles/actions/create-segment/", {"query": "q=kevin"}, follow=True)
    assert "filter by an RFM segment, a segment or conditions first" in nothing.content.decode()
    assert len(segments_of(tenant_a)) == 1
