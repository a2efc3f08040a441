"""Segments through the API: preview, create and publish, members and history, versions,
bad rules, permissions and isolation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from cdp.models import AuditLog, Role
from profiles.tests.test_identity_resolution import process, profile_of, send
from segments.models import Membership, Segment
from tests.fixtures import Tenant

RULE = {
    "all": [
        {"trait": "plan", "op": "eq", "value": "pro"},
        {
            "event": "Order Completed",
            "where": [{"property": "revenue", "op": "gte", "value": 50}],
            "count": {"op": "gte", "value": 2},
            "within": {"days": 30},
        },
    ]
}


def _iso(days_ago: float) -> str:
    return (timezone.now() - timedelta(days=days_ago)).isoformat()


def order(user: str, revenue: float, days_ago: float) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": "Order Completed",
        "properties": {"revenue": revenue},
        "timestamp": _iso(days_ago),
    }


@pytest.fixture
def shoppers(tenant_a: Tenant, client: Client) -> dict[str, int]:
    send(
        client,
        tenant_a,
        {"type": "identify", "userId": "ann", "traits": {"plan": "pro"}},
        {"type": "identify", "userId": "bob", "traits": {"plan": "pro"}},
        {"type": "identify", "userId": "cy", "traits": {"plan": "free"}},
        order("ann", 60, 1),
        order("ann", 80, 3),
        order("bob", 60, 2),
        order("bob", 20, 2),  # too small
        order("bob", 90, 45),  # too old
        order("cy", 100, 1),
        order("cy", 100, 2),
    )
    process()
    return {u: profile_of(tenant_a, "user_id", u).pk for u in ("ann", "bob", "cy")}


def post(tenant: Tenant, path: str, body: Any, role: str = Role.OWNER) -> Any:
    return tenant.api(role).post(path, body, content_type="application/json")


def test_preview_counts_and_samples(tenant_a: Tenant, shoppers: dict[str, int]) -> None:
    body = post(tenant_a, "/api/v1/segments/preview/", {"rule": RULE}).json()
    assert body["count"] == 1
    assert [p["id"] for p in body["sample"]] == [shoppers["ann"]]
    never = {"event": "Order Completed", "never": True}
    assert post(tenant_a, "/api/v1/segments/preview/", {"rule": never}).json()["count"] == 0
    fewer = {"event": "Order Completed", "count": {"op": "lt", "value": 3}}
    assert post(tenant_a, "/api/v1/segments/preview/", {"rule": fewer}).json()["count"] == 2


def test_bad_rules_name_the_path(tenant_a: Tenant) -> None:
    response = post(
        tenant_a,
        "/api/v1/segments/preview/",
        {
            "rule": {
                "all": [
                    {"trait": "plan", "op": "eq", "value": "pro"},
                    {"any": [{"event": "X", "count": {"op": "gte", "value": "3"}}]},
                ]
            }
        },
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    expected = "rule.all[1].any[0].count.value: expected an integer from 0 to 1,000,000,000"
    assert error["message"] == expected
    assert list(error["detail"]["fields"])[0] == "rule.all[1].any[0].count.value"


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(?P<plan>pro)", "invalid embedded option"),  # Python's named group
        ("a{2,1}", "invalid repetition count(s)"),
        ("(pro", "parentheses () not balanced"),
    ],
)
def test_regexes_are_checked_by_postgres(tenant_a: Tenant, pattern: str, reason: str) -> None:
    """The rule runs as a Postgres regex, so Postgres decides what is valid — and a bad one
    neither reaches the query nor aborts the request's transaction."""
    rule = {"all": [{"trait": "plan", "op": "regex", "value": pattern}]}
    response = post(tenant_a, "/api/v1/segments/preview/", {"rule": rule})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["detail"]["fields"] == {
        "rule.all[0].value": [f"not a valid regular expression: {reason}"]
    }
    ok = {"all": [{"trait": "plan", "op": "regex", "value": "^p[[:alpha:]]+$"}]}
    assert post(tenant_a, "/api/v1/segments/preview/", {"rule": ok}).status_code == 200


