"""``GET /api/v1/dashboard/summary`` and ``GET /api/v1/dashboard/curves`` (DESIGN §8, §9).

Thin: the query is validated here, the figures come from ``apps.metrics.dashboard`` (computed by the
configured store). Reading needs ``metrics.view_dailypeak``, like the archive itself. An unknown
cluster or a bad range is a 400 with field errors; a service neither in the control table nor in
the archive is a 404.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.urls import path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.scopes import scope_cluster_filter, scope_namespaces, scope_sees
from apps.control import excluded_days
from apps.control import selectors as control_selectors
from apps.control.models import Cluster
from apps.metrics import dashboard, selectors
from apps.metrics.dashboard import waste
from kubedoor_site.permissions import has_perms


class RangeQuerySerializer(serializers.Serializer):
    """The cluster and day range of a dashboard query; a cluster outside the user's scopes is unknown."""

    cluster = serializers.SlugRelatedField(slug_field="name", queryset=Cluster.objects.all())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            field: Any = self.fields["cluster"]  # a SlugRelatedField
            field.queryset = scope_cluster_filter(request.user, Cluster.objects.all())

    day_from = serializers.DateField(required=False, help_text=_("first day (default: the cluster's lookback)"))
    day_to = serializers.DateField(required=False, help_text=_("last day (default: today in the cluster's zone)"))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # a bad range raises Django's ValidationError naming day_from; DRF turns it into the field's error
        span = selectors.day_range_get(
            cluster=attrs["cluster"], day_from=attrs.get("day_from"), day_to=attrs.get("day_to")
        )
        attrs.update(day_from=span.day_from, day_to=span.day_to)
        return attrs


class CurvesQuerySerializer(RangeQuerySerializer):
    namespace = serializers.CharField(max_length=63)
    deployment = serializers.CharField(max_length=253)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        request = self.context.get("request")
        cluster, namespace = attrs["cluster"].name, attrs["namespace"]
        if request is not None and not scope_sees(request.user, cluster=cluster, namespace=namespace):
            # outside the user's scopes: the same answer as a service that does not exist
            raise NotFound(
                _("No microservice %(service)s in this cluster.") % {"service": f"{namespace}/{attrs['deployment']}"}
            )
        return super().validate(attrs)


@dataclasses.dataclass(frozen=True)
class ServiceRange:
    """One service of one cluster over a day range, as the curves and pods APIs read it from the query."""

    cluster: str
    namespace: str
    deployment: str
    day_from: datetime.date
    day_to: datetime.date

    def header(self) -> dict[str, str]:
        """The answer's first fields: which service, which days."""
        return {
            "cluster": self.cluster,
            "namespace": self.namespace,
            "deployment": self.deployment,
            "day_from": self.day_from.isoformat(),
            "day_to": self.day_to.isoformat(),
        }

    def found_or_404(self, *, has_data: bool) -> None:
        service_found_or_404(
            cluster=self.cluster, namespace=self.namespace, deployment=self.deployment, has_data=has_data
        )


def service_range_read(request: Request) -> ServiceRange:
    """The validated ``cluster``, ``namespace``, ``deployment`` and day range of ``request`` (400 on bad input)."""
    query = CurvesQuerySerializer(data=request.query_params, context={"request": request})
    query.is_valid(raise_exception=True)
    data = query.validated_data
    return ServiceRange(
        cluster=data["cluster"].name,
        namespace=data["namespace"],
        deployment=data["deployment"],
        day_from=data["day_from"],
        day_to=data["day_to"],
    )


class WasteQuerySerializer(RangeQuerySerializer):
    namespace = serializers.CharField(max_length=63, required=False, help_text=_("only this namespace's services"))
    min_score = serializers.IntegerField(
        min_value=0, max_value=100, required=False, help_text=_("only services with at least this waste score")
    )
    ordering = serializers.ChoiceField(
        choices=[*waste.ORDERINGS, *(f"-{name}" for name in waste.ORDERINGS)],
        required=False,
        help_text=_("order of the services list; '-' for descending"),
    )


def _totals_fields() -> dict[str, serializers.Field]:
    return {
        "services": serializers.IntegerField(),
        "pods": serializers.IntegerField(),
        **{name: serializers.FloatField() for name in dashboard.TOTAL_FIELDS[2:]},
    }


