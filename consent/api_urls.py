from django.urls import path

from cdp.routers import OptionalSlashRouter
from consent import apis

router = OptionalSlashRouter()
router.register("consent/purposes", apis.PurposeViewSet, basename="consent-purpose")
router.register("consent/events", apis.ConsentEventViewSet, basename="consent-event")
router.register("privacy/requests", apis.PrivacyRequestViewSet, basename="privacy-request")

urlpatterns = [
    path("privacy/retention/", apis.RetentionView.as_view(), name="api-retention"),
    path(
        "privacy/retention/pending/",
        apis.RetentionPendingView.as_view(),
        name="api-retention-pending",
    ),
    path("privacy/suppression/", apis.SuppressionView.as_view(), name="api-suppression"),
    path("privacy/settings/", apis.PrivacySettingsView.as_view(), name="api-privacy-settings"),
    *router.urls,
]
