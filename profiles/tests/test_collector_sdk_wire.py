"""Replays every request captured from the four published SDKs (../shared/fixtures/sdk-wire)
against the collector, byte for byte with the recorded headers."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from profiles.models import Event, FailedEvent, PendingEvent
from tests.fixtures import SDK_WIRE, Tenant, sdk_source

SDK_KEYS = ["WK_segment_py", "WK_rudder_py", "WK_segment_node", "WK_rudder_node"]


def captures() -> list[Path]:
    return sorted(SDK_WIRE.rglob("*.json"))


def capture_dirs() -> list[Path]:
    return sorted({p.parent for p in captures()})


def replay(client: Client, capture: Path) -> Any:
    meta = json.loads(capture.read_text())
    body = capture.with_name(capture.name.replace(".json", ".body.bin")).read_bytes()
    headers: dict[str, str] = {}
    content_type = "application/octet-stream"
    for name, value in meta["headers"]:
        lower = name.lower()
        if lower == "content-type":
            content_type = value
        elif lower in ("content-length", "host", "connection"):
            continue
        else:
            headers[name] = value
    return client.generic(
        meta["method"], meta["path"], data=body, content_type=content_type, headers=headers
    )


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.fixture
def sdk_sources(tenant_a: Tenant) -> Tenant:
    for key in SDK_KEYS:
        sdk_source(tenant_a.workspace, key)
    return tenant_a


def test_fixture_set_is_complete() -> None:
    # guards against the fixtures moving: the other tests would pass vacuously
    assert len(captures()) >= 40
    assert {"segment-python", "rudder-python", "segment-node", "rudder-node"} <= {
        d.name for d in SDK_WIRE.iterdir()
    }


@pytest.mark.parametrize("folder", capture_dirs(), ids=lambda p: str(p.relative_to(SDK_WIRE)))
def test_every_capture_is_accepted_and_stored_once(
    folder: Path, sdk_sources: Tenant, client: Client
) -> None:
    expected: dict[str, dict[str, Any]] = {}
    batch_sent_at: dict[str, str | None] = {}
    for capture in sorted(folder.glob("*.json")):
        response = replay(client, capture)
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == "application/json"
        assert response.json()["success"] is True
        decoded = json.loads(capture.read_text())["body"]
        for event in decoded["batch"]:
            # a retry resends the same messageId: the first arrival is the one kept
            expected.setdefault(event["messageId"], event)
            batch_sent_at.setdefault(event["messageId"], decoded.get("sentAt"))

    stored = {e.message_id: e for e in Event.objects.filter(workspace=sdk_sources.workspace)}
    # exactly once: retries of the same messageId are not stored twice
    assert set(stored) == set(expected)
    assert Event.objects.filter(workspace=sdk_sources.workspace).count() == len(expected)
    assert PendingEvent.objects.count() == len(expected)
    assert not FailedEvent.objects.exists()

    for message_id, raw in expected.items():
        event = stored[message_id]
        assert event.type == raw["type"]
        assert event.user_id == raw.get("userId")
        assert event.anonymous_id == raw.get("anonymousId")  # explicit null = absent
        if raw["type"] == "track":
            assert event.event == raw["event"]
            assert event.properties == (raw.get("properties") or {})
        if raw["type"] in ("page", "screen"):
            assert event.name == raw.get("name")
        if raw["type"] == "identify":
            # rudder-python sends identify traits only in context.traits
            traits = raw.get("traits") or raw["context"].get("traits")
            assert event.traits == traits
            assert event.traits["email"] == "a@example.com"
        if raw["type"] == "group":
            assert event.group_id == raw["groupId"]
            assert event.traits == raw["traits"]
        if raw["type"] == "alias":
            assert event.previous_id == raw["previousId"]
        assert event.context["library"] == raw["context"]["library"]
        assert event.integrations == (raw.get("integrations") or {})
        # clock-skew correction: receivedAt - (sentAt - originalTimestamp)
        original = _parse(raw.get("originalTimestamp") or raw["timestamp"])
        sent_at = _parse(raw.get("sentAt") or batch_sent_at[message_id] or "")
        assert event.original_timestamp == original
        assert event.sent_at == sent_at
        if raw.get("originalTimestamp") and raw.get("timestamp"):
            # rudder-node: the caller's explicit timestamp is the event time
            assert event.timestamp == _parse(raw["timestamp"])
        else:
            assert event.timestamp == event.received_at - (sent_at - original)
        assert "writeKey" not in event.extra


@pytest.mark.parametrize(
    "capture",
    [
        "segment-python/001.json",
        "segment-node/001.json",
        "rudder-python/001.json",
        "rudder-node/002.json",
    ],
)
def test_backfilled_event_keeps_its_2020_time(
    capture: str, sdk_sources: Tenant, client: Client
) -> None:
    replay(client, SDK_WIRE / capture)
    event = Event.objects.get(event="Backfilled")
    # placed years back, not "now", whichever way the SDK spells the caller's timestamp
    assert event.timestamp.year in (2020, 2021)
    assert event.timestamp < event.received_at


def test_replaying_every_capture_twice_stores_nothing_new(
    sdk_sources: Tenant, client: Client
) -> None:
    for capture in captures():
        assert replay(client, capture).status_code == 200
    count = Event.objects.count()
    for capture in captures():
        response = replay(client, capture)
        assert response.status_code == 200
        assert response.json()["accepted"] == 0
    assert Event.objects.count() == count


def test_rudder_node_gzip_labelled_form_urlencoded(sdk_sources: Tenant, client: Client) -> None:
    capture = SDK_WIRE / "rudder-node" / "002.json"
    meta = json.loads(capture.read_text())
    assert dict((k.lower(), v) for k, v in meta["headers"])["content-type"] == (
        "application/x-www-form-urlencoded"
    )
    response = replay(client, capture)
    assert response.status_code == 200
    assert response.json()["accepted"] == len(meta["body"]["batch"])


def test_oversize_captures_are_accepted_under_the_default_cap(
    sdk_sources: Tenant, client: Client
) -> None:
    # ~40 KB properties: above Segment's 32 KB, below our default 64 KB per-event cap
    for capture in sorted((SDK_WIRE / "oversize").rglob("*.json")):
        assert replay(client, capture).status_code == 200
    big = Event.objects.filter(workspace=sdk_sources.workspace)
    assert big.count() == len(list((SDK_WIRE / "oversize").rglob("*.json")))
