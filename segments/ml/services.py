"""Writes of the model registry: define a model, ask for a training run, cancel it, promote
or roll back a version. Training itself runs in segments.ml.jobs (a Celery task)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson
from django.db import IntegrityError, transaction
from django.utils import timezone

from cdp.errors import Conflict, ValidationFailed, duplicate
from cdp.models import Workspace, audit
from profiles.computed import builtin
from profiles.models import ComputedTrait
from segments.ml import clusters, jobs
from segments.ml import selectors as ml_selectors
from segments.ml.features import BASE_FEATURES
from segments.ml.models import (
    ACTIVE_RUN,
    Item,
    MLModel,
    ModelKind,
    ModelVersion,
    RunStatus,
    TrainingRun,
)

KEY = re.compile(r"[a-z][a-z0-9_]{0,55}")
MAX_HORIZON = 365
MAX_TRAITS = 20
MAX_CATEGORIES = 20


def _clean(data: Mapping[str, Any], *, current: MLModel | None) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {}

    def fail(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if current is None:
        key = data.get("key")
        if not isinstance(key, str) or not KEY.fullmatch(key):
            fail(
                "key", "lower-case letters, digits and _, starting with a letter (e.g. churn_risk)"
            )
        else:
            out["key"] = key
        kind = data.get("kind")
        if kind not in ModelKind.values:
            fail("kind", f"one of {', '.join(ModelKind.values)}")
        else:
            out["kind"] = kind
    name = data.get("name", current.name if current else None)
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        fail("name", "a name of 1 to 200 characters")
    else:
        out["name"] = name.strip()
    if "description" in data:
        out["description"] = str(data["description"] or "")[:2000]
    if "schedule_hours" in data:
        hours = data["schedule_hours"]
        if hours is not None and (
            isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= 24 * 90
        ):
            fail("schedule_hours", "hours between retrains (1 to 2160), or null for none")
        else:
            out["schedule_hours"] = hours
    config = data.get("config", current.config if current else {})
    if not isinstance(config, dict):
        fail("config", "an object")
        config = {}
    clean_config: dict[str, Any] = {}
    for field in ("event", "purchase_event", "revenue_property"):
        if field in config:
            value = config[field]
            if not isinstance(value, str) or not value.strip() or len(value) > 255:
                fail(f"config.{field}", "a name of 1 to 255 characters")
            else:
                clean_config[field] = value.strip()
    if "horizon_days" in config:
        days = config["horizon_days"]
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_HORIZON:
            fail("config.horizon_days", f"days from 1 to {MAX_HORIZON}")
        else:
            clean_config["horizon_days"] = days
    if "seed" in config:
        seed = config["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
            fail("config.seed", "an integer from 0 to 2^31 - 1")
        else:
            clean_config["seed"] = seed
    traits = config.get("numeric_traits", [])
    if (
        not isinstance(traits, list)
        or len(traits) > MAX_TRAITS
        or not all(isinstance(t, str) and t.strip() for t in traits)
    ):
        fail("config.numeric_traits", f"a list of at most {MAX_TRAITS} trait names")
    elif traits:
        clean_config["numeric_traits"] = [t.strip() for t in traits]
    categories = config.get("categories", {})
    if not isinstance(categories, dict) or not all(
        isinstance(v, list) and 0 < len(v) <= MAX_CATEGORIES and all(isinstance(x, str) for x in v)
        for v in categories.values()
    ):
        fail(
            "config.categories",
            f'{{"trait": ["value", …]}}: up to {MAX_CATEGORIES} values per trait, one column each',
        )
    elif categories:
        clean_config["categories"] = categories
    if "end" in config:
        fail("config.end", "set by the platform (the time of the newest event)")
    kind = out.get("kind") or (current.kind if current else None)
    if kind == ModelKind.CLUSTERS:
        _clean_clusters(config, clean_config, fail)
    if kind == ModelKind.RECOMMENDATIONS:
        _clean_recommendations(config, clean_config, fail)
    allowed = SETTINGS.get(str(kind), set())
    for field in sorted(set(config) - allowed - {"end"}):
        known = any(field in fields for fields in SETTINGS.values())
        fail(f"config.{field}", f"not a setting of {kind} models" if known else "unknown setting")
    out["config"] = clean_config
    if "cluster_names" in data:
        if current is None or current.kind != ModelKind.CLUSTERS:
            fail("cluster_names", "only a clusters model's clusters have names")
        else:
            out["cluster_names"] = _clean_cluster_names(data["cluster_names"], current, fail)
    if errors:
        raise ValidationFailed(errors)
    return out


_COMMON = {"purchase_event", "revenue_property", "numeric_traits", "categories", "seed"}
SETTINGS: dict[str, set[str]] = {
    ModelKind.PROPENSITY: _COMMON | {"event", "horizon_days"},
    ModelKind.CHURN: _COMMON | {"event", "horizon_days"},
    ModelKind.CLUSTERS: _COMMON | {"features", "k"},
    ModelKind.RECOMMENDATIONS: {"purchase_event", "seed", "weights", "top_n", "exclude"},
}
MAX_WEIGHTS = 20
EXCLUDE = ("purchased", "interacted", "none")
MAX_CLUSTER_NAME = 80


def _clean_clusters(config: Mapping[str, Any], out: dict[str, Any], fail: Any) -> None:
    if "k" in config:
        k = config["k"]
        if k is not None and (
            isinstance(k, bool) or not isinstance(k, int)
            or not clusters.K_MIN <= k <= clusters.K_MAX
        ):  # fmt: skip
            fail("config.k", f"a number of clusters from {clusters.K_MIN} to {clusters.K_MAX}, "
                 "or null to choose it by silhouette")  # fmt: skip
        elif k is not None:
            out["k"] = k
    if "features" in config:
        names = config["features"]
        traits = [f"trait:{t}" for t in out.get("numeric_traits", [])]
        known = [*BASE_FEATURES, *traits]
        if (
            not isinstance(names, list) or len(names) < 2
            or not all(isinstance(x, str) for x in names)
        ):  # fmt: skip
            fail("config.features", "a list of at least 2 feature names")
        elif unknown := [x for x in names if x not in known]:
            fail("config.features", f"unknown features {', '.join(unknown)}; known: "
                 f"{', '.join(known)}")  # fmt: skip
        else:
            out["features"] = list(dict.fromkeys(names))


def _clean_recommendations(config: Mapping[str, Any], out: dict[str, Any], fail: Any) -> None:
    if "weights" in config:
        weights = config["weights"]
        if (
            not isinstance(weights, dict) or not 0 < len(weights) <= MAX_WEIGHTS
            or not all(isinstance(k, str) and k.strip() and len(k) <= 255 for k in weights)
            or not all(not isinstance(v, bool) and isinstance(v, int | float) and 0 < v <= 100
                       for v in weights.values())
        ):  # fmt: skip
            fail("config.weights", f'{{"event": weight}}: 1 to {MAX_WEIGHTS} events, each '
                 "weight above 0 and at most 100")  # fmt: skip
        else:
            out["weights"] = {k.strip(): float(v) for k, v in weights.items()}
    if "top_n" in config:
        n = config["top_n"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 100:
            fail("config.top_n", "how many items to keep per person, 1 to 100")
        else:
            out["top_n"] = n
    if "exclude" in config:
        if config["exclude"] not in EXCLUDE:
            fail("config.exclude", f"one of {', '.join(EXCLUDE)}: which of a person's items "
                 "are never recommended back")  # fmt: skip
        else:
            out["exclude"] = config["exclude"]


def _clean_cluster_names(names: Any, model: MLModel, fail: Any) -> dict[str, str]:
    labels = model.cluster_labels()
    if not isinstance(names, dict):
        fail("cluster_names", '{"label": "name"}')
        return dict(model.cluster_names)
    out = dict(model.cluster_names)
    for label, name in names.items():
        if label not in labels:
            known = ", ".join(labels) or "none yet: train the model first"
            fail(f"cluster_names.{label}", f"no cluster {label!r}; clusters: {known}")
        elif name is None or (isinstance(name, str) and not name.strip()):
            out.pop(label, None)  # back to the description
        elif not isinstance(name, str) or len(name.strip()) > MAX_CLUSTER_NAME:
            fail(f"cluster_names.{label}", f"a name of 1 to {MAX_CLUSTER_NAME} characters")
        else:
            out[label] = name.strip()
    return out


def _taken_keys(workspace: Workspace) -> set[str]:
    """Names a model's scores may not take: computed traits, built-ins, other models."""
    keys = set(ComputedTrait.objects.filter(workspace=workspace).values_list("key", flat=True))
    for trait in builtin.BUILTIN_TRAITS:
        keys.add(trait.key)
        if trait.computed_key:
            keys.add(trait.computed_key)
    for model in MLModel.objects.filter(workspace=workspace):
        keys |= {model.key, model.decile_key}  # a kind may change only with a new model
    return keys


