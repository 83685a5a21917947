"""A cluster's daily collection entry in beat: its name, its time and the task it fires (DESIGN §5.3).

The entry follows the cluster's own fields (``collect_enabled``, ``collect_at``, ``peak_end``,
``time_zone``), so the cluster services keep it in step inside the cluster's transaction, and
neither the admin nor the API can forget it. The task it fires belongs to the metrics app and is
named here, not imported: metrics builds on control, never the other way round
(tests/test_architecture.py); ``apps.metrics.tasks`` declares its task under this name.
"""

from __future__ import annotations

import datetime

from apps.control.models import Cluster
from kubedoor_site.beat import Crontab, PeriodicTask, periodic_task_sync, periodic_tasks_delete

COLLECTION_SCHEDULED_TASK = "apps.metrics.tasks.collection_scheduled_task"
# Without ``collect_at``, collect this long after the peak window ends (Prometheus has the window by then).
COLLECTION_DELAY = datetime.timedelta(minutes=15)


def collection_time(cluster: Cluster) -> datetime.time:
    """When the daily collection runs: ``collect_at``, else 15 minutes after the window ends."""
    if cluster.collect_at is not None:
        return cluster.collect_at
    end = datetime.datetime.combine(datetime.date(2000, 1, 1), cluster.peak_end) + COLLECTION_DELAY
    return end.time()


def schedule_name(cluster_name: str) -> str:
    """The name of the cluster's daily beat entry."""
    return f"kubedoor-collect-{cluster_name}"


def collection_schedule_sync(*, cluster: Cluster) -> PeriodicTask | None:
    """Create, update or delete the cluster's daily beat entry (call after saving a cluster).

    With ``collect_enabled`` the PeriodicTask ``kubedoor-collect-<cluster>`` runs
    ``collection_scheduled_task`` every day at ``collection_time`` in the cluster's time zone;
    without it the entry is deleted. Returns the PeriodicTask or ``None``.
    """
    at = collection_time(cluster)
    return periodic_task_sync(
        name=schedule_name(cluster.name),
        task=COLLECTION_SCHEDULED_TASK,
        schedule=(
            Crontab(minute=str(at.minute), hour=str(at.hour), time_zone=cluster.time_zone)
            if cluster.collect_enabled
            else None
        ),
        kwargs={"cluster": cluster.name},
        description=f"Daily peak collection of {cluster.name}",
    )


def collection_schedule_delete(*, cluster_name: str) -> None:
    """Remove a deleted cluster's daily beat entry (called by ``cluster_delete``)."""
    periodic_tasks_delete(names=[schedule_name(cluster_name)])
