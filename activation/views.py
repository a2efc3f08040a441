"""Pages of activation: destinations (the list with each one's health, the catalogue of kinds,
a form per kind built from its connector's settings, the detail page with health, "Send test",
its syncs and streams), audience syncs (the list, the new-sync form with its mapping editor
and payload preview, the detail page with its runs) and the delivery log; and the "Synced to"
section of the segment page (registered in ActivationConfig.ready()).

Forms post to these views, which call the services; the mapping editor, the payload preview,
"Send test", "Run now" and the charts talk to the activation API from
activation/static/activation/."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from activation import connectors, selectors, services
from activation.connectors.base import ConfigField, Connector
from activation.experiments.models import Metric
from activation.models import (
    DeliveryKind,
    DeliveryStatus,
    Destination,
    Sync,
    SyncMode,
    SyncSchedule,
)
from activation.serializers import SyncRunSerializer, SyncSerializer
from activation.syncs import mapping as mappings
from activation.syncs import services as sync_services
from cdp import pages
from cdp.errors import ApplicationError, NotFound, ValidationFailed
from cdp.models import Workspace
from consent.selectors import purpose_list
from profiles.selectors import observed_properties
from segments.models import Segment
from segments.selectors import segment_list

DELIVERY_PAGE_SIZE = 50
RUN_PAGE_SIZE = 25
RUNS_CHARTED = 30
SHOWN_ONCE_SESSION_KEY = "activation.generated_secrets"  # noqa: S105 - a session key name

# the delivery policy the form offers: (field, label, unit or hint)
POLICY_SHOWN = (
    ("batch_size", "Batch size", "deliveries per request"),
    ("concurrency", "Concurrency", "requests in flight at once"),
    ("rate_per_second", "Rate limit", "requests per second; 0 = unlimited"),
    ("timeout_seconds", "Timeout", "seconds per request"),
    ("max_attempts", "Max attempts", "then a dead letter"),
    ("max_age_seconds", "Max age", "seconds before giving up (21600 = 6 h)"),
)
STATUS_PILLS = {
    DeliveryStatus.PENDING: "warn",
    DeliveryStatus.SENDING: "rfm",
    DeliveryStatus.DELIVERED: "ok",
    DeliveryStatus.DEAD: "bad",
    DeliveryStatus.CANCELLED: "off",
}
CIRCUIT_PILLS = {"closed": "ok", "half_open": "warn", "open": "bad"}

T = TypeVar("T")


def _or_404(get: Callable[[], T]) -> T:
    """The selector's answer; its NotFound (no such object in this workspace) as a 404 page."""
    try:
        return get()
    except NotFound as exc:
        raise Http404(exc.message) from None


def _percent(rate: float | None) -> str:
    if rate is None:
        return "—"
    return f"{rate * 100:.1f} %".replace(".0 %", " %")


def _health_view(health: dict[str, Any]) -> dict[str, Any]:
    """The selector's health with the texts the pages show."""
    return {
        **health,
        "success_text": _percent(health["success_rate"]),
        "p95_text": "—" if health["p95_latency_ms"] is None else f"{health['p95_latency_ms']:,.0f}",
        "circuit_pill": CIRCUIT_PILLS.get(health["circuit"], "off"),
    }


# ---- destinations ---------------------------------------------------------------------------


@login_required
def destination_list(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "destinations.view")
    rows = list(selectors.destination_list(workspace=workspace))
    for destination in rows:
        destination.health = _health_view(  # type: ignore[attr-defined]
            selectors.destination_health(destination=destination)
        )
    return render(
        request,
        "activation/destinations.html",
        {
            "destinations": rows,
            "kinds": connectors.kinds(),
            "can_manage": pages.can(request, "destinations.manage"),
            "can_sync": pages.can(request, "syncs.manage"),
        },
    )


def _connector(kind: str) -> Connector:
    try:
        return connectors.get(kind)
    except KeyError:
        raise Http404(f"No destination kind {kind!r}.") from None


