"""The activation app's part of workspace configuration as code (cdp.config_code):
destinations (their secrets as references, never values), syncs, event streams, the metric
library, experiments, placements and offers. Everything is written through the services the
API uses, so the same checks and audit rows apply.

A destination's `secrets` name where each secret comes from: `env:CDP_SECRET_…` or
`file:/run/secrets/…` (the file's content, stripped). Only those: a document applied over the
API by a workspace's owner must not read the platform's own settings (SECRET_KEY,
CDP_SECRETS_KEY, DATABASE_URL, or /proc/self/environ) into a destination it sends to, which
would hand them to another workspace's owner. The reference last applied is kept on the destination
(`secret_refs`) and exported; a secret without one exports as
`env:CDP_SECRET_<DESTINATION>_<SECRET>`. Creating needs every reference to resolve; on update a
resolvable reference sets the secret (rotation), an unresolvable one keeps the stored value.

Other items name what they use by its key or name (a sync's segment key and destination name,
an experiment's metric keys, an offer's placement key; `{"segment": …}` conditions in
targeting and eligibility rules are exported by key), never by id."""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from activation import connectors
from activation.decisions.models import Offer, Placement
from activation.decisions.services import (
    offer_create,
    offer_update,
    placement_create,
    placement_update,
)
from activation.experiments.models import Experiment, ExperimentStatus, Metric
from activation.experiments.services import (
    experiment_create,
    experiment_start,
    experiment_stop,
    experiment_update,
    metric_create,
)
from activation.models import Destination, Stream, Sync
from activation.secrets import SecretsUnreadable
from activation.secrets import decrypt as secrets_decrypt
from activation.services import POLICY_FIELDS, destination_create, destination_update
from activation.streams.services import stream_create, stream_update
from activation.syncs.services import sync_create, sync_update
from cdp import config_code
from cdp.errors import ValidationFailed
from cdp.models import Workspace
from profiles.models import Source
from segments.config_kinds import rule_with_keys
from segments.models import Segment

# ---- destinations ---------------------------------------------------------------------------

DESTINATION_FIELDS = ("name", "kind", "purpose", "config", "enabled", *POLICY_FIELDS)
ENV_NAME = re.compile(r"CDP_SECRET_[A-Za-z0-9_]+")
# where secret files may be read (Docker and Kubernetes secrets, systemd credentials)
SECRET_FILE_DIRS = (Path("/run/secrets"), Path("/run/credentials"))
REF_FORMS = (
    'expected "env:CDP_SECRET_…" or "file:/run/secrets/…" (a reference, never the secret itself)'
)


def default_ref(destination: str, secret: str) -> str:
    """The reference of a secret none was recorded for: CDP_SECRET_<DESTINATION>_<SECRET>."""
    name = re.sub(r"[^A-Z0-9]", "_", destination.upper())
    return f"env:CDP_SECRET_{name}_{secret.upper()}"


def export_destinations(workspace: Workspace) -> list[dict[str, Any]]:
    out = []
    for destination in Destination.objects.filter(workspace=workspace):
        item = {name: getattr(destination, name) for name in DESTINATION_FIELDS}
        item["secrets"] = {
            name: destination.secret_refs.get(name) or default_ref(destination.name, name)
            for name in sorted(destination.secret_names)
        }
        out.append(item)
    return out


def _refs(item: dict[str, Any], connector: Any) -> dict[str, str]:
    """The item's secret references, checked (their form and names; not yet resolved)."""
    raw = item.get("secrets", {})
    if not isinstance(raw, dict):
        raise ValidationFailed.at("secrets", "expected an object of secret names to references")
    known = [f.name for f in connector.fields if f.secret]
    errors: dict[str, list[str]] = {}
    config = item.get("config")
    for name in sorted(config if isinstance(config, dict) else {}):
        if name in known:
            errors[f"config.{name}"] = [f"a secret: give it as secrets.{name}: env:… or file:…"]
    for name, ref in raw.items():
        if name not in known:
            errors[f"secrets.{name}"] = [
                f"not a secret of a {connector.label} destination ({', '.join(known) or 'none'})"
            ]
            continue
        scheme, _, where = ref.partition(":") if isinstance(ref, str) else ("", "", "")
        if not (
            (scheme == "env" and ENV_NAME.fullmatch(where))
            or (scheme == "file" and _secret_file(where) is not None)
        ):
            errors[f"secrets.{name}"] = [REF_FORMS]  # the value given is never echoed
    if errors:
        raise ValidationFailed(errors)
    return dict(raw)


