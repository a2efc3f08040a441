"""The decision itself, in memory: given the workspace's configuration, one visitor's record
(or what an unknown visitor sent) and the request, which offer each placement shows and why,
which variant of each experiment, which items to recommend. No database access: the view
reads the record and writes the new exposures.

Offers' eligibility rules run through the segment rule language's evaluator
(`segments.rules.evaluate`), the reference semantics the SQL compiler is tested against, so an
offer targeting "the people of this segment's rule" picks the same people the segment does."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from activation.decisions.config import Config, ExperimentConf, OfferConf, PlacementConf
from activation.experiments import bucketing
from consent.enforcement import consent_allowed
from segments.rules import nodes as n
from segments.rules.evaluate import ProfileFacts, evaluate

DAY = 86_400.0


@dataclass(slots=True)
class Visitor:
    profile_id: int | None  # None: nobody we know yet
    unit: str  # the bucketing unit: the profile id, else the anonymous (or user) id
    facts: ProfileFacts
    exposures: Mapping[str, str] = field(default_factory=dict)  # experiment id -> variant
    caps: Mapping[str, Any] = field(default_factory=dict)  # offer id -> {"n", "t"}


@dataclass(slots=True)
class Ask:
    placements: list[str] | None  # None: every placement
    experiments: list[str]
    explain: bool = False
    browser: bool = False


@dataclass(slots=True)
class NewExposure:
    experiment: ExperimentConf
    variant: dict[str, Any]


@dataclass(slots=True)
class Decision:
    body: dict[str, Any]
    exposures: list[NewExposure] = field(default_factory=list)


def personalised(config: Config, visitor: Visitor) -> bool:
    """Whether this visitor may be personalised (the workspace's personalisation purpose)."""
    purpose = config.personal_purpose
    return consent_allowed(
        visitor.facts.consents.get(purpose), config.purpose_defaults.get(purpose)
    )


def decide(
    config: Config,
    visitor: Visitor,
    ask: Ask,
    now: datetime,
    *,
    sql_targeted: Callable[[ExperimentConf], bool] | None = None,
) -> Decision:
    known = visitor.profile_id is not None
    allowed = known and personalised(config, visitor)
    decision = Decision(
        body={
            "profile_id": visitor.profile_id,
            "traits": _traits(config, visitor, ask) if known else {},
            "segments": _segments(config, visitor) if known else [],
            "experiments": {},
            "placements": {},
            "recommendations": {},
            "degraded": False,
        }
    )
    explain: dict[str, Any] = {"placements": {}, "experiments": {}}
    for key in ask.experiments:
        answer, why = _experiment(config, visitor, key, now, allowed, sql_targeted, decision)
        decision.body["experiments"][key] = answer
        explain["experiments"][key] = why
    wanted = list(config.placements) if ask.placements is None else ask.placements
    for key in wanted:
        outcomes: list[dict[str, Any]] = []
        placement = config.placements.get(key)
        if placement is None:
            decision.body["placements"][key] = {
                "offer": None, "content": None, "reason": "unknown placement"
            }  # fmt: skip
            continue
        if not known:
            chosen, reason = None, "default: unknown visitor"
        elif not allowed:
            chosen, reason = None, "default: no personalisation consent"
        else:
            chosen, outcomes = choose_offer(placement, visitor, now, config.segment_keys)
            reason = (
                f"offer {chosen.key}: eligible, priority {chosen.priority}"
                if chosen
                else "default: no eligible offer"
            )
        decision.body["placements"][key] = {
            "offer": chosen.key if chosen else None,
            "content": chosen.content if chosen else placement.default,
            "reason": reason,
        }
        explain["placements"][key] = outcomes
        if placement.recommendations_model and placement.recommendations_count:
            decision.body["recommendations"][key] = recommend(config, placement, visitor, allowed)
    if ask.explain:
        decision.body["explain"] = explain
    return decision


def default_answer(config: Config | None, ask: Ask, reason: str) -> dict[str, Any]:
    """Every placement's default and no experiment: the answer when the store cannot be
    read (degraded) — from the cached configuration when this process has one."""
    placements: dict[str, Any] = {}
    known = config.placements if config else {}
    for key in list(known) if ask.placements is None else ask.placements:
        placement = known.get(key)
        placements[key] = {
            "offer": None,
            "content": placement.default if placement else None,
            "reason": reason,
        }
    return {
        "profile_id": None,
        "traits": {},
        "segments": [],
        "experiments": {
            k: {"variant": None, "payload": None, "reason": reason} for k in ask.experiments
        },
        "placements": placements,
        "recommendations": {},
        "degraded": True,
    }


def recommend(
    config: Config, placement: PlacementConf, visitor: Visitor, allowed: bool
) -> list[str]:
    """Item ids for the placement: the visitor's own (the model's scoring wrote them to the
    computed trait named after it) when it may be personalised, else the most popular."""
    count = placement.recommendations_count
    own = visitor.facts.computed.get(placement.recommendations_model) if allowed else None
    if isinstance(own, list) and own:
        return [str(i) for i in own][:count]
    return config.popular.get(placement.recommendations_model, [])[:count]


# ---- traits and segments --------------------------------------------------------------------


def _traits(config: Config, visitor: Visitor, ask: Ask) -> dict[str, Any]:
    allow = config.browser_traits if ask.browser else config.server_traits
    values = {**visitor.facts.traits, **visitor.facts.computed}
    if allow is None:
        return values
    return {k: v for k, v in values.items() if k in allow}


def _segments(config: Config, visitor: Visitor) -> list[str]:
    keys = config.segment_keys
    return sorted(k for k in (keys.get(s) for s in visitor.facts.segments) if k is not None)


# ---- offers ---------------------------------------------------------------------------------


def choose_offer(
    placement: PlacementConf,
    visitor: Visitor,
    now: datetime,
    segment_keys: Mapping[int, str | None] | None = None,
) -> tuple[OfferConf | None, list[dict[str, Any]]]:
    """The offer the placement shows this visitor (None: its default) and every offer's
    outcome: chosen, outranked, disabled, not started, ended, capped or not eligible (with the
    path of the condition that failed)."""
    outcomes: list[dict[str, Any]] = []
    candidates: list[OfferConf] = []
    for offer in placement.offers:
        outcome = _offer_outcome(offer, visitor, now, segment_keys or {})
        outcomes.append({"offer": offer.key, **outcome})
        if outcome["outcome"] == "eligible":
            candidates.append(offer)
    chosen = _rank(candidates, placement.key, visitor)
    for entry in outcomes:
        if chosen is not None and entry["offer"] == chosen.key:
            entry["outcome"] = "chosen"
        elif entry["outcome"] == "eligible":
            entry["outcome"] = "outranked"
    return chosen, outcomes


def _offer_outcome(
    offer: OfferConf, visitor: Visitor, now: datetime, segment_keys: Mapping[int, str | None]
) -> dict[str, Any]:
    if not offer.enabled:
        return {"outcome": "disabled"}
    if offer.starts_at is not None and now < offer.starts_at:
        return {"outcome": "not started", "detail": f"starts {offer.starts_at.isoformat()}"}
    if offer.ends_at is not None and now >= offer.ends_at:
        return {"outcome": "ended", "detail": f"ended {offer.ends_at.isoformat()}"}
    capped = cap_reached(offer, visitor.caps.get(str(offer.id)), now.timestamp())
    if capped:
        return {"outcome": "capped", "detail": capped}
    if offer.rule is not None and not evaluate(offer.rule, profile=visitor.facts, events=[],
                                               now=now):  # fmt: skip
        failed = first_failure(offer.rule, visitor.facts, now, "eligibility", segment_keys)
        return {"outcome": "not eligible", "path": failed[0], "detail": failed[1]}
    return {"outcome": "eligible"}


def cap_reached(offer: OfferConf, seen: Any, now: float) -> str | None:
    """Which frequency cap the visitor's impressions of the offer reached, if any."""
    if not seen:
        return None
    times = [float(t) for t in seen.get("t", [])]
    checks = (
        (offer.cap_day, sum(t > now - DAY for t in times), "a day"),
        (offer.cap_week, sum(t > now - 7 * DAY for t in times), "a week"),
        (offer.cap_lifetime, int(seen.get("n", 0)), "ever"),
    )
    for cap, count, per in checks:
        if cap is not None and count >= cap:
            return f"seen {count} times, at most {cap} {per}"
    return None


def _rank(candidates: list[OfferConf], placement: str, visitor: Visitor) -> OfferConf | None:
    """The highest priority; among equals the highest model score (`rank_by`); among those a
    weighted draw, stable for the visitor."""
    if not candidates:
        return None
    top = max(o.priority for o in candidates)
    best = [o for o in candidates if o.priority == top]
    if any(o.rank_by for o in best):
        scores = {o.id: _score(visitor, o.rank_by) for o in best}
        high = max(scores.values())
        best = [o for o in best if scores[o.id] == high]
    if len(best) == 1:
        return best[0]
    total = sum(max(o.weight, 0.0) for o in best)
    if total <= 0:
        return best[0]
    position = bucketing.unit_position(f"offers:{placement}", visitor.unit) * total
    for offer in best:
        position -= max(offer.weight, 0.0)
        if position < 0:
            return offer
    return best[-1]


def _score(visitor: Visitor, key: str) -> float:
    value = visitor.facts.computed.get(key) if key else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else -1.0


def first_failure(
    node: n.Node,
    facts: ProfileFacts,
    now: datetime,
    path: str,
    segment_keys: Mapping[int, str | None] | None = None,
) -> tuple[str, str]:
    """The path (as rule errors name it) of the condition that made `node` false, and what
    it asked."""
    if isinstance(node, n.All):
        for i, child in enumerate(node.children):
            if not evaluate(child, profile=facts, events=[], now=now):
                return first_failure(child, facts, now, f"{path}.all[{i}]", segment_keys)
    if isinstance(node, n.AnyOf):
        return path, f"none of its {len(node.children)} conditions holds"
    if isinstance(node, n.Not):
        return path, "the condition it negates holds"
    return path, describe(node, segment_keys or {})


def describe(node: n.Node, segment_keys: Mapping[int, str | None]) -> str:
    if isinstance(node, n.TraitCondition):
        return f"{'.'.join(node.ref.keys)} {n.OP_LABELS[node.comparison.op]} {_value(node)}"
    if isinstance(node, n.ContextCondition):
        return f"context {'.'.join(node.path)} {n.OP_LABELS[node.comparison.op]} {_value(node)}"
    if isinstance(node, n.SegmentCondition):
        return f"in segment {segment_keys.get(node.segment_id) or node.segment_id}"
    if isinstance(node, n.ConsentCondition):
        return f"consent to {node.purpose} {node.status}"
    if isinstance(node, n.RandomBucket):
        return f"in the random {node.percent:g} %"
    return type(node).__name__


def _value(node: n.TraitCondition | n.ContextCondition) -> str:
    value = node.comparison.value
    return "" if value is None else repr(value)


# ---- experiments ----------------------------------------------------------------------------


def _experiment(
    config: Config,
    visitor: Visitor,
    key: str,
    now: datetime,
    allowed: bool,
    sql_targeted: Callable[[ExperimentConf], bool] | None,
    decision: Decision,
) -> tuple[dict[str, Any], str]:
    experiment = config.experiments.get(key)
    if experiment is None:
        return {"variant": None, "payload": None}, "unknown experiment"
    if experiment.status == "shipped":
        return _variant_answer(experiment, experiment.winner), "shipped"
    seen = visitor.exposures.get(str(experiment.id))
    if seen is not None:
        return _variant_answer(experiment, seen), "exposed before"
    if experiment.status != "running":
        return {"variant": None, "payload": None}, f"experiment {experiment.status}"
    why = _ineligible(config, experiment, visitor, now, sql_targeted)
    if (
        why is None
        and experiment.personalised
        and not (allowed if visitor.profile_id is not None else personalised(config, visitor))
    ):
        why = "no personalisation consent"
    if why is not None:
        return {"variant": None, "payload": None}, why
    index = bucketing.choose_variant(
        experiment.seed, visitor.unit, experiment.weights, experiment.coverage
    )
    if index is None:
        return {"variant": None, "payload": None}, "outside the allocated traffic"
    variant = experiment.variants[index]
    decision.exposures.append(NewExposure(experiment, variant))
    return _variant_answer(experiment, str(variant["key"])), "assigned"


def _variant_answer(experiment: ExperimentConf, key: str) -> dict[str, Any]:
    found = next((v for v in experiment.variants if v["key"] == key), None)
    return {"variant": key, "payload": found.get("payload") if found else None}


def _ineligible(
    config: Config,
    experiment: ExperimentConf,
    visitor: Visitor,
    now: datetime,
    sql_targeted: Callable[[ExperimentConf], bool] | None,
) -> str | None:
    """Why the visitor may not enter (None: it may) — the experiments service's rules
    (global holdout, layer, targeting), on the record instead of the database."""
    why = bucketing.excluded(
        workspace_id=config.workspace_id, unit=visitor.unit,
        holdout_percent=config.holdout_percent, layer=experiment.layer,
        layer_ranges_of=config.layers.get(experiment.layer, {}), experiment_id=experiment.id,
    )  # fmt: skip
    if why is not None:
        return why
    if experiment.targeting is not None:
        if experiment.targeting_reads_events:
            targeted = (
                visitor.profile_id is not None
                and sql_targeted is not None
                and sql_targeted(experiment)
            )
        else:
            targeted = evaluate(experiment.targeting, profile=visitor.facts, events=[], now=now)
        if not targeted:
            return "not targeted"
    return None
