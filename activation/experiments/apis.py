"""The experiments API: `metrics/` (the metric library), `experiments/` (define, change,
`{id}/start/`, `{id}/stop/`, `{id}/ship/`, `{id}/results/`, `{id}/assign/`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from activation.experiments import analysis, services, stats
from activation.experiments.models import Experiment, Metric
from activation.experiments.serializers import (
    AssignSerializer,
    ExperimentSerializer,
    ExperimentWriteSerializer,
    MetricSerializer,
    ShipSerializer,
    exposure_counts,
)
from cdp.errors import ErrorDoc, NotFound, ValidationFailed, document_errors
from cdp.pagination import Pagination
from cdp.params import is_id
from cdp.views_support import CapabilityMixin
from profiles.models import Profile

document_errors(
    ErrorDoc("sample_ratio_mismatch", 409,
             "shipping while the units per variant do not match the weights (without force)",
             '{"units": {variant: n}, "p_value": p}'),
    ErrorDoc("experiment_state", 409,
             "starting, stopping or shipping an experiment in a state that does not allow it"),
)  # fmt: skip


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ValidationFailed.at("non_field_errors", "expected a JSON object")
    return dict(request.data)


class MetricViewSet(CapabilityMixin, viewsets.GenericViewSet):
    """The metric library experiments choose their primary, secondary and guardrail
    metrics from."""

    serializer_class = MetricSerializer
    pagination_class = Pagination
    queryset = Metric.objects.none()

    def list(self, request: Request) -> Response:
        self.require("experiments.view")
        rows = Metric.objects.filter(workspace=self.workspace).order_by("key")
        page = self.paginate_queryset(rows) or []
        return self.get_paginated_response(MetricSerializer(page, many=True).data)

    @extend_schema(request=MetricSerializer, responses={201: MetricSerializer})
    def create(self, request: Request) -> Response:
        self.require("experiments.manage")
        metric = services.metric_create(
            workspace=self.workspace, actor=request.user, data=_body(request)
        )
        return Response(MetricSerializer(metric).data, status=status.HTTP_201_CREATED)


class ExperimentViewSet(CapabilityMixin, viewsets.GenericViewSet):
    """A/B experiments: variants with weights and payloads, traffic, targeting, metrics;
    deterministic assignment with sticky first exposures; results with always-valid
    statistics, CUPED, SRM and guardrails."""

    serializer_class = ExperimentSerializer
    pagination_class = Pagination
    queryset = Experiment.objects.none()

    def get_object(self) -> Experiment:
        pk = self.kwargs["pk"]
        found = (
            Experiment.objects.select_related("workspace", "primary_metric")
            .filter(workspace=self.workspace, pk=pk)
            .first()
            if is_id(pk)
            else None
        )
        if found is None:
            raise NotFound(f"No experiment {pk} in this workspace.")
        return found

    def list(self, request: Request) -> Response:
        self.require("experiments.view")
        rows = Experiment.objects.filter(workspace=self.workspace).select_related("primary_metric")
        page = self.paginate_queryset(rows.order_by("-created_at")) or []
        counts = exposure_counts([e.pk for e in page])
        return self.get_paginated_response(
            ExperimentSerializer(page, many=True, context={"exposures": counts}).data
        )

    @extend_schema(request=ExperimentWriteSerializer, responses={201: ExperimentSerializer})
    def create(self, request: Request) -> Response:
        self.require("experiments.manage")
        experiment = services.experiment_create(
            workspace=self.workspace, actor=request.user, data=_body(request)
        )
        return Response(ExperimentSerializer(experiment).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        self.require("experiments.view")
        return Response(ExperimentSerializer(self.get_object()).data)

    @extend_schema(request=ExperimentWriteSerializer, responses=ExperimentSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        self.require("experiments.manage")
        body = _body(request)
        if "key" in body:
            raise ValidationFailed.at("key", "cannot be changed; create a new experiment")
        experiment = services.experiment_update(
            experiment=self.get_object(), actor=request.user, data=body
        )
        return Response(ExperimentSerializer(experiment).data)

    @extend_schema(request=None, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str) -> Response:
        self.require("experiments.manage")
        experiment = services.experiment_start(experiment=self.get_object(), actor=request.user)
        return Response(ExperimentSerializer(experiment).data)

    @extend_schema(request=None, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str) -> Response:
        self.require("experiments.manage")
        experiment = services.experiment_stop(experiment=self.get_object(), actor=request.user)
        return Response(ExperimentSerializer(experiment).data)

    @extend_schema(request=ShipSerializer, responses=ExperimentSerializer)
    @action(detail=True, methods=["post"])
    def ship(self, request: Request, pk: str) -> Response:
        """Stop the experiment and serve the chosen variant to everyone (409
        `sample_ratio_mismatch` while the units per variant do not match the weights, unless
        `force`)."""
        self.require("experiments.manage")
        serializer = ShipSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        experiment = services.experiment_ship(
            experiment=self.get_object(), actor=request.user,
            variant=serializer.validated_data["variant"],
            force=serializer.validated_data["force"],
        )  # fmt: skip
        return Response(ExperimentSerializer(experiment).data)

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def results(self, request: Request, pk: str) -> Response:
        """Per metric and variant: units, means, the lift of each treatment with its interval
        and p-value (Holm-adjusted too), CUPED's variance reduction; SRM; failed guardrails;
        the primary metric's lift at earlier analyses."""
        self.require("experiments.view")
        experiment = self.get_object()
        results = analysis.analyse(experiment)
        return Response({**results, "history": experiment.history})

    @extend_schema(
        parameters=[OpenApiParameter("mde", float, description="the relative change to detect, "
                                     "e.g. 0.05 for 5 %")],
        responses={200: dict},
    )  # fmt: skip
    @action(detail=True, methods=["get"])
    def power(self, request: Request, pk: str) -> Response:
        """Units per variant to detect the given relative change of the primary metric, and
        the days that takes at the current traffic."""
        self.require("experiments.view")
        raw = request.query_params.get("mde", "0.05")
        try:
            mde = float(raw)
        except ValueError:
            mde = 0.0
        if not 0.001 <= abs(mde) <= 10:
            raise ValidationFailed.at("mde", "a relative change from 0.001 to 10 (0.05 = 5 %)")
        try:
            plan = analysis.power_plan(self.get_object(), mde)
        except (stats.NotEnoughData, ValueError) as exc:
            raise ValidationFailed.at("mde", str(exc)) from None
        return Response(plan)

    @extend_schema(request=AssignSerializer, responses={200: dict})
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str) -> Response:
        """The variant of a profile (its first exposure's, or the hash's — recorded as its
        first exposure unless `record` is false); `variant: null` when it is not in the
        experiment."""
        self.require("experiments.manage")
        serializer = AssignSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        experiment = self.get_object()
        profile_id = serializer.validated_data["profile_id"]
        if not Profile.objects.filter(workspace=self.workspace, pk=profile_id).exists():
            raise NotFound(f"No profile {profile_id} in this workspace.")
        found = services.assign(
            experiment=experiment, profile_id=profile_id,
            record=serializer.validated_data["record"],
        )  # fmt: skip
        if found is None:
            return Response({"experiment": experiment.key, "variant": None})
        return Response(dataclasses.asdict(found))