def ml_model_create(*, workspace: Workspace, actor: Any, data: Mapping[str, Any]) -> MLModel:
    clean = _clean(data, current=None)
    key = clean["key"]
    if {key, f"{key}_decile"} & _taken_keys(workspace):
        raise duplicate("key", f"{key!r} (or {key}_decile) is already a trait or a model's")
    try:
        with transaction.atomic():
            model = MLModel.objects.create(
                workspace=workspace,
                created_by=actor if getattr(actor, "is_authenticated", False) else None,
                **clean,
            )
    except IntegrityError:
        raise duplicate("key", f"a model {key!r} already exists") from None
    audit(workspace=workspace, actor=actor, action="ml_model.create", target=model,
          detail={"key": key, "kind": model.kind})  # fmt: skip
    return model


@transaction.atomic
def ml_model_update(*, model: MLModel, actor: Any, data: Mapping[str, Any]) -> MLModel:
    clean = _clean(data, current=model)
    for field, value in clean.items():
        setattr(model, field, value)
    model.updated_at = timezone.now()
    model.save()
    audit(workspace=model.workspace, actor=actor, action="ml_model.update", target=model,
          detail={"fields": sorted(clean)})  # fmt: skip
    return model


def ml_model_delete(*, model: MLModel, actor: Any) -> None:
    """Delete the model, its runs and versions, and the scores it wrote."""
    from profiles.computed.services import computed_values_write

    if model.runs.filter(status__in=ACTIVE_RUN).exists():
        raise Conflict("the model is training; cancel the run first", code="model_busy")
    using = ml_selectors.segments_using(model)
    if using:
        names = ", ".join(f"{s.name!r}" for s in using[:5])
        raise Conflict(
            f"segments read this model's output in their rules: {names}; change them first",
            code="model_in_use",
            detail={"segments": [{"id": s.pk, "key": s.key, "name": s.name} for s in using]},
        )
    workspace, key = model.workspace, model.key
    computed_values_write(
        workspace_id=workspace.pk, values={k: {} for k in model.trait_keys}, exclusive=True
    )
    model.delete()
    audit(workspace=workspace, actor=actor, action="ml_model.delete", target=None,
          detail={"key": key})  # fmt: skip


