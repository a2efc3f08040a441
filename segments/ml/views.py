"""Pages of the ML models: the list (status, progress, champion metrics, drift) and a page
per model (its charts, versions and runs). Both render the API's own JSON into the page and
act through the API (train, cancel, promote), polling it while a run is active."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from cdp import pages
from segments.ml.features import BASE_FEATURES
from segments.ml.models import MLModel, ModelKind
from segments.ml.serializers import ModelSerializer, RunSerializer, VersionSerializer

RUN_ROWS = 20


@login_required
def model_list(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "models.view")
    models = MLModel.objects.filter(workspace=workspace).select_related("champion")
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
        MLModel.objects.select_related("champion").filter(workspace=workspace, pk=model_id).first(),
        "model",
    )
    config: dict[str, Any] = {
        "model": ModelSerializer(model).data,
        "versions": VersionSerializer(model.versions.order_by("-number"), many=True).data,
        "runs": RunSerializer(
            model.runs.select_related("version").order_by("-created_at")[:RUN_ROWS], many=True
        ).data,
        "can_manage": pages.can(request, "models.manage"),
        "feature_labels": BASE_FEATURES,
        "api": f"/api/v1/models/{model.pk}/",
    }
    return render(
        request,
        "segments/models/detail.html",
        {"model": model, "config": config, "section": "models"},
    )


def profile_scores(profile: Any) -> list[dict[str, Any]]:
    """The profile's scores from each model of its workspace that has scored it, with the
    champion version that wrote them (the profile page's panel and the profile API)."""
    computed = profile.computed or {}
    updated = computed.get("_updated", {})
    out = []
    models = MLModel.objects.filter(workspace_id=profile.workspace_id).select_related("champion")
    for model in models.order_by("name"):
        if model.key not in computed:
            continue
        out.append(
            {
                "model": model.pk,
                "key": model.key,
                "name": model.name,
                "kind": model.kind,
                "score": computed[model.key],
                "decile": computed.get(model.decile_key),
                "version": model.champion.number if model.champion else None,
                "scored_at": updated.get(model.key),
            }
        )
    return out


def profile_panel(request: HttpRequest, workspace: Any, profile: Any) -> dict[str, Any]:
    return {"scores": profile_scores(profile)}
