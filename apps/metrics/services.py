"""Collection of daily peaks and its schedule (DESIGN §5.2, §5.3).

``collection_start`` records a ``CollectionRun`` and queues ``collection_run_task`` after commit,
which spreads it over workers in chunks (``collection_chunks``, writing each day through
``day_collect_write``). ``collection_run`` is the same work in one process (the daily schedule,
``collect_peaks``): for each day (oldest first) whose window has ended, the day's
statistics are queried concurrently (bounded), merged into rows and written to the store (which
replaces that day); progress is saved after every query; then the control table is refreshed.
A failure (Prometheus down or refusing a query, the store failing) fails the run with a readable
error; the day being collected is not written, so earlier data stays intact.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.models import AuditResult, AuditSource
from apps.audit.services import Actor, audit_event_record
from apps.control.collection_schedule import collection_schedule_delete, collection_schedule_sync  # noqa: F401
from apps.control.models import Cluster
from apps.control.selectors import hpa_targets_get
from apps.metrics import peaks, promql
from apps.metrics.clickhouse import ClickHouseError
from apps.metrics.daily import collect_day, rows_from_results  # noqa: F401  (one day's queries and merge)
from apps.metrics.models import ACTIVE_STATES, CollectionRun, CollectionState
from apps.metrics.pod_node_collect import pod_node_day_collect
from apps.metrics.pod_node_store import pod_node_store_for
from apps.metrics.prometheus import PrometheusClient, PrometheusError
from apps.metrics.queue import collection_run_enqueue
from apps.metrics.refresh import control_table_refresh
from apps.metrics.store import PeakStore, peak_store

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 4
MAX_DAYS = 400
# A queued or running collection older than this is taken as abandoned (its worker died).
STALE_AFTER = datetime.timedelta(hours=6)
SCHEDULED_DAYS = 2


def query_settings(cluster: Cluster, *, window_seconds: int) -> promql.QuerySettings:
    return promql.QuerySettings(
        label_key=cluster.prometheus_label_key,
        label_value=cluster.prometheus_label_value,
        namespaces=tuple(cluster.namespaces or ()),
        excluded_namespaces=tuple(cluster.excluded_namespaces or ()),
        quantile=cluster.peak_quantile,
        aggregation=cluster.peak_aggregation,
        step_seconds=cluster.peak_step_seconds,
        window_seconds=window_seconds,
        backend=cluster.metrics_backend,
    )


def _window_seconds(cluster: Cluster) -> int:
    start = datetime.datetime.combine(datetime.date(2000, 1, 1), cluster.peak_start)
    end = datetime.datetime.combine(datetime.date(2000, 1, 1), cluster.peak_end)
    return int((end - start).total_seconds())


def cluster_queries(cluster: Cluster) -> dict[str, str]:
    """The PromQL text of the cluster's queries for its current settings (shown with each run)."""
    return promql.run_queries(query_settings(cluster, window_seconds=_window_seconds(cluster)))


def queries_per_day(cluster: Cluster) -> int:
    """The requests of one day that count towards a run's progress."""
    return len(promql.day_queries(query_settings(cluster, window_seconds=_window_seconds(cluster))))


# --- start ----------------------------------------------------------------------------------------


def _expire_stale_runs(*, cluster: Cluster, now: datetime.datetime) -> None:
    stale = CollectionRun.objects.filter(cluster=cluster, state__in=ACTIVE_STATES, created_at__lt=now - STALE_AFTER)
    for run in stale:
        run.state = CollectionState.FAILED
        run.finished_at = now
        run.errors = [*run.errors, _("Abandoned: no progress for %(hours)s hours.") % {"hours": 6}]
        run.save(update_fields=["state", "finished_at", "errors"])