def test_publish_members_history_and_versions(
    tenant_a: Tenant, client: Client, shoppers: dict[str, int]
) -> None:
    created = post(
        tenant_a, "/api/v1/segments/", {"name": "Pro buyers", "rule": RULE, "publish": True}
    )
    assert created.status_code == 201, created.content
    segment = created.json()
    assert segment["status"] == "published" and segment["member_count"] == 1
    assert segment["published"]["number"] == 1 and segment["draft"] is None
    sid = segment["id"]
    members = tenant_a.api().get(f"/api/v1/segments/{sid}/members/").json()
    assert [m["id"] for m in members["results"]] == [shoppers["ann"]]

    # editing makes a draft; the published version stays live until it is published
    wider = {"trait": "plan", "op": "in", "value": ["pro", "free"]}
    edited = (
        tenant_a.api()
        .patch(f"/api/v1/segments/{sid}/", {"rule": wider}, content_type="application/json")
        .json()
    )
    assert edited["draft"]["number"] == 2 and edited["published"]["number"] == 1
    assert edited["member_count"] == 1
    diff = tenant_a.api().get(f"/api/v1/segments/{sid}/diff/").json()
    assert (diff["members_now"], diff["members_after"], diff["entering"], diff["leaving"]) == (
        1,
        3,
        2,
        0,
    )
    assert {p["id"] for p in diff["entering_sample"]} == {shoppers["bob"], shoppers["cy"]}
    result = post(tenant_a, f"/api/v1/segments/{sid}/publish/", {}).json()
    assert (result["version"], result["members"], result["entered"], result["exited"]) == (
        2,
        3,
        2,
        0,
    )
    # republishing without a draft is refused; a re-evaluation changes nothing
    assert post(tenant_a, f"/api/v1/segments/{sid}/publish/", {}).status_code == 409
    narrower = {"trait": "plan", "op": "eq", "value": "free"}
    tenant_a.api().patch(
        f"/api/v1/segments/{sid}/",
        {"rule": narrower, "publish": True},
        content_type="application/json",
    )
    history = tenant_a.api().get(f"/api/v1/segments/{sid}/history/").json()
    stays = {(h["profile_id"], h["version"], h["exited_at"] is None) for h in history["results"]}
    assert stays == {
        (shoppers["ann"], 1, False),
        (shoppers["bob"], 2, False),
        (shoppers["cy"], 2, True),
    }
    assert Membership.objects.filter(exited_at__isnull=True).count() == 1


def test_segment_condition_and_windows_move_with_the_clock(
    tenant_a: Tenant, shoppers: dict[str, int]
) -> None:
    post(
        tenant_a,
        "/api/v1/segments/",
        {
            "name": "Buyers",
            "publish": True,
            "rule": {"event": "Order Completed", "within": {"days": 2}},
        },
    )
    rule = {"all": [{"segment": "buyers"}, {"trait": "plan", "op": "eq", "value": "pro"}]}
    # buyers in the last 2 days: ann and cy; pro: ann and bob
    preview = post(tenant_a, "/api/v1/segments/preview/", {"rule": rule}).json()
    assert [p["id"] for p in preview["sample"]] == [shoppers["ann"]]
    with time_machine.travel(timezone.now() + timedelta(days=5)):
        windowed = {"event": "Order Completed", "within": {"days": 2}}
        assert post(tenant_a, "/api/v1/segments/preview/", {"rule": windowed}).json()["count"] == 0
    unknown = post(tenant_a, "/api/v1/segments/preview/", {"rule": {"segment": "nope"}})
    assert unknown.json()["error"]["message"] == (
        "rule.segment: no published segment 'nope' in this workspace"
    )


