"""The profile explorer's server-rendered pages: who may see them, workspace isolation, search,
the merged-id redirect, the split form and the identity rules form."""

from __future__ import annotations

import re
from functools import partial
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from cdp.models import Role
from profiles.models import Identity, IdentityRules, Profile, ProfileMerge
from tests.fixtures import PASSWORD, Tenant, send_events

ALL_ROLES = list(Role.values)
RULES_VIEWERS = {Role.OWNER, Role.ADMIN, Role.MARKETER, Role.ANALYST}
SPLITTERS = {Role.OWNER, Role.ADMIN}


send = partial(send_events, drain=500)


def profile_of(tenant: Tenant, kind: str, value: str) -> Profile:
    return Identity.objects.get(workspace=tenant.workspace, type=kind, value=value).profile


@pytest.fixture
def people(tenant_a: Tenant, client: Client) -> dict[str, Any]:
    """Ada (identified, with an order), Ben browsing on a phone then linked to Ada's account
    (a merge), and Alice and Bob on one shared iPad (a limit conflict)."""
    send(
        client,
        tenant_a,
        {
            "type": "identify",
            "userId": "u-ada",
            "anonymousId": "ada-laptop",
            "traits": {"email": "Ada@Example.com", "name": "Ada Lovelace", "plan": "pro"},
            "timestamp": "2026-01-01T10:00:00Z",
        },
        {
            "type": "track",
            "userId": "u-ada",
            "event": "Order Completed",
            "properties": {"revenue": 42.5, "currency": "EUR"},
            "timestamp": "2026-01-02T10:00:00Z",
        },
    )
    send(
        client,
        tenant_a,
        {
            "type": "page",
            "anonymousId": "ada-phone",
            "name": "Pricing",
            "timestamp": "2026-01-03T10:00:00Z",
        },
    )
    send(
        client,
        tenant_a,
        {
            "type": "identify",
            "userId": "u-ada",
            "anonymousId": "ada-phone",
            "timestamp": "2026-01-04T10:00:00Z",
            "messageId": "the-link",
        },
    )
    send(client, tenant_a, {"type": "identify", "userId": "alice", "anonymousId": "shared-ipad"})
    send(client, tenant_a, {"type": "identify", "userId": "bob", "anonymousId": "shared-ipad"})
    return {
        "ada": profile_of(tenant_a, "user_id", "u-ada"),
        "merge": ProfileMerge.objects.get(workspace=tenant_a.workspace),
        "alice": profile_of(tenant_a, "user_id", "alice"),
        "bob": profile_of(tenant_a, "user_id", "bob"),
    }


def pages(people: dict[str, Any]) -> list[str]:
    return [
        "/profiles/",
        f"/profiles/{people['ada'].pk}/",
        "/profiles/merges/",
        "/profiles/conflicts/",
    ]


@pytest.mark.parametrize("role", ALL_ROLES)
def test_profile_pages_render_for_every_role(
    tenant_a: Tenant, people: dict[str, Any], role: str
) -> None:
    client = tenant_a.session(role)
    for path in pages(people):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
    rules = client.get("/settings/identity/")
    assert rules.status_code == (200 if role in RULES_VIEWERS else 403)
    nav = client.get("/sources/").content.decode()
    assert '<a href="/profiles/"' in nav


def test_pages_need_a_login_and_a_membership(db: Any, people: dict[str, Any]) -> None:
    anonymous = Client()
    for path in [*pages(people), "/settings/identity/"]:
        response = anonymous.get(path)
        assert response.status_code == 302 and "/login/" in response["Location"]
    outsider = get_user_model().objects.create_user(username="nobody", password=PASSWORD)
    client = Client()
    client.force_login(outsider)
    for path in [*pages(people), "/settings/identity/"]:
        assert client.get(path).status_code == 403, path


