"""The audit trail (DESIGN §4.6)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
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


# What the admin and the API show first of an event: when, who, what, on which object.
AUDIT_EVENT_SUBJECT_FIELDS = ("at", "actor_name", "source", "action", "cluster", "namespace", "name")


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise TypeError("Audit events are append-only")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("Audit events are append-only")


class AuditEvent(models.Model):
    """One change or decision: who did what to which object, before and after, and the result.

    Append-only: the model refuses updates and deletes, and neither admin nor API offers them; on
    PostgreSQL a trigger (migration 0004) refuses them in the database itself, except the retention
    purge of ``manage.py kubedoor_audit_purge`` (``apps.audit.retention``).
    Written only by ``apps.audit.services`` (``audit_event_record``, or ``audit_events_record`` for many at
    once), in the transaction of the change.
    """

    at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)
    # DO_NOTHING, not SET_NULL: deleting a user must not UPDATE the trail (the database refuses it);
    # ``actor_name`` keeps who it was, and without a constraint the id may point at no user.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
        db_constraint=False,
        db_index=False,  # nothing looks events up by user id; ``actor_name`` is indexed
    )
    actor_name = models.CharField(_("actor name"), max_length=150, db_index=True)
    source = models.CharField(_("source"), max_length=8, choices=AuditSource.choices)
    action = models.CharField(_("action"), max_length=64, db_index=True)
    # No index of its own: ``auditevent_object`` (cluster, namespace, name) starts with it. On PostgreSQL,
    # ``actor_name`` and ``action`` have no pattern (``_like``) index either (migration 0007).
    cluster = models.CharField(_("cluster"), max_length=63, blank=True)
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


# --- Notifications (DESIGN §4.7, §13) ------------------------------------------------------------


class ChannelKind(models.TextChoices):
    WECOM = "wecom", _("WeCom")
    DINGTALK = "dingtalk", _("DingTalk")
    FEISHU = "feishu", _("Feishu")
    SLACK = "slack", _("Slack")
    WEBHOOK = "webhook", _("generic webhook")


# The languages a channel's messages can be in (the UI's languages, named in their own words).
CHANNEL_LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]


def default_channel_actions() -> list[str]:
    return ["microservice.scale", "microservice.restart", "operation.run"]


class NotificationChannel(models.Model):
    """A chat room or HTTP endpoint told about audit events whose action it subscribes to.

    ``target`` is the webhook URL (or, for WeCom, DingTalk and Feishu, just the robot's key or
    token) and is a secret: it is never shown back and never written into audit events; so is the
    DingTalk/Feishu signing ``secret``. Messages are written in ``language``, times in the time zone
    of the event's cluster.
    ``actions`` are action names or patterns ending in ``*`` (``microservice.*``, ``*``);
    ``results`` narrows to some results (empty = every result but ``dry_run``, which is never sent).
    """

    name = models.CharField(_("name"), max_length=100, unique=True)
    kind = models.CharField(_("kind"), max_length=8, choices=ChannelKind.choices)
    target = models.CharField(_("URL or token (secret)"), max_length=1000)
    mention = models.CharField(
        _("mention"),
        max_length=500,
        blank=True,
        help_text=_("Comma-separated: mobile numbers (DingTalk), user ids (WeCom, Feishu, Slack), or 'all'."),
    )
    language = models.CharField(
        _("language"),
        max_length=8,
        choices=CHANNEL_LANGUAGES,
        default="en",
        help_text=_("The language of the messages this channel gets."),
    )
    secret = models.CharField(
        _("signing secret"),
        max_length=200,
        blank=True,
        help_text=_("DingTalk and Feishu robots with signature verification: the robot's secret (SEC…)."),
    )
    keyword = models.CharField(
        _("keyword"),
        max_length=100,
        blank=True,
        help_text=_("A robot with a keyword check drops messages without it: it is added to the title when missing."),
    )
    actions = models.JSONField(_("event actions"), default=default_channel_actions, blank=True)
    results = models.JSONField(_("results"), default=list, blank=True, help_text=_("Empty: every result."))
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("notification channel")
        verbose_name_plural = _("notification channels")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.secret and self.kind not in ("dingtalk", "feishu"):
            raise ValidationError(
                {
                    "secret": _("Only DingTalk and Feishu robots sign their messages; %(name)s is a %(kind)s channel.")
                    % {"name": self.name, "kind": self.get_kind_display()}
                }
            )

    def wants(self, *, action: str, result: str) -> bool:
        if not self.enabled or result == AuditResult.DRY_RUN:
            return False
        if self.results and result not in self.results:
            return False
        for pattern in self.actions or []:
            if pattern == action or (pattern.endswith("*") and action.startswith(pattern[:-1])):
                return True
        return False

    @property
    def mentions(self) -> list[str]:
        return [item.strip() for item in self.mention.split(",") if item.strip()]


class DeliveryState(models.TextChoices):
    PENDING = "pending", _("pending")
    SENT = "sent", _("sent")
    FAILED = "failed", _("failed")


class NotificationDelivery(models.Model):
    """The delivery of one audit event to one channel: its attempts and, when it failed, why.

    The audit event itself is append-only, so a failed delivery is recorded here, against it.
    A delivery with ``repeats`` > 0 is a summary: that many events of the same action and object
    (this one the last of them) were not sent one by one, because a delivery of the first one had
    opened a coalescing window (``apps.audit.services.notifications_queue``).
    """

    event = models.ForeignKey(
        AuditEvent, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("audit event")
    )
    channel = models.ForeignKey(
        NotificationChannel, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("channel")
    )
    state = models.CharField(_("state"), max_length=8, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    repeats = models.PositiveIntegerField(
        _("repeats"), default=0, help_text=_("A summary of this many repeated events; 0 for the event itself.")
    )
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("notification delivery")
        verbose_name_plural = _("notification deliveries")
        constraints = [models.UniqueConstraint(fields=["event", "channel"], name="delivery_once_per_channel")]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.channel_id}: {self.state}"
