"""Dashboard aggregates over the daily-peak archive (DESIGN §8 "Dashboard", §9 ``dashboard/``).

Definitions (the same in both backends, checked against each other by tests/metrics/test_dashboard.py):

* **Service-day.** The archive holds one row per (cluster, day, namespace, deployment, container). A
  service-day sums its containers: P95 CPU cores, P95 memory MiB, requests per pod are the sums over
  the containers (a missing value counts as nothing; all missing = null); a limit per pod is the sum
  of the containers' limits only when *every* container has one (a container without a limit makes
  the pod unlimited), else null; ``pods`` is the largest ``pod_count`` of its containers.
* **Source day.** Over a day range each service contributes one service-day: the day with the
  highest load (P95 cores per pod × pods); a day whose load is unknown ranks below every measured
  day; ties go to the latest day; a day of the cluster's excluded-days calendar is never a source day
  (it stays in the curves). The source day is reported with the per-service figures.
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
happens in the store's database, in one statement per summary: ``sql.ClickHouseDashboard`` runs the
``*_SQL`` constants through the ClickHouse door (``argMax`` over the day ranking, ``GROUP BY``);
``orm.OrmDashboard`` builds the per-service source days with the ORM (aggregates, a ``ROW_NUMBER``
window kept at rank 1) and derives the figures from them in the same statement. Python only converts
units, rounds and divides for the shares. ``dashboard_store()`` picks the backend like
``peak_store()`` does.

Rounding: cores and GiB to 4 decimals, MiB and percentages to 2, so float summation order (which
differs between the databases) never shows.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Collection, Mapping
from typing import Any

from django.conf import settings

from apps.control.excluded_days import excluded_dates
from apps.metrics import clickhouse as ch
from apps.metrics.dashboard.orm import ORM_SUMMARY_SQL, OrmDashboard
from apps.metrics.dashboard.results import (
    BOARDS,
    TOP_N,
    TOTAL_FIELDS,
    CurvePoint,
    DashboardBackend,
    DataSpan,
    NamespaceRow,
    RawSummary,
    RawTotals,
    Summary,
    TopEntry,
    Totals,
    as_date,
)
from apps.metrics.dashboard.sql import (
    DASHBOARD_BOARD_SQL,
    DASHBOARD_CURVES_SQL,
    DASHBOARD_DATA_SPAN_SQL,
    DASHBOARD_NAMESPACES_SQL,
    DASHBOARD_SERVICE_ROWS_SQL,
    DASHBOARD_SUMMARY_SQL,
    DASHBOARD_TOP_SQL,
    DASHBOARD_TOTALS_SQL,
    ClickHouseDashboard,
)

__all__ = [
    "BOARDS",
    "DASHBOARD_BOARD_SQL",
    "DASHBOARD_CURVES_SQL",
    "DASHBOARD_DATA_SPAN_SQL",
    "DASHBOARD_NAMESPACES_SQL",
    "DASHBOARD_SERVICE_ROWS_SQL",
    "DASHBOARD_SUMMARY_SQL",
    "DASHBOARD_TOP_SQL",
    "DASHBOARD_TOTALS_SQL",
    "ORM_SUMMARY_SQL",
    "TOP_N",
    "TOTAL_FIELDS",
    "ClickHouseDashboard",
    "CurvePoint",
    "DashboardBackend",
    "DataSpan",
    "NamespaceRow",
    "OrmDashboard",
    "RawSummary",
    "Summary",
    "Totals",
    "TopEntry",
    "as_payload",
    "dashboard_curves",
    "dashboard_data_span",
    "dashboard_service_known",
    "dashboard_store",
    "dashboard_summary",
]


def dashboard_store() -> DashboardBackend:
    """The backend of the configured daily-peak store (see ``apps.metrics.store.peak_store``)."""
    if getattr(settings, "KUBEDOOR_PEAK_STORE", "orm") == "clickhouse":
        return ClickHouseDashboard(ch.ClickHouseDoor.default())
    return OrmDashboard()


# --- shaping (units, rounding, shares) ----------------------------------------------------------


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
    *,
    cluster: str,
    day_from: datetime.date,
    day_to: datetime.date,
    backend: DashboardBackend | None = None,
    namespaces: Collection[str] | None = None,
) -> Summary:
    """Totals, top-10 boards and the namespace table of ``cluster`` over [day_from, day_to].

    ``namespaces``: a scoped user's namespaces of the cluster (``apps.accounts.scopes.scope_namespaces``):
    every figure is then over those namespaces only; ``None`` = the whole cluster. A day of the cluster's
    excluded-days calendar is never a service's source day (as in the refresh and the waste board); the
    days left out are listed in the result.
    """
    backend = backend or dashboard_store()
    excluded = excluded_dates(cluster=cluster, day_from=day_from, day_to=day_to)
    scoped = {} if namespaces is None else {"only_namespaces": namespaces}
    raw = backend.raw_summary(cluster=cluster, day_from=day_from, day_to=day_to, excluded=excluded, **scoped)
    totals = _totals(raw.totals)
    rows = []
    for namespace, raw_ns in raw.namespace_rows:
        ns_totals = _totals(raw_ns)
        shares = {field: _share(getattr(ns_totals, field), getattr(totals, field)) for field in TOTAL_FIELDS}
        rows.append(NamespaceRow(namespace=namespace, totals=ns_totals, shares=shares))
    top: dict[str, list[TopEntry]] = {board: [] for board in BOARDS}
    for board, namespace, deployment, source_day, value in raw.top:
        digits = BOARD_DIGITS[board]
        shown = int(value) if digits == 0 else round(float(value), digits)
        top[board].append(
            TopEntry(namespace=namespace, deployment=deployment, source_day=as_date(source_day), value=shown)
        )
    for entries in top.values():
        entries.sort(key=lambda e: (-e.value, e.namespace, e.deployment))
        del entries[TOP_N:]
    return Summary(
        cluster=cluster,
        day_from=day_from,
        day_to=day_to,
        namespaces=raw.namespaces,
        totals=totals,
        top=top,
        namespace_rows=rows,
        excluded_days=sorted(excluded),
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
                day=as_date(day),
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
