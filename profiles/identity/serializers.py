from __future__ import annotations

from typing import Any

from rest_framework import serializers

from cdp.inputs import JSONInput
from cdp.params import BIGINT_MAX, INT_MAX
from profiles import panels
from profiles.computed.selectors import profile_computed_traits
from profiles.identity import selectors
from profiles.models import Identity, IdentityConflict, Profile, ProfileMerge


class IdentitySerializer(serializers.ModelSerializer):
    class Meta:
        model = Identity
        fields = ["type", "value", "first_seen"]


class ProfileSummarySerializer(serializers.ModelSerializer):
    """A profile in a list: id, identities, the headline traits and aggregates."""

    display_name = serializers.SerializerMethodField()
    identities = serializers.SerializerMethodField()

    class Meta:
        model = Profile
        fields = [
            "id",
            "display_name",
            "identities",
            "first_seen",
            "last_seen",
            "event_count",
            "order_count",
            "revenue",
        ]

    def get_display_name(self, obj: Profile) -> str:
        return selectors.display_name(obj, list(obj.identities.all()))

    def get_identities(self, obj: Profile) -> list[dict[str, str]]:
        return [{"type": i.type, "value": i.value} for i in obj.identities.all()]


class MergeSerializer(serializers.ModelSerializer):
    split_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )

    class Meta:
        model = ProfileMerge
        fields = [
            "id",
            "winner",
            "loser",
            "event_id",
            "message_id",
            "identifiers",
            "rule",
            "detail",
            "created_at",
            "status",
            "split_at",
            "split_by",
        ]


class ConflictSerializer(serializers.ModelSerializer):
    class Meta:
        model = IdentityConflict
        fields = [
            "id",
            "profile",
            "other_profile",
            "event_id",
            "message_id",
            "identifier_type",
            "identifier_value",
            "reason",
            "detail",
            "created_at",
        ]


def profile_detail(profile: Profile, *, requested_id: int | None = None) -> dict[str, Any]:
    """The 360° representation of DESIGN.md: identities, traits, computed traits, groups,
    merges and conflicts, plus the sections other apps contribute as profile panels
    (segments, consents)."""
    identities = selectors.profile_identities(profile=profile)
    data: dict[str, Any] = {
        "id": profile.pk,
        "display_name": selectors.display_name(profile, identities),
        "identities": IdentitySerializer(identities, many=True).data,
        "traits": profile.traits,
        "computed_traits": profile_computed_traits(profile),
        "groups": profile.group_ids,
        **panels.api_sections(profile),
        "first_seen": profile.first_seen,
        "last_seen": profile.last_seen,
        "created_at": profile.created_at,
        "merges": MergeSerializer(selectors.profile_merges(profile=profile)[:50], many=True).data,
        "conflicts": ConflictSerializer(
            selectors.profile_conflicts(profile=profile)[:50], many=True
        ).data,
    }
    if requested_id is not None and requested_id != profile.pk:
        data["resolved_from"] = requested_id  # the id asked for was merged into this one
    return data


class GraphNodeSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="the identity's id")
    type = serializers.CharField()
    value = serializers.CharField()
    profile_id = serializers.IntegerField()
    foreign = serializers.BooleanField(help_text="belongs to another profile (a refused link)")
    first_seen = serializers.DateTimeField(allow_null=True)
    x = serializers.FloatField(help_text="layout position, 0..1")
    y = serializers.FloatField(help_text="layout position, 0..1")


class GraphEdgeSerializer(serializers.Serializer):
    source = serializers.IntegerField()  # type: ignore[assignment]
    target = serializers.IntegerField()
    cross = serializers.BooleanField(help_text="links identities of two profiles")


class GraphSerializer(serializers.Serializer):
    profile_id = serializers.IntegerField(help_text="the live profile (a merged one's survivor)")
    nodes = GraphNodeSerializer(many=True)
    edges = GraphEdgeSerializer(many=True)
    truncated = serializers.BooleanField()
    total_nodes = serializers.IntegerField()


class SplitSerializer(JSONInput):
    merge = serializers.IntegerField(
        min_value=1, max_value=BIGINT_MAX, help_text="id of the merge to undo (see `merges`)"
    )


class IdentityRulesSerializer(serializers.Serializer):
    priority = serializers.ListField(child=serializers.CharField())
    limits = serializers.DictField(child=serializers.IntegerField(min_value=0, max_value=INT_MAX))
    blocklist = serializers.ListField(child=serializers.CharField(allow_blank=True))
    custom_identifier_traits = serializers.ListField(child=serializers.CharField())
    trait_strategies = serializers.DictField(child=serializers.CharField())
    order_event = serializers.CharField()
    phone_region = serializers.CharField(allow_blank=True)
    version = serializers.IntegerField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