def collection_start(
    *, cluster: Cluster, days: int, actor: Actor, concurrency: int = DEFAULT_CONCURRENCY, enqueue: bool = True
) -> CollectionRun:
    """Record a collection of the last ``days`` days and queue it (after commit).

    Refused with a ``ValidationError`` when the cluster is already collecting, has no Prometheus
    URL, or ``days`` is out of range; nothing is recorded then.
    """
    if not 1 <= int(days) <= MAX_DAYS:
        raise ValidationError({"days": _("Enter a number of days between 1 and %(max)s.") % {"max": MAX_DAYS}})
    if not 1 <= int(concurrency) <= 32:
        raise ValidationError({"concurrency": _("Enter a concurrency between 1 and 32.")})
    if not cluster.prometheus_url:
        raise ValidationError({"cluster": _("Cluster %(name)s has no Prometheus URL.") % {"name": cluster.name}})
    now = timezone.now()
    try:
        with transaction.atomic():
            Cluster.objects.select_for_update().get(pk=cluster.pk)
            _expire_stale_runs(cluster=cluster, now=now)
            active = CollectionRun.objects.filter(cluster=cluster, state__in=ACTIVE_STATES).first()
            if active is not None:
                raise ValidationError(
                    _("Cluster %(name)s is already collecting (run #%(run)s, %(state)s); wait for it to finish.")
                    % {"name": cluster.name, "run": active.pk, "state": active.get_state_display()}
                )
            windows_per_day = queries_per_day(cluster)
            run = CollectionRun.objects.create(
                cluster=cluster,
                days=days,
                requested_by=actor.name,
                progress_total=days * windows_per_day,
                concurrency=concurrency,
                chunk_days=max(1, django_settings.KUBEDOOR_COLLECTION_CHUNK_DAYS),
                queries=cluster_queries(cluster),
            )
            audit_event_record(
                actor=actor,
                action="collection.start",
                cluster=cluster.name,
                after={"run": run.pk, "days": days},
            )
            if enqueue:
                transaction.on_commit(lambda: _enqueue(run.pk))
    except IntegrityError as exc:  # a concurrent start won the race
        raise ValidationError(_("Cluster %(name)s is already collecting.") % {"name": cluster.name}) from exc
    return run


def _enqueue(run_id: int) -> None:
    collection_run_enqueue(run_id=run_id)


# --- run ------------------------------------------------------------------------------------------


def _progress(run_id: int) -> None:
    CollectionRun.objects.filter(pk=run_id).update(progress_done=F("progress_done") + 1)


def day_collect_write(
    *,
    client: PrometheusClient,
    cluster: Cluster,
    window: peaks.Window,
    store: PeakStore,
    concurrency: int,
    on_query_done: Callable[[str], None],
    on_alive: Callable[[], None] | None = None,
) -> int:
    """Collect one day and replace it in the store (Deployment rows, then pod and node rows unless the
    cluster turned them off).

    Idempotent: writing a day again replaces it, so a chunk retried or redelivered never double-counts.
    ``on_alive`` is called before each write and before the pod and node queries (a chunk's
    heartbeat; it may raise to stop before writing). Returns the Deployment rows written.
    """
    settings = query_settings(cluster, window_seconds=window.seconds)
    rows = collect_day(
        client=client,
        cluster=cluster.name,
        window=window,
        settings=settings,
        concurrency=concurrency,
        on_query_done=on_query_done,
    )
    if on_alive is not None:
        on_alive()
    written = store.day_replace(cluster=cluster.name, day=window.day, rows=rows)
    if not cluster.collect_pods_nodes:
        return written
    if on_alive is not None:
        on_alive()
    pod_node_day_collect(
        client=client,
        cluster=cluster.name,
        window=window,
        settings=settings,
        store=pod_node_store_for(store),
        concurrency=concurrency,
    )
    return written


def collection_refresh(*, run: CollectionRun, store: PeakStore, now: datetime.datetime, actor: Actor) -> CollectionRun:
    """The control-table refresh that ends a run, then the run marked done with its figures."""
    cluster = run.cluster
    today = peaks.local_today(now=now, time_zone=cluster.time_zone)
    hpa_targets = hpa_targets_get(cluster=cluster)  # Kubernetes, before the refresh's transaction
    result = control_table_refresh(
        cluster=cluster, store=store, today=today, actor=actor, run_id=run.pk, hpa_targets=hpa_targets
    )
    run.refresh_from_db()
    run.state = CollectionState.DONE
    run.finished_at = timezone.now()
    run.services_added = result.added
    run.services_updated = result.updated
    run.services_vanished = result.vanished
    run.unmanaged = result.unmanaged
    run.save(
        update_fields=["state", "finished_at", "services_added", "services_updated", "services_vanished", "unmanaged"]
    )
    return run


