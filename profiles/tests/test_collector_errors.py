"""Bad input: each kind gets its specified answer, and nothing else is lost or changed."""

from __future__ import annotations

import gzip
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from django.test import Client

from profiles import services
from profiles.models import Event, FailedEvent, FailedEventStatus, PendingEvent
from tests.fixtures import Tenant, post_collector


def track(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "track",
        "event": "Order Completed",
        "userId": "u-1",
        "properties": {"revenue": 10},
        "messageId": str(uuid.uuid4()),
        "timestamp": "2026-11-23T10:00:00Z",
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not ...}


def batch(*events: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"batch": list(events), **top}


def stored() -> int:
    return Event.objects.count()


def test_bad_json_is_400_and_kept_in_failed_events(tenant_a: Tenant, client: Client) -> None:
    response = post_collector(client, "/v1/batch", b'{"batch": [', write_key=tenant_a.write_key)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    failed = FailedEvent.objects.get()
    assert failed.reason == "invalid_json"
    assert failed.raw == '{"batch": ['
    assert failed.workspace_id == tenant_a.workspace.pk
    assert stored() == 0


def test_bad_json_without_any_key_is_400(client: Client, db: Any) -> None:
    response = post_collector(client, "/v1/batch", b"not json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_bad_gzip_is_400(tenant_a: Tenant, client: Client) -> None:
    response = post_collector(
        client,
        "/v1/batch",
        b"\x1f\x8bnot really gzip",
        write_key=tenant_a.write_key,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_gzip"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"batch": []}, "empty_batch"),
        ({"sentAt": "2026-11-23T10:00:00Z"}, "missing_batch"),
        ({"batch": {"type": "track"}}, "invalid_batch"),
        ("just a string", "no_batch"),
    ],
)
def test_nothing_usable_is_400(tenant_a: Tenant, client: Client, body: Any, code: str) -> None:
    response = post_collector(client, "/v1/batch", body, write_key=tenant_a.write_key)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert stored() == 0


def test_event_without_ids_is_dead_lettered_and_neighbours_accepted(
    tenant_a: Tenant, client: Client
) -> None:
    good = [track() for _ in range(99)]
    bad = track(userId=None)
    response = post_collector(
        client, "/v1/batch", batch(*good[:50], bad, *good[50:]), write_key=tenant_a.write_key
    )
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 99 and body["failed"] == 1
    assert body["errors"] == [
        {
            "index": 50,
            "reason": "missing_identity",
            "message": "neither userId nor anonymousId is set",
        }
    ]
    assert stored() == 99
    failed = FailedEvent.objects.get()
    assert failed.reason == "missing_identity"
    assert failed.payload == bad
    assert failed.source_id == tenant_a.source.pk


def test_single_invalid_event_is_400_but_kept(tenant_a: Tenant, client: Client) -> None:
    response = post_collector(
        client, "/v1/track", {"userId": "u-1", "properties": {}}, write_key=tenant_a.write_key
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "no_valid_events"
    assert "event name" in error["message"]
    assert FailedEvent.objects.get().reason == "missing_field"


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (track(type="purchase"), "unknown_type"),
        (track(type=None), "unknown_type"),
        ([1, 2, 3], "not_an_object"),
        (track(userId={"id": 1}), "invalid_field"),
        (track(userId="x" * 300), "invalid_field"),
        (track(properties=[1, 2]), "invalid_field"),
        (track(event=""), "missing_field"),
        ({"type": "group", "userId": "u-1"}, "missing_field"),
        ({"type": "alias", "userId": "u-1"}, "missing_field"),
        (track(timestamp="yesterday-ish"), "invalid_timestamp"),
        (track(originalTimestamp="2026-13-45T99:00:00Z"), "invalid_timestamp"),
        (track(sentAt={"when": "now"}), "invalid_timestamp"),
    ],
)
def test_each_invalid_event_gets_its_reason(
    tenant_a: Tenant, client: Client, event: Any, reason: str
) -> None:
    response = post_collector(
        client, "/v1/batch", batch(event, track()), write_key=tenant_a.write_key
    )
    assert response.status_code == 200
    assert response.json()["failed"] == 1
    assert response.json()["errors"][0]["reason"] == reason
    assert stored() == 1
    assert FailedEvent.objects.get().reason == reason


def test_bad_batch_level_sent_at_dead_letters_with_reason(tenant_a: Tenant, client: Client) -> None:
    response = post_collector(
        client, "/v1/batch", batch(track(), sentAt="not a date"), write_key=tenant_a.write_key
    )
    assert response.status_code == 400
    assert FailedEvent.objects.get().reason == "invalid_timestamp"


