"""Bulk deliveries: an initial or full run sends its audience as batches of members per
outbox row; whatever concerns one member (consent, a rejection, a dead letter, a later
delivery, a deletion) is handled per member as if each had a row of its own."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.test import Client

from activation import selectors
from activation.delivery.bulk import item_key
from activation.models import Delivery, DeliveryAttempt, SyncMember
from activation.services import deliveries_retry
from activation.tests.connector_helpers import delete_person
from activation.tests.helpers import (
    deliveries,
    delivery_keys,
    drain,
    people,
    pro_segment,
    run,
    sync_of,
    webhook,
)
from activation.tests.receiver import receiver
from consent.services import purposes_install_defaults
from profiles.models import Profile
from tests.fixtures import Tenant, send_events

pytestmark = pytest.mark.django_db


def profile_of(tenant: Tenant, user_id: str) -> int:
    return int(
        Profile.objects.get(
            workspace=tenant.workspace, identities__type="user_id", identities__value=user_id
        ).pk
    )


def test_an_initial_sync_goes_out_as_batches_each_member_under_its_own_key(
    tenant_a: Tenant,
) -> None:
    people(tenant_a, 25)
    segment = pro_segment(tenant_a)
    with receiver() as hook:
        destination = webhook(tenant_a, hook.url, batch_size=10)
        sync = sync_of(tenant_a, segment, destination)
        first = run(sync)
        assert first is not None and first.added == 25
        rows = list(Delivery.objects.filter(destination=destination).order_by("id"))
        assert [(r.kind, len(r.profile_ids or [])) for r in rows] == [("bulk", 10)] * 2 + [
            ("bulk", 5)
        ]
        assert all(r.profile_id is None for r in rows)
        assert [i["profile_id"] for i in rows[0].payload["items"]] == rows[0].profile_ids
        # the queue counts members, not rows
        health = selectors.destination_health(destination=destination)
        assert health["pending"] == 25
        drain(destination)
        items = hook.accepted_items()
        assert len(hook.requests) == 3 and len(items) == 25
        assert sorted(i["id"] for i in items) == sorted(delivery_keys(destination=destination))
        assert {i["type"] for i in items} == {"audience.upsert"}
        # each item is what a member's own delivery would carry
        one = items[0]["data"]
        assert set(one) >= {"sync", "audience", "op", "identifiers", "added", "removed", "fields"}
        assert "profile_id" not in one and "items" not in one
        assert SyncMember.objects.filter(sync=sync, acked_at__isnull=False).count() == 25
        assert sum(a.items for a in DeliveryAttempt.objects.filter(destination=destination)) == 25
        health = selectors.destination_health(destination=destination)
        assert sum(m["delivered"] for m in health["per_minute"]) == 25 and health["pending"] == 0
        # the destination holds everyone: a full resync finds nothing to send
        again = run(sync, "full")
        assert again is not None and (again.added, again.updated, again.removed) == (0, 0, 0)
        assert deliveries(destination=destination) == 25


def test_a_retried_batch_resends_the_same_keys(tenant_a: Tenant) -> None:
    people(tenant_a, 4)
    segment = pro_segment(tenant_a)
    with receiver() as hook:
        hook.then(503, times=2)
        destination = webhook(tenant_a, hook.url, circuit_threshold=100)
        run(sync_of(tenant_a, segment, destination))
        drain(destination)
        assert [r.status for r in hook.requests] == [503, 503, 200]
        sent = [[i["id"] for i in r.json["items"]] for r in hook.requests]
        assert sent[0] == sent[1] == sent[2] and len(sent[0]) == 4
        assert deliveries(destination=destination, status="delivered") == 4


def test_a_member_with_something_on_its_way_gets_a_row_of_its_own(tenant_a: Tenant) -> None:
    people(tenant_a, 3)
    segment = pro_segment(tenant_a)
    with receiver() as hook:
        destination = webhook(tenant_a, hook.url)
        sync = sync_of(tenant_a, segment, destination)
        run(sync)
        drain(destination)
        busy, lost = profile_of(tenant_a, "user-0"), profile_of(tenant_a, "user-1")
        # the destination lost one member; another has an event still on its way
        SyncMember.objects.filter(sync=sync, profile_id=lost).update(acked_identifiers=[])
        SyncMember.objects.filter(sync=sync, profile_id=busy).update(sent_identifiers=[])
        Delivery.objects.create(
            workspace_id=tenant_a.workspace.pk,
            destination=destination,
            kind="event",
            profile_id=busy,
            payload={"type": "track", "event": "Waiting"},
        )
        resync = run(sync, "full")
        assert resync is not None and resync.added == 2  # neither is held by the destination
        own = Delivery.objects.get(destination=destination, kind="upsert")
        assert own.profile_id == busy  # after the event, in order
        batch = Delivery.objects.filter(destination=destination, kind="bulk").order_by("-id")[0]
        assert batch.profile_ids == [lost]
        drain(destination)
        got = [i["data"].get("event") or i["id"] for i in hook.accepted_items()]
        assert got.index("Waiting") < got.index(str(own.key))


def test_consent_refused_members_leave_the_batch_cancelled(tenant_a: Tenant) -> None:
    purposes_install_defaults(workspace=tenant_a.workspace)
    send_events(
        Client(),
        tenant_a,
        *[
            {
                "type": "identify",
                "userId": f"u{n}",
                "traits": {"email": f"u{n}@example.com", "plan": "pro"},
                "context": {"consent": {"categoryPreferences": {"marketing_email": True}}},
            }
            for n in range(3)
        ],
    )
    segment = pro_segment(tenant_a)
    with receiver() as hook:
        destination = webhook(tenant_a, hook.url, purpose="marketing_email")
        run(sync_of(tenant_a, segment, destination))
        send_events(
            Client(),
            tenant_a,
            {
                "type": "track",
                "userId": "u1",
                "event": "Unsubscribed",
                "context": {"consent": {"categoryPreferences": {"marketing_email": False}}},
            },
        )
        drain(destination)
        assert len(hook.accepted_items()) == 2
        cancelled = Delivery.objects.get(destination=destination, status="cancelled")
        assert (cancelled.kind, cancelled.reason) == ("upsert", "consent")
        assert cancelled.profile_id == profile_of(tenant_a, "u1")
        batch = Delivery.objects.get(destination=destination, kind="bulk")
        assert batch.status == "delivered" and len(batch.profile_ids or []) == 2
        assert cancelled.profile_id not in (batch.profile_ids or [])


def test_a_refused_batch_becomes_replayable_dead_letters_per_member(tenant_a: Tenant) -> None:
    people(tenant_a, 3)
    segment = pro_segment(tenant_a)
    with receiver() as hook:
        hook.then(422)
        destination = webhook(tenant_a, hook.url)
        sync = sync_of(tenant_a, segment, destination)
        run(sync)
        drain(destination)
        dead = list(Delivery.objects.filter(destination=destination, status="dead"))
        assert len(dead) == 3 and {d.kind for d in dead} == {"upsert"}
        assert all(d.reason == "http_422" and d.attempts == 1 for d in dead)
        assert all("audience batch #" in d.error for d in dead)
        # their detail shows the request that carried them in the batch
        assert all(d.batch_id for d in dead)
        assert [a.status_code for a in selectors.delivery_attempts(delivery=dead[0])] == [422]
        batch = Delivery.objects.get(destination=destination, kind="bulk")
        assert (batch.status, batch.reason) == ("cancelled", "split")
        # the dead letters keep the keys the batch's items were sent under
        sent = {i["id"] for i in hook.requests[0].json["items"]}
        assert {str(d.key) for d in dead} == sent
        assert deliveries_retry(workspace=tenant_a.workspace, destination_id=destination.pk) == {
            "replayed": 3,
            "superseded": 0,
        }
        drain(destination)
        assert Counter(i["id"] for i in hook.accepted_items()) == Counter(sent)
        assert SyncMember.objects.filter(sync=sync, acked_at__isnull=False).count() == 3


def test_a_later_delta_waits_for_the_batch_carrying_its_member(tenant_a: Tenant) -> None:
    people(tenant_a, 3)
    segment = pro_segment(tenant_a)
    with receiver() as hook:
        destination = webhook(tenant_a, hook.url, circuit_threshold=100)
        sync = sync_of(tenant_a, segment, destination)
        run(sync)
        batch = Delivery.objects.get(destination=destination, kind="bulk")
        # user-2 leaves before the batch went out: the removal queues behind it
        send_events(
            Client(),
            tenant_a,
            {"type": "identify", "userId": "user-2", "traits": {"plan": "free"}},
        )
        delta = run(sync)
        assert delta is not None and delta.removed == 1
        removal = Delivery.objects.get(destination=destination, kind="remove")
        carried = {item_key(str(batch.key), p) for p in batch.profile_ids or []}
        hook.answer = lambda r: (
            (500, {}) if any(i["id"] in carried for i in r.json["items"]) else None
        )
        drain(destination, rounds=2)
        assert hook.requests and {r.status for r in hook.requests} == {500}
        assert hook.accepted_items() == []  # the batch failed: its member's removal waits
        hook.answer = None
        Delivery.objects.filter(pk=batch.pk).update(next_attempt_at=batch.created_at)
        drain(destination)
        got = [i["id"] for i in hook.accepted_items()]
        leaving = item_key(str(batch.key), profile_of(tenant_a, "user-2"))
        assert got.index(leaving) < got.index(str(removal.key))
        assert not SyncMember.objects.filter(
            sync=sync, profile_id=profile_of(tenant_a, "user-2")
        ).exists()


def test_a_deleted_person_leaves_every_batch(tenant_a: Tenant) -> None:
    people(tenant_a, 3)
    segment = pro_segment(tenant_a)
    with receiver() as hook:
        destination = webhook(tenant_a, hook.url)
        sync = sync_of(tenant_a, segment, destination, mapping={"identifiers": [{"type": "email"}]})
        run(sync)
        drain(destination)
        # a second, pending batch carries them too (a full resync after the destination lost
        # everyone)
        SyncMember.objects.filter(sync=sync).update(acked_identifiers=[])
        run(sync, "full")
        gone = profile_of(tenant_a, "user-1")
        assert Delivery.objects.filter(kind="bulk", profile_ids__contains=[gone]).count() == 2
        delete_person(tenant_a, "user-1")
        rows = Delivery.objects.filter(destination=destination, kind="bulk")
        assert all(gone not in (r.profile_ids or []) for r in rows)
        assert all(len(r.payload["items"]) == 2 for r in rows)
        assert "person.1@example.com" not in str([r.payload for r in rows])
        drain(destination)
        resent = [i for i in hook.accepted_items() if i["type"] == "audience.upsert"][3:]
        assert len(resent) == 2 and "person.1@" not in str(resent)
        notice = hook.accepted_items()[-1]
        assert notice["type"] == "privacy.deletion"


def test_export_lists_a_persons_items_of_batches(tenant_a: Tenant) -> None:
    from activation import privacy as activation_privacy
    from profiles.privacy import Subject

    people(tenant_a, 2)
    segment = pro_segment(tenant_a)
    with receiver() as hook:
        destination = webhook(tenant_a, hook.url)
        run(sync_of(tenant_a, segment, destination))
        drain(destination)
    me = profile_of(tenant_a, "user-0")
    exported: dict[str, Any] = activation_privacy.export(
        Subject(workspace_id=tenant_a.workspace.pk, profile_ids=[me])
    )
    [row] = exported["deliveries"]
    assert row["kind"] == "upsert" and row["status"] == "delivered"
    assert row["payload"]["identifiers"]["user_id"] == ["user-0"]
    assert "items" not in row["payload"]


def test_a_dead_letter_a_later_batch_carried_again_is_not_replayed(tenant_a: Tenant) -> None:
    people(tenant_a, 2)
    segment = pro_segment(tenant_a)
    with receiver() as hook:
        hook.then(422)
        destination = webhook(tenant_a, hook.url)
        sync = sync_of(tenant_a, segment, destination)
        run(sync)
        drain(destination)
        assert Delivery.objects.filter(destination=destination, status="dead").count() == 2
        # the repair sends both again in a batch of its own: replaying would roll it back
        repair = run(sync, "full")
        assert repair is not None and repair.added == 2
        drain(destination)
        assert deliveries_retry(workspace=tenant_a.workspace) == {"replayed": 0, "superseded": 2}
        assert len(hook.accepted_items()) == 2


def test_item_keys_are_uuid5_of_the_profile_in_the_rows_key() -> None:
    import uuid

    for n in range(200):
        row_key = str(uuid.uuid4())
        assert item_key(row_key, n * 7919) == str(uuid.uuid5(uuid.UUID(row_key), str(n * 7919)))
