"""Unlocking logins (django-axes' access attempts) and group scopes, each change audited."""

from __future__ import annotations

from typing import Any

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from apps.accounts import scope_services
from apps.accounts.logins import login_lockouts_clear
from apps.accounts.models import GroupScope
from apps.audit.services import Actor

admin.site.unregister(AccessAttempt)


@admin.register(AccessAttempt)
class LoginLockoutAdmin(AccessAttemptAdmin):
    """Failed logins per user name and address; deleting a row (or "Unlock") lifts its lockout."""

    actions = ["unlock"]

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # "Unlock" does the same, audited
        return actions

    @admin.action(description=_("Unlock the selected logins"), permissions=["delete"])
    def unlock(self, request: HttpRequest, queryset: QuerySet[AccessAttempt]) -> None:
        count = login_lockouts_clear(actor=Actor.for_admin(request), attempts=queryset)
        self.message_user(
            request,
            ngettext("%(count)d login unlocked.", "%(count)d logins unlocked.", count) % {"count": count},
            messages.SUCCESS,
        )

    def delete_model(self, request: HttpRequest, obj: AccessAttempt) -> None:
        login_lockouts_clear(actor=Actor.for_admin(request), attempts=AccessAttempt.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AccessAttempt]) -> None:
        login_lockouts_clear(actor=Actor.for_admin(request), attempts=queryset)


class GroupScopeForm(forms.ModelForm):
    namespaces = forms.JSONField(
        label=_("namespaces"),
        required=False,
        help_text=_('A JSON list, e.g. ["shop", "payments"]; [] for the whole cluster.'),
    )

    class Meta:
        model = GroupScope
        fields = ["group", "role", "cluster", "namespaces"]

    def clean_namespaces(self) -> list[str]:
        return self.cleaned_data.get("namespaces") or []


@admin.register(GroupScope)
class GroupScopeAdmin(admin.ModelAdmin):
    """Which group has which role on which cluster (and namespaces); every change is audited.

    Only global admins hold the ``accounts.*_groupscope`` permissions (scoped users never do).
    """

    form = GroupScopeForm
    list_display = ["group", "role", "cluster", "namespaces_display", "from_config", "updated_at"]
    list_filter = ["role", "cluster", "from_config"]
    search_fields = ["group__name", "cluster__name"]
    list_select_related = ["group", "cluster"]
    readonly_fields = ["from_config", "created_at", "updated_at"]

    @admin.display(description=_("namespaces"))
    def namespaces_display(self, obj: GroupScope) -> str:
        return ", ".join(obj.namespaces) if obj.namespaces else str(_("whole cluster"))

    def save_model(self, request: HttpRequest, obj: GroupScope, form: forms.ModelForm, change: bool) -> None:
        actor = Actor.for_admin(request)
        data = form.cleaned_data
        if change:
            changed = {field: data[field] for field in form.changed_data if field in scope_services.EDITABLE_FIELDS}
            saved = scope_services.group_scope_update(actor=actor, scope=obj, data=changed)
        else:
            saved = scope_services.group_scope_create(
                actor=actor,
                group=data["group"],
                role=data["role"],
                cluster=data["cluster"],
                namespaces=data["namespaces"],
            )
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: GroupScope) -> None:
        scope_services.group_scope_delete(actor=Actor.for_admin(request), scope=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[GroupScope]) -> None:
        for scope in queryset.select_related("group", "cluster"):
            scope_services.group_scope_delete(actor=Actor.for_admin(request), scope=scope)