_TOP_ENTRY = inline_serializer(
    "DashboardTopEntry",
    {
        "namespace": serializers.CharField(),
        "deployment": serializers.CharField(),
        "source_day": serializers.DateField(),
        "value": serializers.FloatField(),
    },
    many=True,
)
_SPAN = inline_serializer(
    "DashboardDataSpan",
    {
        "rows": serializers.IntegerField(),
        "first_day": serializers.DateField(allow_null=True),
        "last_day": serializers.DateField(allow_null=True),
    },
)
SUMMARY_SCHEMA = inline_serializer(
    "DashboardSummary",
    {
        "cluster": serializers.CharField(),
        "day_from": serializers.DateField(),
        "day_to": serializers.DateField(),
        "data": _SPAN,
        "namespaces": serializers.IntegerField(),
        "excluded_days": serializers.ListField(
            child=serializers.DateField(), help_text=_("days of the excluded-days calendar: never a source day")
        ),
        "totals": inline_serializer("DashboardTotals", _totals_fields()),
        "top": inline_serializer("DashboardTop", dict.fromkeys(dashboard.BOARDS, _TOP_ENTRY)),
        "namespace_rows": inline_serializer(
            "DashboardNamespaceRow",
            {
                "namespace": serializers.CharField(),
                "totals": inline_serializer("DashboardNamespaceTotals", _totals_fields()),
                "shares": inline_serializer(
                    "DashboardNamespaceShares", {name: serializers.FloatField() for name in dashboard.TOTAL_FIELDS}
                ),
            },
            many=True,
        ),
    },
)
_EXCLUDED_DAYS = inline_serializer(
    "ExcludedDayMark", {"day": serializers.DateField(), "reason": serializers.CharField()}, many=True
)
CURVES_SCHEMA = inline_serializer(
    "DashboardCurves",
    {
        "cluster": serializers.CharField(),
        "namespace": serializers.CharField(),
        "deployment": serializers.CharField(),
        "day_from": serializers.DateField(),
        "day_to": serializers.DateField(),
        "points": inline_serializer(
            "DashboardCurvePoint",
            {
                "day": serializers.DateField(),
                "pods": serializers.IntegerField(allow_null=True),
                **{
                    name: serializers.FloatField(allow_null=True)
                    for name in (
                        "cpu_cores",
                        "cpu_request_cores",
                        "cpu_limit_cores",
                        "mem_mib",
                        "mem_request_mib",
                        "mem_limit_mib",
                    )
                },
            },
            many=True,
        ),
        "excluded_days": _EXCLUDED_DAYS,
    },
)


_WASTE_TOTALS: dict[str, serializers.Field] = {
    "services": serializers.IntegerField(),
    "cpu_request_cores": serializers.FloatField(),
    "cpu_waste_cores": serializers.FloatField(),
    "cpu_waste_pct": serializers.FloatField(allow_null=True),
    "mem_request_gib": serializers.FloatField(),
    "mem_waste_gib": serializers.FloatField(),
    "mem_waste_pct": serializers.FloatField(allow_null=True),
    "monthly_cost": serializers.FloatField(allow_null=True),
}
_WASTE_SERVICE: dict[str, serializers.Field] = {
    "namespace": serializers.CharField(),
    "deployment": serializers.CharField(),
    "source_day": serializers.DateField(),
    "pods": serializers.IntegerField(allow_null=True),
    "cpu_request_cores": serializers.FloatField(),
    "cpu_used_cores": serializers.FloatField(),
    "cpu_waste_cores": serializers.FloatField(),
    "cpu_waste_pct": serializers.FloatField(allow_null=True),
    "mem_request_gib": serializers.FloatField(),
    "mem_used_gib": serializers.FloatField(),
    "mem_waste_gib": serializers.FloatField(),
    "mem_waste_pct": serializers.FloatField(allow_null=True),
    "monthly_cost": serializers.FloatField(allow_null=True),
    "score": serializers.IntegerField(allow_null=True),
}
WASTE_SCHEMA = inline_serializer(
    "DashboardWaste",
    {
        "cluster": serializers.CharField(),
        "day_from": serializers.DateField(),
        "day_to": serializers.DateField(),
        "price_cpu_core_hour": serializers.FloatField(allow_null=True),
        "price_mem_gib_hour": serializers.FloatField(allow_null=True),
        "hours_per_month": serializers.IntegerField(),
        "excluded_days": serializers.ListField(child=serializers.DateField()),
        "totals": inline_serializer("WasteTotals", _WASTE_TOTALS),
        "top": inline_serializer("WasteService", _WASTE_SERVICE, many=True),
        "namespaces": inline_serializer(
            "WasteNamespace",
            {"namespace": serializers.CharField(), "totals": inline_serializer("WasteNamespaceTotals", _WASTE_TOTALS)},
            many=True,
        ),
        "services": inline_serializer("WasteServiceListed", _WASTE_SERVICE, many=True),
        "trend": inline_serializer(
            "WastePoint",
            {
                "day": serializers.DateField(),
                "cpu_waste_cores": serializers.FloatField(),
                "mem_waste_gib": serializers.FloatField(),
                "monthly_cost": serializers.FloatField(allow_null=True),
                "is_excluded": serializers.BooleanField(),
            },
            many=True,
        ),
    },
)


