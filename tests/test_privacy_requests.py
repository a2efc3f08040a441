"""Privacy requests end to end: a subject ingested through SDK payloads (several devices, an
alias, a merge, consent, a dead letter, segment membership) is exported completely, then
deleted so completely that a generic scan of every column of every table finds none of their
identifiers or trait values; their SDKs are then dropped at the door; nobody else's data moves.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from django.db import connection
from django.db.models import Q
from django.test import Client

from cdp.errors import Forbidden
from cdp.models import AuditLog, Role
from consent import privacy
from consent.models import (
    PrivacyExport,
    PrivacyRequest,
    SuppressedIdentifier,
    SuppressionDropCount,
)
from consent.services import purposes_install_defaults
from profiles.models import Event, ObservedProperty
from profiles.pipeline import queue
from profiles.tests.test_identity_resolution import process, profile_of, send
from segments.services import segment_create
from tests.fixtures import Tenant, post_collector

ZEB = {
    "user": "u-zebulon-7731",
    "laptop": "anon-zeb-laptop-5e1f",
    "phone_anon": "anon-zeb-phone-90ab",
    "email_sent": "Zebulon.Quartermaine@Example.org",
    "email": "zebulon.quartermaine@example.org",
    "phone_sent": "+1 (415) 555-0123",
    "phone": "+14155550123",
    "device": "dev-zeb-ios-77c2",
    "surname": "Quartermaine",
    "street": "1 Wombat Crescent",
}
# what must not survive anywhere (the values as stored, and as the SDKs sent them)
ZEB_TRACES = [
    ZEB["user"],
    ZEB["laptop"],
    ZEB["phone_anon"],
    ZEB["email"],
    ZEB["phone"],
    ZEB["phone_sent"],
    ZEB["device"],
    ZEB["surname"],
    ZEB["street"],
]


def zeb_events() -> list[list[dict[str, Any]]]:
    """Batches as the SDKs send them: browsing on a laptop, sign-up with consent, orders, a
    phone that aliases and later identifies (a merge), a group call, and one malformed event
    that is dead-lettered with the person's ids in it."""
    consent = {
        "categoryPreferences": {"analytics": True, "marketing_email": True},
        "policyVersion": "2026-10",
    }
    return [
        [
            {"type": "page", "anonymousId": ZEB["laptop"], "name": "Home"},
            {
                "type": "identify",
                "anonymousId": ZEB["laptop"],
                "userId": ZEB["user"],
                "traits": {
                    "email": ZEB["email_sent"],
                    "first_name": "Zebulon",
                    "last_name": ZEB["surname"],
                    "address": {"street": ZEB["street"], "city": "Springfield"},
                    "plan": "pro",
                },
                "context": {"consent": consent, "ip": "198.51.100.77"},
            },
            {
                "type": "track",
                "userId": ZEB["user"],
                "event": "Order Completed",
                "properties": {"order_id": "zeb-ord-1", "revenue": 120, "ship_to": ZEB["street"]},
            },
        ],
        [
            {
                "type": "screen",
                "anonymousId": ZEB["phone_anon"],
                "name": "Catalog",
                "context": {"device": {"id": ZEB["device"]}},
            },
            {
                "type": "alias",
                "previousId": ZEB["phone_anon"],
                "userId": ZEB["user"],
            },
            {
                "type": "identify",
                "anonymousId": ZEB["phone_anon"],
                "traits": {"email": ZEB["email"], "phone": ZEB["phone_sent"]},
            },
            {"type": "group", "userId": ZEB["user"], "groupId": "acct-zeb-household"},
            {"type": "track", "userId": ZEB["user"], "event": "Bad", "timestamp": "not a time"},
            # a form posted with only a phone number, as typed: dead-lettered (no id at all)
            {"type": "identify", "traits": {"phone": ZEB["phone_sent"], "note": "call me"}},
        ],
    ]


OLGA = {"user": "u-olga-1", "anon": "anon-olga", "email": "olga@example.net"}


def olga_events() -> list[dict[str, Any]]:
    return [
        {
            "type": "identify",
            "userId": OLGA["user"],
            "anonymousId": OLGA["anon"],
            "traits": {"email": OLGA["email"], "plan": "pro", "last_name": "Petrova"},
            "context": {"consent": {"categoryPreferences": {"marketing_email": True}}},
        },
        {"type": "track", "userId": OLGA["user"], "event": "Order Completed"},
        {"type": "track", "userId": OLGA["user"], "event": "Bad", "timestamp": "nope"},
    ]


