"""/api/v1/computed-traits/: CRUD, validation errors by path, permissions, workspace isolation,
refresh; window expiry on the clock; the scheduled built-ins (RFM, AOV, days since last
order, engagement score)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test import Client

from cdp.celery import app as celery_app
from cdp.models import AuditLog, Role
from profiles.computed import builtin, services
from profiles.computed.selectors import profile_computed_traits
from profiles.computed.sql import UPDATED
from profiles.identity.profile_state import engagement_score, engagement_term
from profiles.models import ComputedTrait, Identity, Profile
from tests.fixtures import Tenant, send_events

URL = "/api/v1/computed-traits/"
SPEND = {
    "key": "lifetime_spend",
    "name": "Lifetime spend",
    "aggregation": "sum",
    "event": "Order Completed",
    "property": "revenue",
}


@pytest.fixture
def eager_tasks() -> Any:
    """Tasks enqueued on commit run at once (the backfill, in these tests)."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


send = partial(send_events, drain=1000)


def order(user: str, revenue: Any, days_ago: float = 0) -> dict[str, Any]:
    ts = datetime.now(UTC) - timedelta(days=days_ago)
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user,
        "timestamp": ts.isoformat(),
        "properties": {"revenue": revenue},
    }


def profile_of(tenant: Tenant, user_id: str) -> Profile:
    return Identity.objects.get(workspace=tenant.workspace, type="user_id", value=user_id).profile


def error(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]  # type: ignore[no-any-return]


# ---- CRUD ------------------------------------------------------------------------------------


def test_create_backfills_and_the_pipeline_keeps_it_current(
    tenant_a: Tenant, client: Client, eager_tasks: Any, django_capture_on_commit_callbacks: Any
) -> None:
    send(client, tenant_a, order("u-1", 20), order("u-1", "15.5"), order("u-2", "n/a"))
    api = tenant_a.api()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.post(URL, SPEND, content_type="application/json")
    assert response.status_code == 201, response.content
    assert len(callbacks) == 1  # the backfill
    body = response.json()
    assert body["key"] == "lifetime_spend" and body["aggregation"] == "sum"
    assert body["where"] == [] and body["window_days"] is None
    assert body["created_by"] == "owner@alpha"
    trait = ComputedTrait.objects.get(pk=body["id"])
    assert trait.last_refreshed_at is not None
    assert profile_of(tenant_a, "u-1").computed["lifetime_spend"] == 35.5
    assert "lifetime_spend" not in profile_of(tenant_a, "u-2").computed  # no number: absent
    assert AuditLog.objects.filter(action="computed_trait.create").count() == 1

    send(client, tenant_a, order("u-1", 4.5), order("u-2", 10))
    u1 = profile_of(tenant_a, "u-1")
    assert u1.computed["lifetime_spend"] == 40
    assert profile_of(tenant_a, "u-2").computed["lifetime_spend"] == 10
    assert "lifetime_spend" in u1.computed[UPDATED]

    listed = api.get(URL).json()
    assert set(listed) >= {"count", "next", "results"}
    assert listed["count"] == 1 and listed["next"] is None
    assert listed["results"][0]["key"] == "lifetime_spend"
    assert api.get(f"{URL}{trait.pk}/").json()["name"] == "Lifetime spend"

    traits = {t["key"]: t for t in profile_computed_traits(u1)}
    assert traits["lifetime_spend"] == {
        "key": "lifetime_spend",
        "label": "Lifetime spend",
        "value": 40,
        "kind": "custom",
        "updated": u1.computed[UPDATED]["lifetime_spend"],
    }
    assert traits["order_count"]["value"] == 3 and traits["order_count"]["kind"] == "builtin"


