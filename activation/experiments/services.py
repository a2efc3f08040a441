"""Writes of experiments: the metric library, experiments and their life (draft → running →
stopped or shipped), and assignment — a profile's variant, decided by the hash, recorded at
its first exposure and sticky from then on."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Count
from django.utils import timezone

from activation.decisions import version as decision_version
from activation.experiments import bucketing, stats
from activation.experiments.models import (
    Experiment,
    ExperimentStatus,
    Exposure,
    Metric,
    MetricKind,
)
from cdp.errors import Conflict, ValidationFailed, duplicate
from cdp.models import Workspace, audit
from cdp.paths import PathError, split_path
from consent.enforcement import consent_allows
from profiles.collector import gate
from profiles.collector.keys import SourceInfo
from profiles.collector.normalize import now_utc
from profiles.collector.service import collector_ingest
from profiles.models import Identity, Source, SourceKind
from profiles.services import source_create
from segments.rules import compile as compiler
from segments.services import rule_parse

KEY = re.compile(r"[a-z][a-z0-9_-]{0,63}")
MAX_VARIANTS = 10
MAX_WINDOW_DAYS = 365
EXPOSURE_EVENT = "Experiment Viewed"
SOURCE_NAME = "Experiments (exposures)"
DEFAULT_PERSONAL_PURPOSE = "personalization"


def _errors() -> tuple[dict[str, list[str]], Any]:
    errors: dict[str, list[str]] = {}

    def fail(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    return errors, fail


def _key(data: Mapping[str, Any], fail: Any, example: str) -> str | None:
    key = data.get("key")
    if not isinstance(key, str) or not KEY.fullmatch(key):
        fail("key", f"lower-case letters, digits, - and _, starting with a letter (e.g. {example})")
        return None
    return key


def _name(data: Mapping[str, Any], fail: Any, current: str | None) -> str | None:
    name = data.get("name", current)
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        fail("name", "a name of 1 to 200 characters")
        return None
    return name.strip()


# ---- metrics ----------------------------------------------------------------------------------


def metric_create(*, workspace: Workspace, actor: Any, data: Mapping[str, Any]) -> Metric:
    errors, fail = _errors()
    key = _key(data, fail, "checkout_conversion")
    name = _name(data, fail, None)
    kind = data.get("kind")
    if kind not in MetricKind.values:
        fail("kind", f"one of {', '.join(MetricKind.values)}")
    event = data.get("event")
    if not isinstance(event, str) or not event.strip() or len(event) > 255:
        fail("event", "the event counted, e.g. Order Completed")
    prop = data.get("property", "")
    if kind == MetricKind.SUM:
        try:
            split_path(prop if isinstance(prop, str) else "")
        except PathError as exc:
            fail("property", f"the numeric property summed, e.g. revenue ({exc})")
    elif prop:
        fail("property", "only a sum metric sums a property")
    window = data.get("window_days", 7)
    if (
        isinstance(window, bool)
        or not isinstance(window, int)
        or not 1 <= window <= MAX_WINDOW_DAYS
    ):
        fail("window_days", f"days after exposure counted, 1 to {MAX_WINDOW_DAYS}")
    cap = data.get("winsorize_percentile")
    if cap is not None and (
        isinstance(cap, bool) or not isinstance(cap, int | float) or not 50 <= cap < 100
    ):
        fail(
            "winsorize_percentile",
            "a percentile from 50 to 99.99 (values above it are capped), or null",
        )
    better = data.get("higher_is_better", True)
    if not isinstance(better, bool):
        fail("higher_is_better", "true or false")
    unknown = set(data) - {"key", "name", "description", "kind", "event", "property",
                           "window_days", "winsorize_percentile", "higher_is_better"}  # fmt: skip
    for field in sorted(unknown):
        fail(field, "unknown field")
    if errors:
        raise ValidationFailed(errors)
    assert key is not None and name is not None and isinstance(kind, str)
    try:
        with transaction.atomic():
            metric = Metric.objects.create(
                workspace=workspace, key=key, name=name, kind=kind, event=str(event).strip(),
                property=prop or "", window_days=window, winsorize_percentile=cap,
                higher_is_better=better, description=str(data.get("description") or "")[:2000],
            )  # fmt: skip
    except IntegrityError:
        raise duplicate("key", f"a metric {key!r} already exists") from None
    audit(workspace=workspace, actor=actor, action="metric.create", target=metric,
          detail={"key": key})  # fmt: skip
    return metric


# ---- experiments ------------------------------------------------------------------------------


def _variants(value: Any, fail: Any) -> list[dict[str, Any]] | None:
    if not isinstance(value, list) or not 2 <= len(value) <= MAX_VARIANTS:
        fail("variants", f"a list of 2 to {MAX_VARIANTS} variants, the control first")
        return None
    out, seen = [], set()
    for i, variant in enumerate(value):
        at = f"variants[{i}]"
        if not isinstance(variant, dict):
            fail(at, '{"key", "name", "weight", "payload"}')
            continue
        key = variant.get("key")
        if not isinstance(key, str) or not KEY.fullmatch(key) or key in seen:
            fail(f"{at}.key", "a unique key (lower-case letters, digits, - and _)")
            continue
        seen.add(key)
        weight = variant.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            fail(f"{at}.weight", "a positive number (the shares are weight / total)")
            continue
        payload = variant.get("payload", {})
        if not isinstance(payload, dict):
            fail(f"{at}.payload", "a JSON object (what the decision API returns for it)")
            continue
        for field in sorted(set(variant) - {"key", "name", "weight", "payload"}):
            fail(f"{at}.{field}", "unknown field")
        name = variant.get("name") or key
        out.append({"key": key, "name": str(name)[:200], "weight": float(weight),
                    "payload": payload})  # fmt: skip
    return out


def _metrics(workspace: Workspace, data: Mapping[str, Any], fail: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def find(ref: Any, field: str) -> Metric | None:
        metric = (
            Metric.objects.filter(workspace=workspace, key=ref).first()
            if isinstance(ref, str) else None
        )  # fmt: skip
        if metric is None:
            known = ", ".join(Metric.objects.filter(workspace=workspace).order_by("key")
                              .values_list("key", flat=True)) or "none yet"  # fmt: skip
            fail(field, f"no metric {ref!r} (metrics: {known})")
        return metric

    if "primary_metric" in data:
        out["primary_metric"] = find(data["primary_metric"], "primary_metric")
    for field in ("secondary_metrics", "guardrail_metrics"):
        if field in data:
            refs = data[field]
            if not isinstance(refs, list):
                fail(field, "a list of metric keys")
                continue
            out[field] = [find(ref, f"{field}[{i}]") for i, ref in enumerate(refs)]
    return out


FIXED_WHILE_RUNNING = ("variants", "layer", "layer_share", "targeting", "primary_metric")


def _clean(workspace: Workspace, data: Mapping[str, Any], current: Experiment | None
           ) -> dict[str, Any]:  # fmt: skip
    errors, fail = _errors()
    out: dict[str, Any] = {}
    if current is None:
        out["key"] = _key(data, fail, "new_checkout")
        if "primary_metric" not in data:
            fail("primary_metric", "required: the metric that decides")
        if "variants" not in data:
            fail("variants", "required: at least a control and a treatment")
    elif current.status != ExperimentStatus.DRAFT:
        for field in FIXED_WHILE_RUNNING:
            if field in data:
                fail(field, f"cannot change once the experiment has started ({current.status}): "
                     "it would move units between variants; make a new experiment")  # fmt: skip
    out["name"] = _name(data, fail, current.name if current else None)
    if "hypothesis" in data:
        out["hypothesis"] = str(data["hypothesis"] or "")[:4000]
    if "variants" in data:
        out["variants"] = _variants(data["variants"], fail)
    if "coverage" in data:
        coverage = data["coverage"]
        if (
            isinstance(coverage, bool)
            or not isinstance(coverage, int | float)
            or not 0 < coverage <= 1
        ):
            fail("coverage", "the share of eligible units that enter, above 0 and at most 1")
        else:
            out["coverage"] = float(coverage)
    if "targeting" in data:
        rule = data["targeting"]
        if rule is not None:
            try:
                rule_parse(workspace=workspace, rule=rule)
            except ValidationFailed as exc:
                for path, messages in exc.detail.get("fields", {}).items():
                    for message in messages if isinstance(messages, list) else [messages]:
                        fail(f"targeting{path.removeprefix('rule')}", message)
        out["targeting"] = rule
    if "layer" in data:
        layer = data["layer"] or ""
        if not isinstance(layer, str) or (layer and not KEY.fullmatch(layer)):
            fail("layer", "a layer key (experiments of a layer never share a unit), or empty")
        else:
            out["layer"] = layer
    if "layer_share" in data:
        share = data["layer_share"]
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
            fail("layer_share", "the share of the layer's units this experiment takes, (0, 1]")
        else:
            out["layer_share"] = float(share)
    for flag in ("personalised", "sequential", "cuped"):
        if flag in data:
            if not isinstance(data[flag], bool):
                fail(flag, "true or false")
            else:
                out[flag] = data[flag]
    if "alpha" in data:
        alpha = data["alpha"]
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha <= 0.2:
            fail("alpha", "the significance level, above 0 and at most 0.2 (e.g. 0.05)")
        else:
            out["alpha"] = float(alpha)
    out.update(_metrics(workspace, data, fail))
    allowed = {"key", "name", "hypothesis", "variants", "coverage", "targeting", "layer",
               "layer_share", "personalised", "sequential", "cuped", "alpha", "primary_metric",
               "secondary_metrics", "guardrail_metrics"}  # fmt: skip
    for field in sorted(set(data) - allowed):
        fail(field, "unknown field")
    if errors:
        raise ValidationFailed(errors)
    return out


def _save(experiment: Experiment, clean: dict[str, Any]) -> None:
    many = {f: clean.pop(f) for f in ("secondary_metrics", "guardrail_metrics") if f in clean}
    for field, value in clean.items():
        setattr(experiment, field, value)
    experiment.save()
    for field, metrics in many.items():
        getattr(experiment, field).set(metrics)
    decision_version.bump(experiment.workspace_id)


def experiment_create(*, workspace: Workspace, actor: Any, data: Mapping[str, Any]) -> Experiment:
    clean = _clean(workspace, data, None)
    try:
        with transaction.atomic():
            experiment = Experiment(
                workspace=workspace,
                created_by=actor if getattr(actor, "is_authenticated", False) else None,
            )
            _save(experiment, clean)
    except IntegrityError:
        raise duplicate("key", f"an experiment {clean['key']!r} already exists") from None
    audit(workspace=workspace, actor=actor, action="experiment.create", target=experiment,
          detail={"key": experiment.key})  # fmt: skip
    return experiment


@transaction.atomic
def experiment_update(*, experiment: Experiment, actor: Any, data: Mapping[str, Any]) -> Experiment:
    clean = _clean(experiment.workspace, data, experiment)
    _save(experiment, clean)
    audit(workspace=experiment.workspace, actor=actor, action="experiment.update",
          target=experiment, detail={"fields": sorted(data)})  # fmt: skip
    return experiment


def _transition(experiment: Experiment, actor: Any, allowed: tuple[str, ...], to: str,
                **fields: Any) -> Experiment:  # fmt: skip
    with transaction.atomic():
        locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if locked.status not in allowed:
            raise Conflict(f"the experiment is {locked.status}; it cannot become {to}",
                           code="experiment_state")  # fmt: skip
        locked.status = to
        for field, value in fields.items():
            setattr(locked, field, value)
        locked.save()
        decision_version.bump(locked.workspace_id)
    audit(workspace=locked.workspace, actor=actor, action=f"experiment.{to}", target=locked,
          detail=fields and {k: str(v) for k, v in fields.items()})  # fmt: skip
    return locked


def experiment_start(*, experiment: Experiment, actor: Any) -> Experiment:
    return _transition(experiment, actor, (ExperimentStatus.DRAFT,), ExperimentStatus.RUNNING,
                       started_at=timezone.now())  # fmt: skip


def experiment_stop(*, experiment: Experiment, actor: Any) -> Experiment:
    return _transition(experiment, actor, (ExperimentStatus.RUNNING,), ExperimentStatus.STOPPED,
                       stopped_at=timezone.now())  # fmt: skip


def experiment_ship(
    *, experiment: Experiment, actor: Any, variant: str, force: bool = False
) -> Experiment:
    """Stop the experiment and serve `variant` to everyone from now on — refused while the
    units per variant show a sample-ratio mismatch (a broken assignment: no result can be
    trusted), unless `force`."""
    if variant not in experiment.variant_keys:
        raise ValidationFailed.at("variant", f"one of {', '.join(experiment.variant_keys)}")
    if not force:
        counts = dict(
            Exposure.objects.filter(experiment=experiment)
            .values_list("variant")
            .annotate(n=Count("id"))
            .values_list("variant", "n")
        )
        units = [counts.get(key, 0) for key in experiment.variant_keys]
        mismatch = stats.srm(units, experiment.weights)
        if mismatch.flagged:
            raise Conflict(
                f"the units per variant ({' / '.join(map(str, units))}) do not match the "
                f"weights (sample-ratio mismatch, p = {mismatch.p_value:.1e}): the results "
                "cannot be trusted; fix the assignment, or ship with force",
                code="sample_ratio_mismatch",
                detail={"units": dict(zip(experiment.variant_keys, units, strict=True)),
                        "p_value": mismatch.p_value},
            )  # fmt: skip
    stopped = experiment.stopped_at or timezone.now()
    return _transition(
        experiment, actor, (ExperimentStatus.RUNNING, ExperimentStatus.STOPPED),
        ExperimentStatus.SHIPPED, winner=variant, stopped_at=stopped,
    )  # fmt: skip


# ---- assignment -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: str
    variant: str
    payload: dict[str, Any]
    first_exposure: bool
    reason: str


def _variant(experiment: Experiment, key: str) -> dict[str, Any]:
    return next(v for v in experiment.variants if v["key"] == key)


def _answer(experiment: Experiment, key: str, first: bool, reason: str) -> Assignment:
    return Assignment(experiment.key, key, _variant(experiment, key)["payload"], first, reason)


def _eligible(experiment: Experiment, profile_id: int, now: datetime) -> str | None:
    """Why the profile may not enter (None: it may)."""
    settings = experiment.workspace.settings or {}
    ranges: dict[str, tuple[float, float]] = {}
    if experiment.layer:
        peers = Experiment.objects.filter(
            workspace_id=experiment.workspace_id, layer=experiment.layer,
            status=ExperimentStatus.RUNNING,
        ).order_by("created_at", "pk")  # fmt: skip
        ranges = bucketing.layer_ranges({str(e.pk): min(1.0, e.layer_share) for e in peers})
    why = bucketing.excluded(
        workspace_id=experiment.workspace_id, unit=str(profile_id),
        holdout_percent=float(settings.get("experiments_holdout_percent") or 0),
        layer=experiment.layer, layer_ranges_of=ranges, experiment_id=experiment.pk,
    )  # fmt: skip
    if why is not None:
        return why
    if experiment.targeting is not None:
        node = rule_parse(workspace=experiment.workspace, rule=experiment.targeting)
        sql, params = compiler.members_query(
            node, workspace_id=experiment.workspace_id, now=now, profile_id=profile_id
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            if cursor.fetchone() is None:
                return "not targeted"
    if experiment.personalised:
        purpose = str(settings.get("personalization_purpose") or DEFAULT_PERSONAL_PURPOSE)
        if not consent_allows(workspace_id=experiment.workspace_id, profile_id=profile_id,
                              purpose=purpose):  # fmt: skip
            return "no personalisation consent"
    return None


def assign(
    *, experiment: Experiment, profile_id: int, now: datetime | None = None, record: bool = True
) -> Assignment | None:
    """The profile's variant: its first exposure's if it has one, else the hash's when the
    experiment runs and the profile is eligible (recorded as its first exposure when
    `record`, with one Experiment Viewed event); a shipped experiment serves its winner to
    everyone. None: not in the experiment (the caller serves its default)."""
    now = now or timezone.now()
    if experiment.status == ExperimentStatus.SHIPPED:
        return _answer(experiment, experiment.winner, False, "shipped")
    seen = Exposure.objects.filter(experiment=experiment, profile_id=profile_id).first()
    if seen is not None:
        return _answer(experiment, seen.variant, False, "exposed before")
    if experiment.status != ExperimentStatus.RUNNING:
        return None
    if _eligible(experiment, profile_id, now) is not None:
        return None
    index = bucketing.choose_variant(experiment.seed, str(profile_id), experiment.weights,
                                     experiment.coverage)  # fmt: skip
    if index is None:
        return None
    variant = experiment.variants[index]
    if not record:
        return Assignment(experiment.key, variant["key"], variant["payload"], False, "assigned")
    kept = exposure_insert(experiment_id=experiment.pk, workspace_id=experiment.workspace_id,
                           profile_id=profile_id, variant=variant["key"], at=now)  # fmt: skip
    if kept is None:  # a concurrent call exposed it a moment ago: its answer stands
        seen = Exposure.objects.get(experiment=experiment, profile_id=profile_id)
        return _answer(experiment, seen.variant, False, "exposed before")
    transaction.on_commit(
        lambda: exposure_event(
            workspace_id=experiment.workspace_id, key=experiment.key, name=experiment.name,
            seed=experiment.seed, variant=variant, at=now, unit=str(profile_id),
            ids=profile_ids_for_event(profile_id),
        )
    )  # fmt: skip
    return Assignment(experiment.key, variant["key"], variant["payload"], True, "assigned")


def exposure_insert(
    *, experiment_id: int, workspace_id: int, profile_id: int, variant: str, at: datetime
) -> str | None:
    """Record the profile's first exposure; None when it already had one (which stands)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO activation_exposure (experiment_id, workspace_id, profile_id, "
            "variant, exposed_at) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (experiment_id, profile_id) DO NOTHING RETURNING variant",
            [experiment_id, workspace_id, profile_id, variant, at],
        )
        row = cursor.fetchone()
    return str(row[0]) if row else None


