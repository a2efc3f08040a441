"""A first run of a sync is planned set-based (one statement per chunk, `planner._FRESH`): it
must plan exactly what the per-member Python path plans — the same items in the bulk rows, the
same state recorded per member, the same counts — on identifiers that test the normalisation
(spaces, case, no @, non-ASCII), consent refusals, people without a usable identifier and
fields of every shape. Then a full resync after delivery sends nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from activation.connectors import get as connector_get
from activation.models import Delivery, Destination, Sync, SyncMember, SyncRun
from activation.syncs import mapping as mappings
from activation.syncs import planner
from activation.tests.helpers import drain, pro_segment, run, sync_of, webhook
from activation.tests.receiver import receiver
from consent.services import purposes_install_defaults
from profiles.models import Identity
from tests.fixtures import Tenant, send_events

MAPPING = {
    "identifiers": [
        {"type": "email", "hash": "sha256"},
        {"type": "email", "hash": "none", "as": "email_plain"},
        {"type": "user_id"},
        {"type": "phone"},
    ],
    "fields": [
        {"trait": "first_name", "as": "firstName"},
        {"trait": "address.city", "as": "city"},
        {"trait": "tags.0", "as": "firstTag"},
        {"trait": "tags.-1", "as": "lastTag"},
        {"trait": "missing", "as": "nothing"},
        {"trait": "nickname", "as": "nick"},  # JSON null: left out
        {"trait": "score", "as": "score"},
        {"trait": "odd\\.key", "as": "odd"},
        {"constant": {"campaign": ["spring", 2]}, "as": "meta"},
        {"constant": None, "as": "empty"},
    ],
}

PEOPLE: list[dict[str, Any]] = [
    {"userId": "u-1", "traits": {"email": "  Person.One@Example.COM ", "first_name": "One"}},
    {"userId": "  u-2  ", "traits": {"email": "no-at-sign", "address": {"city": "Köln"}}},
    {"userId": "u-3", "traits": {"email": "Ünïcode@Exämple.com", "tags": ["a", "b", "c"]}},
    {"userId": "u-4", "traits": {"email": "\u00a0nbsp@example.com", "nickname": None}},
    {"userId": "u-5", "traits": {"email": "x@y.z", "score": 1.5, "odd.key": True}},
    {"userId": "u-6", "traits": {"phone": " +49 151 1234 5678 ", "email": "SIX@Example.com"}},
    {"userId": "u-7", "traits": {"email": 'quote"back\\slash@example.com'}},
    {"userId": "u-8", "traits": {"email": "refuses@example.com"}},  # consent: denied
    {"anonymousId": "anon-9", "traits": {"first_name": "Nobody"}},  # no usable identifier
    {"userId": "ü-10", "traits": {"email": "ten@example.com"}},  # non-ASCII user id
]


def _people(tenant: Tenant) -> None:
    events = [{"type": "identify", **p, "traits": {**p["traits"], "plan": "pro"}} for p in PEOPLE]
    events += [  # more plain members, so several bulk rows are written
        {
            "type": "identify",
            "userId": f"bulk-{i}",
            "traits": {"email": f"B{i}@Ex.com", "plan": "pro"},
        }
        for i in range(25)
    ]
    send_events(Client(), tenant, *events)
    send_events(
        Client(),
        tenant,
        {
            "type": "track",
            "userId": "u-8",
            "event": "Consent Updated",
            "context": {"consent": {"categoryPreferences": {"analytics": False}}},
        },
    )


def _plan(sync: Sync) -> SyncRun:
    result = run(sync, "initial")
    assert result is not None
    return result


def _items(sync: Sync) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for row in Delivery.objects.filter(sync_id=sync.pk):
        assert row.kind == "bulk", "a first run of a quiet destination writes bulk rows only"
        assert row.payload["audience"] == {"id": sync.segment_id, "key": sync.segment.key}
        assert row.payload["sync"] == sync.pk
        entries = row.payload["items"]
        assert [e["profile_id"] for e in entries] == row.profile_ids
        for entry in entries:
            out[entry.pop("profile_id")] = entry
    return out


def _states(sync: Sync) -> dict[int, tuple[list[str], str]]:
    return {
        m.profile_id: (list(m.sent_identifiers), m.sent_fields_hash)
        for m in SyncMember.objects.filter(sync=sync)
    }


def _counts(result: SyncRun) -> tuple[int, ...]:
    return (
        result.added,
        result.updated,
        result.removed,
        result.unchanged,
        result.skipped_consent,
        result.skipped_no_identifier,
    )


@pytest.mark.parametrize("mode", ["add_remove", "mirror"])  # mirror: with the fields' hash
def test_the_set_based_first_run_plans_what_the_python_path_plans(
    tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    purposes_install_defaults(workspace=tenant_a.workspace)
    _people(tenant_a)
    segment = pro_segment(tenant_a)
    left: list[list[int]] = []
    fresh_sql = planner._plan_fresh_sql

    def spy(*args: Any, **kwargs: Any) -> list[int]:
        ids = fresh_sql(*args, **kwargs)
        left.append(ids)
        return ids

    monkeypatch.setattr(planner, "_plan_fresh_sql", spy)
    fast_destination = webhook(tenant_a, "http://127.0.0.1:9/a", name="Fast", batch_size=7)
    fast = sync_of(tenant_a, segment, fast_destination, name="fast", mapping=MAPPING, mode=mode)
    fast_run = _plan(fast)
    assert left, "the first run was planned set-based"
    # only the people with identifiers beyond ASCII were left to Python
    beyond_ascii = {
        i.profile_id
        for i in Identity.objects.filter(workspace=tenant_a.workspace)
        if not i.value.isascii()
    }
    assert len(beyond_ascii) >= 2 and left[0] == sorted(beyond_ascii)

    monkeypatch.setattr(planner, "set_based", lambda *a: False)
    slow_destination = webhook(tenant_a, "http://127.0.0.1:9/b", name="Slow", batch_size=7)
    slow = sync_of(tenant_a, segment, slow_destination, name="slow", mapping=MAPPING, mode=mode)
    slow_run = _plan(slow)
    assert len(left) == 1, "the second sync was planned in Python"

    assert _counts(fast_run) == _counts(slow_run)
    assert fast_run.skipped_consent == 1 and fast_run.skipped_no_identifier == 1
    assert _states(fast) == _states(slow)
    fast_items, slow_items = _items(fast), _items(slow)
    assert fast_items == slow_items
    assert len(fast_items) == len(PEOPLE) + 25 - 2

    # a few by hand (the two paths could agree on a mistake)
    by_user = {tuple(i["identifiers"].get("user_id", [])): i for i in fast_items.values()}
    one = by_user[("u-1",)]
    assert one["identifiers"]["email_plain"] == ["person.one@example.com"]
    assert one["fields"] == {
        "firstName": "One",
        "meta": {"campaign": ["spring", 2]},
        "empty": None,
    }
    assert by_user[("u-2",)]["identifiers"].keys() == {"user_id"}  # no @: no e-mail
    assert by_user[("u-2",)]["fields"]["city"] == "Köln"
    three = by_user[("u-3",)]
    assert three["identifiers"]["email_plain"] == ["ünïcode@exämple.com"]
    assert (three["fields"]["firstTag"], three["fields"]["lastTag"]) == ("a", "c")
    assert by_user[("u-4",)]["identifiers"]["email_plain"] == ["nbsp@example.com"]
    assert "nick" not in by_user[("u-4",)]["fields"]
    assert by_user[("u-5",)]["fields"]["score"] == 1.5 and by_user[("u-5",)]["fields"]["odd"]
    assert by_user[("u-6",)]["identifiers"]["phone"] == ["+4915112345678"]
    assert by_user[("u-7",)]["identifiers"]["email_plain"] == ['quote"back\\slash@example.com']
    assert one["added"] == one["identifiers"] and one["removed"] == {}
    if mode == "mirror":
        assert one["fields_hash"] == mappings.fields_hash(one["fields"])
        assert all(m[1] for m in _states(fast).values())
    else:
        assert "fields_hash" not in one


def test_after_a_set_based_first_run_a_full_resync_sends_nothing(tenant_a: Tenant) -> None:
    purposes_install_defaults(workspace=tenant_a.workspace)
    _people(tenant_a)
    segment = pro_segment(tenant_a)
    with receiver() as hook:
        destination = webhook(tenant_a, hook.url, batch_size=10)
        sync = sync_of(tenant_a, segment, destination, mapping=MAPPING)  # mirror, the default
        first = _plan(sync)
        assert first.added == len(PEOPLE) + 25 - 2
        drain(destination)
        assert len(hook.accepted_items()) == first.added
        again = run(sync, "full")
        assert again is not None
        assert (again.added, again.updated, again.removed) == (0, 0, 0)
        assert again.unchanged == first.added
        assert run(sync) is None


def test_only_mappings_sql_can_compute_are_planned_set_based(tenant_a: Tenant) -> None:
    purposes_install_defaults(workspace=tenant_a.workspace)
    segment = pro_segment(tenant_a)
    hook = webhook(tenant_a, "http://127.0.0.1:9/c")
    plain = sync_of(tenant_a, segment, hook, mapping=MAPPING, mode="add_remove")
    webhook_connector = connector_get("webhook")
    assert planner.set_based(plain, mappings.parse(MAPPING, webhook_connector), webhook_connector)
    mirror = Sync(mode="mirror", holdout_experiment=None)
    assert planner.set_based(mirror, mappings.parse(MAPPING, webhook_connector), webhook_connector)
    # the ad platforms normalise in Python only (E.164 phones, their e-mail rule)
    google = connector_get("google_customer_match")
    rule = mappings.parse(None, google)
    assert not planner.set_based(Sync(mode="add_remove", holdout_experiment=None), rule, google)
    assert isinstance(hook, Destination)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["add_remove", "mirror"])
def test_two_planner_threads_plan_every_member_once(
    tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch, settings: Any, mode: str
) -> None:
    """Outside a caller's transaction (the worker's case), a first run's chunks are planned by
    CDP_SYNC_PLANNERS threads on their own connections: the same plan as one thread makes."""
    import threading

    settings.CDP_SYNC_PLANNERS = 2
    monkeypatch.setattr(planner, "CHUNK", 4)  # many chunks for a few people
    purposes_install_defaults(workspace=tenant_a.workspace)
    _people(tenant_a)
    segment = pro_segment(tenant_a)
    planned_by: set[str] = set()
    fresh_sql = planner._plan_fresh_sql

    def spy(*args: Any, **kwargs: Any) -> list[int]:
        planned_by.add(threading.current_thread().name)
        return fresh_sql(*args, **kwargs)

    monkeypatch.setattr(planner, "_plan_fresh_sql", spy)
    two = webhook(tenant_a, "http://127.0.0.1:9/two", name="Two", batch_size=3)
    parallel = sync_of(tenant_a, segment, two, name="two", mapping=MAPPING, mode=mode)
    parallel_run = _plan(parallel)
    assert len(planned_by) == 2 and all("planner" in name for name in planned_by)

    settings.CDP_SYNC_PLANNERS = 1
    planned_by.clear()
    one = webhook(tenant_a, "http://127.0.0.1:9/one", name="One", batch_size=3)
    single = sync_of(tenant_a, segment, one, name="one", mapping=MAPPING, mode=mode)
    single_run = _plan(single)
    assert planned_by == {threading.current_thread().name}

    assert _counts(parallel_run) == _counts(single_run)
    assert parallel_run.added == len(PEOPLE) + 25 - 2
    assert _states(parallel) == _states(single)
    assert _items(parallel) == _items(single)  # each member in exactly one bulk row
    rows = Delivery.objects.filter(sync_id=parallel.pk)
    members = [p for row in rows for p in row.profile_ids or []]
    assert len(members) == len(set(members)) == parallel_run.added
    assert Sync.objects.get(pk=parallel.pk).initialised