def test_update_backfills_only_when_the_definition_changes(
    tenant_a: Tenant, client: Client, eager_tasks: Any, django_capture_on_commit_callbacks: Any
) -> None:
    send(client, tenant_a, order("u-1", 20), order("u-1", 50))
    api = tenant_a.api()
    with django_capture_on_commit_callbacks(execute=True):
        trait_id = api.post(URL, SPEND, content_type="application/json").json()["id"]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.patch(
            f"{URL}{trait_id}/", {"name": "Spend", "description": "All orders"},
            content_type="application/json",
        )  # fmt: skip
    assert response.status_code == 200 and response.json()["name"] == "Spend"
    assert response.json()["last_refreshed_at"] is not None
    assert callbacks == []
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.patch(
            f"{URL}{trait_id}/",
            {"where": [{"property": "revenue", "op": "gte", "value": 30}], "window_days": 30},
            content_type="application/json",
        )
    assert response.status_code == 200, response.content
    assert response.json()["last_refreshed_at"] is None  # old values until the backfill ran
    assert len(callbacks) == 1
    assert ComputedTrait.objects.get(pk=trait_id).last_refreshed_at is not None
    assert profile_of(tenant_a, "u-1").computed["lifetime_spend"] == 50
    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(
            f"{URL}{trait_id}/", {"aggregation": "max"}, content_type="application/json"
        )
    assert response.json()["aggregation"] == "max"
    assert profile_of(tenant_a, "u-1").computed["lifetime_spend"] == 50


def test_delete_removes_the_values(
    tenant_a: Tenant, client: Client, eager_tasks: Any, django_capture_on_commit_callbacks: Any
) -> None:
    send(client, tenant_a, order("u-1", 20))
    api = tenant_a.api()
    with django_capture_on_commit_callbacks(execute=True):
        trait_id = api.post(URL, SPEND, content_type="application/json").json()["id"]
    assert profile_of(tenant_a, "u-1").computed["lifetime_spend"] == 20
    assert api.delete(f"{URL}{trait_id}/").status_code == 204
    computed = profile_of(tenant_a, "u-1").computed
    assert "lifetime_spend" not in computed and "lifetime_spend" not in computed[UPDATED]
    assert api.get(f"{URL}{trait_id}/").status_code == 404
    assert not ComputedTrait.objects.exists()


def test_refresh_endpoint_enqueues_a_full_recompute(
    tenant_a: Tenant, client: Client, eager_tasks: Any, django_capture_on_commit_callbacks: Any
) -> None:
    api = tenant_a.api()
    with django_capture_on_commit_callbacks(execute=False):
        trait_id = api.post(
            URL, {"key": "orders", "name": "Orders", "aggregation": "count"},
            content_type="application/json",
        ).json()["id"]  # fmt: skip
    send(client, tenant_a, order("u-1", 1), {"type": "identify", "userId": "u-2"})
    # u-2 was created after the trait: a count reads 0 on it, not "absent"
    assert profile_of(tenant_a, "u-2").computed["orders"] == 0
    Profile.objects.filter(workspace=tenant_a.workspace).update(computed={})  # lose the values
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.post(f"{URL}{trait_id}/refresh/")
    assert response.status_code == 202
    assert response.json() == {"id": trait_id, "status": "queued"}
    assert len(callbacks) == 1
    assert profile_of(tenant_a, "u-1").computed["orders"] == 1
    assert profile_of(tenant_a, "u-2").computed["orders"] == 0


def test_builtin_list(tenant_a: Tenant) -> None:
    body = tenant_a.api(Role.ANALYST).get(f"{URL}builtin/").json()
    keys = [t["key"] for t in body["results"]]
    assert body["count"] == len(keys) == len(builtin.BUILTIN_TRAITS)
    for key in ["first_seen", "last_seen", "event_count", "order_count", "total_revenue",
                "average_order_value", "first_order_at", "last_order_at",
                "days_since_last_order", "rfm_recency", "rfm_frequency", "rfm_monetary",
                "rfm_score", "rfm_segment", "engagement_score"]:  # fmt: skip
        assert key in keys
    revenue = next(t for t in body["results"] if t["key"] == "total_revenue")
    assert revenue["source"] == "profile" and revenue["column"] == "revenue"
    segment = next(t for t in body["results"] if t["key"] == "rfm_segment")
    assert segment["computed_key"] == "rfm_segment" and "Champions" in segment["values"]


