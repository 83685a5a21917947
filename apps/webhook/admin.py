"""Admin "Admission" page: per cluster, the mode switch (with a confirmation step) and what is registered,
and the drift page (live Deployments that differ from what admission would set, with the patch)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.accounts.scopes import ScopedAdminMixin
from apps.audit.services import Actor
from apps.control import k8s
from apps.control.choices import AdmissionEngine, AdmissionMode
from apps.webhook import registration, services
from apps.webhook.models import Admission
from kubedoor_site.admin_read_only import ReadOnlyModelAdmin


@admin.register(Admission)
class AdmissionAdmin(ScopedAdminMixin, ReadOnlyModelAdmin):
    scope_cluster = "name"
    scope_namespace = None

    list_display = [
        "name",
        "display_name",
        "admission_mode",
        "admission_engine",
        "failure_policy",
        "webhook_timeout_seconds",
        "on_store_error",
        "allow_unmanaged",
        "open_link",
        "drift_link",
    ]
    list_display_links = None
    ordering = ["name"]

    @admin.display(description=gettext_lazy("mode and registration"))
    def open_link(self, obj: Admission) -> str:
        url = reverse("admin:webhook_admission_mode", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("open"))

    @admin.display(description=gettext_lazy("drift and export"))
    def drift_link(self, obj: Admission) -> str:
        url = reverse("admin:webhook_admission_drift", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("drift"))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("control.view_cluster")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("control.view_cluster")

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(self.mode_view)
        drift = self.admin_site.admin_view(self.drift_view)
        return [
            path("<int:pk>/mode/", view, name="webhook_admission_mode"),
            path("<int:pk>/drift/", drift, name="webhook_admission_drift"),
            *super().get_urls(),
        ]

    def drift_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """GET: the cluster's drift, read now through the Kubernetes door; links to the export."""
        if not request.user.has_perm("control.view_microservice"):
            raise PermissionDenied
        cluster = get_object_or_404(self.get_queryset(request), pk=pk)
        namespace = request.GET.get("namespace", "").strip() or None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "cluster": cluster,
            "namespace": namespace,
            "title": _("Drift of cluster %(cluster)s") % {"cluster": cluster},
            "export_url": reverse("api:cluster-export", args=[cluster.name]),
            "drift_url": reverse("api:cluster-drift", args=[cluster.name]),
        }
        try:
            drift = services.drift_list(cluster=cluster, namespace=namespace, user=request.user)
        except k8s.K8sError as exc:
            context["error"] = exc.message
        else:
            context["drift"] = drift
            # Shown as JSON, the way the API and kubectl write them.
            context["rows"] = [
                {
                    **item,
                    "live_text": json.dumps(item["live"], ensure_ascii=False),
                    "wanted_text": json.dumps(item["wanted"], ensure_ascii=False),
                    "patch_text": json.dumps(item["patch"], ensure_ascii=False, indent=1),
                }
                for item in drift["items"]
            ]
        return TemplateResponse(request, "admin/webhook/admission/drift.html", context)

    def mode_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """GET: mode and registration read from the cluster. POST mode: confirm. POST mode+confirm: switch."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        cluster = get_object_or_404(self.get_queryset(request), pk=pk)
        can_change = request.user.has_perm("control.change_admission_mode")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "cluster": cluster,
            "modes": AdmissionMode.choices,
            "engines": AdmissionEngine.choices,
            "can_change": can_change,
            "configuration": registration.configuration_name(cluster.name),
            "title": _("Admission of cluster %(cluster)s") % {"cluster": cluster},
        }
        if request.method == "POST":
            if not can_change:
                raise PermissionDenied
            if "engine" in request.POST:
                return self._switch_post(
                    request,
                    cluster,
                    context,
                    field="engine",
                    choices=AdmissionEngine,
                    switch=services.admission_engine_set,
                    choose=_("Choose one of: %(engines)s.") % {"engines": ", ".join(AdmissionEngine.values)},
                    done=_("The admission engine of %(cluster)s is now %(engine)s."),
                )
            return self._switch_post(
                request,
                cluster,
                context,
                field="mode",
                choices=AdmissionMode,
                switch=services.admission_mode_set,
                choose=_("Choose one of: %(modes)s.") % {"modes": ", ".join(AdmissionMode.values)},
                done=_("Admission of %(cluster)s is now %(mode)s."),
            )
        context["state"] = services.admission_state_get(cluster=cluster)
        return TemplateResponse(request, "admin/webhook/admission/mode.html", context)

    def _switch_post(
        self,
        request: HttpRequest,
        cluster: Admission,
        context: dict[str, Any],
        *,
        field: str,
        choices: type[models.TextChoices],
        switch: Callable[..., Any],
        choose: str,
        done: str,
    ) -> HttpResponse:
        """POST ``field`` (mode or engine): confirm. POST ``field`` + confirm: switch, the outcome as a message."""
        value = request.POST.get(field, "")
        if value not in choices.values:
            messages.error(request, choose)
            return HttpResponseRedirect(request.path)
        label = choices(value).label
        if request.POST.get("confirm") != "yes":
            context |= {field: value, f"{field}_label": label}
            return TemplateResponse(request, "admin/webhook/admission/confirm.html", context)
        try:
            switch(actor=Actor.for_admin(request), cluster=cluster, **{field: value})
        except services.AdmissionRegistrationError as exc:
            messages.error(request, exc.message)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, done % {"cluster": cluster.name, field: label})
        return HttpResponseRedirect(request.path)
