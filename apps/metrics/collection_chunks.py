"""A queued collection spread over workers: per-day chunks, a per-backend limit, a chunk retried alone (issue 14).

``collection_plan`` (the run's task) marks the run running and records its days in chunks of
``run.chunk_days``, each queued as its own task (by name, after commit). ``collection_chunk_run``
collects a chunk's days through ``services.day_collect_write`` (the same code as the one-shot
``collection_run``, so the store holds the same rows) while holding a slot of its metrics backend's
semaphore (``backend_slots``), so at most ``KUBEDOOR_COLLECTION_BACKEND_SLOTS`` chunks query one
backend at a time, over every worker. The chunk that finds all chunks done refreshes the control
table once.

Failures and dead workers:

- the backend or the store failing: the chunk records the error and asks its task for a Celery retry
  after ``DELAY × 2^(attempt − 1)``; the other chunks go on; after ``KUBEDOOR_COLLECTION_MAX_RETRIES``
  retries the chunk and the run fail;
- a worker dying: its unacknowledged task comes back after the broker's visibility timeout; the
  chunk's claim has no fresh heartbeat by then, so the new delivery takes it over and collects its
  days again. Writing a day replaces it, so no day is counted twice; the progress the dead claim
  counted is taken back from the run's when the chunk is claimed again;
- a delivery finding the chunk held by a live claim (a duplicate delivery) waits and tries again.
"""

from __future__ import annotations

import datetime
import logging
import uuid

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.models import AuditSource
from apps.audit.services import Actor
from apps.metrics import peaks, services
from apps.metrics.backend_slots import BackendSlot
from apps.metrics.clickhouse import ClickHouseError
from apps.metrics.models import ChunkState, CollectionChunk, CollectionRun, CollectionState
from apps.metrics.prometheus import PrometheusError
from apps.metrics.queue import collection_chunk_enqueue
from apps.metrics.store import PeakStore, peak_store

logger = logging.getLogger(__name__)

# How long a chunk waits before asking again for a busy backend slot or a chunk held elsewhere.
SLOT_WAIT_SECONDS = 1.0


class ChunkDeferred(Exception):
    """The chunk cannot run now; its task retries after ``countdown`` seconds."""

    def __init__(self, reason: str, *, countdown: float) -> None:
        super().__init__(reason)
        self.countdown = countdown


class ChunkLost(Exception):
    """Another delivery took the chunk over (this one was taken for dead); stop without writing more."""


def _lease() -> datetime.timedelta:
    return datetime.timedelta(seconds=settings.KUBEDOOR_COLLECTION_LEASE_SECONDS)


def _actor() -> Actor:
    return Actor.system("collector", source=AuditSource.TASK)


# --- plan -----------------------------------------------------------------------------------------


def collection_plan(*, run_id: int, now: datetime.datetime | None = None) -> CollectionRun:
    """Split a queued run into chunks and queue them; a redelivered plan re-queues the unfinished ones."""
    run = CollectionRun.objects.select_related("cluster").get(pk=run_id)
    if run.state in (CollectionState.DONE, CollectionState.FAILED):
        return run
    cluster = run.cluster
    now = now or timezone.now()
    windows, skipped = peaks.collection_windows(
        days=run.days, now=now, start=cluster.peak_start, end=cluster.peak_end, time_zone=cluster.time_zone
    )
    with transaction.atomic():
        run = CollectionRun.objects.select_for_update().select_related("cluster").get(pk=run_id)
        existing = list(run.chunks.exclude(state__in=[ChunkState.DONE, ChunkState.FAILED]).values_list("pk", flat=True))
        if run.chunks.exists():
            transaction.on_commit(lambda: _enqueue(existing))
            return run
        run.state = CollectionState.RUNNING
        run.started_at = now
        run.skipped_days = [day.isoformat() for day in skipped]
        run.progress_total = len(windows) * services.queries_per_day(cluster)
        run.progress_done = 0
        run.rows_written = 0
        run.days_collected = []
        run.errors = []
        run.save()
        days = [window.day.isoformat() for window in windows]
        size = max(1, run.chunk_days)
        chunks = CollectionChunk.objects.bulk_create(
            CollectionChunk(run=run, index=i, days=days[start : start + size])
            for i, start in enumerate(range(0, len(days), size))
        )
        chunk_ids = [chunk.pk for chunk in chunks]
        transaction.on_commit(lambda: _enqueue(chunk_ids))
    logger.info(
        "collection #%s %s: %d days in %d chunks, %d skipped",
        run.pk,
        cluster.name,
        len(windows),
        len(chunk_ids),
        len(skipped),
    )
    if not chunk_ids:  # every day's window is still open: nothing to collect, refresh now
        return _finish(run_id=run.pk, store=peak_store())
    return run