def _typed(text: str) -> Any:
    """A number field as typed: a number when it reads as one, else the text (for the service
    to refuse by name), absent (None) when empty."""
    text = text.strip()
    if not text:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _posted_config(
    connector: Connector, post: Any, *, editing: bool
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The kind's settings as posted, each read as its kind says (JSON parsed, numbers read,
    a checkbox as true/false). Secrets: empty keeps the stored one (editing) or leaves it
    unset; "remove" (editing) drops it."""
    config: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for f in connector.fields:
        key = f"config.{f.name}"
        raw = post.get(key, "")
        if f.kind == "bool":
            config[f.name] = post.get(key) == "1"
        elif f.secret:
            if raw:
                config[f.name] = raw
            elif editing and post.get(f"{key}.remove") == "1":
                config[f.name] = None
        elif f.kind == "json":
            if not raw.strip():
                config[f.name] = f.default
                continue
            try:
                config[f.name] = json.loads(raw)
            except ValueError as exc:
                errors[key] = [f"not valid JSON: {exc}"]
        elif f.kind == "int":
            value = _typed(raw)
            if value is not None:
                config[f.name] = value
        elif raw.strip() or editing:
            config[f.name] = raw.strip()
    return config, errors


def _posted_destination(
    connector: Connector, post: Any, *, editing: bool
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    config, errors = _posted_config(connector, post, editing=editing)
    data: dict[str, Any] = {
        "name": post.get("name", ""),
        "purpose": post.get("purpose", ""),
        "enabled": post.get("enabled") == "1",
        "config": config,
    }
    for name, _, _ in POLICY_SHOWN:
        value = _typed(post.get(name, ""))
        if value is not None:
            data[name] = value
    return data, errors


def _field_value(f: ConfigField, value: Any) -> Any:
    if f.kind == "json":
        return "" if value in (None, "", {}) else json.dumps(value, indent=2)
    return "" if value is None else value


def _destination_form(
    request: HttpRequest,
    workspace: Workspace,
    connector: Connector,
    *,
    destination: Destination | None,
    errors: dict[str, str],
    status: int = 200,
) -> HttpResponse:
    """The form of a kind: its connector's settings, the consent purpose, the policy. After
    a refused post it shows what was typed (never a secret) with each message at its field."""
    posted = request.method == "POST"
    source: Any = request.POST if posted else None
    fields = []
    for f in connector.fields:
        key = f"config.{f.name}"
        if f.secret:
            value = ""
        elif posted:
            value = source.get(key, "")
            if f.kind == "bool":
                value = source.get(key) == "1"
        elif destination is not None:
            value = _field_value(f, destination.config.get(f.name))
        else:
            value = _field_value(f, f.default)
        fields.append(
            {
                "field": f,
                "key": key,
                "id": f"f-config-{f.name}",
                "value": value,
                "error": errors.get(key),
                "is_set": destination is not None and f.name in destination.secret_names,
            }
        )
    policy = []
    current_policy = destination or Destination()  # a new one: the model's defaults
    for name, label, hint in POLICY_SHOWN:
        kind, low, high = services.POLICY_FIELDS[name]
        current = getattr(current_policy, name)
        policy.append(
            {
                "name": name,
                "label": label,
                "hint": hint,
                "value": source.get(name, "") if posted else f"{current:g}",
                "min": f"{low:g}",
                "max": f"{high:g}",
                "step": "1" if kind is int else "any",
                "error": errors.get(name),
            }
        )
    shown = {f["key"] for f in fields} | {p["name"] for p in policy} | {"name", "purpose"}
    values = {
        "name": source.get("name", "") if posted else (destination.name if destination else ""),
        "purpose": (
            source.get("purpose", "")
            if posted
            else (destination.purpose if destination else "analytics")
        ),
        "enabled": (
            source.get("enabled") == "1"
            if posted
            else (destination.enabled if destination else True)
        ),
    }
    return render(
        request,
        "activation/destination_form.html",
        {
            "connector": connector,
            "destination": destination,
            "fields": fields,
            "policy": policy,
            "purposes": list(purpose_list(workspace=workspace)),
            "values": values,
            "errors": errors,
            "other_errors": [(path, msg) for path, msg in errors.items() if path not in shown],
            "can_manage_purposes": pages.can(request, "privacy.manage"),
        },
        status=status,
    )


@login_required
def destination_new(request: HttpRequest, kind: str) -> HttpResponse:
    workspace = pages.require(request, "destinations.manage")
    connector = _connector(kind)
    if request.method != "POST":
        return _destination_form(request, workspace, connector, destination=None, errors={})
    data, errors = _posted_destination(connector, request.POST, editing=False)
    if not errors:
        try:
            destination, generated = services.destination_create(
                workspace=workspace, data={**data, "kind": connector.kind}, actor=request.user
            )
        except ValidationFailed as exc:
            errors = exc.fields
        else:
            if generated:
                # shown once, by the next page: popped from the session as it is shown
                request.session[SHOWN_ONCE_SESSION_KEY] = {
                    "destination": destination.pk,
                    "secrets": [
                        {"label": _label(connector, name), "value": value}
                        for name, value in generated.items()
                    ],
                }
            messages.success(request, f"Destination “{destination.name}” created.")
            return redirect("ui-destination", destination_id=destination.pk)
    return _destination_form(
        request,
        workspace,
        connector,
        destination=None,
        errors={path: messages_[0] for path, messages_ in errors.items()},
        status=400,
    )


def _label(connector: Connector, name: str) -> str:
    return next((f.label for f in connector.fields if f.name == name), name)


@login_required
def destination_edit(request: HttpRequest, destination_id: int) -> HttpResponse:
    workspace = pages.require(request, "destinations.manage")
    destination = _or_404(
        lambda: selectors.destination_get(workspace=workspace, destination_id=destination_id)
    )
    connector = _connector(destination.kind)
    if request.method != "POST":
        return _destination_form(request, workspace, connector, destination=destination, errors={})
    data, errors = _posted_destination(connector, request.POST, editing=True)
    if not errors:
        try:
            services.destination_update(destination=destination, data=data, actor=request.user)
        except ValidationFailed as exc:
            errors = exc.fields
        else:
            messages.success(request, f"Destination “{destination.name}” saved.")
            return redirect("ui-destination", destination_id=destination.pk)
    destination.refresh_from_db()  # the service may have set fields before refusing
    return _destination_form(
        request,
        workspace,
        connector,
        destination=destination,
        errors={path: messages_[0] for path, messages_ in errors.items()},
        status=400,
    )


@login_required
@require_POST
def destination_delete(request: HttpRequest, destination_id: int) -> HttpResponse:
    workspace = pages.require(request, "destinations.manage")
    destination = _or_404(
        lambda: selectors.destination_get(workspace=workspace, destination_id=destination_id)
    )
    name = destination.name
    try:
        services.destination_delete(destination=destination, actor=request.user)
    except ApplicationError as exc:  # 409 destination_in_use: it names the syncs and streams
        messages.error(request, f"Not deleted: {exc.message}")
        return redirect("ui-destination", destination_id=destination_id)
    messages.success(request, f"Destination “{name}” deleted.")
    return redirect("ui-destinations")


def _settings_rows(connector: Connector, destination: Destination) -> list[dict[str, Any]]:
    rows = []
    for f in connector.fields:
        if f.secret:
            rows.append(
                {"label": f.label, "secret": True, "set": f.name in destination.secret_names}
            )
            continue
        value = destination.config.get(f.name)
        if f.kind == "json":
            text = json.dumps(value) if value not in (None, {}, []) else ""
        elif f.kind == "bool":
            text = "yes" if value else "no"
        else:
            text = "" if value is None else str(value)
        rows.append({"label": f.label, "secret": False, "value": text})
    return rows


@login_required
def destination_detail(request: HttpRequest, destination_id: int) -> HttpResponse:
    workspace = pages.require(request, "destinations.view")
    destination = _or_404(
        lambda: selectors.destination_get(workspace=workspace, destination_id=destination_id)
    )
    can_manage = pages.can(request, "destinations.manage")
    generated = request.session.get(SHOWN_ONCE_SESSION_KEY)
    if generated and generated.get("destination") == destination.pk:
        del request.session[SHOWN_ONCE_SESSION_KEY]
    else:
        generated = None
    syncs = list(destination.syncs.select_related("segment").order_by("name"))
    for sync in syncs:
        sync.status = selectors.sync_status(sync=sync)  # type: ignore[attr-defined]
    connector = _connector(destination.kind)
    config = {
        "health_url": reverse("api-destination-health", args=[destination.pk]),
        "test_url": reverse("api-destination-test", args=[destination.pk]),
        "deliveries_url": reverse("ui-deliveries"),
        "destination": destination.pk,
    }
    return render(
        request,
        "activation/destination.html",
        {
            "destination": destination,
            "connector": connector,
            "health": _health_view(selectors.destination_health(destination=destination)),
            "syncs": syncs,
            "streams": list(destination.streams.select_related("source").order_by("name")),
            "can_manage": can_manage,
            "can_sync": pages.can(request, "syncs.manage"),
            "can_view_deliveries": pages.can(request, "deliveries.view"),
            "settings_rows": _settings_rows(connector, destination) if can_manage else [],
            "policy": [
                (label, getattr(destination, name), hint) for name, label, hint in POLICY_SHOWN
            ],
            "generated": generated,
            "config": config,
        },
    )


# ---- syncs ----------------------------------------------------------------------------------


def _with_status(syncs: list[Sync]) -> list[Sync]:
    for sync in syncs:
        sync.status = selectors.sync_status(sync=sync)  # type: ignore[attr-defined]
        sync.last_run = selectors.sync_runs(sync=sync).first()  # type: ignore[attr-defined]
    return syncs


@login_required
def sync_list(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "destinations.view")
    return render(
        request,
        "activation/syncs.html",
        {
            "syncs": _with_status(list(selectors.sync_list(workspace=workspace))),
            "can_manage": pages.can(request, "syncs.manage"),
        },
    )


def _kind_info(connector: Connector) -> dict[str, Any]:
    return {
        "label": connector.label,
        "identifier_types": list(connector.identifier_types or mappings.IDENTIFIER_TYPES),
        "hashed_only": connector.hashed_only,
        "default_mapping": mappings.as_json(
            mappings.parse(mappings.default_mapping(connector), connector)
        ),
    }


def _id_param(request: HttpRequest, name: str) -> int | None:
    value = request.GET.get(name, "")
    return int(value) if value.isdigit() else None


@login_required
def sync_new(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "syncs.manage")
    pages.require(request, "segments.view")
    segments: list[Segment] = list(segment_list(workspace=workspace))
    destinations = list(selectors.destination_list(workspace=workspace))
    traits = sorted(
        {
            p.path
            for p in observed_properties(workspace=workspace, event_type="identify")
            if p.kind == "trait"
        }
    )
    segment_id = _id_param(request, "segment")
    destination_id = _id_param(request, "destination")
    config = {
        "segments": [
            {"id": s.pk, "name": s.name, "published": s.status == "published"} for s in segments
        ],
        "destinations": [
            {"id": d.pk, "name": d.name, "kind": d.kind, "purpose": d.purpose} for d in destinations
        ],
        "kinds": {c.kind: _kind_info(c) for c in connectors.kinds()},
        "traits": traits,
        "initial": {"segment": segment_id, "destination": destination_id},
        "api": {
            "create": reverse("api-syncs"),
            "preview": reverse("api-sync-preview"),
        },
        "detail_url": reverse("ui-sync", args=[0]),
        "segment_url": reverse("ui-segment", args=[0]),
        "profile_url": reverse("ui-profile", args=[0]),
    }
    return render(
        request,
        "activation/sync_new.html",
        {
            "segments": segments,
            "destinations": destinations,
            "segment_id": segment_id,
            "destination_id": destination_id,
            "modes": SyncMode.choices,
            "schedules": SyncSchedule.choices,
            "config": config,
            "can_add_destination": pages.can(request, "destinations.manage"),
        },
    )


def _sync(workspace: Workspace, sync_id: int) -> Sync:
    return _or_404(lambda: sync_services.sync_get(workspace=workspace, sync_id=sync_id))


@login_required
def sync_detail(request: HttpRequest, sync_id: int) -> HttpResponse:
    workspace = pages.require(request, "destinations.view")
    sync = _sync(workspace, sync_id)
    paging = pages.paginate(request, selectors.sync_runs(sync=sync), RUN_PAGE_SIZE)
    runs = list(paging["page"].object_list)
    # the API's shape of a run (with its failed deliveries), for the table and the chart
    for run, shaped in zip(runs, SyncRunSerializer(runs, many=True).data, strict=True):
        run.failed = shaped["failed"]  # type: ignore[attr-defined]
    charted = SyncRunSerializer(selectors.sync_runs(sync=sync)[:RUNS_CHARTED], many=True).data
    config = {
        "run_url": reverse("api-sync-run", args=[sync.pk]),
        "resync_url": reverse("api-sync-resync", args=[sync.pk]),
        "runs_url": reverse("api-sync-runs", args=[sync.pk]),
        "latest_run": charted[0]["id"] if charted else None,
        "runs": list(reversed(charted)),
        "sync_url": reverse("api-sync", args=[sync.pk]),
    }
    holdout = SyncSerializer(sync).data["holdout"]
    if holdout is not None:
        experiment = sync.holdout_experiment
        latest = (experiment.history or [{}])[-1] if experiment else {}
        holdout["lift"] = _lift_text((latest.get("lifts") or {}).get("treated"))
        holdout["analysed_at"] = latest.get("at")
        holdout["held_out"] = holdout["members"].get("holdout", 0)
        holdout["treated"] = holdout["members"].get("treated", 0)
    return render(
        request,
        "activation/sync.html",
        {
            **paging,
            "sync": sync,
            "runs": runs,
            "status": selectors.sync_status(sync=sync),
            "identifiers": sync.mapping.get("identifiers", []),
            "fields": sync.mapping.get("fields", []),
            "can_manage": pages.can(request, "syncs.manage"),
            "config": config,
            "holdout": holdout,
            "metrics": Metric.objects.filter(workspace=workspace).order_by("key"),
        },
    )


def _lift_text(lift: dict[str, Any] | None) -> dict[str, str] | None:
    """The treated side's lift as the page says it: relative in % with its interval, or the
    absolute change when the held-out side's mean is 0."""
    if not lift:
        return None
    bounds: list[float] = list(lift.get("absolute_ci") or [])
    shaped = _lift_value(lift)
    if len(bounds) == 2 and bounds[0] <= 0 <= bounds[1]:
        shaped["interval"] += "; not significant yet"
    return shaped


