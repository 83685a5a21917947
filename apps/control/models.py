"""The control plane's own records: clusters and the control table (DESIGN §4.1, §4.2)."""

from __future__ import annotations

import datetime
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from apps.control.choices import (
    AdmissionEngine,
    AdmissionMode,
    ConnectionState,
    FailurePolicy,
    MetricsBackend,
    OnStoreError,
    PeakAggregation,
    PeakDayMode,
    ReplicasMode,
)
from apps.control.namespaces import namespace_is_controlled

# Kubernetes object names: DNS-1123 labels for namespaces, subdomains for Deployments.
dns_label_validator = RegexValidator(
    r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", _("Enter a valid Kubernetes name (lower case, digits and '-').")
)
dns_subdomain_validator = RegexValidator(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    _("Enter a valid Kubernetes name (lower case, digits, '-' and '.')."),
)

MAX_REPLICAS = 1000


def default_excluded_namespaces() -> list[str]:
    return ["kube-system", "kubedoor"]


def effective_replicas(
    *, manual: int | None, ai: int | None, measured: int | None, apply_recommended: bool
) -> int | None:
    """The replica count the control table asks for (DESIGN §4.2), or ``None`` for "leave it".

    The operator's specified count wins, 0 included (a service may be parked on purpose); then
    the recommendation, only when the cluster applies recommendations (``apply_recommended``, off by
    default: the recommendation is then shown and exported, never applied); then the measured count,
    but only when something was measured — an unmeasured row never forces a Deployment to 0 replicas.
    """
    if manual is not None:
        return manual
    if ai is not None and apply_recommended:
        return ai
    if measured is not None and measured > 0:
        return measured
    return None


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(_("Unknown time zone %(tz)s."), params={"tz": value}) from exc


def validate_namespace_list(value: object) -> None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError(_("Enter a list of namespace names."))
    for item in value:
        dns_label_validator(item)