def prometheus_client(cluster: Cluster) -> PrometheusClient:
    return PrometheusClient(cluster.prometheus_url, token=cluster.prometheus_token)


def collection_run(
    *,
    run_id: int,
    now: datetime.datetime | None = None,
    store: PeakStore | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> CollectionRun:
    """Execute a recorded run (idempotent: a finished run is left alone, a re-delivered one re-collects)."""
    run = CollectionRun.objects.select_related("cluster").get(pk=run_id)
    if run.state in (CollectionState.DONE, CollectionState.FAILED):
        return run
    cluster = run.cluster
    now = now or timezone.now()
    store = store or peak_store()
    actor = Actor.system("collector", source=AuditSource.TASK)
    windows, skipped = peaks.collection_windows(
        days=run.days, now=now, start=cluster.peak_start, end=cluster.peak_end, time_zone=cluster.time_zone
    )
    run.state = CollectionState.RUNNING
    run.started_at = timezone.now()
    run.skipped_days = [day.isoformat() for day in skipped]
    run.progress_total = len(windows) * queries_per_day(cluster)
    run.progress_done = 0
    run.days_collected = []
    run.errors = []
    run.save(
        update_fields=[
            "state",
            "started_at",
            "skipped_days",
            "progress_total",
            "progress_done",
            "days_collected",
            "errors",
        ]
    )
    logger.info("collection #%s %s: %d days, %d skipped", run.pk, cluster.name, len(windows), len(skipped))

    done = 0

    def query_done(_: str) -> None:
        nonlocal done
        done += 1
        _progress(run.pk)
        if on_progress is not None:
            on_progress(done, run.progress_total)

    try:
        with prometheus_client(cluster) as client:
            for window in windows:
                written = day_collect_write(
                    client=client,
                    cluster=cluster,
                    window=window,
                    store=store,
                    concurrency=run.concurrency,
                    on_query_done=query_done,
                )
                CollectionRun.objects.filter(pk=run.pk).update(rows_written=F("rows_written") + written)
                run.days_collected.append(window.day.isoformat())
                CollectionRun.objects.filter(pk=run.pk).update(days_collected=run.days_collected)
        return collection_refresh(run=run, store=store, now=now, actor=actor)
    except (PrometheusError, ClickHouseError) as exc:
        return collection_fail(run, actor=actor, message=str(exc))
    except Exception as exc:
        logger.exception("collection #%s %s failed", run.pk, cluster.name)
        collection_fail(run, actor=actor, message=f"{exc.__class__.__name__}: {exc}")
        raise


def collection_fail(run: CollectionRun, *, actor: Actor, message: str) -> CollectionRun:
    logger.warning("collection #%s %s failed: %s", run.pk, run.cluster.name, message)
    with transaction.atomic():
        run.refresh_from_db()
        run.state = CollectionState.FAILED
        run.finished_at = timezone.now()
        run.errors = [*run.errors, message]
        run.save(update_fields=["state", "finished_at", "errors"])
        audit_event_record(
            actor=actor,
            action="collection.run",
            cluster=run.cluster.name,
            after={"run": run.pk, "days_collected": run.days_collected},
            result=AuditResult.ERROR,
            message=message,
        )
    return run


# --- schedule -------------------------------------------------------------------------------------
# The cluster's daily beat entry is kept by the cluster services (``apps.control.collection_schedule``,
# whose sync and delete are re-exported above); the entry fires this:


def collection_scheduled(*, cluster_name: str) -> CollectionRun | None:
    """The daily beat entry: collect yesterday and today, unless a collection is already running."""
    cluster = Cluster.objects.filter(name=cluster_name).first()
    if cluster is None or not cluster.collect_enabled:
        return None
    actor = Actor.system("scheduler", source=AuditSource.TASK)
    try:
        run = collection_start(cluster=cluster, days=SCHEDULED_DAYS, actor=actor, enqueue=False)
    except ValidationError as exc:
        logger.warning("scheduled collection of %s not started: %s", cluster_name, "; ".join(exc.messages))
        return None
    return collection_run(run_id=run.pk)
