"""Tasks of the audit app, queued by name (the names the task decorators in ``tasks.py`` use).

Services queue through here instead of importing ``tasks.py``, which imports them: the import
graph stays one way (tests/test_architecture.py).
"""

from __future__ import annotations

from kubedoor_site.queue import task_send

NOTIFICATION_DELIVER_TASK = "apps.audit.tasks.notification_deliver_task"
NOTIFICATION_REPEATS_SUMMARIZE_TASK = "apps.audit.tasks.notification_repeats_summarize_task"


def notification_deliver_enqueue(*, delivery_id: int) -> None:
    """Send one notification delivery from a worker (retried there)."""
    task_send(NOTIFICATION_DELIVER_TASK, kwargs={"delivery_id": delivery_id})


def notification_repeats_summarize_enqueue(*, first_delivery_id: int, countdown: float) -> None:
    """Sum up a coalescing window's held-back events once it closes, ``countdown`` seconds from now."""
    task_send(NOTIFICATION_REPEATS_SUMMARIZE_TASK, kwargs={"first_delivery_id": first_delivery_id}, countdown=countdown)
