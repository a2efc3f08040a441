from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from cdp import access
from cdp.errors import ErrorDoc, NotFound, ValidationFailed, document_errors
from cdp.models import Workspace, audit
from cdp.pagination import Pagination
from cdp.params import choice_param, int_param, is_id
from cdp.selectors import member_user
from cdp.views_support import CapabilityMixin
from consent.privacy import privacy_settings_of
from profiles.identity.selectors import profiles_in_order
from profiles.identity.serializers import ProfileSummarySerializer
from segments import selectors, services
from segments.models import Segment
from segments.rules.schema import RULE_SCHEMA
from segments.serializers import (
    DiffSerializer,
    DuplicateSerializer,
    GrantSerializer,
    GrantsSerializer,
    MembershipSerializer,
    PreviewResultSerializer,
    PreviewSerializer,
    SegmentSerializer,
    SegmentWriteSerializer,
    SizesSerializer,
    ValueSuggestionsSerializer,
    VersionListSerializer,
)

document_errors(
    ErrorDoc("no_draft", 409, "publish, discard or diff: the segment has no draft"),
    ErrorDoc(
        "never_published",
        409,
        "the only version of a never-published segment cannot be discarded (delete it)",
    ),
    ErrorDoc("not_published", 409, "the segment has no published version to evaluate"),
    ErrorDoc("already_draft", 409, "the version to restore is the draft already"),
    ErrorDoc(
        "segment_in_use",
        409,
        "other segments use this one in their rules",
        '{"segments": [{"id", "key", "name"}, ...]}: the segments to change first',
    ),
    ErrorDoc("owner", 409, "the segment's owner keeps access to it (no revoke)"),
    ErrorDoc(
        "computed_trait_in_use",
        409,
        "deleting a computed trait that a segment's live or draft rule reads",
        '{"segments": [{"id", "key", "name"}, ...]}: the segments to change first',
    ),
)


def _profiles(workspace: Workspace, ids: list[int]) -> Any:
    return ProfileSummarySerializer(profiles_in_order(workspace=workspace, ids=ids), many=True).data


