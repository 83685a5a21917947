"""Celery tasks of the metrics app: thin wrappers around the collection services."""

from __future__ import annotations

from celery import shared_task

from apps.control.collection_schedule import COLLECTION_SCHEDULED_TASK
from apps.metrics import import_runs, services
from apps.metrics.queue import COLLECTION_RUN_TASK, IMPORT_RUN_TASK


@shared_task(acks_late=True, max_retries=0, name=COLLECTION_RUN_TASK)
def collection_run_task(*, run_id: int) -> str:
    """Run a recorded collection; re-delivery re-collects (day_replace is idempotent)."""
    run = services.collection_run(run_id=run_id)
    return run.state


@shared_task(acks_late=True, max_retries=0, name=COLLECTION_SCHEDULED_TASK)
def collection_scheduled_task(*, cluster: str) -> str | None:
    """The daily beat entry of a cluster (see ``apps.control.collection_schedule``)."""
    run = services.collection_scheduled(cluster_name=cluster)
    return None if run is None else run.state


@shared_task(acks_late=True, max_retries=0, name=IMPORT_RUN_TASK)
def import_run_task(*, run_id: int, clickhouse_url: str = "", password: str = "") -> str:
    """Run a recorded KubeDoor import; re-delivery of a finished run does nothing (the import is idempotent)."""
    return import_runs.import_run_execute(run_id=run_id, clickhouse_url=clickhouse_url, password=password).state