def test_other_workspace_cannot_see_a_profile(
    tenant_a: Tenant, tenant_b: Tenant, people: dict[str, Any]
) -> None:
    client = tenant_b.session(Role.OWNER)
    ada = people["ada"].pk
    assert client.get(f"/profiles/{ada}/").status_code == 404
    listing = client.get("/profiles/", {"q": "ada@example.com"}).content.decode()
    assert "Ada Lovelace" not in listing
    assert client.get("/profiles/").context["stats"]["profiles"] == 0
    response = client.post(f"/profiles/{ada}/split/", {"merge": people["merge"].pk})
    assert response.status_code == 404
    people["merge"].refresh_from_db()
    assert people["merge"].status == "active"
    assert "shared-ipad" not in client.get("/profiles/conflicts/").content.decode()


def test_profile_page_shows_the_360_view(tenant_a: Tenant, people: dict[str, Any]) -> None:
    ada = people["ada"]
    response = tenant_a.session(Role.ANALYST).get(f"/profiles/{ada.pk}/")
    html = response.content.decode()
    assert '<h1 id="profile-name">Ada Lovelace</h1>' in html
    for identifier in ("u-ada", "ada@example.com", "ada-laptop", "ada-phone"):
        assert identifier in html
    assert "the-link" in html  # the merge's triggering message id
    assert "Shared anonymous id" in html
    assert "plan" in html and "pro" in html
    assert f"/api/v1/profiles/{ada.pk}/graph/" in html
    assert f"/api/v1/profiles/{ada.pk}/events/" in html
    computed = {t["key"]: t for t in response.context["computed"]}
    assert computed["order_count"]["display"] == "1"
    assert computed["total_revenue"]["display"] == "42.50"
    assert response.context["headline"]["aov"] == 42.5
    # an analyst sees the merge but cannot split it
    assert f'action="/profiles/{ada.pk}/split/"' not in html
    assert "An owner or admin can split" in html


def test_merged_away_id_redirects_to_the_survivor(tenant_a: Tenant, people: dict[str, Any]) -> None:
    merge = people["merge"]
    client = tenant_a.session(Role.MARKETER)
    response = client.get(f"/profiles/{merge.loser_id}/", follow=True)
    assert response.redirect_chain == [(f"/profiles/{merge.winner_id}/", 302)]
    notices = [str(m) for m in response.context["messages"]]
    assert notices == [
        f"Profile #{merge.loser_id} was merged into this one; showing the surviving profile."
    ]
    assert client.get("/profiles/999999999/").status_code == 404


def test_search(tenant_a: Tenant, people: dict[str, Any]) -> None:
    client = tenant_a.session(Role.MARKETER)

    def names(**params: str) -> list[str]:
        response = client.get("/profiles/", params)
        assert response.status_code == 200
        return [row["name"] for row in response.context["rows"]]

    assert sorted(names()) == ["Ada Lovelace", "alice", "bob"]
    assert names(q=" ADA@example.com ") == ["Ada Lovelace"]
    assert names(q="email:ada@example.com") == ["Ada Lovelace"]
    assert names(q="user_id:alice") == ["alice"]
    assert names(q="ada-") == ["Ada Lovelace"]  # prefix of an anonymous id
    assert names(q=str(people["bob"].pk)) == ["bob"]
    assert names(q="nobody@example.com") == []
    assert (
        "No profile has a name, email, phone or identifier matching"
        in client.get("/profiles/", {"q": "nobody@example.com"}).content.decode()
    )
    bad = client.get("/profiles/", {"q": "email:not-an-email"})
    assert (
        bad.context["error"]
        == "identifier 'email:not-an-email': 'not-an-email' is not a valid email"
    )
    stats = client.get("/profiles/").context["stats"]
    assert stats == {"profiles": 3, "merged": 1, "identities": 7, "conflicts": 1}


def test_empty_workspace_explains_how_profiles_appear(tenant_a: Tenant) -> None:
    html = tenant_a.session(Role.OWNER).get("/profiles/").content.decode()
    assert "No profiles yet" in html
    assert "manage.py cdp_demo_data" in html
    assert 'href="/sources/"' in html


