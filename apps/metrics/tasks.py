"""Celery tasks of the metrics app: thin wrappers around the collection services."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.control.collection_schedule import COLLECTION_SCHEDULED_TASK
from apps.metrics import collection_chunks, import_runs, services
from apps.metrics.queue import COLLECTION_CHUNK_TASK, COLLECTION_RUN_TASK, IMPORT_RUN_TASK


@shared_task(acks_late=True, max_retries=0, name=COLLECTION_RUN_TASK)
def collection_run_task(*, run_id: int) -> str:
    """Split a recorded collection into chunks queued on workers; a re-delivery re-queues unfinished chunks."""
    run = collection_chunks.collection_plan(run_id=run_id)
    return run.state


# Retries are bounded by the chunk itself (KUBEDOOR_COLLECTION_MAX_RETRIES failed attempts); waiting
# for a backend slot or for a duplicate delivery to finish is not a failure and is not counted.
@shared_task(bind=True, acks_late=True, max_retries=None, name=COLLECTION_CHUNK_TASK)
def collection_chunk_task(self: Any, *, chunk_id: int) -> str:
    """Collect one chunk of a run (idempotent: its days are replaced in the store)."""
    try:
        return collection_chunks.collection_chunk_run(chunk_id=chunk_id)
    except collection_chunks.ChunkDeferred as exc:
        raise self.retry(countdown=exc.countdown, exc=exc) from exc


@shared_task(acks_late=True, max_retries=0, name=COLLECTION_SCHEDULED_TASK)
def collection_scheduled_task(*, cluster: str) -> str | None:
    """The daily beat entry of a cluster (see ``apps.control.collection_schedule``)."""
    run = services.collection_scheduled(cluster_name=cluster)
    return None if run is None else run.state


@shared_task(acks_late=True, max_retries=0, name=IMPORT_RUN_TASK)
def import_run_task(*, run_id: int, clickhouse_url: str = "", password: str = "") -> str:
    """Run a recorded KubeDoor import; re-delivery of a finished run does nothing (the import is idempotent)."""
    return import_runs.import_run_execute(run_id=run_id, clickhouse_url=clickhouse_url, password=password).state