# ---- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        (
            {"where": [{"property": "revenue", "op": "gt", "value": 1},
                       {"property": "revenue", "op": "foo", "value": 1}]},
            "where[1].op",
            "unknown operator 'foo'",
        ),
        ({"where": [{"property": "revenue", "op": "gt", "value": "x"}]}, "where[0].value",
         "expected a number"),
        ({"where": [{"property": "", "op": "exists"}]}, "where[0].property", "must not be empty"),
        ({"where": [{"property": "a", "op": "in", "value": []}]}, "where[0].value",
         "expected a non-empty list"),
        ({"where": [{"property": "a", "op": "in", "value": [1, {"x": 1}]}]},
         "where[0].value[1]", "expected a string, number or boolean"),
        ({"where": [{"property": "a", "op": "exists", "value": 3}]}, "where[0].value",
         "exists takes no value"),
        ({"where": [{"property": "a", "op": "eq", "value": 1, "x": 2}]}, "where[0].x",
         "unknown field"),
        ({"where": {"property": "a"}}, "where", "expected a list of filters"),
        ({"key": "Lifetime Spend"}, "key", "must be lower-case letters"),
        ({"key": "order_count"}, "key", "'order_count' is a built-in trait"),
        ({"key": ""}, "key", "required"),
        ({"aggregation": "median"}, "aggregation", "unknown aggregation 'median'"),
        ({"property": ""}, "property", "required for aggregation 'sum'"),
        ({"property": "items..price"}, "property", "is not a dotted property path"),
        ({"aggregation": "count"}, "property", "must be empty for count"),
        ({"window_days": 0}, "window_days", "1 to 3650"),
        ({"window_days": 3651}, "window_days", "1 to 3650"),
        ({"window_days": "7"}, "window_days", "1 to 3650"),
        ({"name": "  "}, "name", "must not be empty"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_path(
    tenant_a: Tenant, changes: dict[str, Any], path: str, message: str
) -> None:
    response = tenant_a.api().post(URL, {**SPEND, **changes}, content_type="application/json")
    assert response.status_code == 400, response.content
    err = error(response)
    assert err["message"].startswith(f"{path}: "), err
    assert message in err["message"]
    assert path in err["detail"]["fields"]
    assert not ComputedTrait.objects.exists()


def test_duplicate_key_and_key_change(tenant_a: Tenant, tenant_b: Tenant) -> None:
    api = tenant_a.api()
    trait_id = api.post(URL, SPEND, content_type="application/json").json()["id"]
    response = api.post(URL, SPEND, content_type="application/json")
    assert response.status_code == 409 and error(response)["code"] == "duplicate"
    response = api.patch(f"{URL}{trait_id}/", {"key": "other"}, content_type="application/json")
    assert response.status_code == 400
    assert error(response)["message"].startswith("key: cannot be changed")
    response = api.patch(
        f"{URL}{trait_id}/", {"aggregation": "count"}, content_type="application/json"
    )
    assert error(response)["message"].startswith("property: must be empty for count")
    # the same key in another workspace is fine
    assert tenant_b.api().post(URL, SPEND, content_type="application/json").status_code == 201


# ---- permissions and isolation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "can_view", "can_manage"),
    [
        (Role.OWNER, True, True),
        (Role.ADMIN, True, True),
        (Role.ANALYST, True, False),
        (Role.PRIVACY_OFFICER, False, False),
    ],
)
def test_permissions_by_role(tenant_a: Tenant, role: str, can_view: bool, can_manage: bool) -> None:
    """Marketers: test_marketers_manage_the_traits_they_made_not_others."""
    trait_id = tenant_a.api().post(URL, SPEND, content_type="application/json").json()["id"]
    api = tenant_a.api(role)
    view = 200 if can_view else 403
    manage = (lambda ok: ok) if can_manage else (lambda ok: 403)
    assert api.get(URL).status_code == view
    assert api.get(f"{URL}{trait_id}/").status_code == view
    assert api.get(f"{URL}builtin/").status_code == view
    created = api.post(URL, {**SPEND, "key": "other"}, content_type="application/json")
    assert created.status_code == manage(201)
    patched = api.patch(f"{URL}{trait_id}/", {"name": "x"}, content_type="application/json")
    assert patched.status_code == manage(200)
    assert api.post(f"{URL}{trait_id}/refresh/").status_code == manage(202)
    assert api.delete(f"{URL}{trait_id}/").status_code == manage(204)
    if not can_manage:
        assert error(created)["code"] == "forbidden"


