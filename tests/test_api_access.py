"""Every management endpoint: authentication, role permissions, and workspace isolation
(a user or token of workspace B can never read or write workspace A's data)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from django.test import Client
from guardian.shortcuts import assign_perm

from cdp.models import ApiToken, Role
from profiles.models import FailedEvent, Source
from profiles.pipeline import queue
from tests.fixtures import Tenant, post_collector


@pytest.fixture
def data_a(tenant_a: Tenant, client: Client) -> dict[str, Any]:
    """Workspace A with events, a failed event and processed schema."""
    message_id = str(uuid.uuid4())
    post_collector(
        client,
        "/v1/batch",
        {
            "batch": [
                {"type": "track", "event": "Secret A", "userId": "alice", "messageId": message_id},
                {"type": "track", "userId": "alice"},  # no event name: dead-lettered
            ]
        },
        write_key=tenant_a.write_key,
    )
    queue.drain()
    return {"message_id": message_id, "failed": FailedEvent.objects.get()}


def test_unauthenticated_requests_get_json_401_or_403(db: Any, client: Client) -> None:
    for path in ["/api/v1/events/", "/api/v1/sources/", "/api/v1/failed-events/", "/api/v1/me/"]:
        response = client.get(path)
        assert response.status_code in (401, 403)
        assert "error" in response.json()


def test_bad_and_revoked_tokens_are_401(tenant_a: Tenant) -> None:
    assert Client(HTTP_AUTHORIZATION="Token nope").get("/api/v1/me/").status_code == 401
    token = ApiToken.matching(tenant_a.tokens[Role.OWNER]).get()
    api = tenant_a.api()
    assert api.post(f"/api/v1/tokens/{token.pk}/revoke/").status_code == 200
    response = api.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Invalid or revoked API token."


def test_token_is_bound_to_its_workspace(tenant_a: Tenant, tenant_b: Tenant) -> None:
    me = tenant_b.api().get("/api/v1/me/").json()
    assert me["workspace"]["name"] == "Bravo"
    assert me["role"] == "owner"


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.ANALYST])
def test_workspace_b_sees_nothing_of_a(
    role: str, tenant_a: Tenant, tenant_b: Tenant, data_a: dict[str, Any]
) -> None:
    b = tenant_b.api(role)
    a_source = tenant_a.source.pk
    failed = data_a["failed"].pk

    events = b.get("/api/v1/events/").json()
    assert events["count"] == 0
    assert b.get(f"/api/v1/events/?message_id={data_a['message_id']}").json()["count"] == 0
    assert b.get(f"/api/v1/events/?source={a_source}").json()["count"] == 0
    assert b.get("/api/v1/failed-events/").json()["count"] == 0
    assert b.get(f"/api/v1/failed-events/{failed}/").status_code == 404
    sources = b.get("/api/v1/sources/").json()["results"]
    assert [s["name"] for s in sources] == ["Bravo app"]
    assert b.get(f"/api/v1/sources/{a_source}/").status_code == 404
    schema = b.get("/api/v1/schema/observed/")
    if role != Role.PRIVACY_OFFICER:
        assert schema.json() == {"events": [], "properties": []}
    members = {m["username"] for m in b.get("/api/v1/members/").json()["results"]}
    assert all(name.endswith("@bravo") for name in members)


def test_workspace_b_cannot_write_to_a(
    tenant_a: Tenant, tenant_b: Tenant, data_a: dict[str, Any]
) -> None:
    b = tenant_b.api()
    a_source = tenant_a.source.pk
    failed = data_a["failed"].pk
    assert b.post(f"/api/v1/failed-events/{failed}/replay/").status_code == 404
    assert (
        b.patch(
            f"/api/v1/sources/{a_source}/", {"enabled": False}, content_type="application/json"
        ).status_code
        == 404
    )
    assert b.post(f"/api/v1/sources/{a_source}/rotate-key/").status_code == 404
    key_id = tenant_a.source.write_keys.get().pk
    assert b.post(f"/api/v1/sources/{a_source}/keys/{key_id}/revoke/").status_code == 404
    a_token = ApiToken.matching(tenant_a.tokens[Role.OWNER]).get()
    assert b.post(f"/api/v1/tokens/{a_token.pk}/revoke/").status_code == 404
    a_server_key = tenant_a.workspace.server_keys.create(name="a")
    assert b.post(f"/api/v1/server-keys/{a_server_key.pk}/revoke/").status_code == 404
    # nothing of A changed
    tenant_a.source.refresh_from_db()
    assert tenant_a.source.enabled
    assert tenant_a.source.write_keys.filter(revoked_at__isnull=True).count() == 1
    assert FailedEvent.objects.get(pk=failed).status == "failed"
    a_server_key.refresh_from_db()
    assert a_server_key.revoked_at is None


def test_a_session_user_only_acts_in_workspaces_they_belong_to(
    tenant_a: Tenant, tenant_b: Tenant, data_a: dict[str, Any]
) -> None:
    client = tenant_b.session()
    session = client.session
    session["cdp_workspace_id"] = tenant_a.workspace.pk  # tampered: not a member of A
    session.save()
    assert client.get("/api/v1/me/").json()["workspace"]["name"] == "Bravo"
    assert client.get("/api/v1/events/").json()["count"] == 0


def test_events_api_filters_and_newest_first(tenant_a: Tenant, client: Client) -> None:
    batch = [
        {"type": "track", "event": "A", "userId": "u1", "messageId": "m1"},
        {"type": "page", "name": "Home", "anonymousId": "x1", "messageId": "m2"},
        {"type": "track", "event": "B", "userId": "u1", "messageId": "m3"},
    ]
    post_collector(client, "/v1/batch", {"batch": batch}, write_key=tenant_a.write_key)
    api = tenant_a.api(Role.ANALYST)
    everything = api.get("/api/v1/events/").json()
    assert [e["messageId"] for e in everything["results"]] == ["m3", "m2", "m1"]
    assert everything["next"] is None
    assert [e["messageId"] for e in api.get("/api/v1/events/?user_id=u1").json()["results"]] == [
        "m3",
        "m1",
    ]
    assert api.get("/api/v1/events/?anonymous_id=x1").json()["results"][0]["name"] == "Home"
    assert api.get("/api/v1/events/?type=track&event=B").json()["count"] == 1
    first = everything["results"][-1]["id"]
    newer = api.get(f"/api/v1/events/?after_id={first}").json()
    assert {e["messageId"] for e in newer["results"]} == {"m2", "m3"}
    page = api.get("/api/v1/events/?page_size=2").json()
    assert page["count"] == 3 and page["next"] is not None
    detail = api.get(f"/api/v1/events/{first}/").json()
    assert detail["messageId"] == "m1" and detail["event"] == "A"


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.OWNER, True),
        (Role.ADMIN, True),
        (Role.MARKETER, False),
        (Role.ANALYST, False),
        (Role.PRIVACY_OFFICER, False),
    ],
)
def test_role_permissions_on_sources_and_replay(
    tenant_a: Tenant, data_a: dict[str, Any], role: str, allowed: bool
) -> None:
    api = tenant_a.api(role)
    created = api.post("/api/v1/sources/", {"name": f"New {role}"}, content_type="application/json")
    assert created.status_code == (201 if allowed else 403)
    if not allowed:
        assert created.json()["error"]["code"] == "forbidden"
    replay = api.post(f"/api/v1/failed-events/{data_a['failed'].pk}/replay/")
    # the dead-lettered event lacks its name, so an allowed replay fails validation (400)
    assert replay.status_code == (400 if allowed else 403)
    assert api.get("/api/v1/events/").status_code == 200  # every role may read events


def test_object_grant_lets_a_marketer_manage_one_source(tenant_a: Tenant) -> None:
    marketer = tenant_a.users[Role.MARKETER]
    other = Source.objects.create(workspace=tenant_a.workspace, name="Other")
    assign_perm("profiles.change_source", marketer, tenant_a.source)
    api = tenant_a.api(Role.MARKETER)
    rotated = api.post(f"/api/v1/sources/{tenant_a.source.pk}/rotate-key/", {}, "application/json")
    assert rotated.status_code == 201
    assert rotated.json()["key"].startswith("wk_")
    assert api.post(f"/api/v1/sources/{other.pk}/rotate-key/").status_code == 403


def test_grant_on_another_workspaces_source_is_ignored(tenant_a: Tenant, tenant_b: Tenant) -> None:
    intruder = tenant_b.users[Role.MARKETER]
    assign_perm("profiles.change_source", intruder, tenant_a.source)
    api = tenant_b.api(Role.MARKETER)
    assert api.post(f"/api/v1/sources/{tenant_a.source.pk}/rotate-key/").status_code == 404


def test_source_crud_validation_errors_name_the_field(tenant_a: Tenant) -> None:
    api = tenant_a.api()
    bad = api.post(
        "/api/v1/sources/", {"name": "x", "kind": "cobol"}, content_type="application/json"
    )
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["message"].startswith("kind:")
    dup = api.post("/api/v1/sources/", {"name": "Alpha app"}, content_type="application/json")
    assert dup.status_code == 409
    patched = api.patch(
        f"/api/v1/sources/{tenant_a.source.pk}/",
        {"max_event_bytes": 128_000, "rate_limit_per_second": 500},
        content_type="application/json",
    )
    assert patched.status_code == 200
    assert patched.json()["max_event_bytes"] == 128_000


def test_members_and_server_keys(tenant_a: Tenant, tenant_b: Tenant) -> None:
    owner = tenant_a.api()
    created = owner.post("/api/v1/server-keys/", {"name": "web"}, content_type="application/json")
    assert created.status_code == 201 and created.json()["key"].startswith("sk_")
    listed = owner.get("/api/v1/server-keys/").json()["results"]
    assert [k["prefix"] for k in listed] == [created.json()["key"][:10]]
    assert "key" not in listed[0]
    assert tenant_a.api(Role.MARKETER).get("/api/v1/server-keys/").status_code == 403
    # admins may change roles but not make owners
    admin = tenant_a.api(Role.ADMIN)
    body = {"username": "analyst@alpha", "role": "marketer"}
    assert admin.post("/api/v1/members/", body, content_type="application/json").status_code == 200
    body = {"username": "analyst@alpha", "role": "owner"}
    assert admin.post("/api/v1/members/", body, content_type="application/json").status_code == 403


def test_api_errors_are_json_never_html(tenant_a: Tenant) -> None:
    api = tenant_a.api()
    for path in ["/api/v1/nothing-here/", "/api/v1/events/999999/", "/api/v1/sources/999/"]:
        response = api.get(path)
        assert response.status_code == 404
        assert response["Content-Type"].startswith("application/json")
        assert set(response.json()["error"]) == {"code", "message", "detail"}
    response = api.delete("/api/v1/events/")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_openapi_schema_and_docs(tenant_a: Tenant, client: Client) -> None:
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in [
        "/api/v1/events/",
        "/api/v1/failed-events/{id}/replay/",
        "/api/v1/sources/",
        "/api/v1/schema/observed/",
    ]:
        assert path in paths, path
    assert "ApiToken" in schema.json()["components"]["securitySchemes"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content
    assert b"cdn" not in docs.content.lower()  # served locally: works offline


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/events/?source=abc",
        "/api/v1/events/?after_id=1;drop",
        "/api/v1/failed-events/?source=x",
    ],
)
def test_non_numeric_filters_are_400_naming_the_parameter(tenant_a: Tenant, path: str) -> None:
    response = tenant_a.api().get(path)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["message"].split(":")[0] in ("source", "after_id")


def test_over_long_names_are_400_not_500(tenant_a: Tenant) -> None:
    api = tenant_a.api()
    response = api.post("/api/v1/sources/", {"name": "x" * 201}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("name:")
    response = api.post("/api/v1/tokens/", {"name": "t" * 101}, content_type="application/json")
    assert response.status_code == 400
    assert api.get("/api/v1/sources/abc/").status_code == 404


def test_openapi_schema_generates_without_errors_or_warnings() -> None:
    """Every API view is described (none skipped for want of a serializer) and choice sets
    do not collide: drf-spectacular's own validation, failing on warnings."""
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", os.devnull)


