"""API routes of the metrics app, mounted under /api/v1/."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.metrics import api

router = SimpleRouter()
router.register("collections", api.CollectionRunViewSet, basename="collection")

urlpatterns = [
    path("peaks/", api.PeakListView.as_view(), name="peak-list"),
    *router.urls,
]
