"""The admission endpoints (mounted at the root by kubedoor_site.urls and by the webhook process)."""

from django.urls import path

from apps.webhook import views

urlpatterns = [
    path("mutate/<slug:cluster>", views.mutate, name="webhook-mutate"),
    path("mutate", views.mutate, name="webhook-mutate-single"),
]
