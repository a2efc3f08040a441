from django.urls import path

from cdp.routers import OptionalSlashRouter
from profiles import apis
from profiles.computed import apis as computed_apis
from profiles.identity import apis as identity_apis

router = OptionalSlashRouter()
router.register("sources", apis.SourceViewSet, basename="source")
router.register("events", apis.EventViewSet, basename="event")
router.register("failed-events", apis.FailedEventViewSet, basename="failed-event")
router.register("computed-traits", computed_apis.ComputedTraitViewSet, basename="computed-trait")
router.register("profiles", identity_apis.ProfileViewSet, basename="profile")
router.register("identity/conflicts", identity_apis.ConflictViewSet, basename="identity-conflict")
router.register("identity/merges", identity_apis.MergeViewSet, basename="identity-merge")

urlpatterns = [
    path("schema/observed/", apis.SchemaView.as_view(), name="api-observed-schema"),
    path("identity/rules/", identity_apis.IdentityRulesView.as_view(), name="api-identity-rules"),
    path(
        "identity/rebuild/",
        identity_apis.IdentityRebuildView.as_view(),
        name="api-identity-rebuild",
    ),
    *router.urls,
]