def test_marketers_manage_the_traits_they_made_not_others(tenant_a: Tenant) -> None:
    from django.contrib.auth import get_user_model

    from cdp.models import ApiToken, Membership

    owners = tenant_a.api().post(URL, SPEND, content_type="application/json").json()["id"]
    marketer = tenant_a.api(Role.MARKETER)
    made = marketer.post(URL, {**SPEND, "key": "mine"}, content_type="application/json")
    assert made.status_code == 201
    mine = made.json()["id"]
    # the owner's trait: readable, not changeable or deletable by a marketer
    assert marketer.get(f"{URL}{owners}/").status_code == 200
    for answer in (
        marketer.patch(f"{URL}{owners}/", {"name": "x"}, content_type="application/json"),
        marketer.post(f"{URL}{owners}/refresh/"),
        marketer.delete(f"{URL}{owners}/"),
    ):
        assert answer.status_code == 403 and error(answer)["code"] == "forbidden"
    # another marketer cannot touch this one's either; its maker can
    other = get_user_model().objects.create_user(username="mo@alpha")
    Membership.objects.create(workspace=tenant_a.workspace, user=other, role=Role.MARKETER)
    token = ApiToken.objects.create(workspace=tenant_a.workspace, user=other, name="t").secret
    stranger = Client(HTTP_AUTHORIZATION=f"Token {token}")
    assert stranger.delete(f"{URL}{mine}/").status_code == 403
    assert (
        marketer.patch(
            f"{URL}{mine}/", {"name": "Mine"}, content_type="application/json"
        ).status_code
        == 200
    )
    assert marketer.delete(f"{URL}{mine}/").status_code == 204
    # an admin manages every trait
    assert tenant_a.api(Role.ADMIN).delete(f"{URL}{owners}/").status_code == 204


def test_workspace_b_cannot_see_or_touch_a(tenant_a: Tenant, tenant_b: Tenant) -> None:
    trait_id = tenant_a.api().post(URL, SPEND, content_type="application/json").json()["id"]
    b = tenant_b.api()
    assert b.get(URL).json()["count"] == 0
    assert b.get(f"{URL}{trait_id}/").status_code == 404
    assert (
        b.patch(f"{URL}{trait_id}/", {"name": "x"}, content_type="application/json").status_code
        == 404
    )
    assert b.post(f"{URL}{trait_id}/refresh/").status_code == 404
    assert b.delete(f"{URL}{trait_id}/").status_code == 404
    assert ComputedTrait.objects.get(pk=trait_id).name == "Lifetime spend"
    assert Client().get(URL).status_code in (401, 403)


# ---- windows ---------------------------------------------------------------------------------


def test_window_slides_with_the_clock(tenant_a: Tenant, client: Client) -> None:
    t0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    def view(user: str, days_ago: float) -> dict[str, Any]:
        ts = t0 - timedelta(days=days_ago)
        return {"type": "track", "event": "Product Viewed", "userId": user,
                "timestamp": ts.isoformat(), "properties": {"price": days_ago}}  # fmt: skip

    with time_machine.travel(t0, tick=False):
        response = tenant_a.api().post(
            URL,
            {"key": "views_7d", "name": "Views, 7 days", "aggregation": "count",
             "event": "Product Viewed", "window_days": 7},
            content_type="application/json",
        )  # fmt: skip
        assert response.status_code == 201
        send(client, tenant_a, view("u-1", 1), view("u-1", 5), view("u-1", 9), view("u-2", 6))
        send(client, tenant_a, {**order("u-1", 5), "timestamp": t0.isoformat()})
        assert profile_of(tenant_a, "u-1").computed["views_7d"] == 2
        assert profile_of(tenant_a, "u-2").computed["views_7d"] == 1
        # not refreshed yet: left to its backfill (here: the sweeper, once the grace is over)
        assert services.computed_traits_refresh_windows() == 0
        assert services.computed_traits_backfill_missing() == 0
    with time_machine.travel(t0 + timedelta(minutes=11), tick=False):
        assert services.computed_traits_backfill_missing() == 1
        trait = ComputedTrait.objects.get(key="views_7d")
        assert trait.last_refreshed_at == t0 + timedelta(minutes=11)

    with time_machine.travel(t0 + timedelta(days=1, hours=12), tick=False):
        assert services.computed_traits_refresh_windows() == 1  # u-2's view left
        assert profile_of(tenant_a, "u-1").computed["views_7d"] == 2
        assert profile_of(tenant_a, "u-2").computed["views_7d"] == 0

    with time_machine.travel(t0 + timedelta(days=3), tick=False):
        services.computed_traits_refresh_windows()
        assert profile_of(tenant_a, "u-1").computed["views_7d"] == 1

    with time_machine.travel(t0 + timedelta(days=6, hours=23), tick=False):
        assert services.computed_traits_refresh_windows() == 1
        u1 = profile_of(tenant_a, "u-1")
        assert u1.computed["views_7d"] == 0
        assert u1.computed[UPDATED]["views_7d"] == (t0 + timedelta(days=6, hours=23)).isoformat()
        assert services.computed_traits_refresh_windows() == 0  # nothing left to expire


