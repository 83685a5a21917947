"""Operations in the admin (DESIGN §8): scale/restart actions, Save & scale/restart, scheduled operations.

Thin: every write goes through ``apps.control.operations`` or ``apps.control.scheduling``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.functional import Promise
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.accounts.roles import OPERATOR
from apps.accounts.scopes import ScopedRelatedFieldListFilter, scope_filter, scope_has_perm, user_scopes
from apps.audit.services import Actor
from apps.control import operations, scheduling
from apps.control.forms import OperationScheduleForm, ScheduledOperationForm
from apps.control.models import Microservice, OperationKind, OperationState, ScheduledOperation, ScheduleKind

KIND_LABELS: dict[str, Promise] = {
    OperationKind.SCALE: gettext_lazy("Scale"),
    OperationKind.RESTART: gettext_lazy("Restart"),
    OperationKind.RESIZE: gettext_lazy("Resize in place"),
}


def _form_errors(form: Any, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def _result_message(request: HttpRequest, result: operations.TargetResult) -> None:
    target = f"{result.namespace}/{result.name}"
    if result.ok:
        messages.success(
            request, _("Microservice %(target)s: %(outcome)s") % {"target": target, "outcome": result.message}
        )
    else:
        messages.error(request, _("Microservice %(target)s: %(outcome)s") % {"target": target, "outcome": result.error})


if TYPE_CHECKING:
    _MicroserviceAdminBase = admin.ModelAdmin[Microservice]
else:
    _MicroserviceAdminBase = object


class MicroserviceOperationsMixin(_MicroserviceAdminBase):
    """Scale and restart actions with an intermediate page, and the Save & scale / Save & restart buttons."""

    change_form_template = "admin/control/microservice/change_form.html"
    actions = ["scale_action", "restart_action", "resize_action"]

    def has_scale_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("control.scale_microservice")

    def has_restart_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("control.restart_microservice")

    @admin.action(description=gettext_lazy("Scale selected microservices…"), permissions=["scale"])
    def scale_action(self, request: HttpRequest, queryset: QuerySet[Microservice]) -> HttpResponse | None:
        return self._operation_page(request, queryset, kind=OperationKind.SCALE)

    @admin.action(description=gettext_lazy("Restart selected microservices…"), permissions=["restart"])
    def restart_action(self, request: HttpRequest, queryset: QuerySet[Microservice]) -> HttpResponse | None:
        return self._operation_page(request, queryset, kind=OperationKind.RESTART)

    @admin.action(description=gettext_lazy("Resize selected microservices in place…"), permissions=["restart"])
    def resize_action(self, request: HttpRequest, queryset: QuerySet[Microservice]) -> HttpResponse | None:
        return self._operation_page(request, queryset, kind=OperationKind.RESIZE)

    def _operation_page(self, request: HttpRequest, queryset: QuerySet[Microservice], *, kind: str) -> Any:
        microservices = list(queryset.select_related("cluster").order_by("namespace", "name"))
        if "apply" in request.POST:
            form = OperationScheduleForm(request.POST, kind=kind)
            if form.is_valid() and self._operation_submit(request, microservices, kind=kind, form=form):
                return None  # back to the changelist, with the messages
        else:
            form = OperationScheduleForm(kind=kind, initial={"time_zone": microservices[0].cluster.time_zone})
        context = {
            **self.admin_site.each_context(request),
            "title": _("%(kind)s %(count)s microservice(s)") % {"kind": KIND_LABELS[kind], "count": len(microservices)},
            "form": form,
            "microservices": microservices,
            "kind": kind,
            "action": f"{kind}_action",
            "opts": Microservice._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/control/microservice/operation.html", context)

    def _operation_submit(
        self, request: HttpRequest, microservices: list[Microservice], *, kind: str, form: OperationScheduleForm
    ) -> bool:
        data = form.cleaned_data
        replicas = data.get("replicas")
        temporary = bool(data.get("temporary"))
        restart_fallback = bool(data.get("restart_fallback"))
        actor = Actor.for_admin(request)
        try:
            if data["schedule"] == ScheduleKind.NOW and len(microservices) == 1:
                microservice = microservices[0]
                if kind == OperationKind.SCALE:
                    result = operations.microservice_scale(
                        actor=actor, microservice=microservice, replicas=replicas, temporary=temporary
                    )
                else:
                    result = operations.operation_target_run(
                        actor=actor, kind=kind, microservice=microservice, restart_fallback=restart_fallback
                    )
                _result_message(request, result)
                return True
            operation = scheduling.operation_schedule(
                actor=actor,
                kind=kind,
                targets=microservices,
                replicas=replicas,
                temporary=temporary,
                restart_fallback=restart_fallback,
                interval_seconds=data["interval_seconds"],
                schedule=data["schedule"],
                run_at=data.get("run_at"),
                cron=data.get("cron") or "",
                time_zone=data["time_zone"],
            )
        except ValidationError as exc:
            _form_errors(form, exc)
            return False
        except PermissionDenied as exc:
            messages.error(request, str(exc))
            return True
        url = reverse("admin:control_scheduledoperation_change", args=[operation.pk])
        if operation.schedule == ScheduleKind.NOW:
            text = _("Operation #%(id)s queued: it runs on a worker now.")
        else:
            text = _("Operation #%(id)s scheduled.")
        messages.success(request, format_html('<a href="{}">{}</a>', url, text % {"id": operation.pk}))
        return True

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        kind = None
        if request.method == "POST" and object_id:
            if "_saveandscale" in request.POST:
                kind = OperationKind.SCALE
            elif "_saveandrestart" in request.POST:
                kind = OperationKind.RESTART
        if kind == OperationKind.SCALE and not self.has_scale_permission(request):
            raise PermissionDenied
        if kind == OperationKind.RESTART and not self.has_restart_permission(request):
            raise PermissionDenied
        extra_context = {
            **(extra_context or {}),
            "can_scale": self.has_scale_permission(request),
            "can_restart": self.has_restart_permission(request),
        }
        # The admin saves inside its own transaction: when this returns, the save is committed, so the
        # Kubernetes call below (and an admission webhook reading the row) sees it.
        response = super().changeform_view(request, object_id, form_url, extra_context)
        if kind is not None and response.status_code == 302:
            assert object_id is not None  # kind is set only when saving an existing object
            microservice = Microservice.objects.select_related("cluster").get(pk=object_id)
            try:
                if kind == OperationKind.SCALE:
                    result = operations.microservice_scale(actor=Actor.for_admin(request), microservice=microservice)
                else:
                    result = operations.microservice_restart(actor=Actor.for_admin(request), microservice=microservice)
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
            else:
                _result_message(request, result)
        return response


@admin.register(ScheduledOperation)
class ScheduledOperationAdmin(admin.ModelAdmin):
    form = ScheduledOperationForm
    list_display = [
        "id",
        "kind",
        "cluster",
        "targets_display",
        "schedule",
        "when_display",
        "state",
        "enabled",
        "next_run_at",
        "last_run_at",
        "last_result_display",
        "created_by_name",
    ]
    list_filter = ["kind", "schedule", "state", "enabled", ("cluster", ScopedRelatedFieldListFilter)]
    search_fields = ["targets__name", "targets__namespace", "created_by_name"]
    filter_horizontal = ["targets"]
    actions = ["pause_action", "resume_action", "cancel_action"]
    list_per_page = 100
    list_select_related = ["cluster"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ScheduledOperation]:
        return scheduling.operation_scope_filter(
            request.user, super().get_queryset(request).prefetch_related("targets")
        )

    def has_change_permission(self, request: HttpRequest, obj: ScheduledOperation | None = None) -> bool:
        if not super().has_change_permission(request, obj):
            return False
        if obj is None or user_scopes(request.user) is None:
            return True
        perm = operations.KIND_PERMISSIONS.get(OperationKind(obj.kind), "control.change_scheduledoperation")
        return all(
            scope_has_perm(request.user, perm, cluster=target.cluster.name, namespace=target.namespace)
            for target in obj.targets.select_related("cluster")
        )

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "targets":  # a scoped operator targets the services of their scopes only
            kwargs["queryset"] = scope_filter(
                request.user, Microservice.objects.select_related("cluster"), role=OPERATOR
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: ScheduledOperation | None = None) -> list[str]:
        readonly = ["state", "next_run_at", "last_run_at", "last_result", "created_by_name", "created_at"]
        if obj is not None:
            readonly.insert(0, "kind")
            if obj.state in (OperationState.CANCELLED, OperationState.DONE):
                readonly += list(scheduling.EDITABLE_FIELDS)
        return readonly

    @admin.display(description=gettext_lazy("targets"))
    def targets_display(self, obj: ScheduledOperation) -> str:
        names = [str(microservice) for microservice in obj.targets.all()]
        return ", ".join(names[:5]) + (f" … (+{len(names) - 5})" if len(names) > 5 else "")

    @admin.display(description=gettext_lazy("at / cron"))
    def when_display(self, obj: ScheduledOperation) -> str:
        if obj.schedule == ScheduleKind.ONCE and obj.run_at:
            return f"{obj.run_at.astimezone(scheduling.time_zone_get(obj.time_zone)):%Y-%m-%d %H:%M} {obj.time_zone}"
        if obj.schedule == ScheduleKind.CRON:
            return f"{obj.cron} {obj.time_zone}"
        return "—"

    @admin.display(description=gettext_lazy("last result"))
    def last_result_display(self, obj: ScheduledOperation) -> str:
        if not obj.last_result:
            return "—"
        failed = obj.last_result.get("failed") or []
        ok = obj.last_result.get("succeeded") or []
        return _("%(ok)s ok, %(failed)s failed") % {"ok": len(ok), "failed": len(failed)}

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # cancel instead: the history stays

    def save_model(self, request: HttpRequest, obj: ScheduledOperation, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            changed = {field: data[field] for field in form.changed_data if field in scheduling.EDITABLE_FIELDS}
            if "targets" in changed:
                changed["targets"] = list(changed["targets"])
            saved = scheduling.operation_update(actor=Actor.for_admin(request), operation=obj, data=changed)
        else:
            saved = scheduling.operation_schedule(
                actor=Actor.for_admin(request),
                kind=data["kind"],
                targets=list(data["targets"]),
                replicas=data.get("replicas"),
                temporary=bool(data.get("temporary")),
                restart_fallback=bool(data.get("restart_fallback")),
                interval_seconds=data.get("interval_seconds") or 0,
                schedule=data["schedule"],
                run_at=data.get("run_at"),
                cron=data.get("cron") or "",
                time_zone=data["time_zone"],
                enabled=data.get("enabled", True),
            )
        obj.pk = saved.pk

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        return  # the targets were saved by the service, in order

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, change=change, **kwargs)
        operation = obj

        class ValidatingForm(form_class):  # type: ignore[valid-type, misc]
            def clean(self) -> dict[str, Any]:
                cleaned = super().clean()
                if self.errors:
                    return cleaned
                values = {
                    "kind": operation.kind if operation is not None else cleaned.get("kind"),
                    "targets": cleaned.get("targets", operation.targets.all() if operation is not None else []),
                    **{
                        field: cleaned.get(field)
                        for field in scheduling.EDITABLE_FIELDS
                        if field not in ("targets", "enabled") and field in cleaned
                    },
                }
                time_changed = operation is None or any(
                    field in self.changed_data for field in ("run_at", "schedule", "time_zone")
                )
                try:
                    scheduling.operation_validate(values=values, check_past=time_changed)
                except ValidationError as exc:
                    _form_errors(self, exc)
                return cleaned

        return ValidatingForm

    @admin.action(description=gettext_lazy("Pause selected operations"), permissions=["change"])
    def pause_action(self, request: HttpRequest, queryset: QuerySet[ScheduledOperation]) -> None:
        self._each(request, queryset, scheduling.operation_pause, _("paused"))

    @admin.action(description=gettext_lazy("Resume selected operations"), permissions=["change"])
    def resume_action(self, request: HttpRequest, queryset: QuerySet[ScheduledOperation]) -> None:
        self._each(request, queryset, scheduling.operation_resume, _("resumed"))

    @admin.action(description=gettext_lazy("Cancel selected operations"), permissions=["change"])
    def cancel_action(self, request: HttpRequest, queryset: QuerySet[ScheduledOperation]) -> None:
        self._each(request, queryset, scheduling.operation_cancel, _("cancelled"))

    def _each(self, request: HttpRequest, queryset: QuerySet[ScheduledOperation], act: Any, done: str) -> None:
        count = 0
        for operation in queryset:
            try:
                act(actor=Actor.for_admin(request), operation=operation)
            except (ValidationError, PermissionDenied) as exc:
                messages.error(request, f"#{operation.pk}: {' '.join(getattr(exc, 'messages', [str(exc)]))}")
            else:
                count += 1
        if count:
            messages.success(request, _("%(count)s operation(s) %(done)s.") % {"count": count, "done": done})
