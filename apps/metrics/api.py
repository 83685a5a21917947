"""REST endpoints: start and follow collections, read the daily-peak archive (DESIGN §9)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.scopes import scope_cluster_filter, scope_filter
from apps.audit.services import Actor
from apps.control.models import Cluster
from apps.metrics import selectors, services
from apps.metrics.models import COLLECTION_RUN_OUTCOME_FIELDS, CollectionRun
from apps.metrics.services import DEFAULT_CONCURRENCY, MAX_DAYS
from apps.metrics.store import PeakRow
from kubedoor_site.pagination import PageNumberPagination
from kubedoor_site.permissions import has_perms

# The archive list shows the last 10 days unless asked otherwise (the dashboard shows the lookback).
PEAK_DEFAULT_DAYS = 10


class CollectionRunSerializer(serializers.ModelSerializer):
    cluster = serializers.SlugRelatedField(slug_field="name", queryset=Cluster.objects.all())
    days = serializers.IntegerField(min_value=1, max_value=MAX_DAYS)
    concurrency = serializers.IntegerField(min_value=1, max_value=32, default=DEFAULT_CONCURRENCY)
    progress_pct = serializers.IntegerField(read_only=True)

    class Meta:
        model = CollectionRun
        fields = [
            "id",
            "cluster",
            "days",
            "concurrency",
            "state",
            "progress_done",
            "progress_total",
            "progress_pct",
            *COLLECTION_RUN_OUTCOME_FIELDS,
            "queries",
        ]
        read_only_fields = [f for f in fields if f not in ("cluster", "days", "concurrency")]
        # "one active run per cluster" is checked by collection_start, which names the running run
        validators: list = []


class CollectionRunViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """``POST`` starts a collection (202; 400 when the cluster is already collecting); ``GET`` follows it."""

    serializer_class = CollectionRunSerializer
    filterset_fields = ["state"]
    ordering_fields = ["created_at", "id"]

    def get_queryset(self) -> Any:
        runs = selectors.collection_run_list(cluster=self.request.query_params.get("cluster"))
        return scope_filter(self.request.user, runs, namespace=None)

    def get_serializer(self, *args: Any, **kwargs: Any) -> Any:
        serializer = super().get_serializer(*args, **kwargs)
        cluster = getattr(serializer, "fields", {}).get("cluster")
        if cluster is not None and not kwargs.get("many"):
            # a scoped user collects the clusters they hold whole as operator
            cluster.queryset = scope_cluster_filter(
                self.request.user, Cluster.objects.all(), perm="metrics.add_collectionrun"
            )
        return serializer

    @extend_schema(
        parameters=[OpenApiParameter("cluster", str, description="cluster name")],
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = services.collection_start(
            cluster=serializer.validated_data["cluster"],
            days=serializer.validated_data["days"],
            concurrency=serializer.validated_data["concurrency"],
            actor=Actor.for_api(request),
        )
        return Response(self.get_serializer(run).data, status=status.HTTP_202_ACCEPTED)


class PeakSerializer(serializers.Serializer):
    cluster = serializers.CharField()
    day = serializers.DateField()
    namespace = serializers.CharField()
    deployment = serializers.CharField()
    container = serializers.CharField()
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    pod_count = serializers.IntegerField(allow_null=True)
    p95_cpu_cores = serializers.FloatField(allow_null=True)
    p95_cpu_pct = serializers.FloatField(allow_null=True)
    p95_mem_mib = serializers.FloatField(allow_null=True)
    p95_mem_pct = serializers.FloatField(allow_null=True)
    request_cpu_m = serializers.IntegerField(allow_null=True)
    request_mem_mib = serializers.IntegerField(allow_null=True)
    limit_cpu_m = serializers.IntegerField(allow_null=True)
    limit_mem_mib = serializers.IntegerField(allow_null=True)
    quantile = serializers.FloatField()
    aggregation = serializers.CharField()
    step_seconds = serializers.IntegerField()
    collected_at = serializers.DateTimeField()


class PeakQuerySerializer(serializers.Serializer):
    cluster = serializers.SlugRelatedField(slug_field="name", queryset=Cluster.objects.all())
    day_from = serializers.DateField(required=False)
    day_to = serializers.DateField(required=False)
    namespace = serializers.CharField(required=False, default="", max_length=63)
    deployment = serializers.CharField(required=False, default="", max_length=253)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # a bad range raises Django's ValidationError naming day_from; DRF turns it into the field's error
        span = selectors.day_range_get(
            cluster=attrs["cluster"],
            day_from=attrs.get("day_from"),
            day_to=attrs.get("day_to"),
            default_days=PEAK_DEFAULT_DAYS,
        )
        attrs.update(day_from=span.day_from, day_to=span.day_to)
        return attrs


class PeakListView(APIView):
    """The daily-peak archive: ``?cluster=`` (required), ``day_from``, ``day_to`` (default the last 10 days),
    ``namespace``, ``deployment``; paged like every list."""

    permission_classes = [has_perms("metrics.view_dailypeak")]
    pagination_class = PageNumberPagination

    @extend_schema(parameters=[PeakQuerySerializer], responses=PeakSerializer(many=True))
    def get(self, request: Request) -> Response:
        query = PeakQuerySerializer(data=request.query_params)
        field: Any = query.fields["cluster"]  # a SlugRelatedField
        field.queryset = scope_cluster_filter(request.user, Cluster.objects.all())
        query.is_valid(raise_exception=True)
        data = query.validated_data
        rows = selectors.peak_list(
            cluster=data["cluster"].name,
            day_from=data["day_from"],
            day_to=data["day_to"],
            namespace=data["namespace"],
            deployment=data["deployment"],
            user=request.user,
        )
        paginator = self.pagination_class()
        # PeakPage counts and slices like a sequence, which is all the paginator uses.
        page = paginator.paginate_queryset(cast("Sequence[PeakRow]", rows), request, view=self)
        assert page is not None  # page_size is set on PageNumberPagination, so DRF always pages
        return paginator.get_paginated_response(PeakSerializer([row.as_dict() for row in page], many=True).data)