def _enqueue(chunk_ids: list[int]) -> None:
    for chunk_id in chunk_ids:
        collection_chunk_enqueue(chunk_id=chunk_id)


# --- chunk ----------------------------------------------------------------------------------------


def _claim(*, chunk_id: int, token: str) -> CollectionChunk | None:
    """Take the chunk for this delivery; ``None`` when it is finished or its run is over.

    Raises ``ChunkDeferred`` while another delivery holds it with a fresh heartbeat (a duplicate).
    """
    now = timezone.now()
    run_id = CollectionChunk.objects.values_list("run_id", flat=True).get(pk=chunk_id)
    with transaction.atomic():
        # Locks in the order every writer takes them (the run, then the chunk): no deadlock between them.
        run = CollectionRun.objects.select_for_update().get(pk=run_id)
        chunk = CollectionChunk.objects.select_for_update().get(pk=chunk_id)
        if run.state != CollectionState.RUNNING or chunk.state in (ChunkState.DONE, ChunkState.FAILED):
            return None
        alive = chunk.heartbeat_at is not None and chunk.heartbeat_at > now - _lease()
        if chunk.state == ChunkState.RUNNING and alive:
            raise ChunkDeferred(f"chunk {chunk} is held by a live claim", countdown=SLOT_WAIT_SECONDS)
        if chunk.progress_done:  # counted by an earlier claim that failed or died: count again from zero
            CollectionRun.objects.filter(pk=run_id).update(progress_done=F("progress_done") - chunk.progress_done)
        chunk.state = ChunkState.RUNNING
        chunk.claimed_by = token
        chunk.heartbeat_at = now
        chunk.progress_done = 0
        chunk.save(update_fields=["state", "claimed_by", "heartbeat_at", "progress_done"])
    return chunk


def collection_chunk_run(*, chunk_id: int, store: PeakStore | None = None) -> str:
    """Collect one chunk's days; the last chunk done refreshes the control table. Returns the outcome.

    Raises ``ChunkDeferred`` when the chunk should be retried later (backend busy, held elsewhere, or
    failed with retries left); the task turns it into a Celery retry.
    """
    chunk = CollectionChunk.objects.select_related("run__cluster").get(pk=chunk_id)
    run = chunk.run
    store = store or peak_store()
    if run.state != CollectionState.RUNNING:
        return "skipped"
    if chunk.state == ChunkState.DONE:  # redelivered after its days were written: only the finish is left
        _finish(run_id=run.pk, store=store)
        return "done"
    cluster = run.cluster
    slot = BackendSlot(
        cluster.prometheus_url,
        limit=settings.KUBEDOOR_COLLECTION_BACKEND_SLOTS,
        lease_seconds=settings.KUBEDOOR_COLLECTION_LEASE_SECONDS,
    )
    if not slot.acquire():
        raise ChunkDeferred(f"{cluster.prometheus_url} has no free slot", countdown=SLOT_WAIT_SECONDS)
    token = uuid.uuid4().hex
    try:
        claimed = _claim(chunk_id=chunk_id, token=token)
        if claimed is None:
            return "skipped"
        written = _collect(chunk=claimed, run=run, token=token, slot=slot, store=store)
    except ChunkDeferred:
        raise
    except ChunkLost:
        logger.warning("collection chunk %s was taken over by another delivery", chunk)
        return "lost"
    except (PrometheusError, ClickHouseError) as exc:
        return _failed(chunk_id=chunk_id, token=token, message=str(exc))
    except Exception as exc:
        logger.exception("collection chunk %s failed", chunk)
        _failed(chunk_id=chunk_id, token=token, message=f"{exc.__class__.__name__}: {exc}", final=True)
        raise
    finally:
        slot.release()
    if not _done(chunk_id=chunk_id, token=token, written=written):
        return "lost"
    _finish(run_id=run.pk, store=store)
    return "done"


