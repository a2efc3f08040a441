"""Pages of the profile explorer: the profile list, the 360° page (with split), the merge log,
identity conflicts and the identity rules form. Thin: check access, call selectors/services."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from cdp import access
from cdp.errors import ApplicationError, ValidationFailed
from cdp.models import Workspace
from cdp.ui.views import _require
from consent import services as consent_services
from consent.enforcement import consent_state
from consent.models import ConsentStatus
from consent.selectors import consent_history
from profiles import identifiers
from profiles.computed import builtin
from profiles.computed.selectors import profile_computed_traits
from profiles.identity import selectors, services
from profiles.identity.rules import Rules, load_rules, rules_row
from profiles.models import (
    ConflictReason,
    Identity,
    MergeStatus,
    Profile,
    ProfileMerge,
    TraitStrategy,
)
from segments.selectors import profile_segment_exits, profile_segments

PAGE_SIZE = 25
LOG_PAGE_SIZE = 50
KEY_IDENTIFIERS = 3  # chips shown per profile in the list
TIMELINE_PAGE_SIZE = 25
IDENTITIES_PER_TYPE = 50  # values listed per identifier type on the profile page
SECTION_ROWS = 50  # merges / conflicts listed on the profile page (the logs have the rest)
STRATEGY_ROWS_MIN = 1  # blank rows the rules form offers for new trait strategies


# ---- helpers --------------------------------------------------------------------------------


def _page(request: HttpRequest, rows: Any, size: int) -> Any:
    return Paginator(rows, size).get_page(request.GET.get("page"))


def _query_string(request: HttpRequest, **changes: str) -> str:
    """The current query string with `changes` applied (for paging links)."""
    params = request.GET.copy()
    for key, value in changes.items():
        if value:
            params[key] = value
        else:
            params.pop(key, None)
    return params.urlencode()


def _search_kwargs(text: str, rules: Rules) -> dict[str, str]:
    """`type:value` with a known identifier type is an exact identifier look-up; anything
    else is a value search (exact or prefix over every identifier)."""
    kind, sep, value = text.partition(":")
    known = set(identifiers.BUILTIN_TYPES) | set(rules.custom_traits) | set(rules.priority)
    if sep and value and kind.strip() in known:
        return {"identifier": f"{kind.strip()}:{value.strip()}"}
    return {"q": text}


def _key_identities(identities: Iterable[Identity], rules: Rules) -> list[Identity]:
    return sorted(identities, key=lambda i: (rules.rank(i.type), i.first_seen, i.pk))


def _profiles_by_id(workspace: Workspace, ids: Iterable[int | None]) -> dict[int, dict[str, Any]]:
    """id -> {"name", "merged_into"} for profile links in the merge and conflict logs."""
    wanted = {i for i in ids if i is not None}
    rows = Profile.objects.filter(workspace=workspace, pk__in=wanted).prefetch_related("identities")
    names = {p.pk: (selectors.display_name(p), p.merged_into_id) for p in rows}
    return {
        pk: {
            "id": pk,
            "name": name,
            "merged_into": merged_into,
            "show_id": not name.endswith(f"#{pk}"),  # "Anonymous visitor #12" has it already
        }
        for pk, (name, merged_into) in names.items()
    }


def display_value(value: Any) -> str:
    """A trait value as a person reads it: text as is, numbers without noise, times in the
    pages' format, objects and lists as JSON."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        parsed = parse_datetime(value) if len(value) >= 19 and value[4:5] == "-" else None
        return parsed.strftime("%Y-%m-%d %H:%M") if parsed else value
    return orjson.dumps(value).decode()


def _computed_traits(profile: Profile) -> list[dict[str, Any]]:
    rows = []
    for trait in profile_computed_traits(profile):
        row = dict(trait)
        value = trait.get("value")
        known = builtin.BY_KEY.get(trait["key"]) if trait.get("kind") == "builtin" else None
        if known is not None and known.type == "number" and isinstance(value, int | float):
            row["display"] = f"{value:,.2f}"  # money: always with cents
        else:
            row["display"] = display_value(value)
        row.setdefault("description", known.description if known else "")
        rows.append(row)
    return rows


