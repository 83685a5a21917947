"""The read-only audit log in the admin: nobody, not even a superuser, may add, change or delete."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseBadRequest, HttpResponseBase
from django.urls import URLPattern, path
from django.utils.translation import gettext_lazy as _

from apps.audit import channels
from apps.audit.export import EXPORT_FORMATS, audit_events_export_response
from apps.audit.models import (
    AUDIT_EVENT_SUBJECT_FIELDS,
    AuditEvent,
    AuditSource,
    NotificationChannel,
    NotificationDelivery,
    default_channel_actions,
)
from apps.audit.services import Actor
from apps.audit.visibility import audit_events_visible
from kubedoor_site.admin_read_only import ReadOnlyModelAdmin

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldGroups
    from django.utils.datastructures import _ListOrTuple


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyModelAdmin):
    list_display = ["at", "actor_name", "source", "action", "cluster", "namespace", "name", "result"]
    list_filter = ["source", "result", "action", "cluster"]
    search_fields = ["actor_name", "namespace", "name", "message", "request_id"]
    date_hierarchy = "at"
    list_per_page = 100
    fields = [
        *AUDIT_EVENT_SUBJECT_FIELDS,
        "result",
        "message",
        "before",
        "after",
        "request_id",
        "remote_addr",
    ]
    readonly_fields = cast("list[str]", fields)  # plain names, no groups
    actions = None
    change_list_template = "admin/audit/auditevent/change_list.html"  # adds the export buttons

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        return audit_events_visible(request.user, super().get_queryset(request))

    def get_urls(self) -> list[URLPattern]:
        export = path(
            "export/",
            self.admin_site.admin_view(self.export_view),
            name="audit_auditevent_export",
        )
        return [export, *super().get_urls()]

    def export_view(self, request: HttpRequest) -> HttpResponseBase:
        """The changelist's events (its filters, search and date drill-down) as ``format=csv|jsonl``."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        fmt = request.GET.get("format", "csv")
        if fmt not in EXPORT_FORMATS:
            return HttpResponseBadRequest(
                _("Unknown export format %(format)s: use csv or jsonl.") % {"format": fmt}, content_type="text/plain"
            )
        params = request.GET.copy()
        del params["format"]  # the changelist would take it for a field lookup
        request.GET = params  # type: ignore[assignment]  # a copy is mutable by design
        changelist = self.get_changelist_instance(request)
        return audit_events_export_response(queryset=changelist.get_queryset(request), fmt=fmt)


# --- Notification channels (DESIGN §4.7) --------------------------------------------------------


class NotificationChannelForm(forms.ModelForm):
    """The target (URL or token) is a secret: never rendered back; leaving it empty keeps the stored one."""

    target = forms.CharField(
        label=_("URL or token (secret)"),
        required=False,
        max_length=1000,
        widget=forms.PasswordInput(render_value=False, attrs={"placeholder": _("unchanged when empty"), "size": 80}),
    )
    secret = forms.CharField(
        label=_("signing secret"),
        required=False,
        max_length=200,
        help_text=_("DingTalk and Feishu robots with signature verification; unchanged when empty, '-' removes it."),
        widget=forms.PasswordInput(render_value=False, attrs={"placeholder": _("unchanged when empty"), "size": 80}),
    )
    actions = forms.JSONField(
        label=_("event actions"),
        initial=default_channel_actions,
        help_text=_('A JSON list of actions or patterns, e.g. ["microservice.*", "operation.run"]; ["*"] for all.'),
    )
    results = forms.JSONField(
        label=_("results"),
        required=False,
        initial=list,
        help_text=_('e.g. ["error"]; [] for every result (dry runs never).'),
    )

    class Meta:
        model = NotificationChannel
        fields = ["name", "kind", "target", "secret", "keyword", "language", "mention", "actions", "results", "enabled"]

    def clean_secret(self) -> str:
        secret = self.cleaned_data.get("secret") or ""
        if secret == "-":
            return ""
        if not secret and self.instance.pk:
            return NotificationChannel.objects.get(pk=self.instance.pk).secret
        return secret

    def clean_target(self) -> str:
        target = self.cleaned_data.get("target") or ""
        if not target and self.instance.pk:
            return NotificationChannel.objects.get(pk=self.instance.pk).target
        if not target:
            raise forms.ValidationError(_("Enter the webhook URL or the robot's token."))
        return target

    def clean_actions(self) -> list[str]:
        return _string_list(self.cleaned_data.get("actions"))

    def clean_results(self) -> list[str]:
        return _string_list(self.cleaned_data.get("results"))


def _string_list(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise forms.ValidationError(_("Enter a JSON list of strings."))
    return value


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    form = NotificationChannelForm
    list_display = ["name", "kind", "language", "enabled", "actions", "results", "mention"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> _FieldGroups:
        fields: list[str | _ListOrTuple[str]] = [
            "name",
            "kind",
            "target",
            "secret",
            "keyword",
            "language",
            "mention",
            "actions",
            "results",
            "enabled",
        ]
        if obj is not None and not self.has_change_permission(request, obj):
            fields.remove("target")  # viewers never see the secrets, not even masked
            fields.remove("secret")
        return fields

    def save_model(self, request: HttpRequest, obj: NotificationChannel, form: Any, change: bool) -> None:
        actor = Actor.from_request(request, source=AuditSource.ADMIN)
        if change:
            data = {field: form.cleaned_data[field] for field in form.changed_data if field in form.cleaned_data}
            saved = channels.notification_channel_update(actor=actor, channel=obj, data=data)
        else:
            saved = channels.notification_channel_create(actor=actor, **form.cleaned_data)
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: NotificationChannel) -> None:
        channels.notification_channel_delete(actor=Actor.from_request(request, source=AuditSource.ADMIN), channel=obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for channel in queryset:
            self.delete_model(request, channel)


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyModelAdmin):
    """Read-only: what was sent where, and why a delivery failed (it is recorded here, against its event)."""

    list_display = ["created_at", "event", "channel", "repeats", "state", "attempts", "last_error", "finished_at"]
    list_filter = ["state", "channel"]
    list_select_related = ["event", "channel"]
    fields = ["event", "channel", "repeats", "state", "attempts", "last_error", "created_at", "finished_at"]
    readonly_fields = cast("list[str]", fields)  # plain names, no groups
    actions = None

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("audit.view_auditevent")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)
