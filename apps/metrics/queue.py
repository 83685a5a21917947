"""Tasks of the metrics app, queued by name (the names the task decorators in ``tasks.py`` use).

Services queue through here instead of importing ``tasks.py``, which imports them: the import
graph stays one way (tests/test_architecture.py). The daily ``collection_scheduled_task`` is not
queued but fired by beat; its name lives with the cluster's beat entry in
``apps.control.collection_schedule``. Collection tasks go to ``KUBEDOOR_COLLECTION_QUEUE`` when it
is set (workers dedicated to collection consume it with ``-Q``); a retried chunk stays on its queue.
"""

from __future__ import annotations

from django.conf import settings

from kubedoor_site.queue import task_send

COLLECTION_RUN_TASK = "apps.metrics.tasks.collection_run_task"
COLLECTION_CHUNK_TASK = "apps.metrics.tasks.collection_chunk_task"


def collection_run_enqueue(*, run_id: int) -> None:
    """Execute a recorded collection run on workers: its task splits it into chunks."""
    task_send(COLLECTION_RUN_TASK, kwargs={"run_id": run_id}, queue=settings.KUBEDOOR_COLLECTION_QUEUE or None)


def collection_chunk_enqueue(*, chunk_id: int) -> None:
    """Collect one chunk of a run's days on a worker."""
    task_send(COLLECTION_CHUNK_TASK, kwargs={"chunk_id": chunk_id}, queue=settings.KUBEDOOR_COLLECTION_QUEUE or None)


IMPORT_RUN_TASK = "apps.metrics.tasks.import_run_task"


def import_run_enqueue(*, run_id: int, clickhouse_url: str = "", password: str = "") -> None:
    """Execute a recorded KubeDoor import on a worker; ``password`` is the encrypted token, never the text."""
    task_send(IMPORT_RUN_TASK, kwargs={"run_id": run_id, "clickhouse_url": clickhouse_url, "password": password})
