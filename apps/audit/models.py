"""The audit trail (DESIGN §4.6)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class AuditSource(models.TextChoices):
    ADMIN = "admin", _("admin")
    API = "api", _("API")
    TASK = "task", _("task")
    WEBHOOK = "webhook", _("webhook")
    SYSTEM = "system", _("system")


class AuditResult(models.TextChoices):
    OK = "ok", _("ok")
    ERROR = "error", _("error")
    DENIED = "denied", _("denied")
    DRY_RUN = "dry_run", _("dry run")


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise TypeError("Audit events are append-only")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("Audit events are append-only")


class AuditEvent(models.Model):
    """One change or decision: who did what to which object, before and after, and the result.

    Append-only: the model refuses updates and deletes, and neither admin nor API offers them.
    Written by ``apps.audit.services.audit_event_record`` in the transaction of the change.
    """

    at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
        db_constraint=False,
    )
    actor_name = models.CharField(_("actor name"), max_length=150, db_index=True)
    source = models.CharField(_("source"), max_length=8, choices=AuditSource.choices)
    action = models.CharField(_("action"), max_length=64, db_index=True)
    cluster = models.CharField(_("cluster"), max_length=63, blank=True, db_index=True)
    namespace = models.CharField(_("namespace"), max_length=63, blank=True)
    name = models.CharField(_("name"), max_length=253, blank=True)
    before = models.JSONField(_("before"), null=True, blank=True)
    after = models.JSONField(_("after"), null=True, blank=True)
    result = models.CharField(_("result"), max_length=8, choices=AuditResult.choices, default=AuditResult.OK)
    message = models.TextField(_("message"), blank=True)
    request_id = models.CharField(_("request id"), max_length=64, blank=True)
    remote_addr = models.GenericIPAddressField(_("remote address"), null=True, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        indexes = [models.Index(fields=["cluster", "namespace", "name"], name="auditevent_object")]

    def __str__(self) -> str:
        target = "/".join(part for part in (self.cluster, self.namespace, self.name) if part)
        return f"{self.action} {target} by {self.actor_name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise TypeError("Audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise TypeError("Audit events are append-only")
