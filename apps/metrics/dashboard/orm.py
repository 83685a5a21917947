"""The dashboard backend for the daily peaks in the default database (the ORM store).

The per-service source days are an ORM query: service-days by ``values().annotate()`` aggregates,
ranked per service with a ``ROW_NUMBER()`` window and kept where the rank is 1 (Django wraps the
window filter in a subquery). Django has no API for reading a query *once* and deriving several
results from it, and running that query once per figure (totals, namespaces, five boards) costs seven
passes over the archive — 9–14 s for a year of 1 000 services on PostgreSQL, where the target is 3 s.
So ``ORM_SUMMARY_SQL`` reads the ORM's compiled query as a common table expression and derives
everything in the same statement: per-namespace sums, the totals over those, and each board's ten
biggest (another ``ROW_NUMBER()``). The outer text is a constant; the ORM's parameters are passed
through untouched. It runs on PostgreSQL and SQLite alike (CTEs, window functions, ``UNION ALL``).
"""

from __future__ import annotations

import datetime
from collections.abc import Collection

from django.db import connections, router
from django.db.models import BigIntegerField, Case, Count, F, Max, Min, QuerySet, Sum, Value, When, Window
from django.db.models.functions import NullIf, RowNumber
from django.db.models.lookups import Exact

from apps.metrics.dashboard.results import BOARDS, TOP_N, DataSpan, RawCurve, RawSummary, RawWasteSource, RawWasteTrend
from apps.metrics.models import DailyPeak

SOURCE_COLUMNS = (
    "namespace",
    "deployment",
    "day",
    "d_pods",
    "d_cpu_cores",
    "d_mem_mib",
    "d_req_cpu_m",
    "d_req_mem_mib",
    "d_lim_cpu_m",
    "d_lim_mem_mib",
)

_BOARD_VALUES = {
    # board: (value, when the value is known) — over the columns of the sources query
    "load": ("d_cpu_cores * d_pods", "d_cpu_cores IS NOT NULL AND d_pods IS NOT NULL"),
    "cpu_pct": ("d_cpu_cores * 100000.0 / d_lim_cpu_m", "d_cpu_cores IS NOT NULL AND d_lim_cpu_m IS NOT NULL"),
    "memory": ("d_mem_mib * d_pods", "d_mem_mib IS NOT NULL AND d_pods IS NOT NULL"),
    "mem_pct": ("d_mem_mib * 100.0 / d_lim_mem_mib", "d_mem_mib IS NOT NULL AND d_lim_mem_mib IS NOT NULL"),
    "pods": ("d_pods", "d_pods IS NOT NULL"),
}
assert tuple(_BOARD_VALUES) == BOARDS

# ``{sources}`` is the ORM's compiled SQL (with its own placeholders), never a value. The first
# branch of the final UNION ALL names the column types (PostgreSQL types an all-NULL column as text).
ORM_SUMMARY_SQL = (
    """
WITH sources AS ({sources}),
per_namespace AS (
    SELECT namespace,
           COUNT(*) AS services,
           COALESCE(SUM(d_pods), 0) AS pods_total,
           COALESCE(SUM(d_req_cpu_m * d_pods), 0) AS req_cpu_m_total,
           COALESCE(SUM(d_cpu_cores * d_pods), 0.0) AS cpu_cores_total,
           COALESCE(SUM(d_lim_cpu_m * d_pods), 0) AS lim_cpu_m_total,
           COALESCE(SUM(d_req_mem_mib * d_pods), 0) AS req_mem_mib_total,
           COALESCE(SUM(d_mem_mib * d_pods), 0.0) AS mem_mib_total,
           COALESCE(SUM(d_lim_mem_mib * d_pods), 0) AS lim_mem_mib_total
    FROM sources
    GROUP BY namespace
),
boards AS (
"""
    + "\n    UNION ALL\n".join(
        f"    SELECT '{board}' AS board, namespace, deployment, day, {value} AS value FROM sources WHERE {known}"
        for board, (value, known) in _BOARD_VALUES.items()
    )
    + """
),
ranked AS (
    SELECT board, namespace, deployment, day, value,
           ROW_NUMBER() OVER (PARTITION BY board ORDER BY value DESC, namespace, deployment) AS position
    FROM boards
)
SELECT 'total' AS kind, NULL AS namespace, NULL AS deployment, CAST(NULL AS DATE) AS day, COUNT(*) AS namespaces,
       SUM(services), SUM(pods_total), SUM(req_cpu_m_total), SUM(cpu_cores_total), SUM(lim_cpu_m_total),
       SUM(req_mem_mib_total), SUM(mem_mib_total), SUM(lim_mem_mib_total), CAST(NULL AS DOUBLE PRECISION) AS value
FROM per_namespace
UNION ALL
SELECT 'namespace', namespace, NULL, NULL, NULL, services, pods_total, req_cpu_m_total, cpu_cores_total,
       lim_cpu_m_total, req_mem_mib_total, mem_mib_total, lim_mem_mib_total, NULL
FROM per_namespace
UNION ALL
SELECT board, namespace, deployment, day, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, value
FROM ranked
WHERE position <= """
    + str(TOP_N)
)


