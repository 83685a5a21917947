"""Unlocking logins: django-axes' access attempts, with the unlock audited."""

from __future__ import annotations

from typing import Any

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from apps.accounts.logins import login_lockouts_clear
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
