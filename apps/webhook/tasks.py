"""Celery tasks of the webhook app: thin wrappers that call a service."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.audit.models import AuditSource
from apps.audit.services import Actor
from apps.webhook.queue import DRIFT_CHECK_TASK
from apps.webhook.services import drift


@shared_task(name=DRIFT_CHECK_TASK, acks_late=True)
def drift_check_task() -> dict[str, Any]:
    """The nightly drift check of every cluster (idempotent: each run records one more count)."""
    return drift.drift_check_all(actor=Actor.system("drift-check", source=AuditSource.TASK))