_own_sources: dict[int, tuple[float, SourceInfo]] = {}


def _exposure_source(workspace_id: int) -> SourceInfo:
    """The workspace's source of the platform's own events (made on first use), cached in
    the process for a minute: exposures and impressions are sent on the decision path."""
    hit = _own_sources.get(workspace_id)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    source = Source.objects.filter(workspace_id=workspace_id, name=SOURCE_NAME).first()
    if source is None:
        source = source_create(workspace=Workspace.objects.get(pk=workspace_id), name=SOURCE_NAME,
                               kind=SourceKind.HTTP)  # fmt: skip
    info = SourceInfo.of(source)
    _own_sources[workspace_id] = (time.monotonic() + 60.0, info)
    return info


def profile_ids_for_event(profile_id: int) -> dict[str, str]:
    """The profile's first user id and anonymous id: what an event about it carries."""
    ids = {}
    for kind in ("user_id", "anonymous_id"):
        value = (
            Identity.objects.filter(profile_id=profile_id, type=kind)
            .order_by("first_seen", "pk")
            .values_list("value", flat=True)
            .first()
        )
        if value is not None:
            ids[kind] = value
    return ids


def ingest_own_events(workspace_id: int, events: list[dict[str, Any]]) -> None:
    """Events the platform itself sends about people (exposures, impressions), through the
    collector like any event: stored once per messageId, processed onto the profile,
    forwarded by event streams."""
    source = _exposure_source(workspace_id)
    # the collector's gate: the door filters' cached size and a throttled kick of the
    # processing (one task per interval, not one per exposure); never refused by the rate
    # limit, these are the platform's own events
    door = gate.check(source_id=source.source_id, workspace_id=workspace_id,
                      events=len(events), limit=source.rate_limit_per_second)  # fmt: skip
    collector_ingest(
        source=source, raw_events=events, body={"batch": events}, route_type=None,
        received_at=now_utc(), door_size=door.door_size, kick=door.kick or not door.allowed,
    )  # fmt: skip


