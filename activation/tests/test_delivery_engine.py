"""The delivery engine against real HTTP receivers on 127.0.0.1: outages, throttling,
refusals, per-profile order, the circuit breaker and replays."""

from __future__ import annotations

import time
from collections import Counter

from activation.connectors.webhook import verify
from activation.delivery import engine
from activation.delivery.bulk import item_key
from activation.models import Delivery, DeliveryAttempt, Destination
from activation.services import deliveries_retry
from activation.tests.helpers import deliveries, drain, people, pro_segment, run, sync_of, webhook
from activation.tests.receiver import receiver
from tests.fixtures import Tenant

SECRET = "whsec_" + "A" * 44


def test_an_outage_loses_nothing_and_delays_only_its_destination(tenant_a: Tenant) -> None:
    people(tenant_a, 40)
    segment = pro_segment(tenant_a)
    with receiver() as down, receiver() as up1, receiver() as up2:
        down.then(500, times=6)  # down for a while, then back
        sick = webhook(tenant_a, down.url, name="sick", batch_size=10, circuit_threshold=100)
        healthy = [
            webhook(tenant_a, r.url, name=f"ok{n}", batch_size=10) for n, r in enumerate((up1, up2))
        ]
        for d in (sick, *healthy):
            run(sync_of(tenant_a, segment, d))
        for d in healthy:  # sent first and at once, whatever the sick one does
            drain(d)
        assert len(up1.accepted_items()) == len(up2.accepted_items()) == 40
        drain(sick, rounds=200)
        items = down.accepted_items()
        keys = Counter(i["id"] for i in items)
        assert len(keys) == 40 and set(keys.values()) == {1}  # every key accepted once
        assert deliveries(destination=sick, status="delivered") == 40
        assert DeliveryAttempt.objects.filter(destination=sick, outcome="retry").count() == 6
        # what failed went out again under the same keys (receivers deduplicate on them)
        failed = {i["id"] for r in down.requests if r.status == 500 for i in r.json["items"]}
        assert failed and failed <= set(keys)
        assert all(verify(SECRET, r.headers, r.body) for r in down.requests)


def test_429_honours_retry_after_and_is_not_an_attempt(tenant_a: Tenant) -> None:
    people(tenant_a, 3)
    segment = pro_segment(tenant_a)
    with receiver() as hook:
        hook.then(429, retry_after="1")
        destination = webhook(tenant_a, hook.url)
        run(sync_of(tenant_a, segment, destination))
        engine.deliver(destination.pk)
        assert Destination.objects.get(pk=destination.pk).paused_until is not None
        assert engine.deliver(destination.pk)["sent"] == 0  # paused: no request
        assert len(hook.requests) == 1
        time.sleep(1.05)
        drain(destination)
        assert len(hook.requests) == 2
        assert hook.requests[1].at - hook.requests[0].at >= 1.0
        row = Delivery.objects.filter(destination=destination).first()
        assert row is not None and row.attempts == 1 and row.status == "delivered"


def test_400_dead_letters_at_once_and_a_replay_delivers_once(tenant_a: Tenant) -> None:
    people(tenant_a, 2)
    segment = pro_segment(tenant_a)
    with receiver() as hook:
        hook.then(400)
        destination = webhook(tenant_a, hook.url)
        run(sync_of(tenant_a, segment, destination))
        drain(destination)
        dead = list(Delivery.objects.filter(destination=destination, status="dead"))
        assert len(dead) == 2 and {d.reason for d in dead} == {"http_400"}
        assert all(d.attempts == 1 for d in dead)
        assert len(hook.requests) == 1
        assert deliveries_retry(workspace=tenant_a.workspace, destination_id=destination.pk) == {
            "replayed": 2,
            "superseded": 0,
        }
        drain(destination)
        assert Counter(i["id"] for i in hook.accepted_items()) == Counter(str(d.key) for d in dead)


