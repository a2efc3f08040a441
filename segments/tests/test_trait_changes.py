"""Segments that read a computed trait follow its changes at once, not at the next scheduled
full evaluation: a trait's backfill after it is redefined, a window's expiry and the hourly
built-ins re-evaluate the profiles whose values changed (and the segments referring to those
segments) in the job's own transaction. A publish during a backfill misses nobody, and a
trait that a segment reads cannot be deleted from under it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test import Client

from cdp.celery import app as celery_app
from profiles.computed import hooks, services
from profiles.models import ComputedTrait, Identity
from segments.models import Membership, Segment
from segments.services import segment_create, segment_publish
from tests.fixtures import Tenant, send_events

URL = "/api/v1/computed-traits/"
SPEND = {
    "key": "lifetime_spend",
    "name": "Lifetime spend",
    "aggregation": "sum",
    "event": "Order Completed",
    "property": "revenue",
}
send = partial(send_events, drain=1000)


@pytest.fixture
def eager_tasks() -> Iterator[None]:
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def order(user: str, revenue: float, at: datetime | None = None) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "timestamp": (at or datetime.now(UTC)).isoformat(),
        "properties": {"revenue": revenue},
    }


def members(segment: Segment) -> set[str]:
    """The user ids of the segment's current members."""
    profiles = Membership.objects.filter(segment=segment, exited_at__isnull=True).values(
        "profile_id"
    )
    return set(
        Identity.objects.filter(type="user_id", profile_id__in=profiles).values_list(
            "value", flat=True
        )
    )


def published(tenant: Tenant, name: str, rule: dict[str, Any]) -> Segment:
    segment = segment_create(workspace=tenant.workspace, name=name, rule=rule)
    segment_publish(segment=segment)
    segment.refresh_from_db()
    return segment


@pytest.mark.django_db(transaction=True)
def test_a_redefined_trait_moves_members_at_once(
    tenant_a: Tenant, client: Client, eager_tasks: None
) -> None:
    send(client, tenant_a, order("u-1", 20), order("u-1", 50), order("u-2", 30), order("u-2", 30))
    api = tenant_a.api()
    trait_id = api.post(URL, SPEND, content_type="application/json").json()["id"]
    big = published(tenant_a, "Big spenders", {"trait": "lifetime_spend", "op": "gte", "value": 50})
    vip = published(
        tenant_a,
        "VIP",
        {"all": [{"segment": big.key}, {"trait": "order_count", "op": "gte", "value": 2}]},
    )
    other = published(tenant_a, "Two orders", {"trait": "order_count", "op": "gte", "value": 2})
    assert members(big) == members(vip) == {"u-1", "u-2"}  # sums 70 and 60

    def redefine(change: dict[str, Any]) -> None:
        # the backfill runs on commit (eagerly here) and brings the segments along
        answer = api.patch(f"{URL}{trait_id}/", change, content_type="application/json")
        assert answer.status_code == 200, answer.content

    redefine({"aggregation": "max"})  # 50 and 30
    assert members(big) == members(vip) == {"u-1"}
    redefine({"aggregation": "sum", "where": [{"property": "revenue", "op": "gte", "value": 30}]})
    assert members(big) == members(vip) == {"u-1", "u-2"}  # 50 and 60
    big.refresh_from_db()
    assert big.member_count == 2
    u2 = Identity.objects.get(workspace=tenant_a.workspace, type="user_id", value="u-2")
    u2_rows = Membership.objects.filter(segment=big, profile_id=u2.profile_id)
    assert u2_rows.count() == 2  # entered, exited, entered again: the history is kept
    assert members(other) == {"u-1", "u-2"}  # a segment not reading the trait: untouched
    assert Membership.objects.filter(segment=other).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_window_expiry_takes_people_out_at_once(tenant_a: Tenant, client: Client) -> None:
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    with time_machine.travel(t0, tick=False):
        send(client, tenant_a, order("u-1", 10, t0 - timedelta(days=6)), order("u-2", 10, t0))
        trait = ComputedTrait.objects.create(
            workspace=tenant_a.workspace,
            key="recent_orders",
            name="Orders in the last 7 days",
            aggregation="count",
            event="Order Completed",
            window_days=7,
            created_at=t0,
            updated_at=t0,
        )
        services.computed_trait_refresh(trait=trait)
        recent = published(
            tenant_a, "Ordered this week", {"trait": "recent_orders", "op": "gte", "value": 1}
        )
        assert members(recent) == {"u-1", "u-2"}
    with time_machine.travel(t0 + timedelta(days=2), tick=False):
        assert services.computed_traits_refresh_windows() == 1
        assert members(recent) == {"u-2"}  # u-1's order left the window: out now, not at 5 past