# Waste per day over the service-days (``{service_days}``: the ORM's compiled SQL): Σ over services of
# max(request − P95, 0) × pods, CPU in cores and memory in MiB; a service-day missing a figure adds nothing.
ORM_WASTE_TREND_SQL = """
WITH service_days AS ({service_days})
SELECT day,
       COALESCE(SUM(CASE WHEN d_req_cpu_m * 0.001 > d_cpu_cores AND d_pods IS NOT NULL
                         THEN (d_req_cpu_m * 0.001 - d_cpu_cores) * d_pods ELSE 0.0 END), 0.0) AS cpu_waste_cores,
       COALESCE(SUM(CASE WHEN d_req_mem_mib > d_mem_mib AND d_pods IS NOT NULL
                         THEN (d_req_mem_mib - d_mem_mib) * d_pods ELSE 0.0 END), 0.0) AS mem_waste_mib
FROM service_days
GROUP BY day
ORDER BY day
"""


def _all_present(field: str) -> Exact:
    """True for a group in which every row has ``field`` (COUNT(*) = COUNT(field))."""
    return Exact(Count("id"), Count(field))


def service_days(
    *,
    cluster: str,
    day_from: datetime.date,
    day_to: datetime.date,
    namespace: str = "",
    deployment: str = "",
    namespaces: Collection[str] | None = None,
) -> QuerySet:
    """Service-days (one row per namespace, deployment, day): the ORM twin of ``_SERVICE_DAYS_SQL``.

    ``namespaces``: only these (a scoped user's); ``None`` = every namespace.
    """
    rows = DailyPeak.objects.filter(cluster=cluster, day__gte=day_from, day__lte=day_to)
    if namespaces is not None:
        rows = rows.filter(namespace__in=sorted(namespaces))
    if namespace:
        rows = rows.filter(namespace=namespace)
    if deployment:
        rows = rows.filter(deployment=deployment)
    return (
        rows.order_by()  # no Meta.ordering: it would add container to the GROUP BY
        .values("namespace", "deployment", "day")
        .annotate(
            d_pods=Max("pod_count"),
            d_cpu_cores=Sum("p95_cpu_cores"),
            d_mem_mib=Sum("p95_mem_mib"),
            d_req_cpu_m=Sum("request_cpu_m"),
            d_req_mem_mib=Sum("request_mem_mib"),
            d_lim_cpu_m=Case(
                When(_all_present("limit_cpu_m"), then=NullIf(Sum("limit_cpu_m"), 0)),
                default=Value(None),
                output_field=BigIntegerField(),
            ),
            d_lim_mem_mib=Case(
                When(_all_present("limit_mem_mib"), then=NullIf(Sum("limit_mem_mib"), 0)),
                default=Value(None),
                output_field=BigIntegerField(),
            ),
        )
    )


