"""Activation across the apps: consent withdrawn for a destination's purpose, identity
merges of synced people, and privacy deletions propagated to every destination."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.test import Client

from activation.models import Delivery, SyncMember
from activation.services import deliveries_retry
from activation.tests.helpers import drain, pro_segment, run, sync_of, webhook
from activation.tests.receiver import receiver
from cdp.models import Role
from consent.services import purposes_install_defaults
from tests.fixtures import Tenant, send_events
from tests.test_privacy_requests import residual_hits


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def identify(user: str, email: str, **consent: bool) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "identify",
        "userId": user,
        "traits": {"email": email, "plan": "pro"},
    }
    if consent:
        event["context"] = {"consent": {"categoryPreferences": consent}}
    return event


def test_consent_withdrawn_removes_and_nothing_is_added_after(tenant_a: Tenant) -> None:
    purposes_install_defaults(workspace=tenant_a.workspace)
    send_events(
        Client(),
        tenant_a,
        identify("ann", "ann@example.com", marketing_email=True),
        identify("bob", "bob@example.com", marketing_email=True),
        identify("cyd", "cyd@example.com"),  # never said yes: opt-in purpose, not sent
    )
    segment = pro_segment(tenant_a)
    with receiver() as hook:
        destination = webhook(tenant_a, hook.url, purpose="marketing_email")
        sync = sync_of(tenant_a, segment, destination)
        first = run(sync)
        assert first is not None and (first.added, first.skipped_consent) == (2, 1)
        drain(destination)
        assert len(hook.accepted_items()) == 2
        # Bob withdraws; an upsert queued for him just before is cancelled at send time
        send_events(
            Client(),
            tenant_a,
            {
                "type": "track",
                "userId": "bob",
                "event": "Unsubscribed",
                "context": {"consent": {"categoryPreferences": {"marketing_email": False}}},
            },
        )
        removal = run(sync)
        assert removal is not None and removal.removed == 1
        drain(destination)
        last = hook.accepted_items()[-1]
        assert last["type"] == "audience.remove"
        assert last["data"]["removed"]["email"] == ["bob@example.com"]
        # Bob changes traits: still a member of the segment, but nothing goes out for him
        send_events(
            Client(),
            tenant_a,
            {"type": "identify", "userId": "bob", "traits": {"first_name": "Robert"}},
        )
        again = run(sync)
        assert again is None or (again.added, again.updated) == (0, 0)
        drain(destination)
        assert len(hook.accepted_items()) == 3


def test_a_queued_add_is_not_sent_after_a_withdrawal(tenant_a: Tenant) -> None:
    purposes_install_defaults(workspace=tenant_a.workspace)
    send_events(Client(), tenant_a, identify("dan", "dan@example.com", marketing_email=True))
    segment = pro_segment(tenant_a)
    with receiver() as hook:
        destination = webhook(tenant_a, hook.url, purpose="marketing_email")
        sync = sync_of(tenant_a, segment, destination)
        run(sync)  # an add is queued, not sent yet
        send_events(
            Client(),
            tenant_a,
            {
                "type": "track",
                "userId": "dan",
                "event": "Unsubscribed",
                "context": {"consent": {"categoryPreferences": {"marketing_email": False}}},
            },
        )
        drain(destination)
        assert hook.accepted_items() == []
        # the initial sync's batch: its one member left it as a cancelled delivery of its own
        row = Delivery.objects.get(destination=destination, kind="upsert")
        assert (row.status, row.reason) == ("cancelled", "consent")
        batch = Delivery.objects.get(destination=destination, kind="bulk")
        assert (batch.status, batch.reason) == ("cancelled", "split")


def test_merge_of_two_synced_profiles_sends_only_new_digests(tenant_a: Tenant) -> None:
    purposes_install_defaults(workspace=tenant_a.workspace)
    send_events(
        Client(),
        tenant_a,
        {
            "type": "identify",
            "anonymousId": "anon-1",
            "traits": {"email": " John.Doe@Gmail.com ", "plan": "pro"},
        },
        {
            "type": "identify",
            "userId": "john",
            "traits": {"email": "john@work.example", "plan": "pro"},
        },
    )
    segment = pro_segment(tenant_a)
    with receiver() as hook:
        destination = webhook(tenant_a, hook.url)
        sync = sync_of(
            tenant_a,
            segment,
            destination,
            mapping={
                "identifiers": [
                    {"type": "email", "hash": "sha256"},
                    {"type": "phone", "hash": "sha256"},
                ]
            },
        )
        run(sync)
        drain(destination)
        sent = {d for i in hook.accepted_items() for d in i["data"]["added"]["email_sha256"]}
        assert sent == {sha("john.doe@gmail.com"), sha("john@work.example")}
        # the anonymous visitor logs in as john and gives a phone number: one person now
        send_events(
            Client(),
            tenant_a,
            {
                "type": "identify",
                "userId": "john",
                "anonymousId": "anon-1",
                "traits": {"phone": "+49 151 12345678"},
            },
        )
        assert SyncMember.objects.filter(sync=sync).count() == 1  # the loser's moved over
        delta = run(sync)
        assert delta is not None and (delta.added, delta.updated, delta.removed) == (0, 1, 0)
        drain(destination)
        last = hook.accepted_items()[-1]["data"]
        assert last["added"] == {"phone_sha256": [sha("+4915112345678")]}
        assert last["removed"] == {}
        assert sorted(last["identifiers"]["email_sha256"]) == sorted(sent)
        assert run(sync) is None


@pytest.fixture
def eager_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    from cdp.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)


def test_deletion_reaches_every_destination_and_nothing_resends(
    tenant_a: Tenant, eager_tasks: None, django_capture_on_commit_callbacks: Any
) -> None:
    purposes_install_defaults(workspace=tenant_a.workspace)
    send_events(
        Client(),
        tenant_a,
        identify("zeb", "zeb.secret@example.com"),
        identify("amy", "amy@example.com"),
    )
    segment = pro_segment(tenant_a)
    with receiver() as one, receiver() as two, receiver() as unused:
        d1 = webhook(tenant_a, one.url, name="one")
        d2 = webhook(tenant_a, two.url, name="two")
        webhook(tenant_a, unused.url, name="never-synced")
        s1 = sync_of(tenant_a, segment, d1, mapping={"identifiers": [{"type": "email"}]})
        s2 = sync_of(tenant_a, segment, d2, mapping={"identifiers": [{"type": "user_id"}]})
        for s, d in ((s1, d1), (s2, d2)):
            run(s)
            drain(d)
        two.then(400)  # the second destination refuses the deletion notice
        api = tenant_a.api(Role.PRIVACY_OFFICER)
        made = api.post(
            "/api/v1/privacy/requests/",
            {"type": "delete", "identifier": "email:zeb.secret@example.com"},
            content_type="application/json",
        ).json()
        with django_capture_on_commit_callbacks(execute=True):
            answer = tenant_a.api(Role.ADMIN).post(
                f"/api/v1/privacy/requests/{made['id']}/approve/"
            )
        assert answer.status_code == 200, answer.content
        drain(d1)
        drain(d2)
        done = api.get(f"/api/v1/privacy/requests/{made['id']}/").json()
        assert done["status"] == "completed"
        rows = {p["destination"].split(" (#")[0]: p for p in done["propagations"]}
        assert set(rows) == {"one", "two"}  # not the destination that never held them
        assert rows["one"]["status"] == "sent"
        assert rows["two"]["status"] == "failed"
        notice = one.accepted_items()[-1]
        assert notice["type"] == "privacy.deletion"
        assert notice["data"]["identifiers"] == {"email_sha256": [sha("zeb.secret@example.com")]}
        assert residual_hits(["zeb.secret@example.com", "zeb.secret"]) == []
        # replays and resyncs never send the deleted person again
        deliveries_retry(workspace=tenant_a.workspace)
        for s, d in ((s1, d1), (s2, d2)):
            resync = run(s, "full")
            assert resync is not None and resync.added == 0
            drain(d)
        sent_after = [i for i in one.accepted_items() if i["type"] != "privacy.deletion"]
        assert all("zeb" not in str(i) for i in sent_after[2:])
