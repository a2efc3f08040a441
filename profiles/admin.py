from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from profiles.models import FailedEvent, Source


@admin.register(Source)
class SourceAdmin(GuardedModelAdmin):
    """Guarded: per-object grants (e.g. one marketer may manage one source)."""

    list_display = ["name", "workspace", "kind", "enabled", "created_at"]
    list_filter = ["workspace", "kind", "enabled"]


@admin.register(FailedEvent)
class FailedEventAdmin(admin.ModelAdmin):
    list_display = ["received_at", "workspace", "source", "reason", "status"]
    list_filter = ["reason", "status", "workspace"]
