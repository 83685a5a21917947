"""The read-only audit log in the admin: nobody, not even a superuser, may add, change or delete."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "actor_name", "source", "action", "cluster", "namespace", "name", "result"]
    list_filter = ["source", "result", "action", "cluster"]
    search_fields = ["actor_name", "namespace", "name", "message", "request_id"]
    date_hierarchy = "at"
    list_per_page = 100
    fields = [
        "at",
        "actor_name",
        "source",
        "action",
        "cluster",
        "namespace",
        "name",
        "result",
        "message",
        "before",
        "after",
        "request_id",
        "remote_addr",
    ]
    readonly_fields = fields
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