def exposure_event(
    *, workspace_id: int, key: str, name: str, seed: str, variant: dict[str, Any], at: datetime,
    unit: str, ids: dict[str, str],
) -> None:  # fmt: skip
    """One Experiment Viewed event (Segment's convention) under a messageId derived from the
    experiment and the unit: stored once however often it is sent. For a visitor without a
    profile yet, the pipeline records the exposure when the event makes the profile."""
    if not ids:
        return
    event: dict[str, Any] = {
        "type": "track",
        "event": EXPOSURE_EVENT,
        "messageId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"exposure:{seed}:{unit}")),
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "properties": {
            "experiment_id": key,
            "experiment_name": name,
            "variation_id": variant["key"],
            "variation_name": variant.get("name") or variant["key"],
        },
    }
    if "user_id" in ids:
        event["userId"] = ids["user_id"]
    if "anonymous_id" in ids:
        event["anonymousId"] = ids["anonymous_id"]
    ingest_own_events(workspace_id, [event])


def move_exposures_on_merge(workspace_id: int, winner_id: int, loser_id: int) -> None:
    """The survivor keeps its own first exposure to an experiment; where only the merged-away
    profile was exposed, the survivor takes that exposure (a visitor who logs in keeps the
    variant it saw)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE activation_exposure l SET profile_id = %s WHERE l.profile_id = %s "
            "AND NOT EXISTS (SELECT 1 FROM activation_exposure w WHERE w.profile_id = %s "
            "AND w.experiment_id = l.experiment_id)",
            [winner_id, loser_id, winner_id],
        )
        cursor.execute("DELETE FROM activation_exposure WHERE profile_id = %s", [loser_id])