def test_permissions_and_isolation(
    tenant_a: Tenant, tenant_b: Tenant, shoppers: dict[str, int]
) -> None:
    sid = post(tenant_a, "/api/v1/segments/", {"name": "Pro", "rule": RULE}).json()["id"]
    assert (
        post(
            tenant_a, "/api/v1/segments/", {"name": "X", "rule": RULE}, role=Role.ANALYST
        ).status_code
        == 403
    )
    assert tenant_a.api(Role.ANALYST).get(f"/api/v1/segments/{sid}/").status_code == 200
    assert tenant_a.api(Role.PRIVACY_OFFICER).get("/api/v1/segments/").status_code == 403
    assert (
        post(
            tenant_a, "/api/v1/segments/", {"name": "M", "rule": RULE}, role=Role.MARKETER
        ).status_code
        == 201
    )
    assert tenant_b.api().get(f"/api/v1/segments/{sid}/").status_code == 404
    assert post(tenant_b, "/api/v1/segments/preview/", {"rule": RULE}).json()["count"] == 0
    assert tenant_a.api().get("/api/v1/segments/rule-schema/").json()["title"] == "Segment rule"


def test_real_time_entries_and_exits(tenant_a: Tenant, client: Client) -> None:
    from segments.models import MembershipChange

    rule = {
        "all": [
            {"trait": "plan", "op": "eq", "value": "pro"},
            {"event": "Order Completed", "count": {"op": "gte", "value": 2}},
        ]
    }
    sid = post(
        tenant_a, "/api/v1/segments/", {"name": "Loyal pros", "rule": rule, "publish": True}
    ).json()["id"]
    send(
        client,
        tenant_a,
        {"type": "identify", "userId": "dee", "traits": {"plan": "pro"}},
        order("dee", 10, 1),
    )
    process()
    assert Membership.objects.filter(segment_id=sid).count() == 0
    send(client, tenant_a, order("dee", 12, 0.5))
    process()
    dee = profile_of(tenant_a, "user_id", "dee").pk
    [stay] = Membership.objects.filter(segment_id=sid)
    assert (stay.profile_id, stay.version, stay.exited_at) == (dee, 1, None)
    send(client, tenant_a, {"type": "identify", "userId": "dee", "traits": {"plan": "free"}})
    process()
    stay.refresh_from_db()
    assert stay.exited_at is not None
    kinds = list(
        MembershipChange.objects.filter(segment_id=sid)
        .order_by("id")
        .values_list("kind", flat=True)
    )
    assert kinds == ["entered", "exited"]


def test_merged_away_profile_leaves_its_segments(tenant_a: Tenant, client: Client) -> None:
    rule = {"event": "Viewed", "count": {"op": "gte", "value": 1}}
    sid = post(
        tenant_a, "/api/v1/segments/", {"name": "Viewers", "rule": rule, "publish": True}
    ).json()["id"]
    send(
        client,
        tenant_a,
        {"type": "identify", "userId": "eve"},
        {"type": "track", "anonymousId": "eve-phone", "event": "Viewed"},
    )
    process()
    phone = profile_of(tenant_a, "anonymous_id", "eve-phone").pk
    assert Membership.objects.get(segment_id=sid, exited_at=None).profile_id == phone
    send(client, tenant_a, {"type": "identify", "userId": "eve", "anonymousId": "eve-phone"})
    process()
    eve = profile_of(tenant_a, "user_id", "eve").pk
    current = Membership.objects.filter(segment_id=sid, exited_at=None)
    assert [m.profile_id for m in current] == [eve]  # the survivor has the events now