def test_give_up_needs_both_attempts_and_age(tenant_a: Tenant) -> None:
    people(tenant_a, 1)
    segment = pro_segment(tenant_a)
    with receiver(default=503) as hook:
        destination = webhook(
            tenant_a, hook.url, max_attempts=3, max_age_seconds=1, circuit_threshold=100
        )
        run(sync_of(tenant_a, segment, destination))
        drain(destination, rounds=6)
        if not Delivery.objects.filter(status="dead").exists():
            time.sleep(1.0)  # 3 attempts may come before the age: then it goes on
            drain(destination, rounds=10)
        # the initial sync's batch leaves its one member as a dead letter of its own
        row = Delivery.objects.get(destination=destination, status="dead")
        assert row.kind == "upsert" and row.reason == "http_503"
        assert row.attempts >= 3 and "gave up after" in row.error
        assert deliveries(destination=destination) == 1


def test_a_failing_delivery_holds_back_only_its_profile(tenant_a: Tenant) -> None:
    people(tenant_a, 5)
    segment = pro_segment(tenant_a)
    with receiver() as hook:
        destination = webhook(tenant_a, hook.url, batch_size=1, circuit_threshold=100)
        sync = sync_of(tenant_a, segment, destination)
        run(sync)
        # the initial sync's batches (of one member each here)
        first = Delivery.objects.filter(destination=destination).order_by("id").first()
        assert first is not None and first.kind == "bulk" and first.profile_ids
        profile_id = first.profile_ids[0]
        first_key = item_key(str(first.key), profile_id)
        # a later delivery for the first profile, queued behind the failing one
        Delivery.objects.create(
            workspace_id=first.workspace_id,
            destination=destination,
            kind="event",
            profile_id=profile_id,
            payload={"type": "track", "event": "Later"},
        )
        hook.answer = lambda r: (500, {}) if r.json["items"][0]["id"] == first_key else None
        drain(destination, rounds=3)
        got = [i["id"] for i in hook.accepted_items()]
        later = Delivery.objects.filter(destination=destination, kind="event").get()
        assert str(later.key) not in got  # held back behind its profile's failing delivery
        assert len(got) == 4  # everyone else went out
        hook.answer = None
        Delivery.objects.filter(pk=first.pk).update(next_attempt_at=first.created_at)
        drain(destination)
        got = [i["id"] for i in hook.accepted_items()]
        assert got.index(first_key) < got.index(str(later.key))


def test_circuit_opens_probes_and_closes(tenant_a: Tenant) -> None:
    people(tenant_a, 6)
    segment = pro_segment(tenant_a)
    with receiver(default=500) as hook:
        destination = webhook(
            tenant_a, hook.url, batch_size=1, circuit_threshold=3, circuit_cooldown_seconds=2
        )
        run(sync_of(tenant_a, segment, destination))
        for _ in range(6):
            engine.deliver(destination.pk)
            time.sleep(0.1)
        destination.refresh_from_db()
        assert destination.circuit_state == "open"
        sent_while_open = len(hook.requests)
        assert sent_while_open == 3  # nothing more once open
        time.sleep(2.1)
        engine.deliver(destination.pk)  # the half-open probe fails: open again, one request
        destination.refresh_from_db()
        assert destination.circuit_state == "open" and len(hook.requests) == 4
        hook.default = 200
        time.sleep(2.1)
        engine.deliver(destination.pk)  # the half-open probe: one request, then closed
        destination.refresh_from_db()
        assert destination.circuit_state == "closed"
        drain(destination)
        assert Delivery.objects.filter(destination=destination, status="delivered").count() == 6


def test_rate_limit_spaces_requests_and_slots_cap_concurrency(tenant_a: Tenant) -> None:
    import psycopg
    from django.db import connection

    people(tenant_a, 6)
    segment = pro_segment(tenant_a)
    with receiver() as hook:
        destination = webhook(tenant_a, hook.url, batch_size=1, rate_per_second=10, concurrency=1)
        run(sync_of(tenant_a, segment, destination))
        # another session holds the destination's only send slot: nobody else sends
        s = connection.settings_dict
        with psycopg.connect(
            host=s["HOST"] or "127.0.0.1",
            port=s["PORT"] or 5432,
            user=s["USER"],
            dbname=s["NAME"],
            autocommit=True,
        ) as other:
            other.execute(
                "SELECT pg_advisory_lock(%s, %s)",
                [engine.SLOT_NAMESPACE, destination.pk * engine.SLOTS_MAX],
            )
            assert engine.deliver(destination.pk)["sent"] == 0
        drain(destination)
        times = [r.at for r in hook.requests]
        assert len(times) == 6
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert min(gaps) >= 0.08  # 10 requests/s
