"""Identity resolution scenarios, driven through the collector and the processing queue."""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import Any

from django.test import Client

from profiles.models import (
    Event,
    Identity,
    IdentityConflict,
    Profile,
    ProfileEvent,
    ProfileMerge,
)
from profiles.pipeline import queue
from tests.fixtures import Tenant, sdk_source, send_events

send = partial(send_events, drain=None)


def process() -> None:
    queue.drain(batch_size=500)


def profile_of(tenant: Tenant, kind: str, value: str) -> Profile:
    return Identity.objects.get(workspace=tenant.workspace, type=kind, value=value).profile


def live_profiles(tenant: Tenant) -> list[Profile]:
    return list(Profile.objects.filter(workspace=tenant.workspace, merged_into=None))


def ids_of(profile: Profile) -> set[tuple[str, str]]:
    return {(i.type, i.value) for i in profile.identities.all()}


def test_anonymous_then_identify_is_one_profile(tenant_a: Tenant, client: Client) -> None:
    send(client, tenant_a, {"type": "page", "anonymousId": "anon-1", "name": "Home"})
    process()
    send(
        client,
        tenant_a,
        {
            "type": "identify",
            "anonymousId": "anon-1",
            "userId": "u-1",
            "traits": {"email": " Ada@Example.COM ", "phone": "+44 20 7946 0958", "plan": "pro"},
        },
    )
    process()
    [profile] = live_profiles(tenant_a)
    assert ids_of(profile) == {
        ("anonymous_id", "anon-1"),
        ("user_id", "u-1"),
        ("email", "ada@example.com"),
        ("phone", "+442079460958"),
    }
    assert profile.traits["plan"] == "pro"
    assert profile.event_count == 2
    assert ProfileEvent.objects.filter(profile=profile).count() == 2


def test_alias_links_previous_anonymous_id(tenant_a: Tenant, client: Client) -> None:
    send(client, tenant_a, {"type": "track", "anonymousId": "anon-2", "event": "Viewed"})
    send(client, tenant_a, {"type": "track", "userId": "u-2", "event": "Signed Up"})
    process()
    assert len(live_profiles(tenant_a)) == 2
    send(client, tenant_a, {"type": "alias", "previousId": "anon-2", "userId": "u-2"})
    process()
    [profile] = live_profiles(tenant_a)
    assert ids_of(profile) == {("anonymous_id", "anon-2"), ("user_id", "u-2")}
    assert profile.event_count == 3
    merge = ProfileMerge.objects.get(workspace=tenant_a.workspace)
    assert merge.rule == "alias"
    assert merge.winner_id == profile.pk


def test_same_email_on_two_devices(tenant_a: Tenant, client: Client) -> None:
    send(
        client,
        tenant_a,
        {"type": "identify", "anonymousId": "laptop", "traits": {"email": "Bo@Example.com"}},
        {
            "type": "track",
            "anonymousId": "phone",
            "event": "App Opened",
            "context": {"traits": {"email": "bo@example.com "}, "device": {"id": "dev-9"}},
        },
    )
    process()
    [profile] = live_profiles(tenant_a)
    assert ids_of(profile) == {
        ("anonymous_id", "laptop"),
        ("anonymous_id", "phone"),
        ("email", "bo@example.com"),
        ("device_id", "dev-9"),
    }


def test_two_user_ids_on_one_device_are_refused(tenant_a: Tenant, client: Client) -> None:
    send(client, tenant_a, {"type": "identify", "userId": "alice", "anonymousId": "shared-ipad"})
    process()
    send(
        client,
        tenant_a,
        {"type": "identify", "userId": "bob", "anonymousId": "shared-ipad", "traits": {"n": 1}},
    )
    process()
    alice = profile_of(tenant_a, "user_id", "alice")
    bob = profile_of(tenant_a, "user_id", "bob")
    assert alice.pk != bob.pk
    assert ("anonymous_id", "shared-ipad") in ids_of(alice)
    assert ids_of(bob) == {("user_id", "bob")}
    assert bob.traits == {"n": 1}  # bob's event went to bob
    conflict = IdentityConflict.objects.get(workspace=tenant_a.workspace)
    assert conflict.reason == "limit_exceeded"
    assert (conflict.profile_id, conflict.other_profile_id) == (bob.pk, alice.pk)
    assert (conflict.identifier_type, conflict.identifier_value) == ("anonymous_id", "shared-ipad")
    assert not ProfileMerge.objects.exists()


def test_junk_identifiers_are_dropped(tenant_a: Tenant, client: Client) -> None:
    send(
        client,
        tenant_a,
        {
            "type": "identify",
            "userId": "undefined",
            "anonymousId": "a-1",
            "traits": {"email": "test@test.com"},
        },
        {"type": "identify", "userId": "undefined", "anonymousId": "a-2"},
        {"type": "track", "userId": "null", "event": "Nothing usable"},
        {"type": "track", "anonymousId": "[object Object]", "userId": "0", "event": "Junk"},
    )
    process()
    profiles = live_profiles(tenant_a)
    assert len(profiles) == 2  # a-1 and a-2 were not merged through "undefined"
    assert {("anonymous_id", "a-1")} in [ids_of(p) for p in profiles]
    assert not Identity.objects.filter(value__in=["undefined", "null", "test@test.com", "0"])
    # events without a usable identifier stay stored but unlinked
    assert ProfileEvent.objects.filter(workspace_id=tenant_a.workspace.pk).count() == 2


