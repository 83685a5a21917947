"""Celery tasks of the webhook app: thin wrappers that call a service."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.audit.models import AuditSource
from apps.audit.services import Actor
from apps.control.queue import ADMISSION_POLICY_SYNC_TASK
from apps.webhook import services
from apps.webhook.queue import DRIFT_CHECK_TASK
from apps.webhook.services import drift


@shared_task(name=DRIFT_CHECK_TASK, acks_late=True)
def drift_check_task() -> dict[str, Any]:
    """The nightly drift check of every cluster (idempotent: each run records one more count)."""
    return drift.drift_check_all(actor=Actor.system("drift-check", source=AuditSource.TASK))


@shared_task(name=ADMISSION_POLICY_SYNC_TASK, acks_late=True)
def admission_policy_sync_task(*, cluster_id: int, namespaces: list[str] | None = None) -> dict[str, Any]:
    """Rewrite a cluster's admission-policy parameters after an edit or a refresh (idempotent)."""
    return services.admission_policy_sync(cluster_id=cluster_id, namespaces=namespaces)