def test_openapi_schema_lists_segment_consent_and_privacy_endpoints(client: Client) -> None:
    paths = client.get("/api/schema/?format=json").json()["paths"]
    for path in [
        "/api/v1/me/",
        "/api/v1/identity/rebuild/",
        "/api/v1/segments/tags/",
        "/api/v1/segments/{id}/duplicate/",
        "/api/v1/segments/{id}/versions/",
        "/api/v1/segments/{id}/versions/{number}/restore/",
        "/api/v1/consent/purposes/overview/",
        "/api/v1/privacy/settings/",
        "/api/v1/privacy/suppression/",
        "/api/v1/privacy/requests/{id}/extend/",
    ]:
        assert path in paths, path


def test_openapi_schema_documents_the_error_shape_and_every_code(client: Client) -> None:
    """One validation shape on every operation, and every app's codes in the catalogue."""
    schema = client.get("/api/schema/?format=json").json()
    components = schema["components"]["schemas"]
    fields = components["ValidationError"]["properties"]["error"]["properties"]["detail"]
    assert fields["properties"]["fields"]["additionalProperties"]["items"] == {"type": "string"}
    codes = components["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    for code in (
        "validation_failed",
        "duplicate",
        "replayed",
        "already_split",
        "not_pending",
        "second_approver_required",
        "export_expired",
        "no_draft",
        "segment_in_use",
    ):
        assert code in codes, code  # fmt: skip
        assert f"| `{code}` |" in components["Error"]["description"]
    publish = schema["paths"]["/api/v1/segments/{id}/publish/"]["post"]["responses"]
    assert {"400", "401", "403", "404", "409"} <= set(publish)
    assert "409" not in schema["paths"]["/api/v1/segments/"]["get"]["responses"]


