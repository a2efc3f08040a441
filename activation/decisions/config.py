"""What every decision of a workspace needs besides the profile — placements with their
offers (rules parsed), running experiments, segment keys, consent purposes, the decision
settings — loaded once per process and kept until the workspace's version moves (every
change bumps it; the fast path reads the version in the same statement as the record) or
`MAX_AGE` passes."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from activation.decisions import version
from activation.decisions.models import DecisionState, Offer, Placement
from activation.experiments import bucketing
from activation.experiments.models import Experiment, ExperimentStatus
from activation.experiments.services import DEFAULT_PERSONAL_PURPOSE
from cdp.models import Workspace
from consent.models import Purpose
from segments.ml.models import Item
from segments.models import Segment, SegmentStatus
from segments.rules import nodes as n
from segments.rules.validate import parse_rule
from segments.services import rule_context

MAX_AGE = 60.0  # seconds: a safety net under the version check
POPULAR_ITEMS = 50


@dataclass(frozen=True, slots=True)
class OfferConf:
    id: int
    key: str
    name: str
    placement: str
    content: Any
    rule: n.Node | None
    enabled: bool
    starts_at: datetime | None
    ends_at: datetime | None
    priority: int
    weight: float
    cap_day: int | None
    cap_week: int | None
    cap_lifetime: int | None
    rank_by: str


@dataclass(frozen=True, slots=True)
class PlacementConf:
    key: str
    name: str
    default: Any
    recommendations_model: str
    recommendations_count: int
    offers: tuple[OfferConf, ...]  # by priority, highest first


@dataclass(frozen=True, slots=True)
class ExperimentConf:
    id: int
    key: str
    name: str
    seed: str
    status: str
    variants: tuple[dict[str, Any], ...]
    weights: tuple[float, ...]
    coverage: float
    targeting: n.Node | None
    targeting_reads_events: bool  # then checked in SQL (the record holds no events)
    layer: str
    personalised: bool
    winner: str


@dataclass(slots=True)
class Config:
    workspace_id: int
    version: int
    loaded_at: float
    placements: dict[str, PlacementConf] = field(default_factory=dict)
    experiments: dict[str, ExperimentConf] = field(default_factory=dict)
    layers: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    segment_keys: dict[int, str | None] = field(default_factory=dict)  # None: not published
    purpose_defaults: dict[str, bool] = field(default_factory=dict)
    personal_purpose: str = DEFAULT_PERSONAL_PURPOSE
    holdout_percent: float = 0.0
    server_traits: frozenset[str] | None = None  # None: every trait
    browser_traits: frozenset[str] = frozenset()
    popular: dict[str, list[str]] = field(default_factory=dict)  # model key -> item ids
    items: dict[str, dict[str, Any]] = field(default_factory=dict)  # item id -> description


def cached(workspace_id: int) -> Config | None:
    found: Config | None = version.cache.get(workspace_id)
    return found


def current(workspace_id: int, at_version: int | None) -> Config:
    """The workspace's configuration at `at_version` (None: whatever is cached unless old)."""
    found = cached(workspace_id)
    if found is not None and time.monotonic() - found.loaded_at < MAX_AGE:
        if at_version is None or found.version == at_version:
            return found
    loaded = load(workspace_id)
    with version.lock:
        version.cache[workspace_id] = loaded
    return loaded


def version_of(workspace_id: int) -> int:
    found = DecisionState.objects.filter(workspace_id=workspace_id).first()
    return found.version if found else 0


def _reads_events(node: n.Node | None) -> bool:
    if node is None:
        return False
    if isinstance(node, n.EventCondition):
        return True
    if isinstance(node, n.All | n.AnyOf):
        return any(_reads_events(c) for c in node.children)
    if isinstance(node, n.Not):
        return _reads_events(node.child)
    return False


def decision_rule_context(workspace: Workspace) -> Any:
    return dataclasses.replace(rule_context(workspace), decision_time=True)


