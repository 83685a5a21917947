"""REST endpoints for clusters and the control table; writes go through the services."""

from __future__ import annotations

from typing import Any

from rest_framework import viewsets
from rest_framework.serializers import BaseSerializer

from apps.audit.models import AuditSource
from apps.audit.services import Actor
from apps.control import selectors, services
from apps.control.filters import MicroserviceFilter
from apps.control.models import Cluster, Microservice
from apps.control.serializers import ClusterSerializer, MicroserviceSerializer


def api_actor(request: Any) -> Actor:
    return Actor.from_request(request, source=AuditSource.API)


class ClusterViewSet(viewsets.ModelViewSet):
    serializer_class = ClusterSerializer
    lookup_field = "name"
    search_fields = ["name", "display_name"]
    ordering_fields = ["name", "created_at"]
    filterset_fields = ["admission_mode", "collect_enabled"]

    def get_queryset(self) -> Any:
        return selectors.cluster_list()

    def perform_create(self, serializer: BaseSerializer[Cluster]) -> None:
        serializer.instance = services.cluster_create(actor=api_actor(self.request), **serializer.validated_data)

    def perform_update(self, serializer: BaseSerializer[Cluster]) -> None:
        assert serializer.instance is not None
        serializer.instance = services.cluster_update(
            actor=api_actor(self.request), cluster=serializer.instance, data=serializer.validated_data
        )

    def perform_destroy(self, instance: Cluster) -> None:
        services.cluster_delete(actor=api_actor(self.request), cluster=instance)


class MicroserviceViewSet(viewsets.ModelViewSet):
    serializer_class = MicroserviceSerializer
    filterset_class = MicroserviceFilter
    search_fields = ["namespace", "name"]
    ordering_fields = [
        "namespace",
        "name",
        "pod_count",
        "pod_count_manual",
        "p95_cpu_pct",
        "p95_mem_pct",
        "request_cpu_m",
        "limit_cpu_m",
        "request_mem_mib",
        "limit_mem_mib",
        "source_day",
        "updated_at",
    ]

    def get_queryset(self) -> Any:
        return selectors.microservice_list()

    def perform_create(self, serializer: BaseSerializer[Microservice]) -> None:
        data = dict(serializer.validated_data)
        serializer.instance = services.microservice_create(
            actor=api_actor(self.request),
            cluster=data.pop("cluster"),
            namespace=data.pop("namespace"),
            name=data.pop("name"),
            **data,
        )

    def perform_update(self, serializer: BaseSerializer[Microservice]) -> None:
        assert serializer.instance is not None
        serializer.instance = services.microservice_update(
            actor=api_actor(self.request), service=serializer.instance, data=serializer.validated_data
        )

    def perform_destroy(self, instance: Microservice) -> None:
        services.microservice_delete(actor=api_actor(self.request), service=instance)
