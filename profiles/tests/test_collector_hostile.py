"""Hostile input never fails a batch: every good event of a request is stored, each bad one is
dead-lettered with its reason (or counted, past the per-request cap), identifiers are refused
rather than rewritten, and the answer is 200 or 400 — never a 5xx. Generated with hypothesis."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiles.collector.service import MAX_DEAD_LETTERS_PER_REQUEST
from profiles.models import Event, FailedEvent, FailureReason
from tests.fixtures import Tenant, post_collector


def good(n: int) -> dict[str, Any]:
    return {"type": "track", "userId": f"u-{n}", "event": "Good", "messageId": f"good-{n}"}


_texts = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["\x00", "a\x00b", "\x1f", "\u202e", "\ud7ff", "💥" * 50, " ", ""]),
)
_timestamps = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "99999-01-01",
            "2026-02-30T00:00:00Z",
            "not a date",
            "",
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),  # NaN is not JSON
    st.booleans(),
    _texts,
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    _texts,
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_texts, inner, max_size=4)
    ),
    max_leaves=12,
)
hostile_events = st.one_of(
    _values,
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(st.sampled_from(["track", "identify", "page", "alias"]), _values),
            "userId": st.one_of(_texts, _values),
            "anonymousId": _texts,
            "event": _texts,
            "name": _texts,
            "messageId": st.one_of(_texts, _values),
            "originalTimestamp": _timestamps,
            "timestamp": _timestamps,
            "sentAt": _timestamps,
            "traits": st.one_of(
                st.fixed_dictionaries({}, optional={"email": _texts, "phone": _texts}), _values
            ),
            "properties": _values,
            "context": _values,
        },
    ),
)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(bad=st.lists(hostile_events, min_size=1, max_size=6), sent_at=_timestamps)
def test_hostile_events_never_fail_the_good_ones(
    tenant_a: Tenant, bad: list[Any], sent_at: Any
) -> None:
    run = uuid.uuid4().hex[:8]
    batch = [{**good(n), "messageId": f"{run}-{n}"} for n in range(3)]
    mixed = [batch[0], *bad[:3], batch[1], *bad[3:], batch[2]]
    body: dict[str, Any] = {"batch": mixed}
    if isinstance(sent_at, str) and sent_at[:4].isdigit():
        body["sentAt"] = sent_at  # a batch-level sentAt that may be absurd but parses
    raw = json.dumps(body).encode()  # the standard library writes any integer
    answer = post_collector(Client(), "/v1/batch", raw, write_key=tenant_a.write_key)
    assert answer.status_code in (200, 400), (answer.status_code, answer.content[:500])
    if answer.status_code == 200 or "sentAt" not in body:
        stored = set(
            Event.objects.filter(message_id__startswith=run).values_list("message_id", flat=True)
        )
        assert stored == {e["messageId"] for e in batch}, answer.content[:500]


def test_extreme_timestamps_are_dead_lettered_alone(tenant_a: Tenant, client: Client) -> None:
    extreme = {**good(9), "originalTimestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31"}
    batch = [good(n) for n in range(99)] + [extreme]
    answer = post_collector(client, "/v1/batch", {"batch": batch}, write_key=tenant_a.write_key)
    assert answer.status_code == 200 and answer.json()["failed"] == 1
    assert Event.objects.count() == 99
    dead = FailedEvent.objects.get()
    assert dead.reason == FailureReason.INVALID_TIMESTAMP
    assert "too far from sentAt" in dead.message


def test_identifiers_with_control_characters_are_refused_not_rewritten(
    tenant_a: Tenant, client: Client
) -> None:
    events = [
        {"type": "identify", "userId": "u-1", "traits": {"email": "a\x00@b.co"}},
        {"type": "identify", "userId": "u\x002"},
        {"type": "track", "anonymousId": "a-3", "event": "Bought\x00"},
        {"type": "identify", "anonymousId": "a-4", "context": {"device": {"id": "d\x01"}}},
        {"type": "identify", "userId": "u-5", "traits": {"email": "ok@b.co", "bio": "a\tb"}},
    ]
    answer = post_collector(client, "/v1/batch", {"batch": events}, write_key=tenant_a.write_key)
    assert answer.status_code == 200 and answer.json()["failed"] == 4
    assert list(Event.objects.values_list("user_id", flat=True)) == ["u-5"]
    messages = sorted(FailedEvent.objects.values_list("message", flat=True))
    assert messages == [
        "context.device.id: contains the control character U+0001",
        "event: contains the control character U+0000",
        "traits.email: contains the control character U+0000",
        "userId: contains the control character U+0000",
    ]
    assert not Event.objects.filter(traits__email="a@b.co").exists()


def test_a_flood_of_invalid_events_keeps_a_bounded_dead_letter_sample(
    tenant_a: Tenant, client: Client
) -> None:
    flood: list[dict[str, Any]] = [{}] * 20_000 + [good(1)]
    answer = post_collector(client, "/v1/batch", {"batch": flood}, write_key=tenant_a.write_key)
    assert answer.status_code == 200
    assert answer.json()["failed"] == 20_000 and len(answer.json()["errors"]) == 10
    assert Event.objects.count() == 1
    assert FailedEvent.objects.count() == MAX_DEAD_LETTERS_PER_REQUEST + 1
    summary = FailedEvent.objects.get(reason=FailureReason.NOT_KEPT)
    assert summary.message.startswith("19,900 more invalid events")
