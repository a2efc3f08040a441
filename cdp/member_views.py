"""Settings → Members (the workspace's team) and the set-password page a new member's link
opens. The rules about who may change whom live in cdp.services; these views only call them."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import SetPasswordForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from cdp import access, pages, selectors, services
from cdp.errors import ApplicationError, ValidationFailed
from cdp.models import MemberStatus, Role, Workspace
from cdp.params import is_id

MEMBERS_PER_PAGE = 25
# the set-password link of the member just added (or given a new link), shown once by the
# next render of the members page, which drops it from the session
LINK_SESSION_KEY = "cdp_member_link"
ADD_FIELDS = ("username", "email", "name", "role")
CHANGES = ("role", "deactivate", "reactivate", "link")


@login_required
def members_page(request: HttpRequest) -> HttpResponse:
    """The workspace's members (search, role and status filters, 25 a page) and the forms
    that add one, change a role, deactivate or reactivate, and issue a new set-password link."""
    workspace = pages.require(request, "members.manage")
    if request.method != "POST":
        return _render(request, workspace)
    action = request.POST.get("action", "")
    member = request.POST.get("member", "")
    try:
        if action == "add":
            _add(request, workspace)
        elif action in CHANGES and is_id(member):
            _change(request, workspace, action, int(member))
        else:
            messages.error(request, "Nothing was changed: the form was incomplete.")
    except ApplicationError as exc:
        if action == "add":  # shown again with what was typed, the errors by their fields
            return _render(request, workspace, add_error=exc, status=400)
        messages.error(request, exc.message)
    query = request.GET.urlencode()  # back to the same page and filters
    return redirect(reverse("ui-members") + (f"?{query}" if query else ""))


def _add(request: HttpRequest, workspace: Workspace) -> None:
    added = services.member_add(
        workspace=workspace,
        actor=request.user,
        username=request.POST.get("username", ""),
        email=request.POST.get("email", ""),
        name=request.POST.get("name", ""),
        role=request.POST.get("role", ""),
    )
    user = added.membership.user
    role = Role(added.membership.role).label
    if added.link is not None:
        _flash_link(request, added.link, f"{user.get_username()} was added as {role}.")
    else:
        messages.success(
            request,
            f"{user.get_username()} had an account already and was added as {role}: they sign "
            "in with their own password.",
        )


def _change(request: HttpRequest, workspace: Workspace, action: str, pk: int) -> None:
    actor = request.user
    if action == "link":
        path = services.member_link_issue(workspace=workspace, actor=actor, membership_id=pk)
        member = pages.found(selectors.member_of(workspace=workspace, membership_id=pk), "member")
        name = member.user.get_username()
        _flash_link(request, path, f"A new link for {name}: earlier links no longer work.")
        return
    if action == "role":
        member = services.member_role_set(
            workspace=workspace, actor=actor, membership_id=pk, role=request.POST.get("role", "")
        )
        text = f"{member.user.get_username()} is now {Role(member.role).label}."
    else:
        member = services.member_active_set(
            workspace=workspace, actor=actor, membership_id=pk, active=action == "reactivate"
        )
        name = member.user.get_username()
        text = (
            f"{name} was reactivated."
            if member.is_active
            else f"{name} was deactivated: they can no longer sign in to this workspace or "
            "use its API tokens."
        )
    messages.success(request, text)


def _flash_link(request: HttpRequest, path: str, text: str) -> None:
    request.session[LINK_SESSION_KEY] = {"text": text, "url": request.build_absolute_uri(path)}


def valid_for() -> str:
    """How long a set-password link works, in words ("3 days")."""
    seconds = int(settings.PASSWORD_RESET_TIMEOUT)
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day{'s' if days != 1 else ''}"
    hours = max(1, seconds // 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}"


def _render(
    request: HttpRequest,
    workspace: Workspace,
    *,
    add_error: ApplicationError | None = None,
    status: int = 200,
) -> HttpResponse:
    filters = {
        "q": request.GET.get("q", "").strip()[:200],
        "role": pages.choice(request, "role", Role.values),
        "status": pages.choice(request, "status", MemberStatus.values),
    }
    actor_role = access.role_of(request.user, workspace)
    paged = pages.paginate(
        request, selectors.members_of(workspace=workspace, **filters), MEMBERS_PER_PAGE
    )
    rows = []
    for m in paged["page"].object_list:
        editable = (
            services.member_refusal(actor=request.user, actor_role=actor_role, membership=m) is None
        )
        linkable = (
            editable
            and m.status == MemberStatus.INVITED
            and services.member_link_refusal(workspace=workspace, membership=m) is None
        )
        rows.append(
            {
                "m": m,
                "is_me": m.user_id == request.user.pk,
                "editable": editable,
                "linkable": linkable,
            }
        )
    add_errors: dict[str, str] = {}
    if add_error is not None and "fields" in add_error.detail:
        add_errors = {path: texts[0] for path, texts in add_error.detail["fields"].items()}
    return render(
        request,
        "cdp/members.html",
        {
            **paged,
            "rows": rows,
            "filters": filters,
            "filtered": any(filters.values()),
            "total": selectors.members_of(workspace=workspace).count(),
            "roles": Role.choices,
            "statuses": MemberStatus.choices,
            "grantable_roles": [
                (value, label)
                for value, label in Role.choices
                if value != Role.OWNER or actor_role == Role.OWNER
            ],
            "new_link": request.session.pop(LINK_SESSION_KEY, None),
            "valid_for": valid_for(),
            "add": {f: request.POST.get(f, "") for f in ADD_FIELDS} if add_error else {},
            "add_errors": add_errors,
            "add_error": add_error.message if add_error is not None and not add_errors else "",
        },
        status=status,
    )


@never_cache
@sensitive_post_parameters("new_password1", "new_password2")
def welcome(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """The page of a set-password link, no sign-in needed: a valid link sets the member's
    first password (the password validators apply), signs them in and opens the start page.
    A link that expired, was used or was replaced by a newer one says so."""
    user = selectors.welcome_user(uidb64=uidb64, token=token)
    if user is None:
        return render(request, "registration/welcome.html", {"valid": False})
    form = SetPasswordForm(user, request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            services.member_password_set(user=user, password=form.cleaned_data["new_password1"])
        except ValidationFailed as exc:
            form.add_error("new_password1", exc.message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome, {user.get_username()}: your password is set.")
            return redirect("ui-home")
    context: dict[str, Any] = {"valid": True, "form": form, "member": user}
    return render(request, "registration/welcome.html", context)
