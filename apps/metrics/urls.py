"""API routes of the metrics app, mounted under /api/v1/."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from apps.metrics import api

router = SimpleRouter()
router.register("collections", api.CollectionRunViewSet, basename="collection")

urlpatterns = [
    path("peaks/", api.PeakListView.as_view(), name="peak-list"),
    path("dashboard/", include("apps.metrics.dashboard_api")),
    path("dashboard/", include("apps.metrics.pod_node_api")),
    *router.urls,
]