def test_tokens_are_stored_as_digests_and_shown_once(tenant_a: Tenant) -> None:
    from cdp.keys import digest_of
    from cdp.models import ApiToken

    owner = tenant_a.api()
    made = owner.post("/api/v1/tokens/", {"name": "ci"}, content_type="application/json").json()
    key = made["key"]
    assert key.startswith("tok_") and made["prefix"] == key[:10]
    listed = owner.get("/api/v1/tokens/").json()["results"]
    assert all("key" not in t for t in listed)
    assert made["prefix"] in [t["prefix"] for t in listed]
    # nothing stored in clear: only the digest and the prefix
    row = ApiToken.objects.get(pk=made["id"])
    assert row.digest == digest_of(key) and key not in str(
        ApiToken.objects.filter(pk=made["id"]).values().get()
    )
    assert Client(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/me/").status_code == 200
    assert Client(HTTP_AUTHORIZATION=f"Token {key}x").get("/api/v1/me/").status_code == 401
    owner.post(f"/api/v1/tokens/{made['id']}/revoke/")
    assert Client(HTTP_AUTHORIZATION=f"Token {key}").get("/api/v1/me/").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_existing_clear_keys_are_hashed_by_the_migration() -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    from cdp.keys import digest_of

    executor = MigrationExecutor(connection)
    before = [("cdp", "0001_initial"), ("activation", "0001_initial")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    user = old.get_model("auth", "User").objects.create(username="legacy")
    workspace = old.get_model("cdp", "Workspace").objects.create(name="Legacy")
    old.get_model("cdp", "ApiToken").objects.create(
        workspace=workspace, user=user, name="old", key="tok_legacy-token-value"
    )
    old.get_model("activation", "ServerKey").objects.create(
        workspace=workspace, name="old", key="sk_legacy-server-key"
    )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    from activation.models import ServerKey
    from cdp.models import ApiToken

    token = ApiToken.matching("tok_legacy-token-value").get()
    assert token.prefix == "tok_legacy" and token.digest == digest_of("tok_legacy-token-value")
    assert ServerKey.matching("sk_legacy-server-key").get().prefix == "sk_legacy-"
