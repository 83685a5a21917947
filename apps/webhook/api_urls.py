"""API routes of the webhook app, mounted under /api/v1/."""

from django.urls import path

from apps.webhook import api

urlpatterns = [
    path("clusters/<slug:name>/admission/", api.ClusterAdmissionView.as_view(), name="cluster-admission"),
    path("clusters/<slug:name>/export/", api.ClusterExportView.as_view(), name="cluster-export"),
    path("clusters/<slug:name>/drift/", api.ClusterDriftView.as_view(), name="cluster-drift"),
    path("admission/preview", api.AdmissionPreviewView.as_view(), name="admission-preview"),
]
