"""The Profiles page as an explorer: search names, emails, phones and ids, sort by any column
or computed trait, filter by RFM segment and by what other apps register (segments: member
of a segment, conditions in the segment builder's rule language), save views, and act on
the filter (segments: create a segment from it). The whole state is the URL's query string,
so a view can be shared by its link."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from cdp import pages
from cdp.errors import ApplicationError, ValidationFailed
from cdp.models import Workspace
from profiles.computed import builtin
from profiles.explorer import query as explorer
from profiles.explorer import selectors, services
from profiles.explorer.pagination import CountedPaginator
from profiles.explorer.query import ExplorerQuery
from profiles.identity import selectors as identity_selectors
from profiles.identity.rules import Rules, load_rules
from profiles.models import Identity, Profile

PAGE_SIZE = 25
KEY_IDENTIFIERS = 2  # chips shown per profile (by the identity rules' priority)
PAGER_SPAN = 2  # page links shown either side of the current one
COUNT_CAP = 10_000  # a search or filter's matches are counted up to this many
# the parameters' names as the page's labels say them, for its error messages
PARAM_LABELS = {"q": "Search", "identifier": "Identifier", "order": "Sort", "rfm": "RFM segment"}
# the table's sortable columns: header text -> sort key (the order pick list has the rest)
COLUMNS = (
    ("engagement", "Engagement"),
    ("orders", "Orders"),
    ("revenue", "Revenue"),
    ("last_seen", "Last seen"),
    ("first_seen", "First seen"),
)


def number(value: Any) -> str:
    """A computed value in a cell: numbers grouped (up to 2 decimals), text as it is."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        if isinstance(value, int) or float(value).is_integer():
            return f"{int(value):,}"
        return f"{float(value):,.2f}"
    return str(value)


def _problems(exc: ValidationFailed, workspace_filters: dict[str, str]) -> list[dict[str, str]]:
    """Each bad parameter with its label, for the page's error box."""
    labels = {**PARAM_LABELS, **workspace_filters}
    out = []
    for path, messages_ in exc.fields.items():
        param = path.split(".", 1)[0].split("[", 1)[0]
        where = path[len(param) :].lstrip(".")
        for text in messages_:
            out.append(
                {"param": param, "label": labels.get(param, param), "where": where, "text": text}
            )
    return out


def _rows(profiles: list[Profile], rules: Rules, query: ExplorerQuery) -> list[dict[str, Any]]:
    rows = []
    for profile in profiles:
        identities: list[Identity] = sorted(
            profile.identities.all(), key=identity_selectors.identity_order(rules)
        )
        name = identity_selectors.display_name(profile, identities)
        computed = profile.computed if isinstance(profile.computed, dict) else {}
        rows.append(
            {
                "profile": profile,
                "name": name,
                "anonymous": name.endswith(f"#{profile.pk}"),  # the name shows the id already
                "key_identities": identities[:KEY_IDENTIFIERS],
                "more_identities": max(0, len(identities) - KEY_IDENTIFIERS),
                "rfm_segment": computed.get("rfm_segment"),
                "engagement": computed.get("engagement_score"),
                "sort_value": _sort_value(profile, computed, query),
            }
        )
    return rows


def _extra_column(query: ExplorerQuery) -> bool:
    """Whether the list is sorted by a value the table has no column for (a computed trait,
    the number of events): it then shows it in a last column."""
    return query.sort.key != "created" and query.sort.key not in {key for key, _ in COLUMNS}


def _sort_value(profile: Profile, computed: dict[str, Any], query: ExplorerQuery) -> str:
    if not _extra_column(query):
        return ""
    if query.sort.computed_key:
        return number(computed.get(query.sort.computed_key))
    return number(getattr(profile, query.sort.column or "id"))


def _page_links(page: Any, query: ExplorerQuery) -> list[dict[str, Any]]:
    """1 … 4 5 [6] 7 8 … 40"""
    last = page.paginator.num_pages
    shown = {1, last, *range(page.number - PAGER_SPAN, page.number + PAGER_SPAN + 1)}
    links: list[dict[str, Any]] = []
    previous = 0
    for number_ in sorted(n for n in shown if 1 <= n <= last):
        if number_ > previous + 1:
            links.append({"gap": True})
        links.append(
            {
                "number": number_,
                "current": number_ == page.number,
                "query": query.query_string(page=str(number_) if number_ > 1 else ""),
            }
        )
        previous = number_
    return links