def _secret_file(where: str) -> Path | None:
    """The file a reference names, when it lies in a secrets folder (links followed)."""
    path = Path(where)
    if not path.is_absolute():
        return None
    real = path.resolve()
    return real if any(real.is_relative_to(d.resolve()) for d in SECRET_FILE_DIRS) else None


def _resolve(ref: str) -> tuple[str | None, str]:
    """The secret a reference points at, or None and why not."""
    scheme, _, where = ref.partition(":")
    if scheme == "env":
        value = os.environ.get(where, "").strip()
        return (value, "") if value else (None, f"environment variable {where} is not set")
    path = _secret_file(where)
    if path is None:  # checked before; a link may have moved since
        return None, f"file {where} is not in {' or '.join(map(str, SECRET_FILE_DIRS))}"
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        return None, f"file {where} cannot be read ({exc.strerror or exc})"
    return (value, "") if value else (None, f"file {where} is empty")


def _with_secrets(config: Any, secrets: dict[str, Any]) -> Any:
    """The settings the service takes: the document's, and the secrets resolved (a config
    that is not an object goes as it is, for the service to name)."""
    return {**config, **secrets} if isinstance(config, dict) else config


def _as_secret_paths(exc: ValidationFailed, secrets: set[str]) -> ValidationFailed:
    """The service names a secret `config.<name>`; the document has it as `secrets.<name>`."""
    fields: dict[str, list[str]] = {}
    for path, messages in exc.fields.items():
        head, _, rest = path.partition(".")
        name = rest.split(".", 1)[0]
        fields[f"secrets.{rest}" if head == "config" and name in secrets else path] = messages
    return ValidationFailed(fields)


def apply_destination(
    workspace: Workspace, item: dict[str, Any], current: dict[str, Any] | None, actor: Any
) -> None:
    config_code.only(item, {*DESTINATION_FIELDS, "secrets"}, {"name", "kind", "purpose"})
    data = {k: v for k, v in item.items() if k != "secrets"}
    try:
        connector = connectors.get(str(item["kind"]))
    except KeyError:
        if current is None:
            destination_create(workspace=workspace, data=data, actor=actor)  # names the kinds
        raise ValidationFailed.at("kind", "not a destination kind") from None
    secret_names = {f.name for f in connector.fields if f.secret}
    refs = _refs(item, connector)
    resolved: dict[str, str] = {}
    missing: dict[str, list[str]] = {}
    for name, ref in refs.items():
        value, problem = _resolve(ref)
        if value is None:
            missing[f"secrets.{name}"] = [problem]
        else:
            resolved[name] = value
    if current is None:
        if missing:
            raise ValidationFailed(missing)
        data["config"] = _with_secrets(item.get("config") or {}, resolved)
        try:
            destination, generated = destination_create(workspace=workspace, data=data, actor=actor)
        except ValidationFailed as exc:
            raise _as_secret_paths(exc, secret_names) from exc
        if generated:  # apply shows nobody a generated secret: it would be one nobody knows
            raise ValidationFailed(
                {
                    f"secrets.{name}": ["required here: give a reference (env:… or file:…)"]
                    for name in sorted(generated)
                }
            )
        Destination.objects.filter(pk=destination.pk).update(secret_refs=refs)
        return
    destination = Destination.objects.select_for_update().get(
        workspace=workspace, name=item["name"]
    )
    if item["kind"] != destination.kind:
        raise ValidationFailed.at("kind", "a destination's kind cannot change: create another")
    changes = {
        name: item[name]
        for name in DESTINATION_FIELDS
        if name not in ("name", "kind") and name in item and item[name] != current.get(name)
    }
    secret_changes: dict[str, str | None] = {}
    if "secrets" in item:  # like any field, secrets the item does not mention stay as they are
        try:
            stored = secrets_decrypt(destination.secrets_encrypted)
        except SecretsUnreadable:
            stored = {}
        secret_changes = {
            name: value for name, value in resolved.items() if stored.get(name) != value
        }
        errors = {
            path: messages
            for path, messages in missing.items()
            if path.removeprefix("secrets.") not in destination.secret_names  # else: kept
        }
        if errors:
            raise ValidationFailed(errors)
        for name in sorted(set(destination.secret_names) - set(refs)):
            secret_changes[name] = None  # the document no longer has it: removed
    if secret_changes:
        # with the whole config: the service fills settings missing from a partial one with
        # their defaults
        config = changes.get("config", item.get("config", destination.config))
        changes["config"] = _with_secrets(config, secret_changes)
    if changes:
        try:
            destination = destination_update(destination=destination, data=changes, actor=actor)
        except ValidationFailed as exc:
            raise _as_secret_paths(exc, secret_names) from exc
    kept = {name: ref for name, ref in refs.items() if name in destination.secret_names}
    if "secrets" in item and kept != destination.secret_refs:
        Destination.objects.filter(pk=destination.pk).update(secret_refs=kept)


