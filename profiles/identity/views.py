"""Pages of identity resolution: splitting a merge (from the profile page), the merge log,
identity conflicts, and the identity rules form with the full-graph rebuild."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from cdp import pages
from cdp.errors import ApplicationError, ValidationFailed
from cdp.params import is_id
from profiles import identifiers
from profiles.identity import selectors, services
from profiles.identity.rules import load_rules, rules_row
from profiles.models import ConflictReason, MergeStatus, TraitStrategy

LOG_PAGE_SIZE = 50
STRATEGY_ROWS_MIN = 1  # blank rows the rules form offers for new trait strategies


@login_required
@require_POST
def profile_split(request: HttpRequest, profile_id: int) -> HttpResponse:
    workspace = pages.require(request, "profiles.split")
    profile = pages.found(
        selectors.profile_get(workspace=workspace, profile_id=profile_id), "profile"
    )
    merge_id = request.POST.get("merge", "")
    if not is_id(merge_id) or not (
        selectors.profile_merges(profile=profile).filter(pk=int(merge_id)).exists()
    ):
        messages.error(request, f"Merge {merge_id or '(none)'} does not belong to this profile.")
        return redirect("ui-profile", profile_id=profile.pk)
    try:
        result = services.profile_split(
            workspace=workspace, merge_id=int(merge_id), actor=request.user
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("ui-profile", profile_id=profile.pk)
    messages.success(
        request,
        f"Merge split: profile #{result.restored_id} is separate again "
        f"({result.identities_moved} identifiers and {result.events_moved} events moved back). "
        "Automatic resolution will keep the two apart.",
    )
    return redirect("ui-profile", profile_id=result.survivor_id)


# ---- merge log and conflicts ----------------------------------------------------------------


@login_required
def merge_log(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "profiles.view")
    status = pages.choice(request, "status", MergeStatus.values)
    paging = pages.paginate(
        request, selectors.merge_list(workspace=workspace, status=status or None), LOG_PAGE_SIZE
    )
    counts = selectors.merge_counts(workspace=workspace)
    return render(
        request,
        "profiles/identity/merges.html",
        {
            **paging,
            "rows": selectors.with_merge_people(
                workspace=workspace, merges=list(paging["page"].object_list)
            ),
            "status": status,
            "filters": [("", "All", sum(counts.values()))]
            + [(value, label, counts.get(value, 0)) for value, label in MergeStatus.choices],
            "can_split": pages.can(request, "profiles.split"),
            "can_view_rules": pages.can(request, "identity_rules.view"),
            "section": "merges",
        },
    )


@login_required
def conflict_log(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "profiles.view")
    reason = pages.choice(request, "reason", ConflictReason.values)
    rows = selectors.conflict_list(workspace=workspace, reason=reason or None)
    paging = pages.paginate(request, rows, LOG_PAGE_SIZE)
    conflicts = list(paging["page"].object_list)
    names = selectors.profile_links(
        workspace=workspace,
        ids=[c.profile_id for c in conflicts] + [c.other_profile_id for c in conflicts],
    )
    for conflict in conflicts:
        conflict.profile_info = names.get(conflict.profile_id)  # type: ignore[attr-defined]
        conflict.other_info = names.get(conflict.other_profile_id or 0)  # type: ignore[attr-defined]
    counts = selectors.conflict_counts(workspace=workspace)
    return render(
        request,
        "profiles/identity/conflicts.html",
        {
            **paging,
            "rows": conflicts,
            "reason": reason,
            "filters": [
                ("", "All", sum(counts.values())),
                (ConflictReason.LIMIT, "Limit exceeded", counts.get(ConflictReason.LIMIT, 0)),
                (ConflictReason.SPLIT, "Split apart", counts.get(ConflictReason.SPLIT, 0)),
            ],
            "limits": load_rules(workspace.pk).limits,
            "can_view_rules": pages.can(request, "identity_rules.view"),
            "section": "conflicts",
        },
    )


# ---- identity rules -------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


def _limit_value(raw: str) -> Any:
    """An integer when the text is one; otherwise the text itself, so the service's validation
    names the field and the problem."""
    text = raw.strip()
    try:
        return int(text)
    except ValueError:
        return text


def _rules_from_post(post: Any, known_types: list[str], blocks_empty: bool) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    for kind in known_types:
        raw = post.get(f"limit__{kind}", "")
        if kind and raw.strip():
            limits[kind] = _limit_value(raw)
    strategies: dict[str, str] = {}
    for trait, strategy in zip(
        post.getlist("strategy_trait"), post.getlist("strategy_value"), strict=False
    ):
        if trait.strip():
            strategies[trait.strip()] = strategy
    return {
        "priority": [t for t in post.get("priority", "").split(",") if t.strip()],
        "limits": limits,
        # "" (an empty identifier) is blocked by default; a textarea cannot show it as a line
        "blocklist": [""] * blocks_empty
        + [line.strip() for line in post.get("blocklist", "").splitlines() if line.strip()],
        "custom_identifier_traits": _lines(post.get("custom_identifier_traits", "")),
        "trait_strategies": strategies,
        "order_event": post.get("order_event", ""),
        "phone_region": post.get("phone_region", "").strip(),
    }


def _field_errors(fields: dict[str, str]) -> dict[str, Any]:
    """Service error paths (`limits.email`, `priority[2]`, `trait_strategies.plan`) grouped by
    form field; limits and strategies keep their per-row key."""
    grouped: dict[str, Any] = {"limits": {}, "trait_strategies": {}}
    for path, message in fields.items():
        head, dot, rest = path.partition(".")
        head = head.split("[", 1)[0]
        if head in ("limits", "trait_strategies") and dot:
            grouped[head][rest] = message
        else:
            grouped.setdefault(head, message)
    return grouped


@login_required
def identity_rules(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "identity_rules.view")
    can_manage = pages.can(request, "identity_rules.manage")
    row = rules_row(workspace.pk)
    current: dict[str, Any] = {
        "priority": list(row.priority),
        "limits": dict(row.limits),
        "blocklist": list(row.blocklist),
        "custom_identifier_traits": list(row.custom_identifier_traits),
        "trait_strategies": dict(row.trait_strategies),
        "order_event": row.order_event,
        "phone_region": row.phone_region,
    }
    errors: dict[str, Any] = {"limits": {}, "trait_strategies": {}}
    status = 200
    if request.method == "POST":
        pages.require(request, "identity_rules.manage")
        submitted = _rules_from_post(request.POST, _known_types(current), "" in row.blocklist)
        try:
            row = services.identity_rules_update(
                workspace=workspace, data=submitted, actor=request.user
            )
        except ValidationFailed as exc:
            fields = pages.field_errors(exc)
            errors = _field_errors(fields)
            count = len(fields)
            messages.error(
                request,
                f"Not saved: {count} field{'s' if count > 1 else ''} to correct, marked below.",
            )
            current = submitted
            status = 400
        else:
            messages.success(
                request,
                f"Identity rules saved (version {row.version}). They apply to events "
                "processed from now on.",
            )
            return redirect("ui-identity-rules")
    return render(
        request,
        "profiles/identity/rules.html",
        {
            **_rules_context(current, errors, can_manage, row.version, row.updated_at),
            "last_rebuild": row.last_rebuild,
        },
        status=status,
    )


@login_required
@require_POST
def identity_rebuild(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "identity_rules.manage")
    dry_run = request.POST.get("dry_run") == "1"
    services.identity_rebuild_request(workspace=workspace, dry_run=dry_run, actor=request.user)
    messages.success(
        request,
        ("A dry run" if dry_run else "A rebuild")
        + " of the identity graph is queued; its report appears below when a worker has run it.",
    )
    return redirect("ui-identity-rules")


def _known_types(current: dict[str, Any]) -> list[str]:
    """Every identifier type the form offers a limit for: built-ins, custom traits, and any
    type already named in the priority or the limits."""
    seen: dict[str, None] = {}
    for kind in [
        *current["priority"],
        *identifiers.BUILTIN_TYPES,
        *current["custom_identifier_traits"],
        *current["limits"],
    ]:
        if isinstance(kind, str) and kind.strip():
            seen[kind.strip()] = None
    return list(seen)


def _rules_context(
    current: dict[str, Any],
    errors: dict[str, Any],
    can_manage: bool,
    version: int,
    updated_at: Any,
) -> dict[str, Any]:
    priority = [t for t in current["priority"] if isinstance(t, str)]
    known = _known_types(current)
    strategies = [
        {"trait": trait, "strategy": strategy, "error": errors["trait_strategies"].get(trait)}
        for trait, strategy in current["trait_strategies"].items()
    ]
    strategies += [{"trait": "", "strategy": TraitStrategy.MOST_RECENT, "error": None}] * max(
        STRATEGY_ROWS_MIN, 0
    )
    return {
        "priority": priority,
        "addable_types": [t for t in known if t not in priority],
        "limit_rows": [
            {
                "type": kind,
                "value": current["limits"].get(kind, ""),
                "error": errors["limits"].get(kind),
            }
            for kind in known
        ],
        "blocklist": "\n".join(str(v) for v in current["blocklist"] if v),
        "custom_identifier_traits": ", ".join(str(v) for v in current["custom_identifier_traits"]),
        "strategies": strategies,
        "strategy_choices": TraitStrategy.choices,
        "order_event": current["order_event"],
        "phone_region": current.get("phone_region", ""),
        "errors": errors,
        "can_manage": can_manage,
        "version": version,
        "updated_at": updated_at,
        "section": "rules",
    }
