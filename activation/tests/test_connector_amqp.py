"""The amqp kind against the machine's RabbitMQ (127.0.0.1:5672, guest/guest): a synced
audience arrives as persistent, confirmed messages whose message_id is the delivery's key;
a retried batch republishes the same ids; refused credentials and a missing exchange fail
for good, an unroutable message and an unreachable broker are retried; "Send test"."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pika
import pytest

from activation import connectors
from activation.delivery import engine
from activation.models import DeliveryAttempt, Destination
from activation.tests.connector_helpers import (
    audience_sync,
    closed_port,
    destination,
    event,
    leave,
    statuses,
    target,
    upsert,
)
from activation.tests.helpers import delivery_keys, drain, run
from tests.fixtures import Tenant

BROKER = ("127.0.0.1", 5672)


def broker_reachable() -> bool:
    try:
        with socket.create_connection(BROKER, timeout=1):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not broker_reachable(), reason="no AMQP broker at 127.0.0.1:5672 (start RabbitMQ to run)"
)


@pytest.fixture
def channel() -> Iterator[Any]:
    connection = pika.BlockingConnection(
        pika.ConnectionParameters(*BROKER, credentials=pika.PlainCredentials("guest", "guest"))
    )
    yield connection.channel()
    connection.close()
    # imported here, not at the top: a kind imported before the registry loads keeps it
    # from loading the others (activation.connectors._load stops once one is registered)
    from activation.connectors import amqp

    amqp.forget_connections()


@pytest.fixture
def queue(channel: Any) -> Iterator[str]:
    """A queue of this test only, reached through the default exchange by its name."""
    name = f"cdp-test-{uuid.uuid4().hex[:12]}"
    channel.queue_declare(name, durable=False, auto_delete=False)
    yield name
    channel.queue_delete(name)


def consume(channel: Any, queue: str) -> list[tuple[Any, dict[str, Any]]]:
    """Every message waiting in `queue`: (properties, body as JSON)."""
    messages: list[tuple[Any, dict[str, Any]]] = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return messages
        messages.append((properties, orjson.loads(body)))


def amqp_destination(tenant: Tenant, routing_key: str, **config: Any) -> Destination:
    name = config.pop("name", None) or f"Broker {routing_key} {sorted(config.items())}"
    return destination(
        tenant,
        "amqp",
        {
            "host": "127.0.0.1",
            "routing_key": routing_key,
            "username": "guest",
            "password": "guest",
            **config,
        },
        name=name[:100],
    )


def test_sync_arrives_as_confirmed_persistent_messages(
    tenant_a: Tenant, channel: Any, queue: str
) -> None:
    dest = amqp_destination(tenant_a, queue)
    assert (dest.config["port"], dest.config["virtual_host"], dest.config["exchange"]) == (
        5672,
        "/",
        "",
    )
    sync = audience_sync(tenant_a, dest, 5)
    drain(dest)
    messages = consume(channel, queue)
    keys = delivery_keys()
    assert len(messages) == 5 and {p.message_id for p, _ in messages} == set(keys)
    for properties, body in messages:
        assert properties.delivery_mode == 2 and properties.content_type == "application/json"
        assert properties.type == "upsert" and body["type"] == "upsert"
        assert body["id"] == properties.message_id
        assert body["profile_id"] == keys[body["id"]]
        assert body["data"]["op"] == "upsert" and "user_id" in body["data"]["identifiers"]
    assert statuses(dest) == [("delivered", "", 1)] * 5

    leave(tenant_a, "user-4")
    run(sync)
    drain(dest)
    [(properties, body)] = consume(channel, queue)
    assert properties.type == "remove" and body["data"]["removed"]["user_id"] == ["user-4"]
    assert run(sync) is None and consume(channel, queue) == []


def test_a_retried_batch_keeps_its_message_ids(tenant_a: Tenant, channel: Any, queue: str) -> None:
    channel.queue_bind(queue, "amq.topic", routing_key="cdp.*")
    dest = amqp_destination(tenant_a, "cdp.{kind}", exchange="amq.topic")
    items = [upsert(1, 1, "a@example.com"), event(2, 1)]
    connector = connectors.get("amqp")
    for _ in range(2):
        outcome = connector.send(target(dest), items)
        assert outcome.ok and outcome.request["items"] == 2
    messages = consume(channel, queue)
    ids = [p.message_id for p, _ in messages]
    # at least once: the broker holds both copies; consumers deduplicate on message_id
    assert ids == [items[0].key, items[1].key] * 2
    assert [p.type for p, _ in messages[:2]] == ["upsert", "event"]


def test_wrong_password_is_a_dead_letter_after_one_attempt(tenant_a: Tenant, queue: str) -> None:
    dest = destination(
        tenant_a,
        "amqp",
        {"host": "127.0.0.1", "routing_key": queue, "username": "guest", "password": "wrong!pw"},
    )
    audience_sync(tenant_a, dest, 2)
    drain(dest)
    assert statuses(dest) == [("dead", "amqp_auth_failed", 1)] * 2
    attempt = DeliveryAttempt.objects.get(destination=dest)
    assert "refused the username or password" in attempt.error
    assert "wrong!pw" not in attempt.error + orjson.dumps(attempt.request).decode()


def test_error_classification(tenant_a: Tenant, queue: str) -> None:
    connector = connectors.get("amqp")
    items = [event(1, 1)]
    cases = {
        "amqp_no_exchange": amqp_destination(tenant_a, queue, exchange="no-such-exchange"),
        "amqp_access_denied": amqp_destination(tenant_a, queue, virtual_host="/nope"),
        "amqp_unroutable": amqp_destination(tenant_a, "nobody-listens-here"),
        "connection_error": amqp_destination(tenant_a, queue, port=closed_port()),
    }
    retryable = {"amqp_unroutable", "connection_error"}
    for reason, dest in cases.items():
        outcome = connector.send(target(dest), items)
        assert (outcome.ok, outcome.reason, outcome.retryable) == (
            False,
            reason,
            reason in retryable,
        ), outcome.error

    # through the engine: an unroutable message waits for a retry, it is not dropped
    nowhere = cases["amqp_unroutable"]
    audience_sync(tenant_a, nowhere, 1)
    engine.deliver(nowhere.pk, budget=1)
    assert statuses(nowhere) == [("pending", "amqp_unroutable", 1)]


def test_send_test_and_validation(tenant_a: Tenant, channel: Any, queue: str) -> None:
    connector = connectors.get("amqp")
    good = connector.test(target(amqp_destination(tenant_a, queue)))
    assert good.ok and "confirmed a test message" in good.message
    [(properties, body)] = consume(channel, queue)
    assert properties.type == "event" and body["data"]["type"] == "test"
    refused = connector.test(
        target(amqp_destination(tenant_a, queue, port=closed_port(), name="Off"))
    )
    assert not refused.ok and "cannot connect" in refused.message
    unroutable = connector.test(target(amqp_destination(tenant_a, "no-queue", name="Nowhere")))
    assert not unroutable.ok and "no queue is bound" in unroutable.message

    errors = connector.validate(
        {"host": "amqp://broker", "port": 70000, "routing_key": "cdp.{type}", "exchange": "a b"},
        {},
    )
    assert set(errors) == {"host", "port", "routing_key", "exchange", "username", "password"}
