"""Reads of clusters and the control table."""

from __future__ import annotations

from django.db.models import F, QuerySet

from apps.control.models import Cluster, Microservice


def cluster_list() -> QuerySet[Cluster]:
    return Cluster.objects.all()


def cluster_get(*, name: str) -> Cluster:
    """Raises ``Cluster.DoesNotExist`` for an unknown name."""
    return Cluster.objects.get(name=name)


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


def namespace_list(*, cluster: Cluster | None = None) -> list[str]:
    rows = Microservice.objects.all()
    if cluster is not None:
        rows = rows.filter(cluster=cluster)
    return list(rows.order_by("namespace").values_list("namespace", flat=True).distinct())
