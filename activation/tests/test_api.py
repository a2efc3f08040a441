"""The activation API: who may do what, workspace isolation, write-only secrets, field-level
validation and "Send test" answers for bad configuration (never a 500)."""

from __future__ import annotations

from typing import Any

from activation.models import Destination
from activation.secrets import decrypt
from activation.tests.helpers import people, pro_segment
from activation.tests.receiver import receiver
from cdp.models import Role
from consent.services import purposes_install_defaults
from tests.fixtures import Tenant


def create(tenant: Tenant, role: str = Role.ADMIN, **data: Any) -> Any:
    purposes_install_defaults(workspace=tenant.workspace)
    body = {
        "name": "Hook",
        "kind": "webhook",
        "purpose": "analytics",
        "config": {"url": "http://127.0.0.1:9/x", "authorization": "Bearer s3cr3t-token"},
        **data,
    }
    return tenant.api(role).post("/api/v1/destinations/", body, content_type="application/json")


def test_secrets_are_encrypted_write_only_and_the_generated_one_shown_once(
    tenant_a: Tenant,
) -> None:
    answer = create(tenant_a)
    assert answer.status_code == 201, answer.content
    made = answer.json()
    assert made["generated_secrets"]["signing_secret"].startswith("whsec_")
    assert made["secrets_set"] == ["authorization", "signing_secret"]
    assert "s3cr3t" not in answer.content.decode()
    row = Destination.objects.get(pk=made["id"])
    assert "s3cr3t" not in row.secrets_encrypted and "s3cr3t" not in str(row.config)
    assert decrypt(row.secrets_encrypted)["authorization"] == "Bearer s3cr3t-token"
    again = tenant_a.api(Role.ADMIN).get(f"/api/v1/destinations/{made['id']}/").json()
    assert "generated_secrets" not in again and "s3cr3t" not in str(again)
    assert again["secrets_set"] == ["authorization", "signing_secret"]
    # an empty secret keeps the stored one; a new one replaces it
    patch = tenant_a.api(Role.ADMIN).patch(
        f"/api/v1/destinations/{made['id']}/",
        {"config": {"authorization": "", "url": "http://127.0.0.1:9/y"}},
        content_type="application/json",
    )
    assert patch.status_code == 200, patch.content
    row.refresh_from_db()
    assert decrypt(row.secrets_encrypted)["authorization"] == "Bearer s3cr3t-token"
    assert row.config["url"] == "http://127.0.0.1:9/y"


def test_roles_and_workspaces(tenant_a: Tenant, tenant_b: Tenant) -> None:
    made = create(tenant_a).json()
    assert create(tenant_a, Role.MARKETER, name="Mine").status_code == 403
    seen = tenant_a.api(Role.MARKETER).get("/api/v1/destinations/").json()["results"]
    assert [d["name"] for d in seen] == ["Hook"]
    assert seen[0]["config"] is None and seen[0]["secrets_set"] is None  # settings: admins
    assert (
        tenant_a.api(Role.MARKETER).post(f"/api/v1/destinations/{made['id']}/test/").status_code
        == 403
    )
    assert tenant_b.api(Role.OWNER).get(f"/api/v1/destinations/{made['id']}/").status_code == 404
    assert tenant_b.api(Role.OWNER).get("/api/v1/destinations/").json()["count"] == 0
    # a marketer makes a sync of a segment they can read, to the admin's destination
    people(tenant_a, 3)
    segment = pro_segment(tenant_a)
    sync = tenant_a.api(Role.MARKETER).post(
        "/api/v1/syncs/",
        {"name": "Pro", "segment": segment.pk, "destination": made["id"]},
        content_type="application/json",
    )
    assert sync.status_code == 201, sync.content
    assert (
        tenant_a.api(Role.ANALYST).post(f"/api/v1/syncs/{sync.json()['id']}/run/").status_code
        == 403
    )
    assert tenant_b.api(Role.OWNER).post(
        "/api/v1/syncs/",
        {"name": "Steal", "segment": segment.pk, "destination": made["id"]},
        content_type="application/json",
    ).json()["error"]["detail"]["fields"].keys() == {"segment", "destination"}
    busy = tenant_a.api(Role.ADMIN).delete(f"/api/v1/destinations/{made['id']}/")
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "destination_in_use"


