"""The cluster admin page's onboarding (issue 13 §1): the bundle download and the connect form."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.audit.services import Actor
from apps.control import onboarding
from apps.control.models import Cluster


class ClusterConnectForm(forms.Form):
    server = forms.CharField(
        label=gettext_lazy("API server URL"),
        max_length=500,
        help_text=gettext_lazy("As the remote cluster's kubeconfig names it, e.g. https://10.0.0.1:6443."),
    )
    secret = forms.CharField(
        label=gettext_lazy("token Secret"),
        widget=forms.Textarea(attrs={"rows": 12, "cols": 80, "spellcheck": "false"}),
        help_text=gettext_lazy("The output of: kubectl -n kubedoor get secret kubedoor-token -o yaml"),
    )


class ClusterOnboardingMixin(admin.ModelAdmin):
    """Adds ``<pk>/bundle/`` (download) and ``<pk>/connect/`` (form, then the check's report)."""

    change_form_template = "admin/control/cluster/change_form.html"

    def get_urls(self) -> list:
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/bundle/", wrap(self.bundle_view), name="control_cluster_bundle"),
            path("<int:pk>/connect/", wrap(self.connect_view), name="control_cluster_connect"),
            *super().get_urls(),
        ]

    def _cluster(self, request: HttpRequest, pk: int) -> Cluster:
        cluster = get_object_or_404(Cluster, pk=pk)
        if not self.has_change_permission(request, cluster):
            raise PermissionDenied
        return cluster

    def bundle_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        cluster = self._cluster(request, pk)
        response = HttpResponse(onboarding.bundle_yaml(cluster_name=cluster.name), content_type="application/yaml")
        response["Content-Disposition"] = f'attachment; filename="kubedoor-{cluster.name}-bundle.yaml"'
        return response

    def connect_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        cluster = self._cluster(request, pk)
        report = None
        form = ClusterConnectForm(request.POST or None)
        if request.method == "POST":
            if "check" in request.POST:
                form = ClusterConnectForm()
                report = onboarding.cluster_connection_check(cluster=cluster)
            elif form.is_valid():
                try:
                    cluster, report = onboarding.cluster_connect(
                        actor=Actor.for_admin(request),
                        cluster=cluster,
                        server=form.cleaned_data["server"],
                        secret_text=form.cleaned_data["secret"],
                    )
                except ValidationError as exc:
                    form.add_error("secret", exc)
            if report is not None:
                level = messages.SUCCESS if report.state == "ok" else messages.WARNING
                messages.add_message(
                    request,
                    level,
                    _("Cluster %(cluster)s: %(state)s.")
                    % {"cluster": cluster.name, "state": cluster.get_connection_state_display()},
                )
        elif request.method != "GET":
            raise Http404
        context = {
            **self.admin_site.each_context(request),
            "title": _("Connect cluster %(cluster)s") % {"cluster": cluster.name},
            "form": form,
            "report": report,
            "cluster": cluster,
            "opts": Cluster._meta,
            "original": cluster,
        }
        return TemplateResponse(request, "admin/control/cluster/connect.html", context)
