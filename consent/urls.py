from django.urls import path

from consent import views

urlpatterns = [
    path("privacy/", views.requests_page, name="ui-privacy"),
    path("privacy/requests/<int:request_id>/", views.request_detail, name="ui-privacy-request"),
    path(
        "privacy/requests/<int:request_id>/approve/",
        views.request_approve,
        name="ui-privacy-request-approve",
    ),
    path(
        "privacy/requests/<int:request_id>/extend/",
        views.request_extend,
        name="ui-privacy-request-extend",
    ),
    path("privacy/suppression/", views.suppression, name="ui-privacy-suppression"),
    path("privacy/purposes/", views.purposes, name="ui-privacy-purposes"),
    path("privacy/retention/", views.retention_page, name="ui-privacy-retention"),
    path("privacy/audit/", views.audit_log, name="ui-privacy-audit"),
    path(
        "profiles/<int:profile_id>/consent/",
        views.profile_consent_record,
        name="ui-profile-consent",
    ),
]
