"""The page toolkit every app's server-rendered views use: the request's workspace, the
capability check, pagination and query strings for paging and filter links."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest

from cdp import access
from cdp.auth import current_workspace
from cdp.errors import ValidationFailed
from cdp.models import Workspace


def workspace_of(request: HttpRequest) -> Workspace:
    """The workspace the signed-in user acts in (403 for someone in none)."""
    workspace = current_workspace(request)
    if workspace is None:
        raise PermissionDenied("You are not a member of any workspace.")
    return workspace


T = TypeVar("T")


def found(value: T | None, what: str) -> T:
    """`value`, or a 404 saying that no such `what` is in this workspace."""
    if value is None:
        raise Http404(f"No such {what} in this workspace.")
    return value


def require(request: HttpRequest, capability: str, obj: Any = None) -> Workspace:
    """The request's workspace, if the user's role (or a grant on `obj`) allows
    `capability` there; 403 otherwise."""
    workspace = workspace_of(request)
    if not access.can(request.user, workspace, capability, obj):
        raise PermissionDenied(f"Your role does not allow {capability}.")
    return workspace


def can(request: HttpRequest, capability: str, obj: Any = None) -> bool:
    return access.can(request.user, workspace_of(request), capability, obj)


def choice(request: HttpRequest, name: str, allowed: Iterable[str], default: str = "") -> str:
    """The query parameter `name` if it is one of `allowed` (the values a filter offers),
    else `default`: an edited or stale URL shows the unfiltered page rather than an error."""
    value = request.GET.get(name, default)
    return value if value in set(allowed) else default


def query_string(request: HttpRequest, **changes: str) -> str:
    """The current query string with `changes` applied ("" removes a parameter)."""
    params = request.GET.copy()
    for key, value in changes.items():
        if value:
            params[key] = value
        else:
            params.pop(key, None)
    return params.urlencode()


def field_errors(exc: ValidationFailed) -> dict[str, str]:
    """path -> its first message, for a form that marks each bad field (the paths are those
    of the service's input, e.g. `event_days`, `limits.email`, `identifiers[3]`)."""
    return {path: messages[0] for path, messages in exc.fields.items()}


def paginate(request: HttpRequest, rows: Any, size: int) -> dict[str, Any]:
    """The `?page=` page of `rows` and the query strings of its neighbours, as the pager
    template (`cdp/_pager.html`) expects them."""
    page: Page[Any] = Paginator(rows, size).get_page(request.GET.get("page"))
    return {
        "page": page,
        "prev_query": query_string(request, page=str(page.number - 1)),
        "next_query": query_string(request, page=str(page.number + 1)),
    }
