from cdp.routers import OptionalSlashRouter
from segments import apis

router = OptionalSlashRouter()
router.register("segments", apis.SegmentViewSet, basename="segment")

urlpatterns = router.urls