def load(workspace_id: int) -> Config:
    workspace = Workspace.objects.get(pk=workspace_id)
    settings = workspace.settings or {}
    config = Config(
        workspace_id=workspace_id,
        version=version_of(workspace_id),
        loaded_at=time.monotonic(),
        personal_purpose=str(settings.get("personalization_purpose") or DEFAULT_PERSONAL_PURPOSE),
        holdout_percent=float(settings.get("experiments_holdout_percent") or 0),
        server_traits=(
            frozenset(settings["decide_traits"])
            if isinstance(settings.get("decide_traits"), list)
            else None
        ),
        browser_traits=frozenset(settings.get("decide_browser_traits") or ()),
    )
    context = decision_rule_context(workspace)
    offers: dict[int, list[OfferConf]] = {}
    for offer in Offer.objects.filter(workspace_id=workspace_id).order_by("-priority", "id"):
        rule = parse_rule(offer.eligibility, context) if offer.eligibility is not None else None
        offers.setdefault(offer.placement_id, []).append(
            OfferConf(
                id=offer.pk,
                key=offer.key,
                name=offer.name,
                placement="",
                content=offer.content,
                rule=rule,
                enabled=offer.enabled,
                starts_at=offer.starts_at,
                ends_at=offer.ends_at,
                priority=offer.priority,
                weight=offer.weight,
                cap_day=offer.cap_day,
                cap_week=offer.cap_week,
                cap_lifetime=offer.cap_lifetime,
                rank_by=offer.rank_by,
            )  # fmt: skip
        )
    for placement in Placement.objects.filter(workspace_id=workspace_id).order_by("key"):
        config.placements[placement.key] = PlacementConf(
            key=placement.key,
            name=placement.name,
            default=placement.default_content,
            recommendations_model=placement.recommendations_model,
            recommendations_count=placement.recommendations_count,
            offers=tuple(
                dataclasses.replace(o, placement=placement.key)
                for o in offers.get(placement.pk, [])
            ),
        )
        if placement.recommendations_model:
            config.popular[placement.recommendations_model] = list(
                Item.objects.filter(workspace_id=workspace_id, available=True)
                .order_by("-interactions", "item_id")
                .values_list("item_id", flat=True)[:POPULAR_ITEMS]
            )
    plain = rule_context(workspace)
    running = []
    for experiment in Experiment.objects.filter(workspace_id=workspace_id).exclude(
        status=ExperimentStatus.DRAFT
    ):
        targeting = (
            parse_rule(experiment.targeting, plain) if experiment.targeting is not None else None
        )
        config.experiments[experiment.key] = ExperimentConf(
            id=experiment.pk, key=experiment.key, name=experiment.name, seed=experiment.seed,
            status=experiment.status, variants=tuple(experiment.variants),
            weights=tuple(experiment.weights), coverage=experiment.coverage,
            targeting=targeting, targeting_reads_events=_reads_events(targeting),
            layer=experiment.layer, personalised=experiment.personalised,
            winner=experiment.winner,
        )  # fmt: skip
        if experiment.status == ExperimentStatus.RUNNING and experiment.layer:
            running.append(experiment)
    # each layer's ranges, as the experiments service computes them
    shares: dict[str, dict[str, float]] = {}
    for experiment in sorted(running, key=lambda e: (e.created_at, e.pk)):
        shares.setdefault(experiment.layer, {})[str(experiment.pk)] = min(
            1.0, experiment.layer_share
        )
    config.layers = {layer: bucketing.layer_ranges(s) for layer, s in shares.items()}
    config.segment_keys = dict(
        Segment.objects.filter(workspace_id=workspace_id, status=SegmentStatus.PUBLISHED)
        .values_list("pk", "key")
    )  # fmt: skip
    config.purpose_defaults = dict(
        Purpose.objects.filter(workspace_id=workspace_id).values_list("key", "default_granted")
    )
    return config


def learn_segments(config: Config, segment_ids: Any) -> None:
    """Keys of segments published since the configuration was loaded (one query, only when a
    profile is in one the cache does not know)."""
    missing = [int(s) for s in segment_ids if int(s) not in config.segment_keys]
    if not missing:
        return
    found = dict(
        Segment.objects.filter(
            workspace_id=config.workspace_id, pk__in=missing, status=SegmentStatus.PUBLISHED
        ).values_list("pk", "key")
    )
    for segment_id in missing:
        config.segment_keys[segment_id] = found.get(segment_id)


def describe_items(config: Config, item_ids: list[str]) -> list[dict[str, Any]]:
    """Items as the answer lists them, from the process's cache (misses read in one query)."""
    missing = [i for i in item_ids if i not in config.items]
    if missing:
        if len(config.items) > 50_000:
            config.items.clear()
        for item in Item.objects.filter(workspace_id=config.workspace_id, item_id__in=missing):
            config.items[item.item_id] = {
                "id": item.item_id, "name": item.name, "category": item.category,
                "price": item.price, "available": item.available,
            }  # fmt: skip
    return [config.items[i] for i in item_ids if i in config.items]