class Cluster(models.Model):
    """One Kubernetes cluster under KubeDoor's control ("env" in KubeDoor 0.2).

    Holds how to reach the API server and Prometheus, which namespaces are controlled, the peak
    window and its statistic, how the control table is derived, and how admission behaves.
    """

    name = models.SlugField(_("name"), max_length=63, unique=True, validators=[dns_label_validator])
    display_name = models.CharField(_("display name"), max_length=200, blank=True)

    # How to reach the API server; with none of these set the standard kubeconfig loading applies.
    in_cluster = models.BooleanField(_("in-cluster service account"), default=False)
    kubeconfig_path = models.CharField(_("kubeconfig path"), max_length=500, blank=True)
    kube_context = models.CharField(_("kubeconfig context"), max_length=200, blank=True)
    kubeconfig = models.TextField(_("kubeconfig (secret)"), blank=True)

    prometheus_url = models.CharField(
        _("Prometheus URL"), max_length=500, blank=True, help_text=_("May embed basic auth: https://user:pass@host")
    )
    prometheus_token = models.CharField(_("Prometheus bearer token (secret)"), max_length=500, blank=True)
    prometheus_label_key = models.CharField(_("external label key"), max_length=100, blank=True)
    prometheus_label_value = models.CharField(_("external label value"), max_length=200, blank=True)
    metrics_backend = models.CharField(
        _("metrics backend"),
        max_length=16,
        choices=MetricsBackend.choices,
        default=MetricsBackend.PROMETHEUS,
        help_text=_("What answers at the Prometheus URL; chooses the query text where the two differ."),
    )

    namespaces = models.JSONField(
        _("controlled namespaces"),
        default=list,
        blank=True,
        validators=[validate_namespace_list],
        help_text=_("Empty: every namespace except the excluded ones."),
    )
    excluded_namespaces = models.JSONField(
        _("excluded namespaces"), default=default_excluded_namespaces, blank=True, validators=[validate_namespace_list]
    )
    time_zone = models.CharField(_("time zone"), max_length=64, default="UTC", validators=[validate_time_zone])

    # Peak window and its statistic (§5.2).
    peak_start = models.TimeField(_("peak window start"), default=datetime.time(10, 0))
    peak_end = models.TimeField(_("peak window end"), default=datetime.time(11, 30))
    lookback_days = models.PositiveSmallIntegerField(
        _("lookback days"), default=10, validators=[MinValueValidator(1), MaxValueValidator(400)]
    )
    peak_quantile = models.FloatField(
        _("peak quantile"), default=0.95, validators=[MinValueValidator(0.5), MaxValueValidator(1.0)]
    )
    peak_aggregation = models.CharField(
        _("cross-pod aggregation"), max_length=8, choices=PeakAggregation.choices, default=PeakAggregation.AVG
    )
    peak_step_seconds = models.PositiveIntegerField(
        _("subquery step (seconds)"), default=30, validators=[MinValueValidator(5), MaxValueValidator(600)]
    )
    collect_pods_nodes = models.BooleanField(
        _("collect pod and node figures"),
        default=True,
        help_text=_(
            "Each day also reads every pod's and node's P95 (pod curves, node board): six more queries a day. "
            "Off: only the Deployments' statistics, which the control table needs."
        ),
    )

    # Deriving requests from the source day (§5.4).
    peak_day_mode = models.CharField(
        _("source day rule"), max_length=8, choices=PeakDayMode.choices, default=PeakDayMode.SERVICE
    )
    cpu_headroom = models.FloatField(
        _("CPU headroom"),
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(10.0)],
        help_text=_("Fraction added to P95 CPU, e.g. 0.2 for 20 %."),
    )
    mem_headroom = models.FloatField(
        _("memory headroom"), default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(10.0)]
    )
    min_cpu_m = models.PositiveIntegerField(_("minimum CPU request (m)"), default=10)
    min_mem_mib = models.PositiveIntegerField(_("minimum memory request (MiB)"), default=16)

    # Recommended pods (issue 11, README "Recommendations"); per service overridable where a Microservice
    # field of the same name is set.
    target_cpu_pct = models.FloatField(
        _("target CPU use of the limit (%)"),
        default=70.0,
        validators=[MinValueValidator(1.0), MaxValueValidator(100.0)],
        help_text=_("Recommended pods = ceil(pods × P95 CPU % ÷ this)."),
    )
    target_mem_pct = models.FloatField(
        _("memory guard of the limit (%)"),
        default=80.0,
        validators=[MinValueValidator(1.0), MaxValueValidator(100.0)],
        help_text=_("When P95 memory reaches this share of the limit (%), the recommendation keeps today's pods."),
    )
    min_replicas = models.PositiveIntegerField(
        _("minimum recommended pods"), default=1, validators=[MinValueValidator(1), MaxValueValidator(MAX_REPLICAS)]
    )
    allow_single_replica = models.BooleanField(
        _("allow a single pod"),
        default=False,
        help_text=_("Off: a service that ran 2 or more pods is never recommended fewer than 2."),
    )
    allow_scale_up = models.BooleanField(
        _("allow recommending more pods"), default=False, help_text=_("Off: never more pods than today's.")
    )
    apply_recommended_replicas = models.BooleanField(
        _("apply recommended pods"),
        default=False,
        help_text=_(
            "On: the effective replicas are the specified pods, else the recommended pods, else today's pods. "
            "Off: recommended pods are only shown and exported."
        ),
    )
    # Safety feedback of the refresh (issue 11).
    oom_bump = models.FloatField(
        _("OOM bump factor"),
        default=1.2,
        validators=[MinValueValidator(1.0), MaxValueValidator(10.0)],
        help_text=_(
            "After an OOM kill in the lookback the memory request is multiplied by this, "
            "and raised at least by the MiB below."
        ),
    )
    oom_bump_min_mib = models.PositiveIntegerField(_("OOM bump at least (MiB)"), default=100)
    throttle_threshold_pct = models.FloatField(
        _("CPU throttling threshold %"),
        default=10.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(100.0)],
        help_text=_("Throttled CPU periods above this share of all periods (%) block any CPU-limit decrease."),
    )
    max_change_pct = models.FloatField(
        _("largest decrease per refresh %"),
        default=50.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(100.0)],
        help_text=_("One refresh lowers a request by at most this share (%); raising is never limited. 100: no limit."),
    )
    min_days = models.PositiveSmallIntegerField(
        _("minimum days of data"),
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(400)],
        help_text=_("Days with data in the lookback a service needs before a refresh changes its row."),
    )
    auto_register_new = models.BooleanField(_("register new Deployments"), default=True)

    # Admission (§6).
    admission_mode = models.CharField(
        _("admission mode"), max_length=8, choices=AdmissionMode.choices, default=AdmissionMode.OFF
    )
    admission_engine = models.CharField(
        _("admission engine"),
        max_length=8,
        choices=AdmissionEngine.choices,
        default=AdmissionEngine.WEBHOOK,
        help_text=_(
            "How the API server applies the table: by calling KubeDoor's webhook, or by itself with a "
            "MutatingAdmissionPolicy (no webhook in the path of a deploy). Changed on the Admission page."
        ),
    )
    allow_unmanaged = models.BooleanField(_("allow unmanaged Deployments"), default=False)
    on_store_error = models.CharField(
        _("when control data is unavailable"), max_length=8, choices=OnStoreError.choices, default=OnStoreError.ALLOW
    )
    failure_policy = models.CharField(
        _("webhook failure policy"), max_length=8, choices=FailurePolicy.choices, default=FailurePolicy.IGNORE
    )
    webhook_timeout_seconds = models.PositiveSmallIntegerField(
        _("webhook timeout (s)"), default=5, validators=[MinValueValidator(1), MaxValueValidator(30)]
    )

    # What wasted capacity costs (issue 11 §5); empty = no money shown, only cores and GiB.
    price_cpu_core_hour = models.FloatField(
        _("price per CPU core-hour"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0)],
        help_text=_("Empty: the waste board shows cores, not money."),
    )
    price_mem_gib_hour = models.FloatField(
        _("price per memory GiB-hour"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0)],
        help_text=_("Empty: the waste board shows GiB, not money."),
    )

    # Where this cluster's API server reaches the webhook (issue 13): a remote cluster calls KubeDoor by
    # URL or through a Service of its own. Empty: the global KUBEDOOR_WEBHOOK_* settings.
    webhook_url = models.CharField(
        _("webhook URL"),
        max_length=500,
        blank=True,
        help_text=_("https:// base URL the API server calls; /mutate/<cluster> is appended. Empty: the global one."),
    )
    webhook_ca_bundle = models.TextField(
        _("webhook CA bundle (PEM)"),
        blank=True,
        help_text=_("The CA that signed the webhook's serving certificate. Empty: the global one."),
    )
    webhook_service = models.CharField(
        _("webhook Service"),
        max_length=253,
        blank=True,
        help_text=_("namespace/name of the webhook Service in that cluster. Empty: the global one."),
    )
    webhook_service_port = models.PositiveIntegerField(
        _("webhook Service port"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )

    # The connection as last seen (the connection check; the door's callers stamp the last success).
    connection_state = models.CharField(
        _("connection"), max_length=12, choices=ConnectionState.choices, default=ConnectionState.UNKNOWN, editable=False
    )
    connection_detail = models.TextField(_("connection detail"), blank=True, editable=False)
    connection_checked_at = models.DateTimeField(_("connection checked"), null=True, blank=True, editable=False)
    kubernetes_version = models.CharField(_("Kubernetes version"), max_length=64, blank=True, editable=False)
    last_success_at = models.DateTimeField(_("last successful call"), null=True, blank=True, editable=False)

    # Daily collection (§5.3).
    collect_enabled = models.BooleanField(_("collect daily"), default=True)
    collect_at = models.TimeField(
        _("collect at"), null=True, blank=True, help_text=_("Empty: 15 minutes after the peak window ends.")
    )

    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("cluster")
        verbose_name_plural = _("clusters")
        permissions = [("change_admission_mode", _("Can change the admission mode"))]

    def __str__(self) -> str:
        return self.display_name or self.name

    def clean(self) -> None:
        if self.peak_start is not None and self.peak_end is not None and self.peak_start >= self.peak_end:
            raise ValidationError({"peak_end": _("The peak window must end after it starts, on the same day.")})

    def is_namespace_controlled(self, namespace: str) -> bool:
        return namespace_is_controlled(
            namespace=namespace, namespaces=self.namespaces, excluded=self.excluded_namespaces
        )


class Microservice(models.Model):
    """A row of the control table: what one Deployment must run with (DESIGN §4.2).

    Nullable fields mean "not set": an empty specified pod falls through to the next source of
    replicas, an empty request or limit leaves the Deployment's own value.
    """

    cluster = models.ForeignKey(
        Cluster, on_delete=models.CASCADE, related_name="microservices", verbose_name=_("cluster")
    )
    namespace = models.CharField(_("namespace"), max_length=63, validators=[dns_label_validator])
    name = models.CharField(_("microservice"), max_length=253, validators=[dns_subdomain_validator])
    container = models.CharField(
        _("container"),
        max_length=63,
        blank=True,
        help_text=_("Empty: the container named like the Deployment, else the first."),
    )

    # The replicas columns keep KubeDoor 0.2's names (pod_count, pod_count_manual, …); the API
    # answers with both names (README "API field names").
    replicas_initial = models.PositiveIntegerField(_("initial pod"), default=0, db_column="pod_count_init")
    replicas_measured = models.PositiveIntegerField(_("today pod"), default=0, db_column="pod_count")
    replicas_specified = models.PositiveIntegerField(
        _("specified pod"),
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_REPLICAS)],
        db_column="pod_count_manual",
    )
    replicas_recommended = models.PositiveIntegerField(
        _("recommended pod"),
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_REPLICAS)],
        db_column="pod_count_ai",
    )

    p95_cpu_pct = models.FloatField(_("P95 CPU %"), null=True, blank=True)
    p95_mem_pct = models.FloatField(_("P95 memory %"), null=True, blank=True)
    p95_cpu_cores = models.FloatField(_("P95 CPU (cores)"), null=True, blank=True)
    p95_mem_mib = models.FloatField(_("P95 memory (MiB)"), null=True, blank=True)

    request_cpu_m = models.PositiveIntegerField(_("request CPU (m)"), null=True, blank=True)
    request_mem_mib = models.PositiveIntegerField(_("request memory (MiB)"), null=True, blank=True)
    limit_cpu_m = models.PositiveIntegerField(_("limit CPU (m)"), null=True, blank=True)
    limit_mem_mib = models.PositiveIntegerField(_("limit memory (MiB)"), null=True, blank=True)

    # Per-service overrides of the cluster's headroom and floors (§5.4); empty = the cluster's.
    cpu_headroom = models.FloatField(
        _("CPU headroom"), null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(10.0)]
    )
    mem_headroom = models.FloatField(
        _("memory headroom"), null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(10.0)]
    )
    min_cpu_m = models.PositiveIntegerField(_("minimum CPU request (m)"), null=True, blank=True)
    min_mem_mib = models.PositiveIntegerField(_("minimum memory request (MiB)"), null=True, blank=True)
    # Per-service overrides of the cluster's recommendation settings; empty = the cluster's.
    target_cpu_pct = models.FloatField(
        _("target CPU use of the limit (%)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1.0), MaxValueValidator(100.0)],
    )
    target_mem_pct = models.FloatField(
        _("memory guard of the limit (%)"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1.0), MaxValueValidator(100.0)],
    )
    min_replicas = models.PositiveIntegerField(
        _("minimum recommended pods"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_REPLICAS)],
    )
    allow_single_replica = models.BooleanField(_("allow a single pod"), null=True, blank=True)
    allow_scale_up = models.BooleanField(_("allow recommending more pods"), null=True, blank=True)
    # Why each measured number is what it is: the reasons of the last refresh ({"reasons": [{"code", "params"}]},
    # apps.metrics.recommender), written with the measured fields and rendered translated when shown.
    explanation = models.JSONField(_("explanation"), default=dict, blank=True, editable=False)
    request_capped = models.BooleanField(
        _("request capped at limit"), default=False, help_text=_("The last refresh lowered a request to the limit.")
    )
    # Whether a person (admin or API) set the request last: refreshes leave it alone, and clearing it by hand
    # hands it back to collection (§5.4). Written by apps.control.services, never in a form or an audit snapshot.
    request_cpu_m_by_hand = models.BooleanField(_("CPU request set by hand"), default=False, editable=False)
    request_mem_mib_by_hand = models.BooleanField(_("memory request set by hand"), default=False, editable=False)

    source_day = models.DateField(_("source day"), null=True, blank=True)
    replicas_mode = models.CharField(
        _("replicas"), max_length=8, choices=ReplicasMode.choices, default=ReplicasMode.ENFORCE
    )
    hpa_name = models.CharField(
        _("HPA"),
        max_length=253,
        blank=True,
        help_text=_(
            "The HorizontalPodAutoscaler the last collection found targeting this Deployment; "
            "admission then leaves its replicas to the HPA. Empty: none."
        ),
    )
    is_present = models.BooleanField(_("present"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True, db_index=True)
    updated_by = models.CharField(_("updated by"), max_length=150, blank=True)

    class Meta:
        ordering = ["cluster", "namespace", "name"]
        verbose_name = _("microservice")
        verbose_name_plural = _("microservices")
        constraints = [
            models.UniqueConstraint(fields=["cluster", "namespace", "name"], name="microservice_unique_per_cluster"),
        ]
        indexes = [
            models.Index(fields=["cluster", "namespace"], name="microservice_cluster_ns"),
            models.Index(fields=["cluster", "-p95_cpu_pct"], name="microservice_cluster_cpu_pct"),
        ]
        permissions = [
            ("scale_microservice", _("Can scale microservices")),
            ("restart_microservice", _("Can restart microservices")),
            ("change_microservice_requests", _("Can change resource requests")),
        ]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def effective_replicas(self) -> int | None:
        return effective_replicas(
            manual=self.replicas_specified,
            ai=self.replicas_recommended,
            measured=self.replicas_measured,
            apply_recommended=self.cluster.apply_recommended_replicas,
        )

    @property
    def is_hpa_managed(self) -> bool:
        return bool(self.hpa_name)

    def clean(self) -> None:
        errors: dict[str, str | Promise] = {}
        if self.request_cpu_m is not None and self.limit_cpu_m is not None and self.limit_cpu_m < self.request_cpu_m:
            errors["limit_cpu_m"] = _("The CPU limit must not be below the CPU request.")
        if (
            self.request_mem_mib is not None
            and self.limit_mem_mib is not None
            and self.limit_mem_mib < self.request_mem_mib
        ):
            errors["limit_mem_mib"] = _("The memory limit must not be below the memory request.")
        if errors:
            raise ValidationError(errors)


class ExcludedDay(models.Model):
    """A day or a range of days of a cluster left out of the source-day choice (issue 11 §4).

    An incident, a load test or a promotion should not set every day's requests: the refresh never
    takes a source day in ``[start, end]``. The days stay in the archive and the charts (marked).
    """

    cluster = models.ForeignKey(
        Cluster, on_delete=models.CASCADE, related_name="excluded_days", verbose_name=_("cluster")
    )
    start = models.DateField(_("first day"))
    end = models.DateField(_("last day"), blank=True, help_text=_("Empty: the first day only."))
    reason = models.CharField(_("reason"), max_length=200)
    created_by = models.CharField(_("created by"), max_length=150, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["cluster", "-start", "-id"]
        verbose_name = _("excluded day")
        verbose_name_plural = _("excluded days")
        constraints = [
            models.CheckConstraint(condition=models.Q(end__gte=models.F("start")), name="excluded_day_end_after_start"),
        ]

    def __str__(self) -> str:
        if self.start == self.end:
            return f"{self.start}"
        return f"{self.start} – {self.end}"

    def clean(self) -> None:
        if self.end is None:
            self.end = self.start
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValidationError({"end": _("The last day must not be before the first day.")})

    def days(self) -> list[datetime.date]:
        return [self.start + datetime.timedelta(days=n) for n in range((self.end - self.start).days + 1)]


# --- Scheduled operations (DESIGN §4.5, §7) ------------------------------------------------------


class OperationKind(models.TextChoices):
    SCALE = "scale", _("scale")
    RESTART = "restart", _("restart")
    RESIZE = "resize", _("resize in place")


class ScheduleKind(models.TextChoices):
    NOW = "now", _("now")
    ONCE = "once", _("once, at a time")
    CRON = "cron", _("periodically (cron)")


class OperationState(models.TextChoices):
    SCHEDULED = "scheduled", _("scheduled")
    PAUSED = "paused", _("paused")
    RUNNING = "running", _("running")
    DONE = "done", _("done")
    CANCELLED = "cancelled", _("cancelled")


MAX_INTERVAL_SECONDS = 3600


class ScheduledOperation(models.Model):
    """A scale, restart or in-place resize of one or more microservices, now, once at a time, or by cron (DESIGN §4.5).

    ``once`` and ``cron`` are backed by a django-celery-beat ``PeriodicTask`` (a one-off clocked
    schedule, or a crontab in ``time_zone``) that the services in ``apps.control.scheduling`` keep in
    step with this row; ``now`` is queued once when created. Every target belongs to ``cluster``.
    """

    kind = models.CharField(_("operation"), max_length=8, choices=OperationKind.choices)
    cluster = models.ForeignKey(
        Cluster, on_delete=models.CASCADE, related_name="scheduled_operations", verbose_name=_("cluster")
    )
    targets = models.ManyToManyField(Microservice, related_name="scheduled_operations", verbose_name=_("targets"))
    replicas = models.PositiveIntegerField(
        _("replicas"),
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_REPLICAS)],
        help_text=_("Scale only. Empty: each target's effective replicas."),
    )
    temporary = models.BooleanField(
        _("temporary"),
        default=False,
        help_text=_(
            "Scale only. Leave the control table unchanged: the next deploy or restart applies the table's "
            "replicas again. Otherwise the replicas become each target's specified pods."
        ),
    )
    restart_fallback = models.BooleanField(
        _("restart when a resize cannot be done"),
        default=False,
        help_text=_(
            "Resize only. When a pod's in-place resize is infeasible, refused, or still deferred after the "
            "wait, restart the Deployment instead (a rolling restart with the table's values)."
        ),
    )
    interval_seconds = models.PositiveIntegerField(
        _("interval between targets (s)"), default=0, validators=[MaxValueValidator(MAX_INTERVAL_SECONDS)]
    )
    schedule = models.CharField(_("when"), max_length=8, choices=ScheduleKind.choices, default=ScheduleKind.NOW)
    run_at = models.DateTimeField(_("run at"), null=True, blank=True)
    cron = models.CharField(_("cron expression"), max_length=100, blank=True, help_text=_("m h dom mon dow"))
    time_zone = models.CharField(_("time zone"), max_length=64, default="UTC", validators=[validate_time_zone])
    enabled = models.BooleanField(_("enabled"), default=True)
    state = models.CharField(
        _("state"), max_length=10, choices=OperationState.choices, default=OperationState.SCHEDULED
    )
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("beat entry"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_by_name = models.CharField(_("created by (name)"), max_length=150, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    last_run_at = models.DateTimeField(_("last run"), null=True, blank=True)
    last_result = models.JSONField(_("last result"), null=True, blank=True)
    next_run_at = models.DateTimeField(_("next run"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("scheduled operation")
        verbose_name_plural = _("scheduled operations")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.get_schedule_display()})"

    @property
    def beat_name(self) -> str:
        return f"kubedoor-operation-{self.pk}"


class OperationRunState(models.TextChoices):
    RUNNING = "running", _("running")
    DONE = "done", _("done")


class OperationRun(models.Model):
    """One execution of a scheduled operation, keyed by the Celery task id of the message that ran it.

    A redelivered message carries the same id: the run task finds this row and does not act twice
    (a finished run is not repeated; a run still making progress elsewhere is left alone; a run whose
    worker died resumes with the targets it had not handled).
    """

    run_id = models.CharField(_("run id"), max_length=64, unique=True)
    operation = models.ForeignKey(
        ScheduledOperation, on_delete=models.CASCADE, related_name="runs", verbose_name=_("operation")
    )
    state = models.CharField(
        _("state"), max_length=8, choices=OperationRunState.choices, default=OperationRunState.RUNNING
    )
    started_at = models.DateTimeField(_("started"), auto_now_add=True)
    updated_at = models.DateTimeField(_("last progress"), auto_now=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    results = models.JSONField(_("results per target"), default=list, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("operation run")
        verbose_name_plural = _("operation runs")

    def __str__(self) -> str:
        return f"run {self.run_id} of #{self.operation_id}"
