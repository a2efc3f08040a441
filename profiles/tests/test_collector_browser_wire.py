"""Replays the requests the browser SDKs really send (analytics.js 2.0 and RudderStack's
JavaScript SDK v3, captured in Chromium: browser_wire/README.md) against the collector and the
settings endpoints, byte for byte with their headers: every delivery mode is accepted, every
event is stored exactly once (the SDKs' retries are duplicates), and the page context is kept
as sent."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from profiles.models import Event, FailedEvent, WriteKey
from tests.fixtures import Tenant, sdk_source

CAPTURES = json.loads((Path(__file__).parent / "browser_wire" / "captures.json").read_text())
KEY = "WK_test_123"
SHOP = "http://127.0.0.1:18080"


def replay(client: Client, request: dict[str, Any]) -> Any:
    headers = {k: v for k, v in request["headers"].items() if k != "content-type"}
    headers["Origin"] = SHOP
    if request["method"] == "GET":
        return client.get(request["path"], headers=headers)
    return client.generic(
        "POST",
        request["path"],
        data=request["body"].encode(),
        content_type=request["headers"].get("content-type", "text/plain"),
        headers=headers,
    )


def sent_events(scenario: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for request in CAPTURES[scenario]:
        if request["method"] == "POST":
            body = json.loads(request["body"])
            events += body["batch"] if "batch" in body else [body]
    return events


@pytest.mark.parametrize("scenario", sorted(CAPTURES))
def test_every_delivery_mode_is_stored_exactly_once(
    tenant_a: Tenant, client: Client, scenario: str
) -> None:
    sdk_source(tenant_a.workspace, KEY)
    for request in CAPTURES[scenario]:
        answer = replay(client, request)
        assert answer.status_code == 200, (request["path"], answer.content)
        assert answer["Access-Control-Allow-Origin"] == SHOP
    sent = sent_events(scenario)
    ids = {e["messageId"] for e in sent}
    stored = list(Event.objects.values_list("message_id", flat=True))
    assert sorted(stored) == sorted(ids)  # once each, retries included
    assert not FailedEvent.objects.exists()
    kinds = sorted(Event.objects.values_list("type", flat=True))
    assert kinds == sorted({e["messageId"]: e["type"] for e in sent}.values())
    if scenario.startswith(("seg_std", "rs_std")):
        assert kinds == ["alias", "group", "identify", "page", "track"]


@pytest.mark.parametrize("scenario", ["seg_std", "rs_std"])
def test_page_context_is_kept_as_sent(tenant_a: Tenant, client: Client, scenario: str) -> None:
    sdk_source(tenant_a.workspace, KEY)
    for request in CAPTURES[scenario]:
        replay(client, request)
    sent = {e["messageId"]: e["context"] for e in sent_events(scenario)}
    for event in Event.objects.all():
        context = event.context
        assert context["page"] == sent[event.message_id]["page"]
        assert context["userAgent"].startswith("Mozilla/5.0")
        assert context["locale"] == "en-US"
        assert context["page"]["url"].startswith(SHOP)


def test_consent_from_segments_consent_wrapper_is_kept(tenant_a: Tenant, client: Client) -> None:
    sdk_source(tenant_a.workspace, KEY)
    for request in CAPTURES["seg_consent"]:
        replay(client, request)
    for event in Event.objects.all():
        assert event.context["consent"]["categoryPreferences"] == {"C0001": True, "C0002": False}


def test_segment_settings_point_the_sdk_back_here(tenant_a: Tenant, client: Client) -> None:
    sdk_source(tenant_a.workspace, KEY)
    answer = client.get(f"/v1/projects/{KEY}/settings", headers={"Origin": SHOP})
    assert answer.status_code == 200 and answer["Access-Control-Allow-Origin"] == SHOP
    body = answer.json()
    assert list(body["integrations"]) == ["Segment.io"]  # nothing else to load
    assert body["integrations"]["Segment.io"] | {"apiHost": "x"} == {
        "apiKey": KEY,
        "apiHost": "x",
        "protocol": "http",
        "unbundledIntegrations": [],
        "addBundledMetadata": True,
        "maybeBundledConfigIds": {},
    }
    assert body["integrations"]["Segment.io"]["apiHost"] == "testserver/v1"
    assert body["metrics"] == {"sampleRate": 0}  # no telemetry to api.segment.io
    assert body["remotePlugins"] == [] and body["enabledMiddleware"] == {}


def test_rudder_source_config_has_no_device_mode_destinations(
    tenant_a: Tenant, client: Client
) -> None:
    source = sdk_source(tenant_a.workspace, KEY)
    basic = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    by_header = client.get("/sourceConfig/?p=npm&v=3.34.1", headers={"Authorization": basic})
    by_query = client.get(f"/sourceConfig/?writeKey={KEY}")
    for answer in (by_header, by_query):
        assert answer.status_code == 200
        config = answer.json()["source"]
        assert config["id"] == str(source.pk) and config["enabled"] is True
        assert config["destinations"] == [] and config["writeKey"] == KEY
        assert config["config"]["statsCollection"]["errors"]["enabled"] is False
    source.enabled = False
    source.save()
    from profiles.collector import keys

    keys.forget_all()
    disabled = client.get(f"/sourceConfig/?writeKey={KEY}").json()["source"]
    assert disabled["enabled"] is False  # the SDK says the source is disabled, sends nothing


@pytest.mark.parametrize("key", ["nope", "revoked"])
def test_unknown_or_revoked_keys_get_the_sdks_errors(
    tenant_a: Tenant, client: Client, key: str
) -> None:
    if key == "revoked":
        sdk_source(tenant_a.workspace, KEY)
        WriteKey.objects.filter(key=KEY).update(revoked_at="2026-01-01T00:00:00Z")
        key = KEY
    segment = client.get(f"/v1/projects/{key}/settings", headers={"Origin": SHOP})
    assert segment.status_code == 404
    assert segment.json()["error"]["code"] == "invalid_write_key"
    rudder = client.get(f"/sourceConfig/?writeKey={key}", headers={"Origin": SHOP})
    assert rudder.status_code == 401
    assert rudder.json()["error"]["code"] == "invalid_write_key"
    assert rudder["Access-Control-Allow-Origin"] == SHOP  # the SDK can read why


def test_the_write_key_is_read_from_the_query_on_the_beacon_route_only(
    tenant_a: Tenant, client: Client
) -> None:
    sdk_source(tenant_a.workspace, KEY)
    body = json.dumps({"batch": [{"type": "track", "event": "E", "anonymousId": "a"}]})
    beacon = client.post(f"/beacon/v1/batch?writeKey={KEY}", body, content_type="text/plain")
    assert beacon.status_code == 200
    other = client.post(f"/v1/batch?writeKey={KEY}", body, content_type="text/plain")
    assert other.status_code == 401 and other.json()["error"]["code"] == "missing_write_key"
    assert client.get(f"/beacon/v1/batch?writeKey={KEY}").status_code == 405
