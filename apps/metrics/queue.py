"""Tasks of the metrics app, queued by name (the names the task decorators in ``tasks.py`` use).

Services queue through here instead of importing ``tasks.py``, which imports them: the import
graph stays one way (tests/test_architecture.py). The daily ``collection_scheduled_task`` is not
queued but fired by beat; its name lives with the cluster's beat entry in
``apps.control.collection_schedule``.
"""

from __future__ import annotations

from kubedoor_site.queue import task_send

COLLECTION_RUN_TASK = "apps.metrics.tasks.collection_run_task"


def collection_run_enqueue(*, run_id: int) -> None:
    """Execute a recorded collection run on a worker."""
    task_send(COLLECTION_RUN_TASK, kwargs={"run_id": run_id})


IMPORT_RUN_TASK = "apps.metrics.tasks.import_run_task"


def import_run_enqueue(*, run_id: int, clickhouse_url: str = "", password: str = "") -> None:
    """Execute a recorded KubeDoor import on a worker; ``password`` is the encrypted token, never the text."""
    task_send(IMPORT_RUN_TASK, kwargs={"run_id": run_id, "clickhouse_url": clickhouse_url, "password": password})
