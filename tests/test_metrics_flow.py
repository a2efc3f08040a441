"""Prometheus metrics moved by real traffic: events posted to the collector, the pipeline's
backlog, decisions. Read through GET /metrics, compared before and after."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from profiles.pipeline import queue
from tests.fixtures import Tenant, post_collector

TOKEN = "flow-metrics-token"  # noqa: S105 - test value


@pytest.fixture(autouse=True)
def _metrics_on(settings: Any) -> None:
    settings.CDP_METRICS_TOKEN = TOKEN


def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def track(n: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "track",
            "event": "Metric Tested",
            "userId": f"u{i}",
            "messageId": str(uuid.uuid4()),
        }
        for i in range(n)
    ]


def test_accepted_and_duplicate_events_are_counted_per_source(tenant_a: Tenant) -> None:
    source = str(tenant_a.source.pk)
    events = track(7)
    before = scrape()

    response = post_collector(
        Client(), "/v1/batch", {"batch": events}, write_key=tenant_a.write_key
    )
    assert response.status_code == 200
    assert response.json()["accepted"] == 7
    middle = scrape()
    accepted = value(middle, "cdp_events_total", source=source, outcome="accepted")
    assert accepted - value(before, "cdp_events_total", source=source, outcome="accepted") == 7
    requests = ("cdp_collector_requests_total", {"route": "batch", "status": "200"})
    assert (
        value(middle, requests[0], **requests[1]) - value(before, requests[0], **requests[1]) == 1
    )
    latency = ("cdp_collector_request_seconds_count", {"route": "batch"})
    assert value(middle, latency[0], **latency[1]) - value(before, latency[0], **latency[1]) == 1

    # the same messageIds again, plus two new ones; one event without a type fails
    again = [*events[:3], *track(2), {"messageId": str(uuid.uuid4()), "userId": "x"}]
    response = post_collector(Client(), "/v1/batch", {"batch": again}, write_key=tenant_a.write_key)
    assert response.status_code == 200
    assert response.json()["duplicates"] == 3
    after = scrape()
    for outcome, moved in (("accepted", 2), ("duplicate", 3), ("failed", 1)):
        delta = value(after, "cdp_events_total", source=source, outcome=outcome) - value(
            middle, "cdp_events_total", source=source, outcome=outcome
        )
        assert delta == moved, outcome


def test_route_label_names_the_endpoint_and_status(tenant_a: Tenant) -> None:
    before = scrape()
    event = track(1)[0]
    assert post_collector(Client(), "/v1/t", event, write_key=tenant_a.write_key).status_code == 200
    assert (
        post_collector(Client(), "/v1/import", {"batch": track(1)}, write_key="nope").status_code
        == 401
    )
    after = scrape()
    for labels in ({"route": "track", "status": "200"}, {"route": "import", "status": "401"}):
        name = "cdp_collector_requests_total"
        assert value(after, name, **labels) - value(before, name, **labels) == 1, labels


def test_pipeline_lag_while_events_wait_and_zero_once_drained(tenant_a: Tenant) -> None:
    workspace = str(tenant_a.workspace.pk)
    response = post_collector(
        Client(), "/v1/batch", {"batch": track(4)}, write_key=tenant_a.write_key
    )
    assert response.status_code == 200

    waiting = scrape()
    assert value(waiting, "cdp_pipeline_lag_seconds", workspace=workspace) > 0
    assert value(waiting, "cdp_pipeline_queue_depth", workspace=workspace) == 4

    queue.drain()
    drained = scrape()
    assert value(drained, "cdp_pipeline_lag_seconds", workspace=workspace) == 0
    assert value(drained, "cdp_pipeline_queue_depth", workspace=workspace) == 0


def test_decide_requests_are_timed(db: Any) -> None:
    name = "cdp_decide_request_seconds_count"
    before = value(scrape(), name)
    assert Client().put("/v1/decide").status_code == 405
    assert value(scrape(), name) - before == 1


def test_deliveries_are_counted_by_kind_and_outcome(tenant_a: Tenant) -> None:
    from activation.tests.helpers import deliveries, drain, people, pro_segment, run, sync_of
    from activation.tests.helpers import webhook as webhook_destination
    from activation.tests.receiver import receiver

    people(tenant_a, 3)
    segment = pro_segment(tenant_a)
    before = scrape()
    with receiver() as accepting, receiver() as refusing:
        refusing.then(400)
        good = webhook_destination(tenant_a, accepting.url, name="good")
        bad = webhook_destination(tenant_a, refusing.url, name="bad")
        for destination in (good, bad):
            run(sync_of(tenant_a, segment, destination))
            drain(destination)
    after = scrape()
    delivered = deliveries(destination=good, status="delivered")
    dead = deliveries(destination=bad, status="dead")
    assert delivered > 0 and dead > 0
    for outcome, moved in (("delivered", delivered), ("dead", dead)):
        labels = {"kind": "webhook", "outcome": outcome}
        name = "cdp_deliveries_total"
        assert value(after, name, **labels) - value(before, name, **labels) == moved, outcome
    sends = ("cdp_delivery_send_seconds_count", {"kind": "webhook"})
    assert value(after, sends[0], **sends[1]) - value(before, sends[0], **sends[1]) >= 2
