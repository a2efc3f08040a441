"""The ML models API: `models/` (define, list, change, delete), `{id}/train/`, `{id}/runs/`
(+ `runs/{run}/cancel/`), `{id}/versions/`, `{id}/promote/` (a promotion or a roll-back)."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.db.models import Q
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.errors import Conflict, ErrorDoc, NotFound, ValidationFailed, document_errors
from cdp.pagination import Pagination
from cdp.params import is_id
from cdp.views_support import CapabilityMixin
from profiles.identity import selectors as identity_selectors
from segments.ml import services, serving
from segments.ml.models import Item, MLModel, ModelVersion
from segments.ml.serializers import (
    ItemSerializer,
    ItemWriteSerializer,
    ModelSerializer,
    ModelWriteSerializer,
    PromoteSerializer,
    RecommendationsSerializer,
    RecommendedItemSerializer,
    RunSerializer,
    VersionSerializer,
)

ITEM_ORDERING: dict[str, tuple[str, ...]] = {
    "interactions": ("-interactions", "item_id"),
    "name": ("name", "item_id"),
    "price": ("price", "item_id"),
    "-price": ("-price", "item_id"),
}

document_errors(
    ErrorDoc("run_in_progress", 409, "a training run of the model is already queued or running",
             '{"run": id}: the run to wait for or cancel'),
    ErrorDoc("run_ended", 409, "cancelling a run that has already ended"),
    ErrorDoc("model_busy", 409, "deleting a model while it trains"),
    ErrorDoc("model_in_use", 409, "deleting a model whose output segments read",
             '{"segments": [{"id", "key", "name"}]}: the segments to change first'),
    ErrorDoc("already_champion", 409, "promoting the version that is the champion already"),
    ErrorDoc("no_recommendation_model", 409,
             "asking for recommendations before a recommendation model has a champion"),
)  # fmt: skip


class ModelViewSet(CapabilityMixin, viewsets.GenericViewSet):
    """ML models: churn and propensity scores written as computed traits."""

    serializer_class = ModelSerializer
    pagination_class = Pagination
    queryset = MLModel.objects.none()

    def get_object(self) -> MLModel:
        pk = self.kwargs["pk"]
        model = (
            MLModel.objects.with_champion()
            .select_related("workspace")
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
        rows = MLModel.objects.with_champion().filter(workspace=self.workspace)
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
        page = (
            self.paginate_queryset(self.get_object().versions.defer("artefact").order_by("-number"))
            or []
        )
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


class ItemViewSet(CapabilityMixin, viewsets.GenericViewSet):
    """The item catalogue recommendations draw from (built from product events; editable:
    an edited field survives rebuilds, an unavailable item is never recommended)."""

    serializer_class = ItemSerializer
    pagination_class = Pagination
    queryset = Item.objects.none()
    lookup_value_regex = "[^/]+"

    def get_object(self) -> Item:
        item = Item.objects.filter(workspace=self.workspace, item_id=self.kwargs["pk"]).first()
        if item is None:
            raise NotFound(f"No item {self.kwargs['pk']!r} in the catalogue.")
        return item

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="text in the item id, name or category"),
            OpenApiParameter("category", str, description="items of this category"),
            OpenApiParameter("available", bool, description="only (un)available items"),
            OpenApiParameter("ordering", str, enum=list(ITEM_ORDERING),
                             description="interactions (most first, the default), name, price"),
        ]
    )  # fmt: skip
    def list(self, request: Request) -> Response:
        self.require("models.view")
        rows = Item.objects.filter(workspace=self.workspace)
        q = request.query_params.get("q", "").strip()
        if q:
            rows = rows.filter(
                Q(item_id__icontains=q) | Q(name__icontains=q) | Q(category__icontains=q)
            )
        if "category" in request.query_params:
            rows = rows.filter(category=request.query_params["category"])
        available = request.query_params.get("available")
        if available is not None:
            if available not in ("true", "false"):
                raise ValidationFailed.at("available", "true or false")
            rows = rows.filter(available=available == "true")
        ordering = request.query_params.get("ordering", "interactions")
        if ordering not in ITEM_ORDERING:
            raise ValidationFailed.at("ordering", f"one of {', '.join(ITEM_ORDERING)}")
        page = self.paginate_queryset(rows.order_by(*ITEM_ORDERING[ordering])) or []
        return self.get_paginated_response(ItemSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        self.require("models.view")
        return Response(ItemSerializer(self.get_object()).data)

    @extend_schema(request=ItemWriteSerializer, responses=ItemSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        self.require("models.manage")
        item = services.item_update(item=self.get_object(), actor=request.user, data=_body(request))
        return Response(ItemSerializer(item).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("n", int, description="how many (1–100, default 10)"),
            OpenApiParameter("model", str, description="the recommendation model's key "
                             "(default: the workspace's first)"),
        ],
        responses=RecommendedItemSerializer(many=True),
    )  # fmt: skip
    @action(detail=True, methods=["get"])
    def similar(self, request: Request, pk: str) -> Response:
        """The items most like this one: neighbours by who interacted with both, or by
        category and price for an item nobody has interacted with yet."""
        self.require("models.view")
        item = self.get_object()
        try:
            found = serving.similar_to(
                workspace_id=self.workspace.pk, item_id=item.item_id,
                n=_count(request), key=request.query_params.get("model"),
            )  # fmt: skip
        except serving.NoRecommendations as exc:
            raise Conflict(str(exc), code="no_recommendation_model") from None
        return Response({"item": item.item_id, "results": found})


class ProfileRecommendationsView(CapabilityMixin, APIView):
    """A profile's recommendations, folded in from its newest events."""

    @extend_schema(
        parameters=[
            OpenApiParameter("n", int, description="how many (1–100, default 10)"),
            OpenApiParameter("model", str, description="the recommendation model's key "
                             "(default: the workspace's first)"),
        ],
        responses=RecommendationsSerializer,
    )  # fmt: skip
    def get(self, request: Request, profile_id: str) -> Response:
        """Top items for the profile from its newest events (a profile merged into another
        answers for the one it became); the most popular items when it does not allow
        personalisation or has no history the model knows."""
        self.require("profiles.view")
        profile = (
            identity_selectors.profile_get(workspace=self.workspace, profile_id=profile_id)
            if is_id(profile_id)
            else None
        )
        if profile is None:
            raise NotFound(f"No profile {profile_id} in this workspace.")
        try:
            found = serving.recommendations_for(
                workspace_id=self.workspace.pk, profile_id=profile.pk, n=_count(request),
                key=request.query_params.get("model"),
            )  # fmt: skip
        except serving.NoRecommendations as exc:
            raise Conflict(str(exc), code="no_recommendation_model") from None
        return Response({"profile": profile.pk, **dataclasses.asdict(found)})


def _count(request: Request) -> int:
    raw = request.query_params.get("n", "10")
    if not raw.isdigit() or not 1 <= int(raw) <= serving.MAX_N:
        raise ValidationFailed.at("n", f"a whole number from 1 to {serving.MAX_N}")
    return int(raw)
