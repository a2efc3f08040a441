"""Pages of experiments: the list (with the metric library and a form for a new experiment)
and an experiment's results. Both render the API's JSON into the page and act through the
API."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from activation.experiments.models import Experiment, Metric, MetricKind
from activation.experiments.serializers import (
    ExperimentSerializer,
    MetricSerializer,
    exposure_counts,
)
from cdp import pages


@login_required
def experiment_list(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "experiments.view")
    experiments = list(
        Experiment.objects.filter(workspace=workspace)
        .select_related("primary_metric")
        .prefetch_related("secondary_metrics", "guardrail_metrics")
        .order_by("-created_at")
    )
    counts = exposure_counts([e.pk for e in experiments])
    rows = ExperimentSerializer(experiments, many=True, context={"exposures": counts}).data
    library = MetricSerializer(Metric.objects.filter(workspace=workspace).order_by("key"),
                               many=True).data  # fmt: skip
    config: dict[str, Any] = {
        "experiments": rows,
        "metrics": library,
        "kinds": MetricKind.choices,
        "can_manage": pages.can(request, "experiments.manage"),
    }
    return render(request, "activation/experiments/list.html",
                  {"experiments": rows, "metrics": library, "config": config,
                   "can_manage": config["can_manage"]})  # fmt: skip


@login_required
def experiment_detail(request: HttpRequest, experiment_id: int) -> HttpResponse:
    workspace = pages.require(request, "experiments.view")
    experiment = pages.found(
        Experiment.objects.filter(workspace=workspace, pk=experiment_id).first(), "experiment"
    )
    config = {
        "experiment": ExperimentSerializer(experiment).data,
        "api": f"/api/v1/experiments/{experiment.pk}/",
        "can_manage": pages.can(request, "experiments.manage"),
    }
    return render(request, "activation/experiments/detail.html",
                  {"experiment": experiment, "config": config})  # fmt: skip
