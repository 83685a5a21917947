"""Enumerations of the control app (DESIGN §4.1, §4.2)."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class PeakAggregation(models.TextChoices):
    AVG = "avg", _("average over pods")
    MAX = "max", _("maximum over pods")


class MetricsBackend(models.TextChoices):
    """Which query text the collection sends where MetricsQL needs a different one (apps/metrics/promql.py)."""

    PROMETHEUS = "prometheus", _("Prometheus")
    VICTORIAMETRICS = "victoriametrics", _("VictoriaMetrics")


class PeakDayMode(models.TextChoices):
    SERVICE = "service", _("busiest day of each service")
    CLUSTER = "cluster", _("busiest day of the whole cluster (KubeDoor 0.2)")


class AdmissionMode(models.TextChoices):
    OFF = "off", _("off")
    AUDIT = "audit", _("audit")
    ENFORCE = "enforce", _("enforce")


class AdmissionEngine(models.TextChoices):
    WEBHOOK = "webhook", _("webhook (KubeDoor's admission endpoint)")
    POLICY = "policy", _("policy (MutatingAdmissionPolicy, Kubernetes 1.34+)")


class OnStoreError(models.TextChoices):
    ALLOW = "allow", _("allow")
    DENY = "deny", _("deny")


class FailurePolicy(models.TextChoices):
    IGNORE = "Ignore", _("Ignore")
    FAIL = "Fail", _("Fail")


class ReplicasMode(models.TextChoices):
    ENFORCE = "enforce", _("enforce")
    IGNORE = "ignore", _("ignore (HPA-managed)")


class ConnectionState(models.TextChoices):
    UNKNOWN = "unknown", _("not checked")
    OK = "ok", _("connected")
    INCOMPLETE = "incomplete", _("connected, permissions missing")
    FAILED = "failed", _("unreachable")