def _headers(query: ExplorerQuery) -> list[dict[str, Any]]:
    """The sortable columns: their link (descending first, the other way when already so)
    and aria-sort on the one the list is sorted by."""
    headers = []
    for key, label in COLUMNS:
        active = query.sort.key == key
        descending = active and query.descending
        headers.append(
            {
                "key": key,
                "label": label,
                "aria_sort": ("descending" if descending else "ascending") if active else "",
                "query": query.query_string(order=key if descending else f"-{key}", page=""),
                "next": "ascending" if descending else "descending",
            }
        )
    return headers


def _filters(request: HttpRequest, workspace: Workspace) -> list[dict[str, Any]]:
    """The registered filters this user may use, with how the page offers each."""
    out = []
    for spec in explorer.filters():
        if not pages.can(request, spec.capability):
            continue
        out.append(
            {
                "param": spec.param,
                "label": spec.label,
                "text": request.GET.get(spec.param, ""),
                "choices": spec.choices(workspace) if spec.choices else None,
                "editor": spec.editor(workspace) if spec.editor else None,
            }
        )
    return out


def _chips(query: ExplorerQuery, workspace: Workspace) -> list[dict[str, str]]:
    """What narrows the list, each with the link that removes it."""
    chips = []
    if query.q:
        chips.append({"label": f"Search: {query.q}", "query": query.query_string(q="", page="")})
    if query.identifier:
        chips.append(
            {
                "label": f"Identifier: {query.identifier}",
                "query": query.query_string(q="", identifier="", page=""),
            }
        )
    for label in query.rfm:
        others = [(k, v) for k, v in query.params() if not (k == "rfm" and v == label)]
        chips.append({"label": f"RFM: {label}", "query": urlencode(others)})
    for applied in query.applied:
        chips.append(
            {
                "label": applied.spec.describe(workspace, applied.value),
                "query": query.query_string(**{applied.spec.param: ""}, page=""),
            }
        )
    return chips


def _page(
    request: HttpRequest, workspace: Workspace, query: ExplorerQuery, stats: dict[str, int] | None
) -> tuple[Any, bool]:
    """The `?page=` page of the matching ids, and whether their count stopped at COUNT_CAP
    (the whole list's count is the figures' own)."""
    found = selectors.profile_explore(workspace=workspace, query=query)
    if stats is not None:
        total, capped = stats["profiles"], False
    else:
        total = selectors.count_capped(found, COUNT_CAP)
        capped = total > COUNT_CAP
    paginator = CountedPaginator(
        found.values_list("id", flat=True), PAGE_SIZE, min(total, COUNT_CAP) if capped else total
    )
    return paginator.get_page(request.GET.get("page")), capped


