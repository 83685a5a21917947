"""Tasks of the webhook app (faces: each calls one service)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.control.queue import ADMISSION_POLICY_SYNC_TASK
from apps.webhook import services


@shared_task(name=ADMISSION_POLICY_SYNC_TASK, acks_late=True)
def admission_policy_sync_task(*, cluster_id: int, namespaces: list[str] | None = None) -> dict[str, Any]:
    """Rewrite a cluster's admission-policy parameters after an edit or a refresh (idempotent)."""
    return services.admission_policy_sync(cluster_id=cluster_id, namespaces=namespaces)