@pytest.fixture(autouse=True)
def eager_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks queued on commit run in this process (the broker is real, but no worker runs
    in these tests; tests/test_processing_worker.py covers a real worker)."""
    from cdp.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)


@pytest.fixture
def world(tenant_a: Tenant, tenant_b: Tenant, client: Client) -> dict[str, Any]:
    purposes_install_defaults(workspace=tenant_a.workspace)
    purposes_install_defaults(workspace=tenant_b.workspace)
    pro = segment_create(
        workspace=tenant_a.workspace,
        name="Pro buyers",
        rule={"all": [{"trait": "plan", "op": "eq", "value": "pro"}, {"event": "Order Completed"}]},
        publish=True,
    )
    segment_create(
        workspace=tenant_b.workspace,
        name="Pro",
        rule={"trait": "plan", "op": "eq", "value": "pro"},
        publish=True,
    )
    for batch in zeb_events():
        send(client, tenant_a, *batch)
        process()
    send(client, tenant_a, *olga_events())
    send(client, tenant_b, *olga_events())  # the same person in another workspace
    process()
    zeb = profile_of(tenant_a, "user_id", ZEB["user"])
    assert profile_of(tenant_a, "anonymous_id", ZEB["phone_anon"]).pk == zeb.pk  # merged
    return {"zeb": zeb, "segment": pro}


def api(tenant: Tenant, role: str = Role.PRIVACY_OFFICER) -> Client:
    return tenant.api(role)


def ask(tenant: Tenant, kind: str, identifier: str, **extra: Any) -> dict[str, Any]:
    answer = api(tenant).post(
        "/api/v1/privacy/requests/",
        {"type": kind, "identifier": identifier, **extra},
        content_type="application/json",
    )
    assert answer.status_code == 201, answer.content
    return answer.json()


def approve_and_run(
    tenant: Tenant, request_id: int, django_capture_on_commit_callbacks: Any
) -> dict[str, Any]:
    with django_capture_on_commit_callbacks(execute=True):
        answer = api(tenant, Role.ADMIN).post(f"/api/v1/privacy/requests/{request_id}/approve/")
    assert answer.status_code == 200, answer.content
    done = api(tenant).get(f"/api/v1/privacy/requests/{request_id}/").json()
    assert done["status"] == "completed", done
    return done


def text_columns() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type IN "
            "('text', 'character varying', 'character', 'json', 'jsonb', 'ARRAY') "
            "ORDER BY table_name, column_name"
        )
        return list(cursor.fetchall())


def residual_hits(values: list[str]) -> list[tuple[str, str, str]]:
    """Every text-like column of every table (found through information_schema, so tables
    added later are covered) searched for each value, case-insensitively."""
    hits = []
    with connection.cursor() as cursor:
        for table, column in text_columns():
            for value in values:
                cursor.execute(
                    f'SELECT count(*) FROM "{table}" WHERE "{column}"::text ILIKE %s',  # noqa: S608
                    [f"%{value}%"],
                )
                if cursor.fetchone()[0]:
                    hits.append((table, column, value))
    return hits


def table_counts() -> dict[str, int]:
    with connection.cursor() as cursor:
        # tables and partitioned tables; a partition's rows are counted in its parent's
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "AND relkind IN ('r', 'p') AND NOT relispartition"
        )
        tables = [t for (t,) in cursor.fetchall()]
        counts = {}
        for table in tables:
            cursor.execute(f'SELECT count(*) FROM "{table}"')  # noqa: S608
            counts[table] = cursor.fetchone()[0]
    return counts


def olga_checksums(tenant: Tenant) -> dict[str, str]:
    """md5 of every row that is Olga's, per table."""
    olga = profile_of(tenant, "user_id", OLGA["user"])
    ws = tenant.workspace.pk
    queries: dict[str, tuple[str, list[Any]]] = {
        "profile": ("SELECT t::text FROM profiles_profile t WHERE id = %s", [olga.pk]),
        "identities": ("SELECT t::text FROM profiles_identity t WHERE profile_id = %s", [olga.pk]),
        "events": (
            "SELECT t::text FROM profiles_event t WHERE workspace_id = %s AND user_id = %s",
            [ws, OLGA["user"]],
        ),
        "profile_events": (
            "SELECT t::text FROM profiles_profileevent t WHERE profile_id = %s",
            [olga.pk],
        ),
        "failed": (
            "SELECT t::text FROM profiles_failedevent t WHERE workspace_id = %s "
            "AND payload->>'userId' = %s",
            [ws, OLGA["user"]],
        ),
        "consent": ("SELECT t::text FROM consent_consentrecord t WHERE profile_id = %s", [olga.pk]),
        "memberships": (
            "SELECT t::text FROM segments_membership t WHERE profile_id = %s",
            [olga.pk],
        ),
    }
    out = {}
    with connection.cursor() as cursor:
        for name, (sql, params) in queries.items():
            cursor.execute(sql + " ORDER BY 1", params)
            rows = [r[0] for r in cursor.fetchall()]
            assert rows, name  # Olga has data in every one of them
            out[name] = hashlib.md5("\n".join(rows).encode()).hexdigest()  # noqa: S324
    return out


