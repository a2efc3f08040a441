"""The profile page's activity: events per week by type, orders and revenue per month, the
timeline's filters by type and event name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from profiles.identity.activity import profile_activity, profile_event_names
from profiles.models import Profile
from profiles.pipeline import queue
from tests.fixtures import Tenant, post_collector

pytestmark = pytest.mark.django_db

LAST = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # a Friday


def _send(tenant: Tenant, events: list[dict[str, Any]]) -> Profile:
    response = post_collector(
        tenant.session(), "/v1/batch", {"batch": events}, write_key=tenant.write_key
    )
    assert response.status_code == 200, response.content
    queue.drain()
    return Profile.objects.get(workspace=tenant.workspace, merged_into__isnull=True)


def _order(at: datetime, revenue: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": "kevin",
        "event": "Order Completed",
        "properties": {"revenue": revenue},
        "timestamp": at.isoformat(),
    }


@pytest.fixture
def kevin(tenant_a: Tenant) -> Profile:
    return _send(
        tenant_a,
        [
            {
                "type": "identify",
                "userId": "kevin",
                "traits": {"first_name": "Kevin"},
                "timestamp": (LAST - timedelta(days=70)).isoformat(),
            },
            _order(LAST - timedelta(days=70), 10),
            _order(
                LAST - timedelta(days=40), "12.50"
            ),  # a numeric string counts, as in the pipeline
            _order(LAST - timedelta(days=39), "n/a"),  # an order without a usable amount
            _order(LAST, 7.25),
            {"type": "page", "userId": "kevin", "name": "Home", "timestamp": LAST.isoformat()},
            {
                "type": "page",
                "userId": "kevin",
                "name": "Home",
                "timestamp": (LAST - timedelta(hours=1)).isoformat(),
            },
            # older than a year before the last event: outside the weekly chart
            {
                "type": "track",
                "userId": "kevin",
                "event": "Signed Up",
                "timestamp": (LAST - timedelta(days=400)).isoformat(),
            },
        ],
    )


def test_weekly_events_by_type_end_at_the_last_event(kevin: Profile) -> None:
    activity = profile_activity(profile=kevin)
    assert len(activity["weeks"]) == 52
    assert activity["weeks"][-1] == "2026-11-16"  # the Monday of the last event's week
    series = {s["key"]: s["values"] for s in activity["series"]}
    assert series["page"][-1] == 2 and sum(series["page"]) == 2
    assert series["track"][-1] == 1 and sum(series["track"]) == 4  # the old sign-up is out
    assert sum(series["identify"]) == 1
    assert "screen" not in series  # nothing of that type: no series


def test_orders_and_revenue_per_month(kevin: Profile) -> None:
    activity = profile_activity(profile=kevin)
    assert len(activity["months"]) == 24 and activity["months"][-1] == "2026-11-01"
    by_month = dict(
        zip(
            activity["months"],
            zip(activity["orders"], activity["revenue"], strict=True),
            strict=True,
        )
    )
    assert by_month["2026-11-01"] == (1, 7.25)
    assert by_month["2026-10-01"] == (2, 12.5)  # "12.50" counted, "n/a" an order of 0
    assert by_month["2026-09-01"] == (1, 10.0)
    assert sum(activity["orders"]) == kevin.order_count == 4
    assert sum(activity["revenue"]) == pytest.approx(float(kevin.revenue))


def test_a_profile_without_events_has_an_empty_activity(tenant_a: Tenant) -> None:
    profile = Profile.objects.create(workspace=tenant_a.workspace)
    assert profile_activity(profile=profile)["weeks"] == []
    page = tenant_a.session().get(f"/profiles/{profile.pk}/")
    assert page.status_code == 200 and b'id="activity-card"' not in page.content


def test_the_page_draws_the_activity_with_tables(tenant_a: Tenant, kevin: Profile) -> None:
    html = tenant_a.session().get(f"/profiles/{kevin.pk}/").content.decode()
    assert 'id="activity-data"' in html and 'id="activity-weeks"' in html
    assert '<th scope="row">2026-11</th>' in html  # the monthly table
    assert "$7.25" in html  # the workspace's currency
    assert 'value="Order Completed" data-type="track">Order Completed (track, 4)' in html


def test_event_names_and_the_timeline_filters(tenant_a: Tenant, kevin: Profile) -> None:
    names = profile_event_names(profile=kevin)
    assert names[0] == {"type": "track", "name": "Order Completed", "count": 4}
    api = tenant_a.api()
    url = f"/api/v1/profiles/{kevin.pk}/events/"
    orders = api.get(url, {"event": "Order Completed"}).json()
    assert orders["count"] == 4 and {e["event"] for e in orders["results"]} == {"Order Completed"}
    pages = api.get(url, {"type": "page", "event": "Home"}).json()
    assert pages["count"] == 2
    assert api.get(url, {"type": "track", "event": "Home"}).json()["count"] == 0
    long = api.get(url, {"event": "x" * 256})
    assert long.status_code == 400 and "event" in long.json()["error"]["detail"]["fields"]
