"""The Dashboard admin pages (DESIGN §8): cluster totals, top-10 boards, namespace shares, per-service curves.

The pages are thin shells: a form for the cluster and the day range, and SVG charts the bundled
``kubedoor/charts.js`` draws from ``GET /api/v1/dashboard/…`` (nothing is loaded from the internet).
The dashboard has no model of its own, so ``kubedoor_site.admin_site.KubeDoorAdminSite`` routes
its two pages (:func:`dashboard_view`, :func:`curves_view`) and puts :func:`app_list_entry` in the
index's "Metrics" section. Reading needs ``metrics.view_dailypeak``, like the API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from apps.accounts.scopes import scope_cluster_filter, scope_sees
from apps.control.explanation import explanation_render
from apps.control.models import Cluster, Microservice
from apps.metrics import dashboard, selectors

PERMISSION = "metrics.view_dailypeak"


class RangeForm(forms.Form):
    cluster = forms.ModelChoiceField(
        label=_("cluster"), queryset=Cluster.objects.order_by("name"), to_field_name="name", empty_label=None
    )
    day_from = forms.DateField(label=_("from"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    day_to = forms.DateField(label=_("to"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        field = self.fields["cluster"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = scope_cluster_filter(user, Cluster.objects.order_by("name"))

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        cluster = data.get("cluster")
        if cluster is None:
            return data
        try:
            span = selectors.day_range_get(cluster=cluster, day_from=data.get("day_from"), day_to=data.get("day_to"))
        except ValidationError as exc:
            # shown above the form, as a whole-form error, like before the rule moved to the selector
            raise forms.ValidationError(exc.messages) from exc
        data.update(day_from=span.day_from, day_to=span.day_to)
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
        first = scope_cluster_filter(request.user, Cluster.objects.order_by("name")).first()
        if first is not None:
            data["cluster"] = first.name
    return RangeForm(data, user=request.user)


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
        has_clusters=scope_cluster_filter(request.user, Cluster.objects.all()).exists(),
        span=span,
        summary_api=reverse("api:dashboard-summary"),
        waste_api=reverse("api:dashboard-waste"),
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
    form = CurvesForm(request.GET, user=request.user)
    if not form.is_valid():
        if "cluster" in form.errors or "namespace" in form.errors or "deployment" in form.errors:
            raise Http404(_("Choose a microservice from the control table or the dashboard."))
    elif not scope_sees(
        request.user, cluster=form.cleaned_data["cluster"].name, namespace=form.cleaned_data["namespace"]
    ):
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
        microservice = Microservice.objects.filter(
            cluster=data["cluster"], namespace=data["namespace"], name=data["deployment"]
        ).first()
        context.update(
            cluster=data["cluster"],
            namespace=data["namespace"],
            deployment=data["deployment"],
            day_from=data["day_from"],
            day_to=data["day_to"],
            microservice=microservice,
            explanation=explanation_render(microservice.explanation) if microservice else [],
            microservice_url=(
                reverse("admin:control_microservice_change", args=[microservice.pk]) if microservice else ""
            ),
            title=_("Daily curves of %(service)s") % {"service": f"{data['namespace']}/{data['deployment']}"},
        )
    return TemplateResponse(request, "admin/metrics/dashboard_curves.html", context)


def app_list_entry() -> dict[str, Any]:
    """The Dashboard's entry in the admin index, as one more "model" of the Metrics section."""
    return {
        "name": _("Dashboard"),
        "object_name": "Dashboard",
        "perms": {"add": False, "change": False, "delete": False, "view": True},
        "admin_url": reverse("admin:metrics_dashboard"),
        "add_url": None,
        "view_only": True,
    }