def test_window_exit_happens_at_the_moment_the_window_runs_out(
    tenant_a: Tenant, client: Client
) -> None:
    from segments.models import Expiry
    from segments.realtime import segments_process_expiries

    start = timezone.now().replace(microsecond=0)
    with time_machine.travel(start, tick=False):
        rule = {
            "event": "Order Completed",
            "count": {"op": "gte", "value": 2},
            "within": {"days": 7},
        }
        sid = post(
            tenant_a, "/api/v1/segments/", {"name": "Weekly buyers", "rule": rule, "publish": True}
        ).json()["id"]
        first, second = start - timedelta(days=3), start - timedelta(days=1)
        send(
            client,
            tenant_a,
            {**order("fay", 10, 0), "timestamp": first.isoformat()},
            {**order("fay", 10, 0), "timestamp": second.isoformat()},
        )
        process()
        fay = profile_of(tenant_a, "user_id", "fay").pk
        assert Membership.objects.get(segment_id=sid, exited_at=None).profile_id == fay
        # the member leaves when the older of the two orders is 7 days old
        expiry = Expiry.objects.get(segment_id=sid, profile_id=fay)
        assert expiry.due_at == first + timedelta(days=7)
    with time_machine.travel(first + timedelta(days=7) - timedelta(seconds=1), tick=False):
        assert segments_process_expiries() == 0
    # the job runs a little late; the exit is recorded at the exact moment
    with time_machine.travel(first + timedelta(days=7, seconds=4), tick=False):
        assert segments_process_expiries() == 1
    stay = Membership.objects.get(segment_id=sid, profile_id=fay)
    assert stay.exited_at == first + timedelta(days=7)
    # the remaining order leaves its window later: scheduled for re-evaluation then
    assert Expiry.objects.get(segment_id=sid, profile_id=fay).due_at == second + timedelta(days=7)


def test_date_traits_enter_and_leave_by_time_alone(tenant_a: Tenant, client: Client) -> None:
    """No event needed: a customer becomes "lapsed" exactly 30 days after they were last seen,
    and leaves "in trial" exactly 14 days after the trial started."""
    from segments.models import Expiry, MembershipChange
    from segments.realtime import segments_process_expiries

    start = timezone.now().replace(microsecond=0)
    seen = start - timedelta(days=10)
    trial = start - timedelta(days=2)
    with time_machine.travel(start, tick=False):
        lapsed = {"trait": "last_seen", "op": "before", "value": {"days_ago": 30}}
        in_trial = {"trait": "trial_started_at", "op": "within_last", "value": {"days": 14}}
        lapsed_id = post(
            tenant_a, "/api/v1/segments/", {"name": "Lapsed", "rule": lapsed, "publish": True}
        ).json()["id"]
        trial_id = post(
            tenant_a, "/api/v1/segments/", {"name": "Trial", "rule": in_trial, "publish": True}
        ).json()["id"]
        send(
            client,
            tenant_a,
            {
                "type": "identify",
                "userId": "gus",
                "traits": {"trial_started_at": trial.isoformat()},
                "timestamp": seen.isoformat(),
            },
        )
        process()
        gus = profile_of(tenant_a, "user_id", "gus").pk
        assert not Membership.objects.filter(segment_id=lapsed_id).exists()
        assert Membership.objects.get(segment_id=trial_id).profile_id == gus
        due = {x.segment_id: x.due_at for x in Expiry.objects.filter(profile_id=gus)}
        assert due == {
            lapsed_id: seen + timedelta(days=30, microseconds=1),
            trial_id: trial + timedelta(days=14),
        }
    with time_machine.travel(start + timedelta(days=15), tick=False):
        assert segments_process_expiries() == 1  # the trial ran out on day 12
    left = Membership.objects.get(segment_id=trial_id, profile_id=gus)
    assert left.exited_at == trial + timedelta(days=14)
    with time_machine.travel(start + timedelta(days=21), tick=False):
        assert segments_process_expiries() == 1
    joined = Membership.objects.get(segment_id=lapsed_id, profile_id=gus)
    assert joined.entered_at == seen + timedelta(days=30, microseconds=1)
    assert joined.exited_at is None
    changes = MembershipChange.objects.filter(profile_id=gus).order_by("at")
    assert [(c.segment_id, c.kind) for c in changes] == [
        (trial_id, "entered"),
        (trial_id, "exited"),
        (lapsed_id, "entered"),
    ]
    # nothing more moves with time: a lapsed member stays lapsed until seen again
    assert not Expiry.objects.filter(profile_id=gus).exists()