def ml_train(
    *, model: MLModel, actor: Any, trigger: str = "manual", queue: bool = True
) -> TrainingRun:
    """Queue a training run (one at a time per model: 409 while one is queued or running);
    without `queue` the caller executes it (jobs.execute)."""
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                model=model,
                trigger=trigger,
                created_by=actor if getattr(actor, "is_authenticated", False) else None,
            )
    except IntegrityError:
        active = model.runs.filter(status__in=ACTIVE_RUN).first()
        raise Conflict(
            "a training run of this model is already queued or running",
            code="run_in_progress",
            detail={"run": active.pk if active else None},
        ) from None
    from segments.ml import tasks

    if queue:
        transaction.on_commit(lambda: tasks.train.delay(run.pk))
    if trigger == "manual":
        audit(workspace=model.workspace, actor=actor, action="ml_model.train", target=model,
              detail={"run": run.pk})  # fmt: skip
    return run


def ml_run_cancel(*, run: TrainingRun, actor: Any) -> TrainingRun:
    """Ask a run to stop: a queued run ends at once, a running one at its next stage."""
    if not run.active:
        raise Conflict(f"the run has already ended ({run.status})", code="run_ended")
    with transaction.atomic():
        TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)
        if run.status == RunStatus.QUEUED:
            TrainingRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
                status=RunStatus.CANCELLED, finished_at=timezone.now(),
                log=run.log + "cancelled before it started\n",
            )  # fmt: skip
    run.refresh_from_db()
    audit(workspace=run.model.workspace, actor=actor, action="ml_run.cancel", target=run.model,
          detail={"run": run.pk})  # fmt: skip
    return run


