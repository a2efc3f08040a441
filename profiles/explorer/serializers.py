from __future__ import annotations

from typing import Any

from rest_framework import serializers

from profiles.identity.serializers import ProfileSummarySerializer
from profiles.models import Profile


class ExplorerProfileSerializer(ProfileSummarySerializer):
    """A profile in the explorer's list: the summary, its RFM segment and engagement score,
    and `sort_value`: the computed value the list is sorted by (null for a column sort)."""

    rfm_segment = serializers.SerializerMethodField()
    engagement_score = serializers.SerializerMethodField()
    sort_value = serializers.SerializerMethodField()

    class Meta(ProfileSummarySerializer.Meta):
        fields = [*ProfileSummarySerializer.Meta.fields, "rfm_segment", "engagement_score",
                  "sort_value"]  # fmt: skip

    def _computed(self, obj: Profile) -> dict[str, Any]:
        return obj.computed if isinstance(obj.computed, dict) else {}

    def get_rfm_segment(self, obj: Profile) -> str | None:
        value = self._computed(obj).get("rfm_segment")
        return value if isinstance(value, str) else None

    def get_engagement_score(self, obj: Profile) -> float | None:
        value = self._computed(obj).get("engagement_score")
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    def get_sort_value(self, obj: Profile) -> Any:
        key = self.context.get("sort_key")  # the computed key the list is sorted by
        return self._computed(obj).get(key) if key else None
