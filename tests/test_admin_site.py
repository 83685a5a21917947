"""``admin.site`` is KubeDoor's own AdminSite (set through the admin app config, nothing patched)."""

import pytest
from django.contrib import admin
from django.test import RequestFactory

from apps.metrics.models import CollectionRun
from kubedoor_site.admin_site import KubeDoorAdminSite


def test_the_default_admin_site_is_kubedoors():
    assert type(admin.site._wrapped) is KubeDoorAdminSite  # admin.site is a lazy object around it
    assert (str(admin.site.site_header), str(admin.site.site_title), str(admin.site.index_title)) == (
        "KubeDoor",
        "KubeDoor",
        "Resource control plane",
    )
    assert isinstance(admin.site._registry[CollectionRun], admin.ModelAdmin)


@pytest.mark.django_db
def test_the_dashboard_heads_the_metrics_section_for_readers_of_the_archive(viewer, nobody):
    request = RequestFactory().get("/admin/")
    request.user = viewer
    metrics = next(app for app in admin.site.get_app_list(request) if app["app_label"] == "metrics")
    assert [entry["object_name"] for entry in metrics["models"]] == ["Dashboard", "CollectionRun", "DailyPeak"]
    assert metrics["models"][0]["admin_url"] == "/admin/metrics/dashboard/"
    assert [app["app_label"] for app in admin.site.get_app_list(request, "metrics")] == ["metrics"]
    assert admin.site.get_app_list(request, "metrics")[0]["models"][0]["object_name"] == "Dashboard"
    # a user without metrics.view_dailypeak gets no entry
    request.user = nobody
    assert all(
        entry["object_name"] != "Dashboard" for app in admin.site.get_app_list(request) for entry in app["models"]
    )
