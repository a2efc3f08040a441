"""AMQP 0-9-1 (RabbitMQ and compatible brokers): each delivery is one persistent message
published with publisher confirms, so a send succeeds only once the broker has taken
responsibility for every message.

- `message_id` is the delivery's idempotency key (stable across retries): a retried batch
  republishes messages the broker may already hold, and consumers deduplicate on it.
- Messages are published `mandatory`: one the broker cannot route to any queue comes back
  and the batch is retried (a queue may be bound later) rather than silently dropped.
- Body: `{"id": key, "type": kind, "profile_id": …, "data": payload}` as JSON; the AMQP
  `type` property is the delivery kind, so consumers can route without parsing.
- A worker thread keeps its connections open between sends (BlockingConnection is not
  thread-safe, so the cache is per thread), keyed by broker and user; any error drops it."""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from activation.connectors import register
from activation.connectors.base import (
    ConfigField,
    Connector,
    Item,
    Outcome,
    Target,
    TestResult,
    scrub,
)

KINDS = ("upsert", "remove", "event", "deletion")
MAX_LINKS_PER_THREAD = 8

_HOST_OK = re.compile(r"^[A-Za-z0-9.\-:\[\]]+$")
_EXCHANGE_OK = re.compile(r"^[A-Za-z0-9_.:\-]*$")


@dataclass(slots=True)
class _Link:
    connection: Any  # pika.BlockingConnection
    channel: Any  # its channel in confirm mode


_local = threading.local()


def _links() -> OrderedDict[tuple[Any, ...], _Link]:
    links: OrderedDict[tuple[Any, ...], _Link] | None = getattr(_local, "links", None)
    if links is None:
        links = _local.links = OrderedDict()
    return links


def _close(link: _Link) -> None:
    try:
        if link.connection.is_open:
            link.connection.close()
    except Exception:  # noqa: BLE001, S110 - closing a broken connection: nothing to report
        pass


def _drop(key: tuple[Any, ...]) -> None:
    link = _links().pop(key, None)
    if link is not None:
        _close(link)


def forget_connections() -> None:
    """Close this thread's cached connections (tests; a worker shutting down)."""
    for key in list(_links()):
        _drop(key)


def routing_key(template: str, kind: str) -> str:
    return template.replace("{kind}", kind)


def _settings(target: Target) -> dict[str, Any]:
    config = target.config
    return {
        "host": str(config.get("host") or "").strip(),
        "port": int(config.get("port") or 5672),
        "virtual_host": str(config.get("virtual_host") or "/"),
        "exchange": str(config.get("exchange") or ""),
        "routing_key": str(config.get("routing_key") or ""),
        "tls": bool(config.get("tls")),
        "username": target.secrets.get("username", ""),
        "password": target.secrets.get("password", ""),
    }


def _connect(s: dict[str, Any], timeout: float) -> _Link:
    import pika

    ssl_options = None
    if s["tls"]:
        ssl_options = pika.SSLOptions(ssl.create_default_context(), s["host"])
    parameters = pika.ConnectionParameters(
        host=s["host"],
        port=s["port"],
        virtual_host=s["virtual_host"],
        credentials=pika.PlainCredentials(s["username"], s["password"]),
        ssl_options=ssl_options,
        connection_attempts=1,
        socket_timeout=timeout,
        stack_timeout=timeout * 1.5,
        # a broker under a memory or disk alarm blocks publishers: give up, retry later
        blocked_connection_timeout=timeout,
        client_properties={"connection_name": "cdp-activation"},
    )
    connection = pika.BlockingConnection(parameters)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
    except Exception:
        _close(_Link(connection, None))
        raise
    return _Link(connection, channel)


def _link(key: tuple[Any, ...], s: dict[str, Any], timeout: float) -> _Link:
    links = _links()
    link = links.get(key)
    if link is not None:
        try:
            # services heartbeats and notices a connection the broker closed while idle
            link.connection.process_data_events(time_limit=0)
            if link.connection.is_open and link.channel.is_open:
                links.move_to_end(key)
                return link
        except Exception:  # noqa: BLE001, S110 - a stale connection: open a new one
            pass
        _drop(key)
    link = _connect(s, timeout)
    links[key] = link
    while len(links) > MAX_LINKS_PER_THREAD:
        _close(links.popitem(last=False)[1])
    return link