def _headline(profile: Profile, computed: list[dict[str, Any]]) -> dict[str, Any]:
    by_key = {t["key"]: t.get("value") for t in computed}
    stored = profile.computed or {}

    def pick(key: str) -> Any:
        value = by_key.get(key)
        return value if value is not None else stored.get(key)

    aov = pick("average_order_value")
    if aov is None and profile.order_count:
        aov = profile.revenue / profile.order_count
    return {
        "aov": aov,
        "engagement": pick("engagement_score"),
        "rfm_segment": pick("rfm_segment"),
        "rfm_score": pick("rfm_score"),
    }


# ---- profile list ---------------------------------------------------------------------------


@login_required
def profile_list(request: HttpRequest) -> HttpResponse:
    workspace = _require(request, "profiles.view")
    rules = load_rules(workspace.pk)
    text = request.GET.get("q", "").strip()
    error = ""
    page: Any = None
    rows: list[dict[str, Any]] = []
    try:
        found = selectors.profile_list(workspace=workspace, **_search_kwargs(text, rules))
        page = _page(request, found, PAGE_SIZE)
    except ValidationFailed as exc:
        error = exc.message
    for profile in page.object_list if page is not None else []:
        identities = _key_identities(profile.identities.all(), rules)
        name = selectors.display_name(profile, identities)
        rows.append(
            {
                "profile": profile,
                "name": name,
                "anonymous": name.endswith(f"#{profile.pk}"),  # the name shows the id already
                "key_identities": identities[:KEY_IDENTIFIERS],
                "more_identities": max(0, len(identities) - KEY_IDENTIFIERS),
                "rfm_segment": (profile.computed or {}).get("rfm_segment"),
            }
        )
    return render(
        request,
        "profiles/list.html",
        {
            "q": text,
            "page": page,
            "rows": rows,
            "error": error,
            "stats": selectors.profile_stats(workspace=workspace),
            "prev_query": _query_string(request, page=str(page.number - 1)) if page else "",
            "next_query": _query_string(request, page=str(page.number + 1)) if page else "",
            "can_view_rules": access.can(request.user, workspace, "identity_rules.view"),
            "section": "profiles",
        },
    )


# ---- profile 360° ---------------------------------------------------------------------------


def _profile_or_404(workspace: Workspace, profile_id: int) -> Profile:
    profile = selectors.profile_get(workspace=workspace, profile_id=profile_id)
    if profile is None:
        raise Http404("No such profile in this workspace.")
    return profile


def _identity_groups(identities: list[Identity]) -> list[dict[str, Any]]:
    """Identities by type, in priority order; a type with very many values (a shared device
    seen with hundreds of anonymous ids) shows its first ones and a count of the rest."""
    groups: list[dict[str, Any]] = []
    for identity in identities:  # already in priority order
        if not groups or groups[-1]["type"] != identity.type:
            groups.append({"type": identity.type, "items": [], "total": 0})
        group = groups[-1]
        group["total"] += 1
        if len(group["items"]) < IDENTITIES_PER_TYPE:
            group["items"].append(identity)
    for group in groups:
        group["hidden"] = group["total"] - len(group["items"])
    return groups


def rule_label(rule: str) -> str:
    """ "shared_identifier:email" -> "Shared email"; "alias" -> "Alias call"; "rebuild" (the
    whole-graph job) -> "Full rebuild"."""
    kind, sep, detail = rule.partition(":")
    if kind == "shared_identifier" and sep:
        return f"Shared {detail.replace('_', ' ')}"
    if rule == "alias":
        return "Alias call"
    if rule == "rebuild":
        return "Full rebuild"
    return rule.replace("_", " ").capitalize()


def _merge_rows(workspace: Workspace, merges: list[ProfileMerge]) -> list[ProfileMerge]:
    names = _profiles_by_id(workspace, [m.winner_id for m in merges] + [m.loser_id for m in merges])
    for merge in merges:
        merge.rule_label = rule_label(merge.rule)  # type: ignore[attr-defined]
        merge.winner_info = names.get(merge.winner_id)  # type: ignore[attr-defined]
        merge.loser_info = names.get(merge.loser_id)  # type: ignore[attr-defined]
    return merges


