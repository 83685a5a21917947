"""KubeDoor's admin site: Django's, with the KubeDoor titles and the Dashboard pages.

Installed as ``admin.site`` through ``kubedoor_site.apps.KubeDoorAdminConfig.default_site``, so
``@admin.register`` and ``admin.site.urls`` work as with Django's own site. The Dashboard has no
model of its own: its two pages are routed here, in front of the site's own URLs, and it gets an
entry at the top of the index's "Metrics" section for users who may read the archive.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path
from django.utils.translation import gettext_lazy as _

from apps.accounts.logins import admin_login_record
from apps.accounts.scopes import is_scoped
from apps.metrics import dashboard_admin


class ScopedAdminAuthenticationForm(AdminAuthenticationForm):
    """Django's admin login form, also open to users whose groups hold scopes (no ``is_staff`` by hand)."""

    def confirm_login_allowed(self, user: Any) -> None:
        if user.is_active and is_scoped(user):
            return
        super().confirm_login_allowed(user)


class KubeDoorAdminSite(admin.AdminSite):
    login_form = ScopedAdminAuthenticationForm
    site_header = _("KubeDoor")
    site_title = _("KubeDoor")
    index_title = _("Resource control plane")

    def get_urls(self) -> list[URLResolver | URLPattern]:
        return [
            path("metrics/dashboard/", self.admin_view(self.dashboard_view), name="metrics_dashboard"),
            path(
                "metrics/dashboard/curves/",
                self.admin_view(self.dashboard_curves_view),
                name="metrics_dashboard_curves",
            ),
            *super().get_urls(),
        ]

    def has_permission(self, request: HttpRequest) -> bool:
        """Staff as in Django, and users whose groups hold scopes (their rows only: ``apps.accounts.scopes``)."""
        return super().has_permission(request) or (request.user.is_active and is_scoped(request.user))

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Django's login page; every POST to it is on record (``apps.accounts.logins``)."""
        response = super().login(request, extra_context)
        admin_login_record(request)
        return response

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        context["oidc_enabled"] = bool(getattr(settings, "KUBEDOOR_OIDC_ENABLED", False))
        return context

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        app_list = super().get_app_list(request, app_label)
        if request.user.has_perm(dashboard_admin.PERMISSION):
            for app in app_list:
                if app["app_label"] == "metrics":
                    app["models"].insert(0, dashboard_admin.app_list_entry())
        return app_list

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        return dashboard_admin.dashboard_view(self, request)

    def dashboard_curves_view(self, request: HttpRequest) -> HttpResponse:
        return dashboard_admin.curves_view(self, request)
