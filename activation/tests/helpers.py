"""Shared set-up for the activation tests: people sent through the real collector and
pipeline, a published segment, destinations and syncs made through the services."""

from __future__ import annotations

from typing import Any

from django.test import Client

from activation import services
from activation.delivery import engine
from activation.models import Destination, Sync
from activation.syncs import planner
from activation.syncs import services as sync_services
from consent.services import purposes_install_defaults
from segments.models import Segment
from segments.services import segment_create
from tests.fixtures import Tenant, send_events


def people(tenant: Tenant, n: int, *, plan: str = "pro", start: int = 0) -> None:
    events = [
        {
            "type": "identify",
            "userId": f"user-{i}",
            "traits": {"email": f"Person.{i}@Example.com ", "plan": plan, "first_name": f"P{i}"},
        }
        for i in range(start, start + n)
    ]
    for chunk in range(0, len(events), 500):
        send_events(Client(), tenant, *events[chunk : chunk + 500])


def pro_segment(tenant: Tenant, name: str = "Pro plan") -> Segment:
    return segment_create(
        workspace=tenant.workspace,
        name=name,
        rule={"trait": "plan", "op": "eq", "value": "pro"},
        publish=True,
    )


def webhook(tenant: Tenant, url: str, **policy: Any) -> Destination:
    purposes_install_defaults(workspace=tenant.workspace)
    destination, _ = services.destination_create(
        workspace=tenant.workspace,
        data={
            "name": policy.pop("name", "Hook"),
            "kind": "webhook",
            "purpose": policy.pop("purpose", "analytics"),
            "config": {"url": url, "signing_secret": "whsec_" + "A" * 44},
            "retry_base_seconds": policy.pop("retry_base_seconds", 0.05),
            "retry_max_seconds": policy.pop("retry_max_seconds", 0.2),
            **policy,
        },
    )
    return destination


def sync_of(tenant: Tenant, segment: Segment, destination: Destination, **data: Any) -> Sync:
    return sync_services.sync_create(
        workspace=tenant.workspace,
        data={
            "name": data.pop("name", f"{segment.name} → {destination.name}"),
            "segment": segment.pk,
            "destination": destination.pk,
            **data,
        },
    )


def run(sync: Sync, kind: str = "delta") -> Any:
    return planner.plan(sync.pk, kind=kind)


def drain(destination: Destination, rounds: int = 50) -> dict[str, int]:
    """Send until nothing is due (backoffs in these tests are tens of milliseconds)."""
    import time

    from activation.models import Delivery

    total: dict[str, int] = {}
    for _ in range(rounds):
        counts = engine.deliver(destination.pk, budget=5)
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
        if not Delivery.objects.filter(
            destination=destination, status__in=["pending", "sending"]
        ).exists():
            break
        time.sleep(0.05)
    return total


def deliveries(**filters: Any) -> int:
    """How many deliveries match: a bulk row stands for its items (one split into rows of
    their own stands for none)."""
    from activation.models import Delivery

    rows = Delivery.objects.filter(**filters).exclude(kind="bulk", reason="split")
    return sum(len(d.profile_ids or []) if d.kind == "bulk" else 1 for d in rows)


def delivery_keys(**filters: Any) -> dict[str, int | None]:
    """Each delivery's idempotency key and profile, as the destination receives them: a bulk
    row's items with theirs (one split into rows of their own: those rows)."""
    from activation.delivery.bulk import item_key
    from activation.models import Delivery

    out: dict[str, int | None] = {}
    for row in Delivery.objects.filter(**filters).exclude(kind="bulk", reason="split"):
        if row.kind == "bulk":
            out.update((item_key(str(row.key), p), p) for p in row.profile_ids or [])
        else:
            out[str(row.key)] = row.profile_id
    return out
