"""/api/v1/consent/: purposes, decisions (append-only: create and read, never change)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.errors import NON_FIELD, ErrorDoc, NotFound, ValidationFailed, document_errors
from cdp.pagination import Pagination
from cdp.params import choice_param, is_id
from cdp.views_support import CapabilityMixin, settings_body
from consent import privacy, retention, selectors, services, suppression
from consent.models import (
    DEFAULT_EVENT_RETENTION_DAYS,
    DEFAULT_FAILED_EVENT_RETENTION_DAYS,
    ConsentRecord,
    PrivacyRequest,
    PrivacyRequestStatus,
    PrivacyRequestType,
    Purpose,
    RetentionPolicy,
)
from consent.serializers import (
    ConsentEventInputSerializer,
    ConsentRecordSerializer,
    ExtendSerializer,
    PrivacyRequestInputSerializer,
    PrivacyRequestSerializer,
    PrivacySettingsSerializer,
    PurposeInputSerializer,
    PurposeSerializer,
    RetentionPolicySerializer,
    SuppressionImportSerializer,
)
from profiles.identity.selectors import profile_list

document_errors(
    ErrorDoc(
        "not_pending",
        409,
        "only a request pending approval (or one that failed) can be approved",
        '{"status": the request\'s status}',
    ),
    ErrorDoc(
        "second_approver_required",
        403,
        "two-person approval is on and you recorded the request: another privacy manager "
        "approves it",
    ),
    ErrorDoc("not_open", 409, "the request is completed: its deadline cannot be extended"),
    ErrorDoc("already_extended", 409, "a deadline can be extended once"),
    ErrorDoc("no_pending_cut", 409, "no shortening of retention is waiting to be cancelled"),
    ErrorDoc(
        "export_expired",
        404,
        "the export bundle was deleted after CDP_PRIVACY_EXPORT_DAYS: record a new request",
    ),
)


class PurposeViewSet(CapabilityMixin, viewsets.GenericViewSet):
    """Purposes personal data is used for, each with its legal basis and default."""

    serializer_class = PurposeSerializer
    queryset = Purpose.objects.none()
    pagination_class = Pagination

    def list(self, request: Request) -> Response:
        self.require("consent.view")
        page = self.paginate_queryset(selectors.purpose_list(workspace=self.workspace))
        return self.get_paginated_response(PurposeSerializer(page, many=True).data)

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

    @extend_schema(responses=dict)
    @action(detail=False, methods=["get"])
    def overview(self, request: Request) -> Response:
        """Per purpose, across the workspace's people: how many granted, denied, withdrawn or
        never decided, how many it may use now (the enforcement rule, counted for everyone)
        and the decisions recorded in the last 30 days."""
        self.require("consent.view")
        profiles, rows = selectors.consent_overview(workspace=self.workspace)
        return Response(
            {
                "profiles": profiles,
                "recent_days": selectors.RECENT_DAYS,
                "results": [
                    {
                        "purpose": row.purpose.key,
                        "legal_basis": row.purpose.legal_basis,
                        "default_granted": row.purpose.default_granted,
                        "granted": row.granted,
                        "denied": row.denied,
                        "withdrawn": row.withdrawn,
                        "undecided": row.undecided,
                        "allowed": row.allowed,
                        "recent_granted": row.recent_granted,
                        "recent_refused": row.recent_refused,
                    }
                    for row in rows
                ],
            }
        )


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
        profile = request.query_params.get("profile")
        if profile is not None and not is_id(profile):
            raise ValidationFailed.at("profile", "expected a profile id")
        rows = selectors.consent_records(
            workspace=self.workspace,
            profile_id=int(profile) if profile is not None else None,
            purpose=services.normalise_purpose(request.query_params.get("purpose") or ""),
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(ConsentRecordSerializer(page, many=True).data)

    @extend_schema(request=ConsentEventInputSerializer, responses=ConsentRecordSerializer)
    def create(self, request: Request) -> Response:
        self.require("consent.manage")
        serializer = ConsentEventInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if ("profile_id" in data) == ("identifier" in data):
            raise ValidationFailed.at(
                NON_FIELD,
                "give exactly one of profile_id or identifier (e.g. email:ann@example.com)",
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


def _retention_data(policy: RetentionPolicy) -> dict[str, Any]:
    return {
        "event_days": policy.event_days,
        "failed_event_days": policy.failed_event_days,
        "default_event_days": DEFAULT_EVENT_RETENTION_DAYS,
        "default_failed_event_days": DEFAULT_FAILED_EVENT_RETENTION_DAYS,
        "updated_at": policy.updated_at,
        "last_run_at": policy.last_run_at,
        "last_run": policy.last_run,
        "pending": policy.pending,
    }


class RetentionView(CapabilityMixin, APIView):
    """How long the workspace keeps events (raw and per profile) and dead-lettered events, in
    days (null: forever). A scheduled job deletes whole days of arrival past the period. A
    shorter period is an owner's decision (403 `owner_required`) and waits out a grace period
    as `pending` before the job applies it."""

    @extend_schema(responses=RetentionPolicySerializer)
    def get(self, request: Request) -> Response:
        self.require("privacy.manage")
        policy = retention.retention_policy_of(workspace=self.workspace)
        return Response(RetentionPolicySerializer(_retention_data(policy)).data)

    @extend_schema(request=RetentionPolicySerializer, responses=RetentionPolicySerializer)
    def patch(self, request: Request) -> Response:
        self.require("privacy.manage")
        data = settings_body(request, ["event_days", "failed_event_days"], what="retention setting")
        current = retention.retention_policy_of(workspace=self.workspace)
        policy = retention.retention_policy_set(
            workspace=self.workspace,
            event_days=data.get("event_days", current.event_days),
            failed_event_days=data.get("failed_event_days", current.failed_event_days),
            actor=request.user,
        )
        return Response(RetentionPolicySerializer(_retention_data(policy)).data)

    put = patch


class RetentionPendingView(CapabilityMixin, APIView):
    """The shortening of retention still in its grace period. DELETE cancels it (409
    `no_pending_cut` when there is none)."""

    @extend_schema(request=None, responses=RetentionPolicySerializer)
    def delete(self, request: Request) -> Response:
        self.require("privacy.manage")
        policy = retention.retention_cut_cancel(workspace=self.workspace, actor=request.user)
        return Response(RetentionPolicySerializer(_retention_data(policy)).data)


class PrivacySettingsView(CapabilityMixin, APIView):
    """Rules for privacy requests. `two_person_approval`: whoever records a request cannot
    approve it; another privacy manager must (approving your own answers 403
    `second_approver_required`)."""

    @extend_schema(responses=PrivacySettingsSerializer)
    def get(self, request: Request) -> Response:
        self.require("privacy.manage")
        found = privacy.privacy_settings_of(workspace=self.workspace)
        return Response(PrivacySettingsSerializer(found).data)

    @extend_schema(request=PrivacySettingsSerializer, responses=PrivacySettingsSerializer)
    def patch(self, request: Request) -> Response:
        self.require("privacy.manage")
        data = settings_body(request, ["two_person_approval", "pii_traits"], what="privacy setting")
        current = privacy.privacy_settings_of(workspace=self.workspace)
        saved = privacy.privacy_settings_set(
            workspace=self.workspace,
            two_person_approval=data.get("two_person_approval", current.two_person_approval),
            # absent: unchanged; present, it must be a list (null is refused, with its path)
            pii_traits=data.get("pii_traits", privacy.UNCHANGED),
            actor=request.user,
        )
        return Response(PrivacySettingsSerializer(saved).data)

    put = patch


class SuppressionView(CapabilityMixin, APIView):
    """The suppression list. GET: how many identifiers (only keyed hashes are kept) and events
    dropped. POST `{"identifiers": ["email:a@b.co", ...]}` suppresses them all at once (up to
    10,000; all or nothing: 400 `bad_identifiers` lists every bad one by position)."""

    @extend_schema(responses=dict)
    def get(self, request: Request) -> Response:
        self.require("privacy.manage")
        return Response(
            {"suppressed": suppression.suppression_count(workspace_id=self.workspace.pk)}
        )

    @extend_schema(
        request=SuppressionImportSerializer,
        responses={
            201: inline_serializer(
                "SuppressionImported",
                {"added": serializers.IntegerField(), "already": serializers.IntegerField()},
            )
        },
    )
    def post(self, request: Request) -> Response:
        self.require("privacy.manage")
        serializer = SuppressionImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = suppression.suppression_import(
            workspace=self.workspace,
            lines=serializer.validated_data["identifiers"],
            actor=request.user,
        )
        return Response(
            {"added": result.added, "already": result.already}, status=status.HTTP_201_CREATED
        )


class PrivacyRequestViewSet(CapabilityMixin, viewsets.GenericViewSet):
    """GDPR/CCPA requests: export, delete, suppress, unsuppress. Owners, admins and privacy
    officers only. A request waits for approval; approving it queues its execution."""

    serializer_class = PrivacyRequestSerializer
    pagination_class = Pagination
    queryset = PrivacyRequest.objects.none()

    def _one(self, pk: str) -> PrivacyRequest:
        found = selectors.privacy_request_get(workspace=self.workspace, request_id=pk)
        if found is None:
            raise NotFound(f"No privacy request {pk} in this workspace.")
        return found

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=PrivacyRequestStatus.values),
            OpenApiParameter("type", str, enum=PrivacyRequestType.values),
            OpenApiParameter(
                "due",
                str,
                enum=list(selectors.DEADLINE_FILTERS),
                description="overdue, or due within 7 days (open requests, most urgent first)",
            ),
        ],
    )
    def list(self, request: Request) -> Response:
        self.require("privacy.manage")
        params = request.query_params
        rows = selectors.privacy_request_list(
            workspace=self.workspace,
            status=choice_param(params.get("status"), "status", PrivacyRequestStatus.values),
            type=choice_param(params.get("type"), "type", PrivacyRequestType.values),
            due=choice_param(params.get("due"), "due", selectors.DEADLINE_FILTERS),
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(PrivacyRequestSerializer(page, many=True).data)

    @extend_schema(request=PrivacyRequestInputSerializer, responses=PrivacyRequestSerializer)
    def create(self, request: Request) -> Response:
        self.require("privacy.manage")
        serializer = PrivacyRequestInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        made = privacy.privacy_request_create(
            workspace=self.workspace,
            type=data["type"],
            identifier=data["identifier"],
            suppress=data["suppress"],
            note=data["note"],
            actor=request.user,
        )
        return Response(
            PrivacyRequestSerializer(self._one(str(made.pk))).data,
            status=status.HTTP_201_CREATED,
        )

    def retrieve(self, request: Request, pk: str) -> Response:
        self.require("privacy.manage")
        found = self._one(pk)
        data = PrivacyRequestSerializer(found).data
        data["audit"] = [
            {
                "action": row.action,
                "actor": row.actor.get_username() if row.actor else None,
                "at": row.created_at,
                "detail": row.detail,
            }
            for row in selectors.privacy_request_trail(request=found)
        ]
        return Response(data)

    @extend_schema(request=ExtendSerializer, responses=PrivacyRequestSerializer)
    @action(detail=True, methods=["post"])
    def extend(self, request: Request, pk: str) -> Response:
        """Push the due date back by up to 60 days, once, with the reason the person is told
        (409 `already_extended` or `not_open`)."""
        self.require("privacy.manage")
        serializer = ExtendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        extended = privacy.privacy_request_extend(
            request=self._one(pk),
            days=serializer.validated_data["days"],
            reason=serializer.validated_data["reason"],
            actor=request.user,
        )
        return Response(PrivacyRequestSerializer(self._one(str(extended.pk))).data)

    @extend_schema(request=None, responses=PrivacyRequestSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        self.require("privacy.manage")
        approved = privacy.privacy_request_approve(request=self._one(pk), actor=request.user)
        return Response(PrivacyRequestSerializer(self._one(str(approved.pk))).data)

    @extend_schema(responses={(200, "application/json"): bytes})
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: str) -> HttpResponse:
        self.require("privacy.manage")
        content = privacy.privacy_export_content(request=self._one(pk), actor=request.user)
        response = HttpResponse(content, content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="privacy-export-{pk}.json"'
        return response
