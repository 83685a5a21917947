"""Dashboard aggregates over the daily-peak archive (DESIGN §8 "Dashboard", §9 ``dashboard/``).

Definitions (the same in both backends, checked against each other by tests/metrics/test_dashboard.py):

* **Service-day.** The archive holds one row per (cluster, day, namespace, deployment, container). A
  service-day sums its containers: P95 CPU cores, P95 memory MiB, requests per pod are the sums over
  the containers (a missing value counts as nothing; all missing = null); a limit per pod is the sum
  of the containers' limits only when *every* container has one (a container without a limit makes
  the pod unlimited), else null; ``pods`` is the largest ``pod_count`` of its containers.
* **Source day.** Over a day range each service contributes one service-day: the day with the
  highest load (P95 cores per pod × pods); a day whose load is unknown ranks below every measured
  day; ties go to the latest day. The source day is reported with the per-service figures.
* **Totals** over the services' source days: namespaces, services, pods (Σ pods, unknown = 0); CPU
  request / P95 used / limit in cores (Σ per-pod value × pods); memory request / P95 used / limit in
  GiB (Σ per-pod MiB × pods / 1024). Unknown values contribute nothing.
* **Top 10s**, biggest first, ties by namespace then deployment: ``load`` (P95 cores × pods), ``cpu_pct``
  (P95 CPU as % of the per-pod limit; services without a limit are left out), ``memory`` (P95 MiB ×
  pods), ``mem_pct`` (P95 memory as % of the limit), ``pods``. A service whose value is unknown is
  left out of that board.
* **Namespace table**: the totals per namespace, each with its share (%) of the cluster total.
* **Curves** of one service: one point per day of the range that has data, with the service-day's
  pods, P95 CPU cores per pod with request and limit cores per pod, and P95 memory MiB per pod with
  request and limit MiB per pod.

The heavy lifting (365 days × thousands of containers → one row per service → a few dozen numbers)
happens in the store's database: ``ClickHouseDashboard`` runs the ``*_SQL`` constants below through
the ClickHouse door (``argMax`` over the day ranking, ``GROUP BY``); ``OrmDashboard`` builds the same
figures with the ORM (aggregates, a ``ROW_NUMBER`` window filtered to the source day, aggregates over
that). Python only converts units, rounds and divides for the shares. ``dashboard_store()`` picks the
backend like ``peak_store()`` does.

Rounding: cores and GiB to 4 decimals, MiB and percentages to 2, so float summation order (which
differs between the databases) never shows.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from django.conf import settings
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    F,
    FloatField,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce, NullIf, RowNumber
from django.db.models.lookups import Exact

from apps.metrics import clickhouse as ch
from apps.metrics.models import DailyPeak

BOARDS = ("load", "cpu_pct", "memory", "mem_pct", "pods")
TOP_N = 10
TOTAL_FIELDS = (
    "services",
    "pods",
    "cpu_request_cores",
    "cpu_used_cores",
    "cpu_limit_cores",
    "mem_request_gib",
    "mem_used_gib",
    "mem_limit_gib",
)

# --- ClickHouse SQL -----------------------------------------------------------------------------
# Building blocks are constants joined at import time; values always travel as named parameters.
# Inner columns carry a ``d_`` prefix: ClickHouse substitutes aliases everywhere, so an outer alias
# named like an inner column would refer to itself.

_SERVICE_DAYS_SQL = """
SELECT namespace, deployment, day,
       max(pod_count) AS d_pods,
       sum(p95_cpu_cores) AS d_cpu_cores,
       sum(p95_mem_mib) AS d_mem_mib,
       sum(request_cpu_m) AS d_req_cpu_m,
       sum(request_mem_mib) AS d_req_mem_mib,
       if(count() = count(limit_cpu_m), sum(limit_cpu_m), NULL) AS d_lim_cpu_m,
       if(count() = count(limit_mem_mib), sum(limit_mem_mib), NULL) AS d_lim_mem_mib
FROM kubedoor_daily_peaks
WHERE cluster = %(cluster)s AND day >= %(day_from)s AND day <= %(day_to)s
GROUP BY namespace, deployment, day
"""

# One row per service: its source day's figures. argMax keeps the whole tuple of the best day (a
# Nullable argument alone would make argMax skip the days where it is null).
_SOURCES_SQL = (
    """