def test_conflicts_and_merges_logs(tenant_a: Tenant, people: dict[str, Any]) -> None:
    client = tenant_a.session(Role.ANALYST)
    html = client.get("/profiles/conflicts/").content.decode()
    assert "anonymous_id:shared-ipad" in html
    assert f'href="/profiles/{people["alice"].pk}/"' in html
    assert f'href="/profiles/{people["bob"].pk}/"' in html
    assert (
        "shared-ipad"
        not in client.get("/profiles/conflicts/", {"reason": "split_block"}).content.decode()
    )
    assert (
        "shared-ipad"
        in client.get("/profiles/conflicts/", {"reason": "limit_exceeded"}).content.decode()
    )
    bob_page = client.get(f"/profiles/{people['bob'].pk}/").content.decode()
    assert "anonymous_id:shared-ipad" in bob_page and "Limit exceeded" in bob_page

    merges = client.get("/profiles/merges/").content.decode()
    assert "the-link" in merges
    assert "the-link" in client.get("/profiles/merges/", {"status": "active"}).content.decode()
    assert "the-link" not in client.get("/profiles/merges/", {"status": "split"}).content.decode()


def test_split_from_the_profile_page(tenant_a: Tenant, people: dict[str, Any]) -> None:
    ada, merge = people["ada"], people["merge"]
    for role in set(ALL_ROLES) - SPLITTERS:
        response = tenant_a.session(role).post(f"/profiles/{ada.pk}/split/", {"merge": merge.pk})
        assert response.status_code == 403, role
    merge.refresh_from_db()
    assert merge.status == "active"

    client = tenant_a.session(Role.ADMIN)
    page = client.get(f"/profiles/{ada.pk}/").content.decode()
    assert f'action="/profiles/{ada.pk}/split/" data-confirm="Split profile' in page

    wrong = client.post(f"/profiles/{ada.pk}/split/", {"merge": "12345678"}, follow=True)
    assert [str(m) for m in wrong.context["messages"]] == [
        "Merge 12345678 does not belong to this profile."
    ]

    response = client.post(f"/profiles/{ada.pk}/split/", {"merge": merge.pk}, follow=True)
    assert response.redirect_chain == [(f"/profiles/{ada.pk}/", 302)]
    [notice] = [str(m) for m in response.context["messages"]]
    assert notice.startswith(f"Merge split: profile #{merge.loser_id} is separate again")
    merge.refresh_from_db()
    assert merge.status == "split"
    restored = Profile.objects.get(pk=merge.loser_id)
    assert restored.merged_into_id is None
    assert profile_of(tenant_a, "anonymous_id", "ada-phone").pk == restored.pk
    assert 'name="merge"' not in response.content.decode()  # nothing left to split

    again = client.post(f"/profiles/{ada.pk}/split/", {"merge": merge.pk}, follow=True)
    assert [str(m) for m in again.context["messages"]] == [f"merge {merge.pk} was already split"]


def rules_form(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "priority": "user_id,email,phone,device_id,anonymous_id",
        "limit__user_id": "1",
        "blocklist": "null\nundefined\ntest@test.com",
        "custom_identifier_traits": "",
        "strategy_trait": [""],
        "strategy_value": ["most_recent"],
        "order_event": "Order Completed",
    }
    data.update(changes)
    return data


