"""The event debugger's data: the events API pages by keyset (`before_id` in `next`) with no
repeated or skipped event while new ones arrive, walks down to a known event with
`after_id`, filters by user (userId or anonymousId), type, event name and page name, and
reads an index in the order it pages; the page opens on the source that received an event
last and offers the observed event names."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from django.db import connection, transaction
from django.test import Client

from cdp.models import Role
from profiles.models import Event, Source, WriteKey
from profiles.selectors import event_list
from tests.fixtures import Tenant, send_events


def tracks(n: int, prefix: str, **fields: Any) -> list[dict[str, Any]]:
    return [
        {"type": "track", "event": "Order Completed", "userId": f"{prefix}-{i % 7}", **fields}
        for i in range(n)
    ]


def relative(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path}?{parts.query}"


def second_source(tenant: Tenant, name: str = "Demo data") -> tuple[Source, Tenant]:
    source = Source.objects.create(workspace=tenant.workspace, name=name, kind="http")
    key = WriteKey.objects.create(source=source, key=f"WK_{name.lower().replace(' ', '_')}").key
    return source, Tenant(tenant.workspace, source, key, tenant.users, tenant.tokens)


def test_keyset_pages_neither_repeat_nor_skip_while_events_arrive(
    tenant_a: Tenant, client: Client
) -> None:
    send_events(client, tenant_a, *tracks(250, "old"), drain=None)
    api = tenant_a.api(Role.ANALYST)
    existing = list(
        Event.objects.filter(source=tenant_a.source).order_by("-id").values_list("id", flat=True)
    )
    assert len(existing) == 250

    url: str | None = f"/api/v1/events/?source={tenant_a.source.pk}&page_size=100"
    pages: list[list[int]] = []
    first_count = None
    while url:
        answer = api.get(url)
        assert answer.status_code == 200, answer.content
        data = answer.json()
        first_count = data["count"] if first_count is None else first_count
        pages.append([e["id"] for e in data["results"]])
        # new events arrive between every two pages: they must not shift the older pages
        send_events(client, tenant_a, *tracks(30, f"new{len(pages)}"), drain=None)
        url = data["next"] and relative(data["next"])
        if url:
            assert re.search(r"before_id=\d+", url) and "page=" not in url
            assert data["previous"] is None
    assert [len(p) for p in pages] == [100, 100, 50]
    seen = [event_id for page in pages for event_id in page]
    assert seen == existing, "a page repeated or skipped an event"
    assert first_count == 250


def test_after_id_with_next_fills_everything_newer_than_a_known_event(
    tenant_a: Tenant, client: Client
) -> None:
    send_events(client, tenant_a, *tracks(5, "before"), drain=None)
    known = Event.objects.filter(source=tenant_a.source).order_by("-id").first()
    assert known is not None
    send_events(client, tenant_a, *tracks(120, "burst"), drain=None)
    api = tenant_a.api()
    url: str | None = f"/api/v1/events/?after_id={known.pk}&page_size=50"
    ids: list[int] = []
    while url:
        data = api.get(url).json()
        ids += [e["id"] for e in data["results"]]
        url = data["next"] and relative(data["next"])
        if url:
            assert f"after_id={known.pk}" in url
    newer = list(Event.objects.filter(pk__gt=known.pk).order_by("-id").values_list("id", flat=True))
    assert ids == newer and len(ids) == 120


def test_offset_pages_still_work_for_old_links(tenant_a: Tenant, client: Client) -> None:
    send_events(client, tenant_a, *tracks(5, "u"), drain=None)
    api = tenant_a.api()
    first = api.get("/api/v1/events/?page_size=2&page=1").json()
    assert "page=2" in first["next"]
    third = api.get("/api/v1/events/?page_size=2&page=3").json()
    assert len(third["results"]) == 1 and third["next"] is None


def test_filters_by_user_type_event_and_page_name(tenant_a: Tenant, client: Client) -> None:
    send_events(
        client,
        tenant_a,
        {"type": "track", "event": "Order Completed", "userId": "ann", "messageId": "m1"},
        {"type": "page", "name": "Home", "anonymousId": "anon-1", "messageId": "m2"},
        {"type": "identify", "userId": "ann", "anonymousId": "anon-1", "messageId": "m3"},
        {"type": "track", "event": "Signed Up", "userId": "bob", "messageId": "m4"},
        {"type": "screen", "name": "Home", "userId": "bob", "messageId": "m5"},
        drain=None,
    )
    api = tenant_a.api(Role.ANALYST)

    def found(query: str) -> list[str]:
        answer = api.get(f"/api/v1/events/?source={tenant_a.source.pk}&{query}")
        assert answer.status_code == 200, answer.content
        return [e["messageId"] for e in answer.json()["results"]]

    assert found("user=ann") == ["m3", "m1"]
    assert found("user=anon-1") == ["m3", "m2"]  # an anonymousId matches too
    assert found("user=anon-1&type=page") == ["m2"]
    assert found("event=Signed%20Up") == ["m4"]
    assert found("name=Home") == ["m5", "m2"]
    assert found("name=Home&type=screen") == ["m5"]
    assert found("user=nobody") == []
    assert found("type=track&user=bob&event=Signed%20Up") == ["m4"]
    bad = api.get("/api/v1/events/?before_id=abc")
    assert bad.status_code == 400
    assert "before_id" in bad.json()["error"]["detail"]["fields"]


def test_the_page_query_reads_the_source_index_in_order(tenant_a: Tenant, client: Client) -> None:
    """Ordered by id within (workspace, source): each partition's index gives the rows in page
    order, so the planner needs no sort, whatever the depth of the page."""
    send_events(client, tenant_a, *tracks(20, "u"), drain=None)
    qs = event_list(
        workspace=tenant_a.workspace,
        filters={"source": str(tenant_a.source.pk), "before_id": str(2**40)},
    )[:101]
    sql, params = qs.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan" in plan, plan
    # a Merge Append keyed on id (each partition's index is already in order), no Sort node
    assert not re.search(r"\bSort\s+\(cost", plan), plan
    assert "workspace_id_source_id" in plan or "event_ws_source_id" in plan, plan


def test_debugger_opens_on_the_source_that_received_an_event_last(
    tenant_a: Tenant, client: Client
) -> None:
    session = tenant_a.session()
    # no events anywhere: the first source
    assert session.get("/debugger/").context["source"] == tenant_a.source

    demo, demo_tenant = second_source(tenant_a)
    _, quiet = second_source(tenant_a, "Quiet app")
    send_events(client, tenant_a, *tracks(3, "a"), drain=None)
    send_events(client, demo_tenant, *tracks(3, "d"), drain=None)
    page = session.get("/debugger/")
    assert page.context["source"] == demo
    html = page.content.decode()
    assert "Quiet app · no events yet" in html
    assert "Demo data · last event just now" in html

    send_events(client, tenant_a, *tracks(1, "a"), drain=None)
    assert session.get("/debugger/").context["source"] == tenant_a.source
    # a link naming a source still wins
    assert session.get(f"/debugger/?source={quiet.source.pk}").context["source"] == quiet.source


def test_debugger_offers_the_observed_event_and_page_names(
    tenant_a: Tenant, tenant_b: Tenant, client: Client
) -> None:
    send_events(
        client,
        tenant_a,
        {"type": "track", "event": "Order Completed", "userId": "ann"},
        {"type": "track", "event": "added to cart", "userId": "ann"},
        {"type": "page", "name": "Pricing", "anonymousId": "x"},
        {"type": "identify", "userId": "ann", "traits": {"plan": "pro"}},
    )
    send_events(client, tenant_b, {"type": "track", "event": "Bravo Secret", "userId": "b"})
    html = tenant_a.session().get("/debugger/").content.decode()
    events = re.findall(r'<option value="([^"]*)" data-param="event">', html)
    pages = re.findall(r'<option value="([^"]*)" data-param="name">', html)
    assert events == ["added to cart", "Order Completed"]
    assert pages == ["Pricing"]
    assert "Bravo Secret" not in html
