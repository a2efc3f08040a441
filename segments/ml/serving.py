"""Recommendations on request: a person's top items folded in from their newest events (so
someone the model never saw, or who did something a minute ago, gets a fresh answer), and
an item's similar items. The champion's artefact is loaded once per process and version.

The profile API and the decision API read these; the profile page shows the stored top-N
the last scoring wrote."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from consent.enforcement import consent_allows
from segments.ml import catalog, propensity, recommend
from segments.ml.models import Item, MLModel, ModelKind, ModelVersion

CACHE_SIZE = 8
MAX_N = 100
_cache: dict[int, tuple[str, recommend.RecModel]] = {}
_lock = threading.Lock()


class NoRecommendations(Exception):
    """The workspace has no trained recommendation model (or not the one asked for)."""


def recommendation_model(workspace_id: int, key: str | None = None) -> MLModel:
    models = (
        MLModel.objects.with_champion()
        .select_related("workspace")
        .filter(workspace_id=workspace_id, kind=ModelKind.RECOMMENDATIONS, champion__isnull=False)
    )
    if key:
        models = models.filter(key=key)
    model = models.order_by("key").first()
    if model is None:
        raise NoRecommendations(
            f"no trained recommendation model {key!r}" if key
            else "no recommendation model has been trained yet"
        )  # fmt: skip
    return model


def artefact(version: ModelVersion) -> recommend.RecModel:
    """The version's fitted model, from the process cache when it was loaded before."""
    with _lock:
        cached = _cache.get(version.pk)
    if cached is not None and cached[0] == version.artefact_sha256:
        return cached[1]
    loaded = propensity.load(
        bytes(version.artefact), sha256=version.artefact_sha256, names=version.feature_names
    )
    with _lock:
        if len(_cache) >= CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[version.pk] = (version.artefact_sha256, loaded)
    return loaded  # type: ignore[no-any-return]


@dataclass
class Recommendations:
    items: list[dict[str, Any]]
    source: str  # personalised | popular
    reason: str
    model: str
    version: int
    milliseconds: float


def _describe(workspace_id: int, ranked: list[tuple[str, float]]) -> list[dict[str, Any]]:
    found = {
        i.item_id: i
        for i in Item.objects.filter(workspace_id=workspace_id, item_id__in=[r[0] for r in ranked])
    }
    out = []
    for item_id, score in ranked:
        item = found.get(item_id)
        out.append({
            "item_id": item_id, "score": round(float(score), 5),
            "name": item.name if item else "", "category": item.category if item else "",
            "price": item.price if item else None,
        })  # fmt: skip
    return out


def recommendations_for(
    *, workspace_id: int, profile_id: int, n: int = 10, key: str | None = None
) -> Recommendations:
    """Top `n` items for a profile from its newest events, never one it bought (or, with
    the model's `exclude: interacted`, saw) nor one marked unavailable; the most popular
    items when it does not allow personalisation or has no history the model knows."""
    started = time.perf_counter()
    model = recommendation_model(workspace_id, key)
    version = model.champion
    assert version is not None
    fitted = artefact(version)
    n = max(1, min(n, MAX_N))
    signals = catalog.Signals.from_config(version.feature_spec)
    allowed = consent_allows(
        workspace_id=workspace_id, profile_id=profile_id,
        purpose=catalog.personal_purpose(model.workspace),
    )  # fmt: skip
    strengths, bought = catalog.recent_items(
        workspace_id=workspace_id, profile_id=profile_id, signals=signals
    )
    mode = fitted.settings.get("exclude", "purchased")
    hidden = {"purchased": bought, "interacted": set(strengths), "none": set()}.get(mode, bought)
    off = hidden | catalog.unavailable(workspace_id)
    exclude = {fitted.index[i] for i in off if i in fitted.index}
    known = any(i in fitted.index for i in strengths)
    if allowed and known:
        scores, source = fitted.fold_in(strengths), "personalised"
        reason = f"from {len(strengths)} recent items with {fitted.algorithm}"
    else:
        scores, source = fitted.popularity.astype(np.float64), "popular"
        reason = (
            "no personalisation consent: the most popular items"
            if not allowed
            else "no history the model knows yet: the most popular items"
        )
    top = fitted.top(scores, n, exclude)
    ranked = [(fitted.item_ids[i], float(scores[i])) for i in top]
    return Recommendations(
        items=_describe(workspace_id, ranked), source=source, reason=reason, model=model.key,
        version=version.number, milliseconds=round((time.perf_counter() - started) * 1000, 3),
    )  # fmt: skip


def similar_to(
    *, workspace_id: int, item_id: str, n: int = 10, key: str | None = None
) -> list[dict[str, Any]]:
    """The items most like `item_id` (cosine neighbours, or by attributes for an item
    nobody has interacted with yet), available ones only."""
    model = recommendation_model(workspace_id, key)
    assert model.champion is not None
    fitted = artefact(model.champion)
    off = catalog.unavailable(workspace_id)
    ranked = [(i, s) for i, s in fitted.similar.get(item_id, []) if i not in off]
    if not ranked and item_id not in fitted.similar:
        attrs = catalog.attributes(workspace_id)
        if item_id in attrs:
            rank = {item: float(fitted.popularity[i]) for item, i in fitted.index.items()}
            ranked = [
                (i, s)
                for i, s in recommend.content_neighbours(
                    item_id, attrs[item_id], attrs, rank, recommend.SIMILAR
                )
                if i not in off
            ]
    return _describe(workspace_id, ranked[: max(1, min(n, MAX_N))])
