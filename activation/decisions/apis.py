"""The decisions management API: `placements/`, `offers/` and `decisions/preview/` (what the
decision API would answer for a profile in a context, with every offer's outcome)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from activation.decisions import serve, services
from activation.decisions.models import Offer, Placement
from cdp.errors import ErrorDoc, NotFound, ValidationFailed, document_errors
from cdp.pagination import Pagination
from cdp.params import is_id
from cdp.views_support import CapabilityMixin
from profiles.models import Profile

document_errors(
    ErrorDoc("placement_has_offers", 409, "deleting a placement that still has offers"),
)


class PlacementSerializer(serializers.ModelSerializer):
    offers = serializers.SerializerMethodField()

    class Meta:
        model = Placement
        fields = [
            "id", "key", "name", "description", "content_schema", "default_content",
            "recommendations_model", "recommendations_count", "offers", "created_at",
            "updated_at",
        ]  # fmt: skip

    def get_offers(self, obj: Placement) -> list[str]:
        return [o.key for o in obj.offers.all()]


class OfferSerializer(serializers.ModelSerializer):
    placement: Any = serializers.SlugRelatedField(slug_field="key", read_only=True)

    class Meta:
        model = Offer
        fields = [
            "id", "key", "name", "placement", "content", "eligibility", "starts_at", "ends_at",
            "priority", "weight", "cap_day", "cap_week", "cap_lifetime", "rank_by", "enabled",
            "created_at", "updated_at",
        ]  # fmt: skip


class StrictBooleanField(serializers.BooleanField):
    """true or false, not 0, 1 or "yes"."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return bool(data)


class StrictCharField(serializers.CharField):
    """A JSON string, not a number made one."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, not a string of digits."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class DecisionPreviewSerializer(serializers.Serializer):
    profile_id = StrictIntegerField(required=False, allow_null=True)
    context: Any = serializers.DictField(required=False, default=dict)
    traits: Any = serializers.DictField(required=False, default=dict)
    placements = serializers.ListField(child=StrictCharField(), required=False,
                                       allow_null=True, default=None)  # fmt: skip
    experiments = serializers.ListField(child=StrictCharField(), required=False,
                                        default=list)  # fmt: skip
    browser = StrictBooleanField(required=False, default=False)


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ValidationFailed.at("non_field_errors", "expected a JSON object")
    return dict(request.data)


class _Keyed(CapabilityMixin, viewsets.GenericViewSet):
    """Objects addressed by id or key."""

    model: Any = None
    noun = ""

    def get_object(self) -> Any:
        pk = str(self.kwargs["pk"])
        rows = self.model.objects.filter(workspace=self.workspace)
        found = rows.filter(pk=pk).first() if is_id(pk) else rows.filter(key=pk).first()
        if found is None:
            raise NotFound(f"No {self.noun} {pk} in this workspace.")
        return found


class PlacementViewSet(_Keyed):
    """Where a site shows personalised content: its content JSON Schema, its default, and the
    recommendations it lists."""

    serializer_class = PlacementSerializer
    pagination_class = Pagination
    queryset = Placement.objects.none()
    model = Placement
    noun = "placement"

    def list(self, request: Request) -> Response:
        self.require("decisions.view")
        rows = Placement.objects.filter(workspace=self.workspace).prefetch_related("offers")
        page = self.paginate_queryset(rows.order_by("key")) or []
        return self.get_paginated_response(PlacementSerializer(page, many=True).data)

    @extend_schema(request=PlacementSerializer, responses={201: PlacementSerializer})
    def create(self, request: Request) -> Response:
        self.require("decisions.manage")
        placement = services.placement_create(
            workspace=self.workspace, actor=request.user, data=_body(request)
        )
        return Response(PlacementSerializer(placement).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        self.require("decisions.view")
        return Response(PlacementSerializer(self.get_object()).data)

    @extend_schema(request=PlacementSerializer, responses=PlacementSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        self.require("decisions.manage")
        body = _body(request)
        if "key" in body:
            raise ValidationFailed.at("key", "cannot be changed: sites ask for it by key")
        placement = services.placement_update(
            placement=self.get_object(), actor=request.user, data=body
        )
        return Response(PlacementSerializer(placement).data)

    def destroy(self, request: Request, pk: str) -> Response:
        self.require("decisions.manage")
        services.placement_delete(placement=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class OfferViewSet(_Keyed):
    """What a placement may show: content, an eligibility rule in the segment rule language
    (plus `context` conditions), dates, priority and weight, frequency caps, ranking by a
    model score."""

    serializer_class = OfferSerializer
    pagination_class = Pagination
    queryset = Offer.objects.none()
    model = Offer
    noun = "offer"

    def list(self, request: Request) -> Response:
        self.require("decisions.view")
        rows = Offer.objects.filter(workspace=self.workspace).select_related("placement")
        placement = request.query_params.get("placement")
        if placement:
            rows = rows.filter(placement__key=placement)
        page = self.paginate_queryset(rows.order_by("placement__key", "-priority", "key")) or []
        return self.get_paginated_response(OfferSerializer(page, many=True).data)

    @extend_schema(request=OfferSerializer, responses={201: OfferSerializer})
    def create(self, request: Request) -> Response:
        self.require("decisions.manage")
        offer = services.offer_create(workspace=self.workspace, actor=request.user,
                                      data=_body(request))  # fmt: skip
        return Response(OfferSerializer(offer).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        self.require("decisions.view")
        return Response(OfferSerializer(self.get_object()).data)

    @extend_schema(request=OfferSerializer, responses=OfferSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        self.require("decisions.manage")
        body = _body(request)
        if "key" in body:
            raise ValidationFailed.at("key", "cannot be changed: impressions count by it")
        offer = services.offer_update(offer=self.get_object(), actor=request.user, data=body)
        return Response(OfferSerializer(offer).data)

    def destroy(self, request: Request, pk: str) -> Response:
        self.require("decisions.manage")
        services.offer_delete(offer=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DecisionPreviewView(CapabilityMixin, APIView):
    @extend_schema(request=DecisionPreviewSerializer, responses={200: dict})
    def post(self, request: Request) -> Response:
        """What the decision API would answer for a profile (or an unknown visitor with
        `traits`) in a context, with each offer's outcome and the path of the condition that
        failed. Records no exposure and no impression."""
        self.require("decisions.view")
        serializer = DecisionPreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        profile_id = data.get("profile_id")
        if profile_id is not None:
            self.require("profiles.view")
            live = Profile.objects.filter(
                workspace=self.workspace, pk=profile_id, merged_into__isnull=True
            ).exists()
            if not live:
                raise NotFound(f"No profile {profile_id} in this workspace.")
        answer = serve.preview(
            workspace_id=self.workspace.pk, profile_id=profile_id, context=data["context"],
            traits=data["traits"], placements=data["placements"],
            experiments=data["experiments"], browser=data["browser"],
        )  # fmt: skip
        return Response(answer)
