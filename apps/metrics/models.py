"""The daily-peak archive in the default database, and the record of each collection (DESIGN §4.3, §4.4)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class DailyPeak(models.Model):
    """One Deployment container's statistics over one day's peak window (DESIGN §4.3).

    The ORM implementation of the daily-peak store; with ``CLICKHOUSE_URL`` set the same rows live
    in ClickHouse instead. ``cluster`` is the cluster's name (not a foreign key) so the archive
    outlives a cluster and both stores hold the same columns. Null means "not measured" (0.2's -1).
    The quantile, aggregation and step used are stored so each number traces back to its query.
    """

    cluster = models.CharField(_("cluster"), max_length=63)
    day = models.DateField(_("day"))
    namespace = models.CharField(_("namespace"), max_length=63)
    deployment = models.CharField(_("deployment"), max_length=253)
    container = models.CharField(_("container"), max_length=63)
    window_start = models.DateTimeField(_("window start"))
    window_end = models.DateTimeField(_("window end"))
    pod_count = models.PositiveIntegerField(_("pods"), null=True, blank=True)
    p95_cpu_cores = models.FloatField(_("P95 CPU (cores)"), null=True, blank=True)
    p95_cpu_pct = models.FloatField(_("P95 CPU %"), null=True, blank=True)
    p95_mem_mib = models.FloatField(_("P95 memory (MiB)"), null=True, blank=True)
    p95_mem_pct = models.FloatField(_("P95 memory %"), null=True, blank=True)
    request_cpu_m = models.PositiveIntegerField(_("request CPU (m)"), null=True, blank=True)
    request_mem_mib = models.PositiveIntegerField(_("request memory (MiB)"), null=True, blank=True)
    limit_cpu_m = models.PositiveIntegerField(_("limit CPU (m)"), null=True, blank=True)
    limit_mem_mib = models.PositiveIntegerField(_("limit memory (MiB)"), null=True, blank=True)
    # Safety feedback over the window (issue 11): OOM kills of the container's pods, and the share of CPU
    # periods throttled (%). Null: the series were absent.
    oom_kills = models.PositiveIntegerField(_("OOM kills"), null=True, blank=True)
    throttled_pct = models.FloatField(_("CPU throttled %"), null=True, blank=True)
    quantile = models.FloatField(_("quantile"))
    aggregation = models.CharField(_("cross-pod aggregation"), max_length=8)
    step_seconds = models.PositiveIntegerField(_("subquery step (s)"))
    collected_at = models.DateTimeField(_("collected"))

    class Meta:
        ordering = ["-day", "namespace", "deployment", "container"]
        verbose_name = _("daily peak")
        verbose_name_plural = _("daily peaks")
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "day", "namespace", "deployment", "container"], name="dailypeak_unique_row"
            ),
        ]
        indexes = [
            models.Index(fields=["cluster", "namespace", "deployment", "day"], name="dailypeak_service_day"),
            models.Index(fields=["cluster", "day"], name="dailypeak_cluster_day"),
        ]

    def __str__(self) -> str:
        return f"{self.cluster} {self.day} {self.namespace}/{self.deployment}/{self.container}"


class CollectionState(models.TextChoices):
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("running")
    DONE = "done", _("done")
    FAILED = "failed", _("failed")


ACTIVE_STATES = (CollectionState.QUEUED, CollectionState.RUNNING)
# What a run's page (admin) and its API payload both show after its request and progress, in this order.
COLLECTION_RUN_OUTCOME_FIELDS = (
    "requested_by",
    "created_at",
    "started_at",
    "finished_at",
    "rows_written",
    "services_added",
    "services_updated",
    "services_vanished",
    "days_collected",
    "skipped_days",
    "unmanaged",
    "errors",
)


class CollectionRun(models.Model):
    """One collection of a cluster's last N days and the control-table refresh after it (DESIGN §4.4).

    Progress counts queries (days × statistics). ``queries`` keeps the PromQL text of every statistic
    as run, ``skipped_days`` the days whose window had not ended, ``unmanaged`` the Deployments seen
    but not registered (``auto_register_new`` off). A partial unique constraint allows one queued or
    running collection per cluster.
    """

    cluster = models.ForeignKey(
        "control.Cluster", on_delete=models.CASCADE, related_name="collection_runs", verbose_name=_("cluster")
    )
    days = models.PositiveSmallIntegerField(_("days"))
    state = models.CharField(
        _("state"), max_length=8, choices=CollectionState.choices, default=CollectionState.QUEUED, db_index=True
    )
    requested_by = models.CharField(_("requested by"), max_length=150, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    progress_done = models.PositiveIntegerField(_("queries done"), default=0)
    progress_total = models.PositiveIntegerField(_("queries total"), default=0)
    rows_written = models.PositiveIntegerField(_("rows written"), default=0)
    services_added = models.PositiveIntegerField(_("services added"), default=0)
    services_updated = models.PositiveIntegerField(_("services updated"), default=0)
    services_vanished = models.PositiveIntegerField(_("services vanished"), default=0)
    days_collected = models.JSONField(_("days collected"), default=list, blank=True)
    skipped_days = models.JSONField(_("days skipped"), default=list, blank=True)
    unmanaged = models.JSONField(_("seen, unmanaged"), default=list, blank=True)
    queries = models.JSONField(_("PromQL per statistic"), default=dict, blank=True)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    concurrency = models.PositiveSmallIntegerField(_("concurrent queries"), default=4)
    chunk_days = models.PositiveSmallIntegerField(_("days per chunk"), default=1)
    # Set by the chunk that found every chunk done and refreshes the control table (once per run).
    refresh_claimed_at = models.DateTimeField(_("refresh claimed"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("collection run")
        verbose_name_plural = _("collection runs")
        constraints = [
            models.UniqueConstraint(
                fields=["cluster"],
                condition=Q(state__in=["queued", "running"]),
                name="collectionrun_one_active_per_cluster",
                violation_error_message=_("A collection is already running for this cluster."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.cluster_id} {self.days}d #{self.pk} {self.state}"

    @property
    def progress_pct(self) -> int:
        if not self.progress_total:
            return 100 if self.state == CollectionState.DONE else 0
        return min(100, round(100 * self.progress_done / self.progress_total))


class ChunkState(models.TextChoices):
    QUEUED = "queued", _("queued")
    RUNNING = "running", _("running")
    RETRYING = "retrying", _("retrying")
    DONE = "done", _("done")
    FAILED = "failed", _("failed")


class CollectionChunk(models.Model):
    """Some consecutive days of a queued collection, collected by one Celery task (issue 14).

    A worker claims the chunk (``running``, a fresh ``claimed_by`` token, ``heartbeat_at`` renewed on
    every query); a chunk whose heartbeat is older than the lease is taken over by the redelivered
    task, and the old holder, should it still live, sees its token gone and stops. ``progress_done`` counts
    this chunk's queries so a retry takes them back from the run's progress before re-counting.
    """

    run = models.ForeignKey(CollectionRun, on_delete=models.CASCADE, related_name="chunks", verbose_name=_("run"))
    index = models.PositiveSmallIntegerField(_("index"))
    days = models.JSONField(_("days"), default=list)
    state = models.CharField(_("state"), max_length=8, choices=ChunkState.choices, default=ChunkState.QUEUED)
    attempts = models.PositiveSmallIntegerField(_("failed attempts"), default=0)
    progress_done = models.PositiveIntegerField(_("queries done"), default=0)
    rows_written = models.PositiveIntegerField(_("rows written"), default=0)
    claimed_by = models.CharField(_("claimed by"), max_length=32, blank=True)
    heartbeat_at = models.DateTimeField(_("last sign of life"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    error = models.TextField(_("last error"), blank=True)

    class Meta:
        ordering = ["run", "index"]
        verbose_name = _("collection chunk")
        verbose_name_plural = _("collection chunks")
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="collectionchunk_unique_index")]

    def __str__(self) -> str:
        return f"#{self.run_id}.{self.index} {','.join(self.days)} {self.state}"


class PodPeak(models.Model):
    """One pod's statistics over one day's peak window, beside the Deployment's ``DailyPeak`` rows.

    The pod's containers are summed first (``POD`` and unnamed containers left out), then the
    quantile is taken over the window's steps at which the pod ran, so a pod replaced mid-window
    has its own, shorter series. Same store, same columns in ClickHouse (``kubedoor_pod_peaks``).
    """

    cluster = models.CharField(_("cluster"), max_length=63)
    day = models.DateField(_("day"))
    namespace = models.CharField(_("namespace"), max_length=63)
    deployment = models.CharField(_("deployment"), max_length=253)
    pod = models.CharField(_("pod"), max_length=253)
    window_start = models.DateTimeField(_("window start"))
    window_end = models.DateTimeField(_("window end"))
    p95_cpu_cores = models.FloatField(_("P95 CPU (cores)"), null=True, blank=True)
    p95_mem_mib = models.FloatField(_("P95 memory (MiB)"), null=True, blank=True)
    quantile = models.FloatField(_("quantile"))
    step_seconds = models.PositiveIntegerField(_("subquery step (s)"))
    collected_at = models.DateTimeField(_("collected"))

    class Meta:
        ordering = ["-day", "namespace", "deployment", "pod"]
        verbose_name = _("pod daily peak")
        verbose_name_plural = _("pod daily peaks")
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "day", "namespace", "deployment", "pod"], name="podpeak_unique_row"
            ),
        ]
        indexes = [
            models.Index(fields=["cluster", "namespace", "deployment", "day"], name="podpeak_service_day"),
            models.Index(fields=["cluster", "day"], name="podpeak_cluster_day"),
        ]

    def __str__(self) -> str:
        return f"{self.cluster} {self.day} {self.namespace}/{self.deployment}/{self.pod}"


class NodePeak(models.Model):
    """One node's figures over one day's peak window: what its pods used, requested, and what it offers.

    ``p95_*`` is the quantile over the window of the sum of the usage of the pods on the node;
    ``request_*`` the largest sum of the requests of the pods on it during the window (pods placed
    through ``kube_pod_info{node}``); ``allocatable_*`` the node's ``kube_node_status_allocatable``.
    Every namespace counts (a node is shared), only the cluster's external label filters.
    """

    cluster = models.CharField(_("cluster"), max_length=63)
    day = models.DateField(_("day"))
    node = models.CharField(_("node"), max_length=253)
    window_start = models.DateTimeField(_("window start"))
    window_end = models.DateTimeField(_("window end"))
    p95_cpu_cores = models.FloatField(_("P95 CPU used (cores)"), null=True, blank=True)
    p95_mem_mib = models.FloatField(_("P95 memory used (MiB)"), null=True, blank=True)
    request_cpu_m = models.PositiveIntegerField(_("requested CPU (m)"), null=True, blank=True)
    request_mem_mib = models.PositiveIntegerField(_("requested memory (MiB)"), null=True, blank=True)
    allocatable_cpu_m = models.PositiveIntegerField(_("allocatable CPU (m)"), null=True, blank=True)
    allocatable_mem_mib = models.PositiveIntegerField(_("allocatable memory (MiB)"), null=True, blank=True)
    quantile = models.FloatField(_("quantile"))
    step_seconds = models.PositiveIntegerField(_("subquery step (s)"))
    collected_at = models.DateTimeField(_("collected"))

    class Meta:
        ordering = ["-day", "node"]
        verbose_name = _("node daily peak")
        verbose_name_plural = _("node daily peaks")
        constraints = [
            models.UniqueConstraint(fields=["cluster", "day", "node"], name="nodepeak_unique_row"),
        ]
        indexes = [models.Index(fields=["cluster", "day"], name="nodepeak_cluster_day")]

    def __str__(self) -> str:
        return f"{self.cluster} {self.day} {self.node}"


class ImportSource(models.TextChoices):
    UPLOAD = "upload", _("uploaded tables")
    CLICKHOUSE = "clickhouse", _("KubeDoor's ClickHouse")


class ImportRun(models.Model):
    """One import from KubeDoor 0.2/1.x started from the admin (``apps.metrics.import_runs``).

    Progress counts source rows: ``rows_read`` is known once the tables are read, ``progress_done``
    grows as they are processed, ``rows_written`` counts archive rows and control rows created or
    updated. An upload's parsed tables wait in ``upload`` until the worker takes them and are cleared
    then. ``source_label`` names the file or ``host:port/database`` — never a password: a ClickHouse
    password only travels, encrypted, in the task message.
    """

    cluster = models.ForeignKey(
        "control.Cluster", on_delete=models.CASCADE, related_name="import_runs", verbose_name=_("cluster")
    )
    env = models.CharField(_("KubeDoor env"), max_length=200)
    source = models.CharField(_("source"), max_length=10, choices=ImportSource.choices)
    source_label = models.CharField(_("read from"), max_length=500, blank=True)
    state = models.CharField(
        _("state"), max_length=8, choices=CollectionState.choices, default=CollectionState.QUEUED, db_index=True
    )
    requested_by = models.CharField(_("requested by"), max_length=150, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    rows_read = models.PositiveIntegerField(_("rows read"), default=0)
    progress_done = models.PositiveIntegerField(_("rows processed"), default=0)
    rows_written = models.PositiveIntegerField(_("rows written"), default=0)
    result = models.JSONField(_("result"), default=dict, blank=True)
    error = models.TextField(_("error"), blank=True)
    upload = models.JSONField(_("uploaded tables"), default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("KubeDoor import")
        verbose_name_plural = _("KubeDoor imports")

    def __str__(self) -> str:
        return f"{self.cluster_id} env {self.env} #{self.pk} {self.state}"

    @property
    def progress_pct(self) -> int:
        if not self.rows_read:
            return 100 if self.state == CollectionState.DONE else 0
        return min(100, round(100 * self.progress_done / self.rows_read))
