"""Celery tasks of the control app: running scheduled operations (DESIGN §4.5)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from apps.control import scheduling
from apps.control.queue import OPERATION_RUN_TASK

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, ignore_result=True, name=OPERATION_RUN_TASK)
def operation_run_task(self: Any, *, operation_id: int) -> dict[str, Any] | None:
    """Run one scheduled operation. The message's task id is the run id, so a redelivery does not act twice.

    Not retried automatically: a failed target is recorded in the result and audited; retrying a
    restart would roll the pods again.
    """
    batch = scheduling.operation_run(operation_id=operation_id, run_id=str(self.request.id))
    return None if batch is None else {"ok": batch.ok, "failed": batch.failed}
