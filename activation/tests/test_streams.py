"""Event streams: a source's events forwarded through the pipeline — filters, transforms,
consent checked per event, per-profile order."""

from __future__ import annotations

import hashlib

from django.test import Client

from activation.models import Delivery
from activation.streams.services import stream_create
from activation.tests.helpers import drain, webhook
from activation.tests.receiver import receiver
from cdp.errors import ValidationFailed
from tests.fixtures import Tenant, send_events


def test_forwarded_events_are_filtered_transformed_and_consented(tenant_a: Tenant) -> None:
    with receiver() as hook:
        destination = webhook(tenant_a, hook.url, purpose="marketing_email", batch_size=50)
        stream_create(
            workspace=tenant_a.workspace,
            data={
                "name": "Orders",
                "source": tenant_a.source.pk,
                "destination": destination.pk,
                "filters": {
                    "types": ["track"],
                    "events": ["Order Completed"],
                    "where": [{"property": "revenue", "op": "gte", "value": 50}],
                },
                "transform": {
                    "drop": ["card"],
                    "rename": {"revenue": "value"},
                    "hash": ["email", "user_id"],
                },
            },
        )
        yes = {"context": {"consent": {"categoryPreferences": {"marketing_email": True}}}}
        send_events(
            Client(),
            tenant_a,
            {"type": "identify", "userId": "ann", "traits": {"email": "ann@example.com"}, **yes},
            *[
                {
                    "type": "track",
                    "userId": "ann",
                    "event": "Order Completed",
                    "properties": {
                        "revenue": r,
                        "card": "4111",
                        "email": "ann@example.com",
                        "n": n,
                    },
                }
                for n, r in enumerate([60, 20, 75, "90"])
            ],
            {
                "type": "track",
                "userId": "ann",
                "event": "Product Viewed",
                "properties": {"revenue": 99},
            },
            {
                "type": "track",
                "userId": "bob",
                "event": "Order Completed",
                "properties": {"revenue": 500},
            },  # no consent for marketing email: not sent
        )
        drain(destination)
        items = hook.accepted_items()
        # in order; "90" is a number to a number operator (profiles.coercion), 20 is below 50
        assert [i["data"]["properties"]["n"] for i in items] == [0, 2, 3]
        first = items[0]["data"]
        assert first["event"] == "Order Completed" and "card" not in first["properties"]
        assert first["properties"]["value"] == 60 and "revenue" not in first["properties"]
        assert first["properties"]["email"] == hashlib.sha256(b"ann@example.com").hexdigest()
        assert first["userId"] == hashlib.sha256(b"ann").hexdigest()
        assert items[0]["type"] == "event" and items[0]["profile_id"] == first["profileId"]
        assert Delivery.objects.filter(kind="event").count() == 3


def test_bad_filters_name_the_path(tenant_a: Tenant) -> None:
    with receiver() as hook:
        destination = webhook(tenant_a, hook.url)
        try:
            stream_create(
                workspace=tenant_a.workspace,
                data={
                    "name": "Bad",
                    "source": tenant_a.source.pk,
                    "destination": destination.pk,
                    "filters": {
                        "types": ["click"],
                        "where": [{"property": "revenue", "op": "gte", "value": "x"}],
                    },
                    "transform": {"rename": ["a"]},
                },
            )
        except ValidationFailed as exc:
            assert set(exc.fields) >= {"filters.types", "transform.rename"}
            assert any(k.startswith("filters.where") for k in exc.fields), exc.fields
        else:
            raise AssertionError("accepted")
