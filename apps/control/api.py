"""REST endpoints for clusters and the control table; writes go through the services."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.filters import SearchFilter
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from apps.accounts.roles import OPERATOR
from apps.accounts.scopes import scope_cluster_filter, scope_filter, scope_has_perm, scope_sees
from apps.audit.services import Actor
from apps.control import excluded_days, operations, scheduling, selectors, services
from apps.control.filters import AliasOrderingFilter, MicroserviceFilter
from apps.control.models import Cluster, ExcludedDay, Microservice, OperationKind, ScheduledOperation
from apps.control.serializers import (
    REPLICAS_ALIASES,
    ClusterSerializer,
    ExcludedDaySerializer,
    MicroserviceSerializer,
    OperationSerializer,
    ResizeRequestSerializer,
    RestartRequestSerializer,
    ScaleRequestSerializer,
    TargetResultSerializer,
)
from kubedoor_site.permissions import has_perms


class ClusterViewSet(viewsets.ModelViewSet):
    serializer_class = ClusterSerializer
    lookup_field = "name"
    search_fields = ["name", "display_name"]
    ordering_fields = ["name", "created_at"]
    filterset_fields = ["admission_mode", "collect_enabled"]

    def get_queryset(self) -> Any:
        return scope_cluster_filter(self.request.user, selectors.cluster_list())

    def perform_create(self, serializer: BaseSerializer[Cluster]) -> None:
        serializer.instance = services.cluster_create(actor=Actor.for_api(self.request), **serializer.validated_data)

    def perform_update(self, serializer: BaseSerializer[Cluster]) -> None:
        assert serializer.instance is not None
        serializer.instance = services.cluster_update(
            actor=Actor.for_api(self.request), cluster=serializer.instance, data=serializer.validated_data
        )

    def perform_destroy(self, instance: Cluster) -> None:
        services.cluster_delete(actor=Actor.for_api(self.request), cluster=instance)


class ExcludedDayViewSet(viewsets.ModelViewSet):
    """``/clusters/{name}/excluded-days/``: the cluster's calendar of days never taken as a source day.

    Viewers read, operators write; every write is audited with its reason.
    """

    serializer_class = ExcludedDaySerializer
    filterset_fields: list[str] = []
    ordering_fields = ["start", "end", "created_at"]
    search_fields = ["reason"]

    def _cluster(self) -> Cluster:
        name = self.kwargs["cluster_name"]
        try:
            cluster = selectors.cluster_get(name=name)
        except Cluster.DoesNotExist:
            cluster = None
        if cluster is None or not scope_sees(self.request.user, cluster=name):
            raise exceptions.NotFound(_("No cluster %(name)s.") % {"name": name})
        if self.request.method not in permissions.SAFE_METHODS:
            perm = {"POST": "add", "DELETE": "delete"}.get(self.request.method or "", "change")
            if not scope_has_perm(self.request.user, f"control.{perm}_excludedday", cluster=name):
                message = _("Your role in %(cluster)s does not allow this.") % {"cluster": name}
                raise exceptions.PermissionDenied(message)
        return cluster

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no cluster in the URL
            return ExcludedDay.objects.none()
        return excluded_days.excluded_day_list(cluster=self._cluster())

    def perform_create(self, serializer: BaseSerializer[ExcludedDay]) -> None:
        data = serializer.validated_data
        serializer.instance = excluded_days.excluded_day_create(
            actor=Actor.for_api(self.request),
            cluster=self._cluster(),
            start=data["start"],
            end=data.get("end"),
            reason=data["reason"],
        )

    def perform_update(self, serializer: BaseSerializer[ExcludedDay]) -> None:
        assert serializer.instance is not None
        serializer.instance = excluded_days.excluded_day_update(
            actor=Actor.for_api(self.request), excluded=serializer.instance, data=serializer.validated_data
        )

    def perform_destroy(self, instance: ExcludedDay) -> None:
        excluded_days.excluded_day_delete(actor=Actor.for_api(self.request), excluded=instance)


class MicroserviceViewSet(viewsets.ModelViewSet):
    serializer_class = MicroserviceSerializer
    filterset_class = MicroserviceFilter
    filter_backends = [DjangoFilterBackend, SearchFilter, AliasOrderingFilter]
    search_fields = ["namespace", "name"]
    ordering_aliases = REPLICAS_ALIASES
    ordering_fields = [
        "namespace",
        "name",
        "replicas_measured",
        "replicas_specified",
        "p95_cpu_pct",
        "p95_mem_pct",
        "request_cpu_m",
        "limit_cpu_m",
        "request_mem_mib",
        "limit_mem_mib",
        "source_day",
        "updated_at",
    ]

    # The permission each action needs on the object's own scope (scoped users); reads need only to see it.
    scope_object_perms = {
        "update": "control.change_microservice",
        "partial_update": "control.change_microservice",
        "destroy": "control.delete_microservice",
        "scale": "control.scale_microservice",
        "restart": "control.restart_microservice",
        "resize": "control.restart_microservice",
    }

    def get_queryset(self) -> Any:
        return scope_filter(self.request.user, selectors.microservice_list())

    def get_object(self) -> Microservice:
        """404 for a row outside the user's scopes (it is not in the queryset), 403 for a role too low there."""
        microservice: Microservice = super().get_object()
        perm = self.scope_object_perms.get(self.action or "")
        if perm and not scope_has_perm(
            self.request.user, perm, cluster=microservice.cluster.name, namespace=microservice.namespace
        ):
            raise exceptions.PermissionDenied(
                _("Your role in %(cluster)s/%(namespace)s does not allow this.")
                % {"cluster": microservice.cluster.name, "namespace": microservice.namespace}
            )
        return microservice

    def perform_create(self, serializer: BaseSerializer[Microservice]) -> None:
        data = dict(serializer.validated_data)
        serializer.instance = services.microservice_create(
            actor=Actor.for_api(self.request),
            cluster=data.pop("cluster"),
            namespace=data.pop("namespace"),
            name=data.pop("name"),
            **data,
        )

    def perform_update(self, serializer: BaseSerializer[Microservice]) -> None:
        assert serializer.instance is not None
        serializer.instance = services.microservice_update(
            actor=Actor.for_api(self.request), microservice=serializer.instance, data=serializer.validated_data
        )

    def perform_destroy(self, instance: Microservice) -> None:
        services.microservice_delete(actor=Actor.for_api(self.request), microservice=instance)

    @extend_schema(request=ScaleRequestSerializer, responses={200: TargetResultSerializer})
    @action(detail=True, methods=["post"], permission_classes=[has_perms("control.scale_microservice")])
    def scale(self, request: Request, pk: str | None = None) -> Response:
        """Scale now to ``replicas`` (default: the row's effective replicas)."""
        params = ScaleRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        result = operations.microservice_scale(
            actor=Actor.for_api(request),
            microservice=self.get_object(),
            replicas=params.validated_data.get("replicas"),
            temporary=params.validated_data["temporary"],
            dry_run=params.validated_data["dry_run"],
        )
        return _operation_response(result)

    @extend_schema(request=RestartRequestSerializer, responses={200: TargetResultSerializer})
    @action(detail=True, methods=["post"], permission_classes=[has_perms("control.restart_microservice")])
    def restart(self, request: Request, pk: str | None = None) -> Response:
        """Restart now (a rolling restart, like ``kubectl rollout restart``)."""
        params = RestartRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        result = operations.microservice_restart(
            actor=Actor.for_api(request), microservice=self.get_object(), dry_run=params.validated_data["dry_run"]
        )
        return _operation_response(result)

    @extend_schema(request=ResizeRequestSerializer, responses={200: TargetResultSerializer})
    @action(detail=True, methods=["post"], permission_classes=[has_perms("control.restart_microservice")])
    def resize(self, request: Request, pk: str | None = None) -> Response:
        """Resize the running pods in place to the table's values (Kubernetes 1.35+; 409 below)."""
        params = ResizeRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        result = operations.operation_target_run(
            actor=Actor.for_api(request),
            kind=OperationKind.RESIZE,
            microservice=self.get_object(),
            restart_fallback=params.validated_data["restart_fallback"],
            dry_run=params.validated_data["dry_run"],
        )
        return _operation_response(result)


