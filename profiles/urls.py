from django.urls import path

from profiles import views
from profiles.explorer import views as explorer_views
from profiles.identity import views as identity_views

urlpatterns = [
    path("sources/", views.sources, name="ui-sources"),
    path("sources/new/", views.source_create, name="ui-source-create"),
    path("sources/<int:source_id>/", views.source_detail, name="ui-source"),
    path("sources/<int:source_id>/rotate/", views.source_rotate_key, name="ui-source-rotate"),
    path("sources/<int:source_id>/toggle/", views.source_toggle, name="ui-source-toggle"),
    path("sources/<int:source_id>/origins/", views.source_origins, name="ui-source-origins"),
    path(
        "sources/<int:source_id>/dead-letter-quota/",
        views.source_dead_letter_quota,
        name="ui-source-dead-letter-quota",
    ),
    path(
        "sources/<int:source_id>/keys/<int:key_id>/revoke/",
        views.source_revoke_key,
        name="ui-source-revoke-key",
    ),
    path("debugger/", views.debugger, name="ui-debugger"),
    path("schema/", views.schema, name="ui-schema"),
    path("profiles/", explorer_views.profile_list, name="ui-profiles"),
    path("profiles/views/", explorer_views.saved_view_save, name="ui-profile-view-save"),
    path(
        "profiles/views/<int:view_id>/delete/",
        explorer_views.saved_view_delete,
        name="ui-profile-view-delete",
    ),
    path("profiles/actions/<slug:key>/", explorer_views.explorer_action, name="ui-profile-action"),
    path("profiles/merges/", identity_views.merge_log, name="ui-identity-merges"),
    path("profiles/conflicts/", identity_views.conflict_log, name="ui-identity-conflicts"),
    path("profiles/<int:profile_id>/", views.profile_detail, name="ui-profile"),
    path("profiles/<int:profile_id>/split/", identity_views.profile_split, name="ui-profile-split"),
    path("settings/identity/", identity_views.identity_rules, name="ui-identity-rules"),
    path(
        "settings/identity/rebuild/",
        identity_views.identity_rebuild,
        name="ui-identity-rebuild",
    ),
]
