"""The segment builder in headless Chromium against a live server: build a nested rule by
clicking, watch the live count, publish, find the segment in the list, edit it and review the
diff before publishing again; analysts see the builder read-only.

Events go through the real collector over HTTP and are processed with the pipeline's queue, as
a worker would. Full-page screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
from django.utils import timezone
from playwright.sync_api import Page, expect

from profiles.pipeline import queue
from segments import services
from segments.models import Membership, Segment, SegmentVersion
from tests.fixtures import Tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# user id -> (plan, VIP, days ago of each order). With the rule
#   plan = pro AND (≥ 2 orders in the last 30 days OR NOT in segment "VIP")
# ada, ben and fay match; cy has one recent order and is a VIP, dan's orders are too old,
# eve is on the free plan.
PEOPLE = {
    "ada": ("pro", True, [2, 5, 9]),
    "ben": ("pro", False, [3]),
    "cy": ("pro", True, [4]),
    "dan": ("pro", True, [41, 45]),
    "eve": ("free", False, [1, 2, 3]),
    "fay": ("pro", False, [6, 12]),
}


def send(live_server: Any, write_key: str, events: list[dict[str, Any]]) -> None:
    for event in events:
        event.setdefault("messageId", f"msg-{uuid.uuid4()}")
    answer = requests.post(
        f"{live_server.url}/v1/batch", json={"batch": events}, auth=(write_key, ""), timeout=10
    )
    assert answer.status_code == 200, answer.text


def at(now: datetime, days: float) -> str:
    return (now - timedelta(days=days)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def shop(live_server: Any, tenant_a: Tenant) -> Segment:
    """Six customers and their orders, and a published "VIP" segment."""
    now = timezone.now()
    events: list[dict[str, Any]] = []
    for name, (plan, vip, orders) in PEOPLE.items():
        events.append(
            {
                "type": "identify",
                "userId": f"u-{name}",
                "timestamp": at(now, 60),
                "traits": {
                    "email": f"{name}@example.com",
                    "name": name.capitalize(),
                    "plan": plan,
                    "vip": vip,
                },
            }
        )
        for days in orders:
            events.append(
                {
                    "type": "track",
                    "userId": f"u-{name}",
                    "event": "Order Completed",
                    "timestamp": at(now, days),
                    "properties": {"revenue": 80.0, "currency": "EUR"},
                }
            )
    send(live_server, tenant_a.write_key, events)
    queue.drain(batch_size=500)
    return services.segment_create(
        workspace=tenant_a.workspace,
        name="VIP",
        rule={"trait": "vip", "op": "eq", "value": True},
        publish=True,
    )


def root_add(page: Page, what: str) -> None:
    page.locator("#rule-tree > .rule-group > .group-foot").locator(f".add-{what}").click()


def test_build_publish_and_edit_a_segment(
    live_server: Any,
    page: Page,
    tenant_a: Tenant,
    shop: Segment,
    login_as: Any,
    screenshot: Any,
    console: Any,
) -> None:
    # the step with a bad window: the preview answers 400 and the builder shows why
    console.allow(r"status of 400 .*/api/v1/segments/preview/")
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/segments/")
    expect(page.locator(".sidebar nav a.active")).to_have_text("Segments")
    expect(page.locator("tr[data-segment=vip] .member-count")).to_have_text("3")
    page.click("#new-segment")
    expect(page).to_have_url(f"{live_server.url}/segments/new/")
    expect(page.locator("#preview-meta")).to_contain_text("Add a condition")
    page.fill("#segment-name", "Pro buyers")

    # plan = pro
    root_add(page, "trait")
    trait = page.locator(".rule-cond[data-kind=trait]")
    trait.locator(".cond-trait").fill("plan")
    trait.locator(".cond-trait").press("Tab")
    expect(trait.locator(".cond-op")).to_have_value("eq")
    trait.locator(".cond-value").fill("pro")
    count = page.locator("#preview-count")
    expect(count).to_have_text("5")
    expect(page.locator("#preview-meta")).to_contain_text(" ms")
    expect(page.locator("#preview-sample a")).to_have_count(5)

    # AND (≥ 2 Order Completed in 30 days OR NOT in VIP)
    root_add(page, "group")
    inner = page.locator("#rule-tree .rule-group .rule-group")
    expect(inner).to_have_attribute("data-mode", "any")
    inner.locator(".group-foot .add-event").click()
    event = inner.locator(".rule-cond[data-kind=event]")
    event.locator(".cond-event").fill("Order Completed")
    event.locator(".cond-count-op").select_option("gte")
    event.locator(".cond-count-value").fill("2")
    event.locator(".cond-days").fill("30")
    inner.locator(".group-foot .add-segment").click()
    segment = inner.locator(".rule-cond[data-kind=segment]")
    expect(segment.locator(".cond-segment")).to_have_value("vip")
    segment.locator(".toggle-not").click()
    expect(page.locator(".rule-cond[data-kind=segment]")).to_have_class(re.compile(r"\bnegated\b"))
    expect(count).to_have_text("3")
    sample = page.locator("#preview-sample a")
    expect(sample).to_have_count(3)
    names = sorted(sample.all_inner_texts())
    assert names == ["Ada", "Ben", "Fay"] or all("example.com" in n for n in names), names
    page.locator("#json-panel summary").click()
    expect(page.locator("#rule-json")).to_contain_text('"not": {')
    screenshot(page, "40-segment-builder")

    # a bad value is shown next to its node
    event = page.locator(".rule-cond[data-kind=event]")
    event.locator(".cond-days").fill("0")
    expect(event.locator(".node-error")).to_contain_text("within.days")
    expect(count).to_have_text("—")
    screenshot(page, "41-segment-builder-error")
    event.locator(".cond-days").fill("30")
    expect(count).to_have_text("3")

    page.click("#publish")
    expect(page.locator("#segment-flash")).to_contain_text("Published")
    expect(page.locator("#member-count")).to_have_text("3")
    expect(page.locator("#members tbody tr")).to_have_count(3)
    expect(page.locator("#history tbody tr")).to_have_count(3)
    # the size chart starts on the day of the first publication (today) with its 3 members
    points = page.locator("#size-svg circle.point")
    expect(points).to_have_count(1)
    expect(points.last).to_have_attribute("data-size", "3")
    expect(page.locator("#size-bars .bar-pair").last).to_have_attribute("data-entered", "3")
    screenshot(page, "42-segment-published")
    page.goto(f"{live_server.url}/segments/")
    row = page.locator("tr[data-segment=pro-buyers]")
    expect(row.locator(".member-count")).to_have_text("3")
    expect(row).to_contain_text("Published")
    expect(row).to_contain_text("marketer@alpha")
    screenshot(page, "43-segments-list")

    # edit: one recent order is enough -> Cy enters
    row.locator("a").first.click()
    expect(page.locator(".rule-cond[data-kind=event] .cond-count-value")).to_have_value("2")
    expect(count).to_have_text("3")
    page.locator(".rule-cond[data-kind=event] .cond-count-value").fill("1")
    expect(count).to_have_text("4")
    page.click("#publish")
    diff = page.locator("#diff-panel")
    expect(diff).to_be_visible()
    expect(page.locator("#diff-now")).to_have_text("3")
    expect(page.locator("#diff-after")).to_have_text("4")
    expect(page.locator("#diff-entering")).to_have_text("+1")
    expect(page.locator("#diff-leaving")).to_have_text("−0")
    expect(page.locator("#diff-entering-sample a")).to_have_count(1)
    screenshot(page, "44-segment-diff")
    page.click("#confirm-publish")
    expect(page.locator("#segment-flash")).to_contain_text("1 entered, 0 left")
    expect(page.locator("#member-count")).to_have_text("4")
    page.goto(f"{live_server.url}/segments/")
    expect(page.locator("tr[data-segment=pro-buyers] .member-count")).to_have_text("4")


def test_analyst_sees_the_builder_read_only(
    live_server: Any, page: Page, tenant_a: Tenant, shop: Segment, login_as: Any, screenshot: Any
) -> None:
    login_as(tenant_a.users["analyst"])
    page.goto(f"{live_server.url}/segments/")
    expect(page.locator("#new-segment")).to_have_count(0)
    page.locator("tr[data-segment=vip] a").click()
    expect(page.locator("#read-only-note")).to_be_visible()
    expect(page.locator("#preview-count")).to_have_text("3")
    expect(page.locator(".rule-cond .cond-trait")).to_be_disabled()
    expect(page.locator("#publish")).to_have_count(0)
    expect(page.locator(".group-foot .add-trait")).to_be_hidden()
    screenshot(page, "45-segment-read-only")


def test_empty_segment_list(
    live_server: Any, page: Page, tenant_b: Tenant, login_as: Any, screenshot: Any
) -> None:
    login_as(tenant_b.users["owner"])
    page.goto(f"{live_server.url}/segments/")
    expect(page.locator("#segments-empty")).to_contain_text("No segments yet")
    screenshot(page, "46-segments-empty")


def test_manage_a_published_segment(
    live_server: Any,
    page: Page,
    tenant_a: Tenant,
    shop: Segment,
    login_as: Any,
    screenshot: Any,
    console: Any,
) -> None:
    """Size over time, CSV export, sharing with a marketer, discarding a draft, and deleting —
    refused while another segment uses it."""
    console.allow(r"status of 409 .*/api/v1/segments/\d+/")  # the refused deletion
    owner = tenant_a.users["owner"]
    uses_vip = services.segment_create(
        workspace=tenant_a.workspace,
        name="Not VIP",
        rule={"not": {"segment": "vip"}},
        publish=True,
        actor=owner,
    )
    services.segment_update(
        segment=shop, rule={"trait": "vip", "op": "eq", "value": False}, actor=owner
    )
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    # VIP was first published 40 days ago (its members entered today): its chart starts then
    SegmentVersion.objects.filter(segment=shop, number=1).update(
        published_at=timezone.now() - timedelta(days=40)
    )
    login_as(owner)
    page.goto(f"{live_server.url}/segments/")
    vip_row = page.locator("tr[data-segment=vip]")
    expect(vip_row.locator(".trend-net")).to_have_text("↑ +3")
    expect(vip_row.locator(".trend-net")).to_have_class(re.compile(r"\bup\b"))
    expect(vip_row.locator(".trend")).to_contain_text("+3 / −0")
    screenshot(page, "47-segments-list-trends")

    vip_row.locator("a").click()
    points = page.locator("#size-svg circle.point")
    expect(points).to_have_count(30)
    expect(points.last).to_have_attribute("data-size", "3")
    expect(points.first).to_have_attribute("data-size", "0")
    expect(page.locator("#size-summary")).to_contain_text("Now 3 members")
    expect(page.locator("#size-summary")).to_contain_text("3 entered and 0 left")
    expect(page.locator("#size-svg text.axis").first).to_have_text("0")
    # hovering a day shows its size, entries and exits
    page.locator("#size-svg rect.hit").last.hover()
    tip = page.locator("#size-tip")
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("3 members")
    expect(tip).to_contain_text("+3 entered")
    expect(points.last).to_have_class(re.compile(r"\bon\b"))
    shot = screenshot(page, "48-segment-chart")
    page.locator("#size-card").screenshot(path=str(shot.with_name("48b-size-chart-card.png")))
    # each period is fetched from the sizes API; 90 days reach back to the first publication
    for days, shown in ((7, 7), (90, 41), (30, 30)):
        with page.expect_response(re.compile(rf"/api/v1/segments/\d+/sizes/\?days={days}$")) as got:
            page.click(f"#size-card .seg-toggle [data-days='{days}']")
        assert got.value.ok
        expect(points).to_have_count(shown)
        expect(page.locator(f"#size-card .seg-toggle [data-days='{days}']")).to_have_attribute(
            "aria-pressed", "true"
        )
    expect(points.last).to_have_attribute("data-size", "3")

    # the export link downloads the members as CSV
    with page.expect_download() as download:
        page.click("#export-csv")
    assert download.value.suggested_filename == "segment-vip.csv"
    with open(download.value.path(), encoding="utf-8") as f:
        exported = f.read()
    # a column per default trait sent (email; no name parts here)
    assert exported.startswith("profile_id,user_id,entered_at,email\n")
    assert "u-ada" in exported and "ada@example.com" in exported and "u-ben" not in exported

    # sharing: a marketer may then edit it; revoking takes it back (no page reload)
    sharing = page.locator("#sharing")
    expect(sharing.locator(".owner-row")).to_contain_text("No owner")
    expect(sharing.locator(".no-grants")).to_be_visible()
    page.select_option("#grant-user", label="marketer@alpha")
    page.click("#grant")
    expect(page.locator("#sharing-status")).to_contain_text("marketer@alpha can now edit")
    granted = page.locator("#grants-table tr[data-username='marketer@alpha']")
    expect(granted).to_contain_text("Can edit")
    expect(sharing.locator(".no-grants")).to_have_count(0)
    expect(page.locator("#grant-form")).to_be_hidden()  # the only marketer now has access
    expect(page.locator("#no-candidates")).to_be_visible()
    sharing.screenshot(path=str(shot.with_name("49b-sharing-card.png")))
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "49-segment-sharing")
    granted.locator("[data-revoke]").click()
    expect(page.locator("#sharing-status")).to_contain_text("Access revoked: marketer@alpha")
    expect(page.locator("#grants-table")).not_to_contain_text("marketer@alpha")
    expect(page.locator("#grant-user option")).to_have_text(["marketer@alpha"])
    page.reload()
    expect(page.locator("#grants-table")).not_to_contain_text("marketer@alpha")

    # the draft (vip = false) is discarded: the published rule stays
    expect(page.locator("#draft-pill")).to_be_visible()
    page.click("#discard-draft")
    expect(page.locator("#segment-flash")).to_contain_text("Draft discarded")
    assert "stays live" in dialogs[-1]
    expect(page.locator("#draft-pill")).to_have_count(0)
    expect(page.locator("#discard-draft")).to_have_count(0)
    expect(page.locator(".rule-cond .cond-value")).to_have_value("true")

    # deleting is refused while "Not VIP" uses it, with a link to it
    page.click("#delete-segment")
    error = page.locator("#builder-error")
    expect(error).to_contain_text("“VIP” was not deleted")
    expect(error).to_contain_text("another segment uses it in its rule")
    expect(error.locator("a")).to_have_text("Not VIP")
    expect(page.locator("#segment-flash")).to_have_count(0)  # no stale success next to it
    screenshot(page, "50-segment-delete-refused")
    error.locator("a").click()
    expect(page).to_have_url(f"{live_server.url}/segments/{uses_vip.pk}/")
    page.click("#delete-segment")
    expect(page).to_have_url(f"{live_server.url}/segments/")
    expect(page.locator("#segment-flash")).to_have_text('Deleted "Not VIP".')
    expect(page.locator("tr[data-segment=not-vip]")).to_have_count(0)
    page.locator("tr[data-segment=vip] a").click()
    expect(page.locator("#segment-flash")).to_have_count(0)  # shown once only
    page.click("#delete-segment")
    expect(page).to_have_url(f"{live_server.url}/segments/")
    expect(page.locator("#segments-empty")).to_be_visible()
    assert not Segment.objects.filter(workspace=tenant_a.workspace).exists()


def test_list_colours_the_seven_day_trend(
    live_server: Any, page: Page, tenant_a: Tenant, shop: Segment, login_as: Any, screenshot: Any
) -> None:
    """Up in green, down in red, flat in grey; a draft has no trend."""
    weeks_ago = timezone.now() - timedelta(days=20)
    free = services.segment_create(
        workspace=tenant_a.workspace,
        name="Free plan",
        rule={"trait": "plan", "op": "eq", "value": "free"},
        publish=True,
    )
    Membership.objects.filter(segment__in=[shop, free]).update(entered_at=weeks_ago)
    # VIPs who also ordered twice in the last 30 days: only Ada stays, Cy and Dan leave today
    services.segment_update(
        segment=shop,
        rule={
            "all": [
                {"trait": "vip", "op": "eq", "value": True},
                {
                    "event": "Order Completed",
                    "count": {"op": "gte", "value": 2},
                    "within": {"days": 30},
                },
            ]
        },
    )
    services.segment_publish(segment=shop)
    services.segment_create(
        workspace=tenant_a.workspace,
        name="Pro plan",
        rule={"trait": "plan", "op": "eq", "value": "pro"},
        publish=True,
    )
    services.segment_create(
        workspace=tenant_a.workspace,
        name="Idea",
        rule={"trait": "plan", "op": "eq", "value": "trial"},
        publish=False,
    )
    login_as(tenant_a.users["analyst"])
    page.goto(f"{live_server.url}/segments/")
    expect(page.locator("#segments-table th").nth(3)).to_have_text("7-day trend")
    down = page.locator("tr[data-segment=vip] .trend-net")
    expect(down).to_have_text("↓ −2")
    expect(down).to_have_css("color", "rgb(180, 35, 24)")
    expect(page.locator("tr[data-segment=vip] .trend")).to_contain_text("+0 / −2")
    up = page.locator("tr[data-segment=pro-plan] .trend-net")
    expect(up).to_have_text("↑ +5")
    expect(up).to_have_css("color", "rgb(22, 121, 76)")
    flat = page.locator("tr[data-segment=free-plan] .trend-net")
    expect(flat).to_have_text("±0")
    expect(flat).to_have_css("color", "rgb(93, 100, 117)")  # --muted
    expect(page.locator("tr[data-segment=idea] .trend")).to_have_text("—")
    screenshot(page, "52-segments-list-trend-directions")

    # search and filter the list
    expect(page.locator("#segment-count")).to_have_text("4 segments")
    page.fill("#segment-search", "plan")
    page.press("#segment-search", "Enter")
    expect(page.locator("#segment-count")).to_have_text("2 of 4 segments")
    page.select_option("#segment-order", "-members")  # applies at once
    page.wait_for_url("**order=-members**")
    rows = page.locator("#segments-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-segment", "pro-plan")  # the larger first
    expect(page.locator("#segment-count")).to_have_text("2 of 4 segments")
    expect(page.locator("#segment-search")).to_have_value("plan")
    screenshot(page, "53-segments-list-search")
    page.select_option("#segment-status", "draft")
    page.wait_for_url("**status=draft**")
    expect(page.locator("#segments-no-match")).to_contain_text("Nothing matches “plan”")
    page.click("#segment-filter-clear")
    expect(page.locator("#segments-table tbody tr")).to_have_count(4)


def test_never_published_segment_has_no_chart_yet(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, screenshot: Any
) -> None:
    draft = services.segment_create(
        workspace=tenant_a.workspace,
        name="Idea",
        rule={"trait": "plan", "op": "eq", "value": "pro"},
        publish=False,
        actor=tenant_a.users["marketer"],
    )
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/segments/{draft.pk}/")
    expect(page.locator("#size-empty")).to_contain_text("never been published")
    expect(page.locator("#size-card [data-days]")).to_have_count(0)
    expect(page.locator("#size-svg")).to_have_count(0)
    expect(page.locator("#export-csv")).to_have_count(0)
    expect(page.locator("#discard-draft")).to_have_count(0)  # nothing to fall back to
    expect(page.locator("#delete-segment")).to_be_visible()
    expect(page.locator("#sharing .owner-row")).to_contain_text("marketer@alpha")
    screenshot(page, "51-segment-never-published")


def test_marketer_edits_only_what_is_shared(
    live_server: Any, page: Page, tenant_a: Tenant, shop: Segment, login_as: Any
) -> None:
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/segments/{shop.pk}/")
    expect(page.locator("#read-only-note")).to_be_visible()
    expect(page.locator("#export-csv")).to_be_visible()  # reading includes exporting
    expect(page.locator("#delete-segment")).to_have_count(0)
    expect(page.locator("#sharing")).to_have_count(0)
    expect(page.locator("#size-svg circle.point")).to_have_count(1)  # published today
    services.segment_grant(segment=shop, user=tenant_a.users["marketer"])
    page.reload()
    expect(page.locator("#read-only-note")).to_have_count(0)
    expect(page.locator("#delete-segment")).to_be_visible()
    expect(page.locator("#sharing")).to_be_visible()


def test_marketer_duplicates_a_segment_they_cannot_edit(
    live_server: Any, page: Page, tenant_a: Tenant, shop: Segment, login_as: Any, screenshot: Any
) -> None:
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/segments/{shop.pk}/")
    expect(page.locator("#read-only-note")).to_be_visible()
    page.click("#duplicate-segment")
    page.wait_for_url(re.compile(rf".*/segments/(?!{shop.pk}/)\d+/$"))
    expect(page.locator("#segment-flash")).to_contain_text('Duplicated "VIP" as "Copy of VIP"')
    expect(page.locator("#segment-name")).to_have_value("Copy of VIP")
    expect(page.locator("#read-only-note")).to_have_count(0)  # theirs to change
    expect(page.locator("#export-csv")).to_have_count(0)  # not published yet
    expect(page.locator("#preview-count")).to_have_text("3")  # the same rule, previewed
    screenshot(page, "54-segment-duplicated")
    copy = Segment.objects.exclude(pk=shop.pk).get(workspace=tenant_a.workspace)
    assert copy.owner == tenant_a.users["marketer"] and copy.status == "draft"
    shop.refresh_from_db()
    assert copy.draft_version is not None and shop.published_version is not None
    assert copy.draft_version.rule == shop.published_version.rule


def test_tag_a_segment_and_filter_the_list_by_it(
    live_server: Any,
    page: Page,
    tenant_a: Tenant,
    shop: Segment,
    login_as: Any,
    screenshot: Any,
    console: Any,
) -> None:
    console.allow(r"status of 400 .*/api/v1/segments/\d+/")  # the refused tag
    services.segment_create(
        workspace=tenant_a.workspace, name="Everyone", rule={"trait": "plan", "op": "exists"}
    )
    login_as(tenant_a.users["owner"])
    page.goto(f"{live_server.url}/segments/{shop.pk}/")
    page.fill("#segment-tags", "Lifecycle, -oops")
    page.click("#save-draft")
    expect(page.locator("#builder-error")).to_contain_text("tags[1]: '-oops' is not a tag")
    expect(page.locator("#segment-tags")).to_have_class(re.compile(r"\binvalid\b"))
    page.fill("#segment-tags", "Lifecycle,  VIP care ")
    expect(page.locator("#segment-tags")).not_to_have_class(re.compile(r"\binvalid\b"))
    page.click("#save-draft")
    # the rule was not touched: saved, and no draft to publish appears
    expect(page.locator("#segment-flash")).to_contain_text("nothing to publish")
    expect(page.locator("#segment-tags")).to_have_value("lifecycle, vip care")
    expect(page.locator("#draft-pill")).to_have_count(0)

    page.goto(f"{live_server.url}/segments/")
    expect(page.locator("#segments-table tbody tr")).to_have_count(2)
    page.locator("tr[data-segment=vip] .tag", has_text="vip care").click()
    expect(page.locator("#segments-table tbody tr")).to_have_count(1)
    expect(page.locator("#segment-tag")).to_have_value("vip care")
    expect(page.locator("tr[data-segment=vip] .tag.on")).to_have_text("vip care")
    screenshot(page, "55-segments-list-tag")


def test_consent_condition_in_the_builder(
    live_server: Any, page: Page, tenant_a: Tenant, shop: Segment, login_as: Any, screenshot: Any
) -> None:
    """Pro customers who allow marketing email: the consent editor offers the workspace's
    purposes, and the count follows the enforcement rule (no decision = not allowed)."""
    from consent.services import purposes_install_defaults

    purposes_install_defaults(workspace=tenant_a.workspace)
    answers = {"ada": True, "ben": False, "cy": True}  # dan, fay never answered
    send(
        live_server,
        tenant_a.write_key,
        [
            {
                "type": "identify",
                "userId": f"u-{name}",
                "context": {"consent": {"categoryPreferences": {"marketing_email": yes}}},
            }
            for name, yes in answers.items()
        ],
    )
    queue.drain(batch_size=100)
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/segments/new/")
    page.fill("#segment-name", "Emailable pros")
    root_add(page, "trait")
    trait = page.locator(".rule-cond[data-kind=trait]")
    trait.locator(".cond-trait").fill("plan")
    trait.locator(".cond-trait").press("Tab")
    trait.locator(".cond-value").fill("pro")
    expect(page.locator("#preview-count")).to_have_text("5")
    root_add(page, "consent")
    consent = page.locator(".rule-cond[data-kind=consent]")
    expect(consent.locator(".cond-purpose option")).to_have_count(5)
    consent.locator(".cond-purpose").select_option("marketing_email")
    expect(page.locator("#preview-count")).to_have_text("2")  # ada and cy
    consent.locator(".cond-consent-status").select_option("denied")
    expect(page.locator("#preview-count")).to_have_text("3")  # ben said no; dan, fay never said
    consent.locator(".cond-consent-status").select_option("granted")
    expect(page.locator("#preview-count")).to_have_text("2")
    screenshot(page, "56-segment-consent-condition")
    page.click("#publish")
    page.wait_for_url(re.compile(r".*/segments/\d+/$"))
    saved = Segment.objects.get(workspace=tenant_a.workspace, name="Emailable pros")
    assert saved.published_version is not None
    assert saved.published_version.rule == {
        "all": [
            {"trait": "plan", "op": "eq", "value": "pro"},
            {"consent": "marketing_email", "status": "granted"},
        ]
    }
    assert saved.member_count == 2
    # the editor reads it back
    expect(page.locator(".rule-cond[data-kind=consent] .cond-purpose")).to_have_value(
        "marketing_email"
    )


def test_event_between_two_dates(
    live_server: Any, page: Page, tenant_a: Tenant, shop: Segment, login_as: Any, screenshot: Any
) -> None:
    """Ordered between two days (whole UTC days, both included), saved and read back."""
    today = timezone.now().date()
    first, last = (today - timedelta(days=10)).isoformat(), (today - timedelta(days=4)).isoformat()
    login_as(tenant_a.users["marketer"])
    page.goto(f"{live_server.url}/segments/new/")
    page.fill("#segment-name", "Ordered last week")
    root_add(page, "event")
    event = page.locator(".rule-cond[data-kind=event]")
    event.locator(".cond-event").fill("Order Completed")
    event.locator(".cond-window").select_option("between")
    event.locator(".cond-from").fill(first)
    event.locator(".cond-to").fill(last)
    # ada (9 and 5 days ago), cy (4: the last day counts whole) and fay (6)
    expect(page.locator("#preview-count")).to_have_text("3")
    screenshot(page, "57-segment-event-between")
    page.click("#save-draft")
    page.wait_for_url(re.compile(r".*/segments/\d+/$"))
    saved = Segment.objects.get(workspace=tenant_a.workspace, name="Ordered last week")
    assert saved.draft_version is not None
    assert saved.draft_version.rule == {
        "all": [
            {
                "event": "Order Completed",
                "count": {"op": "gte", "value": 1},
                "between": [first, f"{last}T23:59:59.999999Z"],
            }
        ]
    }
    event = page.locator(".rule-cond[data-kind=event]")
    expect(event.locator(".cond-window")).to_have_value("between")
    expect(event.locator(".cond-from")).to_have_value(first)
    expect(event.locator(".cond-to")).to_have_value(last)
    expect(page.locator("#preview-count")).to_have_text("3")

    # a window in hours (abandoned carts, recent visits)
    event.locator(".cond-window").select_option("last")
    event = page.locator(".rule-cond[data-kind=event]")
    event.locator(".cond-days").fill("36")
    event.locator(".cond-unit").select_option("hours")
    expect(page.locator("#preview-count")).to_have_text("1")  # eve, a day ago
    expect(page.locator("#rule-json")).to_contain_text('"hours": 36')


def test_roll_back_to_an_earlier_version(
    live_server: Any, page: Page, tenant_a: Tenant, shop: Segment, login_as: Any, screenshot: Any
) -> None:
    services.segment_update(segment=shop, rule={"trait": "plan", "op": "eq", "value": "pro"})
    services.segment_publish(segment=shop)  # v2: every pro (5) instead of the VIPs (3)
    login_as(tenant_a.users["owner"])
    page.goto(f"{live_server.url}/segments/{shop.pk}/")
    rows = page.locator("#versions-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first.locator(".pill")).to_have_text("live")
    expect(page.locator("#versions-table tr[data-version='2'] [data-restore]")).to_have_count(0)
    page.click("#versions-table tr[data-version='1'] [data-restore]")
    expect(page.locator("#segment-flash")).to_contain_text("Version 1 restored as the draft (v3)")
    expect(page.locator("#draft-pill")).to_be_visible()
    expect(page.locator("#preview-count")).to_have_text("3")
    expect(page.locator("#versions-table tr[data-version='3'] .pill")).to_have_text("draft")
    screenshot(page, "58-segment-versions")
    page.click("#publish")
    expect(page.locator("#diff-leaving")).to_have_text("−2")
    page.click("#confirm-publish")
    expect(page.locator("#segment-flash")).to_contain_text("Published version 3")
