from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from cdp.errors import NotFound, ValidationFailed
from cdp.pagination import Pagination
from cdp.views_support import CapabilityMixin
from profiles.identity.serializers import ProfileSummarySerializer
from profiles.models import Profile
from segments import services
from segments.models import Membership, Segment
from segments.rules.schema import RULE_SCHEMA
from segments.serializers import (
    MembershipSerializer,
    PreviewSerializer,
    SegmentSerializer,
    SegmentWriteSerializer,
)


def _profiles(workspace_id: int, ids: list[int]) -> Any:
    rows = Profile.objects.filter(workspace_id=workspace_id, pk__in=ids).prefetch_related(
        "identities"
    )
    by_id = {p.pk: p for p in rows}
    return ProfileSummarySerializer([by_id[i] for i in ids if i in by_id], many=True).data


class SegmentViewSet(CapabilityMixin, viewsets.GenericViewSet):
    """Segments: a rule (see `rule-schema/`), versions, publishing, members and history."""

    serializer_class = SegmentSerializer
    pagination_class = Pagination
    queryset = Segment.objects.none()

    def get_object(self) -> Segment:
        segment = (
            Segment.objects.filter(workspace=self.workspace, pk=self.kwargs["pk"])
            .select_related("published_version", "draft_version", "owner")
            .first()
            if str(self.kwargs["pk"]).isdigit()
            else None
        )
        if segment is None:
            raise NotFound(f"No segment {self.kwargs['pk']} in this workspace.")
        return segment

    def list(self, request: Request) -> Response:
        self.require("segments.view")
        rows = (
            Segment.objects.filter(workspace=self.workspace)
            .select_related("published_version", "draft_version", "owner")
            .order_by("name")
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(SegmentSerializer(page, many=True).data)

    @extend_schema(request=SegmentWriteSerializer, responses=SegmentSerializer)
    def create(self, request: Request) -> Response:
        self.require("segments.manage")
        serializer = SegmentWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "name" not in data or "rule" not in data:
            raise ValidationFailed(
                "name and rule are required", detail={"fields": ["name", "rule"]}
            )
        segment = services.segment_create(
            workspace=self.workspace,
            name=data["name"],
            rule=data["rule"],
            description=data.get("description", ""),
            publish=data["publish"],
            actor=request.user,
        )
        segment.refresh_from_db()
        return Response(SegmentSerializer(segment).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        self.require("segments.view")
        return Response(SegmentSerializer(self.get_object()).data)

    @extend_schema(request=SegmentWriteSerializer, responses=SegmentSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        self.require("segments.manage")
        segment = self.get_object()
        serializer = SegmentWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        segment = services.segment_update(
            segment=segment,
            actor=request.user,
            name=data.get("name"),
            description=data.get("description"),
            rule=data.get("rule"),
        )
        if data.get("publish"):
            services.segment_publish(segment=segment, actor=request.user)
        return Response(SegmentSerializer(self.get_object()).data)

    def destroy(self, request: Request, pk: str) -> Response:
        self.require("segments.manage")
        services.segment_delete(segment=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=dict)
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str) -> Response:
        """Publish the draft: a full evaluation records who entered and who left."""
        self.require("segments.manage")
        result = services.segment_publish(segment=self.get_object(), actor=request.user)
        return Response(
            {
                "version": result.version,
                "members": result.members,
                "entered": result.entered,
                "exited": result.exited,
                "milliseconds": result.milliseconds,
            }
        )

    @action(detail=True, methods=["get"])
    def diff(self, request: Request, pk: str) -> Response:
        """What publishing the draft would change: counts and samples of who enters and
        who leaves."""
        self.require("segments.view")
        segment = self.get_object()
        diff = services.segment_diff(segment=segment)
        return Response(
            {
                "draft_version": diff.version,
                "members_after": diff.members,
                "members_now": segment.member_count,
                "entering": diff.entering,
                "leaving": diff.leaving,
                "entering_sample": _profiles(self.workspace.pk, diff.entering_sample),
                "leaving_sample": _profiles(self.workspace.pk, diff.leaving_sample),
            }
        )

    @extend_schema(request=PreviewSerializer, responses=dict)
    @action(detail=False, methods=["post"])
    def preview(self, request: Request) -> Response:
        """Count and a sample of members for an unsaved rule."""
        self.require("segments.view")
        serializer = PreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        preview = services.segment_preview(
            workspace=self.workspace,
            rule=serializer.validated_data["rule"],
            sample=serializer.validated_data["sample"],
        )
        return Response(
            {
                "count": preview.count,
                "sample": _profiles(self.workspace.pk, preview.sample),
                "milliseconds": preview.milliseconds,
            }
        )

    @action(detail=False, methods=["get"], url_path="rule-schema")
    def rule_schema(self, request: Request) -> Response:
        """The JSON Schema of the rule language."""
        return Response(RULE_SCHEMA)

    @action(detail=True, methods=["get"])
    def members(self, request: Request, pk: str) -> Response:
        """Current members (profiles), newest entries first."""
        self.require("segments.view")
        segment = self.get_object()
        rows = Membership.objects.filter(segment=segment, exited_at__isnull=True).order_by(
            "-entered_at", "-profile_id"
        )
        page = self.paginate_queryset(rows)
        ids = [m.profile_id for m in page or []]
        return self.get_paginated_response(_profiles(self.workspace.pk, ids))

    @extend_schema(parameters=[OpenApiParameter("profile", int)])
    @action(detail=True, methods=["get"])
    def history(self, request: Request, pk: str) -> Response:
        """Every stay in the segment: entered, exited (null while still in), rule version."""
        self.require("segments.view")
        segment = self.get_object()
        rows = Membership.objects.filter(segment=segment).order_by("-entered_at", "-id")
        profile = request.query_params.get("profile")
        if profile and profile.isdigit():
            rows = rows.filter(profile_id=int(profile))
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(MembershipSerializer(page, many=True).data)
