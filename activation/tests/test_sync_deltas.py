"""Audience syncs send deltas: adds for profiles that entered, removals for those that left,
only the identifier digests that changed after a merge, nothing when nothing changed."""

from __future__ import annotations

import hashlib

from django.test import Client

from activation.models import Delivery, SyncMember
from activation.tests.helpers import deliveries, drain, people, pro_segment, run, sync_of, webhook
from activation.tests.receiver import receiver
from profiles.computed.services import computed_values_write
from profiles.models import Profile
from tests.fixtures import Tenant, send_events


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_initial_sync_then_deltas_then_nothing(tenant_a: Tenant) -> None:
    people(tenant_a, 30)
    segment = pro_segment(tenant_a)
    with receiver() as hook:
        destination = webhook(tenant_a, hook.url, batch_size=10)
        sync = sync_of(
            tenant_a,
            segment,
            destination,
            mapping={
                "identifiers": [{"type": "email", "hash": "sha256"}, {"type": "user_id"}],
                "fields": [{"trait": "first_name", "as": "firstName"}],
            },
        )
        first = run(sync)
        assert first is not None and first.kind == "initial"
        assert (first.added, first.removed) == (30, 0)
        drain(destination)
        items = hook.accepted_items()
        assert len(items) == 30 and len(hook.requests) == 3  # batches of 10
        one = next(i for i in items if i["data"]["identifiers"]["user_id"] == ["user-7"])
        assert one["type"] == "audience.upsert"
        assert one["data"]["identifiers"]["email_sha256"] == [sha("person.7@example.com")]
        assert one["data"]["fields"] == {"firstName": "P7"}
        assert SyncMember.objects.filter(sync=sync, acked_at__isnull=False).count() == 30

        # nothing changed: nothing planned, nothing sent
        assert run(sync) is None
        again = run(sync, "full")
        assert again is not None and (again.added, again.removed, again.updated) == (0, 0, 0)
        assert again.unchanged == 30
        drain(destination)
        assert len(hook.requests) == 3

        # 3 people leave, 2 join, one changes name
        send_events(
            Client(),
            tenant_a,
            *[
                {"type": "identify", "userId": f"user-{i}", "traits": {"plan": "free"}}
                for i in range(3)
            ],
            *[
                {
                    "type": "identify",
                    "userId": f"user-{i}",
                    "traits": {"plan": "pro", "email": f"new{i}@example.com"},
                }
                for i in (100, 101)
            ],
            {"type": "identify", "userId": "user-20", "traits": {"first_name": "Twenty"}},
        )
        delta = run(sync)
        assert delta is not None
        assert (delta.added, delta.removed, delta.updated) == (2, 3, 1)
        drain(destination)
        new = hook.accepted_items()[30:]
        assert sorted(i["type"] for i in new) == ["audience.remove"] * 3 + ["audience.upsert"] * 3
        assert run(sync) is None  # a rerun sends nothing
        assert deliveries(status="delivered") == 36
        assert not SyncMember.objects.filter(
            profile_id__in=[d.profile_id for d in Delivery.objects.filter(kind="remove")]
        ).exists()


def test_computed_values_written_outside_the_pipeline_are_synced_fields(tenant_a: Tenant) -> None:
    """A model's scores (or any computed value a job writes) are fields a sync can map; a
    new score reaches the destination at the next delta, and only for mapped keys."""
    people(tenant_a, 6)
    segment = pro_segment(tenant_a)
    ids = sorted(Profile.objects.filter(workspace=tenant_a.workspace).values_list("pk", flat=True))
    computed_values_write(
        workspace_id=tenant_a.workspace.pk,
        values={"churn_risk": {pid: 0.5 for pid in ids}, "other": {pid: 1 for pid in ids}},
    )
    with receiver() as hook:
        destination = webhook(tenant_a, hook.url, batch_size=10)
        sync = sync_of(
            tenant_a,
            segment,
            destination,
            mapping={
                "identifiers": [{"type": "user_id"}],
                "fields": [{"trait": "churn_risk", "as": "churnRisk"}],
            },
        )
        run(sync)
        drain(destination)
        assert {i["data"]["fields"]["churnRisk"] for i in hook.accepted_items()} == {0.5}
        # a job changes two scores and a key no sync reads
        computed_values_write(
            workspace_id=tenant_a.workspace.pk,
            values={"churn_risk": {ids[0]: 0.9, ids[1]: 0.1}},
            exclusive=False,
        )
        computed_values_write(
            workspace_id=tenant_a.workspace.pk, values={"other": {ids[2]: 2}}, exclusive=False
        )
        delta = run(sync)
        assert delta is not None and (delta.updated, delta.added) == (2, 0)
        drain(destination)
        latest = hook.accepted_items()[-2:]
        assert sorted(i["data"]["fields"]["churnRisk"] for i in latest) == [0.1, 0.9]
        assert run(sync) is None
