"""Admin page "Import from KubeDoor" (admin role): an upload or connection details, run on a worker with progress.

Thin: the form is parsed here, ``import_runs.upload_parse`` checks the files (a bad line answers 400
with the file and line), ``import_runs.import_run_start`` records, audits and queues the run; a
run's page polls ``status/`` like a collection run's page polls the API.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext_lazy as _

from apps.audit.services import Actor
from apps.control.models import Cluster
from apps.metrics import import_runs
from apps.metrics.models import ACTIVE_STATES, ImportRun

UPLOAD_FIELDS = (
    ("control_file", import_runs.CONTROL_TABLE),
    ("resources_file", import_runs.RESOURCES_TABLE),
    ("agent_status_file", import_runs.AGENT_STATUS_TABLE),
)


class ImportForm(forms.Form):
    cluster = forms.ModelChoiceField(
        label=_("cluster"), queryset=Cluster.objects.order_by("name"), to_field_name="name", empty_label=None
    )
    env = forms.CharField(
        label=_("KubeDoor env"),
        max_length=200,
        required=False,
        help_text=_(
            "The env column of the old tables; empty = the cluster's name. Rows with an empty env are imported too."
        ),
    )
    control_file = forms.FileField(label=_("k8s_res_control (JSONEachRow)"), required=False)
    resources_file = forms.FileField(label=_("k8s_resources (JSONEachRow)"), required=False)
    agent_status_file = forms.FileField(label=_("k8s_agent_status, KubeDoor 1.x (JSONEachRow)"), required=False)
    clickhouse_url = forms.CharField(
        label=_("ClickHouse URL"), max_length=500, required=False, help_text=_("clickhouse://host:9000")
    )
    database = forms.CharField(label=_("database"), max_length=200, required=False, initial="kubedoor")
    user = forms.CharField(label=_("user"), max_length=200, required=False, initial="default")
    password = forms.CharField(
        label=_("password"),
        max_length=500,
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Used once by the import and never stored."),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        has_upload = any(data.get(field) for field, _table in UPLOAD_FIELDS)
        has_connection = bool(data.get("clickhouse_url"))
        if has_upload == has_connection:
            raise ValidationError(_("Upload the tables or give the ClickHouse connection, not both and not neither."))
        if has_upload and not data.get("control_file"):
            raise ValidationError({"control_file": _("The k8s_res_control file is required for an upload.")})
        if has_connection:
            data["connection"] = import_runs.clickhouse_connection_check(
                url=data["clickhouse_url"],
                database=data.get("database") or "kubedoor",
                user=data.get("user") or "default",
                password=data.get("password") or "",
            )
        return data


class ImportRunAdmin(admin.ModelAdmin):
    """Import history (read-only); "add" is the Import from KubeDoor page; a run's page shows live progress."""

    list_display = ("id", "cluster", "env", "source", "source_label", "state", "progress", "rows_written", "created_at")
    list_filter = ("state", "source", "cluster")
    list_select_related = ("cluster",)
    change_form_template = "admin/metrics/importrun/change_form.html"
    readonly_fields = (
        "cluster",
        "env",
        "source",
        "source_label",
        "state",
        "progress",
        "rows_written",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
        "result",
        "error",
    )
    fields = readonly_fields

    @admin.display(description=_("progress"))
    def progress(self, obj: ImportRun) -> str:
        return f"{obj.progress_done}/{obj.rows_read} ({obj.progress_pct} %)"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        status = path(
            "<int:run_id>/status/", self.admin_site.admin_view(self.status_view), name="metrics_importrun_status"
        )
        return [status, *super().get_urls()]

    def status_view(self, request: HttpRequest, run_id: int) -> JsonResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        run = ImportRun.objects.filter(pk=run_id).first()
        if run is None:
            return JsonResponse({"detail": f"No import #{run_id}."}, status=404)
        return JsonResponse(
            {
                "id": run.pk,
                "state": run.state,
                "rows_read": run.rows_read,
                "progress_done": run.progress_done,
                "progress_pct": run.progress_pct,
                "rows_written": run.rows_written,
                "error": run.error,
            }
        )

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        status = 200
        if request.method == "POST":
            status = 400
            if form.is_valid():
                try:
                    run = self._start(request, form.cleaned_data)
                except ValidationError as exc:
                    form.add_error(None, exc)
                else:
                    messages.success(request, _("Import #%(run)s started.") % {"run": run.pk})
                    return HttpResponseRedirect(reverse("admin:metrics_importrun_change", args=[run.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Import from KubeDoor"),
            "form": form,
            "opts": self.model._meta,
            "recent": ImportRun.objects.select_related("cluster")[:10],
            "history_url": reverse("admin:metrics_importrun_changelist"),
        }
        return TemplateResponse(request, "admin/metrics/importrun/import.html", context, status=status)

    def _start(self, request: HttpRequest, data: dict[str, Any]) -> ImportRun:
        actor = Actor.for_admin(request)
        if "connection" in data:
            return import_runs.import_run_start(
                cluster=data["cluster"], env=data["env"], actor=actor, connection=data["connection"]
            )
        tables: dict[str, list[dict[str, Any]]] = {}
        names = []
        for field, table in UPLOAD_FIELDS:
            upload = data.get(field)
            if upload:
                tables[table] = import_runs.upload_parse(table=table, name=upload.name, lines=upload)
                names.append(upload.name)
        return import_runs.import_run_start(
            cluster=data["cluster"], env=data["env"], actor=actor, upload=tables, upload_label=", ".join(names)[:500]
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        run = ImportRun.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        extra = dict(extra_context or {})
        if run is not None:
            extra.update(
                run=run,
                is_active=run.state in ACTIVE_STATES,
                status_url=reverse("admin:metrics_importrun_status", args=[run.pk]),
            )
        return super().change_view(request, object_id, form_url, extra)


admin.site.register(ImportRun, ImportRunAdmin)
