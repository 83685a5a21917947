"""URL map of the webhook process: the admission endpoints, probes and metrics, nothing else."""

from django.urls import include, path

from apps.webhook import views

urlpatterns = [
    path("", include("apps.webhook.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics_view, name="metrics"),
]
