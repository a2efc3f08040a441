from django.urls import path

from activation import apis
from activation.decisions import apis as decision_apis
from activation.experiments import apis as experiment_apis
from cdp.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("experiments", experiment_apis.ExperimentViewSet, basename="experiment")
router.register("metrics", experiment_apis.MetricViewSet, basename="metric")
router.register("placements", decision_apis.PlacementViewSet, basename="placement")
router.register("offers", decision_apis.OfferViewSet, basename="offer")

urlpatterns = [
    path("server-keys/", apis.ServerKeyListView.as_view(), name="api-server-keys"),
    path(
        "server-keys/<int:pk>/revoke/",
        apis.ServerKeyRevokeView.as_view(),
        name="api-server-key-revoke",
    ),
    path("destinations/", apis.DestinationListView.as_view(), name="api-destinations"),
    path("destinations/kinds/", apis.DestinationKindsView.as_view(), name="api-destination-kinds"),
    path(
        "destinations/<int:pk>/",
        apis.DestinationDetailView.as_view(),
        name="api-destination",
    ),
    path(
        "destinations/<int:pk>/test/",
        apis.DestinationTestView.as_view(),
        name="api-destination-test",
    ),
    path(
        "destinations/<int:pk>/health/",
        apis.DestinationHealthView.as_view(),
        name="api-destination-health",
    ),
    path("syncs/", apis.SyncListView.as_view(), name="api-syncs"),
    path("syncs/preview/", apis.SyncPreviewView.as_view(), name="api-sync-preview"),
    path("syncs/<int:pk>/", apis.SyncDetailView.as_view(), name="api-sync"),
    path("syncs/<int:pk>/run/", apis.SyncRunView.as_view(), name="api-sync-run"),
    path("syncs/<int:pk>/resync/", apis.SyncResyncView.as_view(), name="api-sync-resync"),
    path("syncs/<int:pk>/runs/", apis.SyncRunsView.as_view(), name="api-sync-runs"),
    path("streams/", apis.StreamListView.as_view(), name="api-streams"),
    path("streams/<int:pk>/", apis.StreamDetailView.as_view(), name="api-stream"),
    path("deliveries/", apis.DeliveryListView.as_view(), name="api-deliveries"),
    path(
        "deliveries/retry-dead/",
        apis.DeliveryRetryDeadView.as_view(),
        name="api-deliveries-retry-dead",
    ),
    path("deliveries/<int:pk>/", apis.DeliveryDetailView.as_view(), name="api-delivery"),
    path(
        "deliveries/<int:pk>/retry/",
        apis.DeliveryRetryView.as_view(),
        name="api-delivery-retry",
    ),
    path(
        "decisions/preview/",
        decision_apis.DecisionPreviewView.as_view(),
        name="api-decision-preview",
    ),  # fmt: skip
    *router.urls,
]
