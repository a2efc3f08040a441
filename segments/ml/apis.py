"""The ML models API: `models/` (define, list, change, delete), `{id}/train/`, `{id}/runs/`
(+ `runs/{run}/cancel/`), `{id}/versions/`, `{id}/promote/` (a promotion or a roll-back)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from cdp.errors import ErrorDoc, NotFound, ValidationFailed, document_errors
from cdp.pagination import Pagination
from cdp.params import is_id
from cdp.views_support import CapabilityMixin
from segments.ml import services
from segments.ml.models import MLModel, ModelVersion
from segments.ml.serializers import (
    ModelSerializer,
    ModelWriteSerializer,
    PromoteSerializer,
    RunSerializer,
    VersionSerializer,
)

document_errors(
    ErrorDoc("run_in_progress", 409, "a training run of the model is already queued or running",
             '{"run": id}: the run to wait for or cancel'),
    ErrorDoc("run_ended", 409, "cancelling a run that has already ended"),
    ErrorDoc("model_busy", 409, "deleting a model while it trains"),
    ErrorDoc("already_champion", 409, "promoting the version that is the champion already"),
)  # fmt: skip


class ModelViewSet(CapabilityMixin, viewsets.GenericViewSet):
    """ML models: churn and propensity scores written as computed traits."""

    serializer_class = ModelSerializer
    pagination_class = Pagination
    queryset = MLModel.objects.none()

    def get_object(self) -> MLModel:
        pk = self.kwargs["pk"]
        model = (
            MLModel.objects.select_related("champion", "workspace")
            .filter(workspace=self.workspace, pk=pk)
            .first()
            if is_id(pk)
            else None
        )
        if model is None:
            raise NotFound(f"No model {pk} in this workspace.")
        return model

    def list(self, request: Request) -> Response:
        self.require("models.view")
        rows = MLModel.objects.filter(workspace=self.workspace).select_related("champion")
        page = self.paginate_queryset(rows.order_by("name")) or []
        return self.get_paginated_response(ModelSerializer(page, many=True).data)

    @extend_schema(request=ModelWriteSerializer, responses={201: ModelSerializer})
    def create(self, request: Request) -> Response:
        self.require("models.manage")
        model = services.ml_model_create(
            workspace=self.workspace, actor=request.user, data=_body(request)
        )
        return Response(ModelSerializer(model).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        self.require("models.view")
        return Response(ModelSerializer(self.get_object()).data)

    @extend_schema(request=ModelWriteSerializer, responses=ModelSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        self.require("models.manage")
        body = _body(request)
        for fixed in ("key", "kind"):
            if fixed in body:
                raise ValidationFailed.at(fixed, "cannot be changed; create a new model")
        model = services.ml_model_update(model=self.get_object(), actor=request.user, data=body)
        return Response(ModelSerializer(model).data)

    def destroy(self, request: Request, pk: str) -> Response:
        """Delete the model, its runs and versions, and the scores it wrote."""
        self.require("models.manage")
        services.ml_model_delete(model=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: RunSerializer})
    @action(detail=True, methods=["post"])
    def train(self, request: Request, pk: str) -> Response:
        """Queue a training run (409 run_in_progress while one is queued or running)."""
        self.require("models.manage")
        run = services.ml_train(model=self.get_object(), actor=request.user)
        return Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=RunSerializer(many=True))
    @action(detail=True, methods=["get"])
    def runs(self, request: Request, pk: str) -> Response:
        """Training runs, newest first, with stage, percent and log."""
        self.require("models.view")
        rows = self.get_object().runs.select_related("version").order_by("-created_at")
        page = self.paginate_queryset(rows) or []
        return self.get_paginated_response(RunSerializer(page, many=True).data)

    @extend_schema(request=None, responses=RunSerializer)
    @action(detail=True, methods=["post"], url_path=r"runs/(?P<run_id>[0-9]+)/cancel")
    def cancel(self, request: Request, pk: str, run_id: str) -> Response:
        """Cancel a run: a queued one at once, a running one at its next stage."""
        self.require("models.manage")
        run = self.get_object().runs.filter(pk=run_id).first()
        if run is None:
            raise NotFound(f"No run {run_id} of this model.")
        return Response(RunSerializer(services.ml_run_cancel(run=run, actor=request.user)).data)

    @extend_schema(responses=VersionSerializer(many=True))
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, pk: str) -> Response:
        """Versions, newest first: metrics, charts, why each is (not) the champion."""
        self.require("models.view")
        page = self.paginate_queryset(self.get_object().versions.order_by("-number")) or []
        return self.get_paginated_response(VersionSerializer(page, many=True).data)

    @extend_schema(request=PromoteSerializer, responses=VersionSerializer)
    @action(detail=True, methods=["post"])
    def promote(self, request: Request, pk: str) -> Response:
        """Make a version the champion (a promotion, or a roll-back to an earlier one) and
        score every consenting profile with it."""
        self.require("models.manage")
        serializer = PromoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = self.get_object()
        version = ModelVersion.objects.filter(
            model=model, number=serializer.validated_data["version"]
        ).first()
        if version is None:
            raise NotFound(f"No version {serializer.validated_data['version']} of this model.")
        version = services.ml_promote(version=version, actor=request.user)
        return Response(VersionSerializer(version).data)


def _body(request: Request) -> dict[str, Any]:
    """The JSON object sent; its fields are checked by the service, which names every bad
    one at once (ModelWriteSerializer only documents them)."""
    if not isinstance(request.data, dict):
        raise ValidationFailed.at("non_field_errors", "expected a JSON object")
    return dict(request.data)
