"""Settings → Members in headless Chromium: an owner adds a marketer and copies their one-time
link; the marketer opens it in a browser of their own, sets a password and lands signed in,
with a marketer's navigation. The members table pages, and its row forms change a role and
deactivate someone (after a confirmation) without leaving the page they were on."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Browser, BrowserContext, Page, expect

from cdp.models import Membership, Role
from tests.browser.conftest import TIMEOUT_MS, ConsoleWatch
from tests.fixtures import Tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "tulips-in-the-rain-77"  # noqa: S105 - a test password


def test_owner_adds_a_marketer_who_signs_in_with_the_link(
    live_server: Any,
    browser: Browser,
    context: BrowserContext,
    page: Page,
    console: ConsoleWatch,
    tenant_a: Tenant,
    login_as: Any,
    screenshot: Any,
) -> None:
    login_as(tenant_a.users[Role.OWNER])
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/settings/")
    page.locator("#members-settings a", has_text="Manage members").click()
    expect(page).to_have_url(f"{live_server.url}/settings/members/")
    expect(page.locator("h1")).to_have_text("Members")

    page.fill("#add-username", "mia")
    page.fill("#add-email", "mia@example.com")
    page.fill("#add-name", "Mia Wong")
    page.select_option("#add-role", "marketer")
    page.click("#add-member-submit")
    expect(page.locator("#new-member-link")).to_contain_text("mia was added as Marketer")
    row = page.locator('#members-table tr[data-member="mia"]')
    expect(row).to_contain_text("Mia Wong")
    expect(row).to_contain_text("Invited")
    expect(row.locator("button", has_text="New link")).to_be_visible()
    page.screenshot(path="/tmp/members.png")
    screenshot(page, "members-added")

    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    copy = page.locator("#new-member-link button.copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    link = page.evaluate("navigator.clipboard.readText()")
    assert re.fullmatch(rf"{re.escape(live_server.url)}/welcome/[^/]+/[^/]+/", link), link
    page.reload()  # shown once
    expect(page.locator("#new-member-link")).to_have_count(0)

    # the marketer, in a browser of their own
    theirs = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    theirs.set_default_timeout(TIMEOUT_MS)
    theirs.on("page", console.attach)
    console.allow(r"status of 403 \(Forbidden\)")
    try:
        mia = theirs.new_page()
        mia.goto(link)
        expect(mia.locator("#welcome")).to_contain_text("Welcome, Mia Wong")
        screenshot(mia, "members-welcome")
        mia.fill("#id_new_password1", NEW_PASSWORD)
        mia.fill("#id_new_password2", NEW_PASSWORD)
        mia.click("#welcome-form button[type=submit]")
        expect(mia.locator(".sidebar .who")).to_contain_text("mia")
        expect(mia.locator(".sidebar .who")).to_contain_text("marketer")
        nav = mia.locator(".sidebar nav")
        expect(nav.locator("a", has_text="Segments")).to_be_visible()
        expect(nav.locator("a", has_text="Privacy")).to_have_count(0)
        mia.goto(f"{live_server.url}/settings/")
        expect(mia.locator("h1")).to_have_text("Settings")
        expect(mia.locator("#members-settings")).to_have_count(0)
        expect(mia.locator("#identity-settings")).to_be_visible()
        response = mia.goto(f"{live_server.url}/settings/members/")
        assert response is not None and response.status == 403

        # the link is spent
        mia.goto(link)
        expect(mia.locator("#welcome-invalid")).to_have_text("This link no longer works")
    finally:
        theirs.close()

    page.reload()
    expect(page.locator('#members-table tr[data-member="mia"]')).to_contain_text("Active")


def test_the_members_table_pages_and_its_rows_change_members(
    live_server: Any, page: Page, tenant_a: Tenant, login_as: Any, screenshot: Any
) -> None:
    User = get_user_model()
    users = [User(username=f"member{n:02d}", email=f"m{n}@corp.example") for n in range(30)]
    for user in users:
        user.set_unusable_password()
    User.objects.bulk_create(users)
    Membership.objects.bulk_create(
        Membership(workspace=tenant_a.workspace, user=u, role=Role.ANALYST)
        for u in User.objects.filter(username__startswith="member")
    )
    login_as(tenant_a.users[Role.OWNER])
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/settings/members/")
    rows = page.locator("#members-table tbody tr")
    expect(rows).to_have_count(25)
    expect(page.locator(".pager")).to_contain_text("Page 1 of 2")

    page.click(".pager a[rel=next]")
    expect(page).to_have_url(f"{live_server.url}/settings/members/?page=2")
    expect(rows).to_have_count(10)
    expect(page.locator(".pager")).to_contain_text("26–35 of 35")
    screenshot(page, "members-page-2")

    # a role changes from its row; the page stays where it was
    row = page.locator('#members-table tr[data-member="member25"]')
    row.locator("select[name=role]").select_option("marketer")
    row.locator("button", has_text="Save").click()
    expect(page.locator(".msg.success")).to_have_text("member25 is now Marketer.")
    expect(page).to_have_url(f"{live_server.url}/settings/members/?page=2")
    assert Membership.objects.get(user__username="member25").role == Role.MARKETER

    # deactivating asks first
    questions: list[str] = []

    def accept(dialog: Any) -> None:
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.locator('#members-table tr[data-member="member26"] button', has_text="Deactivate").click()
    expect(page.locator(".msg.success")).to_contain_text("member26 was deactivated")
    assert questions and "Deactivate member26?" in questions[0]
    row = page.locator('#members-table tr[data-member="member26"]')
    expect(row).to_contain_text("Deactivated")
    expect(row.locator("button", has_text="Reactivate")).to_be_visible()

    # the role filter and the search
    page.select_option("#member-role-filter", "marketer")  # submits by itself
    expect(page).to_have_url(re.compile(r"role=marketer"))
    expect(rows).to_have_count(2)  # marketer@alpha and member25
    page.fill("#member-search", "m25@corp")
    page.click("#member-search-submit")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-member", "member25")
    page.click("#member-filter-clear")
    expect(rows).to_have_count(25)
