"""The profile explorer in headless Chromium against a live server: searching a person by
full name, sorting by revenue from the column header, narrowing the table with a condition
made in the segment builder's condition editor, saving the view, and creating a segment
from the filter that lands in the builder with the rule.

About forty people go through the real collector over HTTP and the pipeline's queue; the
scheduled built-ins (RFM, engagement) are refreshed as the beat would. A screenshot of the
explorer at 1280x900 goes to /tmp/explorer.png (and test-artifacts/screenshots/)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.utils import timezone
from playwright.sync_api import Page, expect

from profiles.computed.services import builtin_traits_refresh
from profiles.models import Identity, Profile
from profiles.pipeline import queue
from segments.models import Segment
from tests.fixtures import Tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FIRST = ["Ada", "Grace", "Alan", "Linus", "Margaret", "Tim", "Barbara", "Dennis", "Frances",
         "Ken", "Radia", "Edsger", "Hedy", "John", "Katherine", "Guido", "Sophie", "Bjarne",
         "Anita", "Donald"]  # fmt: skip
LAST = ["Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Berners-Lee", "Liskov",
        "Ritchie", "Allen", "Thompson", "Perlman", "Dijkstra", "Lamarr", "McCarthy",
        "Johnson", "van Rossum", "Wilson", "Stroustrup", "Borg", "Knuth"]  # fmt: skip
PLANS = ["free", "pro", "team"]


def send(live_server: Any, write_key: str, events: list[dict[str, Any]]) -> None:
    for event in events:
        event.setdefault("messageId", f"msg-{uuid.uuid4()}")
    answer = requests.post(
        f"{live_server.url}/v1/batch", json={"batch": events}, auth=(write_key, ""), timeout=30
    )
    assert answer.status_code == 200, answer.text


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def person(n: int, first: str, last: str, now: datetime) -> list[dict[str, Any]]:
    """A sign-up, some browsing and 0–5 orders over the last months."""
    user = f"u-{n:04d}"
    email = f"{first}.{last}".lower().replace(" ", "") + f"{n}@example.com"
    start = now - timedelta(days=20 + (n * 7) % 150)
    events: list[dict[str, Any]] = [
        {
            "type": "identify",
            "userId": user,
            "anonymousId": f"anon-{n:04d}",
            "timestamp": iso(start),
            "traits": {
                "first_name": first,
                "last_name": last,
                "email": email,
                "phone": f"+1 415 555 {1000 + n:04d}",
                "plan": PLANS[n % 3],
            },
        },
        *[
            {
                "type": "page",
                "anonymousId": f"anon-{n:04d}",
                "userId": user,
                "name": "Catalogue",
                "timestamp": iso(start + timedelta(days=k + 1)),
            }
            for k in range(n % 4)
        ],
    ]
    for k in range(n % 6):
        events.append(
            {
                "type": "track",
                "userId": user,
                "event": "Order Completed",
                "timestamp": iso(start + timedelta(days=5 + 9 * k)),
                "properties": {"revenue": round(19.9 + (n * 37 + k * 11) % 180, 2)},
            }
        )
    return events


@pytest.fixture
def crowd(live_server: Any, tenant_a: Tenant) -> dict[str, Any]:
    now = timezone.now().replace(microsecond=0)
    events: list[dict[str, Any]] = []
    names = [(FIRST[i % 20], LAST[(i * 7 + i // 20) % 20]) for i in range(38)]  # all different
    names += [("Kevin", "Novak"), ("Kevin", "Mitnick")]
    for n, (first, last) in enumerate(names, start=1):
        events += person(n, first, last, now)
    # Kevin Novak is the top spender
    events += [
        {
            "type": "track",
            "userId": "u-0039",
            "event": "Order Completed",
            "timestamp": iso(now - timedelta(days=2, hours=k)),
            "properties": {"revenue": 2400 + k},
        }
        for k in range(3)
    ]
    send(live_server, tenant_a.write_key, events)
    queue.drain(batch_size=500)
    builtin_traits_refresh(workspace_id=tenant_a.workspace.pk)
    kevin = Identity.objects.get(workspace=tenant_a.workspace, type="user_id", value="u-0039")
    pro = Profile.objects.filter(
        workspace=tenant_a.workspace, merged_into__isnull=True, traits__plan="pro"
    ).count()
    return {"kevin": kevin.profile, "pro": pro, "profiles": len(names)}


def test_search_sort_and_screenshot(
    live_server: Any,
    page: Page,
    tenant_a: Tenant,
    crowd: dict[str, Any],
    login_as: Any,
    screenshot: Any,
) -> None:
    login_as(tenant_a.users["marketer"])
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/profiles/")
    rows = page.locator("#profiles-table tbody tr")
    expect(rows).to_have_count(25)
    expect(page.locator("#explorer-count")).to_contain_text(f"{crowd['profiles']} profiles")
    expect(page.locator("#explorer-tree-rule .add-trait")).to_be_attached()  # editor loaded
    page.screenshot(path="/tmp/explorer.png")
    screenshot(page, "60-profile-explorer")

    page.fill("#profile-search", "Kevin Novak")
    page.press("#profile-search", "Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Kevin Novak")
    expect(rows.first.locator(".chip").first).to_contain_text("u-0039")
    assert "q=Kevin+Novak" in page.url and "rule=" not in page.url  # a clean address

    page.click("#explorer-clear")
    header = page.locator("#profiles-table th[data-sort=revenue]")
    header.locator("a").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    expect(rows.first.locator("td.person")).to_contain_text("Kevin Novak")
    expect(rows.first.locator("td[data-col=revenue]")).to_contain_text("$7,")  # 3 × 2,400 + …
    header.locator("a").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    expect(rows.first.locator("td[data-col=revenue]")).to_have_text("—")
    # the sort pick list offers the computed traits too
    page.select_option("#explorer-order", "-computed:rfm_score")
    expect(page.locator("#sort-column")).to_contain_text("RFM score")
    expect(page.locator("#sort-column")).to_have_attribute("aria-sort", "descending")


def test_condition_filter_saved_view_and_segment(
    live_server: Any,
    page: Page,
    tenant_a: Tenant,
    crowd: dict[str, Any],
    login_as: Any,
    screenshot: Any,
) -> None:
    login_as(tenant_a.users["marketer"])
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/profiles/")
    page.click("#explorer-editor-rule > summary")
    editor = page.locator("#explorer-tree-rule")
    editor.locator(".add-trait").click()
    condition = editor.locator(".rule-cond").first
    condition.locator(".cond-trait").fill("plan")
    condition.locator(".cond-trait").dispatch_event("change")
    condition.locator(".cond-op").select_option("eq")
    condition.locator(".cond-value").fill("pro")
    page.click("#explorer-apply-rule")

    rows = page.locator("#profiles-table tbody tr")
    expect(page.locator("#explorer-count")).to_contain_text(f"{crowd['pro']} profiles match")
    expect(rows).to_have_count(min(crowd["pro"], 25))
    query = parse_qs(urlsplit(page.url).query)
    assert query["rule"] == ['{"all":[{"trait":"plan","op":"eq","value":"pro"}]}']
    expect(page.locator("#explorer-chips")).to_contain_text("Conditions: plan is pro")
    # the editor shows the rule in use again
    expect(page.locator("#explorer-editor-rule")).to_have_attribute("open", "")
    expect(editor.locator(".cond-trait")).to_have_value("plan")
    screenshot(page, "61-profile-explorer-conditions")

    page.fill("#save-view-name", "Pro plan")
    page.click("#save-view")
    expect(page.locator(".msg.success")).to_contain_text("Saved view “Pro plan”")
    expect(page.locator("#saved-views .saved-view.current a")).to_have_text("Pro plan")

    page.click("#explorer-action-create-segment")
    expect(page).to_have_url(re.compile(rf"{live_server.url}/segments/\d+/$"))
    segment = Segment.objects.get(workspace=tenant_a.workspace)
    assert segment.draft_version is not None
    assert segment.draft_version.rule == {"all": [{"trait": "plan", "op": "eq", "value": "pro"}]}
    expect(page.locator("#segment-name")).to_have_value(segment.name)
    expect(page.locator("#rule-tree .cond-trait")).to_have_value("plan")
    expect(page.locator("#rule-tree .cond-value")).to_have_value("pro")
    expect(page.locator("#preview-count")).to_have_text(str(crowd["pro"]))
    screenshot(page, "62-segment-from-explorer")
