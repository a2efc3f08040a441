"""The overview: the landing page, its registry of widgets (filled by every app), their numbers
and their cache."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from cdp import overview
from cdp.models import Role
from consent.services import purposes_install_defaults
from profiles.computed.services import builtin_traits_refresh
from profiles.models import Profile
from profiles.pipeline import queue
from segments.services import segment_create
from tests.fixtures import Tenant, post_collector

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _inline(settings: Any) -> None:
    """The numbers in one request (the page otherwise says "computing" while a task runs)."""
    settings.CDP_OVERVIEW_INLINE = True


def _send(tenant: Tenant, events: list[dict[str, Any]]) -> None:
    client = tenant.session()
    response = post_collector(client, "/v1/batch", {"batch": events}, write_key=tenant.write_key)
    assert response.status_code == 200, response.content
    queue.drain()


def _iso(days_ago: int, hour: int = 12) -> str:
    day = timezone.now().astimezone(UTC).date() - timedelta(days=days_ago)
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).isoformat()


def _data_of(html: str, key: str) -> Any:
    found = re.search(
        rf'<script id="ov-data-{key}" type="application/json">(.*?)</script>', html, re.S
    )
    assert found, f"no data for {key}"
    return json.loads(found.group(1))


def _shop(tenant: Tenant) -> None:
    """Three people: one buys twice (seen 10 and 2 days ago), one buys once today (new), one
    anonymous visitor today; events of each type."""
    _send(
        tenant,
        [
            {
                "type": "identify",
                "userId": "u1",
                "traits": {"email": "a@x.io"},
                "timestamp": _iso(10),
            },
            {
                "type": "track",
                "userId": "u1",
                "event": "Order Completed",
                "properties": {"revenue": 30},
                "timestamp": _iso(10),
            },
            {
                "type": "track",
                "userId": "u1",
                "event": "Order Completed",
                "properties": {"revenue": 20},
                "timestamp": _iso(2),
            },
            {"type": "page", "userId": "u1", "name": "Home", "timestamp": _iso(2)},
            {
                "type": "identify",
                "userId": "u2",
                "traits": {"email": "b@x.io"},
                "timestamp": _iso(0, 1),
            },
            {
                "type": "track",
                "userId": "u2",
                "event": "Order Completed",
                "properties": {"revenue": 5},
                "timestamp": _iso(0, 1),
            },
            {"type": "page", "anonymousId": "anon-1", "name": "Home", "timestamp": _iso(0, 1)},
        ],
    )


def test_the_home_page_is_the_overview_for_every_role(tenant_a: Tenant) -> None:
    for role in Role.values:
        response = tenant_a.session(role).get("/")
        assert response.status_code == 200, role
        assert b"<h1>Overview</h1>" in response.content


def test_someone_in_no_workspace_goes_to_settings(tenant_a: Tenant, django_user_model: Any) -> None:
    from django.test import Client

    loner = django_user_model.objects.create_user(username="loner", password="x-123456789")
    client = Client()
    client.force_login(loner)
    assert client.get("/")["Location"] == "/settings/"
    assert Client().get("/")["Location"].startswith("/login/")


def test_cards_and_charts_count_what_happened(tenant_a: Tenant, tenant_b: Tenant) -> None:
    _shop(tenant_a)
    _send(tenant_b, [{"type": "track", "userId": "other", "event": "X"}])  # never counted in A
    builtin_traits_refresh(workspace_id=tenant_a.workspace.pk)
    html = tenant_a.session().get("/").content.decode()

    assert re.search(
        r'<div class="stat-value">3\b.*?<div class="stat-label">Profiles</div>', html, re.S
    )
    assert re.search(r'<div class="stat-value">7\b.*?Events, last 24 h', html, re.S)
    # two of three profiles carry a user id
    assert re.search(r'<div class="stat-value">67 %.*?Identified', html, re.S)

    events = _data_of(html, "events_by_type")
    assert len(events["days"]) == 90 and events["days"][-1] == _iso(0)[:10]
    by_key = {s["key"]: s["values"] for s in events["series"]}
    assert by_key["track"][-1] == 1 and by_key["track"][-3] == 1 and by_key["track"][-11] == 1
    assert by_key["page"][-1] == 1 and by_key["page"][-3] == 1
    assert by_key["identify"][-1] == 1 and by_key["identify"][-11] == 1
    assert sum(sum(v) for v in by_key.values()) == 7
    assert "screen" not in by_key  # a type nobody sent draws no band

    active = _data_of(html, "new_returning")
    series = {s["key"]: s["values"] for s in active["series"]}
    # today: u2 and the visitor are new; two days ago u1 was back (first seen 10 days ago)
    assert series["new"][-1] == 2 and series["returning"][-1] == 0
    assert series["returning"][-3] == 1 and series["new"][-3] == 0
    assert series["new"][-11] == 1

    rfm = _data_of(html, "rfm")
    assert sum(map(sum, rfm["cells"])) == 2  # the two customers
    assert rfm["rows"] == ["5", "4", "3", "2", "1"] and len(rfm["names"][0]) == 5
    assert "/profiles/?rfm=" in rfm["hrefs"][0][0]
    # every chart has its table
    assert html.count('class="ov-table"') == 3


def test_segments_consent_and_privacy_join_the_overview(tenant_a: Tenant) -> None:
    _shop(tenant_a)
    purposes_install_defaults(workspace=tenant_a.workspace)
    segment_create(
        workspace=tenant_a.workspace,
        name="Buyers",
        rule={"event": "Order Completed"},
        actor=tenant_a.users[Role.OWNER],
        publish=True,
    )
    html = tenant_a.session().get("/").content.decode()
    assert re.search(r'<div class="stat-value">1\b.*?Live segments', html, re.S)
    top = _data_of(html, "top_segments")
    assert top["items"][0]["label"] == "Buyers" and top["items"][0]["value"] == 2
    # from the day it was made (today) to today
    assert 1 <= len(top["items"][0]["values"]) <= 30 and top["items"][0]["values"][-1] == 2
    assert "May use for" in html
    assert "Privacy requests due soon" in html


def test_each_role_sees_only_the_widgets_it_may_open(tenant_a: Tenant) -> None:
    _shop(tenant_a)
    html = tenant_a.session(Role.PRIVACY_OFFICER).get("/").content.decode()
    assert "Privacy requests due soon" in html
    assert 'id="ov-top_segments"' not in html and 'id="ov-rfm"' in html
    html = tenant_a.session(Role.MARKETER).get("/").content.decode()
    assert "Privacy requests due soon" not in html and 'id="ov-top_segments"' in html


def test_empty_workspace_shows_empty_states(tenant_a: Tenant) -> None:
    html = tenant_a.session().get("/").content.decode()
    assert "No events in the last 90 days" in html
    assert "No live segments yet" in html
    assert "No RFM scores yet" in html


def test_a_heavy_widget_is_served_stale_while_a_task_recomputes_it(
    tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    widget = next(w for w in overview.widgets() if w.key == "rfm")
    calls: list[int] = []
    real = widget.compute

    def counting(workspace: Any) -> dict[str, Any]:
        calls.append(1)
        return real(workspace)

    monkeypatch.setitem(
        overview._WIDGETS,
        "rfm",
        overview.Widget(
            **{**{f: getattr(widget, f) for f in widget.__slots__}, "compute": counting}
        ),
    )
    rfm = overview._WIDGETS["rfm"]
    kicked: list[tuple[int, str]] = []
    monkeypatch.setattr(overview, "_kick_refresh", lambda ws, key: kicked.append((ws, key)))
    first, _ = overview.value_of(rfm, tenant_a.workspace)
    again, _ = overview.value_of(rfm, tenant_a.workspace)
    assert len(calls) == 1 and first == again and not kicked  # fresh: from the cache
    later = overview._now() + rfm.ttl + 1
    monkeypatch.setattr(overview, "_now", lambda: later)
    stale, at = overview.value_of(rfm, tenant_a.workspace)
    assert stale == first and len(calls) == 1  # served stale, not recomputed in the request
    assert kicked == [(tenant_a.workspace.pk, "rfm")]
    assert overview.stale_heavy(tenant_a.workspace.pk)  # the beat would recompute it
    assert overview.refresh(tenant_a.workspace.pk, "rfm") == 1 and len(calls) == 2


def test_the_beat_keeps_viewed_overviews_warm(tenant_a: Tenant) -> None:
    from cdp.tasks import overview_refresh_viewed

    tenant_a.session().get("/")
    assert tenant_a.workspace.pk in overview.recently_viewed()
    assert overview.stale_heavy(tenant_a.workspace.pk) == []
    overview.refresh(tenant_a.workspace.pk)  # all fresh: nothing due
    assert overview_refresh_viewed() == 0


def _nothing(workspace: Any) -> dict[str, Any]:
    return {}


def test_registry_rejects_unknown_kinds_and_capabilities() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        overview.register(
            key="x", title="X", kind="pie", order=1, capability=None, compute=_nothing
        )
    with pytest.raises(KeyError, match="unknown capability"):
        overview.register(
            key="x", title="X", kind="cards", order=1, capability="nope", compute=_nothing
        )
    assert "x" not in {w.key for w in overview.widgets()}


def test_live_profiles_only(tenant_a: Tenant) -> None:
    _shop(tenant_a)
    survivor, loser = Profile.objects.filter(workspace=tenant_a.workspace)[:2]
    loser.merged_into = survivor
    loser.save(update_fields=["merged_into"])
    html = tenant_a.session().get("/").content.decode()
    assert re.search(
        r'<div class="stat-value">2\b.*?<div class="stat-label">Profiles</div>', html, re.S
    )


def test_a_heavy_widget_never_computed_is_computed_by_a_task_while_the_page_waits(
    tenant_a: Tenant, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CDP_OVERVIEW_INLINE = False
    _shop(tenant_a)
    kicked: list[tuple[int, str]] = []
    monkeypatch.setattr(overview, "_kick_refresh", lambda ws, key: kicked.append((ws, key)))
    client = tenant_a.session()
    html = client.get("/").content.decode()
    heavy = {w.key for w in overview.widgets() if w.heavy}
    assert {key for _, key in kicked} == heavy
    assert 'id="ov-waiting"' in html and "Computing…" in html
    assert "Profiles: computing" in html  # a heavy card waits too
    assert re.search(r'<div class="stat-value">7\b.*?Events, last 24 h', html, re.S)  # light
    keys = ",".join(sorted(heavy))
    assert set(client.get("/overview/pending/", {"keys": keys}).json()["pending"]) == heavy
    # the task (run here) fills them in; the page then shows every number
    for key in heavy:
        overview.refresh(tenant_a.workspace.pk, key)
    assert client.get("/overview/pending/", {"keys": keys}).json() == {"pending": []}
    html = client.get("/").content.decode()
    assert 'id="ov-waiting"' not in html and _data_of(html, "events_by_type")["series"]
