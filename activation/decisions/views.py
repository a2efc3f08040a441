"""The decisions page: placements with their offers (create, edit, switch off), and the preview
— pick a real profile and a context, see what each placement returns and why. It renders the
API's JSON into the page and acts through the API."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse

from activation.decisions.apis import OfferSerializer, PlacementSerializer
from activation.decisions.models import Offer, Placement
from activation.experiments.models import Experiment, ExperimentStatus
from cdp import pages
from segments.ml.models import MLModel, ModelKind
from segments.rules import nodes


@login_required
def decisions_page(request: HttpRequest) -> HttpResponse:
    workspace = pages.require(request, "decisions.view")
    placements = PlacementSerializer(
        Placement.objects.filter(workspace=workspace).prefetch_related("offers").order_by("key"),
        many=True,
    ).data
    offers = OfferSerializer(
        Offer.objects.filter(workspace=workspace)
        .select_related("placement")
        .order_by("placement__key", "-priority", "key"),
        many=True,
    ).data
    config: dict[str, Any] = {
        "placements": placements,
        "offers": offers,
        "experiments": list(
            Experiment.objects.filter(workspace=workspace)
            .exclude(status=ExperimentStatus.DRAFT)
            .order_by("key")
            .values("key", "name", "status")
        ),
        "recommendation_models": list(
            MLModel.objects.filter(workspace=workspace, kind=ModelKind.RECOMMENDATIONS)
            .order_by("key")
            .values_list("key", flat=True)
        ),
        # how eligibility rules read in the offers table, worded as the segment builder does
        "op_labels": nodes.OP_LABELS,
        # the browser helper the placement's snippet imports
        "decide_js": static("activation/decide.js"),
        "sources_url": reverse("ui-sources"),
        "can_manage": pages.can(request, "decisions.manage"),
        "can_view_profiles": pages.can(request, "profiles.view"),
    }
    return render(request, "activation/decisions/page.html",
                  {"config": config, "placements": placements})  # fmt: skip
