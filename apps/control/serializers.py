"""API shapes of clusters and control rows (DESIGN §9)."""

from __future__ import annotations

import datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from apps.control.explanation import explanation_api
from apps.control.models import (
    MAX_INTERVAL_SECONDS,
    MAX_REPLICAS,
    Cluster,
    ExcludedDay,
    Microservice,
    ScheduledOperation,
)
from apps.control.scheduling import EDITABLE_FIELDS, targets_ordered
from apps.control.services import CLUSTER_SECRET_FIELDS, redact_url


class ClusterSerializer(serializers.ModelSerializer):
    """A cluster; secrets are write-only and a Prometheus password never comes back."""

    kubeconfig_set = serializers.SerializerMethodField()
    prometheus_token_set = serializers.SerializerMethodField()

    class Meta:
        model = Cluster
        exclude = ["id"]
        read_only_fields = ["admission_mode", "admission_engine", "created_at", "updated_at"]
        extra_kwargs = {field: {"write_only": True} for field in CLUSTER_SECRET_FIELDS}

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list | tuple):
            fields["name"].read_only = True  # URLs and the webhook path use it
        return fields

    def get_kubeconfig_set(self, obj: Cluster) -> bool:
        return bool(obj.kubeconfig)

    def get_prometheus_token_set(self, obj: Cluster) -> bool:
        return bool(obj.prometheus_token)

    def to_representation(self, instance: Cluster) -> dict[str, Any]:
        data = super().to_representation(instance)
        if data.get("prometheus_url"):
            data["prometheus_url"] = redact_url(data["prometheus_url"])
        return data


_DATETIME_FIELDS = frozenset({"created_at", "updated_at"})


def _datetime_text(value: datetime.datetime | None) -> str | None:
    """DRF's DateTimeField rendering: ISO 8601 in the current time zone, UTC written as Z."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# The replicas fields' API names before they were renamed (KubeDoor 0.2's column names), kept as
# aliases so clients do not break: reads carry both names, writes take either, ordering takes either.
REPLICAS_ALIASES = {
    "pod_count_init": "replicas_initial",
    "pod_count": "replicas_measured",
    "pod_count_manual": "replicas_specified",
    "pod_count_ai": "replicas_recommended",
}


def _alias_field(new: str, *, read_only: bool) -> serializers.IntegerField:
    help_text = _("Deprecated alias of %(field)s.") % {"field": new}
    if read_only:
        return serializers.IntegerField(source=new, read_only=True, help_text=help_text)
    return serializers.IntegerField(
        source=new, required=False, allow_null=True, min_value=0, max_value=MAX_REPLICAS, help_text=help_text
    )


@extend_schema_serializer(deprecate_fields=list(REPLICAS_ALIASES))
class MicroserviceSerializer(serializers.ModelSerializer):
    """A control row: written with the editable fields, read back with every field and ``effective_replicas``."""

    cluster = serializers.SlugRelatedField(slug_field="name", queryset=Cluster.objects.all())
    pod_count_init = _alias_field("replicas_initial", read_only=True)
    pod_count = _alias_field("replicas_measured", read_only=True)
    pod_count_manual = _alias_field("replicas_specified", read_only=False)
    pod_count_ai = _alias_field("replicas_recommended", read_only=False)
    effective_replicas = serializers.IntegerField(read_only=True, allow_null=True)
    hpa_managed = serializers.BooleanField(
        source="is_hpa_managed",
        read_only=True,
        help_text=_("An HPA targets the Deployment (hpa_name): admission leaves its replicas to the HPA."),
    )
    explanation = serializers.SerializerMethodField(
        help_text=_(
            "Why the measured numbers are what they are: reasons (code and parameters) from the last refresh, "
            "and each as a sentence in the request's language."
        )
    )

    class Meta:
        model = Microservice
        fields = [
            "id",
            "cluster",
            "namespace",
            "name",
            "container",
            "replicas_initial",
            "replicas_measured",
            "replicas_specified",
            "replicas_recommended",
            *REPLICAS_ALIASES,
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
            "target_cpu_pct",
            "target_mem_pct",
            "min_replicas",
            "allow_single_replica",
            "allow_scale_up",
            "request_capped",
            "source_day",
            "explanation",
            "replicas_mode",
            "hpa_name",
            "hpa_managed",
            "is_present",
            "created_at",
            "updated_at",
            "updated_by",
        ]
        read_only_fields = [
            "replicas_initial",
            "replicas_measured",
            "p95_cpu_pct",
            "p95_mem_pct",
            "p95_cpu_cores",
            "p95_mem_mib",
            "request_capped",
            "source_day",
            "hpa_name",
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

    def get_explanation(self, obj: Microservice) -> dict[str, Any]:
        return explanation_api(obj.explanation)

    def to_internal_value(self, data: Any) -> Any:
        """A write may name a replicas field by its new name or its alias, not both with different values."""
        if isinstance(data, dict):
            conflicts = {
                alias: _("%(alias)s and %(field)s disagree; send one of them.") % {"alias": alias, "field": new}
                for alias, new in REPLICAS_ALIASES.items()
                if alias in data and new in data and data[alias] != data[new]
            }
            if conflicts:
                raise serializers.ValidationError(conflicts)
        return super().to_internal_value(data)

    def to_representation(self, instance: Microservice) -> dict[str, Any]:
        """The row as DRF's generic field machinery would render it, built directly.

        Lists of control rows are the hottest read of the API (DESIGN §14: a page of 100 in
        ≤ 50 ms p99); DRF builds and walks 29 field objects per row, this reads the attributes.
        A test holds the output equal to ``ModelSerializer.to_representation``.
        """
        data: dict[str, Any] = {}
        for name in self.Meta.fields:
            if name == "cluster":
                data[name] = instance.cluster.name
            elif name in _DATETIME_FIELDS:
                data[name] = _datetime_text(getattr(instance, name))
            elif name == "hpa_managed":
                data[name] = instance.is_hpa_managed
            elif name in REPLICAS_ALIASES:
                data[name] = getattr(instance, REPLICAS_ALIASES[name])
            elif name == "source_day":
                data[name] = None if instance.source_day is None else instance.source_day.isoformat()
            elif name == "explanation":
                data[name] = explanation_api(instance.explanation)
            else:
                data[name] = getattr(instance, name)
        return data


# --- Operations (DESIGN §9) ---------------------------------------------------------------------


class ScaleRequestSerializer(serializers.Serializer):
    """``{"replicas": n}``; without it (or null) the row's effective replicas are used."""

    replicas = serializers.IntegerField(min_value=0, max_value=MAX_REPLICAS, required=False, allow_null=True)
    temporary = serializers.BooleanField(
        required=False,
        default=False,
        help_text=_(
            "Leave the control table unchanged (the next deploy or restart applies it again). "
            "Default: the replicas become the service's specified pods."
        ),
    )
    dry_run = serializers.BooleanField(required=False, default=False)


class RestartRequestSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField(required=False, default=False)


class ResizeRequestSerializer(serializers.Serializer):
    restart_fallback = serializers.BooleanField(
        required=False,
        default=False,
        help_text=_("Restart the Deployment when a pod's resize is infeasible, refused or deferred too long."),
    )
    dry_run = serializers.BooleanField(required=False, default=False)


class PodResizeSerializer(serializers.Serializer):
    pod = serializers.CharField()
    state = serializers.CharField(help_text="done, in_progress, deferred, infeasible, rejected or dry_run")
    detail = serializers.CharField(allow_blank=True)


class TargetResultSerializer(serializers.Serializer):
    service_id = serializers.IntegerField()
    cluster = serializers.CharField()
    namespace = serializers.CharField()
    name = serializers.CharField()
    kind = serializers.CharField()
    ok = serializers.BooleanField()
    before_replicas = serializers.IntegerField(allow_null=True)
    after_replicas = serializers.IntegerField(allow_null=True)
    message = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True)
    error_kind = serializers.CharField(allow_blank=True)
    dry_run = serializers.BooleanField()
    temporary = serializers.BooleanField()
    pods = PodResizeSerializer(many=True, required=False)
    at = serializers.CharField()


class RunAtField(serializers.CharField):
    """An ISO 8601 date-time; without an offset it is read in the operation's ``time_zone`` by the service."""

    # A CharField whose value is the parsed date-time; the stubs fix a CharField's value type to str.
    def to_internal_value(self, data: Any) -> datetime.datetime:  # type: ignore[override]
        text = super().to_internal_value(data)
        try:
            value = parse_datetime(text)
        except ValueError:
            value = None
        if value is None:
            raise serializers.ValidationError(_("Enter an ISO 8601 date and time."))
        return value

    def to_representation(self, value: Any) -> str:
        return value.isoformat() if isinstance(value, datetime.datetime) else str(value)


class OperationSerializer(serializers.ModelSerializer):
    """A scheduled operation: written with kind, targets, replicas, interval and schedule; read with its state."""

    cluster: serializers.SlugRelatedField[Cluster] = serializers.SlugRelatedField(slug_field="name", read_only=True)
    targets = serializers.PrimaryKeyRelatedField(many=True, queryset=Microservice.objects.all())
    replicas = serializers.IntegerField(min_value=0, max_value=MAX_REPLICAS, required=False, allow_null=True)
    interval_seconds = serializers.IntegerField(min_value=0, max_value=MAX_INTERVAL_SECONDS, required=False, default=0)
    run_at = RunAtField(required=False, allow_null=True)
    cron = serializers.CharField(required=False, allow_blank=True, default="")
    time_zone = serializers.CharField(required=False, default="UTC")
    created_by = serializers.CharField(source="created_by_name", read_only=True)

    class Meta:
        model = ScheduledOperation
        fields = [
            "id",
            "kind",
            "cluster",
            *EDITABLE_FIELDS,
            "state",
            "created_by",
            "created_at",
            "updated_at",
            "last_run_at",
            "last_result",
            "next_run_at",
        ]
        read_only_fields = ["state", "created_at", "updated_at", "last_run_at", "last_result", "next_run_at"]

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        if self.instance is not None and not isinstance(self.instance, list | tuple):
            fields["kind"].read_only = True
        return fields

    def to_representation(self, instance: ScheduledOperation) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["targets"] = [microservice.pk for microservice in targets_ordered(instance)]
        return data


class ExcludedDaySerializer(serializers.ModelSerializer):
    """A day or a range of days of the cluster's calendar; ``end`` empty = the same as ``start``."""

    cluster: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="name", read_only=True)
    end = serializers.DateField(required=False, allow_null=True)

    class Meta:
        model = ExcludedDay
        fields = ["id", "cluster", "start", "end", "reason", "created_by", "created_at"]
        read_only_fields = ["id", "cluster", "created_by", "created_at"]
