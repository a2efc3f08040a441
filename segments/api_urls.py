from django.urls import re_path

from cdp.routers import OptionalSlashRouter
from segments import apis
from segments.ml import apis as ml_apis

router = OptionalSlashRouter()
router.register("segments", apis.SegmentViewSet, basename="segment")
router.register("models", ml_apis.ModelViewSet, basename="ml-model")
router.register("items", ml_apis.ItemViewSet, basename="ml-item")

urlpatterns = [
    *router.urls,
    re_path(
        r"^profiles/(?P<profile_id>[^/]+)/recommendations/?$",
        ml_apis.ProfileRecommendationsView.as_view(),
        name="profile-recommendations",
    ),
]
