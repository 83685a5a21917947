"""URL map of the webhook process (KUBEDOOR_PROCESS=webhook): the admission endpoint, probes and metrics.

Nothing else is routed here, and the web process's URL map (kubedoor_site/urls.py) does not route
these: the API server's door and the UI's are different processes on different ports.
"""

from django.urls import path

from apps.webhook import views

urlpatterns = [
    path("mutate/<slug:cluster>", views.AdmissionReviewView.as_view(), name="webhook-mutate"),
    path("mutate", views.AdmissionReviewView.as_view(), name="webhook-mutate-single"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics_view, name="metrics"),
]
