from __future__ import annotations

from rest_framework import serializers

from cdp.inputs import JSONInput
from cdp.params import BIGINT_MAX, INT_MAX
from consent.models import (
    ConsentRecord,
    ConsentStatus,
    LegalBasis,
    PrivacyPropagation,
    PrivacyRequest,
    PrivacyRequestType,
    Purpose,
)


class PurposeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Purpose
        fields = [
            "id",
            "key",
            "name",
            "description",
            "legal_basis",
            "default_granted",
            "created_at",
        ]


class PurposeInputSerializer(JSONInput):
    key = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    legal_basis = serializers.ChoiceField(choices=LegalBasis.choices)
    default_granted = serializers.BooleanField(required=False, allow_null=True, default=None)


class ConsentRecordSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConsentRecord
        fields = [
            "id",
            "profile_id",
            "origin_profile_id",
            "purpose",
            "status",
            "occurred_at",
            "recorded_at",
            "source",
            "event_id",
            "message_id",
            "policy_version",
            "ip",
            "user_agent",
            "actor_id",
        ]


class ConsentEventInputSerializer(JSONInput):
    """A decision: for a profile (id) or an identifier ("email:ann@example.com")."""

    profile_id = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX, required=False)
    identifier = serializers.CharField(required=False, max_length=600)
    purpose = serializers.CharField(max_length=64)
    status = serializers.ChoiceField(choices=ConsentStatus.choices)
    occurred_at = serializers.DateTimeField(required=False)
    policy_version = serializers.CharField(required=False, allow_blank=True, default="")
    message_id = serializers.CharField(required=False, allow_blank=True, default="")
    ip = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)
    user_agent = serializers.CharField(required=False, allow_blank=True, default="")


class RetentionPolicySerializer(serializers.Serializer):
    event_days = serializers.IntegerField(max_value=INT_MAX, allow_null=True)
    failed_event_days = serializers.IntegerField(max_value=INT_MAX, allow_null=True)
    default_event_days = serializers.IntegerField(read_only=True)
    default_failed_event_days = serializers.IntegerField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    last_run_at = serializers.DateTimeField(read_only=True, allow_null=True)
    last_run = serializers.JSONField(read_only=True)
    pending = serializers.JSONField(
        read_only=True,
        allow_null=True,
        help_text="A shortening waiting out its grace period: event_days, failed_event_days, "
        "effective_at (DELETE privacy/retention/pending/ cancels it).",
    )


class PrivacySettingsSerializer(serializers.Serializer):
    two_person_approval = serializers.BooleanField()
    pii_traits = serializers.ListField(
        child=serializers.CharField(),
        help_text="Traits left out of member exports for roles that may not see personal "
        "data (with the email and phone identifiers).",
    )
    updated_at = serializers.DateTimeField(read_only=True)


class PrivacyRequestInputSerializer(JSONInput):
    type = serializers.ChoiceField(choices=PrivacyRequestType.choices)
    identifier = serializers.CharField(max_length=320)
    suppress = serializers.BooleanField(required=False, default=True)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class PrivacyPropagationSerializer(serializers.ModelSerializer):
    class Meta:
        model = PrivacyPropagation
        fields = ["destination", "status", "attempts", "error", "detail", "updated_at"]


class PrivacyRequestSerializer(serializers.ModelSerializer):
    identifier = serializers.SerializerMethodField()
    requested_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    approved_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    overdue = serializers.SerializerMethodField()
    download = serializers.SerializerMethodField()
    propagations = PrivacyPropagationSerializer(many=True, read_only=True)

    class Meta:
        model = PrivacyRequest
        fields = [
            "id",
            "type",
            "status",
            "identifier",
            "identifier_type",
            "suppress",
            "note",
            "requested_by",
            "approved_by",
            "created_at",
            "due_at",
            "overdue",
            "extended_at",
            "extension_reason",
            "approved_at",
            "started_at",
            "completed_at",
            "attempts",
            "error",
            "receipt",
            "download",
            "propagations",
        ]

    def get_identifier(self, obj: PrivacyRequest) -> str | None:
        """In clear while needed; null once the person's identifiers were forgotten."""
        return f"{obj.identifier_type}:{obj.identifier_value}" if obj.identifier_value else None

    def get_overdue(self, obj: PrivacyRequest) -> bool:
        return obj.overdue

    def get_download(self, obj: PrivacyRequest) -> str | None:
        if obj.type != "export" or obj.status != "completed" or obj.receipt.get("expired_at"):
            return None
        return f"/api/v1/privacy/requests/{obj.pk}/download/"


class ExtendSerializer(JSONInput):
    days = serializers.JSONField(help_text="1 to 60")
    reason = serializers.CharField(allow_blank=True, max_length=2000)


class SuppressionImportSerializer(JSONInput):
    # strings checked by the service, whose errors give each bad one's position
    identifiers = serializers.ListField(child=serializers.JSONField(), allow_empty=True)
