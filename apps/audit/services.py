"""Writing the audit trail."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.http import HttpRequest

from apps.audit.models import AuditEvent, AuditResult, AuditSource, NotificationChannel, NotificationDelivery

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    """Who acts, from where: a user, or a named system actor (``system``, ``webhook``, ``scheduler``)."""

    user: AbstractBaseUser | None
    name: str
    source: str
    request_id: str = ""
    remote_addr: str | None = None

    @classmethod
    def from_request(cls, request: HttpRequest, *, source: str) -> Actor:
        user = getattr(request, "user", None)
        if user is None or isinstance(user, AnonymousUser) or not user.is_authenticated:
            user = None
        return cls(
            user=user,
            name=user.get_username() if user is not None else "anonymous",
            source=source,
            request_id=getattr(request, "request_id", ""),
            remote_addr=request.META.get("REMOTE_ADDR") or None,
        )

    @classmethod
    def system(cls, name: str = "system", *, source: str = AuditSource.SYSTEM, on_behalf_of: Any = None) -> Actor:
        """A system actor; ``on_behalf_of`` (a user) is recorded as the event's user when given."""
        return cls(user=on_behalf_of, name=name, source=source)


def _jsonable(value: Any) -> Any:
    """Round-trip through Django's encoder so dates, decimals and UUIDs store as JSON."""
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def audit_event_record(
    *,
    actor: Actor,
    action: str,
    cluster: str = "",
    namespace: str = "",
    name: str = "",
    before: Any = None,
    after: Any = None,
    result: str = AuditResult.OK,
    message: str = "",
) -> AuditEvent:
    """Append one event. Call it inside the transaction of the change it records."""
    event = AuditEvent.objects.create(
        actor=actor.user,
        actor_name=actor.name,
        source=actor.source,
        action=action,
        cluster=cluster,
        namespace=namespace,
        name=name,
        before=_jsonable(before),
        after=_jsonable(after),
        result=result,
        message=message,
        request_id=actor.request_id,
        remote_addr=actor.remote_addr,
    )
    logger.debug("audit %s %s/%s/%s by %s: %s", action, cluster, namespace, name, actor.name, result)
    if result != AuditResult.DRY_RUN:
        notifications_queue(event=event)
    return event


def notifications_queue(*, event: AuditEvent) -> list[NotificationDelivery]:
    """Create a pending delivery per subscribed channel and send each after the transaction commits.

    Dry runs are never notified. A delivery that finally fails is recorded on its
    ``NotificationDelivery`` row; it never fails the change that caused it.
    """
    deliveries = [
        NotificationDelivery.objects.create(event=event, channel=channel)
        for channel in NotificationChannel.objects.filter(enabled=True)
        if channel.wants(action=event.action, result=event.result)
    ]
    for delivery in deliveries:
        transaction.on_commit(partial(_enqueue_delivery, delivery.pk))
    return deliveries


def _enqueue_delivery(delivery_id: int) -> None:
    from apps.audit.tasks import notification_deliver_task

    try:
        notification_deliver_task.delay(delivery_id=delivery_id)
    except Exception:  # noqa: BLE001 - a broker outage must not fail the request that caused the event
        logger.exception("cannot queue notification delivery %s", delivery_id)
