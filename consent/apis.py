"""/api/v1/consent/: purposes, decisions (append-only: create and read, never change)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from cdp.errors import NotFound, ValidationFailed
from cdp.pagination import Pagination
from cdp.views_support import CapabilityMixin
from consent import services
from consent.models import ConsentRecord, Purpose
from consent.serializers import (
    ConsentEventInputSerializer,
    ConsentRecordSerializer,
    PurposeInputSerializer,
    PurposeSerializer,
)
from profiles.identity.selectors import profile_list


class PurposeViewSet(CapabilityMixin, viewsets.GenericViewSet):
    """Purposes personal data is used for, each with its legal basis and default."""

    serializer_class = PurposeSerializer
    queryset = Purpose.objects.none()

    def list(self, request: Request) -> Response:
        self.require("consent.view")
        rows = Purpose.objects.filter(workspace=self.workspace).order_by("key")
        return Response({"results": PurposeSerializer(rows, many=True).data})

    @extend_schema(request=PurposeInputSerializer, responses=PurposeSerializer)
    def create(self, request: Request) -> Response:
        self.require("consent.manage")
        serializer = PurposeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        purpose = services.purpose_create(
            workspace=self.workspace,
            key=data["key"],
            name=data["name"],
            description=data["description"],
            legal_basis=data["legal_basis"],
            default_granted=data["default_granted"],
            actor=request.user,
        )
        return Response(PurposeSerializer(purpose).data, status=status.HTTP_201_CREATED)


class ConsentEventViewSet(CapabilityMixin, viewsets.GenericViewSet):
    """The consent log. POST records a decision; GET lists decisions (`?profile=` for one
    person, merged profiles included). There is no way to change or delete a decision: a new
    decision supersedes it."""

    serializer_class = ConsentRecordSerializer
    pagination_class = Pagination
    queryset = ConsentRecord.objects.none()

    @extend_schema(parameters=[OpenApiParameter("profile", int), OpenApiParameter("purpose", str)])
    def list(self, request: Request) -> Response:
        self.require("consent.view")
        rows = ConsentRecord.objects.filter(workspace=self.workspace).order_by(
            "-occurred_at", "-id"
        )
        profile = request.query_params.get("profile")
        if profile is not None:
            if not profile.isdigit():
                raise ValidationFailed("profile: expected a profile id", code="bad_profile")
            rows = rows.filter(profile_id=int(profile))
        purpose = request.query_params.get("purpose")
        if purpose:
            rows = rows.filter(purpose=services.normalise_purpose(purpose))
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(ConsentRecordSerializer(page, many=True).data)

    @extend_schema(request=ConsentEventInputSerializer, responses=ConsentRecordSerializer)
    def create(self, request: Request) -> Response:
        self.require("consent.manage")
        serializer = ConsentEventInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if ("profile_id" in data) == ("identifier" in data):
            raise ValidationFailed(
                "give exactly one of profile_id or identifier (e.g. email:ann@example.com)",
                code="subject_required",
            )
        profile_id = data.get("profile_id")
        if profile_id is None:
            found = profile_list(workspace=self.workspace, identifier=data["identifier"]).first()
            if found is None:
                raise NotFound(f"No profile with the identifier {data['identifier']!r}.")
            profile_id = found.pk
        record = services.consent_record(
            workspace=self.workspace,
            profile_id=profile_id,
            purpose=data["purpose"],
            status=data["status"],
            occurred_at=data.get("occurred_at"),
            policy_version=data["policy_version"],
            message_id=data["message_id"],
            ip=data["ip"],
            user_agent=data["user_agent"],
            actor=request.user,
        )
        return Response(ConsentRecordSerializer(record).data, status=status.HTTP_201_CREATED)
