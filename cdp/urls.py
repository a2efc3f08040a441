from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from cdp import apis as cdp_apis
from cdp.ui import urls as ui_urls
from consent import apis as consent_apis
from profiles import apis as profile_apis
from profiles.collector import urls as collector_urls
from profiles.computed import apis as computed_apis
from profiles.identity import apis as identity_apis
from segments import apis as segment_apis


class OptionalSlashRouter(SimpleRouter):
    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("sources", profile_apis.SourceViewSet, basename="source")
router.register("events", profile_apis.EventViewSet, basename="event")
router.register("failed-events", profile_apis.FailedEventViewSet, basename="failed-event")
router.register("computed-traits", computed_apis.ComputedTraitViewSet, basename="computed-trait")
router.register("profiles", identity_apis.ProfileViewSet, basename="profile")
router.register("segments", segment_apis.SegmentViewSet, basename="segment")
router.register("identity/conflicts", identity_apis.ConflictViewSet, basename="identity-conflict")
router.register("identity/merges", identity_apis.MergeViewSet, basename="identity-merge")
router.register("consent/purposes", consent_apis.PurposeViewSet, basename="consent-purpose")
router.register("consent/events", consent_apis.ConsentEventViewSet, basename="consent-event")
router.register("privacy/requests", consent_apis.PrivacyRequestViewSet, basename="privacy-request")

api_v1 = [
    path("me/", cdp_apis.MeView.as_view(), name="api-me"),
    path("tokens/", cdp_apis.TokenListView.as_view(), name="api-tokens"),
    path("tokens/<int:pk>/revoke/", cdp_apis.TokenRevokeView.as_view(), name="api-token-revoke"),
    path("server-keys/", cdp_apis.ServerKeyListView.as_view(), name="api-server-keys"),
    path(
        "server-keys/<int:pk>/revoke/",
        cdp_apis.ServerKeyRevokeView.as_view(),
        name="api-server-key-revoke",
    ),
    path("members/", cdp_apis.MemberListView.as_view(), name="api-members"),
    path("schema/observed/", profile_apis.SchemaView.as_view(), name="api-observed-schema"),
    path("identity/rules/", identity_apis.IdentityRulesView.as_view(), name="api-identity-rules"),
    path(
        "identity/rebuild/",
        identity_apis.IdentityRebuildView.as_view(),
        name="api-identity-rebuild",
    ),
    path("privacy/retention/", consent_apis.RetentionView.as_view(), name="api-retention"),
    path("privacy/suppression/", consent_apis.SuppressionView.as_view(), name="api-suppression"),
    path(
        "privacy/settings/", consent_apis.PrivacySettingsView.as_view(), name="api-privacy-settings"
    ),
    *router.urls,
]

urlpatterns = [
    *collector_urls.urlpatterns,
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="openapi-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="openapi-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="openapi-schema"), name="api-redoc"),
    path("admin/", admin.site.urls),
    *ui_urls.urlpatterns,
]