SELECT namespace, deployment,
       argMax(tuple(day, d_pods, d_cpu_cores, d_mem_mib, d_req_cpu_m, d_req_mem_mib, d_lim_cpu_m, d_lim_mem_mib),
              tuple(ifNull(d_cpu_cores * d_pods, -1.), day)) AS src,
       tupleElement(src, 1) AS source_day,
       tupleElement(src, 2) AS pods,
       tupleElement(src, 3) AS cpu_cores,
       tupleElement(src, 4) AS mem_mib,
       tupleElement(src, 5) AS req_cpu_m,
       tupleElement(src, 6) AS req_mem_mib,
       nullIf(tupleElement(src, 7), 0) AS lim_cpu_m,
       nullIf(tupleElement(src, 8), 0) AS lim_mem_mib
FROM ("""
    + _SERVICE_DAYS_SQL
    + """)
GROUP BY namespace, deployment
"""
)

_AGGREGATES = """
       count() AS services,
       sum(ifNull(pods, 0)) AS pods_total,
       sum(ifNull(req_cpu_m * pods, 0)) AS req_cpu_m_total,
       sum(ifNull(cpu_cores * pods, 0.)) AS cpu_cores_total,
       sum(ifNull(lim_cpu_m * pods, 0)) AS lim_cpu_m_total,
       sum(ifNull(req_mem_mib * pods, 0)) AS req_mem_mib_total,
       sum(ifNull(mem_mib * pods, 0.)) AS mem_mib_total,
       sum(ifNull(lim_mem_mib * pods, 0)) AS lim_mem_mib_total
"""

DASHBOARD_TOTALS_SQL = "SELECT uniqExact(namespace) AS namespaces," + _AGGREGATES + "FROM (" + _SOURCES_SQL + ")"

DASHBOARD_NAMESPACES_SQL = (
    "SELECT namespace," + _AGGREGATES + "FROM (" + _SOURCES_SQL + ")\nGROUP BY namespace\nORDER BY namespace"
)


def _board_sql(board: str, value: str, known: str) -> str:
    # ``board`` and the expressions are constants of this module, never input.
    return (
        f"SELECT '{board}' AS board, namespace, deployment, source_day, toFloat64({value}) AS value\n"
        f"FROM ({_SOURCES_SQL})\nWHERE {known}\nORDER BY value DESC, namespace, deployment\nLIMIT {TOP_N}"
    )


# One statement per board (the Grafana dashboard shows each on its own panel) …
DASHBOARD_BOARD_SQL = {
    board: _board_sql(board, value, known)
    for board, value, known in (
        ("load", "ifNull(cpu_cores * pods, 0.)", "isNotNull(cpu_cores) AND isNotNull(pods)"),
        ("cpu_pct", "ifNull(cpu_cores * 100000. / lim_cpu_m, 0.)", "isNotNull(cpu_cores) AND isNotNull(lim_cpu_m)"),
        ("memory", "ifNull(mem_mib * pods, 0.)", "isNotNull(mem_mib) AND isNotNull(pods)"),
        ("mem_pct", "ifNull(mem_mib * 100. / lim_mem_mib, 0.)", "isNotNull(mem_mib) AND isNotNull(lim_mem_mib)"),
        ("pods", "ifNull(pods, 0)", "isNotNull(pods)"),
    )
}
# … and all five in one round trip for the API.
DASHBOARD_TOP_SQL = "\nUNION ALL\n".join("SELECT * FROM (" + sql + ")" for sql in DASHBOARD_BOARD_SQL.values())

DASHBOARD_CURVES_SQL = """
SELECT day,
       max(pod_count) AS d_pods,
       sum(p95_cpu_cores) AS d_cpu_cores,
       sum(request_cpu_m) AS d_req_cpu_m,
       if(count() = count(limit_cpu_m), sum(limit_cpu_m), NULL) AS d_lim_cpu_m,
       sum(p95_mem_mib) AS d_mem_mib,
       sum(request_mem_mib) AS d_req_mem_mib,
       if(count() = count(limit_mem_mib), sum(limit_mem_mib), NULL) AS d_lim_mem_mib
FROM kubedoor_daily_peaks
WHERE cluster = %(cluster)s AND namespace = %(namespace)s AND deployment = %(deployment)s
  AND day >= %(day_from)s AND day <= %(day_to)s
