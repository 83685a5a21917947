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