def test_list_search_filters_and_order(tenant_a: Tenant, tenant_b: Tenant) -> None:
    from segments import services

    marketer = tenant_a.users[Role.MARKETER]
    made = {}
    for name, description, publish, owner in [
        ("Churn risk (pro plan)", "", True, marketer),
        ("Pro buyers", "bought twice", True, None),
        ("Newsletter fans", "opened the PRO newsletter", False, marketer),
        ("Winback", "", True, None),
    ]:
        made[name] = services.segment_create(
            workspace=tenant_a.workspace,
            name=name,
            description=description,
            rule={"trait": "plan", "op": "eq", "value": "pro"},
            publish=publish,
            actor=owner,
        )
    services.segment_update(
        segment=made["Winback"], rule={"trait": "plan", "op": "eq", "value": "free"}
    )
    services.segment_create(
        workspace=tenant_b.workspace, name="Pro elsewhere", rule={"trait": "x", "op": "exists"}
    )

    def names(query: str, role: str = Role.ANALYST) -> list[str]:
        answer = tenant_a.api(role).get("/api/v1/segments/" + query)
        assert answer.status_code == 200, answer.content
        return [row["name"] for row in answer.json()["results"]]

    assert names("") == ["Churn risk (pro plan)", "Newsletter fans", "Pro buyers", "Winback"]
    # every word somewhere in the name, key or description, any case
    assert names("?q=pro") == ["Churn risk (pro plan)", "Newsletter fans", "Pro buyers"]
    assert names("?q=pro+churn") == ["Churn risk (pro plan)"]
    assert names("?q=TWICE") == ["Pro buyers"]
    assert names("?q=churn-risk") == ["Churn risk (pro plan)"]  # the key
    assert names("?status=draft") == ["Newsletter fans"]
    assert names("?status=changed") == ["Winback"]
    assert names("?status=published&q=pro") == ["Churn risk (pro plan)", "Pro buyers"]
    assert names("?owner=me", Role.MARKETER) == ["Churn risk (pro plan)", "Newsletter fans"]
    assert names(f"?owner={marketer.pk}") == ["Churn risk (pro plan)", "Newsletter fans"]
    assert names("?owner=me") == []  # the analyst owns none
    assert names("?order=-updated")[0] == "Winback"
    for query, field in [
        ("?status=live", "status"),
        ("?order=size", "order"),
        ("?owner=x", "owner"),
    ]:
        bad = tenant_a.api(Role.ANALYST).get("/api/v1/segments/" + query)
        assert bad.status_code == 400 and list(bad.json()["error"]["detail"]["fields"]) == [field]


