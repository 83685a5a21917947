"""API routes of the control app, mounted under /api/v1/."""

from rest_framework.routers import SimpleRouter

from apps.control import api

router = SimpleRouter()
router.register("clusters", api.ClusterViewSet, basename="cluster")
router.register(r"clusters/(?P<cluster_name>[-a-z0-9]+)/excluded-days", api.ExcludedDayViewSet, basename="excluded-day")
router.register("microservices", api.MicroserviceViewSet, basename="microservice")
router.register("operations", api.OperationViewSet, basename="operation")

urlpatterns = router.urls