def sources(
    *,
    cluster: str,
    day_from: datetime.date,
    day_to: datetime.date,
    excluded: Collection[datetime.date] = (),
    namespaces: Collection[str] | None = None,
) -> QuerySet:
    """One row per service: its source day (highest P95 cores × pods, unknown last, ties to the later day).

    ``excluded`` days (the cluster's calendar) are never a source day.
    """
    load = F("d_cpu_cores") * F("d_pods")
    days = service_days(cluster=cluster, day_from=day_from, day_to=day_to, namespaces=namespaces)
    if excluded:
        days = days.exclude(day__in=list(excluded))
    return (
        days.annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("namespace"), F("deployment")],
                order_by=[load.desc(nulls_last=True), F("day").desc()],
            )
        )
        .filter(rank=1)
        .values(*SOURCE_COLUMNS)
    )


class OrmDashboard:
    """The aggregates in the default database (see the module docstring)."""

    name = "orm"

    def raw_summary(
        self,
        *,
        cluster: str,
        day_from: datetime.date,
        day_to: datetime.date,
        excluded: Collection[datetime.date] = (),
        only_namespaces: Collection[str] | None = None,
    ) -> RawSummary:
        rows = sources(cluster=cluster, day_from=day_from, day_to=day_to, excluded=excluded, namespaces=only_namespaces)
        inner, params = rows.query.sql_with_params()
        alias = router.db_for_read(DailyPeak)
        with connections[alias].cursor() as cursor:
            cursor.execute(ORM_SUMMARY_SQL.format(sources=inner), params)
            rows = cursor.fetchall()
        namespaces, totals, namespace_rows, top = 0, [0] * 8, [], []
        for kind, namespace, deployment, day, count, *sums, value in rows:
            if kind == "total":
                namespaces, totals = int(count or 0), sums
            elif kind == "namespace":
                namespace_rows.append((namespace, sums))
            else:
                top.append((kind, namespace, deployment, day, value))
        namespace_rows.sort(key=lambda item: item[0])
        return RawSummary(namespaces=namespaces, totals=totals, namespace_rows=namespace_rows, top=top)

    def raw_curves(
        self, *, cluster: str, namespace: str, deployment: str, day_from: datetime.date, day_to: datetime.date
    ) -> list[RawCurve]:
        rows = service_days(
            cluster=cluster, day_from=day_from, day_to=day_to, namespace=namespace, deployment=deployment
        ).order_by("day")
        return [
            (
                row["day"],
                row["d_pods"],
                row["d_cpu_cores"],
                row["d_req_cpu_m"],
                row["d_lim_cpu_m"],
                row["d_mem_mib"],
                row["d_req_mem_mib"],
                row["d_lim_mem_mib"],
            )
            for row in rows
        ]

    def raw_waste_sources(
        self,
        *,
        cluster: str,
        day_from: datetime.date,
        day_to: datetime.date,
        excluded: Collection[datetime.date],
        only_namespaces: Collection[str] | None = None,
    ) -> list[RawWasteSource]:
        rows = sources(cluster=cluster, day_from=day_from, day_to=day_to, excluded=excluded, namespaces=only_namespaces)
        return [
            (
                row["namespace"],
                row["deployment"],
                row["day"],
                row["d_pods"],
                row["d_cpu_cores"],
                row["d_req_cpu_m"],
                row["d_mem_mib"],
                row["d_req_mem_mib"],
            )
            for row in rows
        ]

    def raw_waste_trend(
        self,
        *,
        cluster: str,
        day_from: datetime.date,
        day_to: datetime.date,
        only_namespaces: Collection[str] | None = None,
    ) -> list[RawWasteTrend]:
        days = service_days(cluster=cluster, day_from=day_from, day_to=day_to, namespaces=only_namespaces)
        inner, params = days.query.sql_with_params()
        with connections[router.db_for_read(DailyPeak)].cursor() as cursor:
            cursor.execute(ORM_WASTE_TREND_SQL.format(service_days=inner), params)
            return list(cursor.fetchall())

    def service_row_count(self, *, cluster: str, namespace: str, deployment: str) -> int:
        return DailyPeak.objects.filter(cluster=cluster, namespace=namespace, deployment=deployment).count()

    def data_span(self, *, cluster: str) -> DataSpan:
        result = DailyPeak.objects.filter(cluster=cluster).aggregate(
            rows=Count("id"), first_day=Min("day"), last_day=Max("day")
        )
        return DataSpan(rows=result["rows"], first_day=result["first_day"], last_day=result["last_day"])
