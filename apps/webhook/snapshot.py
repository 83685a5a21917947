"""The in-memory control snapshot the admission view answers from (DESIGN §6.3).

Each webhook process holds every cluster's settings and control rows in memory. A background thread
checks a cheap version stamp (row count and latest ``updated_at`` of clusters and rows) at most every
``check_interval`` seconds and rebuilds when it changed, and rebuilds anyway every ``max_age`` seconds.
When the database is unreachable the last snapshot keeps serving; the request path never queries.

``cluster_settings_from`` and ``control_row_from`` are the one place a Cluster and a Microservice become
the decision's ``ClusterSettings`` and ``ControlRow``: the snapshot and the preview both build them here.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings as django_settings
from django.db import DatabaseError, close_old_connections, connections
from django.db.models import Count, Max

from apps.control.models import effective_replicas
from apps.control.selectors import cluster_list, microservice_list
from apps.webhook.admission import ClusterSettings, ControlRow

if TYPE_CHECKING:
    from apps.control.models import Cluster

logger = logging.getLogger(__name__)

Stamp = tuple[Any, ...]


@dataclass(frozen=True)
class ClusterControl:
    """One cluster's settings and its control rows keyed by (namespace, name)."""

    settings: ClusterSettings
    rows: dict[tuple[str, str], ControlRow] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    clusters: dict[str, ClusterControl]
    stamp: Stamp
    loaded_at: float  # time.monotonic() of the load


def load_stamp() -> Stamp:
    """Changes whenever a cluster or control row is added, changed or deleted."""
    clusters = cluster_list().order_by().aggregate(n=Count("id"), at=Max("updated_at"))
    rows = microservice_list().order_by().aggregate(n=Count("id"), at=Max("updated_at"))
    return (clusters["n"], clusters["at"], rows["n"], rows["at"])


# The Microservice columns a control row is built from: all the snapshot loads of the table.
CONTROL_ROW_FIELDS = (
    "namespace",
    "name",
    "container",
    "replicas_measured",
    "replicas_specified",
    "replicas_recommended",
    "replicas_mode",
    "request_cpu_m",
    "request_mem_mib",
    "limit_cpu_m",
    "limit_mem_mib",
    "hpa_name",
)


def cluster_settings_from(cluster: Cluster, *, admission_mode: str | None = None) -> ClusterSettings:
    """The cluster as the decision reads it; ``admission_mode`` replaces the cluster's (the preview's)."""
    return ClusterSettings(
        name=cluster.name,
        admission_mode=cluster.admission_mode if admission_mode is None else admission_mode,
        namespaces=frozenset(cluster.namespaces or ()),
        excluded_namespaces=frozenset(cluster.excluded_namespaces or ()),
        allow_unmanaged=cluster.allow_unmanaged,
        on_store_error=cluster.on_store_error,
        own_usernames=frozenset(django_settings.KUBEDOOR_SERVICE_ACCOUNT_USERNAMES),
    )


def control_row_from(microservice: Any, *, apply_recommended: bool) -> ControlRow:
    """The control row of a Microservice, or of a ``values_list(*CONTROL_ROW_FIELDS, named=True)`` row
    (the snapshot's, which spares building model instances): both carry the same attribute names.
    ``apply_recommended``: the cluster's "apply recommended pods" (off: the recommendation never counts)."""
    return ControlRow(
        namespace=microservice.namespace,
        name=microservice.name,
        container=microservice.container,
        replicas=effective_replicas(
            manual=microservice.replicas_specified,
            ai=microservice.replicas_recommended,
            measured=microservice.replicas_measured,
            apply_recommended=apply_recommended,
        ),
        replicas_mode=microservice.replicas_mode,
        request_cpu_m=microservice.request_cpu_m,
        request_mem_mib=microservice.request_mem_mib,
        limit_cpu_m=microservice.limit_cpu_m,
        limit_mem_mib=microservice.limit_mem_mib,
        hpa_managed=bool(microservice.hpa_name),
    )


