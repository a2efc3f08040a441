from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp import access
from cdp.errors import ErrorDoc, NotFound, ValidationFailed, document_errors
from cdp.inputs import JSONInput
from cdp.pagination import CappedCountPagination, Pagination
from cdp.params import choice_param
from cdp.views_support import CapabilityMixin, settings_body
from profiles.collector.normalize import EVENT_TYPES
from profiles.explorer import query as explorer
from profiles.explorer import selectors as explorer_selectors
from profiles.explorer.pagination import ExplorerPagination
from profiles.explorer.serializers import ExplorerProfileSerializer
from profiles.identity import selectors, services
from profiles.identity.rules import rules_row
from profiles.identity.serializers import (
    ConflictSerializer,
    GraphSerializer,
    IdentityRulesSerializer,
    MergeSerializer,
    ProfileSummarySerializer,
    SplitSerializer,
    profile_detail,
)
from profiles.models import ConflictReason, MergeStatus, Profile
from profiles.serializers import EventSerializer

document_errors(ErrorDoc("already_split", 409, "the merge was split already"))


class ProfileViewSet(CapabilityMixin, viewsets.GenericViewSet):
    """Unified profiles. The list is the profile explorer's (profiles/explorer): search, sort
    and filters as its page's URL has them. A merged-away id resolves to the survivor."""

    serializer_class = ProfileSummarySerializer
    pagination_class = Pagination
    queryset = Profile.objects.none()

    def _profile(self, pk: str) -> Profile:
        self.require("profiles.view")
        profile = selectors.profile_get(workspace=self.workspace, profile_id=pk)
        if profile is None:
            raise NotFound(f"No profile {pk} in this workspace.")
        return profile

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "q",
                str,
                description="search: every word in a name, email or phone (traits), or the "
                "whole text as an identifier value (exact or prefix) or a profile id; "
                "`<type>:<value>` (e.g. `email:a@b.com`) is one exact identifier",
            ),
            OpenApiParameter("identifier", str, description="<type>:<value>, e.g. email:a@b.com"),
            OpenApiParameter(
                "order",
                str,
                description="created, last_seen, first_seen, revenue, orders, events, "
                "engagement or computed:<computed trait key>; a leading - sorts descending "
                "(default -created); absent values come last either way",
            ),
            OpenApiParameter(
                "rfm", str, many=True, description="RFM segment(s), repeated or comma-separated"
            ),
            OpenApiParameter(
                "segment", str, description="current members of a published segment (key or id)"
            ),
            OpenApiParameter(
                "rule", str, description="a segment rule (JSON) the profiles must match"
            ),
        ],
        responses=ExplorerProfileSerializer(many=True),
    )
    def list(self, request: Request) -> Response:
        self.require("profiles.view")
        query = explorer.parse_query(
            workspace=self.workspace,
            params=request.query_params,
            can=lambda capability: access.can(request.user, self.workspace, capability),
        )
        found = explorer_selectors.profile_explore(workspace=self.workspace, query=query)
        self._paginator = ExplorerPagination(narrowed=query.narrowed)
        ids = self.paginate_queryset(found.values_list("id", flat=True)) or []
        profiles = explorer_selectors.profiles_in_order(workspace=self.workspace, ids=list(ids))
        rows = ExplorerProfileSerializer(
            profiles, many=True, context={"sort_key": query.sort.computed_key}
        )
        return self.get_paginated_response(rows.data)

    def retrieve(self, request: Request, pk: str) -> Response:
        profile = self._profile(pk)
        return Response(profile_detail(profile, requested_id=int(pk)))

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "type", str, enum=[*EVENT_TYPES], description="only events of this type"
            ),
            OpenApiParameter("event", str, description="only this track event or page/screen name"),
        ],
        responses=EventSerializer(many=True),
    )
    @action(detail=True, methods=["get"], pagination_class=CappedCountPagination)
    def events(self, request: Request, pk: str) -> Response:
        """The profile's event timeline, newest first (by event time)."""
        profile = self._profile(pk)
        self.require("events.view")
        rows = selectors.profile_events(
            profile=profile,
            event_type=choice_param(request.query_params.get("type"), "type", EVENT_TYPES) or None,
            event_name=_event_name(request.query_params.get("event")),
        )
        page = self.paginate_queryset(rows)
        events = selectors.events_for(list(page or []))
        return self.get_paginated_response(EventSerializer(events, many=True).data)

    @extend_schema(request=SplitSerializer, responses={200: dict})
    @action(detail=True, methods=["post"])
    def split(self, request: Request, pk: str) -> Response:
        """Undo one merge of this profile: the merged-in profile gets back its identifiers
        and events, both are recomputed, and the pair is kept apart from then on."""
        profile = self._profile(pk)
        self.require("profiles.split")
        serializer = SplitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        merge_id = serializer.validated_data["merge"]
        if not selectors.profile_merges(profile=profile).filter(pk=merge_id).exists():
            raise NotFound(f"Merge {merge_id} does not belong to profile {profile.pk}.")
        result = services.profile_split(
            workspace=self.workspace, merge_id=merge_id, actor=request.user
        )
        survivor = selectors.profile_get(workspace=self.workspace, profile_id=result.survivor_id)
        restored = selectors.profile_get(workspace=self.workspace, profile_id=result.restored_id)
        assert survivor is not None and restored is not None
        return Response(
            {
                "merge": MergeSerializer(result.merge).data,
                "identities_moved": result.identities_moved,
                "events_moved": result.events_moved,
                "profiles": [profile_detail(survivor), profile_detail(restored)],
            }
        )

    @extend_schema(responses=GraphSerializer)
    @action(detail=True, methods=["get"])
    def graph(self, request: Request, pk: str) -> Response:
        """The profile's identity graph with layout positions (0..1) for drawing."""
        from profiles.identity.graph import profile_graph

        profile = self._profile(pk)
        return Response(profile_graph(profile_id=profile.pk))


