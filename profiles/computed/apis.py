"""/api/v1/computed-traits/: user-defined computed traits, and the list of built-ins."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from cdp.errors import NotFound
from cdp.views_support import CapabilityMixin
from profiles.computed import selectors, services
from profiles.computed.serializers import (
    BuiltinTraitSerializer,
    ComputedTraitInputSerializer,
    ComputedTraitSerializer,
)
from profiles.models import ComputedTrait


class ComputedTraitViewSet(CapabilityMixin, viewsets.GenericViewSet):
    serializer_class = ComputedTraitSerializer
    queryset = ComputedTrait.objects.none()

    def get_object(self) -> ComputedTrait:
        trait = selectors.computed_trait_get(workspace=self.workspace, trait_id=self.kwargs["pk"])
        if trait is None:
            raise NotFound("No such computed trait in this workspace.")
        return trait

    def _input(self, request: Request) -> dict:
        serializer = ComputedTraitInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def list(self, request: Request) -> Response:
        self.require("computed_traits.view")
        page = self.paginate_queryset(selectors.computed_trait_list(workspace=self.workspace))
        return self.get_paginated_response(ComputedTraitSerializer(page, many=True).data)

    @extend_schema(request=ComputedTraitInputSerializer, responses=ComputedTraitSerializer)
    def create(self, request: Request) -> Response:
        self.require("computed_traits.create")
        trait = services.computed_trait_create(
            workspace=self.workspace, actor=request.user, data=self._input(request)
        )
        return Response(ComputedTraitSerializer(trait).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        self.require("computed_traits.view")
        return Response(ComputedTraitSerializer(self.get_object()).data)

    @extend_schema(request=ComputedTraitInputSerializer, responses=ComputedTraitSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        trait = self.get_object()
        self.require("computed_traits.manage", trait)
        trait = services.computed_trait_update(
            trait=trait, actor=request.user, data=self._input(request)
        )
        return Response(ComputedTraitSerializer(trait).data)

    def destroy(self, request: Request, pk: str) -> Response:
        trait = self.get_object()
        self.require("computed_traits.manage", trait)
        services.computed_trait_delete(trait=trait, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: None})
    @action(detail=True, methods=["post"])
    def refresh(self, request: Request, pk: str) -> Response:
        """Recompute the trait for every profile (in the background)."""
        trait = self.get_object()
        self.require("computed_traits.manage", trait)
        services.computed_trait_refresh_enqueue(trait=trait, actor=request.user)
        return Response({"id": trait.pk, "status": "queued"}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=BuiltinTraitSerializer(many=True))
    @action(detail=False, methods=["get"])
    def builtin(self, request: Request) -> Response:
        """The built-in computed traits every profile has (for the profile page and the
        segment builder)."""
        self.require("computed_traits.view")
        page = self.paginate_queryset(selectors.builtin_trait_list())
        return self.get_paginated_response(BuiltinTraitSerializer(page, many=True).data)