def _lift_value(lift: dict[str, Any]) -> dict[str, str]:
    if lift.get("relative") is not None:
        bounds = lift.get("relative_ci")
        interval = f"{bounds[0] * 100:+.1f} to {bounds[1] * 100:+.1f} %" if bounds else ""
        return {"value": f"{lift['relative'] * 100:+.1f} %", "label": "Relative lift",
                "interval": interval}  # fmt: skip
    bounds = lift.get("absolute_ci")
    interval = f"{bounds[0]:+.3g} to {bounds[1]:+.3g}" if bounds else ""
    return {"value": f"{lift['absolute']:+.3g}", "label": "Absolute change", "interval": interval}


@login_required
@require_POST
def sync_toggle(request: HttpRequest, sync_id: int) -> HttpResponse:
    workspace = pages.require(request, "syncs.manage")
    sync = _sync(workspace, sync_id)
    try:
        sync = sync_services.sync_update(
            sync=sync, data={"enabled": not sync.enabled}, actor=request.user
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"“{sync.name}” is enabled: it sends the changes since it was paused."
            if sync.enabled
            else f"“{sync.name}” is paused: nothing is planned until you enable it.",
        )
    return redirect("ui-sync", sync_id=sync.pk)


@login_required
@require_POST
def sync_delete(request: HttpRequest, sync_id: int) -> HttpResponse:
    workspace = pages.require(request, "syncs.manage")
    sync = _sync(workspace, sync_id)
    name = sync.name
    sync_services.sync_delete(sync=sync, actor=request.user)
    messages.success(
        request,
        f"Sync “{name}” deleted. The audience it sent stays in the destination until removed "
        "there.",
    )
    return redirect("ui-syncs")


