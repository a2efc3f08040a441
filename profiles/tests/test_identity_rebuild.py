"""The full identity graph rebuild and the per-profile graph, driven through the collector and
the processing queue like the resolution scenarios."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from cdp.errors import NotFound
from profiles.identity.graph import profile_graph, workspace_graph
from profiles.identity.rebuild import identity_graph_rebuild
from profiles.identity.services import identity_rules_update, profile_split
from profiles.models import (
    DEFAULT_BLOCKLIST,
    Event,
    Identity,
    IdentityLink,
    IdentityRules,
    Profile,
    ProfileEvent,
    ProfileMerge,
    SplitBlock,
)
from profiles.tasks.identity import identity_graph_rebuild_task
from tests.fixtures import Tenant, send_events

send = partial(send_events, drain=500)


def owner(tenant: Tenant, kind: str, value: str) -> int:
    return Identity.objects.get(workspace=tenant.workspace, type=kind, value=value).profile_id


def identities_of(profile_id: int) -> set[tuple[str, str]]:
    return set(Identity.objects.filter(profile_id=profile_id).values_list("type", "value"))


def profile_of_event(message_id: str) -> int:
    event = Event.objects.get(message_id=message_id)
    return ProfileEvent.objects.get(event_id=event.pk).profile_id


def state(tenant: Tenant) -> dict[str, Any]:
    """Everything a rebuild may change in a workspace."""
    ws = tenant.workspace.pk
    return {
        "identities": sorted(
            Identity.objects.filter(workspace_id=ws).values_list(
                "type", "value", "profile_id", "origin_profile_id"
            )
        ),
        "events": sorted(
            ProfileEvent.objects.filter(workspace_id=ws).values_list("event_id", "profile_id")
        ),
        "profiles": sorted(
            Profile.objects.filter(workspace_id=ws).values_list(
                "id", "merged_into_id", "event_count", "traits"
            )
        ),
        "merges": ProfileMerge.objects.filter(workspace_id=ws).count(),
        "blocks": SplitBlock.objects.filter(workspace_id=ws).count(),
    }


def assert_no_change(report: Any) -> None:
    assert (report.merges, report.splits, report.new_profiles) == (0, 0, 0)
    assert (report.identities_moved, report.events_moved) == (0, 0)
    assert report.profiles_after == report.profiles_before


def set_limits(tenant: Tenant, limits: dict[str, int]) -> None:
    identity_rules_update(workspace=tenant.workspace, data={"limits": limits})


# ---- the rebuild agrees with the pipeline --------------------------------------------------


def test_rebuild_of_the_pipelines_graph_changes_nothing(
    tenant_a: Tenant, tenant_b: Tenant, client: Client
) -> None:
    send(client, tenant_a, {"type": "page", "anonymousId": "anon-1", "name": "Home"})
    send(
        client,
        tenant_a,
        {
            "type": "identify",
            "anonymousId": "anon-1",
            "userId": "u-1",
            "traits": {"email": "ada@example.com", "phone": "+44 20 7946 0958"},
        },
        # the same email on a second device
        {
            "type": "track",
            "anonymousId": "phone-1",
            "event": "App Opened",
            "context": {"traits": {"email": "ada@example.com"}, "device": {"id": "dev-1"}},
        },
        # an alias
        {"type": "track", "anonymousId": "anon-2", "event": "Viewed"},
        {"type": "track", "userId": "u-2", "event": "Signed Up"},
    )
    send(client, tenant_a, {"type": "alias", "previousId": "anon-2", "userId": "u-2"})
    # a shared iPad: bob's merge into alice is refused by the user_id limit
    send(client, tenant_a, {"type": "identify", "userId": "alice", "anonymousId": "ipad"})
    send(client, tenant_a, {"type": "identify", "userId": "bob", "anonymousId": "ipad"})
    # junk identifiers
    send(client, tenant_a, {"type": "identify", "userId": "undefined", "anonymousId": "a-9"})
    send(client, tenant_b, {"type": "identify", "userId": "u-1", "anonymousId": "anon-1"})
    before_a, before_b = state(tenant_a), state(tenant_b)

    report = identity_graph_rebuild(workspace_id=tenant_a.workspace.pk)

    assert_no_change(report)
    assert report.applied
    assert report.identities == len(before_a["identities"])
    assert report.links == IdentityLink.objects.filter(workspace=tenant_a.workspace).count()
    assert report.components == report.profiles_before - 1  # alice and bob share a component
    assert report.blocklisted_dropped == 0
    assert state(tenant_a) == before_a
    assert state(tenant_b) == before_b  # another workspace is never read nor written


def test_a_limit_of_two_keeps_a_pair_together(tenant_a: Tenant, client: Client) -> None:
    set_limits(tenant_a, {"user_id": 1, "email": 2})
    for n in (1, 2, 3):
        send(
            client,
            tenant_a,
            {"type": "identify", "anonymousId": f"a{n}", "traits": {"email": f"p{n}@x.io"}},
        )
    for n in (1, 2, 3):  # one device links all three; the third email is refused
        send(
            client,
            tenant_a,
            {
                "type": "track",
                "anonymousId": f"a{n}",
                "event": "E",
                "context": {"device": {"id": "d"}},
            },
        )
    assert owner(tenant_a, "email", "p1@x.io") == owner(tenant_a, "email", "p2@x.io")
    assert owner(tenant_a, "email", "p3@x.io") != owner(tenant_a, "email", "p1@x.io")
    before = state(tenant_a)

    report = identity_graph_rebuild(workspace_id=tenant_a.workspace.pk)

    assert_no_change(report)
    assert report.components == 1
    assert state(tenant_a) == before


# ---- rules changed since the pipeline decided ----------------------------------------------


def _family_ipad(tenant: Tenant, client: Client) -> dict[str, str]:
    """Ann and Bob both sign in on the family iPad: one profile with two emails."""
    [ann] = send(
        client,
        tenant,
        {
            "type": "identify",
            "anonymousId": "a-ann",
            "traits": {"email": "ann@family.io", "name": "Ann"},
            "context": {"device": {"id": "ipad"}},
            "timestamp": "2026-01-01T10:00:00Z",
        },
    )
    [bob] = send(
        client,
        tenant,
        {
            "type": "identify",
            "anonymousId": "a-bob",
            "traits": {"email": "bob@family.io", "name": "Bob"},
            "context": {"device": {"id": "ipad"}},
            "timestamp": "2026-01-02T10:00:00Z",
        },
    )
    [ann_views, bob_orders] = send(
        client,
        tenant,
        {"type": "track", "anonymousId": "a-ann", "event": "Viewed", "timestamp": "2026-01-03"},
        {
            "type": "track",
            "anonymousId": "a-bob",
            "event": "Order Completed",
            "properties": {"revenue": 20},
            "timestamp": "2026-01-04T10:00:00Z",
        },
    )
    return {"ann": ann, "bob": bob, "ann_views": ann_views, "bob_orders": bob_orders}


def test_lowering_a_limit_splits_the_profile_and_events_follow(
    tenant_a: Tenant, client: Client
) -> None:
    messages = _family_ipad(tenant_a, client)
    [family] = Profile.objects.filter(workspace=tenant_a.workspace, merged_into=None)
    assert family.traits["name"] == "Bob" and family.event_count == 4
    set_limits(tenant_a, {"user_id": 1, "email": 1})
    before = state(tenant_a)

    dry = identity_graph_rebuild(workspace_id=tenant_a.workspace.pk, apply=False)

    assert state(tenant_a) == before  # a dry run writes nothing
    assert not dry.applied
    assert (dry.merges, dry.splits, dry.new_profiles) == (0, 1, 1)
    assert (dry.identities_moved, dry.events_moved) == (2, 2)
    assert dry.profiles_after == 2
    [split] = dry.split_sample
    assert split["profile"] == family.pk and split["stays_on"] == family.pk
    assert split["moved"] == [
        {
            "profile": None,
            "new": True,
            "count": 2,
            "identifiers": [
                {"type": "email", "value": "bob@family.io"},
                {"type": "anonymous_id", "value": "a-bob"},
            ],
        }
    ]

    report = identity_graph_rebuild(workspace_id=tenant_a.workspace.pk)

    assert (report.merges, report.splits, report.new_profiles) == (0, 1, 1)
    assert (report.identities_moved, report.events_moved) == (2, 2)
    assert report.profiles_after == 2
    bob_id = owner(tenant_a, "email", "bob@family.io")
    assert report.split_sample[0]["moved"][0]["profile"] == bob_id
    # the shared iPad stays with the older email (equal distance: the oldest seed wins)
    assert identities_of(family.pk) == {
        ("email", "ann@family.io"),
        ("anonymous_id", "a-ann"),
        ("device_id", "ipad"),
    }
    assert identities_of(bob_id) == {("email", "bob@family.io"), ("anonymous_id", "a-bob")}
    assert Identity.objects.get(value="a-bob").origin_profile_id == bob_id
    assert profile_of_event(messages["ann"]) == family.pk
    assert profile_of_event(messages["ann_views"]) == family.pk
    assert profile_of_event(messages["bob"]) == bob_id
    assert profile_of_event(messages["bob_orders"]) == bob_id
    family.refresh_from_db()
    bob = Profile.objects.get(pk=bob_id)
    assert family.traits == {"email": "ann@family.io", "name": "Ann"}
    assert (family.event_count, family.order_count) == (2, 0)
    assert bob.traits == {"email": "bob@family.io", "name": "Bob"}
    assert (bob.event_count, bob.order_count, float(bob.revenue)) == (2, 1, 20.0)
    assert bob.first_seen is not None and bob.first_seen.day == 2

    assert_no_change(identity_graph_rebuild(workspace_id=tenant_a.workspace.pk))


def test_blocklisting_the_value_that_joined_two_people_splits_them(
    tenant_a: Tenant, client: Client
) -> None:
    [ann] = send(
        client,
        tenant_a,
        {"type": "identify", "userId": "u-ann", "traits": {"email": "info@shop.io", "n": 1}},
    )
    [bea] = send(
        client,
        tenant_a,
        {"type": "identify", "anonymousId": "b-dev", "traits": {"email": "info@shop.io", "m": 2}},
    )
    [bea_track] = send(client, tenant_a, {"type": "track", "anonymousId": "b-dev", "event": "X"})
    joined = owner(tenant_a, "user_id", "u-ann")
    assert owner(tenant_a, "anonymous_id", "b-dev") == joined
    identity_rules_update(
        workspace=tenant_a.workspace, data={"blocklist": [*DEFAULT_BLOCKLIST, "INFO@shop.io"]}
    )

    report = identity_graph_rebuild(workspace_id=tenant_a.workspace.pk)

    assert report.blocklisted_dropped == 1
    assert (report.merges, report.splits, report.new_profiles) == (0, 1, 1)
    assert not Identity.objects.filter(value="info@shop.io").exists()
    bea_id = owner(tenant_a, "anonymous_id", "b-dev")
    assert bea_id != joined
    assert identities_of(joined) == {("user_id", "u-ann")}
    assert profile_of_event(ann) == joined
    assert profile_of_event(bea) == bea_id and profile_of_event(bea_track) == bea_id
    assert Profile.objects.get(pk=bea_id).traits == {"email": "info@shop.io", "m": 2}
    assert Profile.objects.get(pk=joined).traits == {"email": "info@shop.io", "n": 1}
    assert_no_change(identity_graph_rebuild(workspace_id=tenant_a.workspace.pk))


def test_rebuild_merges_what_arrival_order_kept_apart(tenant_a: Tenant, client: Client) -> None:
    """A device first seen with user u1 is refused to u2 (one user_id per profile), and then a
    third person's merge through that device is refused too (one email per profile). On the
    whole graph the device is nearer to u2, and so is the third person: they are one."""
    set_limits(tenant_a, {"user_id": 1, "email": 1})
    ctx = {"device": {"id": "d-1"}}
    [e1] = send(
        client,
        tenant_a,
        {"type": "identify", "userId": "u1", "anonymousId": "a", "traits": {"email": "e1@x.io"}},
    )
    [e2] = send(
        client, tenant_a, {"type": "track", "anonymousId": "a", "event": "T", "context": ctx}
    )
    [e3] = send(client, tenant_a, {"type": "identify", "userId": "u2", "context": ctx})
    [e4] = send(
        client, tenant_a, {"type": "identify", "anonymousId": "k", "traits": {"email": "m@x.io"}}
    )
    [e5] = send(
        client, tenant_a, {"type": "track", "anonymousId": "k", "event": "T", "context": ctx}
    )
    p1, p2 = owner(tenant_a, "user_id", "u1"), owner(tenant_a, "user_id", "u2")
    p3 = owner(tenant_a, "email", "m@x.io")
    assert len({p1, p2, p3}) == 3 and p2 < p3
    assert owner(tenant_a, "device_id", "d-1") == p1
    before = state(tenant_a)

    dry = identity_graph_rebuild(workspace_id=tenant_a.workspace.pk, apply=False)
    assert state(tenant_a) == before
    report = identity_graph_rebuild(workspace_id=tenant_a.workspace.pk)

    for r in (dry, report):
        assert (r.merges, r.splits, r.new_profiles) == (1, 1, 0)
        assert (r.identities_moved, r.events_moved) == (3, 3)
        assert (r.profiles_before, r.profiles_after) == (3, 2)
        assert r.merge_sample == [
            {
                "winner": p2,
                "loser": p3,
                "identifiers": [
                    {"type": "anonymous_id", "value": "k"},
                    {"type": "device_id", "value": "d-1"},
                    {"type": "user_id", "value": "u2"},
                ],
            }
        ]
    assert Profile.objects.get(pk=p3).merged_into_id == p2
    merge = ProfileMerge.objects.get(workspace=tenant_a.workspace, rule="rebuild")
    assert (merge.winner_id, merge.loser_id) == (p2, p3)
    assert identities_of(p1) == {("user_id", "u1"), ("email", "e1@x.io"), ("anonymous_id", "a")}
    assert identities_of(p2) == {
        ("user_id", "u2"),
        ("device_id", "d-1"),
        ("anonymous_id", "k"),
        ("email", "m@x.io"),
    }
    # events follow their highest-priority identifier: the device now belongs to u2's profile
    assert profile_of_event(e1) == p1
    assert {profile_of_event(m) for m in (e2, e3, e4, e5)} == {p2}
    assert Profile.objects.get(pk=p1).event_count == 1
    assert Profile.objects.get(pk=p2).event_count == 4
    assert_no_change(identity_graph_rebuild(workspace_id=tenant_a.workspace.pk))


def test_split_blocks_keep_profiles_apart(tenant_a: Tenant, client: Client) -> None:
    send(client, tenant_a, {"type": "identify", "userId": "u-a", "anonymousId": "a-laptop"})
    send(client, tenant_a, {"type": "page", "anonymousId": "b-phone", "name": "Pricing"})
    a, b = owner(tenant_a, "user_id", "u-a"), owner(tenant_a, "anonymous_id", "b-phone")
    send(client, tenant_a, {"type": "identify", "userId": "u-a", "anonymousId": "b-phone"})
    merge = ProfileMerge.objects.get(workspace=tenant_a.workspace)
    profile_split(workspace=tenant_a.workspace, merge_id=merge.pk)
    # after the split b picks up a device that u-a also uses (refused by the block)
    ctx = {"device": {"id": "dev-b"}}
    send(
        client, tenant_a, {"type": "track", "anonymousId": "b-phone", "event": "E", "context": ctx}
    )
    send(client, tenant_a, {"type": "identify", "userId": "u-a", "context": ctx})
    assert owner(tenant_a, "device_id", "dev-b") == b
    before = state(tenant_a)

    report = identity_graph_rebuild(workspace_id=tenant_a.workspace.pk)

    assert_no_change(report)
    assert report.components == 1
    assert state(tenant_a) == before
    assert Profile.objects.get(pk=b).merged_into_id is None
    # the block is all that keeps them apart
    SplitBlock.objects.filter(workspace=tenant_a.workspace).delete()
    dry = identity_graph_rebuild(workspace_id=tenant_a.workspace.pk, apply=False)
    assert dry.merges == 1 and dry.merge_sample[0]["winner"] == a


def test_a_split_profile_passes_its_block_to_the_new_profile(
    tenant_a: Tenant, client: Client
) -> None:
    messages = _family_ipad(tenant_a, client)
    family = owner(tenant_a, "email", "ann@family.io")
    [other] = send(client, tenant_a, {"type": "identify", "userId": "carl", "anonymousId": "c-1"})
    carl = owner(tenant_a, "user_id", "carl")
    SplitBlock.objects.create(workspace=tenant_a.workspace, profile_a_id=family, profile_b_id=carl)
    # carl and bob share a device: refused by the block
    ctx = {"device": {"id": "laptop"}}
    send(client, tenant_a, {"type": "track", "anonymousId": "c-1", "event": "E", "context": ctx})
    send(client, tenant_a, {"type": "track", "anonymousId": "a-bob", "event": "E", "context": ctx})
    set_limits(tenant_a, {"user_id": 1, "email": 1})

    report = identity_graph_rebuild(workspace_id=tenant_a.workspace.pk)

    assert (report.merges, report.splits, report.new_profiles) == (0, 1, 1)
    bob = owner(tenant_a, "email", "bob@family.io")
    assert bob not in (family, carl)
    assert profile_of_event(messages["bob"]) == bob and profile_of_event(other) == carl
    assert SplitBlock.objects.filter(profile_a_id=min(bob, carl), profile_b_id=max(bob, carl))
    assert_no_change(identity_graph_rebuild(workspace_id=tenant_a.workspace.pk))


# ---- entry points --------------------------------------------------------------------------


def test_management_command_prints_the_report(tenant_a: Tenant, client: Client) -> None:
    _family_ipad(tenant_a, client)
    set_limits(tenant_a, {"user_id": 1, "email": 1})
    out = io.StringIO()
    call_command("cdp_identity_rebuild", "--workspace", "Alpha", "--dry-run", stdout=out)
    text = out.getvalue()
    assert "dry run, nothing written" in text
    assert "merges:     0   splits: 1" in text
    assert "-> a new profile: email:bob@family.io, anonymous_id:a-bob" in text
    assert Profile.objects.filter(workspace=tenant_a.workspace).count() == 1

    out = io.StringIO()
    call_command("cdp_identity_rebuild", "--workspace", "Alpha", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["applied"] is True
    assert data["splits"]["count"] == 1 and data["merges"] == {"count": 0, "sample": []}
    assert data["profiles_after"] == 2
    assert Profile.objects.filter(workspace=tenant_a.workspace).count() == 2


def test_management_command_rejects_an_unknown_workspace(db: Any) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no workspace named 'Nope'"):
        call_command("cdp_identity_rebuild", "--workspace", "Nope")


def test_task_returns_the_report(tenant_a: Tenant, client: Client) -> None:
    _family_ipad(tenant_a, client)
    set_limits(tenant_a, {"user_id": 1, "email": 1})
    result = identity_graph_rebuild_task.apply(args=[tenant_a.workspace.pk, False]).get()
    assert result["applied"] is False and result["splits"]["count"] == 1
    result = identity_graph_rebuild_task.apply(args=[tenant_a.workspace.pk]).get()
    assert result["applied"] is True and result["new_profiles"] == 1
    result = identity_graph_rebuild_task.apply(args=[tenant_a.workspace.pk]).get()
    assert result["splits"]["count"] == 0 and result["merges"]["count"] == 0


# ---- the graph for the profile page --------------------------------------------------------


def test_profile_graph_flags_a_shared_device_refused_by_the_limit(
    tenant_a: Tenant, tenant_b: Tenant, client: Client
) -> None:
    send(
        client,
        tenant_a,
        {
            "type": "identify",
            "userId": "alice",
            "anonymousId": "ipad",
            "traits": {"email": "al@x.io"},
        },
    )
    send(client, tenant_a, {"type": "identify", "userId": "bob", "anonymousId": "ipad"})
    alice, bob = owner(tenant_a, "user_id", "alice"), owner(tenant_a, "user_id", "bob")
    assert alice != bob

    graph = profile_graph(profile_id=alice)

    assert graph["profile_id"] == alice and graph["truncated"] is False
    nodes = {(n["type"], n["value"]): n for n in graph["nodes"]}
    assert set(nodes) == {
        ("user_id", "alice"),
        ("email", "al@x.io"),
        ("anonymous_id", "ipad"),
        ("user_id", "bob"),
    }
    assert nodes[("user_id", "bob")]["foreign"] is True
    assert nodes[("user_id", "bob")]["profile_id"] == bob
    assert not any(n["foreign"] for key, n in nodes.items() if key != ("user_id", "bob"))
    for n in graph["nodes"]:
        assert 0.0 <= n["x"] <= 1.0 and 0.0 <= n["y"] <= 1.0
        assert n["first_seen"]
    assert len({(n["x"], n["y"]) for n in graph["nodes"]}) == 4
    edges = {frozenset((e["source"], e["target"])): e["cross"] for e in graph["edges"]}
    ipad, bob_node = nodes[("anonymous_id", "ipad")]["id"], nodes[("user_id", "bob")]["id"]
    assert edges[frozenset((ipad, bob_node))] is True
    assert edges[frozenset((ipad, nodes[("user_id", "alice")]["id"]))] is False
    assert profile_graph(profile_id=alice) == graph  # deterministic layout

    # from bob's side, alice's device is the foreign node
    other = profile_graph(profile_id=bob)
    assert {(n["value"], n["foreign"]) for n in other["nodes"]} == {("bob", False), ("ipad", True)}

    # truncated: the highest-priority identifiers, and the foreign one with its link
    small = profile_graph(profile_id=alice, max_nodes=3)
    assert small["truncated"] is True and small["total_nodes"] == 4
    assert [(n["type"], n["value"]) for n in small["nodes"]] == [
        ("user_id", "alice"),
        ("anonymous_id", "ipad"),
        ("user_id", "bob"),
    ]
    assert len(small["edges"]) == 2
    smaller = profile_graph(profile_id=alice, max_nodes=2)
    assert [n["value"] for n in smaller["nodes"]] == ["alice", "al@x.io"]
    assert smaller["truncated"] is True
    with pytest.raises(NotFound):
        profile_graph(profile_id=alice, workspace_id=tenant_b.workspace.pk)


def test_workspace_graph_holds_identities_and_links(tenant_a: Tenant, client: Client) -> None:
    send(client, tenant_a, {"type": "identify", "userId": "alice", "anonymousId": "ipad"})
    graph = workspace_graph(tenant_a.workspace.pk)
    alice = Identity.objects.get(value="alice")
    assert graph.nodes[alice.pk] == {
        "type": "user_id",
        "value": "alice",
        "profile_id": alice.profile_id,
    }
    assert graph.number_of_nodes() == 2 and graph.number_of_edges() == 1


# ---- scale ---------------------------------------------------------------------------------

PEOPLE = 5_000  # four identifiers each: 20,000 identities


def test_rebuild_of_20k_identities(tenant_a: Tenant) -> None:
    """Synthetic graph written in bulk: every 50th person's identifiers sit on two profiles
    (a merge to do), every 100th (offset 10) profile also holds the next person (two user_ids:
    a split to do), and every 50th (offset 25) shares a device with the next person (refused:
    nothing to do). No timing assertion; the time is printed."""
    ws = tenant_a.workspace
    IdentityRules.objects.get_or_create(workspace=ws)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    absorbed = {i + 1 for i in range(10, PEOPLE - 1, 100)}  # held by the previous profile
    halves = set(range(0, PEOPLE, 50))  # device side on a second profile
    created = Profile.objects.bulk_create(
        [Profile(workspace=ws) for i in range(PEOPLE) if i not in absorbed]
    )
    profile_of: dict[int, int] = {}
    it = iter(created)
    for i in range(PEOPLE):
        profile_of[i] = profile_of[i - 1] if i in absorbed else next(it).pk
    second = dict(
        zip(
            sorted(halves),
            (p.pk for p in Profile.objects.bulk_create([Profile(workspace=ws) for _ in halves])),
            strict=True,
        )
    )
    rows = []
    for i in range(PEOPLE):
        p = profile_of[i]
        q = second.get(i, p)
        for kind, value, pid in (
            ("user_id", f"u{i}", p),
            ("email", f"p{i}@x.io", p),
            ("anonymous_id", f"a{i}", q),
            ("device_id", f"d{i}", q),
        ):
            rows.append(
                Identity(
                    workspace=ws,
                    profile_id=pid,
                    origin_profile_id=pid,
                    type=kind,
                    value=value,
                    first_seen=now,
                )
            )
    Identity.objects.bulk_create(rows, batch_size=5_000)
    ids = dict(Identity.objects.filter(workspace=ws).values_list("value", "id"))
    links = set()
    for i in range(PEOPLE):
        links.update({(ids[f"u{i}"], ids[f"p{i}@x.io"]), (ids[f"u{i}"], ids[f"a{i}"])})
        links.add((ids[f"a{i}"], ids[f"d{i}"]))
        if i + 1 in absorbed or (i % 50 == 25 and i + 1 < PEOPLE):
            links.add((ids[f"d{i}"], ids[f"a{i + 1}"]))
    IdentityLink.objects.bulk_create(
        [
            IdentityLink(workspace=ws, a_id=min(a, b), b_id=max(a, b), first_seen=now)
            for a, b in links
        ],
        batch_size=5_000,
    )
    # one event per person, on the profile holding its user_id
    events = Event.objects.bulk_create(
        [
            Event(
                workspace=ws,
                message_id=f"m{i}",
                type="track",
                event="Seen",
                user_id=f"u{i}",
                anonymous_id=f"a{i}",
                timestamp=now + timedelta(minutes=i),
                received_at=now,
            )
            for i in range(PEOPLE)
        ],
        batch_size=5_000,
    )
    ProfileEvent.objects.bulk_create(
        [
            ProfileEvent(
                event_id=e.pk,
                workspace_id=ws.pk,
                profile_id=profile_of[i],
                origin_profile_id=profile_of[i],
                timestamp=e.timestamp,
                type="track",
                event="Seen",
            )
            for i, e in enumerate(events)
        ],
        batch_size=5_000,
    )

    started = time.monotonic()
    report = identity_graph_rebuild(workspace_id=ws.pk)
    elapsed = time.monotonic() - started
    print(
        f"\nrebuild of {report.identities:,} identities / {report.links:,} links: "
        f"{elapsed:.2f}s ({report.merges} merges, {report.splits} splits)"
    )

    assert report.identities == 4 * PEOPLE
    assert report.merges == len(halves)
    assert report.splits == len(absorbed) and report.new_profiles == len(absorbed)
    assert report.events_moved == len(absorbed) + 0  # merges move no events: none on halves
    assert report.profiles_after == PEOPLE
    moved = Event.objects.get(workspace=ws, message_id=f"m{min(absorbed)}")
    new_owner = ProfileEvent.objects.get(event_id=moved.pk).profile_id
    assert new_owner == owner(tenant_a, "user_id", f"u{min(absorbed)}")
    assert new_owner != profile_of[min(absorbed)]

    started = time.monotonic()
    again = identity_graph_rebuild(workspace_id=ws.pk, apply=False)
    print(f"second run (dry): {time.monotonic() - started:.2f}s")
    assert_no_change(again)