class KubernetesFailed(exceptions.APIException):
    """Kubernetes refused or could not be reached; the message says which and why."""

    status_code: int = status.HTTP_502_BAD_GATEWAY
    default_code = "kubernetes_error"
    default_detail = _("The Kubernetes API call failed.")


# A failed target's status: the object's own problems are the client's 4xx; 502 only when the
# cluster cannot be reached or answers with a server error.
ERROR_STATUS = {
    "not_found": (status.HTTP_404_NOT_FOUND, "kubernetes_not_found"),
    "conflict": (status.HTTP_409_CONFLICT, "kubernetes_conflict"),
    "forbidden": (status.HTTP_403_FORBIDDEN, "kubernetes_forbidden"),
    "invalid": (status.HTTP_422_UNPROCESSABLE_ENTITY, "kubernetes_invalid"),
    "invalid_request": (status.HTTP_400_BAD_REQUEST, "invalid"),
}


def _operation_response(result: operations.TargetResult) -> Response:
    if not result.ok:
        error = KubernetesFailed(result.error)
        error.status_code, code = ERROR_STATUS.get(result.error_kind, (status.HTTP_502_BAD_GATEWAY, "kubernetes_error"))
        error.detail = exceptions.ErrorDetail(result.error, code=code)
        raise error
    return Response(result.as_dict())


