"""``GET /api/v1/dashboard/pods`` (a service's pod curves) and ``GET /api/v1/dashboard/nodes`` (the node board).

Thin, like ``dashboard_api``: the same query serializers and permission (``metrics.view_dailypeak``),
the figures from ``apps.metrics.pod_node_dashboard``. A service neither in the control table nor in
the archive is a 404 naming it; a bad cluster or range is a 400 with field errors.
"""

from __future__ import annotations

import dataclasses

from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.metrics import dashboard, pod_node_dashboard
from apps.metrics.dashboard_api import CurvesQuerySerializer, RangeQuerySerializer, service_range_read
from kubedoor_site.permissions import has_perms

_NODE_FIELDS = [field for field in pod_node_dashboard.NodeFigures.__dataclass_fields__ if field != "node"]
_NODE = inline_serializer(
    "DashboardNode",
    {"node": serializers.CharField(), **{name: serializers.FloatField(allow_null=True) for name in _NODE_FIELDS}},
    many=True,
)
NODES_SCHEMA = inline_serializer(
    "DashboardNodes",
    {
        "cluster": serializers.CharField(),
        "day_from": serializers.DateField(),
        "day_to": serializers.DateField(),
        "day": serializers.DateField(allow_null=True),
        "nodes": _NODE,
        "most_loaded": _NODE,
        "least_loaded": _NODE,
        "spread": inline_serializer(
            "DashboardNodeSpread",
            {
                name: serializers.FloatField(allow_null=True)
                for name in pod_node_dashboard.NodeSpread.__dataclass_fields__
            },
        ),
    },
)
PODS_SCHEMA = inline_serializer(
    "DashboardPods",
    {
        "cluster": serializers.CharField(),
        "namespace": serializers.CharField(),
        "deployment": serializers.CharField(),
        "day_from": serializers.DateField(),
        "day_to": serializers.DateField(),
        "days": serializers.ListField(child=serializers.DateField()),
        "pods_total": serializers.IntegerField(),
        "pods": inline_serializer(
            "DashboardPodCurve",
            {
                "pod": serializers.CharField(),
                "points": inline_serializer(
                    "DashboardPodPoint",
                    {
                        "day": serializers.DateField(),
                        "cpu_cores": serializers.FloatField(allow_null=True),
                        "mem_mib": serializers.FloatField(allow_null=True),
                    },
                    many=True,
                ),
            },
            many=True,
        ),
    },
)


class DashboardPodsView(APIView):
    """A service's pods over a day range: each pod's P95 CPU (cores) and memory (MiB) per day it ran."""

    permission_classes = [has_perms("metrics.view_dailypeak")]

    @extend_schema(parameters=[CurvesQuerySerializer], responses=PODS_SCHEMA)
    def get(self, request: Request) -> Response:
        service = service_range_read(request)
        curves = pod_node_dashboard.pod_curves(**dataclasses.asdict(service))
        service.found_or_404(has_data=bool(curves.pods))
        return Response({**service.header(), **dashboard.as_payload(curves)})


class DashboardNodesView(APIView):
    """The node board: each node's P95 used, requested and allocatable CPU and memory on the range's last day
    with node figures, the most and least loaded nodes and the spread of their load."""

    permission_classes = [has_perms("metrics.view_dailypeak")]

    @extend_schema(parameters=[RangeQuerySerializer], responses=NODES_SCHEMA)
    def get(self, request: Request) -> Response:
        query = RangeQuerySerializer(data=request.query_params, context={"request": request})
        query.is_valid(raise_exception=True)
        cluster, day_from, day_to = (query.validated_data[key] for key in ("cluster", "day_from", "day_to"))
        board = pod_node_dashboard.node_board(cluster=cluster.name, day_from=day_from, day_to=day_to)
        return Response(
            {
                "cluster": cluster.name,
                "day_from": day_from.isoformat(),
                "day_to": day_to.isoformat(),
                **dashboard.as_payload(board),
            }
        )


urlpatterns = [
    path("pods", DashboardPodsView.as_view(), name="dashboard-pods"),
    path("nodes", DashboardNodesView.as_view(), name="dashboard-nodes"),
]