def test_identity_rules_form_saves(tenant_a: Tenant) -> None:
    client = tenant_a.session(Role.ADMIN)
    page = client.get("/settings/identity/").content.decode()
    assert 'id="priority-list"' in page and 'name="limit__user_id" value="1"' in page
    response = client.post(
        "/settings/identity/",
        rules_form(
            priority="email,user_id,phone,anonymous_id",
            limit__user_id="2",
            limit__email="3",
            blocklist="null\n  Guest  \n\nn/a",
            custom_identifier_traits="loyalty_id, crm_id",
            strategy_trait=["plan", "lifetime_points", ""],
            strategy_value=["oldest", "sum", "most_recent"],
            order_event="Purchase",
        ),
        follow=True,
    )
    assert response.redirect_chain == [("/settings/identity/", 302)]
    assert "Identity rules saved (version 2)" in response.content.decode()
    rules = IdentityRules.objects.get(workspace=tenant_a.workspace)
    assert rules.priority == ["email", "user_id", "phone", "anonymous_id"]
    assert rules.limits == {"user_id": 2, "email": 3}
    assert rules.blocklist == ["", "guest", "n/a", "null"]  # "" was blocked and stays so
    assert rules.custom_identifier_traits == ["loyalty_id", "crm_id"]
    assert rules.trait_strategies == {"plan": "oldest", "lifetime_points": "sum"}
    assert rules.order_event == "Purchase"
    html = response.content.decode()
    assert 'name="limit__loyalty_id"' in html  # a custom type gets a limit row
    assert 'value="lifetime_points"' in html


def test_identity_rules_form_shows_field_errors(tenant_a: Tenant) -> None:
    client = tenant_a.session(Role.OWNER)
    response = client.post(
        "/settings/identity/",
        rules_form(
            limit__email="0",
            limit__phone="many",
            custom_identifier_traits="email, loyalty id",
            order_event="  ",
        ),
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="error-limit-email">expected an integer ≥ 1<' in html
    assert 'id="error-limit-phone">expected an integer ≥ 1<' in html
    assert 'value="many"' in html  # the submitted value is kept for correcting
    assert "is a built-in type" in html
    assert 'id="error-order-event">expected an event name' in html
    assert "Not saved:" in html
    assert IdentityRules.objects.get(workspace=tenant_a.workspace).version == 1


def test_identity_rules_form_is_read_only_without_manage(tenant_a: Tenant) -> None:
    for role in (Role.MARKETER, Role.ANALYST):
        client = tenant_a.session(role)
        html = client.get("/settings/identity/").content.decode()
        assert "<fieldset disabled>" in html and 'id="rules-save"' not in html
        response = client.post("/settings/identity/", rules_form(limit__user_id="5"))
        assert response.status_code == 403
    assert tenant_a.session(Role.PRIVACY_OFFICER).post("/settings/identity/").status_code == 403
    assert IdentityRules.objects.get(workspace=tenant_a.workspace).limits == {"user_id": 1}
    settings_page = tenant_a.session(Role.ANALYST).get("/settings/").content.decode()
    assert 'href="/settings/identity/"' in settings_page
    officer = tenant_a.session(Role.PRIVACY_OFFICER).get("/settings/").content.decode()
    assert 'href="/settings/identity/"' not in officer


def test_list_pages_and_long_identity_lists(tenant_a: Tenant, client: Client) -> None:
    send(
        client,
        tenant_a,
        *[
            {"type": "identify", "userId": "kiosk-user", "anonymousId": f"kiosk-{i}"}
            for i in range(55)
        ],
        *[{"type": "page", "anonymousId": f"visitor-{i}", "name": "Home"} for i in range(29)],
    )
    owner = tenant_a.session(Role.OWNER)
    first = owner.get("/profiles/")
    assert len(first.context["rows"]) == 25
    html = first.content.decode()
    assert "Page 1 of 2 · 1–25 of 30" in html and 'href="?page=2"' in html
    second = owner.get("/profiles/", {"page": "2"})
    assert len(second.context["rows"]) == 5
    searched = owner.get("/profiles/", {"q": "visitor-", "page": "2"})
    assert len(searched.context["rows"]) == 4
    assert 'href="?q=visitor-&amp;page=1"' in searched.content.decode()
    # "type:value" with an unknown type is an ordinary value search, not an error
    assert owner.get("/profiles/", {"q": "urn:visitor"}).context["error"] == ""

    kiosk = profile_of(tenant_a, "user_id", "kiosk-user")
    page = owner.get(f"/profiles/{kiosk.pk}/").content.decode()
    assert "and 5 more anonymous_id values" in page
    assert len(re.findall(r"<code>kiosk-\d+</code>", page)) == 50