def test_validation_names_each_bad_field(tenant_a: Tenant) -> None:
    answer = create(
        tenant_a,
        purpose="nope",
        config={"url": "ftp://x", "headers": {"webhook-id": "1"}, "colour": "red"},
        batch_size=0,
    )
    assert answer.status_code == 400
    fields = answer.json()["error"]["detail"]["fields"]
    assert "batch_size" in fields
    made = create(
        tenant_a,
        purpose="nope",
        config={"url": "ftp://x", "colour": "red", "headers": {"webhook-id": "1"}},
    )
    fields = made.json()["error"]["detail"]["fields"]
    assert set(fields) == {"purpose", "config.url", "config.colour", "config.headers"}
    assert "http://" in fields["config.url"][0]
    people(tenant_a, 2)
    segment = pro_segment(tenant_a)
    good = create(tenant_a).json()
    bad_sync = tenant_a.api(Role.ADMIN).post(
        "/api/v1/syncs/",
        {
            "name": "X",
            "segment": segment.pk,
            "destination": good["id"],
            "mapping": {"identifiers": [{"type": "shoe_size"}], "fields": [{"as": "a"}]},
        },
        content_type="application/json",
    )
    fields = bad_sync.json()["error"]["detail"]["fields"]
    assert set(fields) == {"mapping.identifiers[0].type", "mapping.fields[0]"}


def test_send_test_reports_the_answer_and_clear_errors(tenant_a: Tenant) -> None:
    api = tenant_a.api(Role.ADMIN)
    refused = create(tenant_a).json()  # nothing listens on port 9
    answer = api.post(f"/api/v1/destinations/{refused['id']}/test/").json()
    assert answer["ok"] is False and "cannot connect" in answer["message"]
    with receiver() as hook:
        port = hook.url.split(":")[2].split("/")[0]
        tls = create(tenant_a, name="TLS", config={"url": f"https://127.0.0.1:{port}/x"}).json()
        answer = api.post(f"/api/v1/destinations/{tls['id']}/test/").json()
        assert answer["ok"] is False and "TLS" in answer["message"], answer
        malformed = create(tenant_a, name="Bad", config={"url": "http://exa mple.com:99999/"})
        assert malformed.status_code == 400
        assert "config.url" in malformed.json()["error"]["detail"]["fields"]
        hook.then(401)
        made = create(tenant_a, name="Real", config={"url": hook.url}).json()
        denied = api.post(f"/api/v1/destinations/{made['id']}/test/").json()
        assert denied["ok"] is False and denied["response"]["status"] == 401
        ok = api.post(f"/api/v1/destinations/{made['id']}/test/").json()
        assert ok["ok"] is True and ok["request"]["target"] == hook.url
        assert hook.requests[-1].json["items"][0]["type"] == "event"
    health = api.get(f"/api/v1/destinations/{made['id']}/health/")
    assert health.status_code == 200 and health.json()["circuit"] == "closed"


def test_a_synced_segment_is_not_deleted(tenant_a: Tenant) -> None:
    people(tenant_a, 2)
    segment = pro_segment(tenant_a)
    made = create(tenant_a).json()
    api = tenant_a.api(Role.ADMIN)
    sync = api.post(
        "/api/v1/syncs/",
        {"name": "Pro", "segment": segment.pk, "destination": made["id"]},
        content_type="application/json",
    ).json()
    answer = api.delete(f"/api/v1/segments/{segment.pk}/")
    assert answer.status_code == 409, answer.content
    assert answer.json()["error"]["detail"]["used_by"] == ["sync 'Pro'"]
    assert api.delete(f"/api/v1/syncs/{sync['id']}/").status_code == 204
    assert api.delete(f"/api/v1/segments/{segment.pk}/").status_code == 204
