from cdp.routers import OptionalSlashRouter
from segments import apis
from segments.ml import apis as ml_apis

router = OptionalSlashRouter()
router.register("segments", apis.SegmentViewSet, basename="segment")
router.register("models", ml_apis.ModelViewSet, basename="ml-model")

urlpatterns = router.urls
