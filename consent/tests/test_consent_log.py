"""The consent log: purposes, decisions from SDK events and the API, an append-only log enforced
by the database, merges carrying the latest decision, and the one enforcement helper (Python
and SQL) that segments use."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone

from cdp.models import Role
from consent import enforcement, services
from consent.models import ConsentRecord, ConsentState
from profiles.models import ProfileMerge
from profiles.tests.test_identity_resolution import process, profile_of, send
from tests.fixtures import Tenant


def post(tenant: Tenant, path: str, body: Any, role: str = Role.OWNER) -> Any:
    return tenant.api(role).post(path, body, content_type="application/json")


@pytest.fixture
def purposes(tenant_a: Tenant) -> None:
    services.purposes_install_defaults(workspace=tenant_a.workspace)


def prefs(when: Any, **choices: bool) -> dict[str, Any]:
    return {
        "timestamp": when.isoformat(),
        "context": {
            "consent": {"categoryPreferences": choices, "policyVersion": "2026-10"},
            "ip": "203.0.113.7",
            "userAgent": "Mozilla/5.0 (test)",
        },
    }


def page(
    user: str, when: Any, choices: dict[str, bool], message_id: str | None = None
) -> dict[str, Any]:
    event = {"type": "page", "userId": user, "name": "Home", **prefs(when, **choices)}
    if message_id:
        event["messageId"] = message_id
    return event


def state(profile_id: int) -> dict[str, str]:
    return dict(ConsentState.objects.filter(profile_id=profile_id).values_list("purpose", "status"))


# ---- purposes --------------------------------------------------------------------------------


def test_purposes_api(tenant_a: Tenant, tenant_b: Tenant) -> None:
    created = post(
        tenant_a,
        "/api/v1/consent/purposes/",
        {"key": "Product Research", "legal_basis": "consent", "name": "Product research"},
        role=Role.PRIVACY_OFFICER,
    )
    assert created.status_code == 201, created.content
    assert created.json()["key"] == "product_research"
    assert created.json()["default_granted"] is False  # opt-in
    li = post(
        tenant_a,
        "/api/v1/consent/purposes/",
        {"key": "fraud", "legal_basis": "legitimate_interest"},
    )
    assert li.json()["default_granted"] is True  # opt-out
    opt_in_by_default = post(
        tenant_a,
        "/api/v1/consent/purposes/",
        {"key": "ads", "legal_basis": "consent", "default_granted": True},
    )
    assert opt_in_by_default.status_code == 400
    assert opt_in_by_default.json()["error"]["code"] == "validation_failed"
    duplicate = post(
        tenant_a, "/api/v1/consent/purposes/", {"key": "fraud", "legal_basis": "consent"}
    )
    assert duplicate.json()["error"]["code"] == "duplicate"
    marketer = post(
        tenant_a,
        "/api/v1/consent/purposes/",
        {"key": "x", "legal_basis": "consent"},
        role=Role.MARKETER,
    )
    assert marketer.status_code == 403
    listed = tenant_a.api(Role.ANALYST).get("/api/v1/consent/purposes/").json()["results"]
    assert [p["key"] for p in listed] == ["fraud", "product_research"]
    assert tenant_b.api().get("/api/v1/consent/purposes/").json()["results"] == []


# ---- decisions from events -------------------------------------------------------------------


def test_decisions_from_sdk_events(tenant_a: Tenant, client: Client, purposes: None) -> None:
    t0 = timezone.now() - timedelta(hours=3)
    send(
        client,
        tenant_a,
        page(
            "ann",
            t0,
            {"Marketing_Email": True, "advertising": False, "Unknown_Thing": True},
            "m-1",
        ),
        # the same preferences ride on every later event: not new decisions
        page("ann", t0 + timedelta(minutes=1), {"marketing_email": True, "advertising": False}),
        page("ann", t0 + timedelta(minutes=2), {"marketing-email": True}),
    )
    process()
    ann = profile_of(tenant_a, "user_id", "ann").pk
    records = list(ConsentRecord.objects.filter(profile_id=ann).order_by("purpose"))
    assert [(r.purpose, r.status) for r in records] == [
        ("advertising", "denied"),
        ("marketing_email", "granted"),
    ]
    proof = records[1]
    assert (proof.message_id, proof.ip, proof.user_agent, proof.policy_version) == (
        "m-1",
        "203.0.113.7",
        "Mozilla/5.0 (test)",
        "2026-10",
    )
    assert proof.source == "event" and proof.occurred_at == t0
    assert state(ann) == {"advertising": "denied", "marketing_email": "granted"}

    # a change is a decision; the explicit consent event always is one
    send(
        client,
        tenant_a,
        page("ann", t0 + timedelta(hours=1), {"marketing_email": False}),
        {
            "type": "track",
            "userId": "ann",
            "event": "Segment Consent Preference Updated",
            **prefs(t0 + timedelta(hours=2), advertising=False),
        },
    )
    process()
    assert ConsentRecord.objects.filter(profile_id=ann).count() == 4
    assert state(ann) == {"advertising": "denied", "marketing_email": "denied"}
    # a late event with an old answer does not override the newer decision
    send(client, tenant_a, page("ann", t0 - timedelta(days=1), {"marketing_email": True}))
    process()
    assert state(ann)["marketing_email"] == "denied"


def test_decisions_through_the_api(tenant_a: Tenant, client: Client, purposes: None) -> None:
    send(client, tenant_a, {"type": "identify", "userId": "bo", "traits": {"email": "bo@x.io"}})
    process()
    bo = profile_of(tenant_a, "user_id", "bo").pk
    made = post(
        tenant_a,
        "/api/v1/consent/events/",
        {
            "identifier": "email:BO@x.io",
            "purpose": "marketing_email",
            "status": "granted",
            "policy_version": "v3",
            "ip": "198.51.100.1",
        },
        role=Role.PRIVACY_OFFICER,
    )
    assert made.status_code == 201, made.content
    assert made.json()["profile_id"] == bo and made.json()["source"] == "api"
    assert made.json()["actor_id"] == tenant_a.users[Role.PRIVACY_OFFICER].pk
    assert enforcement.consent_allows(
        workspace_id=tenant_a.workspace.pk, profile_id=bo, purpose="marketing_email"
    )
    errors = [
        ({"profile_id": bo, "purpose": "telepathy", "status": "granted"}, 400, "unknown_purpose"),
        ({"profile_id": bo, "purpose": "analytics", "status": "maybe"}, 400, "invalid"),
        ({"purpose": "analytics", "status": "granted"}, 400, "subject_required"),
        ({"identifier": "email:nobody@x.io", "purpose": "analytics", "status": "granted"}, 404,
         "not_found"),
        ({"profile_id": bo, "purpose": "analytics", "status": "granted",
          "occurred_at": (timezone.now() + timedelta(days=1)).isoformat()}, 400, "invalid"),
    ]  # fmt: skip
    for body, code, kind in errors:
        response = post(tenant_a, "/api/v1/consent/events/", body)
        assert response.status_code == code, (body, response.content)
        assert response.json()["error"]["code"] in (kind, "validation_failed"), response.json()
    assert (
        post(tenant_a, "/api/v1/consent/events/", errors[0][0], role=Role.MARKETER).status_code
        == 403
    )
    history = tenant_a.api(Role.ANALYST).get(f"/api/v1/consent/events/?profile={bo}").json()
    assert [r["status"] for r in history["results"]] == ["granted"]
    detail = tenant_a.api().get(f"/api/v1/profiles/{bo}/").json()
    assert detail["consents"]["marketing_email"]["allowed"] is True
    assert detail["consents"]["analytics"] == {
        "allowed": True,
        "status": None,
        "decided_at": None,
        "legal_basis": "legitimate_interest",
        "default_granted": True,
    }


# ---- append-only -----------------------------------------------------------------------------


def test_the_log_cannot_be_changed(tenant_a: Tenant, client: Client, purposes: None) -> None:
    send(client, tenant_a, page("cy", timezone.now(), {"advertising": True}))
    process()
    record = ConsentRecord.objects.get()
    path = "/api/v1/consent/events/"
    api = tenant_a.api()
    for method in (api.put, api.patch, api.delete):
        assert method(f"{path}{record.pk}/").status_code in (404, 405)
    for statement in (
        "UPDATE consent_consentrecord SET status = 'denied'",
        "UPDATE consent_consentrecord SET occurred_at = now() - interval '1 year'",
        "UPDATE consent_consentrecord SET ip = ''",
        "DELETE FROM consent_consentrecord",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(statement)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ConsentRecord.objects.filter(pk=record.pk).update(status="withdrawn")
    assert ConsentRecord.objects.get().status == "granted"
    # a privacy deletion may remove it (and only it may: the setting is local to it)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL cdp.privacy_delete = 'on'")
        cursor.execute("DELETE FROM consent_consentrecord")
    assert not ConsentRecord.objects.exists()


# ---- merges and splits -----------------------------------------------------------------------


@pytest.mark.parametrize("latest", ["anonymous", "known"])
def test_a_merge_keeps_the_most_recent_decision(
    tenant_a: Tenant, client: Client, purposes: None, latest: str
) -> None:
    t0 = timezone.now() - timedelta(days=2)
    early, late = (t0, t0 + timedelta(hours=5))
    anon_time, known_time = (late, early) if latest == "anonymous" else (early, late)
    send(
        client,
        tenant_a,
        {"type": "page", "anonymousId": "anon-1", **prefs(anon_time, marketing_email=True)},
        {"type": "page", "userId": "dee", **prefs(known_time, marketing_email=False)},
    )
    process()
    known = profile_of(tenant_a, "user_id", "dee").pk
    anon = profile_of(tenant_a, "anonymous_id", "anon-1").pk
    assert state(anon) == {"marketing_email": "granted"}
    assert state(known) == {"marketing_email": "denied"}
    send(
        client,
        tenant_a,
        {"type": "identify", "userId": "dee", "anonymousId": "anon-1", "messageId": "link"},
    )
    process()
    survivor = profile_of(tenant_a, "user_id", "dee").pk
    winner_status = "granted" if latest == "anonymous" else "denied"
    assert state(survivor) == {"marketing_email": winner_status}
    assert ConsentRecord.objects.filter(profile_id=survivor).count() == 2
    loser = anon if survivor == known else known
    assert state(loser) == {}
    # the privacy center counts the merged person once
    overview = tenant_a.api().get("/api/v1/consent/purposes/overview/").json()
    email = next(r for r in overview["results"] if r["purpose"] == "marketing_email")
    assert overview["profiles"] == 1 and email[winner_status] == 1
    assert email["granted"] + email["denied"] + email["withdrawn"] == 1

    merge = ProfileMerge.objects.get(workspace=tenant_a.workspace)
    split = tenant_a.api().post(
        f"/api/v1/profiles/{survivor}/split/", {"merge": merge.pk}, content_type="application/json"
    )
    assert split.status_code == 200, split.content
    assert state(anon) == {"marketing_email": "granted"}
    assert state(known) == {"marketing_email": "denied"}


# ---- enforcement -----------------------------------------------------------------------------


class Binder:
    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def __call__(self, value: object) -> str:
        name = f"v{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"


def test_enforcement_helper_python_and_sql_agree(
    tenant_a: Tenant, tenant_b: Tenant, client: Client, purposes: None
) -> None:
    now = timezone.now()
    send(
        client,
        tenant_a,
        page("yes", now, {"marketing_email": True, "analytics": True}),
        page("no", now, {"marketing_email": False, "analytics": False}),
        page("never", now, {}),
        {
            "type": "page",
            "userId": "withdrew",
            **prefs(now - timedelta(hours=1), marketing_email=True),
        },
    )
    process()
    ids = {u: profile_of(tenant_a, "user_id", u).pk for u in ("yes", "no", "never", "withdrew")}
    services.consent_record(
        workspace=tenant_a.workspace,
        profile_id=ids["withdrew"],
        purpose="marketing_email",
        status="withdrawn",
    )
    ws = tenant_a.workspace.pk
    expected = {
        "marketing_email": {ids["yes"]},  # opt-in: only a yes
        "analytics": {ids["yes"], ids["never"], ids["withdrew"]},  # opt-out: all but a no
        "undefined_purpose": set(),  # fail closed
    }
    for purpose, allowed in expected.items():
        python = enforcement.consent_allowed_profiles(
            workspace_id=ws, purpose=purpose, profile_ids=ids.values()
        )
        binder = Binder()
        predicate = enforcement.consent_sql(
            profile_column="p.id", workspace_id=ws, purpose=purpose, param=binder
        )
        query = f"SELECT p.id FROM profiles_profile p WHERE p.workspace_id = %(ws)s AND {predicate}"
        with connection.cursor() as cursor:
            cursor.execute(query, {**binder.params, "ws": ws})
            sql = {row[0] for row in cursor.fetchall()}
        assert python == sql == allowed, purpose

    # the privacy center's overview counts the same rule for everybody
    overview = tenant_a.api(Role.PRIVACY_OFFICER).get("/api/v1/consent/purposes/overview/")
    assert overview.status_code == 200
    body = overview.json()
    assert body["profiles"] == 4 and body["recent_days"] == 30
    rows = {row["purpose"]: row for row in body["results"]}
    assert set(rows) == {
        "advertising",
        "analytics",
        "marketing_email",
        "ml_training",
        "personalization",
    }
    email = rows["marketing_email"]
    assert (email["granted"], email["denied"], email["withdrawn"], email["undecided"]) == (
        1,
        1,
        1,
        1,
    )
    assert email["allowed"] == 1 and email["recent_granted"] == 2 and email["recent_refused"] == 2
    assert rows["analytics"]["allowed"] == 3 and rows["analytics"]["undecided"] == 2
    for purpose, row in rows.items():
        everyone = enforcement.consent_allowed_profiles(
            workspace_id=ws, purpose=purpose, profile_ids=ids.values()
        )
        assert row["allowed"] == len(everyone), purpose
    # marketers read it (whom may a campaign reach?); another workspace sees its own
    assert tenant_a.api(Role.MARKETER).get("/api/v1/consent/purposes/overview/").status_code == 200
    elsewhere = tenant_b.api(Role.OWNER).get("/api/v1/consent/purposes/overview/").json()
    assert elsewhere == {"profiles": 0, "recent_days": 30, "results": []}