GROUP BY day
ORDER BY day
"""

DASHBOARD_SERVICE_ROWS_SQL = """
SELECT count() FROM kubedoor_daily_peaks
WHERE cluster = %(cluster)s AND namespace = %(namespace)s AND deployment = %(deployment)s
"""

DASHBOARD_DATA_SPAN_SQL = """
SELECT count(), min(day), max(day) FROM kubedoor_daily_peaks WHERE cluster = %(cluster)s
"""


# --- results ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Totals:
    """Cluster-wide (or one namespace's) sums over the services' source days."""

    services: int
    pods: int
    cpu_request_cores: float
    cpu_used_cores: float
    cpu_limit_cores: float
    mem_request_gib: float
    mem_used_gib: float
    mem_limit_gib: float


@dataclasses.dataclass(frozen=True)
class TopEntry:
    namespace: str
    deployment: str
    source_day: datetime.date
    value: float


@dataclasses.dataclass(frozen=True)
class NamespaceRow:
    namespace: str
    totals: Totals
    shares: dict[str, float]  # field of Totals -> % of the cluster total (0 when the total is 0)


@dataclasses.dataclass(frozen=True)
class Summary:
    cluster: str
    day_from: datetime.date
    day_to: datetime.date
    namespaces: int
    totals: Totals
    top: dict[str, list[TopEntry]]
    namespace_rows: list[NamespaceRow]


@dataclasses.dataclass(frozen=True)
class CurvePoint:
    """One service-day; CPU in cores per pod, memory in MiB per pod (null = not measured)."""

    day: datetime.date
    pods: int | None
    cpu_cores: float | None
    cpu_request_cores: float | None
    cpu_limit_cores: float | None
    mem_mib: float | None
    mem_request_mib: float | None
    mem_limit_mib: float | None


@dataclasses.dataclass(frozen=True)
class DataSpan:
    """Which days of a cluster the archive holds (``rows`` = 0: nothing collected yet)."""

    rows: int
    first_day: datetime.date | None
    last_day: datetime.date | None


# --- raw results, as both backends return them --------------------------------------------------
# ``RawTotals`` values: services, pods, Σ req_cpu_m×pods, Σ cpu_cores×pods, Σ lim_cpu_m×pods,
# Σ req_mem_mib×pods, Σ mem_mib×pods, Σ lim_mem_mib×pods (per-pod units: m, cores, MiB).
RawTotals = Sequence[Any]
RawCurve = Sequence[Any]  # day, pods, cpu cores, req cpu m, lim cpu m, mem MiB, req mem MiB, lim mem MiB


class DashboardBackend(Protocol):
    name: str

    def raw_totals(self, *, cluster: str, day_from: datetime.date, day_to: datetime.date) -> tuple[int, RawTotals]:
        """(number of namespaces, RawTotals)."""
        ...

    def raw_namespaces(
        self, *, cluster: str, day_from: datetime.date, day_to: datetime.date
    ) -> list[tuple[str, RawTotals]]: ...

    def raw_top(
        self, *, cluster: str, day_from: datetime.date, day_to: datetime.date
    ) -> list[tuple[str, str, str, Any, float]]:
        """Rows (board, namespace, deployment, source day, value), at most TOP_N per board."""
        ...

    def raw_curves(
        self, *, cluster: str, namespace: str, deployment: str, day_from: datetime.date, day_to: datetime.date
    ) -> list[RawCurve]: ...

    def service_row_count(self, *, cluster: str, namespace: str, deployment: str) -> int: ...

    def data_span(self, *, cluster: str) -> DataSpan: ...


# --- ClickHouse ---------------------------------------------------------------------------------


class ClickHouseDashboard:
    """The aggregates in ClickHouse, through the door (or any executor with the same ``execute``)."""

    name = "clickhouse"

    def __init__(self, executor: Any) -> None:
        self.executor = executor

    @staticmethod
    def _range(cluster: str, day_from: datetime.date, day_to: datetime.date) -> dict[str, Any]:
        return {"cluster": cluster, "day_from": day_from, "day_to": day_to}

    def raw_totals(self, *, cluster: str, day_from: datetime.date, day_to: datetime.date) -> tuple[int, RawTotals]:
        rows = self.executor.execute(DASHBOARD_TOTALS_SQL, self._range(cluster, day_from, day_to))
        if not rows:
            return 0, (0,) * len(TOTAL_FIELDS)
        namespaces, *values = rows[0]
        return int(namespaces), values

    def raw_namespaces(
        self, *, cluster: str, day_from: datetime.date, day_to: datetime.date
    ) -> list[tuple[str, RawTotals]]:
        rows = self.executor.execute(DASHBOARD_NAMESPACES_SQL, self._range(cluster, day_from, day_to))
        return [(namespace, values) for namespace, *values in rows]

    def raw_top(
        self, *, cluster: str, day_from: datetime.date, day_to: datetime.date
    ) -> list[tuple[str, str, str, Any, float]]:
        return [tuple(row) for row in self.executor.execute(DASHBOARD_TOP_SQL, self._range(cluster, day_from, day_to))]

    def raw_curves(
        self, *, cluster: str, namespace: str, deployment: str, day_from: datetime.date, day_to: datetime.date
    ) -> list[RawCurve]:
        params = {**self._range(cluster, day_from, day_to), "namespace": namespace, "deployment": deployment}
        return self.executor.execute(DASHBOARD_CURVES_SQL, params)

    def service_row_count(self, *, cluster: str, namespace: str, deployment: str) -> int:
        params = {"cluster": cluster, "namespace": namespace, "deployment": deployment}
        return int(self.executor.execute(DASHBOARD_SERVICE_ROWS_SQL, params)[0][0])

    def data_span(self, *, cluster: str) -> DataSpan:
        rows, first, last = self.executor.execute(DASHBOARD_DATA_SPAN_SQL, {"cluster": cluster})[0]
        if not int(rows):
            return DataSpan(rows=0, first_day=None, last_day=None)
        return DataSpan(rows=int(rows), first_day=_as_date(first), last_day=_as_date(last))


# --- ORM ----------------------------------------------------------------------------------------


def _all_present(field: str) -> Exact:
    """True for a group in which every row has ``field`` (COUNT(*) = COUNT(field))."""
    return Exact(Count("id"), Count(field))


def _service_days(
    *, cluster: str, day_from: datetime.date, day_to: datetime.date, namespace: str = "", deployment: str = ""
) -> QuerySet:
    """Service-days (one row per namespace, deployment, day), the ORM twin of ``_SERVICE_DAYS_SQL``."""
    rows = DailyPeak.objects.filter(cluster=cluster, day__gte=day_from, day__lte=day_to)
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


def _sources(
    *, cluster: str, day_from: datetime.date, day_to: datetime.date, extra: dict[str, Any] | None = None
) -> QuerySet:
    """One row per service: its source day (``ROW_NUMBER`` over the day ranking, kept where it is 1).

    ``extra`` annotations are added before the window (after it, Django would group by the window).
    """
    load = F("d_cpu_cores") * F("d_pods")
    return (
        _service_days(cluster=cluster, day_from=day_from, day_to=day_to)
        .annotate(**(extra or {}))
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("namespace"), F("deployment")],
                order_by=[load.desc(nulls_last=True), F("day").desc()],
            )
        )
        .filter(rank=1)
    )


def _orm_aggregates(condition: Q | None = None) -> dict[str, Any]:
    """The ``_AGGREGATES`` of the SQL above over ``_sources()`` rows (optionally of one namespace)."""
    pods = F("d_pods")

    def total(expression: Any, zero: Any, output: Any) -> Any:
        return Coalesce(Sum(Coalesce(expression, zero, output_field=output), filter=condition), zero)

    integer, real = BigIntegerField(), FloatField()
    return {
        "services": Count("deployment", filter=condition),
        "pods_total": total(pods, Value(0), integer),
        "req_cpu_m_total": total(F("d_req_cpu_m") * pods, Value(0), integer),
        "cpu_cores_total": total(F("d_cpu_cores") * pods, Value(0.0), real),
        "lim_cpu_m_total": total(F("d_lim_cpu_m") * pods, Value(0), integer),
        "req_mem_mib_total": total(F("d_req_mem_mib") * pods, Value(0), integer),
        "mem_mib_total": total(F("d_mem_mib") * pods, Value(0.0), real),
        "lim_mem_mib_total": total(F("d_lim_mem_mib") * pods, Value(0), integer),
    }


_RAW_KEYS = tuple(_orm_aggregates())

_ORM_BOARDS: dict[str, Any] = {
    "load": F("d_cpu_cores") * F("d_pods"),
    "cpu_pct": F("d_cpu_cores") * Value(100000.0) / F("d_lim_cpu_m"),
    "memory": F("d_mem_mib") * F("d_pods"),
    "mem_pct": F("d_mem_mib") * Value(100.0) / F("d_lim_mem_mib"),
    "pods": F("d_pods"),
}


class OrmDashboard:
    """The aggregates in the default database, with the ORM (window function + aggregate over it).

    Django runs an aggregate over a window-filtered query as ``SELECT … FROM (…) subquery``; the
    namespace table is one such aggregate with a ``FILTER (WHERE namespace = …)`` per namespace
    (the namespaces are listed first), so every figure is still summed by the database.
    """

    name = "orm"

    def raw_totals(self, *, cluster: str, day_from: datetime.date, day_to: datetime.date) -> tuple[int, RawTotals]:
        result = _sources(cluster=cluster, day_from=day_from, day_to=day_to).aggregate(
            namespaces=Count("namespace", distinct=True), **_orm_aggregates()
        )
        return int(result["namespaces"]), [result[key] for key in _RAW_KEYS]

    def raw_namespaces(
        self, *, cluster: str, day_from: datetime.date, day_to: datetime.date
    ) -> list[tuple[str, RawTotals]]:
        names = list(
            DailyPeak.objects.filter(cluster=cluster, day__gte=day_from, day__lte=day_to)
            .order_by("namespace")
            .values_list("namespace", flat=True)
            .distinct()
        )
        if not names:
            return []
        aggregates: dict[str, Any] = {}
        for index, namespace in enumerate(names):
            for key, expression in _orm_aggregates(Q(namespace=namespace)).items():
                aggregates[f"n{index}_{key}"] = expression
        result = _sources(cluster=cluster, day_from=day_from, day_to=day_to).aggregate(**aggregates)
        return [(namespace, [result[f"n{index}_{key}"] for key in _RAW_KEYS]) for index, namespace in enumerate(names)]

    def raw_top(
        self, *, cluster: str, day_from: datetime.date, day_to: datetime.date
    ) -> list[tuple[str, str, str, Any, float]]:
        found: list[tuple[str, str, str, Any, float]] = []
        for board, expression in _ORM_BOARDS.items():
            # Ordered with unknown values last and cut here: a filter on the value would become a
            # HAVING before the day ranking and pick another day as the source.
            rows = (
                _sources(cluster=cluster, day_from=day_from, day_to=day_to, extra={"value": expression})
                .order_by(F("value").desc(nulls_last=True), "namespace", "deployment")
                .values_list("namespace", "deployment", "day", "value")[:TOP_N]
            )
            found += [(board, ns, dep, day, value) for ns, dep, day, value in rows if value is not None]
        return found

    def raw_curves(
        self, *, cluster: str, namespace: str, deployment: str, day_from: datetime.date, day_to: datetime.date
    ) -> list[RawCurve]:
        rows = _service_days(
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

    def service_row_count(self, *, cluster: str, namespace: str, deployment: str) -> int:
        return DailyPeak.objects.filter(cluster=cluster, namespace=namespace, deployment=deployment).count()

    def data_span(self, *, cluster: str) -> DataSpan:
        result = DailyPeak.objects.filter(cluster=cluster).aggregate(
            rows=Count("id"), first_day=Min("day"), last_day=Max("day")
        )
        return DataSpan(rows=result["rows"], first_day=result["first_day"], last_day=result["last_day"])


def dashboard_store() -> DashboardBackend:
    """The backend of the configured daily-peak store (see ``apps.metrics.store.peak_store``)."""
    if getattr(settings, "KUBEDOOR_PEAK_STORE", "orm") == "clickhouse":
        return ClickHouseDashboard(ch.ClickHouseDoor.default())
    return OrmDashboard()


# --- shaping (units, rounding, shares) ----------------------------------------------------------


def _as_date(value: Any) -> datetime.date:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    return datetime.date.fromisoformat(str(value))


def _num(value: Any) -> float:
    return 0.0 if value is None else float(value)


def _totals(raw: RawTotals) -> Totals:
    services, pods, req_cpu_m, cpu_cores, lim_cpu_m, req_mem_mib, mem_mib, lim_mem_mib = raw
    return Totals(
        services=int(services or 0),
        pods=int(pods or 0),
        cpu_request_cores=round(_num(req_cpu_m) / 1000, 4),
        cpu_used_cores=round(_num(cpu_cores), 4),
        cpu_limit_cores=round(_num(lim_cpu_m) / 1000, 4),
        mem_request_gib=round(_num(req_mem_mib) / 1024, 4),
        mem_used_gib=round(_num(mem_mib) / 1024, 4),
        mem_limit_gib=round(_num(lim_mem_mib) / 1024, 4),
    )


def _share(part: float, whole: float) -> float:
    return round(100 * part / whole, 2) if whole else 0.0


BOARD_DIGITS = {"load": 4, "cpu_pct": 2, "memory": 2, "mem_pct": 2, "pods": 0}


def dashboard_summary(
    *, cluster: str, day_from: datetime.date, day_to: datetime.date, backend: DashboardBackend | None = None
) -> Summary:
    """Totals, top-10 boards and the namespace table of ``cluster`` over [day_from, day_to]."""
    backend = backend or dashboard_store()
    namespaces, raw = backend.raw_totals(cluster=cluster, day_from=day_from, day_to=day_to)
    totals = _totals(raw)
    rows = []
    for namespace, raw_ns in backend.raw_namespaces(cluster=cluster, day_from=day_from, day_to=day_to):
        ns_totals = _totals(raw_ns)
        shares = {field: _share(getattr(ns_totals, field), getattr(totals, field)) for field in TOTAL_FIELDS}
        rows.append(NamespaceRow(namespace=namespace, totals=ns_totals, shares=shares))
    top: dict[str, list[TopEntry]] = {board: [] for board in BOARDS}
    for board, namespace, deployment, source_day, value in backend.raw_top(
        cluster=cluster, day_from=day_from, day_to=day_to
    ):
        digits = BOARD_DIGITS[board]
        shown = int(value) if digits == 0 else round(float(value), digits)
        top[board].append(
            TopEntry(namespace=namespace, deployment=deployment, source_day=_as_date(source_day), value=shown)
        )
    for entries in top.values():
        entries.sort(key=lambda e: (-e.value, e.namespace, e.deployment))
        del entries[TOP_N:]
    return Summary(
        cluster=cluster,
        day_from=day_from,
        day_to=day_to,
        namespaces=namespaces,
        totals=totals,
        top=top,
        namespace_rows=rows,
    )


def _opt(value: Any, scale: float = 1.0, digits: int = 4) -> float | None:
    return None if value is None else round(float(value) / scale, digits)


def dashboard_curves(
    *,
    cluster: str,
    namespace: str,
    deployment: str,
    day_from: datetime.date,
    day_to: datetime.date,
    backend: DashboardBackend | None = None,
) -> list[CurvePoint]:
    """One point per day of the range on which the service has data, oldest first."""
    backend = backend or dashboard_store()
    points = []
    for day, pods, cpu, req_cpu_m, lim_cpu_m, mem, req_mem, lim_mem in backend.raw_curves(
        cluster=cluster, namespace=namespace, deployment=deployment, day_from=day_from, day_to=day_to
    ):
        points.append(
            CurvePoint(
                day=_as_date(day),
                pods=None if pods is None else int(pods),
                cpu_cores=_opt(cpu),
                cpu_request_cores=_opt(req_cpu_m, 1000),
                cpu_limit_cores=_opt(None if not lim_cpu_m else lim_cpu_m, 1000),
                mem_mib=_opt(mem, digits=2),
                mem_request_mib=_opt(req_mem, digits=2),
                mem_limit_mib=_opt(None if not lim_mem else lim_mem, digits=2),
            )
        )
    return points


def dashboard_service_known(
    *, cluster: str, namespace: str, deployment: str, backend: DashboardBackend | None = None
) -> bool:
    """Whether the archive holds any day of this service (any range)."""
    backend = backend or dashboard_store()
    return backend.service_row_count(cluster=cluster, namespace=namespace, deployment=deployment) > 0


def dashboard_data_span(*, cluster: str, backend: DashboardBackend | None = None) -> DataSpan:
    backend = backend or dashboard_store()
    return backend.data_span(cluster=cluster)


def as_payload(value: Any) -> Any:
    """Dataclasses → JSON-ready dicts and lists (dates as ISO strings)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: as_payload(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {key: as_payload(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [as_payload(item) for item in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value
