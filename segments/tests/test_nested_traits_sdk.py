"""Nested traits and numbers sent as text, on the four published SDKs' real requests
(../shared/fixtures/sdk-wire): every capture is replayed byte for byte, then each SDK's own
identify call is sent again in its own wire format (its headers, its gzip, its `context`
objects — rudder-python's traits only in `context.traits`) carrying Segment's reserved
`address` object and a `company` whose size arrives as a number from one SDK and as text
from another. Rules on `address.city`, `company.employees` and the SDKs' nested properties
are then previewed and published through the API."""

from __future__ import annotations

import copy
import gzip
import json
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.test import Client

from profiles.collector.normalize import EVENT_TYPES
from profiles.models import Profile
from profiles.pipeline import queue
from segments.selectors import builder_suggestions
from tests.fixtures import SDK_WIRE, Tenant, sdk_source

SDK_KEYS = {
    "segment-python": "WK_segment_py",
    "rudder-python": "WK_rudder_py",
    "segment-node": "WK_segment_node",
    "rudder-node": "WK_rudder_node",
}
# what each SDK's customer sends: the city, and the company size (number or text)
PEOPLE = {
    "segment-python": ("Berlin", "10115", 250),
    "rudder-python": ("Berlin", "10117", "250"),
    "segment-node": ("Paris", "75001", " 40 "),
    "rudder-node": ("Paris", "75002", 12),
}
assert set(EVENT_TYPES) >= {"identify", "track"}


def _post(client: Client, meta: dict[str, Any], body: bytes) -> Any:
    headers: dict[str, str] = {}
    content_type = "application/octet-stream"
    for name, value in meta["headers"]:
        lower = name.lower()
        if lower == "content-type":
            content_type = value
        elif lower not in ("content-length", "host", "connection"):
            headers[name] = value
    return client.generic(
        meta["method"], meta["path"], data=body, content_type=content_type, headers=headers
    )


def _gzipped(meta: dict[str, Any]) -> bool:
    return any(n.lower() == "content-encoding" and v.lower() == "gzip" for n, v in meta["headers"])