def body_of(item: Item) -> bytes:
    return orjson.dumps(
        {"id": item.key, "type": item.kind, "profile_id": item.profile_id, "data": item.payload}
    )


def outcome_of(exc: BaseException, s: dict[str, Any]) -> Outcome:
    """A publish failure, classified: refused credentials, a missing virtual host or
    exchange fail for good; network trouble, unroutable or nacked messages are retried."""
    from pika import exceptions as amqp
    from pika.adapters.utils.connection_workflow import AMQPConnectorStackTimeout

    where = f"{s['host']}:{s['port']}"
    if isinstance(exc, amqp.ProbableAuthenticationError | amqp.AuthenticationError):
        return Outcome.fail(
            "amqp_auth_failed", f"the broker at {where} refused the username or password"
        )
    if isinstance(exc, amqp.ProbableAccessDeniedError):
        return Outcome.fail(
            "amqp_access_denied",
            f"the broker at {where} refused access to virtual host {s['virtual_host']!r} "
            "(it does not exist, or this user has no permission on it)",
        )
    if isinstance(exc, amqp.ChannelClosedByBroker):
        text = f"the broker closed the channel: ({exc.reply_code}) {exc.reply_text}"
        if exc.reply_code == 404:
            return Outcome.fail("amqp_no_exchange", text)
        if exc.reply_code == 403:
            return Outcome.fail("amqp_access_refused", text)
        if exc.reply_code == 406:
            return Outcome.fail("amqp_precondition_failed", text)
        return Outcome.retry("amqp_channel_closed", text)
    if isinstance(exc, amqp.ConnectionClosedByBroker):
        text = f"the broker closed the connection: ({exc.reply_code}) {exc.reply_text}"
        if exc.reply_code == 403:
            return Outcome.fail("amqp_auth_failed", text)
        return Outcome.retry("connection_error", text)
    if isinstance(exc, amqp.UnroutableError):
        return Outcome.retry(
            "amqp_unroutable",
            f"the broker returned {len(exc.messages)} message(s): no queue is bound to "
            f"exchange {s['exchange'] or '(default)'!r} for routing key "
            f"{s['routing_key']!r}",
        )
    if isinstance(exc, amqp.NackError):
        return Outcome.retry(
            "amqp_nacked", f"the broker refused {len(exc.messages)} message(s) (nack)"
        )
    if isinstance(exc, amqp.ConnectionBlockedTimeout):
        return Outcome.retry(
            "amqp_blocked", "the broker blocked publishing (a memory or disk alarm)"
        )
    if isinstance(exc, AMQPConnectorStackTimeout | socket.timeout | TimeoutError):
        return Outcome.retry("timeout", f"no AMQP handshake with {where} in time")
    if isinstance(exc, ssl.SSLError | ssl.CertificateError) or "SSL" in repr(exc):
        return Outcome.retry("tls_error", f"TLS handshake with {where} failed: {exc}")
    if isinstance(exc, socket.gaierror):
        return Outcome.retry("dns_error", f"cannot resolve the host {s['host']!r}: {exc}")
    if isinstance(exc, amqp.IncompatibleProtocolError):
        return Outcome.retry(
            "amqp_protocol_error", f"{where} did not answer as an AMQP 0-9-1 broker"
        )
    if isinstance(exc, amqp.AMQPConnectionError | OSError):
        return Outcome.retry("connection_error", f"cannot connect to {where}: {exc}")
    return Outcome.retry("amqp_error", f"{type(exc).__name__}: {exc}")


def _scrub(text: str, target: Target) -> str:
    return scrub(text, target.secrets)


