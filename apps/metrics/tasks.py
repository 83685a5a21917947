"""Celery tasks of the metrics app: thin wrappers around the collection services."""

from __future__ import annotations

from celery import shared_task

from apps.metrics import services


@shared_task(acks_late=True, max_retries=0)
def collection_run_task(*, run_id: int) -> str:
    """Run a recorded collection; re-delivery re-collects (day_replace is idempotent)."""
    run = services.collection_run(run_id=run_id)
    return run.state


@shared_task(acks_late=True, max_retries=0)
def collection_scheduled_task(*, cluster: str) -> str | None:
    """The daily beat entry of a cluster (see ``collection_schedule_sync``)."""
    run = services.collection_scheduled(cluster_name=cluster)
    return None if run is None else run.state
