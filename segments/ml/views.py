"""Pages of the ML models: the list (status, progress, champion metrics, drift) and a page
per model (its charts, versions and runs). Both render the API's own JSON into the page and
act through the API (train, cancel, promote), polling it while a run is active."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from cdp import pages
from consent.enforcement import consent_allows
from profiles.models import Profile
from segments.ml import catalog
from segments.ml.features import BASE_FEATURES
from segments.ml.models import SCORE_KINDS, Item, MLModel, ModelKind
from segments.ml.serializers import ModelSerializer, RunSerializer, VersionSerializer

RUN_ROWS = 20


@login_required
def model_list(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "models.view")
    models = MLModel.objects.with_champion().filter(workspace=workspace)
    rows = ModelSerializer(models.order_by("name"), many=True).data
    return render(
        request,
        "segments/models/list.html",
        {
            "models": rows,
            "config": {"models": rows, "can_manage": pages.can(request, "models.manage")},
            "kinds": ModelKind.choices,
            "can_manage": pages.can(request, "models.manage"),
            "section": "models",
        },
    )


@login_required
def model_detail(request: HttpRequest, model_id: int) -> HttpResponse:
    workspace = pages.require(request, "models.view")
    model = pages.found(
        MLModel.objects.with_champion().filter(workspace=workspace, pk=model_id).first(),
        "model",
    )
    config: dict[str, Any] = {
        "model": ModelSerializer(model).data,
        "versions": VersionSerializer(
            model.versions.defer("artefact").order_by("-number"), many=True
        ).data,
        "runs": RunSerializer(
            model.runs.select_related("version").order_by("-created_at")[:RUN_ROWS], many=True
        ).data,
        "can_manage": pages.can(request, "models.manage"),
        "feature_labels": BASE_FEATURES,
        "api": f"/api/v1/models/{model.pk}/",
        # "try it" on a recommendation model's page starts from a profile it scored
        "sample_profile": (
            Profile.objects.filter(
                workspace=workspace, merged_into__isnull=True, computed__has_key=model.key
            )
            .values_list("pk", flat=True)
            .first()
            if model.kind == ModelKind.RECOMMENDATIONS
            else None
        ),
    }
    return render(
        request,
        "segments/models/detail.html",
        {"model": model, "config": config, "section": "models"},
    )


PANEL_ITEMS = 5


def profile_scores(profile: Any) -> list[dict[str, Any]]:
    """What each model of the profile's workspace wrote for it — a score and decile, a
    cluster, recommended items — with the champion version that wrote it (the profile page's
    panel and the profile API)."""
    computed = profile.computed or {}
    updated = computed.get("_updated", {})
    out = []
    models = (
        MLModel.objects.with_champion()
        .select_related("workspace")
        .filter(workspace_id=profile.workspace_id)
    )
    for model in models.order_by("name"):
        if model.key not in computed:
            continue
        value = computed[model.key]
        row: dict[str, Any] = {
            "model": model.pk,
            "key": model.key,
            "name": model.name,
            "kind": model.kind,
            "score": value,
            "version": model.champion.number if model.champion else None,
            "scored_at": updated.get(model.key),
        }
        if model.kind in SCORE_KINDS:
            row["decile"] = computed.get(model.decile_key)
        elif model.kind == ModelKind.CLUSTERS:
            row["cluster"] = model.cluster_labels().get(str(value), str(value))
        elif model.kind == ModelKind.RECOMMENDATIONS and isinstance(value, list):
            names = dict(
                Item.objects.filter(
                    workspace_id=profile.workspace_id, item_id__in=value[:PANEL_ITEMS]
                ).values_list("item_id", "name")
            )
            row["items"] = [
                {"item_id": item, "name": names.get(item) or item} for item in value[:PANEL_ITEMS]
            ]
            # scoring gave the most popular items to a profile without personalisation consent
            row["personal"] = consent_allows(
                workspace_id=profile.workspace_id, profile_id=profile.pk,
                purpose=catalog.personal_purpose(model.workspace),
            )  # fmt: skip
        out.append(row)
    return out


def profile_panel(request: HttpRequest, workspace: Any, profile: Any) -> dict[str, Any]:
    scores = profile_scores(profile)
    return {
        "scores": scores,
        "probabilities": [s for s in scores if s["kind"] in SCORE_KINDS],
        "clusters": [s for s in scores if s["kind"] == ModelKind.CLUSTERS],
        "recommendations": [s for s in scores if s["kind"] == ModelKind.RECOMMENDATIONS],
    }