def _collect(*, chunk: CollectionChunk, run: CollectionRun, token: str, slot: BackendSlot, store: PeakStore) -> int:
    cluster = run.cluster

    def query_done(_: str) -> None:
        still_ours = CollectionChunk.objects.filter(pk=chunk.pk, claimed_by=token).update(
            progress_done=F("progress_done") + 1, heartbeat_at=timezone.now()
        )
        if not still_ours:
            raise ChunkLost(str(chunk))
        CollectionRun.objects.filter(pk=run.pk).update(progress_done=F("progress_done") + 1)
        slot.renew()

    def alive() -> None:
        if not CollectionChunk.objects.filter(pk=chunk.pk, claimed_by=token).update(heartbeat_at=timezone.now()):
            raise ChunkLost(str(chunk))
        slot.renew()

    written = 0
    with services.prometheus_client(cluster) as client:
        for day in chunk.days:
            window = peaks.peak_window(
                day=datetime.date.fromisoformat(day),
                start=cluster.peak_start,
                end=cluster.peak_end,
                time_zone=cluster.time_zone,
            )
            written += services.day_collect_write(
                client=client,
                cluster=cluster,
                window=window,
                store=store,
                concurrency=run.concurrency,
                on_query_done=query_done,
                on_alive=alive,
            )
    return written


def _done(*, chunk_id: int, token: str, written: int) -> bool:
    """Record the chunk's days on the run, once (a claim taken over meanwhile records nothing)."""
    with transaction.atomic():
        run_id = CollectionChunk.objects.values_list("run_id", flat=True).get(pk=chunk_id)
        run = CollectionRun.objects.select_for_update().get(pk=run_id)
        chunk = CollectionChunk.objects.select_for_update().get(pk=chunk_id)
        if chunk.claimed_by != token or chunk.state != ChunkState.RUNNING:
            return False
        chunk.state = ChunkState.DONE
        chunk.rows_written = written
        chunk.finished_at = timezone.now()
        # ``error`` keeps the last failed attempt's message: a chunk that needed a retry says why.
        chunk.save(update_fields=["state", "rows_written", "finished_at"])
        run.rows_written += written
        run.days_collected = sorted({*run.days_collected, *chunk.days})
        run.save(update_fields=["rows_written", "days_collected"])
    return True


def _failed(*, chunk_id: int, token: str, message: str, final: bool = False) -> str:
    """Count a failed attempt: retry the chunk alone (``ChunkDeferred``) or, out of retries, fail the run."""
    with transaction.atomic():
        run_id = CollectionChunk.objects.values_list("run_id", flat=True).get(pk=chunk_id)
        run = CollectionRun.objects.select_for_update().select_related("cluster").get(pk=run_id)
        chunk = CollectionChunk.objects.select_for_update().get(pk=chunk_id)
        if chunk.claimed_by != token:
            return "lost"
        chunk.attempts += 1
        chunk.error = message
        retry = not final and chunk.attempts <= settings.KUBEDOOR_COLLECTION_MAX_RETRIES
        chunk.state = ChunkState.RETRYING if retry else ChunkState.FAILED
        chunk.finished_at = None if retry else timezone.now()
        chunk.save(update_fields=["attempts", "error", "state", "finished_at"])
    if retry:
        countdown = settings.KUBEDOOR_COLLECTION_RETRY_DELAY_SECONDS * 2 ** (chunk.attempts - 1)
        logger.warning(
            "collection chunk %s failed (attempt %d), retried in %.0f s: %s", chunk, chunk.attempts, countdown, message
        )
        raise ChunkDeferred(message, countdown=countdown)
    if run.state == CollectionState.RUNNING:
        services.collection_fail(
            run,
            actor=_actor(),
            message=_("Days %(days)s failed after %(attempts)s attempts: %(error)s")
            % {"days": ", ".join(chunk.days), "attempts": chunk.attempts, "error": message},
        )
    return "failed"


def _finish(*, run_id: int, store: PeakStore) -> CollectionRun:
    """Refresh the control table when every chunk is done, once per run (the refresh is claimed under lock).

    A claim older than the lease belongs to a worker that died while refreshing: it is taken over.
    """
    now = timezone.now()
    with transaction.atomic():
        run = CollectionRun.objects.select_for_update().select_related("cluster").get(pk=run_id)
        if run.state != CollectionState.RUNNING or run.chunks.exclude(state=ChunkState.DONE).exists():
            return run
        if run.refresh_claimed_at is not None and run.refresh_claimed_at > now - _lease():
            raise ChunkDeferred(f"collection #{run.pk} is being refreshed", countdown=SLOT_WAIT_SECONDS)
        run.refresh_claimed_at = now
        run.save(update_fields=["refresh_claimed_at"])
    try:
        return services.collection_refresh(run=run, store=store, now=run.started_at or now, actor=_actor())
    except (PrometheusError, ClickHouseError) as exc:
        return services.collection_fail(run, actor=_actor(), message=str(exc))
    except Exception as exc:
        logger.exception("collection #%s %s failed in its refresh", run.pk, run.cluster.name)
        services.collection_fail(run, actor=_actor(), message=f"{exc.__class__.__name__}: {exc}")
        raise