@login_required
def profile_detail(request: HttpRequest, profile_id: int) -> HttpResponse:
    workspace = _require(request, "profiles.view")
    profile = _profile_or_404(workspace, profile_id)
    if profile.pk != profile_id:
        messages.info(
            request,
            f"Profile #{profile_id} was merged into this one; showing the surviving profile.",
        )
        return redirect("ui-profile", profile_id=profile.pk)
    identities = selectors.profile_identities(profile=profile)
    computed = _computed_traits(profile)
    merges = _merge_rows(workspace, list(selectors.profile_merges(profile=profile)[:SECTION_ROWS]))
    conflicts = list(selectors.profile_conflicts(profile=profile)[:SECTION_ROWS])
    # the profile on the other side of each conflict, whichever side this one is on
    other_ids = [
        c.other_profile_id if c.profile_id == profile.pk else c.profile_id for c in conflicts
    ]
    others = _profiles_by_id(workspace, other_ids)
    for conflict, other_id in zip(conflicts, other_ids, strict=True):
        conflict.other_info = others.get(other_id or 0)  # type: ignore[attr-defined]
    traits = [
        {"key": key, "display": display_value(value), "structured": isinstance(value, dict | list)}
        for key, value in sorted((profile.traits or {}).items())
    ]
    can_view_segments = access.can(request.user, workspace, "segments.view")
    can_view_consent = access.can(request.user, workspace, "consent.view")
    consent_log = (
        list(consent_history(workspace_id=workspace.pk, profile_id=profile.pk)[: SECTION_ROWS + 1])
        if can_view_consent
        else []
    )
    # who recorded decisions made through the API or this page (one query)
    recorders = dict(
        get_user_model()
        .objects.filter(pk__in={r.actor_id for r in consent_log if r.actor_id})
        .values_list("pk", "username")
    )
    for record in consent_log:
        record.actor_name = recorders.get(record.actor_id or 0, "")  # type: ignore[attr-defined]
    return render(
        request,
        "profiles/detail.html",
        {
            "profile": profile,
            "name": selectors.display_name(profile, identities),
            "identity_groups": _identity_groups(identities),
            "identity_count": len(identities),
            "traits": traits,
            "computed": computed,
            "computed_builtin": [t for t in computed if t.get("kind") != "custom"],
            "computed_custom": [t for t in computed if t.get("kind") == "custom"],
            "headline": _headline(profile, computed),
            "merges": merges,
            "conflicts": conflicts,
            "section_rows": SECTION_ROWS,
            "can_split": access.can(request.user, workspace, "profiles.split"),
            "can_view_segments": can_view_segments,
            "segments": profile_segments(profile_id=profile.pk) if can_view_segments else [],
            "segment_exits": (
                profile_segment_exits(profile_id=profile.pk, limit=5) if can_view_segments else []
            ),
            "can_view_consent": can_view_consent,
            "can_record_consent": access.can(request.user, workspace, "consent.manage"),
            "consent_statuses": ConsentStatus.choices,
            "consents": (
                consent_state(workspace_id=workspace.pk, profile_id=profile.pk)
                if can_view_consent
                else {}
            ),
            "consent_log": consent_log[:SECTION_ROWS],
            "consent_log_more": len(consent_log) > SECTION_ROWS,
            "can_view_events": access.can(request.user, workspace, "events.view"),
            "timeline_page_size": TIMELINE_PAGE_SIZE,
            "section": "profiles",
        },
    )


