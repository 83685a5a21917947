"""Celery tasks of the audit app: delivering notifications and summing up repeated ones (DESIGN §4.7)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.conf import settings

from apps.audit.delivery import DeliveryOutcome, notification_delivery_attempt
from apps.audit.queue import NOTIFICATION_DELIVER_TASK, NOTIFICATION_REPEATS_SUMMARIZE_TASK
from apps.audit.services import notification_repeats_summarize

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, ignore_result=True, name=NOTIFICATION_DELIVER_TASK)
def notification_deliver_task(self: Any, *, delivery_id: int) -> str:
    """One attempt to send a delivery; retried a bounded number of times, then recorded as failed.

    Idempotent: a delivery already sent or given up is not sent again.
    """
    final = self.request.retries >= settings.KUBEDOOR_NOTIFY_MAX_RETRIES
    outcome = notification_delivery_attempt(delivery_id=delivery_id, final=final)
    if outcome is DeliveryOutcome.RETRY:
        delay = settings.KUBEDOOR_NOTIFY_RETRY_DELAY_SECONDS * (2**self.request.retries)
        raise self.retry(countdown=delay, max_retries=settings.KUBEDOOR_NOTIFY_MAX_RETRIES)
    return outcome.value


@shared_task(acks_late=True, ignore_result=True, name=NOTIFICATION_REPEATS_SUMMARIZE_TASK)
def notification_repeats_summarize_task(*, first_delivery_id: int) -> str:
    """When a coalescing window closes: one summary of the events it held back, if any. Idempotent."""
    summary = notification_repeats_summarize(first_delivery_id=first_delivery_id)
    return "summarized" if summary is not None else "nothing held back"