IDENTITY_RULE_FIELDS = [
    "priority",
    "limits",
    "blocklist",
    "custom_identifier_traits",
    "trait_strategies",
    "order_event",
    "phone_region",
]


class IdentityRulesView(CapabilityMixin, APIView):
    """The workspace's identity rules: priority, limits, blocklist, custom identifier traits,
    trait merge strategies, and the event that counts as an order."""

    @extend_schema(responses=IdentityRulesSerializer)
    def get(self, request: Request) -> Response:
        self.require("identity_rules.view")
        return Response(IdentityRulesSerializer(rules_row(self.workspace.pk)).data)

    @extend_schema(request=IdentityRulesSerializer, responses=IdentityRulesSerializer)
    def patch(self, request: Request) -> Response:
        self.require("identity_rules.manage")
        data = settings_body(
            request, IDENTITY_RULE_FIELDS, what="identity rule", reject_unknown=False
        )
        row = services.identity_rules_update(
            workspace=self.workspace, data=data, actor=request.user
        )
        return Response(IdentityRulesSerializer(row).data)

    put = patch


class ConflictViewSet(CapabilityMixin, viewsets.GenericViewSet):
    """Merges the identity rules refused (limit exceeded, or profiles split apart)."""

    serializer_class = ConflictSerializer
    pagination_class = Pagination

    @extend_schema(parameters=[OpenApiParameter("reason", str, enum=ConflictReason.values)])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.require("profiles.view")
        reason = choice_param(request.query_params.get("reason"), "reason", ConflictReason.values)
        rows = selectors.conflict_list(workspace=self.workspace, reason=reason or None)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(ConflictSerializer(page, many=True).data)


class MergeViewSet(CapabilityMixin, viewsets.GenericViewSet):
    """Audit trail of merges: which event linked which identifiers under which rule."""

    serializer_class = MergeSerializer
    pagination_class = Pagination

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=MergeStatus.values)])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.require("profiles.view")
        status_ = choice_param(request.query_params.get("status"), "status", MergeStatus.values)
        rows = selectors.merge_list(workspace=self.workspace, status=status_ or None)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(MergeSerializer(page, many=True).data)


class RebuildSerializer(JSONInput):
    dry_run = serializers.BooleanField(default=False)


class IdentityRebuildView(CapabilityMixin, APIView):
    """The full identity-graph rebuild (connected components with limit-aware splitting).
    POST queues it (202); GET returns the report of the latest run."""

    @extend_schema(responses=dict)
    def get(self, request: Request) -> Response:
        self.require("identity_rules.view")
        return Response(rules_row(self.workspace.pk).last_rebuild or {})

    @extend_schema(
        request=RebuildSerializer,
        responses={
            202: inline_serializer(
                "RebuildQueued",
                {"queued": serializers.BooleanField(), "dry_run": serializers.BooleanField()},
            )
        },
    )
    def post(self, request: Request) -> Response:
        self.require("identity_rules.manage")
        serializer = RebuildSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        dry_run = serializer.validated_data["dry_run"]
        services.identity_rebuild_request(
            workspace=self.workspace, dry_run=dry_run, actor=request.user
        )
        return Response({"queued": True, "dry_run": dry_run}, status=status.HTTP_202_ACCEPTED)


def _event_name(value: str | None) -> str | None:
    """The timeline's event-name filter: absent, or a name of at most 255 characters."""
    if not value:
        return None
    if len(value) > 255:
        raise ValidationFailed.at("event", "expected an event name of at most 255 characters")
    return value
