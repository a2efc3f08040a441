"""Shared set-up for the destination-kind tests (files, amqp, postgres): destinations made
through the service, an audience synced to them, items built by hand for calling a
connector directly, a deletion run through the privacy request flow, and a tiny HTTP
server that answers like an overloaded S3."""

from __future__ import annotations

import importlib
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.test import Client

from activation import services
from activation.connectors.base import Item, Target
from activation.delivery import engine
from activation.models import Delivery, Destination, Sync
from activation.tests.helpers import people, pro_segment, run, sync_of
from consent import privacy
from consent.services import purposes_install_defaults
from tests.fixtures import Tenant, send_events

MAPPING = {
    "identifiers": [{"type": "email", "hash": "sha256"}, {"type": "user_id"}],
    "fields": [{"trait": "first_name", "as": "firstName"}, {"trait": "plan"}],
}


def destination(
    tenant: Tenant, kind: str, config: dict[str, Any], *, name: str | None = None, **policy: Any
) -> Destination:
    purposes_install_defaults(workspace=tenant.workspace)
    # the registry loads the kinds only while none is registered, and anything importing
    # webhook (destination_create does) registers it first: import the kind itself
    importlib.import_module(f"activation.connectors.{kind}")
    made, _ = services.destination_create(
        workspace=tenant.workspace,
        data={
            "name": name or f"{kind} destination",
            "kind": kind,
            "purpose": "analytics",
            "config": config,
            "retry_base_seconds": policy.pop("retry_base_seconds", 0.05),
            "retry_max_seconds": policy.pop("retry_max_seconds", 0.2),
            **policy,
        },
    )
    return made


def target(destination: Destination) -> Target:
    return engine.target_of(destination)


def audience_sync(tenant: Tenant, destination: Destination, n: int = 5) -> Sync:
    """`n` people on the pro plan, the segment of them, a mirror sync to `destination`, and
    its initial run planned (not yet sent)."""
    people(tenant, n)
    sync = sync_of(tenant, pro_segment(tenant), destination, mapping=MAPPING, mode="mirror")
    first = run(sync)
    assert first is not None and first.added == n
    return sync


def leave(tenant: Tenant, *user_ids: str) -> None:
    """The people move to the free plan: they leave the pro segment."""
    send_events(
        Client(),
        tenant,
        *[{"type": "identify", "userId": u, "traits": {"plan": "free"}} for u in user_ids],
    )


def delete_person(tenant: Tenant, user_id: str) -> None:
    """A privacy deletion, requested, approved and run: deletion notices are queued for
    every destination that holds the person."""
    request = privacy.privacy_request_create(
        workspace=tenant.workspace, type="delete", identifier=f"user_id:{user_id}"
    )
    privacy.privacy_request_approve(request=request)
    done = privacy.privacy_request_execute(request_id=request.pk)
    assert done is not None and done.status == "completed", done and done.error


def statuses(destination: Destination) -> list[tuple[str, str, int]]:
    """Each delivery's (status, reason, attempts) in outbox order: a bulk row once per item
    (one split into rows of their own not at all)."""
    out: list[tuple[str, str, int]] = []
    for row in Delivery.objects.filter(destination=destination).order_by("id"):
        if row.kind != "bulk":
            out.append((row.status, row.reason, row.attempts))
        elif row.reason != "split":
            out.extend([(row.status, row.reason, row.attempts)] * len(row.profile_ids or []))
    return out


def item(kind: str, payload: dict[str, Any], *, delivery_id: int, profile_id: int | None) -> Item:
    return Item(delivery_id, str(uuid.uuid4()), kind, profile_id, payload)


def upsert(delivery_id: int, profile_id: int, email: str, audience: str = "vip") -> Item:
    return item(
        "upsert",
        {
            "sync": 1,
            "audience": {"id": 1, "key": audience, "name": audience.title()},
            "op": "upsert",
            "identifiers": {"email": [email]},
            "added": {"email": [email]},
            "removed": {},
            "fields": {"plan": "pro"},
            "fields_hash": "x",
            "state": [f"email:{email}"],
        },
        delivery_id=delivery_id,
        profile_id=profile_id,
    )


def event(delivery_id: int, profile_id: int, name: str = "Order Completed") -> Item:
    return item(
        "event",
        {
            "type": "track",
            "event": name,
            "messageId": str(uuid.uuid4()),
            "timestamp": "2026-01-02T03:04:05+00:00",
            "properties": {"total": 12.5},
            "userId": f"user-{profile_id}",
            "anonymousId": None,
            "profileId": profile_id,
            "context": {},
        },
        delivery_id=delivery_id,
        profile_id=profile_id,
    )


def deletion(delivery_id: int, *profile_ids: int) -> Item:
    return item(
        "deletion",
        {
            "profile_ids": list(profile_ids),
            "identifiers": {"email_sha256": ["ab" * 32]},
            "request": 7,
        },
        delivery_id=delivery_id,
        profile_id=None,
    )


def closed_port() -> int:
    """A local port nobody listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def answering(status: int, body: bytes, content_type: str = "application/xml") -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 answering every request with `status` and `body`
    (an S3 endpoint that is overloaded or down). Yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
