from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import APIView

from cdp import access
from cdp.errors import ErrorDoc, NotFound, document_errors
from cdp.pagination import CappedCountPagination
from cdp.params import choice_param, int_param
from cdp.views_support import CapabilityMixin
from profiles import selectors, services
from profiles.collector.normalize import EVENT_TYPES
from profiles.models import Event, FailedEvent, FailedEventStatus, FailureReason, Source
from profiles.serializers import (
    DeadLettersSerializer,
    EventSerializer,
    FailedEventSerializer,
    ObservedEventSerializer,
    ObservedPropertySerializer,
    ObservedSchemaSerializer,
    RotateKeySerializer,
    SourceCreateSerializer,
    SourceSerializer,
    SourceUpdateSerializer,
    WriteKeySerializer,
)

document_errors(
    ErrorDoc(
        "replayed", 409, "the failed event was replayed already (status replayed or duplicate)"
    ),
)


class SourceViewSet(CapabilityMixin, viewsets.GenericViewSet):
    serializer_class = SourceSerializer
    queryset = Source.objects.none()

    def get_object(self) -> Source:
        source = selectors.source_get(workspace=self.workspace, source_id=self.kwargs["pk"])
        if source is None:
            raise NotFound("No such source in this workspace.")
        return source

    def list(self, request: Request) -> Response:
        sources = list(selectors.source_list(workspace=self.workspace))
        if not access.can(request.user, self.workspace, "sources.view"):
            sources = [
                s for s in sources if access.can(request.user, self.workspace, "sources.view", s)
            ]
        page = self.paginate_queryset(sources)
        return self.get_paginated_response(SourceSerializer(page, many=True).data)

    @extend_schema(request=SourceCreateSerializer, responses=SourceSerializer)
    def create(self, request: Request) -> Response:
        self.require("sources.manage")
        serializer = SourceCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        source = services.source_create(
            workspace=self.workspace, actor=request.user, **serializer.validated_data
        )
        return Response(SourceSerializer(source).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        source = self.get_object()
        self.require("sources.view", source)
        return Response(SourceSerializer(source).data)

    @extend_schema(request=SourceUpdateSerializer, responses=SourceSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        source = self.get_object()
        self.require("sources.manage", source)
        serializer = SourceUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        source = services.source_update(
            source=source, actor=request.user, **serializer.validated_data
        )
        return Response(SourceSerializer(source).data)

    @extend_schema(
        responses=DeadLettersSerializer,
        parameters=[OpenApiParameter("days", int, description="1 to 90 days, today included (14)")],
    )
    @action(detail=True, methods=["get"], url_path="dead-letters")
    def dead_letters(self, request: Request, pk: str) -> Response:
        """Invalid events per UTC day: kept for replay (up to the daily quota) and only
        counted, with when the quota was reached."""
        source = self.get_object()
        self.require("sources.view", source)
        days = int_param(request.query_params.get("days", 14), "days", minimum=1, maximum=90)
        data = {
            "quota": selectors.dead_letter_quota(source),
            "days": selectors.dead_letter_days(source=source, days=days),
        }
        return Response(DeadLettersSerializer(data).data)

    @extend_schema(request=RotateKeySerializer, responses={201: WriteKeySerializer})
    @action(detail=True, methods=["post"], url_path="rotate-key")
    def rotate_key(self, request: Request, pk: str) -> Response:
        source = self.get_object()
        self.require("sources.manage", source)
        serializer = RotateKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = services.write_key_rotate(
            source=source, actor=request.user, revoke_old=serializer.validated_data["revoke_old"]
        )
        return Response(WriteKeySerializer(key).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=WriteKeySerializer)
    @action(detail=True, methods=["post"], url_path=r"keys/(?P<key_id>\d+)/revoke")
    def revoke_key(self, request: Request, pk: str, key_id: str) -> Response:
        source = self.get_object()
        self.require("sources.manage", source)
        key = services.write_key_revoke(source=source, key_id=int(key_id), actor=request.user)
        return Response(WriteKeySerializer(key).data)


EVENT_PARAMS = [
    *(
        OpenApiParameter(name, str, description=f"exact {name}")
        for name in ("user_id", "anonymous_id", "message_id", "event")
    ),
    OpenApiParameter("user", str, description="exact userId or anonymousId"),
    OpenApiParameter("name", str, description="exact page or screen name"),
    OpenApiParameter("type", str, enum=list(EVENT_TYPES)),
    OpenApiParameter("source", int, description="a source's id"),
    OpenApiParameter("after_id", int, description="only events newer than this one"),
    OpenApiParameter(
        "before_id",
        int,
        description="only events older than this one (the keyset cursor that `next` carries)",
    ),
]


class EventPagination(CappedCountPagination):
    """Keyset pages, newest first: `next` is this query with `before_id` set to the id of the
    page's last (oldest) event, so every page is one index range scan however deep, and
    events that arrive meanwhile neither repeat a row on the next page nor push one out of
    it. With `after_id` too, `next` walks down to it: everything newer than a known event.
    `?page=N` (offset pages) still works and then `next` uses it; `previous` is null on
    keyset pages."""

    def paginate_queryset(self, queryset, request, view=None):  # type: ignore[no-untyped-def]
        self._keyset = request.query_params.get(self.page_query_param) is None
        if not self._keyset:
            return super().paginate_queryset(queryset, request, view)
        self.request = request
        size = self.get_page_size(request)
        self._capped_total = queryset[: self.COUNT_CAP + 1].count()
        rows = list(queryset[: size + 1])
        self._next_before = rows[size - 1].pk if len(rows) > size else None
        return rows[:size]

    def get_paginated_response(self, data):  # type: ignore[no-untyped-def]
        if not self._keyset:
            return super().get_paginated_response(data)
        next_url = None
        if self._next_before is not None and self.request is not None:
            url = remove_query_param(self.request.build_absolute_uri(), self.page_query_param)
            next_url = replace_query_param(url, "before_id", self._next_before)
        return Response(
            {
                "count": min(self._capped_total, self.COUNT_CAP),
                "count_capped": self._capped_total > self.COUNT_CAP,
                "next": next_url,
                "previous": None,
                "results": data,
            }
        )


class EventViewSet(CapabilityMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Stored events, newest first; filter by user_id, anonymous_id, user (either), message_id,
    type, event, name, source. Paginated by keyset: `next` carries `before_id`; `after_id`
    returns only newer events (the live debugger polls with it)."""

    serializer_class = EventSerializer
    pagination_class = EventPagination
    queryset = Event.objects.none()

    def get_queryset(self):  # type: ignore[no-untyped-def]
        self.require("events.view")
        return selectors.event_list(workspace=self.workspace, filters=self.request.query_params)

    @extend_schema(parameters=EVENT_PARAMS)
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def retrieve(self, request: Request, pk: str) -> Response:
        event = self.get_queryset().filter(pk=pk).first()
        if event is None:
            raise NotFound("No such event in this workspace.")
        return Response(EventSerializer(event).data)


class FailedEventViewSet(CapabilityMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Dead-lettered events with their reason; replay one after fixing the cause."""

    serializer_class = FailedEventSerializer
    queryset = FailedEvent.objects.none()

    def get_queryset(self):  # type: ignore[no-untyped-def]
        self.require("events.view")
        return selectors.failed_event_list(
            workspace=self.workspace, filters=self.request.query_params
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("source", int, description="a source's id"),
            OpenApiParameter("reason", str, enum=FailureReason.values),
            OpenApiParameter("status", str, enum=FailedEventStatus.values),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def retrieve(self, request: Request, pk: str) -> Response:
        failed = self.get_queryset().filter(pk=pk).first()
        if failed is None:
            raise NotFound("No such failed event in this workspace.")
        return Response(FailedEventSerializer(failed).data)

    @extend_schema(request=None, responses=FailedEventSerializer)
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk: str) -> Response:
        failed = (
            selectors.failed_event_list(workspace=self.workspace, filters={}).filter(pk=pk).first()
        )
        if failed is None:
            raise NotFound("No such failed event in this workspace.")
        self.require("failed_events.replay", failed.source)
        failed = services.failed_event_replay(failed=failed, actor=request.user)
        return Response(FailedEventSerializer(failed).data)


class SchemaView(CapabilityMixin, APIView):
    """The observed schema: event names and the properties/traits seen on them, with types."""

    @extend_schema(
        parameters=[
            OpenApiParameter("type", str, enum=list(EVENT_TYPES)),
            OpenApiParameter("event", str),
        ],
        responses=ObservedSchemaSerializer,
    )
    def get(self, request: Request) -> Response:
        self.require("schema.view")
        event_type = choice_param(request.query_params.get("type"), "type", EVENT_TYPES) or None
        event = request.query_params.get("event")
        return Response(
            {
                "events": ObservedEventSerializer(
                    selectors.observed_events(workspace=self.workspace), many=True
                ).data,
                "properties": ObservedPropertySerializer(
                    selectors.observed_properties(
                        workspace=self.workspace, event_type=event_type, event=event
                    ),
                    many=True,
                ).data,
            }
        )