def test_duplicate_copies_the_current_rule_as_an_unpublished_segment(
    tenant_a: Tenant, tenant_b: Tenant, shoppers: dict[str, int]
) -> None:
    owner = tenant_a.api(Role.OWNER)
    made = owner.post(
        "/api/v1/segments/",
        {"name": "Pro buyers", "description": "twice a month", "rule": RULE, "publish": True},
        content_type="application/json",
    ).json()
    narrower = {"all": [*RULE["all"], {"trait": "plan", "op": "neq", "value": "team"}]}
    owner.patch(
        f"/api/v1/segments/{made['id']}/", {"rule": narrower}, content_type="application/json"
    )
    url = f"/api/v1/segments/{made['id']}/duplicate/"

    marketer = tenant_a.api(Role.MARKETER)  # may create, though not manage the original
    answer = marketer.post(url, {}, content_type="application/json")
    assert answer.status_code == 201, answer.content
    copy = answer.json()
    assert copy["name"] == "Copy of Pro buyers" and copy["key"] == "copy-of-pro-buyers"
    assert copy["status"] == "draft" and copy["published"] is None
    assert copy["draft"]["rule"] == narrower  # the draft, what the builder shows
    assert copy["owner"] == "marketer@alpha" and copy["description"] == "twice a month"
    assert Segment.objects.get(pk=copy["id"]).member_count == 0
    # the copy is the marketer's to change; the original is untouched
    assert (
        marketer.patch(
            f"/api/v1/segments/{copy['id']}/",
            {"name": "Pro buyers, no teams"},
            content_type="application/json",
        ).status_code
        == 200
    )
    original = owner.get(f"/api/v1/segments/{made['id']}/").json()
    assert original["member_count"] == made["member_count"] == 1
    assert original["published"]["rule"] == RULE

    named = marketer.post(url, {"name": "Holdout test"}, content_type="application/json")
    assert named.status_code == 201 and named.json()["name"] == "Holdout test"
    blank = marketer.post(url, {"name": ""}, content_type="application/json")
    assert blank.status_code == 400
    assert (
        tenant_a.api(Role.ANALYST).post(url, {}, content_type="application/json").status_code == 403
    )
    assert (
        tenant_b.api(Role.OWNER).post(url, {}, content_type="application/json").status_code == 404
    )
    assert Segment.objects.filter(workspace=tenant_a.workspace).count() == 3
    assert AuditLog.objects.filter(action="segment.duplicate").count() == 2


def test_tags_organise_the_list(tenant_a: Tenant, tenant_b: Tenant) -> None:
    owner = tenant_a.api(Role.OWNER)

    def create(name: str, tags: Any) -> Any:
        return owner.post(
            "/api/v1/segments/",
            {"name": name, "rule": {"trait": "plan", "op": "exists"}, "tags": tags},
            content_type="application/json",
        )

    made = create("Lapsed", ["Lifecycle", "  Q4   campaign ", "lifecycle"])
    assert made.status_code == 201, made.content
    assert made.json()["tags"] == ["lifecycle", "q4 campaign"]  # trimmed, lower-case, once
    accents = create("Été", ["Réactivation", "été_2026"])
    assert accents.json()["tags"] == ["réactivation", "été_2026"]  # any script
    create("Loyal", ["lifecycle"])
    create("Untagged", [])
    tenant_b.api(Role.OWNER).post(
        "/api/v1/segments/",
        {"name": "Elsewhere", "rule": {"trait": "plan", "op": "exists"}, "tags": ["lifecycle"]},
        content_type="application/json",
    )
    for tags, message in [
        ("lifecycle", "expected a list of strings"),
        (["ok", 7], "tags[1]: expected a string"),
        (["ok", "-dash first"], "tags[1]: '-dash first' is not a tag"),
        (["x" * 41], "tags[0]:"),
        ([f"t{i}" for i in range(11)], "at most 10 tags"),
    ]:
        bad = create("Bad", tags)
        assert bad.status_code == 400, tags
        assert message in bad.json()["error"]["message"], bad.json()
        assert list(bad.json()["error"]["detail"]["fields"])[0].startswith("tags")

    def names(query: str) -> list[str]:
        return [r["name"] for r in owner.get("/api/v1/segments/" + query).json()["results"]]

    assert names("?tag=lifecycle") == ["Lapsed", "Loyal"]
    assert names("?tag=R%C3%A9activation") == ["Été"]
    assert names("?tag=Q4+Campaign") == ["Lapsed"]
    assert names("?tag=nothing") == []
    listed = tenant_a.api(Role.ANALYST).get("/api/v1/segments/tags/").json()["results"]
    assert listed == [
        {"tag": "lifecycle", "segments": 2},
        {"tag": "q4 campaign", "segments": 1},
        {"tag": "réactivation", "segments": 1},
        {"tag": "été_2026", "segments": 1},
    ]

    # tags change without touching the rule's versions
    segment = made.json()
    changed = owner.patch(
        f"/api/v1/segments/{segment['id']}/", {"tags": ["winback"]}, content_type="application/json"
    )
    assert changed.status_code == 200 and changed.json()["tags"] == ["winback"]
    assert changed.json()["draft"]["number"] == 1
    copy = owner.post(
        f"/api/v1/segments/{segment['id']}/duplicate/", {}, content_type="application/json"
    )
    assert copy.json()["tags"] == ["winback"]
    assert names("?tag=lifecycle") == ["Loyal"]