class SegmentViewSet(CapabilityMixin, viewsets.GenericViewSet):
    """Segments: a rule (see `rule-schema/`), versions, publishing, members and history."""

    serializer_class = SegmentSerializer
    pagination_class = Pagination
    queryset = Segment.objects.none()

    def get_object(self) -> Segment:
        segment = selectors.segment_get(workspace=self.workspace, segment_id=self.kwargs["pk"])
        if segment is None:
            raise NotFound(f"No segment {self.kwargs['pk']} in this workspace.")
        return segment

    def get_serializer_context(self) -> dict[str, Any]:
        user, workspace = self.request.user, self.workspace
        return {
            "request": self.request,
            "can_manage": lambda obj: access.can(user, workspace, "segments.manage", obj),
        }

    def managed_object(self) -> Segment:
        """The segment, if the user may change it: admins any, marketers their own and those
        granted to them (django-guardian), analysts none."""
        segment = self.get_object()
        self.require("segments.manage", segment)
        return segment

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="words found in the name, key or description"),
            OpenApiParameter(
                "status",
                str,
                enum=list(selectors.SEGMENT_STATUSES),
                description="published, "
                "changed (published with unpublished changes) or draft (never published)",
            ),
            OpenApiParameter("owner", str, description="'me' or a user id"),
            OpenApiParameter("tag", str, description="segments carrying this tag"),
            OpenApiParameter("order", str, enum=list(selectors.SEGMENT_ORDERS)),
        ]
    )
    def list(self, request: Request) -> Response:
        """Segments with size and 7-day trend, searchable and filterable."""
        self.require("segments.view")
        params = request.query_params
        rows = selectors.segment_list(
            workspace=self.workspace,
            q=params.get("q", ""),
            status=choice_param(params.get("status"), "status", selectors.SEGMENT_STATUSES),
            owner_id=_owner_param(request),
            tag=params.get("tag", ""),
            order=choice_param(params.get("order"), "order", selectors.SEGMENT_ORDERS) or "name",
        )
        page = self.paginate_queryset(rows) or []
        context = {
            **self.get_serializer_context(),
            "trends": selectors.segment_trends(segment_ids=[s.pk for s in page]),
        }
        return self.get_paginated_response(SegmentSerializer(page, many=True, context=context).data)

    @extend_schema(responses=dict)
    @action(detail=False, methods=["get"])
    def tags(self, request: Request) -> Response:
        """Every tag in the workspace with how many segments carry it."""
        self.require("segments.view")
        rows = selectors.segment_tags(workspace=self.workspace)
        return Response({"results": [{"tag": tag, "segments": n} for tag, n in rows]})

    @extend_schema(request=SegmentWriteSerializer, responses=SegmentSerializer)
    def create(self, request: Request) -> Response:
        self.require("segments.create")
        serializer = SegmentWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if "name" not in data or "rule" not in data:
            raise ValidationFailed(
                {name: "required" for name in ("name", "rule") if name not in data}
            )
        segment = services.segment_create(
            workspace=self.workspace,
            name=data["name"],
            rule=data["rule"],
            description=data.get("description", ""),
            tags=data.get("tags"),
            publish=data["publish"],
            actor=request.user,
        )
        segment.refresh_from_db()
        return Response(
            SegmentSerializer(segment, context=self.get_serializer_context()).data,
            status=status.HTTP_201_CREATED,
        )

    def retrieve(self, request: Request, pk: str) -> Response:
        self.require("segments.view")
        return Response(
            SegmentSerializer(self.get_object(), context=self.get_serializer_context()).data
        )

    @extend_schema(request=SegmentWriteSerializer, responses=SegmentSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        self.require("segments.view")
        segment = self.managed_object()
        serializer = SegmentWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        segment = services.segment_update(
            segment=segment,
            actor=request.user,
            name=data.get("name"),
            description=data.get("description"),
            tags=data.get("tags"),
            rule=data.get("rule"),
        )
        if data.get("publish") and segment.pending_draft is not None:
            # publishing a rule that is live already changes nothing: the call is idempotent
            services.segment_publish(segment=segment, actor=request.user)
        return Response(
            SegmentSerializer(self.get_object(), context=self.get_serializer_context()).data
        )

    @extend_schema(responses=VersionListSerializer)
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, pk: str) -> Response:
        """Every version of the rule, newest first: which is live, which is the draft, who
        wrote it, when it was published."""
        self.require("segments.view")
        segment = self.get_object()
        rows = selectors.segment_versions(segment=segment)
        return Response(
            {
                "results": [
                    {
                        "number": v.number,
                        "state": segment.version_state(v),
                        "rule": v.rule,
                        "created_by": v.created_by.username if v.created_by else None,
                        "created_at": v.created_at,
                        "published_at": v.published_at,
                    }
                    for v in rows
                ]
            }
        )

    @extend_schema(request=None, responses=SegmentSerializer)
    @action(detail=True, methods=["post"], url_path=r"versions/(?P<number>[0-9]+)/restore")
    def restore(self, request: Request, pk: str, number: str) -> Response:
        """An earlier version's rule becomes the draft (review its diff, then publish)."""
        self.require("segments.view")
        segment = services.segment_restore_version(
            segment=self.managed_object(), number=int(number), actor=request.user
        )
        segment.refresh_from_db()
        return Response(SegmentSerializer(segment, context=self.get_serializer_context()).data)

    @extend_schema(request=DuplicateSerializer, responses={201: SegmentSerializer})
    @action(detail=True, methods=["post"])
    def duplicate(self, request: Request, pk: str) -> Response:
        """A copy of the segment's current rule as a new, unpublished segment owned by the
        caller (`{"name": ...}` optional; default "Copy of <name>")."""
        self.require("segments.create")
        serializer = DuplicateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        copy = services.segment_duplicate(
            segment=self.get_object(),
            actor=request.user,
            name=serializer.validated_data.get("name"),
        )
        copy.refresh_from_db()
        return Response(
            SegmentSerializer(copy, context=self.get_serializer_context()).data,
            status=status.HTTP_201_CREATED,
        )

    def destroy(self, request: Request, pk: str) -> Response:
        """Delete the segment and its history (409 while other segments' rules use it)."""
        self.require("segments.view")
        services.segment_delete(segment=self.managed_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"])
    def draft(self, request: Request, pk: str) -> Response:
        """Discard the unpublished draft; the live version is untouched."""
        self.require("segments.view")
        services.segment_discard_draft(segment=self.managed_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=dict)
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str) -> Response:
        """Publish the draft: a full evaluation records who entered and who left."""
        self.require("segments.view")
        result = services.segment_publish(segment=self.managed_object(), actor=request.user)
        return Response(
            {
                "version": result.version,
                "members": result.members,
                "entered": result.entered,
                "exited": result.exited,
                "milliseconds": result.milliseconds,
            }
        )

    @extend_schema(
        responses={
            200: DiffSerializer,
            409: OpenApiResponse(description="`no_draft`: the segment has no draft to compare"),
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
                "entering_sample": _profiles(self.workspace, diff.entering_sample),
                "leaving_sample": _profiles(self.workspace, diff.leaving_sample),
            }
        )

    @extend_schema(request=PreviewSerializer, responses=PreviewResultSerializer)
    @action(detail=False, methods=["post"])
    def preview(self, request: Request) -> Response:
        """Count and a sample of members for an unsaved rule, with the workspace's live
        profiles (`total`) the count is out of."""
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
                "total": selectors.live_profile_count(workspace=self.workspace),
                "sample": _profiles(self.workspace, preview.sample),
                "milliseconds": preview.milliseconds,
            }
        )

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        description="A JSON Schema (draft 2020-12) document describing `rule`.",
    )
    @action(detail=False, methods=["get"], url_path="rule-schema")
    def rule_schema(self, request: Request) -> Response:
        """The JSON Schema of the rule language."""
        return Response(RULE_SCHEMA)

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="words found in the name, email or user id")
        ],
        responses=ProfileSummarySerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def members(self, request: Request, pk: str) -> Response:
        """Current members (profiles), newest entries first."""
        self.require("segments.view")
        segment = self.get_object()
        q = request.query_params.get("q", "").strip()[:200]
        page = self.paginate_queryset(selectors.segment_members(segment=segment, q=q))
        ids = [m.profile_id for m in page or []]
        return self.get_paginated_response(_profiles(self.workspace, ids))

    @extend_schema(
        parameters=[OpenApiParameter("profile", int, description="one profile's history")],
        responses=MembershipSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def history(self, request: Request, pk: str) -> Response:
        """Every stay in the segment: entered, exited (null while still in), rule version."""
        self.require("segments.view")
        segment = self.get_object()
        profile = request.query_params.get("profile")
        rows = selectors.segment_history(
            segment=segment, profile_id=int(profile) if profile and is_id(profile) else None
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(MembershipSerializer(page, many=True).data)

    @extend_schema(
        parameters=[OpenApiParameter("days", int, description="1–366, default 30")],
        responses=SizesSerializer,
    )
    @action(detail=True, methods=["get"])
    def sizes(self, request: Request, pk: str) -> Response:
        """Members at the end of each UTC day (today: so far), with the day's entries and
        exits, oldest first: the last `days` days, from the day of the first publication on
        (`published_at`; none for a segment never published)."""
        self.require("segments.view")
        segment = self.get_object()
        number = int_param(request.query_params.get("days", "30"), "days", minimum=1, maximum=366)
        days = selectors.segment_sizes(segment=segment, days=number)
        return Response(
            {
                "published_at": selectors.segment_first_published(segment=segment),
                "days": [
                    {"date": d.day, "size": d.size, "entered": d.entered, "exited": d.exited}
                    for d in days
                ],
            }
        )

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "traits",
                str,
                description="comma-separated trait paths, one column each (e.g. "
                "`email,first_name,address.city`; a trait holding an object gives a column "
                "per field). Without it: the identifier columns and every trait as JSON.",
            )
        ],
        responses={(200, "text/csv"): str},
    )
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str) -> StreamingHttpResponse:
        """The current members as CSV, streamed. With `?traits=`: profile_id, user_id,
        entered_at and a column per chosen trait, values flattened (nested values by their
        dotted path, lists joined). Without: profile id, entered, identifiers and the
        traits as one JSON column. Roles that may not see personal data (pii.view) get it
        without the workspace's PII traits (privacy/settings/ `pii_traits`) and without the
        email and phone columns. Cells a spreadsheet would run as a formula are quoted.
        Exports are audited, with whether they held personal data and the chosen traits."""
        self.require("segments.view")
        segment = self.get_object()
        pii = access.can(request.user, self.workspace, "pii.view")
        hidden = None if pii else privacy_settings_of(workspace=self.workspace).pii_traits
        chosen = _traits_param(request)
        detail: dict[str, Any] = {"members": segment.member_count, "pii": pii}
        if chosen is None:
            rows = selectors.segment_export_rows(segment=segment, pii_traits=hidden)
        else:
            columns = selectors.export_trait_columns(
                workspace=self.workspace, traits=chosen, pii_traits=hidden
            )
            detail["traits"] = columns.traits
            if columns.hidden:
                detail["left_out"] = columns.hidden
            rows = selectors.segment_export_trait_rows(segment=segment, traits=columns.traits)
        audit(
            workspace=self.workspace,
            actor=request.user,
            action="segment.export",
            target=segment,
            detail=detail,
        )
        response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="segment-{segment.key}.csv"'
        return response

    @extend_schema(
        parameters=[
            OpenApiParameter("trait", str, description="a trait, computed trait or a field"),
            OpenApiParameter("event", str, description="a track event (with `property`)"),
            OpenApiParameter("property", str, description="a property of that event"),
        ],
        responses=ValueSuggestionsSerializer,
    )
    @action(detail=False, methods=["get"])
    def values(self, request: Request) -> Response:
        """Values to suggest for a trait (`?trait=`) or an event's property (`?event=&property=`):
        those seen among the newest profiles (events), most frequent first — only when there
        are few distinct ones (at most 50 in the sample: a plan, a country; never ids or
        emails). A personal trait's values are not offered to roles that may not see personal
        data (pii.view)."""
        self.require("segments.view")
        params = request.query_params
        trait, event, prop = params.get("trait"), params.get("event"), params.get("property")
        personal = False
        if trait is not None and trait.strip():
            name = trait.strip()[:255]
            sample = selectors.trait_values(workspace=self.workspace, trait=name)
            personal = not access.can(
                request.user, self.workspace, "pii.view"
            ) and selectors.is_pii_trait(
                name, privacy_settings_of(workspace=self.workspace).pii_traits
            )
        elif event is not None and event.strip() and prop is not None and prop.strip():
            sample = selectors.property_values(
                workspace=self.workspace, event=event.strip()[:255], prop=prop.strip()[:255]
            )
        else:
            raise ValidationFailed.at("trait", "expected ?trait= or ?event=&property=")
        return Response(
            {
                "values": [] if personal else [{"value": v, "count": n} for v, n in sample.values],
                "distinct": sample.distinct,
                "sampled": sample.sampled,
                "low_cardinality": sample.low_cardinality,
                "personal": personal,
            }
        )

    @extend_schema(methods=["GET"], responses=GrantsSerializer)
    @extend_schema(methods=["POST"], request=GrantSerializer, responses={201: GrantsSerializer})
    @action(detail=True, methods=["get", "post"])
    def grants(self, request: Request, pk: str) -> Response:
        """Who may edit this segment besides admins: its owner and the members it was shared
        with. POST {"user_id": N} shares it (marketers and admins only; analysts read)."""
        self.require("segments.view")
        segment = self.managed_object() if request.method == "POST" else self.get_object()
        if request.method == "POST":
            serializer = GrantSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            user = _workspace_user(self.workspace, serializer.validated_data["user_id"])
            services.segment_grant(segment=segment, user=user, actor=request.user)
        users = services.segment_grantees(segment=segment)
        body = {
            "grants": [
                {"user_id": u.pk, "username": u.username, "owner": u.pk == segment.owner_id}
                for u in users
            ]
        }
        return Response(body, status=status.HTTP_201_CREATED if request.method == "POST" else 200)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"grants/(?P<user_id>[0-9]+)")
    def revoke(self, request: Request, pk: str, user_id: str) -> Response:
        self.require("segments.view")
        segment = self.managed_object()
        user = _workspace_user(self.workspace, int(user_id))
        services.segment_revoke(segment=segment, user=user, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _owner_param(request: Request) -> int | None:
    """`?owner=me` or `?owner=<user id>`; absent: anyone's."""
    value = request.query_params.get("owner")
    if value is None:
        return None
    if value == "me":
        user_id: int | None = request.user.pk
        return user_id
    if not is_id(value):
        raise ValidationFailed.at("owner", "expected 'me' or a user id")
    return int(value)


def _traits_param(request: Request) -> list[str] | None:
    """`?traits=a,b` (or repeated `?traits=a&traits=b`): the chosen trait paths in order,
    each once; None when the parameter is absent."""
    if "traits" not in request.query_params:
        return None
    chosen: list[str] = []
    for value in request.query_params.getlist("traits"):
        for name in value.split(","):
            if name.strip() and name.strip() not in chosen:
                chosen.append(name.strip())
    return chosen


def _workspace_user(workspace: Any, user_id: int) -> Any:
    user = member_user(workspace=workspace, user_id=user_id)
    if user is None:
        raise NotFound(f"No member {user_id} in this workspace.")
    return user


class _Echo:
    def write(self, value: str) -> str:
        return value


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    """Neutralise spreadsheet formulas (CSV injection): a cell a spreadsheet would evaluate
    gets a leading apostrophe, unless it is just a number."""
    if value.startswith(_FORMULA_START) and not _is_number(value):
        return "'" + value
    return value


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _csv_lines(rows: Iterator[list[str]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow([_cell(v) for v in row])
