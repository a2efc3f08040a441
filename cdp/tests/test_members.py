"""Settings → Members and /api/v1/members/: adding a member with a one-time set-password link,
changing roles, deactivating and reactivating, and the rules that hold on the page and the API
alike (not yourself, not the last owner, owners only by an owner, never another workspace's
user's password). Each change leaves an audit row; workspace B never reaches A's members."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from cdp import access, services
from cdp.errors import ApplicationError, Conflict, Forbidden, NotFound, ValidationFailed
from cdp.models import AuditLog, Membership, Role
from tests.fixtures import PASSWORD, Tenant

User = get_user_model()
PAGE = "/settings/members/"
NEW_PASSWORD = "a-long-new-password-42"  # noqa: S105 - a test password


def member(tenant: Tenant, role: str) -> Membership:
    return Membership.objects.get(workspace=tenant.workspace, user=tenant.users[role])


def audit_actions(tenant: Tenant) -> list[str]:
    rows = AuditLog.objects.filter(workspace=tenant.workspace, action__startswith="member.")
    return list(rows.order_by("id").values_list("action", flat=True))


def link_of(html: str) -> str:
    found = re.search(r'<code class="key" id="member-link">([^<]+)</code>', html)
    assert found, "no set-password link on the page"
    return found.group(1)


def add(tenant: Tenant, username: str = "mia", role: str = Role.MARKETER, **kw: Any) -> Any:
    return services.member_add(
        workspace=tenant.workspace,
        actor=tenant.users[Role.OWNER],
        username=username,
        role=role,
        email=kw.pop("email", f"{username}@example.com"),
        **kw,
    )


def sign_in(username: str, password: str) -> Client:
    """Through the sign-in form (django-axes needs the request)."""
    client = Client()
    response = client.post("/login/", {"username": username, "password": password})
    assert response.status_code == 302, response.content[:300]
    return client


def refused(code: str, call: Any, **kw: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        call(**kw)
    assert caught.value.code == code, caught.value.message
    return caught.value


# ---- adding a member and their set-password link -------------------------------------------


def test_owner_adds_a_member_on_the_page_who_sets_a_password_once(tenant_a: Tenant) -> None:
    owner = tenant_a.session(Role.OWNER)
    body = {
        "action": "add",
        "username": "mia",
        "email": "mia@example.com",
        "name": "Mia  Wong",
        "role": Role.MARKETER,
    }
    response = owner.post(PAGE, body)
    assert response.status_code == 302 and response["Location"] == PAGE
    page = owner.get(PAGE).content.decode()
    url = link_of(page)
    assert "mia was added as Marketer" in page and "for 3 days" in page
    assert "member-link" not in owner.get(PAGE).content.decode()  # shown once

    mia = User.objects.get(username="mia")
    assert not mia.has_usable_password() and mia.get_full_name() == "Mia Wong"
    membership = Membership.objects.get(workspace=tenant_a.workspace, user=mia)
    assert membership.role == Role.MARKETER and membership.status == "invited"
    added = AuditLog.objects.get(workspace=tenant_a.workspace, action="member.add")
    assert added.actor == tenant_a.users[Role.OWNER]
    assert added.detail == {"user": "mia", "role": "marketer", "new_user": True}

    path = url.removeprefix("http://testserver")
    visitor = Client()
    form = visitor.get(path)
    assert form.status_code == 200 and b'id="welcome-form"' in form.content
    short = visitor.post(path, {"new_password1": "abc", "new_password2": "abc"})
    assert b"too short" in short.content
    mismatch = visitor.post(path, {"new_password1": NEW_PASSWORD, "new_password2": "other-pw-1"})
    assert b"didn\xe2\x80\x99t match" in mismatch.content or b"match" in mismatch.content
    done = visitor.post(path, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302 and done["Location"] == "/"
    assert visitor.get("/api/v1/me/").json()["username"] == "mia"
    mia.refresh_from_db()
    assert mia.check_password(NEW_PASSWORD) and mia.last_login is not None
    assert "member.password_set" in audit_actions(tenant_a)

    again = Client().get(path)  # used: the password (and last sign-in) it covered changed
    assert again.status_code == 200
    assert b"This link no longer works" in again.content and b"welcome-form" not in again.content
    assert (
        Client().post(path, {"new_password1": "x-" * 8, "new_password2": "x-" * 8}).status_code
        == 200
    )
    sign_in("mia", NEW_PASSWORD)


def test_an_expired_or_garbled_link_says_so(tenant_a: Tenant) -> None:
    link = add(tenant_a).link
    with time_machine.travel(timezone.now() + timedelta(days=3, minutes=1)):
        expired = Client().get(link)
    assert expired.status_code == 200 and b"This link no longer works" in expired.content
    assert Client().get(link).status_code == 200  # still valid before that
    for bad in ["/welcome/xx/yy/", "/welcome/MTIzNDU2Nzg5/abc-def/", link[:-3] + "zz/"]:
        response = Client().get(bad)
        assert response.status_code == 200 and b"This link no longer works" in response.content


def test_a_new_link_replaces_the_old_one_until_the_member_signs_in(tenant_a: Tenant) -> None:
    first = add(tenant_a).link
    membership = Membership.objects.get(user__username="mia")
    owner = tenant_a.users[Role.OWNER]
    session = tenant_a.session()
    session.post(PAGE + "?q=mia", {"action": "link", "member": membership.pk})
    page = session.get(PAGE + "?q=mia").content.decode()
    assert "A new link for mia: earlier links no longer work." in page
    second = link_of(page).removeprefix("http://testserver")
    assert b"no longer works" in Client().get(first).content
    assert b"welcome-form" in Client().get(second).content
    assert audit_actions(tenant_a) == ["member.add", "member.link_issue"]
    Client().post(second, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    error = refused(
        "link_not_allowed",
        services.member_link_issue,
        workspace=tenant_a.workspace,
        actor=owner,
        membership_id=membership.pk,
    )
    assert "has a password already" in error.message


def test_add_checks_its_input(tenant_a: Tenant) -> None:
    with pytest.raises(ValidationFailed) as caught:
        add(tenant_a, username="bad name!", role="boss")
    assert set(caught.value.fields) == {"username", "role"}
    with pytest.raises(ValidationFailed) as caught:
        add(tenant_a, username="nomail", email="")
    assert caught.value.fields == {"email": ["required for a new user"]}
    with pytest.raises(ValidationFailed):
        add(tenant_a, username="badmail", email="not-an-address")
    with pytest.raises(Conflict) as dup:
        add(tenant_a, username="Marketer@Alpha")  # a member already (any case)
    assert dup.value.code == "duplicate"
    # the page shows the form again with what was typed and the error by its field
    page = tenant_a.session().post(PAGE, {"action": "add", "username": "zoe", "role": "marketer"})
    html = page.content.decode()
    assert page.status_code == 400 and 'value="zoe"' in html
    assert 'id="add-email-error">required for a new user' in html
    assert not User.objects.filter(username="zoe").exists()


def test_an_account_of_another_workspace_is_added_without_a_link(
    tenant_a: Tenant, tenant_b: Tenant
) -> None:
    bravo = tenant_b.users[Role.MARKETER]
    password_before = bravo.password
    added = add(tenant_a, username=bravo.username, role=Role.ANALYST, email="mine@evil.example")
    assert not added.new_user and added.link is None
    bravo.refresh_from_db()
    assert bravo.password == password_before and bravo.email == ""  # nothing of it changed
    assert access.role_of(bravo, tenant_a.workspace) == Role.ANALYST
    # a user B invited, who never signed in: added to A as they are, and A never issues
    # them a link (that would let A's owner set the password of B's user)
    invited = services.member_add(
        workspace=tenant_b.workspace,
        actor=tenant_b.users[Role.OWNER],
        username="newbie",
        email="newbie@bravo.example",
        role=Role.MARKETER,
    )
    into_a = add(tenant_a, username="newbie", role=Role.ANALYST)
    assert into_a.link is None and not into_a.new_user
    error = refused(
        "link_not_allowed",
        services.member_link_issue,
        workspace=tenant_a.workspace,
        actor=tenant_a.users[Role.OWNER],
        membership_id=into_a.membership.pk,
    )
    assert "another workspace" in error.message
    assert invited.link is not None
    assert b"welcome-form" in Client().get(invited.link).content  # B's link still works
    page = tenant_a.session().get(PAGE).content.decode()
    newbie_row = page[page.index('data-member="newbie"') :].split("</tr>")[0]
    assert "member-link" not in page and "New link" not in newbie_row
    assert "Deactivate" in newbie_row


# ---- the guard rails -----------------------------------------------------------------------


def test_nobody_demotes_or_deactivates_themselves(tenant_a: Tenant) -> None:
    ws = tenant_a.workspace
    admin = tenant_a.users[Role.ADMIN]
    own = member(tenant_a, Role.ADMIN)
    refused(
        "self_change",
        services.member_role_set,
        workspace=ws,
        actor=admin,
        membership_id=own.pk,
        role=Role.ANALYST,
    )
    refused(
        "self_change",
        services.member_active_set,
        workspace=ws,
        actor=admin,
        membership_id=own.pk,
        active=False,
    )
    # an owner among two owners neither
    second = tenant_a.users[Role.MARKETER]
    services.member_role_set(
        workspace=ws,
        actor=tenant_a.users[Role.OWNER],
        membership_id=member(tenant_a, Role.MARKETER).pk,
        role=Role.OWNER,
    )
    refused(
        "self_change",
        services.member_role_set,
        workspace=ws,
        actor=second,
        membership_id=member(tenant_a, Role.MARKETER).pk,
        role=Role.ADMIN,
    )
    # the page says why
    session = tenant_a.session(Role.ADMIN)
    session.post(PAGE, {"action": "deactivate", "member": own.pk})
    assert "You cannot change your own membership" in session.get(PAGE).content.decode()
    assert member(tenant_a, Role.ADMIN).is_active


def test_the_last_owner_stays(tenant_a: Tenant) -> None:
    ws = tenant_a.workspace
    owner = tenant_a.users[Role.OWNER]
    own = member(tenant_a, Role.OWNER)
    calls: list[tuple[Any, dict[str, Any]]] = [
        (services.member_role_set, {"role": Role.ADMIN}),
        (services.member_active_set, {"active": False}),
    ]
    for call, kw in calls:
        error = refused("last_owner", call, workspace=ws, actor=owner, membership_id=own.pk, **kw)
        assert "last owner" in error.message
    assert member(tenant_a, Role.OWNER).role == Role.OWNER
    assert "member.role_change" not in audit_actions(tenant_a)


def test_only_an_owner_grants_or_changes_the_owner_role(tenant_a: Tenant) -> None:
    ws = tenant_a.workspace
    admin = tenant_a.users[Role.ADMIN]
    owner_membership = member(tenant_a, Role.OWNER)
    analyst = member(tenant_a, Role.ANALYST)
    calls: list[tuple[Any, dict[str, Any]]] = [
        (services.member_role_set, {"membership_id": analyst.pk, "role": Role.OWNER}),
        (services.member_role_set, {"membership_id": owner_membership.pk, "role": Role.ADMIN}),
        (services.member_active_set, {"membership_id": owner_membership.pk, "active": False}),
        (services.member_link_issue, {"membership_id": owner_membership.pk}),
    ]
    for call, kw in calls:
        refused("owner_required", call, workspace=ws, actor=admin, **kw)
    refused(
        "owner_required",
        services.member_add,
        workspace=ws,
        actor=admin,
        username="newboss",
        email="b@example.com",
        role=Role.OWNER,
    )
    # admins manage the others
    changed = services.member_role_set(
        workspace=ws, actor=admin, membership_id=analyst.pk, role=Role.MARKETER
    )
    assert changed.role == Role.MARKETER
    # an owner makes an owner, and demotes them again
    owner = tenant_a.users[Role.OWNER]
    services.member_role_set(workspace=ws, actor=owner, membership_id=analyst.pk, role=Role.OWNER)
    services.member_role_set(workspace=ws, actor=owner, membership_id=analyst.pk, role=Role.ADMIN)
    rows = AuditLog.objects.filter(workspace=ws, action="member.role_change").order_by("id")
    assert [(r.actor_id, r.detail["from"], r.detail["to"]) for r in rows] == [
        (admin.pk, "analyst", "marketer"),
        (owner.pk, "marketer", "owner"),
        (owner.pk, "owner", "admin"),
    ]
    # the page offers an admin no owner controls: the owner's row is read-only
    html = tenant_a.session(Role.ADMIN).get(PAGE).content.decode()
    owner_row = html[html.index('data-member="owner@alpha"') :].split("</tr>")[0]
    assert "<select" not in owner_row and "Deactivate" not in owner_row
    add_form = html[html.index('id="add-member-form"') :].split("</form>")[0]
    assert '<option value="owner"' not in add_form and '<option value="admin"' in add_form


def test_members_who_may_not_manage_are_refused(tenant_a: Tenant) -> None:
    for role in (Role.MARKETER, Role.ANALYST, Role.PRIVACY_OFFICER):
        refused(
            "forbidden",
            services.member_active_set,
            workspace=tenant_a.workspace,
            actor=tenant_a.users[role],
            membership_id=member(tenant_a, Role.ADMIN).pk,
            active=False,
        )


# ---- deactivation --------------------------------------------------------------------------


def test_a_deactivated_member_loses_access_until_reactivated(tenant_a: Tenant) -> None:
    marketer = member(tenant_a, Role.MARKETER)
    session = tenant_a.session(Role.MARKETER)
    token = tenant_a.api(Role.MARKETER)
    assert session.get("/segments/").status_code == 200
    assert token.get("/api/v1/me/").status_code == 200

    owner = tenant_a.session(Role.OWNER)
    owner.post(PAGE, {"action": "deactivate", "member": marketer.pk})
    marketer.refresh_from_db()
    assert not marketer.is_active and marketer.status == "deactivated"
    assert "was deactivated" in owner.get(PAGE).content.decode()

    denied = token.get("/api/v1/me/")
    assert denied.status_code == 401
    assert denied.json()["error"]["message"] == "The token's user was deactivated in its workspace."
    assert session.get("/segments/").status_code == 403  # the session lost the workspace too
    assert access.role_of(tenant_a.users[Role.MARKETER], tenant_a.workspace) is None
    assert not access.workspaces_of(tenant_a.users[Role.MARKETER]).exists()
    with pytest.raises(Forbidden):
        services.api_token_create(
            workspace=tenant_a.workspace, user=tenant_a.users[Role.MARKETER], name="again"
        )
    # signing in again does not reach the workspace either
    fresh = sign_in("marketer@alpha", PASSWORD)
    assert fresh.get("/segments/").status_code == 403

    owner.post(PAGE, {"action": "reactivate", "member": marketer.pk})
    assert token.get("/api/v1/me/").status_code == 200
    assert session.get("/segments/").status_code == 200
    assert audit_actions(tenant_a) == ["member.deactivate", "member.reactivate"]


# ---- the page ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_only_owners_and_admins_see_the_page_and_its_card(tenant_a: Tenant, role: str) -> None:
    session = tenant_a.session(role)
    manages = role in (Role.OWNER, Role.ADMIN)
    assert session.get(PAGE).status_code == (200 if manages else 403)
    settings_page = session.get("/settings/").content.decode()
    assert ('id="members-settings"' in settings_page) == manages
    assert ('href="/settings/members/"' in settings_page) == manages
    assert "/admin/" not in settings_page  # the Django admin is for superusers, not linked


def test_the_table_searches_filters_and_pages(tenant_a: Tenant) -> None:
    users = [User(username=f"person{n:02d}", email=f"p{n}@corp.example") for n in range(30)]
    for user in users:
        user.set_unusable_password()
    User.objects.bulk_create(users)
    Membership.objects.bulk_create(
        Membership(workspace=tenant_a.workspace, user=u, role=Role.ANALYST)
        for u in User.objects.filter(username__startswith="person")
    )
    session = tenant_a.session()
    first = session.get(PAGE).content.decode()
    assert first.count("data-member=") == 25 and "Page 1 of 2" in first
    second = session.get(PAGE + "?page=2").content.decode()
    assert second.count("data-member=") == 10 and "26–35 of 35" in second
    found = session.get(PAGE + "?q=p7%40corp").content.decode()
    assert re.findall(r'data-member="([^"]+)"', found) == ["person07"]
    by_name = tenant_a.users[Role.ADMIN]
    by_name.first_name, by_name.last_name = "Ada", "Lovelace"
    by_name.save()
    found = session.get(PAGE + "?q=ada+love").content.decode()
    assert re.findall(r'data-member="([^"]+)"', found) == ["admin@alpha"]
    marketers = session.get(PAGE + "?role=marketer").content.decode()
    assert re.findall(r'data-member="([^"]+)"', marketers) == ["marketer@alpha"]
    invited = session.get(PAGE + "?status=invited&role=privacy_officer").content.decode()
    assert re.findall(r'data-member="([^"]+)"', invited) == ["privacy_officer@alpha"]
    assert "you</span>" in first  # the owner's own row


def test_workspace_b_cannot_touch_a_members(tenant_a: Tenant, tenant_b: Tenant) -> None:
    target = member(tenant_a, Role.MARKETER)
    b_owner = tenant_b.users[Role.OWNER]
    calls: list[tuple[Any, dict[str, Any]]] = [
        (services.member_role_set, {"role": Role.ANALYST}),
        (services.member_active_set, {"active": False}),
        (services.member_link_issue, {}),
    ]
    for call, kw in calls:
        with pytest.raises(NotFound):
            call(workspace=tenant_b.workspace, actor=b_owner, membership_id=target.pk, **kw)
    # an owner of A acting in B's workspace is refused too: not a member there
    refused(
        "forbidden",
        services.member_active_set,
        workspace=tenant_b.workspace,
        actor=tenant_a.users[Role.OWNER],
        membership_id=member(tenant_b, Role.ANALYST).pk,
        active=False,
    )
    session = tenant_b.session()
    session.post(PAGE, {"action": "deactivate", "member": target.pk})
    assert "No such member in this workspace." in session.get(PAGE).content.decode()
    assert "alpha" not in session.get(PAGE).content.decode()
    api = tenant_b.api()
    assert api.get(f"/api/v1/members/{target.pk}/").status_code == 404
    patched = api.patch(
        f"/api/v1/members/{target.pk}/", {"active": False}, content_type="application/json"
    )
    assert patched.status_code == 404 and patched.json()["error"]["code"] == "not_found"
    assert api.post(f"/api/v1/members/{target.pk}/link/").status_code == 404
    target.refresh_from_db()
    assert target.is_active and target.role == Role.MARKETER
    assert audit_actions(tenant_a) == [] and audit_actions(tenant_b) == []


# ---- the API -------------------------------------------------------------------------------


def test_api_lists_adds_and_changes_members(tenant_a: Tenant) -> None:
    api = tenant_a.api(Role.ADMIN)
    listed = api.get("/api/v1/members/?role=marketer").json()
    assert listed["count"] == 1
    row = listed["results"][0]
    assert row["username"] == "marketer@alpha" and row["status"] == "invited"
    assert row["active"] is True and row["email"] == "" and row["last_login"] is None
    # other members see who is there, not the details
    seen = tenant_a.api(Role.ANALYST).get("/api/v1/members/?q=marketer").json()["results"]
    assert seen[0]["role"] == "marketer" and seen[0]["status"] is None

    created = api.post(
        "/api/v1/members/",
        {"username": "kim", "email": "kim@example.com", "name": "Kim Lee", "role": "analyst"},
        content_type="application/json",
    )
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "Kim Lee" and body["status"] == "invited"
    assert body["set_password_url"].startswith("http://testserver/welcome/")
    assert b"welcome-form" in Client().get(body["set_password_url"]).content

    patched = api.patch(
        f"/api/v1/members/{body['id']}/",
        {"role": "marketer", "active": False},
        content_type="application/json",
    )
    assert patched.status_code == 200
    assert patched.json()["role"] == "marketer" and patched.json()["status"] == "deactivated"
    assert audit_actions(tenant_a) == ["member.add", "member.role_change", "member.deactivate"]
    link = api.post(f"/api/v1/members/{body['id']}/link/")
    assert link.status_code == 409 and link.json()["error"]["code"] == "link_not_allowed"


def test_api_errors_have_the_one_shape(tenant_a: Tenant) -> None:
    api = tenant_a.api(Role.OWNER)
    own = member(tenant_a, Role.OWNER).pk
    last = api.patch(f"/api/v1/members/{own}/", {"role": "admin"}, content_type="application/json")
    assert last.status_code == 409
    assert last.json()["error"]["code"] == "last_owner"
    assert set(last.json()["error"]) == {"code", "message", "detail"}

    admin = tenant_a.api(Role.ADMIN)
    owner_change = admin.patch(
        f"/api/v1/members/{own}/", {"active": False}, content_type="application/json"
    )
    assert owner_change.status_code == 403
    assert owner_change.json()["error"]["code"] == "owner_required"
    mine = member(tenant_a, Role.ADMIN).pk
    self_change = admin.patch(
        f"/api/v1/members/{mine}/", {"role": "analyst"}, content_type="application/json"
    )
    assert self_change.status_code == 403 and self_change.json()["error"]["code"] == "self_change"

    target = f"/api/v1/members/{member(tenant_a, Role.ANALYST).pk}/"
    for body, path in [
        ({"role": "boss"}, "role"),
        ({"active": "no"}, "active"),
        ({"nickname": "x"}, "nickname"),
        ({}, "non_field_errors"),
    ]:
        bad = api.patch(target, body, content_type="application/json")
        assert bad.status_code == 400, body
        assert bad.json()["error"]["code"] == "validation_failed"
        assert path in bad.json()["error"]["detail"]["fields"], bad.json()
    assert api.get("/api/v1/members/?role=boss").status_code == 400
    marketer = tenant_a.api(Role.MARKETER)
    refused_add = marketer.post(
        "/api/v1/members/", {"username": "x", "role": "analyst"}, content_type="application/json"
    )
    assert refused_add.status_code == 403 and refused_add.json()["error"]["code"] == "forbidden"
    assert AuditLog.objects.filter(action__startswith="member.").count() == 0