@login_required
def profile_list(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "profiles.view")
    rules = load_rules(workspace.pk)
    registered = _filters(request, workspace)
    error = ""
    problems: list[dict[str, str]] = []
    query: ExplorerQuery | None = None
    try:
        query = explorer.parse_query(
            workspace=workspace,
            params=request.GET,
            can=lambda capability: pages.can(request, capability),
        )
    except ValidationFailed as exc:
        error = exc.message
        problems = _problems(exc, {spec.param: spec.label for spec in explorer.filters()})
    # the workspace's figures head the whole list; a search or a filter has its own count
    # (and at a million profiles counting every identifier costs more than the search)
    stats = None
    if query is not None and not query.narrowed:
        stats = identity_selectors.profile_stats(workspace=workspace)
    has_profiles = (
        bool(stats["profiles"] or stats["merged"])
        if stats
        else (selectors.has_profiles(workspace=workspace))
    )
    rows: list[dict[str, Any]] = []
    page = None
    capped = False
    if query is not None:
        page, capped = _page(request, workspace, query, stats)
        shown_ids = list(page.object_list)
        rows = _rows(selectors.profiles_in_order(workspace=workspace, ids=shown_ids), rules, query)
    shown = query or ExplorerQuery()
    can_act = [
        action
        for action in explorer.actions()
        if pages.can(request, action.capability) and (shown.has_filter or not action.needs_filter)
    ]
    rule_errors = [
        {"path": p["param"] + ("." + p["where"] if p["where"] else ""), "message": p["text"]}
        for p in problems
        if any(f["editor"] and f["param"] == p["param"] for f in registered)
    ]
    return render(
        request,
        "profiles/list.html",
        {
            "q": request.GET.get("q", request.GET.get("identifier", "")).strip(),
            "rows": rows,
            "page": page,
            "page_links": _page_links(page, shown) if page is not None else [],
            "prev_query": shown.query_string(page=str(page.number - 1)) if page else "",
            "next_query": shown.query_string(page=str(page.number + 1)) if page else "",
            "error": error,
            "problems": problems,
            "bad_params": {p["param"] for p in problems},
            "capped": capped,
            "query": shown,
            "query_string": shown.query_string(),
            "narrowed": bool(request.GET) and (query is None or query.narrowed),
            "headers": _headers(shown),
            "sort_column": shown.sort.label,
            "extra_column": _extra_column(shown),
            "sort_toggle_query": shown.query_string(
                order=shown.sort.key if shown.descending else f"-{shown.sort.key}", page=""
            ),
            "order_groups": explorer.order_choices(workspace),
            "order": request.GET.get("order", "") or shown.order,
            "rfm_choices": builtin.RFM_SEGMENTS,
            "rfm_value": ",".join(shown.rfm) or request.GET.get("rfm", ""),
            "filters": registered,
            "chips": _chips(shown, workspace) if query is not None else [],
            "explorer_config": {
                "filters": [
                    {"param": f["param"], "label": f["label"], "editor": f["editor"]}
                    for f in registered
                    if f["editor"]
                ],
                "errors": rule_errors,
            },
            "saved_views": list(selectors.saved_view_list(workspace=workspace, owner=request.user)),
            "actions": can_act,
            "stats": stats,
            "has_profiles": has_profiles,
            "can_view_rules": pages.can(request, "identity_rules.view"),
            "section": "profiles",
        },
    )


def _back(query_text: str) -> HttpResponse:
    url = reverse("ui-profiles")
    clean = QueryDict(query_text).urlencode()  # nothing but a query string
    return redirect(f"{url}?{clean}" if clean else url)


@login_required
@require_POST
def saved_view_save(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "profiles.view")
    query_text = request.POST.get("query", "")
    try:
        view = services.saved_view_save(
            workspace=workspace,
            owner=request.user,
            name=request.POST.get("name", ""),
            query=query_text,
        )
    except ValidationFailed as exc:
        messages.error(request, f"View not saved: {'; '.join(pages.field_errors(exc).values())}")
        return _back(query_text)
    messages.success(request, f"Saved view “{view.name}”: it is listed above the search.")
    return _back(view.query_string)


@login_required
@require_POST
def saved_view_delete(request: HttpRequest, view_id: int) -> HttpResponse:
    workspace = pages.require(request, "profiles.view")
    try:
        view = services.saved_view_delete(workspace=workspace, owner=request.user, view_id=view_id)
    except ApplicationError as exc:
        raise Http404(exc.message) from exc
    messages.success(request, f"Deleted the saved view “{view.name}”.")
    return _back(request.POST.get("query", ""))


@login_required
@require_POST
def explorer_action(request: HttpRequest, key: str) -> HttpResponse:
    """Run a registered action on the explorer's query (e.g. create a segment from it)."""
    workspace = pages.require(request, "profiles.view")
    action = explorer.action(key)
    if action is None:
        raise Http404("No such action.")
    if not pages.can(request, action.capability):
        raise PermissionDenied(f"Your role does not allow {action.capability}.")
    query_text = request.POST.get("query", "")
    try:
        query = explorer.parse_query(
            workspace=workspace,
            params=QueryDict(query_text),
            can=lambda capability: pages.can(request, capability),
        )
        url = action.run(workspace, request.user, query)
    except ApplicationError as exc:
        messages.error(request, f"{action.label}: {exc.message}")
        return _back(query_text)
    return redirect(url)