# ---- deliveries -----------------------------------------------------------------------------


@login_required
def delivery_list(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "deliveries.view")
    destinations = list(selectors.destination_list(workspace=workspace))
    chosen = pages.choice(request, "destination", [str(d.pk) for d in destinations])
    destination = next((d for d in destinations if str(d.pk) == chosen), None)
    status = pages.choice(request, "status", DeliveryStatus.values)
    kind = pages.choice(request, "kind", DeliveryKind.values)
    rows = selectors.delivery_list(
        workspace=workspace,
        destination_id=destination.pk if destination else None,
        status=status,
        kind=kind,
    ).defer("payload")  # an audience batch's is large; the detail loads it when expanded
    paging = pages.paginate(request, rows, DELIVERY_PAGE_SIZE)
    for row in paging["page"].object_list:
        row.pill = STATUS_PILLS.get(row.status, "off")  # type: ignore[attr-defined]
    dead = selectors.delivery_list(
        workspace=workspace,
        destination_id=destination.pk if destination else None,
        status=DeliveryStatus.DEAD,
    ).count()
    return render(
        request,
        "activation/deliveries.html",
        {
            **paging,
            "destinations": destinations,
            "destination": destination,
            "status": status,
            "kind": kind,
            "statuses": [
                (value, label, pages.query_string(request, status=value, page=""))
                for value, label in DeliveryStatus.choices
            ],
            "all_statuses_query": pages.query_string(request, status="", page=""),
            "kinds": DeliveryKind.choices,
            "filtered": bool(destination or status or kind),
            "dead": dead,
            "can_retry": pages.can(request, "deliveries.retry"),
            "here": request.get_full_path(),
            "config": {"detail_url": reverse("api-delivery", args=[0])},
        },
    )