def stale_destination(workspace: Workspace, item: dict[str, Any]) -> list[str]:
    """The secrets whose reference now resolves to another value than the one stored (a
    rotation behind the same reference): the item is applied although it equals the export;
    applying it again then changes nothing."""
    refs = item.get("secrets")
    if not isinstance(refs, dict) or not refs:
        return []
    destination = Destination.objects.filter(workspace=workspace, name=item["name"]).first()
    if destination is None:
        return []
    try:
        stored = secrets_decrypt(destination.secrets_encrypted)
    except SecretsUnreadable:
        stored = {}
    stale = []
    for name, ref in sorted(refs.items()):
        if not isinstance(ref, str) or name not in destination.secret_names:
            continue
        value, _ = _resolve(ref) if ref.partition(":")[0] in ("env", "file") else (None, "")
        if value is not None and stored.get(name) != value:
            stale.append(f"secrets.{name}")
    return stale


# ---- syncs and streams ----------------------------------------------------------------------

SYNC_FIELDS = (
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
STREAM_FIELDS = ("name", "source", "destination", "filters", "transform", "enabled")


def _holdout(sync: Sync) -> dict[str, Any] | None:
    """A running campaign holdout as the sync service takes it: {"percent", "metric"}."""
    experiment = sync.holdout_experiment
    if experiment is None or experiment.status != ExperimentStatus.RUNNING:
        return None
    held = next((v for v in experiment.variants if v["key"] == "holdout"), {"weight": 0})
    total = sum(float(v.get("weight", 1)) for v in experiment.variants) or 1.0
    return {
        "percent": round(100 * float(held["weight"]) / total, 2),
        "metric": experiment.primary_metric.key,
    }


def export_syncs(workspace: Workspace) -> list[dict[str, Any]]:
    rows = Sync.objects.filter(workspace=workspace).select_related(
        "segment", "destination", "holdout_experiment__primary_metric"
    )
    return [
        {
            "name": sync.name,
            "segment": sync.segment.key,
            "destination": sync.destination.name,
            "mapping": sync.mapping,
            "mode": sync.mode,
            "schedule": sync.schedule,
            "interval_minutes": sync.interval_minutes,
            "enabled": sync.enabled,
            "holdout": _holdout(sync),
        }
        for sync in rows
    ]


def _by_names(workspace: Workspace, item: dict[str, Any], models: dict[str, Any]) -> dict[str, int]:
    """The ids of what an item names ({"segment": Segment, …}, by key or name), or errors by
    path for those this workspace lacks."""
    ids: dict[str, int] = {}
    errors: dict[str, list[str]] = {}
    for field, (model, by) in models.items():
        if field not in item:
            continue
        found = (
            model.objects.filter(workspace=workspace, **{by: item[field]}).first()
            if isinstance(item[field], str)
            else None
        )
        if found is None:
            what = model._meta.verbose_name
            errors[field] = [f"no {what} with the {by} {item[field]!r} in this workspace"]
        else:
            ids[field] = found.pk
    if errors:
        raise ValidationFailed(errors)
    return ids


def _changed(
    item: dict[str, Any], current: dict[str, Any], fields: tuple[str, ...], identity: str
) -> list[str]:
    return [f for f in fields if f != identity and f in item and item[f] != current.get(f)]


def apply_sync(
    workspace: Workspace, item: dict[str, Any], current: dict[str, Any] | None, actor: Any
) -> None:
    config_code.only(item, set(SYNC_FIELDS), {"name", "segment", "destination"})
    ids = _by_names(
        workspace, item, {"segment": (Segment, "key"), "destination": (Destination, "name")}
    )
    data = {**item, **ids}
    if current is None:
        sync_create(workspace=workspace, data=data, actor=actor)
        return
    sync = Sync.objects.select_related("destination", "holdout_experiment").get(
        workspace=workspace, name=item["name"]
    )
    changed = _changed(item, current, SYNC_FIELDS, "name")
    if changed:
        sync_update(sync=sync, data={f: data[f] for f in changed}, actor=actor)


def export_streams(workspace: Workspace) -> list[dict[str, Any]]:
    rows = Stream.objects.filter(workspace=workspace).select_related("source", "destination")
    return [
        {
            "name": stream.name,
            "source": stream.source.name,
            "destination": stream.destination.name,
            "filters": stream.filters,
            "transform": stream.transform,
            "enabled": stream.enabled,
        }
        for stream in rows
    ]


def apply_stream(
    workspace: Workspace, item: dict[str, Any], current: dict[str, Any] | None, actor: Any
) -> None:
    config_code.only(item, set(STREAM_FIELDS), {"name", "source", "destination"})
    ids = _by_names(
        workspace, item, {"source": (Source, "name"), "destination": (Destination, "name")}
    )
    data = {**item, **ids}
    if current is None:
        stream_create(workspace=workspace, data=data, actor=actor)
        return
    stream = Stream.objects.get(workspace=workspace, name=item["name"])
    changed = _changed(item, current, STREAM_FIELDS, "name")
    if changed:
        stream_update(stream=stream, data={f: data[f] for f in changed}, actor=actor)


# ---- rules: segments by key -----------------------------------------------------------------


def _segment_keys(workspace: Workspace) -> dict[int, str]:
    """Segment id -> key, read once per export (rules name segments by key)."""
    return dict(Segment.objects.filter(workspace=workspace).values_list("pk", "key"))


# ---- metrics and experiments ----------------------------------------------------------------

METRIC_FIELDS = (
    "key",
    "name",
    "description",
    "kind",
    "event",
    "property",
    "window_days",
    "winsorize_percentile",
    "higher_is_better",
)
METRIC_REFS = ("primary_metric", "secondary_metrics", "guardrail_metrics")
EXPERIMENT_FIELDS = (
    "key",
    "name",
    "hypothesis",
    "status",
    "variants",
    "coverage",
    "targeting",
    "layer",
    "layer_share",
    "personalised",
    "sequential",
    "cuped",
    "alpha",
    *METRIC_REFS,
)
# the experiments a sync's holdout runs (activation.syncs.services): part of their sync
SYNC_HOLDOUT_KEY = re.compile(r"holdout-sync-\d+(-\d+)?")
# what apply can make of an experiment's status, through experiment_start / experiment_stop;
# a new experiment goes through the same steps in the apply's transaction, so no unit is
# exposed on the way to "stopped"
STEPS: dict[tuple[str, str], tuple[Any, ...]] = {
    (ExperimentStatus.DRAFT, ExperimentStatus.DRAFT): (),
    (ExperimentStatus.DRAFT, ExperimentStatus.RUNNING): (experiment_start,),
    (ExperimentStatus.DRAFT, ExperimentStatus.STOPPED): (experiment_start, experiment_stop),
    (ExperimentStatus.RUNNING, ExperimentStatus.RUNNING): (),
    (ExperimentStatus.RUNNING, ExperimentStatus.STOPPED): (experiment_stop,),
    (ExperimentStatus.STOPPED, ExperimentStatus.STOPPED): (),
    (ExperimentStatus.SHIPPED, ExperimentStatus.SHIPPED): (),
}


def export_metrics(workspace: Workspace) -> list[dict[str, Any]]:
    return [
        {name: getattr(metric, name) for name in METRIC_FIELDS}
        for metric in Metric.objects.filter(workspace=workspace)
    ]


def apply_metric(
    workspace: Workspace, item: dict[str, Any], current: dict[str, Any] | None, actor: Any
) -> None:
    config_code.only(item, set(METRIC_FIELDS), {"key", "name", "kind", "event"})
    if current is None:
        metric_create(workspace=workspace, actor=actor, data=item)
        return
    # the metric library has no update: experiments already judged by a metric must keep it
    raise ValidationFailed(
        {
            name: ["a metric does not change once defined: define a new one with another key"]
            for name in _changed(item, current, METRIC_FIELDS, "key")
        }
    )


def export_experiments(workspace: Workspace) -> list[dict[str, Any]]:
    rows = (
        Experiment.objects.filter(workspace=workspace)
        .select_related("primary_metric")
        .prefetch_related("secondary_metrics", "guardrail_metrics")
    )
    out = []
    keys = _segment_keys(workspace)
    for experiment in rows:
        if SYNC_HOLDOUT_KEY.fullmatch(experiment.key):
            continue
        item = {name: getattr(experiment, name) for name in EXPERIMENT_FIELDS[: -len(METRIC_REFS)]}
        item["targeting"] = rule_with_keys(workspace, experiment.targeting, keys)
        item["primary_metric"] = experiment.primary_metric.key
        for many in METRIC_REFS[1:]:
            item[many] = sorted(m.key for m in getattr(experiment, many).all())
        out.append(item)
    return out


def apply_experiment(
    workspace: Workspace, item: dict[str, Any], current: dict[str, Any] | None, actor: Any
) -> None:
    config_code.only(item, set(EXPERIMENT_FIELDS), {"key", "name", "variants", "primary_metric"})
    if SYNC_HOLDOUT_KEY.fullmatch(item["key"]):
        raise ValidationFailed.at("key", "keys holdout-sync-… are those of syncs' holdouts")
    status = item.get("status", ExperimentStatus.DRAFT)
    was = current["status"] if current else ExperimentStatus.DRAFT
    steps = STEPS.get((was, status))
    if steps is None:
        if status not in ExperimentStatus.values:
            message = f"expected one of {', '.join(ExperimentStatus.values)}"
        elif status == ExperimentStatus.SHIPPED:
            message = "ship an experiment from its results (they choose the winner), not here"
        else:
            message = (
                f"cannot go from {was} to {status}: an experiment goes draft → running → stopped"
            )
        raise ValidationFailed.at("status", message)
    data = {k: v for k, v in item.items() if k != "status"}
    if current is None:
        experiment = experiment_create(workspace=workspace, actor=actor, data=data)
    else:
        experiment = Experiment.objects.get(workspace=workspace, key=item["key"])
        changed = _changed(data, current, EXPERIMENT_FIELDS, "key")
        if changed:
            experiment = experiment_update(
                experiment=experiment, actor=actor, data={f: data[f] for f in changed}
            )
    for step in steps:
        experiment = step(experiment=experiment, actor=actor)


# ---- placements and offers ------------------------------------------------------------------

PLACEMENT_FIELDS = (
    "key",
    "name",
    "description",
    "content_schema",
    "default_content",
    "recommendations_model",
    "recommendations_count",
)
OFFER_FIELDS = (
    "key",
    "placement",
    "name",
    "content",
    "eligibility",
    "starts_at",
    "ends_at",
    "priority",
    "weight",
    "cap_day",
    "cap_week",
    "cap_lifetime",
    "rank_by",
    "enabled",
)


def export_placements(workspace: Workspace) -> list[dict[str, Any]]:
    return [
        {name: getattr(placement, name) for name in PLACEMENT_FIELDS}
        for placement in Placement.objects.filter(workspace=workspace)
    ]


def apply_placement(
    workspace: Workspace, item: dict[str, Any], current: dict[str, Any] | None, actor: Any
) -> None:
    config_code.only(item, set(PLACEMENT_FIELDS), {"key", "name"})
    if current is None:
        placement_create(workspace=workspace, actor=actor, data=item)
        return
    placement = Placement.objects.get(workspace=workspace, key=item["key"])
    changed = _changed(item, current, PLACEMENT_FIELDS, "key")
    if changed:
        placement_update(placement=placement, actor=actor, data={f: item[f] for f in changed})


def _when(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def export_offers(workspace: Workspace) -> list[dict[str, Any]]:
    out = []
    keys = _segment_keys(workspace)
    for offer in Offer.objects.filter(workspace=workspace).select_related("placement"):
        item = {name: getattr(offer, name) for name in OFFER_FIELDS}
        item["placement"] = offer.placement.key
        item["eligibility"] = rule_with_keys(workspace, offer.eligibility, keys)
        item["starts_at"], item["ends_at"] = _when(offer.starts_at), _when(offer.ends_at)
        item["weight"] = float(offer.weight)
        out.append(item)
    return out


def apply_offer(
    workspace: Workspace, item: dict[str, Any], current: dict[str, Any] | None, actor: Any
) -> None:
    config_code.only(item, set(OFFER_FIELDS), {"key", "placement", "name", "content"})
    if current is None:
        offer_create(workspace=workspace, actor=actor, data=item)
        return
    offer = Offer.objects.select_related("placement").get(workspace=workspace, key=item["key"])
    changed = _changed(item, current, OFFER_FIELDS, "key")
    if changed:
        offer_update(offer=offer, actor=actor, data={f: item[f] for f in changed})


def register() -> None:
    for key, order, identity, export, apply in (
        ("destinations", 60, "name", export_destinations, apply_destination),
        ("metrics", 60, "key", export_metrics, apply_metric),
        ("placements", 60, "key", export_placements, apply_placement),
        ("syncs", 70, "name", export_syncs, apply_sync),  # a holdout names its metric
        ("streams", 70, "name", export_streams, apply_stream),
        ("offers", 70, "key", export_offers, apply_offer),
        ("experiments", 80, "key", export_experiments, apply_experiment),
    ):
        config_code.register(
            key=key,
            order=order,
            identity=identity,
            export=export,
            apply=apply,
            stale=stale_destination if key == "destinations" else None,
        )
