from django.contrib.auth import views as auth_views
from django.urls import path

from cdp.ui import privacy_views, profile_views, segment_views, views

urlpatterns = [
    path("", views.home, name="ui-home"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="registration/login.html"),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("workspace/switch/", views.switch_workspace, name="ui-switch-workspace"),
    path("sources/", views.sources, name="ui-sources"),
    path("sources/new/", views.source_create, name="ui-source-create"),
    path("sources/<int:source_id>/", views.source_detail, name="ui-source"),
    path("sources/<int:source_id>/rotate/", views.source_rotate_key, name="ui-source-rotate"),
    path("sources/<int:source_id>/toggle/", views.source_toggle, name="ui-source-toggle"),
    path(
        "sources/<int:source_id>/keys/<int:key_id>/revoke/",
        views.source_revoke_key,
        name="ui-source-revoke-key",
    ),
    path("profiles/", profile_views.profile_list, name="ui-profiles"),
    path("profiles/merges/", profile_views.merge_log, name="ui-identity-merges"),
    path("profiles/conflicts/", profile_views.conflict_log, name="ui-identity-conflicts"),
    path("profiles/<int:profile_id>/", profile_views.profile_detail, name="ui-profile"),
    path("profiles/<int:profile_id>/split/", profile_views.profile_split, name="ui-profile-split"),
    path(
        "profiles/<int:profile_id>/consent/",
        profile_views.profile_consent_record,
        name="ui-profile-consent",
    ),
    path("segments/", segment_views.segment_list, name="ui-segments"),
    path("segments/new/", segment_views.segment_new, name="ui-segment-new"),
    path("segments/<int:segment_id>/", segment_views.segment_detail, name="ui-segment"),
    path("privacy/", privacy_views.requests_page, name="ui-privacy"),
    path(
        "privacy/requests/<int:request_id>/",
        privacy_views.request_detail,
        name="ui-privacy-request",
    ),
    path(
        "privacy/requests/<int:request_id>/approve/",
        privacy_views.request_approve,
        name="ui-privacy-request-approve",
    ),
    path(
        "privacy/requests/<int:request_id>/extend/",
        privacy_views.request_extend,
        name="ui-privacy-request-extend",
    ),
    path("privacy/suppression/", privacy_views.suppression, name="ui-privacy-suppression"),
    path("privacy/purposes/", privacy_views.purposes, name="ui-privacy-purposes"),
    path("privacy/retention/", privacy_views.retention_page, name="ui-privacy-retention"),
    path("privacy/audit/", privacy_views.audit_log, name="ui-privacy-audit"),
    path("debugger/", views.debugger, name="ui-debugger"),
    path("schema/", views.schema, name="ui-schema"),
    path("settings/", views.settings_page, name="ui-settings"),
    path("settings/identity/", profile_views.identity_rules, name="ui-identity-rules"),
    path("settings/identity/rebuild/", profile_views.identity_rebuild, name="ui-identity-rebuild"),
]
