"""Tasks of the control app, queued by name (the names the task decorators in ``tasks.py`` use).

Services queue through here instead of importing ``tasks.py``, which imports them: the import
graph stays one way (tests/test_architecture.py).
"""

from __future__ import annotations

from kubedoor_site.queue import task_send

OPERATION_RUN_TASK = "apps.control.tasks.operation_run_task"


def operation_run_enqueue(*, operation_id: int) -> None:
    """Run a scheduled operation on a worker now (the message's task id becomes the run id)."""
    task_send(OPERATION_RUN_TASK, kwargs={"operation_id": operation_id})