# ---- built-ins -------------------------------------------------------------------------------

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
# (days since last order, orders, revenue) -> expected (R, F, M, segment). Quintiles of 10:
# two per bucket. Frequency has five customers with one order: NTILE alone would give them
# 1, 1, 2, 2, 3; ties take the lowest score, so all get 1, and the two with 2 orders get 3
# (their first position is in bucket 3). Revenue 20 twice straddles buckets 1 and 2: both 1.
BUYERS = [
    ((1, 8, "1000"), (5, 5, 5, "Champions")),
    ((1, 5, "500"), (5, 5, 5, "Champions")),
    ((3, 3, "200"), (4, 4, 4, "Loyal Customers")),
    ((10, 1, "20"), (4, 1, 1, "Promising")),
    ((20, 2, "120"), (3, 3, 4, "Need Attention")),
    ((30, 2, "80"), (3, 3, 3, "Need Attention")),
    ((60, 1, "50"), (2, 1, 3, "Hibernating")),
    ((90, 1, "35.50"), (2, 1, 2, "Hibernating")),
    ((200, 1, "20"), (1, 1, 1, "Hibernating")),
    ((400, 1, "10"), (1, 1, 1, "Hibernating")),
]
RFM_MAP = {  # the standard map, as given
    "Hibernating": [(r, f) for r in (1, 2) for f in (1, 2)],
    "At Risk": [(r, f) for r in (1, 2) for f in (3, 4)],
    "Can't Lose Them": [(1, 5), (2, 5)],
    "About to Sleep": [(3, 1), (3, 2)],
    "Need Attention": [(3, 3)],
    "Loyal Customers": [(r, f) for r in (3, 4) for f in (4, 5)],
    "Promising": [(4, 1)],
    "New Customers": [(5, 1)],
    "Potential Loyalists": [(r, f) for r in (4, 5) for f in (2, 3)],
    "Champions": [(5, 4), (5, 5)],
}


def test_rfm_segment_map_in_python_and_sql(db: Any) -> None:
    expected = {pair: name for name, pairs in RFM_MAP.items() for pair in pairs}
    assert len(expected) == 25
    from profiles.computed.sql import _SEGMENT

    for (r, f), name in expected.items():
        assert builtin.rfm_segment(r, f) == name
    values = ", ".join(f"({r}, {f})" for r, f in expected)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT r, f, {_SEGMENT} FROM (VALUES {values}) t(r, f)")  # noqa: S608
        assert {(r, f): name for r, f, name in cursor.fetchall()} == expected


