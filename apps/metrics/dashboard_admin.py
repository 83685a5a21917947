"""The Dashboard admin pages (DESIGN §8): cluster totals, top-10 boards, namespace shares, per-service curves.

The pages are thin shells: a form for the cluster and the day range, and SVG charts the bundled
``kubedoor/charts.js`` draws from ``GET /api/v1/dashboard/…`` (nothing is loaded from the internet).
They are added to ``admin.site`` by :func:`install` — two URLs in front of the site's own and an
entry in the index's "Metrics" section — because the dashboard has no model of its own. Reading
needs ``metrics.view_dailypeak``, like the API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from apps.control.models import Cluster, Microservice
from apps.metrics import dashboard
from apps.metrics.dashboard_api import MAX_RANGE_DAYS, cluster_today, default_day_from

PERMISSION = "metrics.view_dailypeak"


class RangeForm(forms.Form):
    cluster = forms.ModelChoiceField(
        label=_("cluster"), queryset=Cluster.objects.order_by("name"), to_field_name="name", empty_label=None
    )
    day_from = forms.DateField(label=_("from"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    day_to = forms.DateField(label=_("to"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        cluster = data.get("cluster")
        if cluster is None:
            return data
        day_to = data.get("day_to") or cluster_today(cluster)
        day_from = data.get("day_from") or default_day_from(cluster, day_to)
        if day_from > day_to:
            raise forms.ValidationError(_("The range must start before it ends."))
        if (day_to - day_from).days >= MAX_RANGE_DAYS:
            raise forms.ValidationError(_("Ask for at most %(days)s days at a time.") % {"days": MAX_RANGE_DAYS})
        data.update(day_from=day_from, day_to=day_to)
        return data


def curves_url(*, cluster: str, namespace: str, deployment: str, **extra: str) -> str:
    query = {"cluster": cluster, "namespace": namespace, "deployment": deployment, **extra}
    return reverse("admin:metrics_dashboard_curves") + "?" + urlencode(query)


def _check(request: HttpRequest) -> None:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied


def _range_form(request: HttpRequest) -> RangeForm:
    data = request.GET.copy()
    if not data.get("cluster"):
        first = Cluster.objects.order_by("name").first()
        if first is not None:
            data["cluster"] = first.name
    return RangeForm(data)


def _context(site: AdminSite, request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {
        **site.each_context(request),
        "collect_url": reverse("admin:metrics_collectionrun_add"),
        "cluster_add_url": reverse("admin:control_cluster_add"),
        "dashboard_url": reverse("admin:metrics_dashboard"),
        **extra,
    }


def dashboard_view(site: AdminSite, request: HttpRequest) -> HttpResponse:
    """The cluster dashboard; an empty archive says what to do next."""
    _check(request)
    form = _range_form(request)
    span = None
    if form.is_valid():
        span = dashboard.dashboard_data_span(cluster=form.cleaned_data["cluster"].name)
    context = _context(
        site,
        request,
        title=_("Dashboard"),
        form=form,
        has_clusters=Cluster.objects.exists(),
        span=span,
        summary_api=reverse("api:dashboard-summary"),
        curves_page=reverse("admin:metrics_dashboard_curves"),
    )
    if form.is_valid():
        context.update(
            cluster=form.cleaned_data["cluster"],
            day_from=form.cleaned_data["day_from"],
            day_to=form.cleaned_data["day_to"],
        )
    return TemplateResponse(request, "admin/metrics/dashboard.html", context)


class CurvesForm(RangeForm):
    namespace = forms.CharField(label=_("namespace"), max_length=63)
    deployment = forms.CharField(label=_("microservice"), max_length=253)


def curves_view(site: AdminSite, request: HttpRequest) -> HttpResponse:
    """One service's daily curves: P95 CPU and memory against request and limit, and pods."""
    _check(request)
    form = CurvesForm(request.GET)
    if not form.is_valid():
        if "cluster" in form.errors or "namespace" in form.errors or "deployment" in form.errors:
            raise Http404(_("Choose a microservice from the control table or the dashboard."))
    context = _context(
        site,
        request,
        title=_("Daily curves"),
        form=form,
        curves_api=reverse("api:dashboard-curves"),
        query={key: request.GET.get(key, "") for key in ("cluster", "namespace", "deployment")},
    )
    if form.is_valid():
        data = form.cleaned_data
        service = Microservice.objects.filter(
            cluster=data["cluster"], namespace=data["namespace"], name=data["deployment"]
        ).first()
        context.update(
            cluster=data["cluster"],
            namespace=data["namespace"],
            deployment=data["deployment"],
            day_from=data["day_from"],
            day_to=data["day_to"],
            service=service,
            service_url=reverse("admin:control_microservice_change", args=[service.pk]) if service else "",
            title=_("Daily curves of %(service)s") % {"service": f"{data['namespace']}/{data['deployment']}"},
        )
    return TemplateResponse(request, "admin/metrics/dashboard_curves.html", context)


@admin.display(description=_("curves"))
def curves_link(obj: Microservice) -> str:
    """A control-table column: the service's daily curves over its cluster's lookback."""
    url = curves_url(cluster=obj.cluster.name, namespace=obj.namespace, deployment=obj.name)
    return format_html('<a class="kd-curves-link" href="{}">{}</a>', url, _("curves"))


def _app_list_entry(request: HttpRequest) -> dict[str, Any]:
    return {
        "name": _("Dashboard"),
        "object_name": "Dashboard",
        "perms": {"add": False, "change": False, "delete": False, "view": True},
        "admin_url": reverse("admin:metrics_dashboard"),
        "add_url": None,
        "view_only": True,
    }


def install(site: AdminSite) -> None:
    """Put the dashboard's two pages into ``site``'s URLs and its index (once)."""
    if getattr(site, "_kubedoor_dashboard", False):
        return
    site._kubedoor_dashboard = True  # type: ignore[attr-defined]
    original_get_urls: Callable[[], list[URLPattern]] = site.get_urls
    original_get_app_list = site.get_app_list

    def get_urls() -> list[Any]:
        return [
            path(
                "metrics/dashboard/",
                site.admin_view(lambda request: dashboard_view(site, request)),
                name="metrics_dashboard",
            ),
            path(
                "metrics/dashboard/curves/",
                site.admin_view(lambda request: curves_view(site, request)),
                name="metrics_dashboard_curves",
            ),
            *original_get_urls(),
        ]

    def get_app_list(request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        apps = original_get_app_list(request, app_label)
        if request.user.has_perm(PERMISSION):
            for app in apps:
                if app["app_label"] == "metrics":
                    app["models"].insert(0, _app_list_entry(request))
        return apps

    site.get_urls = get_urls  # type: ignore[method-assign]
    site.get_app_list = get_app_list  # type: ignore[method-assign]


install(admin.site)
