"""Deterministic assignment of units (profiles, anonymous visitors) to experiment variants.

A unit's position is sha256(seed + ":" + unit id) read as a number in [0, 1): the same in
every process, on every machine, after every restart — nothing is stored to decide it.
Variants own fixed slices of [0, 1) in proportion to their weights; traffic allocation
(coverage) uses the first `coverage` share of each slice, so ramping 10 % → 50 % only adds
units: nobody already assigned moves (GrowthBook's scheme). Mutually exclusive experiments
share a layer: each takes its own range of the layer's hash, so a unit is in at most one of
them. A global holdout keeps a stable share of units out of every experiment.

The first exposure is recorded (Experiment Viewed) and wins over a later recomputation, so
a visitor who logs in and whose anonymous profile merges keeps the variant it saw."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from hashlib import sha256

SCALE = float(2**64)


def unit_position(seed: str, unit: str) -> float:
    """The unit's place in [0, 1) for this seed."""
    digest = sha256(f"{seed}:{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / SCALE


def variant_ranges(weights: Sequence[float], coverage: float = 1.0) -> list[tuple[float, float]]:
    """Each variant's slice [start, end) of [0, 1): its start fixed by the weights before it,
    its length weight × coverage."""
    if not weights or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError("weights must be non-negative and not all zero")
    if not 0 <= coverage <= 1:
        raise ValueError("coverage is a share between 0 and 1")
    total = float(sum(weights))
    ranges, start = [], 0.0
    for weight in weights:
        share = weight / total
        ranges.append((start, start + share * coverage))
        start += share
    return ranges


def choose_variant(
    seed: str, unit: str, weights: Sequence[float], coverage: float = 1.0
) -> int | None:
    """The variant index of the unit, or None when it falls outside the allocated traffic."""
    position = unit_position(seed, unit)
    for index, (start, end) in enumerate(variant_ranges(weights, coverage)):
        if start <= position < end:
            return index
    return None


def in_holdout(seed: str, unit: str, percent: float) -> bool:
    """Whether the unit is in the global holdout (`percent` of all units, stable)."""
    return unit_position(f"holdout:{seed}", unit) < percent / 100.0


def layer_slot(seed: str, unit: str, ranges: Mapping[str, tuple[float, float]]) -> str | None:
    """The experiment of a layer that owns the unit: each experiment of the layer owns a
    range of the layer's hash, ranges never overlap, so a unit is in at most one."""
    position = unit_position(f"layer:{seed}", unit)
    for key, (start, end) in ranges.items():
        if start <= position < end:
            return key
    return None


def layer_ranges(shares: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    """Consecutive, non-overlapping ranges of a layer for experiments taking these shares
    (each 0–1, together at most 1), in the order given."""
    if any(s < 0 for s in shares.values()) or sum(shares.values()) > 1 + 1e-9:
        raise ValueError("a layer's experiments may take at most all of its traffic together")
    out, start = {}, 0.0
    for key, share in shares.items():
        out[key] = (start, start + share)
        start += share
    return out


def excluded(
    *, workspace_id: int, unit: str, holdout_percent: float, layer: str,
    layer_ranges_of: Mapping[str, tuple[float, float]], experiment_id: int,
) -> str | None:  # fmt: skip
    """Why the workspace's global holdout or the experiment's layer keeps the unit out (None:
    neither does) — the one rule the experiments service and the decision API both apply."""
    if holdout_percent and in_holdout(str(workspace_id), unit, holdout_percent):
        return "in the global holdout"
    if layer:
        owner = layer_slot(f"{workspace_id}:{layer}", unit, layer_ranges_of)
        if owner != str(experiment_id):
            return f"another experiment of layer {layer} has this unit"
    return None
