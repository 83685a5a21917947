"""Writing the audit trail."""

from __future__ import annotations

import datetime
import json
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, transaction
from django.db.models import Count, Max, Min
from django.http import HttpRequest
from django.utils import timezone

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
    notify_coalesce_seconds: float | None = None,
) -> AuditEvent:
    """Append one event. Call it inside the transaction of the change it records.

    ``notify_coalesce_seconds``: repeats of this action on the same object within that many seconds
    are recorded but notified once, then summed up in one follow-up (``notifications_queue``).
    """
    coalesce = bool(notify_coalesce_seconds) and result != AuditResult.DRY_RUN
    if coalesce:
        _coalesce_lock()  # before the INSERT, so event ids follow the order of the coalescing decisions
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
        notifications_queue(event=event, coalesce_seconds=notify_coalesce_seconds if coalesce else None)
    return event


def notifications_queue(*, event: AuditEvent, coalesce_seconds: float | None = None) -> list[NotificationDelivery]:
    """Create a pending delivery per subscribed channel and send each after the transaction commits.

    Dry runs are never notified. A delivery that finally fails is recorded on its
    ``NotificationDelivery`` row; it never fails the change that caused it.

    With ``coalesce_seconds`` (admission denials: a controller retrying a denied Deployment sends
    the same denial again and again), a channel that was notified of the same action on the same
    object less than that many seconds ago, by a delivery no summary has closed yet, gets nothing
    now: the event is written but not sent. When such a window opens,
    ``notification_repeats_summarize_task`` is queued to run as it closes and sends one summary
    ("N more denials of ns/name in the last minute") of the events it held back.

    The state lives in the database, not in a process: each decision takes one PostgreSQL advisory
    lock (held to the end of the transaction), so webhook workers and replicas writing events of
    the same object one after another see each other's deliveries, and event ids follow the order
    of the decisions. SQLite serializes writers by itself. Not Django's cache: without Redis it is
    per process (LocMemCache), while every worker and replica shares the database.
    """
    channels = [
        channel
        for channel in NotificationChannel.objects.filter(enabled=True)
        if channel.wants(action=event.action, result=event.result)
    ]
    if coalesce_seconds and channels:
        held = _channels_in_open_window(event=event, channels=channels, seconds=coalesce_seconds)
        channels = [channel for channel in channels if channel.pk not in held]
    deliveries = [NotificationDelivery.objects.create(event=event, channel=channel) for channel in channels]
    for delivery in deliveries:
        transaction.on_commit(partial(_enqueue_delivery, delivery.pk))
        if coalesce_seconds:
            transaction.on_commit(partial(_enqueue_repeats_summary, delivery.pk, coalesce_seconds))
    return deliveries


# PostgreSQL advisory lock key of notification coalescing ("KD" and 1); transaction-scoped, re-entrant.
COALESCE_LOCK_SQL = "SELECT pg_advisory_xact_lock(%(key)s)"
COALESCE_LOCK_KEY = 0x4B44_0001


def _coalesce_lock() -> None:
    connection = connections[AuditEvent.objects.db]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(COALESCE_LOCK_SQL, {"key": COALESCE_LOCK_KEY})


def _same_object(event: AuditEvent, prefix: str = "") -> dict[str, str]:
    return {
        f"{prefix}action": event.action,
        f"{prefix}cluster": event.cluster,
        f"{prefix}namespace": event.namespace,
        f"{prefix}name": event.name,
    }


def _channels_in_open_window(*, event: AuditEvent, channels: list[NotificationChannel], seconds: float) -> set[int]:
    """Channels with a window open on ``event``'s action and object: notified of it less than
    ``seconds`` ago (the window's first delivery) and no summary sent since."""
    same = NotificationDelivery.objects.filter(**_same_object(event, "event__"), channel__in=channels).exclude(
        event=event
    )
    since = timezone.now() - datetime.timedelta(seconds=seconds)
    firsts = dict(
        same.filter(repeats=0, created_at__gte=since)
        .values("channel_id")
        .annotate(first=Max("event_id"))
        .values_list("channel_id", "first")
    )
    if not firsts:
        return set()
    summaries = same.filter(repeats__gt=0, event_id__gt=min(firsts.values())).values_list("channel_id", "event_id")
    closed = {channel for channel, event_id in summaries if event_id > firsts.get(channel, event_id)}
    return set(firsts) - closed


def notification_repeats_summarize(*, first_delivery_id: int) -> NotificationDelivery | None:
    """The summary of a coalescing window opened by ``first_delivery_id``, when it held events back.

    Counts the events of the same action and object after the window's first one and before the
    next first one (the next window) that the channel wants; attaches one delivery with that count
    to the last of them and queues it. Idempotent: a window gets at most one summary. Run when the
    window has closed (the task is queued with that countdown); run earlier, it closes the window
    early, so the next event is notified again rather than lost.
    """
    first = NotificationDelivery.objects.select_related("event", "channel").filter(pk=first_delivery_id).first()
    if first is None or first.repeats or not first.channel.enabled:
        return None
    channel, event = first.channel, first.event
    with transaction.atomic():
        _coalesce_lock()
        later = NotificationDelivery.objects.filter(
            **_same_object(event, "event__"), channel=channel, event_id__gt=event.pk
        )
        bound = later.filter(repeats=0).aggregate(next=Min("event_id"))["next"]
        if bound is not None:
            later = later.filter(event_id__lt=bound)
        if later.filter(repeats__gt=0).exists():
            return None  # summed up already (a redelivered task)
        held = AuditEvent.objects.filter(**_same_object(event), pk__gt=event.pk).exclude(result=AuditResult.DRY_RUN)
        if bound is not None:
            held = held.filter(pk__lt=bound)
        if channel.results:
            held = held.filter(result__in=channel.results)
        counted = held.aggregate(n=Count("id"), last=Max("id"))
        if not counted["n"]:
            return None
        summary = NotificationDelivery.objects.create(event_id=counted["last"], channel=channel, repeats=counted["n"])
        transaction.on_commit(partial(_enqueue_delivery, summary.pk))
    logger.info(
        "notification summary for %s: %d more %s of %s/%s",
        channel.name,
        counted["n"],
        event.action,
        event.namespace,
        event.name,
    )
    return summary


def _enqueue_delivery(delivery_id: int) -> None:
    from apps.audit.tasks import notification_deliver_task

    try:
        notification_deliver_task.delay(delivery_id=delivery_id)
    except Exception:  # noqa: BLE001 - a broker outage must not fail the request that caused the event
        logger.exception("cannot queue notification delivery %s", delivery_id)


def _enqueue_repeats_summary(first_delivery_id: int, seconds: float) -> None:
    from apps.audit.tasks import notification_repeats_summarize_task

    try:
        notification_repeats_summarize_task.apply_async(
            kwargs={"first_delivery_id": first_delivery_id}, countdown=seconds
        )
    except Exception:  # noqa: BLE001 - as above: the event is written, only its summary is lost
        logger.exception("cannot queue the notification summary after delivery %s", first_delivery_id)