@pytest.mark.django_db(transaction=True)
def test_the_hourly_built_ins_move_members(tenant_a: Tenant, client: Client) -> None:
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    with time_machine.travel(t0, tick=False):
        send(client, tenant_a, order("u-1", 10, t0 - timedelta(days=20)), order("u-2", 10, t0))
        services.builtin_traits_refresh(workspace_id=tenant_a.workspace.pk)
        lapsing = published(
            tenant_a, "Lapsing", {"trait": "days_since_last_order", "op": "gte", "value": 30}
        )
        assert members(lapsing) == set()
    with time_machine.travel(t0 + timedelta(days=15), tick=False):
        services.builtin_traits_refresh(workspace_id=tenant_a.workspace.pk)
        assert members(lapsing) == {"u-1"}  # 35 days since their order


@pytest.mark.django_db(transaction=True)
def test_a_publish_during_a_backfill_misses_nobody(tenant_a: Tenant, client: Client) -> None:
    """The backfill's chunks hold the workspace's identity lock (shared) before the profiles'
    and run the segments hook in their transaction; the publish takes it exclusively. A
    publish while a chunk is open waits for it, so neither misses the chunk's values."""
    people = 40
    send(client, tenant_a, *(order(f"u-{n}", 100) for n in range(people)))
    now = datetime.now(UTC)
    trait = ComputedTrait.objects.create(
        workspace=tenant_a.workspace,
        key="lifetime_spend",
        name="Lifetime spend",
        aggregation="sum",
        event="Order Completed",
        property="revenue",
        created_at=now,
        updated_at=now,
    )
    segment = segment_create(
        workspace=tenant_a.workspace,
        name="Big spenders",
        rule={"trait": "lifetime_spend", "op": "gte", "value": 50},
    )
    in_chunk = threading.Event()

    def hold(workspace_id: int, keys: frozenset[str], profile_ids: Sequence[int]) -> None:
        if not in_chunk.is_set():
            in_chunk.set()
            time.sleep(1.5)  # the first chunk's values are written, not yet committed

    hooks.on_values_changed(hold)
    try:

        def backfill() -> None:
            try:
                services.computed_trait_refresh(trait=trait, chunk_size=10)
            finally:
                connection.close()

        job = threading.Thread(target=backfill)
        job.start()
        assert in_chunk.wait(10)
        segment_publish(segment=segment)
        job.join(30)
    finally:
        hooks._values_hooks.remove(hold)
    assert len(members(segment)) == people


@pytest.mark.django_db
def test_a_trait_a_segment_reads_cannot_be_deleted(
    tenant_a: Tenant, client: Client, eager_tasks: None, django_capture_on_commit_callbacks: Any
) -> None:
    send(client, tenant_a, order("u-1", 80))
    api = tenant_a.api()
    with django_capture_on_commit_callbacks(execute=True):
        trait_id = api.post(URL, SPEND, content_type="application/json").json()["id"]
    live = published(
        tenant_a, "Big spenders", {"trait": "lifetime_spend", "op": "gte", "value": 50}
    )
    draft = segment_create(
        workspace=tenant_a.workspace,
        name="Draft reader",
        rule={"not": {"trait": "lifetime_spend", "op": "exists"}},
    )
    answer = api.delete(f"{URL}{trait_id}/")
    assert answer.status_code == 409, answer.content
    error = answer.json()["error"]
    assert error["code"] == "computed_trait_in_use"
    assert "'Big spenders'" in error["message"] and "'Draft reader'" in error["message"]
    assert [s["id"] for s in error["detail"]["segments"]] == [live.pk, draft.pk]
    assert ComputedTrait.objects.filter(pk=trait_id).exists()
    assert members(live) == {"u-1"}  # nothing removed

    for segment in (live, draft):
        assert api.delete(f"/api/v1/segments/{segment.pk}/").status_code == 204
    assert api.delete(f"{URL}{trait_id}/").status_code == 204