def test_oversize_event_is_dead_lettered_then_replayed_after_raising_the_cap(
    tenant_a: Tenant, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    big = track(properties={"blob": "x" * 70_000})
    response = post_collector(
        client, "/v1/batch", batch(big, track()), write_key=tenant_a.write_key
    )
    assert response.status_code == 200
    assert response.json()["errors"][0]["reason"] == "event_too_large"
    failed = FailedEvent.objects.get()
    assert stored() == 1

    with pytest.raises(Exception, match="per event"):
        services.failed_event_replay(failed=failed)
    failed.refresh_from_db()
    assert failed.status == FailedEventStatus.FAILED
    assert failed.replay_attempts == 1

    with django_capture_on_commit_callbacks(execute=True):
        services.source_update(source=tenant_a.source, max_event_bytes=256 * 1024)
    api = tenant_a.api()
    response = api.post(f"/api/v1/failed-events/{failed.pk}/replay/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "replayed"
    event = Event.objects.get(message_id=big["messageId"])
    assert len(event.properties["blob"]) == 70_000
    assert PendingEvent.objects.filter(event_id=event.pk).exists()
    # a second replay is refused, not stored twice
    again = api.post(f"/api/v1/failed-events/{failed.pk}/replay/")
    assert again.status_code == 409
    assert Event.objects.filter(message_id=big["messageId"]).count() == 1


def test_oversize_request_is_413(tenant_a: Tenant, client: Client, settings: Any) -> None:
    settings.CDP_MAX_REQUEST_BYTES = 100_000
    events = [track(properties={"pad": "y" * 1000}) for _ in range(120)]
    response = post_collector(client, "/v1/batch", batch(*events), write_key=tenant_a.write_key)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert stored() == 0
    # a sample is kept so the debugger can show what was refused
    assert FailedEvent.objects.get().reason == "request_too_large"


def test_gzip_bomb_is_413_without_inflating_it(
    tenant_a: Tenant, client: Client, settings: Any
) -> None:
    settings.CDP_MAX_REQUEST_BYTES = 1_000_000
    bomb = gzip.compress(b'{"batch": [' + b" " * 50_000_000 + b"]}")
    assert len(bomb) < 100_000
    response = client.post(
        "/v1/batch",
        data=bomb,
        content_type="application/json",
        HTTP_CONTENT_ENCODING="gzip",
        HTTP_AUTHORIZATION="Basic " + __import__("base64").b64encode(b"WK_alpha_main:").decode(),
    )
    assert response.status_code == 413


def test_gzip_detected_by_magic_bytes_without_header(tenant_a: Tenant, client: Client) -> None:
    raw = gzip.compress(orjson.dumps(batch(track())))
    response = post_collector(
        client,
        "/v1/batch",
        raw,
        write_key=tenant_a.write_key,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert stored() == 1


@pytest.mark.parametrize("key", [None, "WK_nope", ""])
def test_missing_or_unknown_key_is_401(tenant_a: Tenant, client: Client, key: str | None) -> None:
    response = post_collector(client, "/v1/batch", batch(track()), write_key=key)
    assert response.status_code == 401
    assert response.json()["error"]["code"] in ("missing_write_key", "invalid_write_key")
    assert stored() == 0
    assert not FailedEvent.objects.exists()


def test_revoked_key_is_401_and_rotated_key_works(
    tenant_a: Tenant, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    old = tenant_a.write_key
    assert post_collector(client, "/v1/track", track(), write_key=old).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        new = services.write_key_rotate(source=tenant_a.source, revoke_old=True)
    response = post_collector(client, "/v1/track", track(), write_key=old)
    assert response.status_code == 401
    assert post_collector(client, "/v1/track", track(), write_key=new.key).status_code == 200
    assert stored() == 2


def test_disabled_source_is_401(
    tenant_a: Tenant, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        services.source_update(source=tenant_a.source, enabled=False)
    response = post_collector(client, "/v1/track", track(), write_key=tenant_a.write_key)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "source_disabled"


def test_key_of_another_workspace_writes_only_there(
    tenant_a: Tenant, tenant_b: Tenant, client: Client
) -> None:
    message_id = str(uuid.uuid4())
    response = post_collector(
        client, "/v1/track", track(messageId=message_id), write_key=tenant_b.write_key
    )
    assert response.status_code == 200
    event = Event.objects.get(message_id=message_id)
    assert event.workspace_id == tenant_b.workspace.pk
    # A cannot see it; the same messageId in A is a different event, not a duplicate
    listing = tenant_a.api().get(f"/api/v1/events/?message_id={message_id}").json()
    assert listing["count"] == 0
    response = post_collector(
        client, "/v1/track", track(messageId=message_id), write_key=tenant_a.write_key
    )
    assert response.json()["accepted"] == 1
    assert Event.objects.filter(message_id=message_id).count() == 2


def test_body_key_does_not_override_the_header_key(
    tenant_a: Tenant, tenant_b: Tenant, client: Client
) -> None:
    response = post_collector(
        client,
        "/v1/batch",
        batch(track(writeKey=tenant_b.write_key), writeKey=tenant_b.write_key),
        write_key=tenant_a.write_key,
    )
    assert response.status_code == 200
    assert Event.objects.get().workspace_id == tenant_a.workspace.pk


def test_per_event_keys_that_disagree_are_refused(
    tenant_a: Tenant, tenant_b: Tenant, client: Client
) -> None:
    response = post_collector(
        client,
        "/v1/batch",
        batch(track(writeKey=tenant_a.write_key), track(writeKey=tenant_b.write_key)),
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "mixed_write_keys"
    assert stored() == 0


def test_duplicate_resend_is_200_and_stored_once(tenant_a: Tenant, client: Client) -> None:
    body = batch(track(), track())
    first = post_collector(client, "/v1/batch", body, write_key=tenant_a.write_key).json()
    second = post_collector(client, "/v1/batch", body, write_key=tenant_a.write_key)
    assert second.status_code == 200
    assert first["accepted"] == 2
    assert second.json()["accepted"] == 0 and second.json()["duplicates"] == 2
    assert stored() == 2
    assert PendingEvent.objects.count() == 2


def test_duplicate_inside_one_batch_is_stored_once(tenant_a: Tenant, client: Client) -> None:
    event = track()
    response = post_collector(
        client, "/v1/batch", batch(event, event), write_key=tenant_a.write_key
    )
    assert response.json() == {"success": True, "accepted": 1, "duplicates": 1, "failed": 0}
    assert stored() == 1


def test_flood_past_the_rate_limit_is_429_with_retry_after(
    tenant_a: Tenant, client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        services.source_update(source=tenant_a.source, rate_limit_per_second=250)
    statuses = []
    accepted = 0
    for _ in range(10):
        response = post_collector(
            client, "/v1/batch", batch(*[track() for _ in range(100)]), write_key=tenant_a.write_key
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response["Retry-After"] == "1"
            assert response.json()["error"]["code"] == "rate_limited"
        else:
            accepted += response.json()["accepted"]
    assert 429 in statuses
    assert statuses.count(200) >= 2
    # refused requests stored nothing; accepted ones are all there
    assert stored() == accepted
    # another source of the same workspace has its own budget
    other = services.source_create(workspace=tenant_a.workspace, name="other")
    key = other.write_keys.get().key
    assert post_collector(client, "/v1/track", track(), write_key=key).status_code == 200


def test_missing_message_id_is_generated_and_dedups_retries(
    tenant_a: Tenant, client: Client
) -> None:
    event = track(messageId=None)
    for _ in range(2):
        response = post_collector(client, "/v1/batch", batch(event), write_key=tenant_a.write_key)
        assert response.status_code == 200
    stored_event = Event.objects.get()
    assert stored_event.message_id.startswith("cdp-")
    # without its own timestamp an event cannot be told from a genuine repeat: random ids
    event = track(messageId=None, timestamp=None)
    for _ in range(2):
        post_collector(client, "/v1/batch", batch(event), write_key=tenant_a.write_key)
    assert stored() == 3


def test_nulls_are_absent_and_batch_context_is_merged(tenant_a: Tenant, client: Client) -> None:
    body = batch(
        track(anonymousId=None, context={"ip": "1.2.3.4", "library": {"version": "9"}}),
        context={"library": {"name": "my-lib", "version": "1"}, "locale": "de-DE"},
        integrations={"All": False},
    )
    post_collector(client, "/v1/batch", body, write_key=tenant_a.write_key)
    event = Event.objects.get()
    assert event.anonymous_id is None
    assert event.context == {
        "ip": "1.2.3.4",
        "library": {"name": "my-lib", "version": "9"},
        "locale": "de-DE",
    }
    assert event.integrations == {"All": False}


def test_skew_correction_and_future_timestamps(tenant_a: Tenant, client: Client) -> None:
    now = datetime.now(tz=UTC)
    # device clock 2 hours fast: created 5 s before sending, by its own clock
    device_now = now + timedelta(hours=2)
    skewed = track(
        timestamp=(device_now - timedelta(seconds=5)).isoformat(), sentAt=device_now.isoformat()
    )
    future = track(timestamp=(now + timedelta(days=3)).isoformat())
    post_collector(client, "/v1/batch", batch(skewed, future), write_key=tenant_a.write_key)
    corrected = Event.objects.get(message_id=skewed["messageId"])
    delta = corrected.received_at - corrected.timestamp
    assert timedelta(seconds=4) < delta < timedelta(seconds=6)
    clamped = Event.objects.get(message_id=future["messageId"])
    assert clamped.timestamp == clamped.received_at
    assert "future" in clamped.extra["_cdp_warning"]


def test_numeric_ids_and_epoch_timestamps_are_accepted(tenant_a: Tenant, client: Client) -> None:
    event = track(userId=12345, messageId=987, timestamp=1_700_000_000_000)
    response = post_collector(client, "/v1/batch", batch(event), write_key=tenant_a.write_key)
    assert response.status_code == 200
    stored_event = Event.objects.get()
    assert stored_event.user_id == "12345"
    assert stored_event.message_id == "987"
    assert stored_event.original_timestamp == datetime.fromtimestamp(1_700_000_000, tz=UTC)


@pytest.mark.parametrize(
    ("path", "event"),
    [
        ("/v1/identify", {"userId": "u", "traits": {"plan": "pro"}}),
        ("/v1/track", {"userId": "u", "event": "Clicked"}),
        ("/v1/page", {"anonymousId": "a", "name": "Home"}),
        ("/v1/screen", {"anonymousId": "a", "name": "Welcome"}),
        ("/v1/group", {"userId": "u", "groupId": "g"}),
        ("/v1/alias", {"userId": "u", "previousId": "a"}),
    ],
)
@pytest.mark.parametrize("slash", ["", "/"])
def test_single_event_routes_take_the_type_from_the_path(
    tenant_a: Tenant, client: Client, path: str, event: dict[str, Any], slash: str
) -> None:
    body = {**event, "type": "ignored", "writeKey": tenant_a.write_key}
    response = post_collector(client, path + slash, body)
    assert response.status_code == 200, response.content
    assert Event.objects.get().type == path.rsplit("/", 1)[1]


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/batch/", "/v1/import", "/v1/import/"])
def test_batch_and_import_routes(tenant_a: Tenant, client: Client, path: str) -> None:
    response = post_collector(client, path, batch(track()), write_key=tenant_a.write_key)
    assert response.status_code == 200
    assert stored() == 1


def test_get_is_405_json(client: Client, db: Any) -> None:
    response = client.get("/v1/batch")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "auth",
    ["Basic {b64}", "Basic {b64nocolon}", "Bearer {key}", "basic {b64}"],
)
def test_auth_header_forms(tenant_a: Tenant, client: Client, auth: str) -> None:
    import base64

    key = tenant_a.write_key
    header = auth.format(
        b64=base64.b64encode(f"{key}:".encode()).decode(),
        b64nocolon=base64.b64encode(key.encode()).decode(),
        key=key,
    )
    response = client.post(
        "/v1/batch",
        data=orjson.dumps(batch(track())),
        content_type="application/json",
        HTTP_AUTHORIZATION=header,
    )
    assert response.status_code == 200


def test_key_in_body_and_per_event(tenant_a: Tenant, client: Client) -> None:
    assert (
        post_collector(client, "/v1/batch", batch(track(), writeKey=tenant_a.write_key)).status_code
        == 200
    )
    assert (
        post_collector(client, "/v1/batch", batch(track(writeKey=tenant_a.write_key))).status_code
        == 200
    )
    assert stored() == 2
    assert "writeKey" not in Event.objects.first().extra  # type: ignore[union-attr]


def test_a_value_postgres_cannot_store_dead_letters_only_that_event(
    tenant_a: Tenant, client: Client
) -> None:
    # NUL cannot be stored in a text column: the checks refuse it before Postgres is asked
    bad = track(event="Bad\x00Name")
    response = post_collector(
        client, "/v1/batch", batch(track(), bad, track()), write_key=tenant_a.write_key
    )
    assert response.status_code == 200
    assert response.json()["accepted"] == 2
    assert response.json()["failed"] == 1
    assert response.json()["errors"][0]["index"] == 1
    assert stored() == 2
    failed = FailedEvent.objects.get()
    assert failed.message_id == bad["messageId"]
    assert failed.message == "event: contains the control character U+0000"
    assert PendingEvent.objects.count() == 2


def test_single_event_postgres_cannot_store_is_400_and_dead_lettered(
    tenant_a: Tenant, client: Client
) -> None:
    response = post_collector(
        client, "/v1/track", {"userId": "u", "event": "Nul\x00"}, write_key=tenant_a.write_key
    )
    assert response.status_code == 400
    assert "contains the control character U+0000" in response.json()["error"]["message"]
    assert FailedEvent.objects.get().reason == "invalid_field"