class DashboardSummaryView(APIView):
    """Totals, top-10 boards and the namespace table of a cluster over a day range (source day per service)."""

    permission_classes = [has_perms("metrics.view_dailypeak")]

    @extend_schema(parameters=[RangeQuerySerializer], responses=SUMMARY_SCHEMA)
    def get(self, request: Request) -> Response:
        query = RangeQuerySerializer(data=request.query_params, context={"request": request})
        query.is_valid(raise_exception=True)
        cluster, day_from, day_to = (query.validated_data[key] for key in ("cluster", "day_from", "day_to"))
        summary = dashboard.dashboard_summary(
            cluster=cluster.name,
            day_from=day_from,
            day_to=day_to,
            namespaces=scope_namespaces(request.user, cluster=cluster.name),
        )
        payload = dashboard.as_payload(summary)
        payload["data"] = dashboard.as_payload(dashboard.dashboard_data_span(cluster=cluster.name))
        return Response(payload)


class DashboardCurvesView(APIView):
    """One service's daily points over a day range: P95 CPU and memory per pod with requests, limits and pods."""

    permission_classes = [has_perms("metrics.view_dailypeak")]

    @extend_schema(parameters=[CurvesQuerySerializer], responses=CURVES_SCHEMA)
    def get(self, request: Request) -> Response:
        service = service_range_read(request)
        points = dashboard.dashboard_curves(**dataclasses.asdict(service))
        service.found_or_404(has_data=bool(points))
        reasons = excluded_days.excluded_day_reasons(
            cluster=service.cluster, day_from=service.day_from, day_to=service.day_to
        )
        return Response(
            {
                **service.header(),
                "points": dashboard.as_payload(points),
                "excluded_days": [{"day": day.isoformat(), "reason": reason} for day, reason in reasons.items()],
            }
        )


class DashboardWasteView(APIView):
    """Wasted CPU cores, memory GiB and money per service (source day), per namespace, in total and per day.

    ``namespace``, ``min_score`` and ``ordering`` filter and order the ``services`` list only.
    """

    permission_classes = [has_perms("metrics.view_dailypeak")]

    @extend_schema(parameters=[WasteQuerySerializer], responses=WASTE_SCHEMA)
    def get(self, request: Request) -> Response:
        query = WasteQuerySerializer(data=request.query_params, context={"request": request})
        query.is_valid(raise_exception=True)
        data = query.validated_data
        summary = waste.waste_summary(
            cluster=data["cluster"],
            day_from=data["day_from"],
            day_to=data["day_to"],
            namespaces=scope_namespaces(request.user, cluster=data["cluster"].name),
        )
        services = waste.waste_services_filter(
            summary.services,
            namespace=data.get("namespace", ""),
            min_score=data.get("min_score"),
            ordering=data.get("ordering", ""),
        )
        payload = dashboard.as_payload(summary)
        payload["services"] = dashboard.as_payload(services)
        return Response(payload)


def service_found_or_404(*, cluster: str, namespace: str, deployment: str, has_data: bool) -> None:
    """A range with no data is an answer for a known service and a 404 naming it for an unknown one."""
    if not has_data and not _service_exists(cluster=cluster, namespace=namespace, deployment=deployment):
        raise NotFound(_("No microservice %(service)s in this cluster.") % {"service": f"{namespace}/{deployment}"})


def _service_exists(*, cluster: str, namespace: str, deployment: str) -> bool:
    """In the control table, or anywhere in the archive (a service removed from the table keeps its history)."""
    try:
        control_selectors.microservice_get(cluster=cluster, namespace=namespace, name=deployment)
    except ObjectDoesNotExist:
        return dashboard.dashboard_service_known(cluster=cluster, namespace=namespace, deployment=deployment)
    return True


urlpatterns = [
    path("summary", DashboardSummaryView.as_view(), name="dashboard-summary"),
    path("curves", DashboardCurvesView.as_view(), name="dashboard-curves"),
    path("waste", DashboardWasteView.as_view(), name="dashboard-waste"),
]
