"""Reads of clusters and the control table."""

from __future__ import annotations

import logging
from typing import Any

from django.db.models import F, QuerySet

from apps.accounts.scopes import scope_filter
from apps.control import k8s
from apps.control.models import Cluster, Microservice

logger = logging.getLogger(__name__)


def cluster_list() -> QuerySet[Cluster]:
    return Cluster.objects.all()


def cluster_get(*, name: str) -> Cluster:
    """Raises ``Cluster.DoesNotExist`` for an unknown name."""
    return Cluster.objects.get(name=name)


def cluster_time_zone_get(name: str) -> str | None:
    """The time zone of the cluster called ``name``; ``None`` for no such cluster."""
    return Cluster.objects.filter(name=name).values_list("time_zone", flat=True).first()


def microservice_list(
    *, cluster: Cluster | str | None = None, namespace: str | None = None, is_present: bool | None = None
) -> QuerySet[Microservice]:
    """Control rows, busiest first (P95 CPU % descending, unmeasured rows last)."""
    rows = Microservice.objects.select_related("cluster")
    if isinstance(cluster, Cluster):
        rows = rows.filter(cluster=cluster)
    elif cluster:
        rows = rows.filter(cluster__name=cluster)
    if namespace:
        rows = rows.filter(namespace=namespace)
    if is_present is not None:
        rows = rows.filter(is_present=is_present)
    return rows.order_by(F("p95_cpu_pct").desc(nulls_last=True), "namespace", "name")


def microservice_get(*, cluster: str, namespace: str, name: str) -> Microservice:
    return Microservice.objects.select_related("cluster").get(cluster__name=cluster, namespace=namespace, name=name)


def namespace_list(*, cluster: Cluster | None = None, user: Any = None) -> list[str]:
    """Namespaces of the control table (of ``cluster``); only those of the user's scopes when ``user`` is given."""
    rows = scope_filter(user, Microservice.objects.all())
    if cluster is not None:
        rows = rows.filter(cluster=cluster)
    return list(rows.order_by("namespace").values_list("namespace", flat=True).distinct())


def hpa_targets_get(*, cluster: Cluster) -> dict[tuple[str, str], str] | None:
    """(namespace, Deployment) → the name of the HPA that scales it, read through the Kubernetes door.

    ``None`` when the HPAs cannot be listed (cluster unreachable, no permission): callers then keep
    what they knew, rather than treating every Deployment as free of HPAs.
    """
    try:
        hpas = k8s.hpa_list(cluster=cluster, namespaces=cluster.namespaces or None)
    except k8s.K8sError as exc:
        logger.warning("cluster %s: HPAs not read, HPA marks kept: %s", cluster.name, exc.message)
        return None
    targets: dict[tuple[str, str], str] = {}
    for hpa in sorted(hpas, key=lambda h: (h.namespace, h.name)):
        if hpa.target_kind == "Deployment" and hpa.target_name:
            targets.setdefault((hpa.namespace, hpa.target_name), hpa.name)
    return targets
