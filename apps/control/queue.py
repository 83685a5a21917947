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


# The webhook app's task that writes a cluster's admission-policy parameters (apps/webhook/tasks.py):
# control queues it by name when the table changes, without importing the webhook app.
ADMISSION_POLICY_SYNC_TASK = "apps.webhook.tasks.admission_policy_sync_task"


def admission_policy_sync_enqueue(*, cluster_id: int, namespaces: list[str] | None) -> None:
    """Rewrite the cluster's policy parameters for ``namespaces`` (``None``: every namespace, and the policies)."""
    task_send(ADMISSION_POLICY_SYNC_TASK, kwargs={"cluster_id": cluster_id, "namespaces": namespaces})
