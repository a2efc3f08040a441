"""Invalid events cannot be used to fill the database: a request keeps its first 100 verbatim,
a source keeps up to its daily dead-letter quota and counts the rest, every event counts
against the rate limit, and the first refusal of a day raises the alert (audit row, log,
Sources pages). Good events are never affected."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client

from cdp.models import AuditLog
from profiles import services
from profiles.collector import keys
from profiles.models import DeadLetterDay, Event, FailedEvent, FailureReason, Source
from tests.fixtures import Tenant, post_collector

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def good(n: int) -> list[dict[str, Any]]:
    return [
        {"type": "track", "event": "Signed Up", "userId": f"u-{i}", "messageId": str(uuid.uuid4())}
        for i in range(n)
    ]


def send(client: Client, key: str, events: list[Any]) -> Any:
    return post_collector(client, "/v1/batch", {"batch": events}, write_key=key)


def set_quota(source: Source, quota: int | None) -> None:
    services.source_update(source=source, dead_letter_quota=quota)
    keys.forget_all()  # on commit, in the app; these tests run inside one transaction


def day_row(source: Source, when: datetime = T0) -> DeadLetterDay:
    return DeadLetterDay.objects.get(source=source, day=when.date())


def test_a_source_keeps_its_quota_and_counts_the_rest(
    tenant_a: Tenant, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    set_quota(tenant_a.source, 150)
    with time_machine.travel(T0, tick=False):
        first = send(client, tenant_a.write_key, [{}] * 100 + good(5))
        assert first.status_code == 200
        assert first.json()["accepted"] == 5 and first.json()["failed"] == 100
        row = day_row(tenant_a.source)
        assert (row.kept, row.not_kept, row.quota_reached_at) == (100, 0, None)

        # 120 invalid: the request keeps 100 + a summary; the quota has room for 50 of those
        with caplog.at_level(logging.WARNING, logger="profiles.collector.dead_letters"):
            second = send(client, tenant_a.write_key, [{}] * 120 + good(5))
        assert second.status_code == 200
        assert second.json()["accepted"] == 5 and second.json()["failed"] == 120
        row = day_row(tenant_a.source)
        assert (row.kept, row.not_kept) == (150, 71)  # 51 refused rows + 20 over the cap
        assert row.quota_reached_at == T0
        assert FailedEvent.objects.filter(source=tenant_a.source).count() == 150
        alerts = AuditLog.objects.filter(action="source.dead_letter_quota_reached")
        assert alerts.count() == 1
        assert alerts.get().detail == {"day": "2026-11-30", "quota": 150}
        assert alerts.get().target_id == str(tenant_a.source.pk)
        assert "reached its dead-letter quota of 150" in caplog.text

        third = send(client, tenant_a.write_key, [{}] * 10 + good(2))
        assert third.json()["accepted"] == 2
        assert (day_row(tenant_a.source).kept, day_row(tenant_a.source).not_kept) == (150, 81)
        assert FailedEvent.objects.count() == 150  # nothing more written
        assert alerts.count() == 1  # one alert a day

    assert Event.objects.filter(source_id=tenant_a.source.pk).count() == 12  # every good one

    # another source of the workspace has its own quota
    other = services.source_create(workspace=tenant_a.workspace, name="other")
    with time_machine.travel(T0, tick=False):
        send(client, other.write_keys.get().key, [{}] * 3)
    assert day_row(other).kept == 3

    # a new (UTC) day, a new quota
    with time_machine.travel(T0 + timedelta(days=1), tick=False):
        send(client, tenant_a.write_key, [{}] * 4)
    tomorrow = day_row(tenant_a.source, T0 + timedelta(days=1))
    assert (tomorrow.kept, tomorrow.not_kept, tomorrow.quota_reached_at) == (4, 0, None)


def test_the_platform_default_applies_and_zero_keeps_nothing(
    tenant_a: Tenant, client: Client, settings: Any
) -> None:
    settings.CDP_DEAD_LETTER_QUOTA = 2
    keys.forget_all()
    send(client, tenant_a.write_key, [{}] * 3)
    assert FailedEvent.objects.count() == 2
    set_quota(tenant_a.source, 0)
    answer = send(client, tenant_a.write_key, [{}, {"type": "track"}])
    assert answer.status_code == 400  # nothing usable: said so, with the reasons
    assert [e["reason"] for e in answer.json()["error"]["detail"]["errors"]] == [
        FailureReason.UNKNOWN_TYPE,
        FailureReason.MISSING_IDENTITY,
    ]
    assert FailedEvent.objects.count() == 2
    assert DeadLetterDay.objects.get().not_kept == 3


def test_unreadable_request_samples_count_against_the_quota(
    tenant_a: Tenant, client: Client, settings: Any
) -> None:
    set_quota(tenant_a.source, 1)
    settings.CDP_MAX_REQUEST_BYTES = 10_000
    big = {"batch": [{"type": "track", "event": "x" * 20_000, "userId": "u"}]}
    for _ in range(3):
        assert send(client, tenant_a.write_key, big["batch"]).status_code == 413
    for _ in range(2):
        answer = post_collector(client, "/v1/batch", b"{not json", write_key=tenant_a.write_key)
        assert answer.status_code == 400
    assert FailedEvent.objects.get().reason == FailureReason.REQUEST_TOO_LARGE
    row = DeadLetterDay.objects.get()
    assert (row.kept, row.not_kept) == (1, 4)


def test_invalid_events_count_against_the_rate_limit(tenant_a: Tenant, client: Client) -> None:
    services.source_update(source=tenant_a.source, rate_limit_per_second=50)
    keys.forget_all()
    with time_machine.travel(T0, tick=False):
        answer = send(client, tenant_a.write_key, [{}] * 60)
    assert answer.status_code == 429
    assert answer.json()["error"]["code"] == "rate_limited"
    assert not FailedEvent.objects.exists() and not DeadLetterDay.objects.exists()


def test_dead_letters_api(tenant_a: Tenant, client: Client) -> None:
    set_quota(tenant_a.source, 5)
    with time_machine.travel(T0 - timedelta(days=1), tick=False):
        send(client, tenant_a.write_key, [{}] * 2)
    with time_machine.travel(T0, tick=False):
        send(client, tenant_a.write_key, [{}] * 8)
        api = tenant_a.api()
        url = f"/api/v1/sources/{tenant_a.source.pk}/dead-letters/"
        body = api.get(url, {"days": 3}).json()
        assert body == {
            "quota": 5,
            "days": [
                {"day": "2026-11-28", "kept": 0, "not_kept": 0, "quota_reached_at": None},
                {"day": "2026-11-29", "kept": 2, "not_kept": 0, "quota_reached_at": None},
                {
                    "day": "2026-11-30",
                    "kept": 5,
                    "not_kept": 3,
                    "quota_reached_at": "2026-11-30T09:00:00Z",
                },
            ],
        }
        assert len(api.get(url).json()["days"]) == 14
        for bad in ("0", "91", "abc", "²"):
            answer = api.get(url, {"days": bad})
            assert answer.status_code == 400, bad
            assert "days" in answer.json()["error"]["detail"]["fields"]
        assert tenant_a.api("analyst").get(url).status_code == 200


def test_quota_and_origins_through_the_sources_api(tenant_a: Tenant) -> None:
    api = tenant_a.api()
    created = api.post(
        "/api/v1/sources/",
        {
            "name": "Shop",
            "kind": "javascript",
            "dead_letter_quota": 500,
            "allowed_origins": ["https://shop.example.com/"],
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["dead_letter_quota"] == 500
    assert body["allowed_origins"] == ["https://shop.example.com"]
    url = f"/api/v1/sources/{body['id']}/"
    changed = api.patch(url, {"dead_letter_quota": None}, content_type="application/json")
    assert changed.status_code == 200 and changed.json()["dead_letter_quota"] is None
    for bad in (-1, 2**31, "many"):
        answer = api.patch(url, {"dead_letter_quota": bad}, content_type="application/json")
        assert answer.status_code == 400, bad
        assert "dead_letter_quota" in answer.json()["error"]["detail"]["fields"]
    bad_origin = api.post(
        "/api/v1/sources/",
        {"name": "Bad", "allowed_origins": ["not an origin"]},
        content_type="application/json",
    )
    assert bad_origin.status_code == 400
    assert "allowed_origins[0]" in bad_origin.json()["error"]["detail"]["fields"]
    assert not Source.objects.filter(name="Bad").exists()


def test_the_pages_show_the_alert_and_set_the_quota(tenant_a: Tenant, client: Client) -> None:
    set_quota(tenant_a.source, 3)
    send(client, tenant_a.write_key, [{}] * 5)
    page = tenant_a.session()
    listing = page.get("/sources/").content.decode()
    assert "data-dead-letter-alert" in listing and "Dead-letter quota reached" in listing
    detail = page.get(f"/sources/{tenant_a.source.pk}/").content.decode()
    assert 'id="dead-letter-alert"' in detail
    assert "3 invalid events kept for replay, 2 more counted but not kept" in detail
    assert 'class="dl-over"' in detail and 'class="dl-kept"' in detail

    url = f"/sources/{tenant_a.source.pk}/dead-letter-quota/"
    answer = page.post(url, {"quota": "25,000"}, follow=True)
    assert "Dead-letter quota set to 25,000 a day." in answer.content.decode()
    tenant_a.source.refresh_from_db()
    assert tenant_a.source.dead_letter_quota == 25_000
    answer = page.post(url, {"quota": "lots"}, follow=True)
    assert "Quota not saved: expected a whole number" in answer.content.decode()
    page.post(url, {"quota": ""})
    tenant_a.source.refresh_from_db()
    assert tenant_a.source.dead_letter_quota is None
    assert tenant_a.session("analyst").post(url, {"quota": "1"}).status_code == 403

    # a source without invalid events: an empty state, no alert
    other = services.source_create(workspace=tenant_a.workspace, name="clean")
    detail = page.get(f"/sources/{other.pk}/").content.decode()
    assert "No invalid events in the last 14 days." in detail
    assert "dead-letter-alert" not in detail