def load_clusters() -> dict[str, ClusterControl]:
    """Every cluster's settings and control rows, in two queries."""
    settings: dict[int, ClusterSettings] = {}
    names: dict[int, str] = {}
    applies: dict[int, bool] = {}
    for cluster in cluster_list().order_by():
        names[cluster.pk] = cluster.name
        settings[cluster.pk] = cluster_settings_from(cluster)
        applies[cluster.pk] = cluster.apply_recommended_replicas
    rows: dict[int, dict[tuple[str, str], ControlRow]] = {pk: {} for pk in settings}
    values = (
        microservice_list().select_related(None).order_by().values_list("cluster_id", *CONTROL_ROW_FIELDS, named=True)
    )
    for row in values:
        if row.cluster_id not in rows:
            continue  # created between the two queries; the next rebuild picks it up
        rows[row.cluster_id][(row.namespace, row.name)] = control_row_from(
            row, apply_recommended=applies[row.cluster_id]
        )
    return {names[pk]: ClusterControl(settings=settings[pk], rows=rows[pk]) for pk in settings}


class SnapshotHolder:
    """Holds the current :class:`Snapshot` and keeps it fresh from a daemon thread.

    ``current`` is read on the request path without locks or queries (an attribute read of an
    immutable object). ``refresh`` may also be called directly (tests, the first load at start-up).
    """

    def __init__(
        self,
        *,
        stamp_loader: Callable[[], Stamp] = load_stamp,
        loader: Callable[[], dict[str, ClusterControl]] = load_clusters,
        check_interval: float = 1.0,
        max_age: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        autostart: bool = True,
    ) -> None:
        self.autostart = autostart
        self.stamp_loader = stamp_loader
        self.loader = loader
        self.check_interval = check_interval
        self.max_age = max_age
        self.clock = clock
        self.current: Snapshot | None = None
        self.last_error: str = ""
        self.attempted = False
        # time.time() when the last successful check started: data committed before it is in ``current``.
        self.checked_at: float | None = None
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._stop = threading.Event()

    def age(self) -> float | None:
        snapshot = self.current
        return None if snapshot is None else max(0.0, self.clock() - snapshot.loaded_at)

    def refresh(self, *, force: bool = False) -> bool:
        """Rebuild when the stamp changed or the snapshot is older than ``max_age``; True when rebuilt.

        A database error keeps the previous snapshot and is remembered in ``last_error``.
        """
        with self._lock:
            self.attempted = True
            started = time.time()
            try:
                stamp = self.stamp_loader()
                snapshot = self.current
                stale = snapshot is None or self.clock() - snapshot.loaded_at >= self.max_age
                if not force and not stale and snapshot is not None and snapshot.stamp == stamp:
                    self.last_error = ""
                    self.checked_at = started
                    return False
                clusters = self.loader()
            except DatabaseError as exc:
                self.last_error = str(exc).strip() or exc.__class__.__name__
                logger.warning("control snapshot not refreshed, serving the last one: %s", self.last_error)
                close_old_connections()
                return False
            self.current = Snapshot(clusters=clusters, stamp=stamp, loaded_at=self.clock())
            self.last_error = ""
            self.checked_at = started
            logger.debug("control snapshot rebuilt: %d clusters", len(clusters))
            return True

    def ensure_started(self) -> None:
        """Start the refresher thread in this process (again after a fork); cheap when running.

        The first call of a process loads the snapshot synchronously, so the first review after a
        start is answered from data, not by ``on_store_error``. Every review calls it: a running thread
        answers without ``os.getpid()`` (a system call), since a forked child's copy of the thread is
        never alive (``threading`` marks every thread but the forking one stopped in the child).
        """
        if not self.autostart:
            return
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._start_lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            if not self.attempted or self._pid != os.getpid():
                self.refresh()
            self._pid = os.getpid()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="kubedoor-snapshot", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._thread = None
        self._pid = None

    def _run(self) -> None:
        from apps.webhook import metrics

        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # the refresher must outlive any bug; the last snapshot keeps serving
                logger.exception("control snapshot refresh failed")
            metrics.snapshot_age_set(self.age())
            self._stop.wait(self.check_interval)
        connections.close_all()  # this thread's connections


holder = SnapshotHolder(check_interval=django_settings.KUBEDOOR_WEBHOOK_SNAPSHOT_CHECK_SECONDS)