def test_builtin_refresh(tenant_a: Tenant, tenant_b: Tenant) -> None:
    ws = tenant_a.workspace
    buyers = [
        Profile.objects.create(
            workspace=ws,
            order_count=orders,
            revenue=Decimal(revenue),
            first_order_at=NOW - timedelta(days=500),
            last_order_at=NOW - timedelta(days=days, hours=3),
            engagement_log2=engagement_term(NOW - timedelta(days=days), 5.0),
            computed={"custom": 1},
        )
        for (days, orders, revenue), _ in BUYERS
    ]
    idle = Profile.objects.create(workspace=ws)
    stale = Profile.objects.create(
        workspace=ws, computed={"rfm_score": "111", "average_order_value": 3}
    )
    busy = Profile.objects.create(workspace=ws, engagement_log2=engagement_term(NOW, 40.0))
    ancient = Profile.objects.create(workspace=ws, engagement_log2=-5000.0)
    merged = Profile.objects.create(workspace=ws, merged_into=idle, order_count=3, revenue=9)
    other = Profile.objects.create(workspace=tenant_b.workspace, order_count=1, revenue=5,
                                   last_order_at=NOW)  # fmt: skip

    changed = services.builtin_traits_refresh(workspace_id=ws.pk, now=NOW, chunk_size=4)
    assert changed == len(buyers) + 4  # busy, stale (cleared), idle and ancient (score 0)

    for profile, ((days, orders, revenue), (r, f, m, segment)) in zip(buyers, BUYERS, strict=True):
        profile.refresh_from_db()
        values = {k: v for k, v in profile.computed.items() if k != UPDATED}
        aov = float((Decimal(revenue) / orders).quantize(Decimal("0.01")))
        assert values == {
            "custom": 1,
            "average_order_value": aov,
            "days_since_last_order": days,
            "engagement_score": engagement_score(profile.engagement_log2, NOW),
            "rfm_recency": r,
            "rfm_frequency": f,
            "rfm_monetary": m,
            "rfm_score": f"{r}{f}{m}",
            "rfm_segment": segment,
        }, (days, orders, revenue)
        assert set(profile.computed[UPDATED]) == set(values) - {"custom"}
    for profile in (idle, stale, busy, ancient):
        profile.refresh_from_db()
        values = {k: v for k, v in profile.computed.items() if k != UPDATED}
        assert values == {"engagement_score": engagement_score(profile.engagement_log2, NOW)}
    busy_score = busy.computed["engagement_score"]
    assert 50 < busy_score <= 100 and ancient.computed["engagement_score"] == 0
    merged.refresh_from_db()
    other.refresh_from_db()
    assert merged.computed == {} and other.computed == {}

    # unchanged values are not rewritten
    assert services.builtin_traits_refresh(workspace_id=ws.pk, now=NOW) == 0

    champion = buyers[0]
    rows = {t["key"]: t for t in profile_computed_traits(champion, now=NOW)}
    assert rows["rfm_segment"]["value"] == "Champions" and rows["rfm_segment"]["kind"] == "builtin"
    assert rows["rfm_segment"]["updated"] == NOW.isoformat()
    assert rows["average_order_value"]["value"] == 125.0
    assert rows["total_revenue"]["value"] == 1000.0
    assert rows["days_since_last_order"]["value"] == 1
    later = {t["key"]: t for t in profile_computed_traits(champion, now=NOW + timedelta(days=2))}
    assert later["days_since_last_order"]["value"] == 3  # live, not the hourly snapshot
    assert [t["key"] for t in profile_computed_traits(idle)][: len(builtin.BUILTIN_TRAITS)] == [
        t.key for t in builtin.BUILTIN_TRAITS
    ]


def test_builtin_refresh_with_few_customers(tenant_a: Tenant) -> None:
    """Fewer than five customers: NTILE leaves buckets empty; scores still 1..n."""
    ws = tenant_a.workspace
    a = Profile.objects.create(workspace=ws, order_count=1, revenue=10,
                               last_order_at=NOW - timedelta(days=40))  # fmt: skip
    b = Profile.objects.create(workspace=ws, order_count=4, revenue=90,
                               last_order_at=NOW - timedelta(hours=1))  # fmt: skip
    services.builtin_traits_refresh(workspace_id=ws.pk, now=NOW)
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.computed["rfm_score"] == "111" and a.computed["rfm_segment"] == "Hibernating"
    assert b.computed["rfm_score"] == "222" and b.computed["rfm_segment"] == "Hibernating"
    assert b.computed["days_since_last_order"] == 0


def test_scheduled_tasks(tenant_a: Tenant, tenant_b: Tenant, eager_tasks: Any) -> None:
    from django.conf import settings

    from profiles import tasks

    schedule = {
        entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()
    }
    assert schedule["profiles.tasks.computed_traits_refresh_windows"] == 300
    assert schedule["profiles.tasks.builtin_traits_refresh_all"] == 3600

    a = Profile.objects.create(workspace=tenant_a.workspace, order_count=1, revenue=7,
                               last_order_at=NOW)  # fmt: skip
    b = Profile.objects.create(workspace=tenant_b.workspace, order_count=2, revenue=7,
                               last_order_at=NOW)  # fmt: skip
    assert tasks.builtin_traits_refresh_all.apply().get() >= 2
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.computed["rfm_score"] == "111" and b.computed["average_order_value"] == 3.5

    trait = services.computed_trait_create(
        workspace=tenant_a.workspace, actor=None, data={**SPEND, "window_days": 30}
    )  # its backfill task is "lost": never run (on_commit does not fire here)
    ComputedTrait.objects.filter(pk=trait.pk).update(
        updated_at=datetime.now(UTC) - timedelta(hours=1)
    )
    assert tasks.computed_traits_refresh_windows.apply().get() == 0
    assert ComputedTrait.objects.get(pk=trait.pk).last_refreshed_at is not None  # swept
    assert tasks.computed_trait_backfill.apply(args=[trait.pk + 1000]).get() == 0  # deleted
