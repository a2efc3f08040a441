"""Every operation of the OpenAPI schema, fuzzed by schemathesis (fixed seed, small budget):
no 5xx, every answer's status code, content type, headers and body as the schema documents
them, and schema-violating input (wrong types, out-of-enum values, missing bodies) refused.
Half the cases of an operation on an object address a real one (a workspace with a profile,
events, a dead letter, a published segment, a computed trait, a privacy request, keys), the
others a generated id.

Not checked: that every schema-valid body is accepted (`positive_data_acceptance`) — the
services' rules (a `sum` needs a `property`, a rule's operator fits its value) go beyond what
OpenAPI can say; they answer 400 `validation_failed` with the path, which is documented."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from activation.models import Delivery
from activation.services import destination_create, server_key_create
from activation.streams.services import stream_create
from activation.syncs.services import sync_create
from cdp.models import ApiToken, Role
from consent.privacy import privacy_request_create
from consent.services import purpose_create, purposes_install_defaults
from profiles.models import ComputedTrait, Event, FailedEvent, Identity
from segments.services import segment_create, segment_publish
from tests.fixtures import Tenant, post_collector, send_events

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
# unknown query parameters are ignored (cache busters such as `_=1712…` stay harmless); wrong
# types and out-of-range or out-of-enum values of the documented ones are refused
schema.config.generation.update(allow_extra_parameters=False)
_calls = itertools.count()


@contextmanager
def transaction_kept() -> Iterator[None]:
    """As Django's test client does: the test's transaction survives each request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def world(tenant_a: Tenant) -> dict[str, dict[str, int]]:
    """Real objects for the operations on one: {first path segment: {path parameter: id}}."""
    client = Client()
    now = datetime.now(UTC).isoformat()
    send_events(
        client,
        tenant_a,
        {"type": "identify", "userId": "u-1", "traits": {"email": "ada@example.com"}},
        {"type": "track", "userId": "u-1", "event": "Order Completed", "timestamp": now,
         "properties": {"revenue": 30}},
        {"type": "identify", "anonymousId": "anon-9", "userId": "u-2"},
    )  # fmt: skip
    post_collector(client, "/v1/batch", {"batch": [{}]}, write_key=tenant_a.write_key)
    workspace = tenant_a.workspace
    owner = tenant_a.users[Role.OWNER]
    trait = ComputedTrait.objects.create(
        workspace=workspace, key="spend", name="Spend", aggregation="sum",
        event="Order Completed", property="revenue", created_at=now, updated_at=now,
    )  # fmt: skip
    segment = segment_create(
        workspace=workspace, name="Spenders", rule={"trait": "spend", "op": "gt", "value": 0}
    )
    segment_publish(segment=segment)
    purpose_create(workspace=workspace, key="marketing", name="Marketing", legal_basis="consent")
    request = privacy_request_create(workspace=workspace, type="export", identifier="user_id:u-2")
    token = ApiToken.objects.create(workspace=workspace, user=owner, name="spare")
    profile = Identity.objects.get(workspace=workspace, type="user_id", value="u-1").profile_id
    purposes_install_defaults(workspace=workspace)
    destination, _ = destination_create(
        workspace=workspace,
        data={"name": "Hook", "kind": "webhook", "purpose": "analytics",
              "config": {"url": "http://127.0.0.1:9/closed"}, "timeout_seconds": 1},
    )  # fmt: skip
    sync = sync_create(
        workspace=workspace,
        data={"name": "S", "segment": segment.pk, "destination": destination.pk},
    )
    stream = stream_create(
        workspace=workspace,
        data={"name": "All", "source": tenant_a.source.pk, "destination": destination.pk},
    )
    delivery = Delivery.objects.create(
        workspace_id=workspace.pk, destination=destination, kind="event", profile_id=profile,
        payload={"type": "track"}, status="dead", reason="http_400",
    )  # fmt: skip
    return {
        "destinations": {"id": destination.pk},
        "syncs": {"id": sync.pk},
        "streams": {"id": stream.pk},
        "deliveries": {"id": delivery.pk},
        "computed-traits": {"id": trait.pk},
        "events": {"id": Event.objects.filter(workspace=workspace).latest("id").pk},
        "failed-events": {"id": FailedEvent.objects.get(workspace=workspace).pk},
        "privacy": {"id": request.pk},
        "profiles": {"id": profile},
        "segments": {"id": segment.pk, "user_id": tenant_a.users[Role.MARKETER].pk, "number": 1},
        "server-keys": {"id": server_key_create(workspace=workspace, name="spare").pk},
        "sources": {"id": tenant_a.source.pk, "key_id": tenant_a.source.write_keys.get().pk},
        "tokens": {"id": token.pk},
    }


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("CDP_FUZZ_EXAMPLES", "12")),
    derandomize=os.environ.get("CDP_FUZZ_RANDOM") != "1",  # the same cases on every run
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api(case: Any, tenant_a: Tenant, world: dict[str, dict[str, int]]) -> None:
    meta = case._meta  # a negative case keeps its generated (invalid) ids
    positive = meta is None or meta.generation.mode == GenerationMode.POSITIVE
    if case.path_parameters and positive and next(_calls) % 2 == 0:
        resource = case.path.removeprefix("/api/v1/").split("/")[0]
        real = {
            name: str(value)
            for name, value in world.get(resource, {}).items()
            if name in case.path_parameters
        }
        case.path_parameters = {**case.path_parameters, **real}
    with transaction_kept():
        case.call_and_validate(
            headers={"Authorization": f"Token {tenant_a.tokens[Role.OWNER]}"},
            excluded_checks=[positive_data_acceptance],
        )
