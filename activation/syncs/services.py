"""Creating, changing and starting audience syncs; payload preview and expected match rate."""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from activation import connectors
from activation.experiments.models import Experiment, Metric
from activation.experiments.services import experiment_create, experiment_start, experiment_stop
from activation.models import Destination, RunKind, Sync, SyncMode, SyncSchedule
from activation.streams.stage import forget_config
from activation.syncs import mapping as mappings
from activation.syncs.mapping import json_object
from activation.syncs.planner import HOLDOUT
from cdp.errors import Conflict, NotFound, ValidationFailed
from cdp.models import Workspace, audit
from consent.enforcement import consent_allowed_profiles
from segments.selectors import segment_get

FIELDS = (
    "name",
    "segment",
    "destination",
    "mapping",
    "mode",
    "schedule",
    "interval_minutes",
    "enabled",
    "holdout",
)
MAX_HOLDOUT_PERCENT = 50


def _clean(workspace: Workspace, data: dict[str, Any], current: Sync | None) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    unknown = sorted(set(data) - set(FIELDS))
    for key in unknown:
        errors.setdefault(key, []).append(f"not a sync setting ({', '.join(FIELDS)})")
    if "name" in data or current is None:
        name = str(data.get("name") or "").strip()
        if not name:
            errors.setdefault("name", []).append("required")
        elif (
            Sync.objects.filter(workspace=workspace, name=name)
            .exclude(pk=current.pk if current else 0)
            .exists()
        ):
            errors.setdefault("name", []).append("a sync with this name exists")
        out["name"] = name
    if "segment" in data or current is None:
        segment = segment_get(workspace=workspace, segment_id=data.get("segment"))
        if segment is None:
            errors.setdefault("segment", []).append("no such segment in this workspace")
        elif current is not None and segment.pk != current.segment_id:
            errors.setdefault("segment", []).append(
                "a sync's segment cannot change: create another sync"
            )
        out["segment"] = segment
    destination = current.destination if current else None
    if "destination" in data or current is None:
        destination = Destination.objects.filter(
            workspace=workspace, pk=_int(data.get("destination"))
        ).first()
        if destination is None:
            errors.setdefault("destination", []).append("no such destination in this workspace")
        elif current is not None and destination.pk != current.destination_id:
            errors.setdefault("destination", []).append(
                "a sync's destination cannot change: create another sync"
            )
        out["destination"] = destination
    if destination is not None and ("mapping" in data or current is None):
        try:
            parsed = mappings.parse(data.get("mapping"), connectors.get(destination.kind))
        except ValidationFailed as exc:
            for path, messages in exc.fields.items():
                errors.setdefault(path, []).extend(messages)
        else:
            out["mapping"] = mappings.as_json(parsed)
    if "mode" in data:
        if data["mode"] not in SyncMode.values:
            errors.setdefault("mode", []).append(f"expected one of {', '.join(SyncMode.values)}")
        else:
            out["mode"] = data["mode"]
    if "schedule" in data:
        if data["schedule"] not in SyncSchedule.values:
            errors.setdefault("schedule", []).append(
                f"expected one of {', '.join(SyncSchedule.values)}"
            )
        else:
            out["schedule"] = data["schedule"]
    if "interval_minutes" in data:
        value = data["interval_minutes"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10080:
            errors.setdefault("interval_minutes", []).append("expected 1 to 10080 minutes")
        else:
            out["interval_minutes"] = value
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            errors.setdefault("enabled", []).append("expected true or false")
        else:
            out["enabled"] = data["enabled"]
    if "holdout" in data:
        out["holdout"] = _holdout_clean(workspace, data["holdout"], current, errors)
    if errors:
        raise ValidationFailed(errors)
    return out


def _holdout_clean(
    workspace: Workspace, value: Any, current: Sync | None, errors: dict[str, list[str]]
) -> dict[str, Any] | None:
    """{"percent": 0.5–50, "metric": key from the metric library} or null (stop)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.setdefault("holdout", []).append('expected {"percent": 10, "metric": key} or null')
        return None
    percent, metric_key = value.get("percent"), value.get("metric")
    if (
        isinstance(percent, bool)
        or not isinstance(percent, int | float)
        or not (0.5 <= percent <= MAX_HOLDOUT_PERCENT)
    ):
        errors.setdefault("holdout.percent", []).append(
            f"a share of the members from 0.5 to {MAX_HOLDOUT_PERCENT} (%)"
        )
    metric = Metric.objects.filter(workspace=workspace, key=str(metric_key or "")).first()
    if metric is None:
        errors.setdefault("holdout.metric", []).append(
            f"no metric {metric_key!r} in the metric library (define it on the Experiments page)"
        )
    running = current.holdout_experiment if current else None
    if running is not None and running.status == "running":
        errors.setdefault("holdout", []).append(
            "a holdout is running: stop it first (holdout: null); changing its split midway "
            "would bias its results"
        )
    return {"percent": float(percent or 0), "metric": metric} if not errors else None


def _holdout_start(sync: Sync, percent: float, metric: Metric, actor: Any) -> Experiment:
    """The holdout as an experiment of the same engine: its control ("holdout") is withheld,
    its treatment ("treated") sent; its results page reports the lift."""
    key = f"holdout-sync-{sync.pk}"
    n = Experiment.objects.filter(workspace_id=sync.workspace_id, key__startswith=key).count()
    experiment = experiment_create(
        workspace=sync.workspace, actor=actor,
        data={
            "key": key if n == 0 else f"{key}-{n + 1}",
            "name": f"Holdout of {sync.name}",
            "hypothesis": f"Sending {sync.segment.name} to {sync.destination.name} moves "
                          f"{metric.name}",
            "variants": [
                {"key": HOLDOUT, "name": "Held out", "weight": percent},
                {"key": "treated", "name": "Sent", "weight": 100 - percent},
            ],
            "primary_metric": metric.key,
        },
    )  # fmt: skip
    return experiment_start(experiment=experiment, actor=actor)


def _int(value: Any) -> int:
    """An id from input (0, which matches nothing, when it is not one)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


@transaction.atomic
def sync_create(*, workspace: Workspace, data: dict[str, Any], actor: Any = None) -> Sync:
    values = _clean(workspace, data, None)
    holdout = values.pop("holdout", None)
    sync = Sync.objects.create(
        workspace=workspace,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
        **values,
    )
    if holdout is not None:
        sync.holdout_experiment = _holdout_start(sync, holdout["percent"], holdout["metric"],
                                                 actor)  # fmt: skip
        sync.save(update_fields=["holdout_experiment"])
    audit(
        workspace=workspace,
        actor=actor,
        action="sync.create",
        target=sync,
        detail={"segment": sync.segment_id, "destination": sync.destination_id},
    )
    forget_config()
    if sync.enabled:
        _plan_soon(sync.pk, RunKind.INITIAL)
    return sync


@transaction.atomic
def sync_update(*, sync: Sync, data: dict[str, Any], actor: Any = None) -> Sync:
    values = _clean(sync.workspace, data, sync)
    mapping_changed = "mapping" in values and values["mapping"] != sync.mapping
    mode_changed = "mode" in values and values["mode"] != sync.mode
    holdout_changed = "holdout" in values
    if holdout_changed:
        holdout = values.pop("holdout")
        running = sync.holdout_experiment
        if holdout is None and running is not None and running.status == "running":
            experiment_stop(experiment=running, actor=actor)  # the held-out members go out
        elif holdout is not None:
            sync.holdout_experiment = _holdout_start(sync, holdout["percent"],
                                                     holdout["metric"], actor)  # fmt: skip
    for key, value in values.items():
        setattr(sync, key, value)
    sync.updated_at = timezone.now()
    if mapping_changed or mode_changed or holdout_changed:
        sync.resync_requested = True  # every member's payload (or side) may differ now
    sync.save()
    audit(
        workspace=sync.workspace,
        actor=actor,
        action="sync.update",
        target=sync,
        detail={"fields": sorted(values)},
    )
    if sync.enabled and sync.resync_requested:
        _plan_soon(sync.pk, RunKind.FULL)
    return sync


@transaction.atomic
def sync_delete(*, sync: Sync, actor: Any = None) -> None:
    audit(workspace=sync.workspace, actor=actor, action="sync.delete", target=sync)
    sync.delete()
    forget_config()


def sync_run_now(*, sync: Sync, full: bool = False, actor: Any = None) -> None:
    if not sync.enabled:
        raise Conflict(f"{sync.name} is paused: enable it first.", code="sync_disabled")
    if full:
        Sync.objects.filter(pk=sync.pk).update(resync_requested=True)
    audit(
        workspace=sync.workspace,
        actor=actor,
        action="sync.resync" if full else "sync.run",
        target=sync,
    )
    _plan_soon(sync.pk, RunKind.FULL if full else RunKind.DELTA)


def _plan_soon(sync_id: int, kind: str) -> None:
    from activation import tasks

    transaction.on_commit(lambda: tasks.plan_sync.delay(sync_id, kind))


def sync_get(*, workspace: Workspace, sync_id: Any) -> Sync:
    sync = (
        Sync.objects.select_related("segment", "destination")
        .filter(workspace=workspace, pk=_int(sync_id))
        .first()
    )
    if sync is None:
        raise NotFound("No such sync.")
    return sync


def sync_preview(
    *, workspace: Workspace, segment_id: Any, destination_id: Any, mapping: Any, limit: int = 5
) -> dict[str, Any]:
    """What the first members would be sent with, and the expected match rate (members with
    a usable identifier, and allowed by consent for the destination's purpose)."""
    segment = segment_get(workspace=workspace, segment_id=segment_id)
    if segment is None:
        raise ValidationFailed.at("segment", "no such segment in this workspace")
    destination = Destination.objects.filter(workspace=workspace, pk=_int(destination_id)).first()
    if destination is None:
        raise ValidationFailed.at("destination", "no such destination in this workspace")
    connector = connectors.get(destination.kind)
    rule = mappings.parse(mapping, connector)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM segments_membership WHERE segment_id = %s AND exited_at IS NULL",
            [segment.pk],
        )
        members = cursor.fetchone()[0]
        # the match rate over a sample of up to 10,000 members (exact below that)
        cursor.execute(
            "SELECT m.profile_id, p.traits, ARRAY(SELECT i.type || chr(9) || i.value "
            "FROM profiles_identity i WHERE i.profile_id = m.profile_id ORDER BY i.id) "
            "FROM segments_membership m JOIN profiles_profile p ON p.id = m.profile_id "
            "WHERE m.segment_id = %s AND m.exited_at IS NULL ORDER BY m.profile_id LIMIT 10000",
            [segment.pk],
        )
        sample = cursor.fetchall()
    allowed = consent_allowed_profiles(
        workspace_id=workspace.pk, purpose=destination.purpose, profile_ids=[r[0] for r in sample]
    )
    usable = 0
    consented_usable = 0
    examples: list[dict[str, Any]] = []
    for profile_id, traits, identities in sample:
        pairs = [tuple(x.split("\t", 1)) for x in identities]
        ids, fields = rule.desired(connector, pairs, json_object(traits))  # type: ignore[arg-type]
        if ids:
            usable += 1
            if profile_id in allowed:
                consented_usable += 1
                if len(examples) < limit:
                    examples.append(
                        {"profile_id": profile_id, "identifiers": ids, "fields": fields}
                    )
    n = len(sample)
    return {
        "members": members,
        "sampled": n,
        "with_identifier": usable,
        "match_rate": round(usable / n, 4) if n else None,
        "sendable": consented_usable,
        "sendable_rate": round(consented_usable / n, 4) if n else None,
        "examples": examples,
        "mapping": mappings.as_json(rule),
    }


def syncs_of_segment(segment: Any) -> list[str]:
    """The segments app's delete guard: a synced segment is not deleted under its syncs."""
    return [
        f"sync {name!r}"
        for name in Sync.objects.filter(segment=segment).values_list("name", flat=True)
    ]