class Amqp(Connector):
    kind = "amqp"
    label = "AMQP (RabbitMQ)"
    description = "Each delivery as a persistent message, confirmed by the broker."
    fields = (
        ConfigField("host", "Host", required=True, help="the broker's host name"),
        ConfigField("port", "Port", "int", default=5672, help="5672, or 5671 with TLS"),
        ConfigField("virtual_host", "Virtual host", default="/"),
        ConfigField(
            "exchange", "Exchange", default="", help="empty: the default exchange (to a queue)"
        ),
        ConfigField(
            "routing_key",
            "Routing key",
            required=True,
            help="the queue name with the default exchange; {kind} becomes upsert, remove, "
            "event or deletion (e.g. cdp.{kind})",
        ),
        ConfigField("tls", "TLS", "bool", default=False, help="amqps: verify the certificate"),
        ConfigField("username", "Username", "secret", required=True),
        ConfigField("password", "Password", "secret", required=True),
    )
    max_batch = 1_000

    def validate(self, config: dict[str, Any], secrets: dict[str, str]) -> dict[str, list[str]]:
        errors = super().validate(config, secrets)
        host = config.get("host")
        if host and (not isinstance(host, str) or not _HOST_OK.match(host.strip())):
            errors.setdefault("host", []).append("a host name or address, without amqp://")
        port = config.get("port", 5672)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            errors.setdefault("port", []).append("expected a port number (1 to 65535)")
        vhost = config.get("virtual_host", "/")
        if not isinstance(vhost, str) or not vhost or len(vhost) > 255:
            errors.setdefault("virtual_host", []).append("e.g. / (up to 255 characters)")
        exchange = config.get("exchange", "")
        if not isinstance(exchange, str) or len(exchange) > 255 or not _EXCHANGE_OK.match(exchange):
            errors.setdefault("exchange", []).append("letters, digits and _ . : - only")
        key = config.get("routing_key")
        if key not in (None, ""):
            if not isinstance(key, str):
                errors.setdefault("routing_key", []).append("expected text")
            elif "{" in key.replace("{kind}", "") or "}" in key.replace("{kind}", ""):
                errors.setdefault("routing_key", []).append("the only placeholder is {kind}")
            elif len(routing_key(key, "deletion").encode()) > 255:
                errors.setdefault("routing_key", []).append("at most 255 bytes")
        if not isinstance(config.get("tls", False), bool):
            errors.setdefault("tls", []).append("expected true or false")
        return errors

    def send(self, target: Target, items: list[Item]) -> Outcome:
        import pika

        s = _settings(target)
        request = {
            "method": "basic.publish",
            "target": f"amqp{'s' if s['tls'] else ''}://{s['host']}:{s['port']}"
            f"/{s['virtual_host'].lstrip('/')}",
            "exchange": s["exchange"],
            "routing_key": s["routing_key"],
            "items": len(items),
        }
        errors = self.validate(target.config, target.secrets)
        if errors:
            text = "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(errors.items()))
            return Outcome.fail("invalid_config", f"invalid settings: {text}", request=request)
        key = (
            s["host"],
            s["port"],
            s["virtual_host"],
            s["username"],
            s["tls"],
            hashlib.sha256(s["password"].encode()).hexdigest(),
        )
        size = 0
        try:
            link = _link(key, s, target.timeout)
            for item in items:
                body = body_of(item)
                size += len(body)
                # blocks until the broker confirms (ack), returns (unroutable) or nacks
                link.channel.basic_publish(
                    exchange=s["exchange"],
                    routing_key=routing_key(s["routing_key"], item.kind),
                    body=body,
                    properties=pika.BasicProperties(
                        message_id=item.key,
                        content_type="application/json",
                        delivery_mode=pika.DeliveryMode.Persistent,
                        type=item.kind,
                        app_id="cdp",
                    ),
                    mandatory=True,
                )
        except Exception as exc:  # noqa: BLE001 - every failure is classified
            _drop(key)
            outcome = outcome_of(exc, s)
            outcome.error = _scrub(outcome.error, target)
            outcome.request = {**request, "bytes": size}
            return outcome
        request["bytes"] = size
        return Outcome.success(
            request=request, response=f"the broker confirmed {len(items)} message(s)"
        )

    def test(self, target: Target) -> TestResult:
        try:
            result = super().test(target)
        except Exception as exc:  # noqa: BLE001 - the test button reports, never raises
            return TestResult(ok=False, message=_scrub(f"{type(exc).__name__}: {exc}", target))
        if result.ok:
            s = _settings(target)
            result.message = (
                f"the broker at {s['host']}:{s['port']} confirmed a test message to exchange "
                f"{s['exchange'] or '(default)'!r} with routing key "
                f"{routing_key(s['routing_key'], 'event')!r}"
            )
        return result


register(Amqp())
