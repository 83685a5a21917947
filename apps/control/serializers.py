"""API shapes of clusters and control rows (DESIGN §9)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.control.models import Cluster, Microservice
from apps.control.services import CLUSTER_SECRET_FIELDS, redact_url


class ClusterSerializer(serializers.ModelSerializer):
    """A cluster; secrets are write-only and a Prometheus password never comes back."""

    kubeconfig_set = serializers.SerializerMethodField()
    prometheus_token_set = serializers.SerializerMethodField()

    class Meta:
        model = Cluster
        exclude = ["id"]
        read_only_fields = ["admission_mode", "created_at", "updated_at"]
        extra_kwargs = {field: {"write_only": True} for field in CLUSTER_SECRET_FIELDS}

    def get_kubeconfig_set(self, obj: Cluster) -> bool:
        return bool(obj.kubeconfig)

    def get_prometheus_token_set(self, obj: Cluster) -> bool:
        return bool(obj.prometheus_token)

    def to_representation(self, instance: Cluster) -> dict[str, Any]:
        data = super().to_representation(instance)
        if data.get("prometheus_url"):
            data["prometheus_url"] = redact_url(data["prometheus_url"])
        return data


class MicroserviceSerializer(serializers.ModelSerializer):
    """A control row: written with the editable fields, read back with every field and ``effective_replicas``."""

    cluster = serializers.SlugRelatedField(slug_field="name", queryset=Cluster.objects.all())
    effective_replicas = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Microservice
        fields = [
            "id",
            "cluster",
            "namespace",
            "name",
            "container",
            "pod_count_init",
            "pod_count",
            "pod_count_manual",
            "pod_count_ai",
            "effective_replicas",
            "p95_cpu_pct",
            "p95_mem_pct",
            "p95_cpu_cores",
            "p95_mem_mib",
            "request_cpu_m",
            "request_mem_mib",
            "limit_cpu_m",
            "limit_mem_mib",
            "cpu_headroom",
            "mem_headroom",
            "min_cpu_m",
            "min_mem_mib",
            "request_capped",
            "source_day",
            "replicas_mode",
            "is_present",
            "created_at",
            "updated_at",
            "updated_by",
        ]
        read_only_fields = [
            "pod_count_init",
            "pod_count",
            "p95_cpu_pct",
            "p95_mem_pct",
            "p95_cpu_cores",
            "p95_mem_mib",
            "request_capped",
            "source_day",
            "is_present",
            "created_at",
            "updated_at",
            "updated_by",
        ]

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list | tuple):
            # The identity of a control row is fixed once registered.
            for name in ("cluster", "namespace", "name"):
                fields[name].read_only = True
        return fields