def test_out_of_order_arrival_keeps_the_latest_trait(tenant_a: Tenant, client: Client) -> None:
    send(
        client,
        tenant_a,
        {
            "type": "identify",
            "userId": "u-9",
            "traits": {"plan": "pro"},
            "timestamp": "2026-03-02T10:00:00Z",
        },
    )
    process()
    send(
        client,
        tenant_a,
        {
            "type": "identify",
            "userId": "u-9",
            "traits": {"plan": "free", "city": "Oslo"},
            "timestamp": "2026-03-01T10:00:00Z",
        },
    )
    process()
    profile = profile_of(tenant_a, "user_id", "u-9")
    assert profile.traits == {"plan": "pro", "city": "Oslo"}
    assert profile.first_seen is not None and profile.first_seen.day == 1
    assert profile.last_seen is not None and profile.last_seen.day == 2


def _snapshot(profile_id: int) -> dict[str, Any]:
    profile = Profile.objects.get(pk=profile_id)
    return {
        "identities": ids_of(profile),
        "events": set(
            ProfileEvent.objects.filter(profile_id=profile_id).values_list("event_id", flat=True)
        ),
        "traits": profile.traits,
        "event_count": profile.event_count,
        "order_count": profile.order_count,
        "revenue": profile.revenue,
        "first_seen": profile.first_seen,
        "last_seen": profile.last_seen,
    }


def test_merge_then_split_restores_both_profiles(tenant_a: Tenant, client: Client) -> None:
    send(
        client,
        tenant_a,
        {
            "type": "identify",
            "userId": "u-a",
            "anonymousId": "a-laptop",
            "traits": {"plan": "pro", "name": "Ann"},
            "timestamp": "2026-01-01T00:00:00Z",
        },
        {
            "type": "track",
            "userId": "u-a",
            "event": "Order Completed",
            "properties": {"revenue": 30},
            "timestamp": "2026-01-02T00:00:00Z",
        },
    )
    process()
    send(
        client,
        tenant_a,
        {
            "type": "page",
            "anonymousId": "b-phone",
            "name": "Pricing",
            "timestamp": "2026-01-03T00:00:00Z",
        },
        {
            "type": "identify",
            "anonymousId": "b-phone",
            "traits": {"plan": "trial", "age": 30},
            "timestamp": "2026-01-04T00:00:00Z",
        },
        {
            "type": "track",
            "anonymousId": "b-phone",
            "event": "Order Completed",
            "properties": {"revenue": "12.50"},
            "timestamp": "2026-01-05T00:00:00Z",
        },
    )
    process()
    a = profile_of(tenant_a, "user_id", "u-a").pk
    b = profile_of(tenant_a, "anonymous_id", "b-phone").pk
    before_a, before_b = _snapshot(a), _snapshot(b)

    link = {
        "type": "identify",
        "userId": "u-a",
        "anonymousId": "b-phone",
        "timestamp": "2026-01-06T00:00:00Z",
        "messageId": "the-link",
    }
    send(client, tenant_a, link)
    process()
    merged = Profile.objects.get(pk=a)
    assert Profile.objects.get(pk=b).merged_into_id == a
    assert merged.traits["plan"] == "trial"  # the most recent by event time
    assert merged.order_count == 2 and merged.revenue == Decimal("42.50")
    merge = ProfileMerge.objects.get(workspace=tenant_a.workspace)
    assert merge.message_id == "the-link"
    assert merge.identifiers == [{"type": "anonymous_id", "value": "b-phone"}]

    response = tenant_a.api().post(
        f"/api/v1/profiles/{a}/split/", {"merge": merge.pk}, content_type="application/json"
    )
    assert response.status_code == 200, response.content

    after_a, after_b = _snapshot(a), _snapshot(b)
    assert after_b == before_b
    link_event = Event.objects.get(message_id="the-link").pk
    assert after_a["events"] == before_a["events"] | {link_event}
    assert after_a["identities"] == before_a["identities"]
    assert after_a["traits"] == before_a["traits"]
    assert Profile.objects.get(pk=b).merged_into_id is None
    merge.refresh_from_db()
    assert merge.status == "split"

    # a split pair is not merged again by the next event that links them
    send(
        client,
        tenant_a,
        {"type": "track", "userId": "u-a", "anonymousId": "b-phone", "event": "Again"},
    )
    process()
    assert Profile.objects.get(pk=b).merged_into_id is None
    assert IdentityConflict.objects.filter(reason="split_block").count() == 1


def test_sdk_captures_resolve_to_one_person(tenant_a: Tenant, client: Client) -> None:
    from profiles.tests.test_collector_sdk_wire import SDK_KEYS, captures, replay

    for key in SDK_KEYS:
        sdk_source(tenant_a.workspace, key)
    for capture in captures():
        assert replay(client, capture).status_code == 200
    process()
    events = Event.objects.filter(workspace=tenant_a.workspace)
    person = events.filter(user_id="u-1") | events.filter(anonymous_id="anon-1")
    owners = set(
        ProfileEvent.objects.filter(event_id__in=person.values("id")).values_list(
            "profile_id", flat=True
        )
    )
    assert len(owners) == 1
    profile = Profile.objects.get(pk=owners.pop())
    assert ("email", "a@example.com") in ids_of(profile)
    assert profile.traits["plan"] == "pro"
    assert "name" not in profile.traits  # the group call's traits describe the company
    assert profile.group_ids == ["g-42"]
    assert profile.order_count >= 4