def test_saving_the_live_rule_again_leaves_no_draft(
    tenant_a: Tenant, shoppers: dict[str, int]
) -> None:
    owner = tenant_a.api(Role.OWNER)
    made = owner.post(
        "/api/v1/segments/",
        {"name": "Pro buyers", "rule": RULE, "publish": True},
        content_type="application/json",
    ).json()
    url = f"/api/v1/segments/{made['id']}/"
    # the builder sends the rule with every save: a rename keeps the live rule, no draft
    same = owner.patch(
        url, {"name": "Pro buyers (EU)", "rule": RULE}, content_type="application/json"
    )
    assert same.status_code == 200
    assert same.json()["draft"] is None and same.json()["published"]["number"] == 1
    other = {"trait": "plan", "op": "eq", "value": "pro"}
    assert (
        owner.patch(url, {"rule": other}, content_type="application/json").json()["draft"]["number"]
        == 2
    )
    # an edit undone: the draft goes, the live version stays
    back = owner.patch(url, {"rule": RULE}, content_type="application/json").json()
    assert back["draft"] is None and back["status"] == "published"
    assert Segment.objects.get(pk=made["id"]).versions.count() == 1
    nothing = owner.post(url + "publish/")
    assert nothing.status_code == 409 and nothing.json()["error"]["code"] == "no_draft"
    # "make this rule live" is idempotent through PATCH
    ensured = owner.patch(url, {"rule": RULE, "publish": True}, content_type="application/json")
    assert ensured.status_code == 200 and ensured.json()["published"]["number"] == 1


def test_versions_and_restoring_an_earlier_rule(
    tenant_a: Tenant, tenant_b: Tenant, shoppers: dict[str, int]
) -> None:
    owner = tenant_a.api(Role.OWNER)
    v1 = {"trait": "plan", "op": "eq", "value": "pro"}
    v2 = RULE
    made = owner.post(
        "/api/v1/segments/",
        {"name": "Pro", "rule": v1, "publish": True},
        content_type="application/json",
    ).json()
    url = f"/api/v1/segments/{made['id']}/"
    owner.patch(url, {"rule": v2, "publish": True}, content_type="application/json")
    versions = tenant_a.api(Role.ANALYST).get(url + "versions/").json()["results"]
    assert [(v["number"], v["state"]) for v in versions] == [(2, "live"), (1, "earlier")]
    assert versions[1]["rule"] == v1 and versions[1]["created_by"] == "owner@alpha"
    assert versions[1]["published_at"] is not None

    # roll back: v1's rule becomes the draft (v3), reviewed and published like any edit
    analyst = tenant_a.api(Role.ANALYST).post(url + "versions/1/restore/")
    assert analyst.status_code == 403
    restored = owner.post(url + "versions/1/restore/")
    assert restored.status_code == 200, restored.content
    assert restored.json()["draft"]["number"] == 3 and restored.json()["draft"]["rule"] == v1
    diff = owner.get(url + "diff/").json()
    assert diff["entering"] == 1  # bob (pro, but not two big orders) comes back
    again = owner.post(url + "versions/3/restore/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_draft"
    # restoring the live rule leaves no draft
    live = owner.post(url + "versions/2/restore/").json()
    assert live["draft"] is None
    assert owner.post(url + "versions/9/restore/").status_code == 404
    assert tenant_b.api(Role.OWNER).get(url + "versions/").status_code == 404
    restores = AuditLog.objects.filter(action="segment.restore")
    assert [a.detail["version"] for a in restores] == [1, 2]
