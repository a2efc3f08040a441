"""The profiles, identity rules, conflicts and merges API: shapes, permissions, isolation."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from cdp.models import Role
from profiles.models import IdentityRules, Profile, ProfileMerge
from profiles.tests.test_identity_resolution import process, profile_of, send
from tests.fixtures import Tenant


@pytest.fixture
def people(tenant_a: Tenant, client: Client) -> dict[str, int]:
    send(
        client,
        tenant_a,
        {"type": "page", "anonymousId": "v-1", "name": "Home", "timestamp": "2026-02-01T00:00:00Z"},
        *[
            {
                "type": "track",
                "anonymousId": "v-1",
                "event": f"Step {n}",
                "timestamp": f"2026-02-01T00:{n:02d}:00Z",
            }
            for n in range(1, 8)
        ],
        {
            "type": "identify",
            "userId": "ann",
            "anonymousId": "v-2",
            "traits": {"email": "Ann@Example.com", "name": "Ann Smith", "phone": "+1 415 555 0134"},
        },
        {"type": "identify", "userId": "bob", "anonymousId": "v-3"},
    )
    process()
    send(client, tenant_a, {"type": "identify", "userId": "ann", "anonymousId": "v-1"})
    send(client, tenant_a, {"type": "identify", "userId": "cy", "anonymousId": "v-3"})
    process()
    return {
        "ann": profile_of(tenant_a, "user_id", "ann").pk,
        "bob": profile_of(tenant_a, "user_id", "bob").pk,
    }


def get(tenant: Tenant, path: str, role: str = Role.OWNER) -> Any:
    return tenant.api(role).get(path)


def test_list_search_and_identifier_filter(tenant_a: Tenant, people: dict[str, int]) -> None:
    body = get(tenant_a, "/api/v1/profiles/").json()
    assert body["count"] == 3  # ann (merged with v-1), bob, cy
    assert {"type", "value"} <= set(body["results"][0]["identities"][0])
    found = get(tenant_a, "/api/v1/profiles/?identifier=email:%20ANN@example.com").json()
    assert [p["id"] for p in found["results"]] == [people["ann"]]
    assert found["results"][0]["display_name"] == "Ann Smith"
    by_phone = get(tenant_a, "/api/v1/profiles/?q=%2B14155550134").json()
    assert [p["id"] for p in by_phone["results"]] == [people["ann"]]
    by_prefix = get(tenant_a, "/api/v1/profiles/?q=v-").json()
    assert by_prefix["count"] == 2  # cy has no v- identifier: v-3 stayed with bob
    bad = get(tenant_a, "/api/v1/profiles/?identifier=email")
    assert bad.status_code == 400
    assert "type>:<value" in bad.json()["error"]["message"]


def test_detail_follows_merges_and_pages_events(tenant_a: Tenant, people: dict[str, int]) -> None:
    merge = ProfileMerge.objects.get(winner_id=people["ann"])
    loser = merge.loser_id
    body = get(tenant_a, f"/api/v1/profiles/{loser}/").json()
    assert body["id"] == people["ann"] and body["resolved_from"] == loser
    assert {"type": "user_id", "value": "ann"} in [
        {"type": i["type"], "value": i["value"]} for i in body["identities"]
    ]
    assert body["identities"][0]["type"] == "user_id"  # highest priority first
    assert body["merges"][0]["rule"] == "shared_identifier:anonymous_id"
    for key in ("traits", "computed_traits", "segments", "consents", "conflicts"):
        assert key in body
    page1 = get(tenant_a, f"/api/v1/profiles/{people['ann']}/events/?page_size=4").json()
    assert page1["count"] == 10 and len(page1["results"]) == 4 and page1["next"]
    times = [e["timestamp"] for e in page1["results"]]
    assert times == sorted(times, reverse=True)
    page3 = get(tenant_a, f"/api/v1/profiles/{people['ann']}/events/?page_size=4&page=3").json()
    assert len(page3["results"]) == 2
    assert get(tenant_a, "/api/v1/profiles/999999/").status_code == 404
    assert get(tenant_a, "/api/v1/profiles/abc/").status_code == 404


def test_conflicts_and_merges_lists(tenant_a: Tenant, people: dict[str, int]) -> None:
    conflicts = get(tenant_a, "/api/v1/identity/conflicts/").json()
    assert conflicts["count"] == 1
    row = conflicts["results"][0]
    assert (row["reason"], row["identifier_value"]) == ("limit_exceeded", "v-3")
    assert row["other_profile"] == people["bob"]
    merges = get(tenant_a, "/api/v1/identity/merges/?status=active").json()
    assert merges["count"] == 1


def test_split_permissions_and_errors(tenant_a: Tenant, people: dict[str, int]) -> None:
    merge = ProfileMerge.objects.get(winner_id=people["ann"])
    url = f"/api/v1/profiles/{people['ann']}/split/"
    for role in (Role.MARKETER, Role.ANALYST):
        response = tenant_a.api(role).post(
            url, {"merge": merge.pk}, content_type="application/json"
        )
        assert response.status_code == 403, role
    api = tenant_a.api()
    assert api.post(url, {}, content_type="application/json").status_code == 400
    wrong = api.post(
        f"/api/v1/profiles/{people['bob']}/split/",
        {"merge": merge.pk},
        content_type="application/json",
    )
    assert wrong.status_code == 404
    done = api.post(url, {"merge": merge.pk}, content_type="application/json")
    assert done.status_code == 200
    assert [p["id"] for p in done.json()["profiles"]] == [people["ann"], merge.loser_id]
    again = api.post(url, {"merge": merge.pk}, content_type="application/json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_split"


def test_other_workspaces_see_nothing(
    tenant_a: Tenant, tenant_b: Tenant, people: dict[str, int]
) -> None:
    assert get(tenant_b, "/api/v1/profiles/").json()["count"] == 0
    assert get(tenant_b, f"/api/v1/profiles/{people['ann']}/").status_code == 404
    assert get(tenant_b, f"/api/v1/profiles/{people['ann']}/events/").status_code == 404
    assert get(tenant_b, "/api/v1/identity/conflicts/").json()["count"] == 0
    assert get(tenant_b, "/api/v1/identity/merges/").json()["count"] == 0
    merge = ProfileMerge.objects.get(winner_id=people["ann"])
    response = tenant_b.api().post(
        f"/api/v1/profiles/{people['ann']}/split/",
        {"merge": merge.pk},
        content_type="application/json",
    )
    assert response.status_code == 404
    assert Profile.objects.get(pk=merge.loser_id).merged_into_id == people["ann"]


def test_identity_rules_api(tenant_a: Tenant, tenant_b: Tenant) -> None:
    api = tenant_a.api()
    rules = api.get("/api/v1/identity/rules/").json()
    assert rules["limits"] == {"user_id": 1}
    assert "undefined" in rules["blocklist"]
    ok = api.patch(
        "/api/v1/identity/rules/",
        {
            "limits": {"user_id": 1, "email": 2},
            "trait_strategies": {"points": "sum"},
            "custom_identifier_traits": ["loyalty_id"],
            "phone_region": "gb",
        },
        content_type="application/json",
    )
    assert ok.status_code == 200, ok.content
    assert ok.json()["phone_region"] == "GB" and ok.json()["version"] == 2
    bad = api.patch(
        "/api/v1/identity/rules/",
        {"limits": {"email": 0}, "trait_strategies": {"x": "newest"}, "colour": 1},
        content_type="application/json",
    )
    assert bad.status_code == 400
    fields = bad.json()["error"]["detail"]["fields"]
    assert set(fields) == {"limits.email", "trait_strategies.x", "colour"}
    assert IdentityRules.objects.get(workspace=tenant_a.workspace).limits["email"] == 2
    assert (
        tenant_a.api(Role.MARKETER)
        .patch("/api/v1/identity/rules/", {"limits": {}}, content_type="application/json")
        .status_code
        == 403
    )
    assert tenant_a.api(Role.PRIVACY_OFFICER).get("/api/v1/identity/rules/").status_code == 403
    assert tenant_b.api().get("/api/v1/identity/rules/").json()["limits"] == {"user_id": 1}


def test_strategies_and_custom_identifiers(tenant_a: Tenant, client: Client) -> None:
    tenant_a.api().patch(
        "/api/v1/identity/rules/",
        {
            "trait_strategies": {"points": "sum", "signup": "oldest", "nick": "non_empty"},
            "custom_identifier_traits": ["loyalty_id"],
        },
        content_type="application/json",
    )
    send(
        client,
        tenant_a,
        {
            "type": "identify",
            "anonymousId": "x-1",
            "timestamp": "2026-04-02T00:00:00Z",
            "traits": {"points": 5, "signup": "april", "nick": "zed", "loyalty_id": "L-77"},
        },
        {
            "type": "identify",
            "anonymousId": "x-2",
            "timestamp": "2026-04-01T00:00:00Z",
            "traits": {"points": 7, "signup": "march", "nick": "", "loyalty_id": "L-77"},
        },
        {
            "type": "identify",
            "anonymousId": "x-2",
            "timestamp": "2026-04-03T00:00:00Z",
            "traits": {"nick": ""},
        },
    )
    process()
    [profile] = Profile.objects.filter(workspace=tenant_a.workspace, merged_into=None)
    assert profile.traits == {"points": 12, "signup": "march", "nick": "zed", "loyalty_id": "L-77"}
    assert profile.identities.filter(type="loyalty_id", value="L-77").exists()


def test_rebuild_is_queued_and_reported(
    tenant_a: Tenant, people: dict[str, int], django_capture_on_commit_callbacks: Any
) -> None:
    from profiles.tasks.identity import identity_graph_rebuild_task

    assert get(tenant_a, "/api/v1/identity/rebuild/").json() == {}
    assert tenant_a.api(Role.MARKETER).post("/api/v1/identity/rebuild/", {}).status_code == 403
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = tenant_a.api().post(
            "/api/v1/identity/rebuild/", {"dry_run": True}, content_type="application/json"
        )
    assert response.status_code == 202 and response.json()["dry_run"] is True
    assert len(callbacks) == 1
    # what the worker runs
    identity_graph_rebuild_task.apply(
        kwargs={"workspace_id": tenant_a.workspace.pk, "apply": False}
    )
    report = get(tenant_a, "/api/v1/identity/rebuild/").json()
    assert report["applied"] is False and report["profiles_before"] == 3
    assert report["merges"]["count"] == 0 and "finished_at" in report