def _identify_capture(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The SDK's first request that carries an identify call, and that call."""
    for capture in sorted(folder.glob("*.json")):
        meta = json.loads(capture.read_text())
        for message in meta["body"].get("batch", []):
            if message["type"] == "identify":
                return meta, message
    raise AssertionError(f"no identify call captured in {folder}")


def _resend_identify(client: Client, sdk: str, user_id: str, extra: dict[str, Any]) -> None:
    """The SDK's captured identify call, resent in its wire format with more traits."""
    meta, captured = _identify_capture(SDK_WIRE / sdk)
    message = copy.deepcopy(captured)
    message["userId"] = user_id
    message["anonymousId"] = None if "anonymousId" in message else message.get("anonymousId")
    message["messageId"] = str(uuid.uuid4())
    # where this SDK puts the traits: rudder-python only in context.traits
    holder = message["traits"] if "traits" in message else message["context"]["traits"]
    holder.update(extra, email=f"{user_id}@example.com")
    if "traits" in message and "traits" in message.get("context", {}):
        message["context"]["traits"] = dict(message["traits"])
    body = {**meta["body"], "batch": [message]}
    raw = orjson.dumps(body)
    response = _post(client, meta, gzip.compress(raw) if _gzipped(meta) else raw)
    assert response.status_code == 200, response.content


@pytest.fixture
def shoppers(tenant_a: Tenant, client: Client) -> Tenant:
    for key in SDK_KEYS.values():
        sdk_source(tenant_a.workspace, key)
    for sdk in SDK_KEYS:  # the real requests, byte for byte
        for capture in sorted((SDK_WIRE / sdk).glob("*.json")):
            body = capture.with_name(capture.name.replace(".json", ".body.bin")).read_bytes()
            assert _post(client, json.loads(capture.read_text()), body).status_code == 200
    for sdk, (city, postal, size) in PEOPLE.items():
        address = {"city": city, "country": "DE", "postalCode": postal, "street": "Main St 1"}
        _resend_identify(
            client, sdk, f"{sdk}-buyer", {"address": address, "company": {"employees": size}}
        )
    queue.drain()
    return tenant_a


def preview(tenant: Tenant, rule: dict[str, Any]) -> dict[str, Any]:
    response = tenant.api().post(
        "/api/v1/segments/preview/", {"rule": rule}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def users(tenant: Tenant, body: dict[str, Any]) -> set[str]:
    ids = [p["id"] for p in body["sample"]]
    return {
        i.value
        for p in Profile.objects.filter(pk__in=ids)
        for i in p.identities.filter(type="user_id")
    }


def test_every_sdk_nested_address_is_matched_by_its_dotted_path(shoppers: Tenant) -> None:
    berlin = preview(shoppers, {"trait": "address.city", "op": "eq", "value": "Berlin"})
    assert berlin["count"] == 2
    assert users(shoppers, berlin) == {"segment-python-buyer", "rudder-python-buyer"}
    starts = {"trait": "address.postalCode", "op": "starts_with", "value": "7500"}
    assert preview(shoppers, starts)["count"] == 2
    # the captured profile (u-1) has no address: "is not" counts it, "is set" does not
    assert preview(shoppers, {"trait": "address.city", "op": "exists"})["count"] == 4
    not_berlin = preview(shoppers, {"trait": "address.city", "op": "neq", "value": "Berlin"})
    assert not_berlin["count"] == Profile.objects.filter(merged_into=None).count() - 2


def test_sizes_sent_as_numbers_and_as_text_are_compared_alike(shoppers: Tenant) -> None:
    """250 (segment-python) and "250" (rudder-python) are both ≥ 100; " 40 " is 40."""
    big = preview(shoppers, {"trait": "company.employees", "op": "gte", "value": 100})
    assert users(shoppers, big) == {"segment-python-buyer", "rudder-python-buyer"}
    mid = preview(shoppers, {"trait": "company.employees", "op": "between", "value": [20, 50]})
    assert users(shoppers, mid) == {"segment-node-buyer"}
    assert preview(shoppers, {"trait": "company.employees", "op": "eq", "value": 250})["count"] == 2
    # equality with text is exact: only the SDK that sent the text "250"
    text = preview(shoppers, {"trait": "company.employees", "op": "eq", "value": "250"})
    assert users(shoppers, text) == {"rudder-python-buyer"}


def test_the_builder_offers_the_nested_paths_with_their_types(shoppers: Tenant) -> None:
    suggestions = builder_suggestions(workspace=shoppers.workspace, exclude_segment=None)
    traits = {t["name"]: t for t in suggestions["traits"]}
    assert traits["address.city"]["type"] == "string"
    assert traits["address.postalCode"]["type"] == "number"  # all of its text is numeric
    employees = traits["company.employees"]
    assert employees["type"] == "number"
    assert employees["mixed"] == "number 50 %, text 50 %"
    assert employees["text_values"] == employees["text_numbers"] == 2
    # the SDKs' own nested objects: properties of the captured track calls
    assert {"revenue", "currency"} <= {
        p["name"] for p in suggestions["properties"]["Order Completed"]
    }


def test_a_published_segment_on_a_nested_trait_keeps_its_members(shoppers: Tenant) -> None:
    api = shoppers.api()
    created = api.post(
        "/api/v1/segments/",
        {"name": "Berlin buyers", "key": "berlin", "rule": {"all": [
            {"trait": "address.city", "op": "eq", "value": "Berlin"},
            {"trait": "company.employees", "op": "gt", "value": 99},
        ]}},
        content_type="application/json",
    )  # fmt: skip
    assert created.status_code == 201, created.content
    segment_id = created.json()["id"]
    published = api.post(
        f"/api/v1/segments/{segment_id}/publish/", {}, content_type="application/json"
    )
    assert published.status_code == 200, published.content
    members = api.get(f"/api/v1/segments/{segment_id}/members/").json()
    assert members["count"] == 2
