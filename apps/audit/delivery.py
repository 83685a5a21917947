"""Sending one notification delivery and recording its outcome on the ``NotificationDelivery`` row."""

from __future__ import annotations

import enum
import logging
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation

from apps.audit import notify
from apps.audit.models import DeliveryState, NotificationDelivery
from apps.audit.services import cluster_time_zone_get

logger = logging.getLogger(__name__)


class DeliveryOutcome(enum.Enum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    SKIPPED = "skipped"


def notification_delivery_attempt(*, delivery_id: int, final: bool) -> DeliveryOutcome:
    """Try once to send ``delivery_id``; on failure record the error and say whether to retry.

    No database transaction is held while the HTTP request runs. A delivery that is no longer
    pending (sent, or given up) is skipped, so a redelivered task message does not send twice.
    """
    delivery = NotificationDelivery.objects.select_related("event", "channel").filter(pk=delivery_id).first()
    if delivery is None or delivery.state != DeliveryState.PENDING:
        return DeliveryOutcome.SKIPPED
    channel, event = delivery.channel, delivery.event
    with translation.override(channel.language or settings.LANGUAGE_CODE):
        message = notify.message_for_event(
            event,
            repeats=delivery.repeats,
            window_seconds=settings.KUBEDOOR_NOTIFY_REPEAT_WINDOW_SECONDS,
            time_zone=cluster_time_zone_get(cluster=event.cluster),
        )
        payload = notify.payload_for(
            kind=channel.kind, message=message, mentions=channel.mentions, keyword=channel.keyword
        )
    try:
        url = notify.channel_url(kind=channel.kind, target=channel.target)
        url, payload = notify.signed(
            kind=channel.kind, url=url, payload=payload, secret=channel.secret, now=time.time()
        )
        notify.send(url=url, payload=payload, timeout=settings.KUBEDOOR_NOTIFY_TIMEOUT_SECONDS)
    except notify.NotifyError as exc:
        with transaction.atomic():
            row = NotificationDelivery.objects.select_for_update().get(pk=delivery_id)
            row.attempts += 1
            row.last_error = exc.message
            if final:
                row.state = DeliveryState.FAILED
                row.finished_at = timezone.now()
            row.save(update_fields=["attempts", "last_error", "state", "finished_at"])
        logger.warning(
            "notification of event %s to %s failed (attempt %s%s): %s",
            event.pk,
            channel.name,
            row.attempts,
            ", giving up" if final else "",
            exc.message,
        )
        return DeliveryOutcome.FAILED if final else DeliveryOutcome.RETRY
    NotificationDelivery.objects.filter(pk=delivery_id).update(
        state=DeliveryState.SENT, attempts=delivery.attempts + 1, finished_at=timezone.now(), last_error=""
    )
    logger.info("notified %s of event %s (%s)", channel.name, event.pk, event.action)
    return DeliveryOutcome.SENT