def test_export_holds_everything_about_the_subject(
    tenant_a: Tenant, world: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    made = ask(tenant_a, "export", f"email:{ZEB['email_sent']}")
    assert made["status"] == "pending_approval" and made["download"] is None
    assert made["identifier"] == f"email:{ZEB['email']}"  # normalised
    done = approve_and_run(tenant_a, made["id"], django_capture_on_commit_callbacks)
    assert done["download"] == f"/api/v1/privacy/requests/{made['id']}/download/"
    answer = api(tenant_a).get(done["download"])
    assert (
        answer["Content-Disposition"] == f'attachment; filename="privacy-export-{made["id"]}.json"'
    )
    bundle = json.loads(answer.content)

    ids = {(i["type"], i["value"]) for i in bundle["identifiers"]}
    assert {
        ("user_id", ZEB["user"]),
        ("anonymous_id", ZEB["laptop"]),
        ("anonymous_id", ZEB["phone_anon"]),
        ("email", ZEB["email"]),
        ("phone", ZEB["phone"]),
        ("device_id", ZEB["device"]),
    } <= ids
    stored = set(
        Event.objects.filter(workspace=tenant_a.workspace)
        .exclude(user_id=OLGA["user"])
        .values_list("message_id", flat=True)
    )
    assert {e["message_id"] for e in bundle["events"]} == stored  # every event of theirs
    assert len(bundle["events"]) == 7
    failed = sorted(
        f["payload"].get("event") or f["payload"]["type"] for f in bundle["failed_events"]
    )
    assert failed == ["Bad", "identify"]  # the phone-only one found by the phone as typed
    assert len(bundle["profiles"]) == 2  # the survivor and the one merged into it
    survivor = next(p for p in bundle["profiles"] if p["merged_into_id"] is None)
    assert survivor["traits"]["last_name"] == ZEB["surname"]
    assert survivor["event_count"] == 7 and "computed" in survivor  # the whole row
    assert {c["purpose"] for c in bundle["consent_decisions"]} == {"analytics", "marketing_email"}
    assert {c["purpose"] for c in bundle["consent_state"]} == {"analytics", "marketing_email"}
    assert [m["segment"] for m in bundle["segment_memberships"]] == ["Pro buyers"]
    assert [c["kind"] for c in bundle["segment_changes"]] == ["entered"]
    assert len(bundle["merges"]) == 1
    assert done["receipt"]["counts"]["events"] == 7
    assert OLGA["email"] not in answer.content.decode()


def test_delete_leaves_no_trace_and_the_subject_stays_out(
    tenant_a: Tenant,
    tenant_b: Tenant,
    world: dict[str, Any],
    client: Client,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # an export first: its bundle (full of the person's data) must go with the deletion
    exported = ask(tenant_a, "export", f"user_id:{ZEB['user']}")
    approve_and_run(tenant_a, exported["id"], django_capture_on_commit_callbacks)
    assert residual_hits([ZEB["email"]])  # the scan does find them before
    before_olga = olga_checksums(tenant_a)
    before_b = olga_checksums(tenant_b)
    before_counts = table_counts()

    zeb_messages = set(
        Event.objects.filter(workspace=tenant_a.workspace)
        .filter(Q(user_id=ZEB["user"]) | Q(anonymous_id__in=[ZEB["laptop"], ZEB["phone_anon"]]))
        .values_list("message_id", flat=True)
    )

    def linked_examples() -> set[str]:
        """Message ids the schema page links to as a type's newest example."""
        return {
            example["message_id"]
            for row in ObservedProperty.objects.filter(workspace=tenant_a.workspace)
            for example in row.type_examples.values()
        }

    assert linked_examples() & zeb_messages  # the schema links to some of them before
    made = ask(tenant_a, "delete", f"phone:{ZEB['phone_sent']}")
    done = approve_and_run(tenant_a, made["id"], django_capture_on_commit_callbacks)

    assert residual_hits(ZEB_TRACES) == []
    assert not linked_examples() & zeb_messages
    counts = done["receipt"]["counts"]
    assert counts["events"] == 7 and counts["failed_events"] == 2 and counts["profiles"] == 2
    assert counts["identities"] == 6 and counts["merges"] == 1
    assert counts["consent_decisions"] == 2 and counts["segment_memberships"] == 1
    assert counts["earlier_exports"] == 1
    assert not PrivacyExport.objects.filter(request_id=exported["id"]).exists()
    # the receipt keeps salted hashes only; both requests forgot the identifier in clear
    receipt = done["receipt"]
    assert len(receipt["identifiers"]) == 6 and receipt["suppressed_identifiers"] == 6
    salted = hashlib.sha256(f"{receipt['salt']}\x1femail\x1f{ZEB['email']}".encode()).hexdigest()
    assert {"type": "email", "sha256": salted} in receipt["identifiers"]
    assert done["identifier"] is None
    assert (
        api(tenant_a).get(f"/api/v1/privacy/requests/{exported['id']}/").json()["identifier"]
        is None
    )

    # nobody else's data changed: Olga here and in workspace B, row for row
    assert olga_checksums(tenant_a) == before_olga
    assert olga_checksums(tenant_b) == before_b
    after_counts = table_counts()
    receipt_tables = {
        "events": "profiles_event",
        "profile_events": "profiles_profileevent",
        "failed_events": "profiles_failedevent",
        "consent_decisions": "consent_consentrecord",
        "consent_state": "consent_consentstate",
        "segment_memberships": "segments_membership",
        "segment_changes": "segments_membershipchange",
        "segment_expiries": "segments_expiry",
        "identity_conflicts": "profiles_identityconflict",
        "split_blocks": "profiles_splitblock",
        "merges": "profiles_profilemerge",
        "identity_links": "profiles_identitylink",
        "identities": "profiles_identity",
        "profiles": "profiles_profile",
        "earlier_exports": "consent_privacyexport",
        "pending_events": "profiles_pendingevent",
        "decision_records": "activation_decisionrecord",
    }
    for name, table in receipt_tables.items():
        assert before_counts[table] - after_counts[table] == counts[name], table
    grew = {"consent_suppressedidentifier": 6, "consent_privacyrequest": 1}
    for table, before in before_counts.items():
        if table in receipt_tables.values() or table == "cdp_auditlog":
            continue
        assert after_counts[table] == before + grew.get(table, 0), table

    # the person's SDKs keep sending: answered 200, nothing stored, counted as suppressed
    stored = Event.objects.count()
    for batch in zeb_events():
        answer = post_collector(client, "/v1/batch", {"batch": batch}, write_key=tenant_a.write_key)
        assert answer.status_code == 200
    queue.drain(batch_size=500)
    assert Event.objects.count() == stored
    assert residual_hits([ZEB["user"], ZEB["email"], ZEB["laptop"]]) == []
    dropped = SuppressionDropCount.objects.filter(workspace=tenant_a.workspace)
    assert sum(d.dropped for d in dropped) == 9  # every event of both batches, bad ones too
    # and Olga is still a member of the segment
    assert world["segment"].pk in [
        s["id"]
        for s in api(tenant_a, Role.ANALYST)
        .get(f"/api/v1/profiles/{profile_of(tenant_a, 'user_id', OLGA['user']).pk}/")
        .json()["segments"]
    ]


def test_suppress_then_unsuppress(
    tenant_a: Tenant, world: dict[str, Any], client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    made = ask(tenant_a, "suppress", f"user_id:{ZEB['user']}")
    done = approve_and_run(tenant_a, made["id"], django_capture_on_commit_callbacks)
    assert done["receipt"]["suppressed_identifiers"] == 6
    assert done["identifier"] is None  # suppression keeps hashes only
    stored = Event.objects.count()
    answer = post_collector(
        client,
        "/v1/track",
        {"anonymousId": ZEB["laptop"], "event": "Back again"},
        write_key=tenant_a.write_key,
    )
    assert answer.status_code == 200 and Event.objects.count() == stored
    # the data is kept (suppression is not deletion)
    assert profile_of(tenant_a, "user_id", ZEB["user"]).traits["last_name"] == ZEB["surname"]

    undo = ask(tenant_a, "unsuppress", f"email:{ZEB['email']}")
    undone = approve_and_run(tenant_a, undo["id"], django_capture_on_commit_callbacks)
    assert undone["receipt"]["unsuppressed_identifiers"] == 6
    assert not SuppressedIdentifier.objects.filter(workspace=tenant_a.workspace).exists()
    post_collector(
        client,
        "/v1/track",
        {"anonymousId": ZEB["laptop"], "event": "Back again"},
        write_key=tenant_a.write_key,
    )
    assert Event.objects.count() == stored + 1


def test_delete_without_suppression_and_unknown_subject(
    tenant_a: Tenant, world: dict[str, Any], client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    made = ask(tenant_a, "delete", f"user_id:{ZEB['user']}", suppress=False)
    done = approve_and_run(tenant_a, made["id"], django_capture_on_commit_callbacks)
    assert done["receipt"]["suppressed_identifiers"] == 0
    assert not SuppressedIdentifier.objects.filter(workspace=tenant_a.workspace).exists()
    send(client, tenant_a, {"type": "track", "userId": ZEB["user"], "event": "Came back"})
    assert Event.objects.filter(user_id=ZEB["user"]).count() == 1

    nobody = ask(tenant_a, "delete", "email:never-seen@example.com")
    gone = approve_and_run(tenant_a, nobody["id"], django_capture_on_commit_callbacks)
    assert gone["receipt"]["counts"]["profiles"] == 0
    assert gone["receipt"]["suppressed_identifiers"] == 1  # kept out from now on


def test_requests_lifecycle_errors_and_audit(
    tenant_a: Tenant, world: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    for body, code in [
        ({"type": "erase", "identifier": "email:a@b.co"}, "invalid"),
        ({"type": "delete", "identifier": "a@b.co"}, "bad_identifier"),
        ({"type": "delete", "identifier": "email:not-an-email"}, "bad_identifier"),
        ({"type": "delete"}, "invalid"),
    ]:
        answer = api(tenant_a).post(
            "/api/v1/privacy/requests/", body, content_type="application/json"
        )
        assert answer.status_code == 400, body
        assert answer.json()["error"]["code"] in (code, "validation_failed"), answer.json()
    assert not PrivacyRequest.objects.exists()

    made = ask(tenant_a, "export", f"user_id:{ZEB['user']}", note="ticket #4411")
    assert made["due_at"] > made["created_at"] and made["overdue"] is False
    assert made["requested_by"] == "privacy_officer@alpha"
    done = approve_and_run(tenant_a, made["id"], django_capture_on_commit_callbacks)
    assert done["approved_by"] == "admin@alpha"
    again = api(tenant_a).post(f"/api/v1/privacy/requests/{made['id']}/approve/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_pending"
    # a duplicate task does nothing
    assert privacy.privacy_request_execute(request_id=made["id"]) is None
    trail = [
        a["action"]
        for a in api(tenant_a).get(f"/api/v1/privacy/requests/{made['id']}/").json()["audit"]
    ]
    assert trail == ["privacy.request", "privacy.approve", "privacy.complete"]
    api(tenant_a).get(done["download"])
    trail = api(tenant_a).get(f"/api/v1/privacy/requests/{made['id']}/").json()["audit"]
    assert trail[-1]["action"] == "privacy.export" and trail[-1]["actor"] == "privacy_officer@alpha"
    listed = api(tenant_a).get("/api/v1/privacy/requests/?status=completed").json()
    assert [r["id"] for r in listed["results"]] == [made["id"]]


def test_only_privacy_managers_and_only_their_workspace(
    tenant_a: Tenant, tenant_b: Tenant, world: dict[str, Any]
) -> None:
    made = ask(tenant_a, "export", f"user_id:{ZEB['user']}")
    url = f"/api/v1/privacy/requests/{made['id']}/"
    for role in (Role.MARKETER, Role.ANALYST):
        client = tenant_a.api(role)
        assert client.get("/api/v1/privacy/requests/").status_code == 403
        assert client.get(url).status_code == 403
        assert client.post(url + "approve/").status_code == 403
        created = client.post(
            "/api/v1/privacy/requests/",
            {"type": "delete", "identifier": f"user_id:{OLGA['user']}"},
            content_type="application/json",
        )
        assert created.status_code == 403
    other = tenant_b.api(Role.OWNER)
    assert other.get(url).status_code == 404
    assert other.post(url + "approve/").status_code == 404
    assert other.get("/api/v1/privacy/requests/").json()["count"] == 0
    assert PrivacyRequest.objects.count() == 1


def test_destinations_are_asked_and_recorded(
    tenant_a: Tenant, world: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    asked: list[tuple[int, str]] = []

    def good(request: PrivacyRequest) -> dict[str, Any]:
        asked.append((request.pk, request.type))
        return {"ticket": "erase-1"}

    def bad(request: PrivacyRequest) -> None:
        raise ConnectionError("crm unreachable")

    privacy.register_propagator("crm", bad)
    privacy.register_propagator("email-tool", good)
    try:
        made = ask(tenant_a, "delete", f"user_id:{ZEB['user']}")
        done = approve_and_run(tenant_a, made["id"], django_capture_on_commit_callbacks)
    finally:
        privacy.unregister_propagator("crm")
        privacy.unregister_propagator("email-tool")
    assert asked == [(made["id"], "delete")]
    rows = {p["destination"]: p for p in done["propagations"]}
    assert rows["email-tool"]["status"] == "sent" and rows["email-tool"]["detail"] == {
        "ticket": "erase-1"
    }
    assert rows["crm"]["status"] == "failed" and "crm unreachable" in rows["crm"]["error"]


def test_export_bundles_expire(
    tenant_a: Tenant, world: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    from consent import tasks

    made = ask(tenant_a, "export", f"user_id:{ZEB['user']}")
    done = approve_and_run(tenant_a, made["id"], django_capture_on_commit_callbacks)
    assert api(tenant_a).get(done["download"]).status_code == 200
    with time_machine.travel(timezone.now() + timedelta(days=29), tick=False):
        tasks.retention_enforce_all.apply().get()
    assert PrivacyExport.objects.filter(request_id=made["id"]).exists()  # not yet
    with time_machine.travel(timezone.now() + timedelta(days=31), tick=False):
        tasks.retention_enforce_all.apply().get()
    assert not PrivacyExport.objects.filter(request_id=made["id"]).exists()
    after = api(tenant_a).get(f"/api/v1/privacy/requests/{made['id']}/").json()
    assert after["download"] is None and after["receipt"]["expired_at"]
    assert after["receipt"]["counts"] == done["receipt"]["counts"]  # the receipt stays
    gone = api(tenant_a).get(done["download"])
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "export_expired"
    assert [a["action"] for a in after["audit"]][-1] == "privacy.export_expired"


def test_events_queued_before_the_deletion_are_dropped_by_the_pipeline(
    tenant_a: Tenant, world: dict[str, Any], client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    # accepted before the deletion, not processed yet: a new device, known only by the email
    queued = {
        "type": "identify",
        "anonymousId": "anon-zeb-tablet-new",
        "traits": {"email": ZEB["email"], "last_name": ZEB["surname"]},
    }
    from cdp.celery import app

    # no worker runs yet: the collector's kick waits on the broker (eager, it would process the
    # event at once whenever the last kick is older than CDP_KICK_INTERVAL_MS)
    app.conf.task_always_eager = False
    try:
        answer = post_collector(
            client, "/v1/batch", {"batch": [queued]}, write_key=tenant_a.write_key
        )
    finally:
        app.conf.task_always_eager = True
    assert answer.status_code == 200
    assert queue.pending_count(tenant_a.workspace.pk) == 1
    made = ask(tenant_a, "delete", f"email:{ZEB['email']}")
    approve_and_run(tenant_a, made["id"], django_capture_on_commit_callbacks)
    process()  # the worker gets to it only now
    assert residual_hits([ZEB["email"], ZEB["surname"], "anon-zeb-tablet-new"]) == []
    assert not profile_of_or_none(tenant_a, "anonymous_id", "anon-zeb-tablet-new")
    dropped = SuppressionDropCount.objects.filter(workspace=tenant_a.workspace)
    assert sum(d.dropped for d in dropped) == 1
    # Olga's next event is processed as usual
    send(client, tenant_a, {"type": "track", "userId": OLGA["user"], "event": "Back"})
    assert Event.objects.filter(user_id=OLGA["user"], event="Back").count() == 1


def profile_of_or_none(tenant: Tenant, kind: str, value: str) -> Any:
    from profiles.models import Identity

    found = Identity.objects.filter(workspace=tenant.workspace, type=kind, value=value).first()
    return found.profile if found else None


def test_two_person_approval(
    tenant_a: Tenant, tenant_b: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    settings_url = "/api/v1/privacy/settings/"
    assert api(tenant_a).get(settings_url).json()["two_person_approval"] is False
    # by default the requester may approve their own request (teams of one)
    own = ask(tenant_a, "suppress", "email:solo@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        answer = api(tenant_a).post(f"/api/v1/privacy/requests/{own['id']}/approve/")
    assert answer.status_code == 200 and answer.json()["approved_by"] == "privacy_officer@alpha"

    for role in (Role.MARKETER, Role.ANALYST):
        refused = tenant_a.api(role).patch(
            settings_url, {"two_person_approval": True}, content_type="application/json"
        )
        assert refused.status_code == 403
    for body, field in [
        ({"two_person_approval": "yes"}, "two_person_approval"),
        ({"two_person_approval": None}, "two_person_approval"),
        ({"four_eyes": True}, "four_eyes"),
    ]:
        bad = api(tenant_a).patch(settings_url, body, content_type="application/json")
        assert bad.status_code == 400 and list(bad.json()["error"]["detail"]["fields"]) == [field]
    on = api(tenant_a).patch(
        settings_url, {"two_person_approval": True}, content_type="application/json"
    )
    assert on.status_code == 200 and on.json()["two_person_approval"] is True
    # another workspace keeps its own rule
    assert tenant_b.api(Role.OWNER).get(settings_url).json()["two_person_approval"] is False

    made = ask(tenant_a, "suppress", "email:pair@example.com")
    url = f"/api/v1/privacy/requests/{made['id']}/approve/"
    refused = api(tenant_a).post(url)
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "second_approver_required"
    assert f"request #{made['id']} was recorded by you" in error["message"]
    request = PrivacyRequest.objects.get(pk=made["id"])
    assert request.status == "pending_approval" and request.approved_by is None
    assert (
        not SuppressedIdentifier.objects.filter(workspace=tenant_a.workspace)
        .exclude(digest=PrivacyRequest.objects.get(pk=own["id"]).identifier_digest)
        .exists()
    )
    # code paths without a named person cannot approve under the rule either
    with pytest.raises(Forbidden, match="named privacy manager"):
        privacy.privacy_request_approve(request=request)
    with django_capture_on_commit_callbacks(execute=True):
        answer = api(tenant_a, Role.ADMIN).post(url)
    assert answer.status_code == 200, answer.content
    done = api(tenant_a).get(f"/api/v1/privacy/requests/{made['id']}/").json()
    assert done["status"] == "completed"
    assert (done["requested_by"], done["approved_by"]) == ("privacy_officer@alpha", "admin@alpha")
    changed = AuditLog.objects.filter(workspace=tenant_a.workspace, action="privacy.settings")
    assert [a.detail["two_person_approval"] for a in changed] == [{"before": False, "after": True}]


def test_deadline_extension(
    tenant_a: Tenant, tenant_b: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    made = ask(tenant_a, "suppress", "email:slow@example.com")
    url = f"/api/v1/privacy/requests/{made['id']}/extend/"
    assert made["extended_at"] is None and made["extension_reason"] == ""
    for body, field in [
        ({"days": 61, "reason": "x"}, "days"),
        ({"days": 0, "reason": "x"}, "days"),
        ({"days": "30", "reason": "x"}, "days"),
        ({"days": 30, "reason": "   "}, "reason"),
    ]:
        bad = api(tenant_a).post(url, body, content_type="application/json")
        assert bad.status_code == 400, body
        assert list(bad.json()["error"]["detail"]["fields"]) == [field], bad.json()
    for role in (Role.MARKETER, Role.ANALYST):
        denied = tenant_a.api(role).post(
            url, {"days": 30, "reason": "x"}, content_type="application/json"
        )
        assert denied.status_code == 403
    other = tenant_b.api(Role.OWNER).post(
        url, {"days": 30, "reason": "x"}, content_type="application/json"
    )
    assert other.status_code == 404

    done = api(tenant_a).post(
        url, {"days": 60, "reason": "three systems to search"}, content_type="application/json"
    )
    assert done.status_code == 200, done.content
    body = done.json()
    assert body["extension_reason"] == "three systems to search" and body["extended_at"]
    request = PrivacyRequest.objects.get(pk=made["id"])
    assert (request.due_at - request.created_at).days == 90
    again = api(tenant_a).post(url, {"days": 10, "reason": "more"}, content_type="application/json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_extended"
    trail = api(tenant_a).get(f"/api/v1/privacy/requests/{made['id']}/").json()["audit"]
    assert [a["action"] for a in trail] == ["privacy.request", "privacy.extend"]
    assert trail[-1]["detail"]["days"] == 60

    finished = ask(tenant_a, "suppress", "email:quick@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        api(tenant_a, Role.ADMIN).post(f"/api/v1/privacy/requests/{finished['id']}/approve/")
    closed = api(tenant_a).post(
        f"/api/v1/privacy/requests/{finished['id']}/extend/",
        {"days": 30, "reason": "late"},
        content_type="application/json",
    )
    assert closed.status_code == 409 and closed.json()["error"]["code"] == "not_open"


def test_requests_by_deadline(tenant_a: Tenant) -> None:
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    made = {
        name: ask(tenant_a, "suppress", f"email:{name}@example.com")["id"]
        for name in ("late", "later", "soon", "calm")
    }
    due = {"late": -2, "later": -9, "soon": 3, "calm": 20}
    for name, days in due.items():
        PrivacyRequest.objects.filter(pk=made[name]).update(due_at=now + timedelta(days=days))
    PrivacyRequest.objects.filter(pk=made["later"]).update(status="completed")  # done, late

    def ids(query: str) -> list[int]:
        answer = api(tenant_a).get("/api/v1/privacy/requests/" + query)
        assert answer.status_code == 200, answer.content
        return [r["id"] for r in answer.json()["results"]]

    assert ids("?due=overdue") == [made["late"]]
    assert ids("?due=soon") == [made["soon"]]
    bad = api(tenant_a).get("/api/v1/privacy/requests/?due=tomorrow")
    assert bad.status_code == 400 and list(bad.json()["error"]["detail"]["fields"]) == ["due"]


def test_import_a_suppression_list(tenant_a: Tenant, tenant_b: Tenant, client: Client) -> None:
    url = "/api/v1/privacy/suppression/"
    lines = [
        "# unsubscribes exported from the old tool",
        "email:Ann@Example.com",
        "bob@example.com",  # a bare email
        "",
        "phone:+44 20 7946 0000",
        "user_id:u-777",
        "ann@example.com",  # the same as the first, normalised
    ]
    made = api(tenant_a).post(url, {"identifiers": lines}, content_type="application/json")
    assert made.status_code == 201, made.content
    assert made.json() == {"added": 4, "already": 1}
    assert api(tenant_a).get(url).json() == {"suppressed": 4}
    again = api(tenant_a).post(
        url,
        {"identifiers": ["bob@example.com", "email:cy@example.com"]},
        content_type="application/json",
    )
    assert again.json() == {"added": 1, "already": 1}
    assert tenant_b.api(Role.OWNER).get(url).json() == {"suppressed": 0}

    # all or nothing: every bad line named by its number
    bad = api(tenant_a).post(
        url,
        {"identifiers": ["email:dee@example.com", "email:not-an-email", "nocolon", 7]},
        content_type="application/json",
    )
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["code"] == "validation_failed" and error["message"].startswith("line 2:")
    assert "(and 2 more); nothing was imported" in error["message"]
    # every bad line is a path into the list: identifiers[i] is line i + 1
    assert list(error["detail"]["fields"]) == ["identifiers[1]", "identifiers[2]", "identifiers[3]"]
    too_many = api(tenant_a).post(
        url, {"identifiers": ["a@b.co"] * 10_001}, content_type="application/json"
    )
    assert too_many.status_code == 400 and "at most 10,000" in too_many.json()["error"]["message"]
    assert api(tenant_a).get(url).json() == {"suppressed": 5}
    for role in (Role.MARKETER, Role.ANALYST):
        denied = tenant_a.api(role).post(
            url, {"identifiers": ["x@y.co"]}, content_type="application/json"
        )
        assert denied.status_code == 403

    # the collector drops the imported people at the door, counted
    answer = post_collector(
        client,
        "/v1/batch",
        {
            "batch": [
                {"type": "track", "userId": "u-777", "event": "Opened"},
                {"type": "identify", "userId": "u-new", "traits": {"email": "BOB@example.com"}},
                {"type": "track", "userId": "u-fine", "event": "Opened"},
            ]
        },
        write_key=tenant_a.write_key,
    )
    assert answer.status_code == 200
    assert list(
        Event.objects.filter(workspace=tenant_a.workspace).values_list("user_id", flat=True)
    ) == ["u-fine"]
    assert (
        sum(d.dropped for d in SuppressionDropCount.objects.filter(workspace=tenant_a.workspace))
        == 2
    )
    # the audit log keeps counts, never the identifiers
    logged = AuditLog.objects.filter(action="privacy.suppression_import")
    assert [a.detail for a in logged] == [{"added": 4, "already": 1}, {"added": 1, "already": 1}]


def test_one_person_cannot_lift_the_rules_that_bind_them(tenant_a: Tenant) -> None:
    officer = tenant_a.api(Role.PRIVACY_OFFICER)
    owner = tenant_a.api(Role.OWNER)
    settings_url = "/api/v1/privacy/settings/"
    on = officer.patch(settings_url, {"two_person_approval": True}, content_type="application/json")
    assert on.status_code == 200
    # the officer bound by the rule cannot switch it off to approve their own request
    off = officer.patch(
        settings_url, {"two_person_approval": False}, content_type="application/json"
    )
    assert off.status_code == 403 and off.json()["error"]["code"] == "owner_required"
    assert officer.get(settings_url).json()["two_person_approval"] is True
    assert (
        owner.patch(
            settings_url, {"two_person_approval": False}, content_type="application/json"
        ).status_code
        == 200
    )
    # shortening retention deletes in bulk: owners only; lengthening it is anyone's
    retention_url = "/api/v1/privacy/retention/"
    body = {"event_days": 30, "failed_event_days": 7}
    cut = officer.patch(retention_url, body, content_type="application/json")
    assert cut.status_code == 403 and cut.json()["error"]["code"] == "owner_required"
    by_owner = owner.patch(retention_url, body, content_type="application/json")
    assert by_owner.status_code == 200 and by_owner.json()["pending"]["event_days"] == 30
    longer = {"event_days": 400, "failed_event_days": 30}
    assert officer.patch(retention_url, longer, content_type="application/json").status_code == 200
    forever = {"event_days": None, "failed_event_days": None}
    assert officer.patch(retention_url, forever, content_type="application/json").status_code == 200
    again = officer.patch(retention_url, body, content_type="application/json")
    assert again.status_code == 403