class OperationViewSet(viewsets.ModelViewSet):
    """Scheduled operations: create (now / once / cron), list, edit or pause (PATCH), cancel (DELETE)."""

    serializer_class = OperationSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    filterset_fields = ["kind", "schedule", "state", "enabled"]
    ordering_fields = ["created_at", "next_run_at", "last_run_at"]

    def get_queryset(self) -> Any:
        return scheduling.operation_list(user=self.request.user)

    def get_serializer(self, *args: Any, **kwargs: Any) -> Any:
        serializer = super().get_serializer(*args, **kwargs)
        targets = getattr(serializer, "fields", {}).get("targets")
        if targets is not None and not kwargs.get("many"):
            # a target outside the user's operator scopes is "does not exist", like an unknown id
            targets.child_relation.queryset = scope_filter(self.request.user, Microservice.objects.all(), role=OPERATOR)
        return serializer

    def perform_create(self, serializer: BaseSerializer[ScheduledOperation]) -> None:
        data = dict(serializer.validated_data)
        serializer.instance = scheduling.operation_schedule(
            actor=Actor.for_api(self.request),
            kind=data["kind"],
            targets=data["targets"],
            replicas=data.get("replicas"),
            temporary=data.get("temporary", False),
            restart_fallback=data.get("restart_fallback", False),
            interval_seconds=data.get("interval_seconds", 0),
            schedule=data.get("schedule", "now"),
            run_at=data.get("run_at"),
            cron=data.get("cron", ""),
            time_zone=data.get("time_zone", "UTC"),
            enabled=data.get("enabled", True),
        )

    def perform_update(self, serializer: BaseSerializer[ScheduledOperation]) -> None:
        assert serializer.instance is not None
        data = {key: value for key, value in serializer.validated_data.items() if key in self.request.data}
        serializer.instance = scheduling.operation_update(
            actor=Actor.for_api(self.request), operation=serializer.instance, data=data
        )

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Cancel: the beat entry is removed; the operation stays listed as cancelled."""
        operation = scheduling.operation_cancel(actor=Actor.for_api(request), operation=self.get_object())
        return Response(self.get_serializer(operation).data, status=status.HTTP_200_OK)