@login_required
@require_POST
def deliveries_retry(request: HttpRequest) -> HttpResponse:
    """Replay one dead letter (`id`) or every dead one (of `destination`, or all)."""
    workspace = pages.require(request, "deliveries.retry")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("ui-deliveries")
    one = request.POST.get("id", "")
    destination = request.POST.get("destination", "")
    if destination:
        _or_404(lambda: selectors.destination_get(workspace=workspace, destination_id=destination))
    result = services.deliveries_retry(
        workspace=workspace,
        ids=[int(one)] if one.isdigit() else None,
        destination_id=int(destination) if destination.isdigit() else None,
        actor=request.user,
    )
    replayed, superseded = result["replayed"], result["superseded"]
    if not replayed and not superseded:
        messages.error(request, "Nothing to retry: no dead letter matched (already retried?).")
    else:
        text = f"{replayed:,} dead letter{'s' if replayed != 1 else ''} queued again"
        if superseded:
            text += (
                f"; {superseded:,} not replayed: a later delivery for the same person replaced "
                f"{'them' if superseded != 1 else 'it'}"
            )
        messages.success(request, text + ".")
    return redirect(back)


# ---- on the segment page --------------------------------------------------------------------


def segment_section(request: HttpRequest, workspace: Workspace, segment: Segment) -> dict[str, Any]:
    """The "Synced to" section of the segment page (registered in ActivationConfig.ready()):
    the segment's syncs with their destination, status and last run."""
    syncs = _with_status(list(selectors.sync_list(workspace=workspace, segment_id=segment.pk)))
    for sync in syncs:
        sync.circuit_pill = CIRCUIT_PILLS.get(  # type: ignore[attr-defined]
            sync.destination.circuit_state, "off"
        )
    return {
        "syncs": syncs,
        "segment": segment,
        "can_create": pages.can(request, "syncs.manage"),
        "new_url": f"{reverse('ui-sync-new')}?segment={segment.pk}",
    }