def ml_promote(*, version: ModelVersion, actor: Any) -> ModelVersion:
    """Make a version the champion by hand (a promotion or a roll-back) and score with it."""
    with transaction.atomic():
        model = MLModel.objects.select_for_update().get(pk=version.model_id)
        if model.champion_id == version.pk:
            raise Conflict(f"v{version.number} is already the champion", code="already_champion")
        previous = model.champion
        jobs._make_champion(model, version)
        ModelVersion.objects.filter(pk=version.pk).update(
            reason=f"promoted by hand (replacing v{previous.number})" if previous
            else "promoted by hand"
        )  # fmt: skip
    audit(workspace=model.workspace, actor=actor, action="ml_model.promote", target=model,
          detail={"version": version.number})  # fmt: skip
    jobs.score(model.pk)
    version.refresh_from_db()
    return version


def ml_schedule_due(*, now: Any | None = None) -> int:
    """Beat: queue a run for every model whose schedule is due (or whose important features
    drifted), and fail runs whose worker died. Returns how many runs were queued."""
    now = now or timezone.now()
    jobs.sweep_dead_runs()
    queued = 0
    for model in MLModel.objects.with_champion().filter(schedule_hours__isnull=False):
        last = model.runs.order_by("-created_at").first()
        hours = model.schedule_hours or 0
        due = last is None or (now - last.created_at).total_seconds() >= hours * 3600
        trigger = "schedule" if due else ("drift" if jobs.drifted(model) else "")
        if (
            trigger == "drift"
            and last is not None
            and last.trigger == "drift"
            and (now - last.created_at).total_seconds() < 86400
        ):
            continue  # one drift retrain a day at most
        if not trigger:
            continue
        try:
            ml_train(model=model, actor=None, trigger=trigger)
            queued += 1
        except Conflict:
            continue
    return queued


# ---- the item catalogue ---------------------------------------------------------------------

MAX_ATTRIBUTES_BYTES = 10_000


def item_update(*, item: Item, actor: Any, data: Mapping[str, Any]) -> Item:
    """Edit an item (name, category, price, availability, attributes); an edited field is
    kept when the catalogue is rebuilt from events."""
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    for field, limit in (("name", 500), ("category", 255)):
        if field in data:
            value = data[field]
            if not isinstance(value, str) or len(value) > limit:
                errors[field] = [f"text of at most {limit} characters"]
            else:
                clean[field] = value.strip()
    if "price" in data:
        price = data["price"]
        if price is not None and (
            isinstance(price, bool) or not isinstance(price, int | float) or not 0 <= price < 1e12
        ):
            errors["price"] = ["a number ≥ 0, or null"]
        else:
            clean["price"] = None if price is None else float(price)
    if "available" in data:
        if not isinstance(data["available"], bool):
            errors["available"] = ["true or false (an unavailable item is never recommended)"]
        else:
            clean["available"] = data["available"]
    if "attributes" in data:
        attrs = data["attributes"]
        if not isinstance(attrs, dict) or len(orjson.dumps(attrs)) > MAX_ATTRIBUTES_BYTES:
            errors["attributes"] = [f"an object of at most {MAX_ATTRIBUTES_BYTES:,} bytes"]
        else:
            clean["attributes"] = attrs
    unknown = set(data) - {"name", "category", "price", "available", "attributes"}
    for field in sorted(unknown):
        errors[field] = ["not editable (name, category, price, available, attributes)"]
    if errors:
        raise ValidationFailed(errors)
    for field, value in clean.items():
        setattr(item, field, value)
    item.edited_fields = sorted(set(item.edited_fields) | set(clean))
    item.updated_at = timezone.now()
    item.save()
    audit(workspace=item.workspace, actor=actor, action="ml_item.update", target=None,
          detail={"item": item.item_id, "fields": sorted(clean)})  # fmt: skip
    return item
