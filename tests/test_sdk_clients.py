"""The real, unmodified Python SDKs (segment-analytics-python, rudder-sdk-python) pointed at a
live test server: every call arrives, once, normalised; retries after a 429 are not duplicated."""

from __future__ import annotations

from typing import Any

import pytest
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from profiles import services
from profiles.models import Event
from tests.fixtures import Tenant

pytestmark = pytest.mark.sdk


def drive(client: Any) -> list[str]:
    """The same calls through either SDK; returns the messageIds the SDK generated."""
    results = [
        client.identify("u-42", {"email": "Ada@Example.com", "plan": "pro"}, anonymous_id="an-1"),
        client.track("u-42", "Order Completed", {"revenue": 42.5, "currency": "EUR"}),
        client.page("u-42", "Docs", "Quickstart", {"url": "https://example.com/docs"}),
        client.screen(None, "Onboarding", "Welcome", {"step": 1}, anonymous_id="an-1"),
        client.group("u-42", "g-7", {"name": "Acme", "employees": 40}),
        client.alias("an-1", "u-42"),
    ]
    client.flush()  # blocks until the SDK's queue is sent
    client.join()
    # each SDK call returns (queued, message)
    assert all(queued for queued, _ in results)
    return [message["messageId"] for _, message in results]


def check_stored(tenant: Tenant, message_ids: list[str]) -> None:
    events = {e.message_id: e for e in Event.objects.filter(workspace=tenant.workspace)}
    assert set(events) == set(message_ids)
    by_type = {e.type: e for e in events.values()}
    assert set(by_type) == {"identify", "track", "page", "screen", "group", "alias"}
    assert by_type["identify"].traits["email"] == "Ada@Example.com"
    assert by_type["identify"].anonymous_id == "an-1"
    assert by_type["track"].event == "Order Completed"
    assert by_type["track"].properties == {"revenue": 42.5, "currency": "EUR"}
    assert by_type["page"].name == "Quickstart"
    assert by_type["screen"].user_id is None and by_type["screen"].anonymous_id == "an-1"
    assert by_type["group"].group_id == "g-7"
    assert by_type["alias"].previous_id == "an-1"
    for event in events.values():
        assert event.source_id == tenant.source.pk
        assert abs((event.received_at - event.timestamp).total_seconds()) < 60


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("gzip", [False, True])
def test_segment_python_sdk(live_server: Any, tenant_a: Tenant, gzip: bool) -> None:
    errors: list[Any] = []
    client = SegmentClient(
        tenant_a.write_key,
        host=live_server.url,
        gzip=gzip,
        on_error=lambda e, batch: errors.append(e),
    )
    ids = drive(client)
    assert not errors
    check_stored(tenant_a, ids)


@pytest.mark.django_db(transaction=True)
def test_rudder_python_sdk(live_server: Any, tenant_a: Tenant) -> None:
    errors: list[Any] = []
    client = RudderClient(
        tenant_a.write_key,
        host=live_server.url,
        on_error=lambda e, batch: errors.append(e),
    )
    ids = drive(client)
    assert not errors
    check_stored(tenant_a, ids)
    # rudder-python sends identify traits only in context.traits
    assert Event.objects.get(type="identify").traits["plan"] == "pro"


@pytest.mark.django_db(transaction=True)
def test_sdk_retries_after_429_without_duplicates(live_server: Any, tenant_a: Tenant) -> None:
    from cdp.redis import client as redis

    services.source_update(source=tenant_a.source, rate_limit_per_second=5)
    errors: list[Any] = []
    client = SegmentClient(
        tenant_a.write_key,
        host=live_server.url,
        max_retries=20,
        on_error=lambda e, batch: errors.append(e),
    )
    # exhaust this second's budget so the SDK's first attempt is refused with 429
    redis().set(f"cdp:rl:{tenant_a.source.pk}:{int(__import__('time').time())}", 10**6, ex=3)
    ids = [client.track("u-1", "Retry Me", {"n": i})[1]["messageId"] for i in range(3)]
    client.flush()
    client.join()
    assert not errors
    assert sorted(Event.objects.values_list("message_id", flat=True)) == sorted(ids)
