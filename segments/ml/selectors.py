"""Reads of the model registry that other parts of the segments app need (rule context,
builder suggestions)."""

from __future__ import annotations

from typing import Any

from cdp.models import Workspace
from segments.ml.models import MLModel, ModelKind, VersionStatus
from segments.models import Segment


def cluster_labels_ever(model: MLModel) -> dict[str, str]:
    """label -> display name of every cluster any version made, the champion's first (a
    label no longer made says so: rules keep parsing, nobody is in it)."""
    current = model.cluster_labels()
    out = dict(current)
    # only the clusters of each version's charts (not its scatter and curves): this runs for
    # every rule checked, the builder's previews included
    for described in model.versions.exclude(status=VersionStatus.CHAMPION).values_list(
        "charts__clusters", flat=True
    ):
        for cluster in described or []:
            label = cluster["label"]
            if label not in out:
                name = model.cluster_names.get(label) or cluster["description"].capitalize()
                out[label] = f"{name} (no longer made)"
    return out


def cluster_models(*, workspace: Workspace) -> list[dict[str, Any]]:
    """The builder's cluster condition: each clusters model with a champion, its clusters
    (label, name, size) largest first."""
    out = []
    models = MLModel.objects.with_champion().filter(
        workspace=workspace, kind=ModelKind.CLUSTERS, champion__isnull=False
    )
    for model in models.order_by("name"):
        names = model.cluster_labels()
        assert model.champion is not None
        out.append(
            {
                "key": model.key,
                "name": model.name,
                "clusters": [
                    {"label": c["label"], "name": names[c["label"]], "size": c["size"],
                     "description": c["description"]}
                    for c in model.champion.charts.get("clusters", [])
                ],
            }
        )  # fmt: skip
    return out


def segments_using(model: MLModel) -> list[Segment]:
    """Segments whose live or draft rule reads the model's output: a cluster condition on
    it, or a trait condition on one of its traits."""
    keys = set(model.trait_keys)
    found = []
    segments = Segment.objects.filter(workspace_id=model.workspace_id)
    for segment in segments.select_related("published_version", "draft_version"):
        versions = (segment.published_version, segment.draft_version)
        if any(v is not None and _reads(v.rule, model.key, keys) for v in versions):
            found.append(segment)
    return found


def _reads(rule: Any, key: str, traits: set[str]) -> bool:
    stack = [rule]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("model") == key:
                return True
            trait = node.get("trait")
            if isinstance(trait, str) and trait.split(".")[0] in traits:
                return True
            stack.extend(v for k, v in node.items() if k in ("all", "any", "not"))
    return False
