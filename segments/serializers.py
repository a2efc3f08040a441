from __future__ import annotations

from typing import Any

from rest_framework import serializers

from cdp.inputs import JSONInput
from cdp.params import BIGINT_MAX
from profiles.identity.serializers import ProfileSummarySerializer
from segments.models import Membership, Segment, SegmentVersion


class VersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = SegmentVersion
        fields = ["number", "rule", "created_at", "published_at"]


class SegmentSerializer(serializers.ModelSerializer):
    published = serializers.SerializerMethodField()
    draft = serializers.SerializerMethodField()
    owner: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    can_manage = serializers.SerializerMethodField()
    trend = serializers.SerializerMethodField()

    class Meta:
        model = Segment
        fields = [
            "id",
            "key",
            "name",
            "description",
            "tags",
            "status",
            "owner",
            "member_count",
            "evaluated_at",
            "published",
            "draft",
            "can_manage",
            "trend",
            "created_at",
            "updated_at",
        ]

    def get_can_manage(self, obj: Segment) -> bool | None:
        """Whether the requesting user may edit, publish and delete it (null outside a
        request)."""
        check = self.context.get("can_manage")
        return bool(check(obj)) if check else None

    def get_trend(self, obj: Segment) -> dict[str, int] | None:
        """Entries and exits over the last 7 days (in lists)."""
        trend = self.context.get("trends", {}).get(obj.pk)
        if trend is None:
            return None
        return {"entered_7d": trend.entered, "exited_7d": trend.exited, "change_7d": trend.change}

    def get_published(self, obj: Segment) -> dict[str, Any] | None:
        v = obj.published_version
        return VersionSerializer(v).data if v else None

    def get_draft(self, obj: Segment) -> dict[str, Any] | None:
        v = obj.draft_version
        return VersionSerializer(v).data if v else None


class SegmentWriteSerializer(JSONInput):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(allow_blank=True, required=False)
    # checked by the service, whose errors name the bad tag's position
    tags = serializers.JSONField(required=False, help_text="a list of up to 10 labels")
    rule = serializers.JSONField(required=False)
    publish = serializers.BooleanField(default=False)


class PreviewSerializer(JSONInput):
    rule = serializers.JSONField()
    sample = serializers.IntegerField(min_value=0, max_value=100, default=20)


class MembershipSerializer(serializers.ModelSerializer):
    class Meta:
        model = Membership
        fields = ["profile_id", "version", "entered_at", "exited_at"]


class GrantSerializer(JSONInput):
    user_id = serializers.IntegerField(min_value=1, max_value=BIGINT_MAX)


class VersionRowSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    state = serializers.ChoiceField(choices=["live", "draft", "earlier"])
    rule = serializers.JSONField(help_text="see rule-schema/")
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    published_at = serializers.DateTimeField(allow_null=True)


class VersionListSerializer(serializers.Serializer):
    results = VersionRowSerializer(many=True)


class DiffSerializer(serializers.Serializer):
    draft_version = serializers.IntegerField()
    members_after = serializers.IntegerField()
    members_now = serializers.IntegerField()
    entering = serializers.IntegerField()
    leaving = serializers.IntegerField()
    entering_sample = ProfileSummarySerializer(many=True)
    leaving_sample = ProfileSummarySerializer(many=True)


class PreviewResultSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    total = serializers.IntegerField(help_text="the workspace's live profiles")
    sample = ProfileSummarySerializer(many=True)
    milliseconds = serializers.IntegerField()


class SizeDaySerializer(serializers.Serializer):
    date = serializers.DateField()
    size = serializers.IntegerField()
    entered = serializers.IntegerField()
    exited = serializers.IntegerField()


class SizesSerializer(serializers.Serializer):
    published_at = serializers.DateTimeField(
        allow_null=True, help_text="first publication: the days start on its UTC day"
    )
    days = SizeDaySerializer(many=True)


class ValueCountSerializer(serializers.Serializer):
    value = serializers.CharField()
    count = serializers.IntegerField(help_text="sampled profiles (events) holding it")


class ValueSuggestionsSerializer(serializers.Serializer):
    values = ValueCountSerializer(many=True)
    distinct = serializers.IntegerField(help_text="distinct values in the sample")
    sampled = serializers.IntegerField(help_text="sampled profiles (events) holding a value")
    low_cardinality = serializers.BooleanField()
    personal = serializers.BooleanField(help_text="a PII trait: values not offered to this role")


class GranteeSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField()
    owner = serializers.BooleanField(help_text="the segment's owner (cannot be revoked)")


class GrantsSerializer(serializers.Serializer):
    grants = GranteeSerializer(many=True)


class DuplicateSerializer(JSONInput):
    name = serializers.CharField(max_length=200, required=False)