@login_required
@require_POST
def profile_split(request: HttpRequest, profile_id: int) -> HttpResponse:
    workspace = _require(request, "profiles.split")
    profile = _profile_or_404(workspace, profile_id)
    merge_id = request.POST.get("merge", "")
    if not merge_id.isdigit() or not (
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


@login_required
@require_POST
def profile_consent_record(request: HttpRequest, profile_id: int) -> HttpResponse:
    """A decision told to the company outside the apps (a call, a letter, a support ticket),
    recorded by a privacy manager with a reference as its proof."""
    workspace = _require(request, "consent.manage")
    profile = _profile_or_404(workspace, profile_id)
    purpose = request.POST.get("purpose", "")
    decision = request.POST.get("status", "")
    reference = request.POST.get("reference", "").strip()[:255]
    back = redirect(f"{reverse('ui-profile', args=[profile.pk])}#consent-history")
    if not reference:
        messages.error(
            request,
            "Not recorded: give a reference (ticket, call or letter) as the proof of the decision.",
        )
        return back
    try:
        record = consent_services.consent_record(
            workspace=workspace,
            profile_id=profile.pk,
            purpose=purpose,
            status=decision,
            message_id=reference,
            actor=request.user,
            source="ui",
        )
    except ApplicationError as exc:
        messages.error(request, f"Not recorded: {exc.message}")
        return back
    messages.success(
        request,
        f"Recorded: {record.purpose} {record.status} (reference {reference}). "
        "Segments and activation follow it from now on.",
    )
    return back


# ---- merge log and conflicts ----------------------------------------------------------------


@login_required
def merge_log(request: HttpRequest) -> HttpResponse:
    workspace = _require(request, "profiles.view")
    status = request.GET.get("status", "")
    if status not in MergeStatus.values:
        status = ""
    page = _page(
        request, selectors.merge_list(workspace=workspace, status=status or None), LOG_PAGE_SIZE
    )
    counts = {
        value: selectors.merge_list(workspace=workspace, status=value).count()
        for value in MergeStatus.values
    }
    return render(
        request,
        "profiles/identity/merges.html",
        {
            "page": page,
            "rows": _merge_rows(workspace, list(page.object_list)),
            "status": status,
            "filters": [("", "All", sum(counts.values()))]
            + [(value, label, counts[value]) for value, label in MergeStatus.choices],
            "prev_query": _query_string(request, page=str(page.number - 1)),
            "next_query": _query_string(request, page=str(page.number + 1)),
            "can_split": access.can(request.user, workspace, "profiles.split"),
            "can_view_rules": access.can(request.user, workspace, "identity_rules.view"),
            "section": "merges",
        },
    )


@login_required
def conflict_log(request: HttpRequest) -> HttpResponse:
    workspace = _require(request, "profiles.view")
    reason = request.GET.get("reason", "")
    if reason not in ConflictReason.values:
        reason = ""
    rows = selectors.conflict_list(workspace=workspace, reason=reason or None)
    page = _page(request, rows, LOG_PAGE_SIZE)
    conflicts = list(page.object_list)
    names = _profiles_by_id(
        workspace, [c.profile_id for c in conflicts] + [c.other_profile_id for c in conflicts]
    )
    for conflict in conflicts:
        conflict.profile_info = names.get(conflict.profile_id)  # type: ignore[attr-defined]
        conflict.other_info = names.get(conflict.other_profile_id or 0)  # type: ignore[attr-defined]
    counts = {
        r: selectors.conflict_list(workspace=workspace, reason=r).count()
        for r in ConflictReason.values
    }
    return render(
        request,
        "profiles/identity/conflicts.html",
        {
            "page": page,
            "rows": conflicts,
            "reason": reason,
            "filters": [
                ("", "All", sum(counts.values())),
                (ConflictReason.LIMIT, "Limit exceeded", counts[ConflictReason.LIMIT]),
                (ConflictReason.SPLIT, "Split apart", counts[ConflictReason.SPLIT]),
            ],
            "prev_query": _query_string(request, page=str(page.number - 1)),
            "next_query": _query_string(request, page=str(page.number + 1)),
            "limits": load_rules(workspace.pk).limits,
            "can_view_rules": access.can(request.user, workspace, "identity_rules.view"),
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
    workspace = _require(request, "identity_rules.view")
    can_manage = access.can(request.user, workspace, "identity_rules.manage")
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
        _require(request, "identity_rules.manage")
        submitted = _rules_from_post(request.POST, _known_types(current), "" in row.blocklist)
        try:
            row = services.identity_rules_update(
                workspace=workspace, data=submitted, actor=request.user
            )
        except ValidationFailed as exc:
            fields = exc.detail.get("fields") or {"form": exc.message}
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
    workspace = _require(request, "identity_rules.manage")
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
