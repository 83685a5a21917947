"""Waste and money (issue 11 §5): what a cluster requests but does not use at its peak.

Definitions (the same on every store; tests/metrics/test_waste.py checks the ORM store, ClickHouse
18.16 and chdb against each other and against figures written from these formulas):

* **Service-day** as on the dashboard: P95 CPU cores, P95 memory MiB and the requests per pod are sums
  over the service's containers; ``pods`` is the largest ``pod_count`` of its containers.
* **Source day** of a service over a day range: its busiest day (highest P95 cores × pods, ties to the
  later day), as the refresh's ``service`` rule picks it — and never a day of the cluster's
  excluded-days calendar (``apps.control.excluded_days``).
* **Wasted CPU** (cores) = ``max(request − P95, 0) × pods`` on the source day, request in cores; **wasted
  memory** (GiB) likewise in MiB / 1024. A side whose request or P95 is unknown wastes nothing and has
  no percentage. **Waste %** = wasted / (request × pods) × 100.
* **Money**: with the cluster's prices (per CPU core-hour, per memory GiB-hour) the **monthly cost** of
  the waste is ``(wasted cores × CPU price + wasted GiB × memory price) × 730`` (730 hours = 365 × 24 /
  12, the average month). A price left empty adds nothing; with neither set no money is shown (null).
* **Waste score** (0–100, per service) = the mean of the service's CPU waste % and memory waste %
  (a side without a percentage is left out; neither: no score), rounded half up. 0 is a service that
  uses all it requests at its peak, 100 one that requests and uses nothing.
* **Totals** per namespace and for the cluster sum the services' wasted and requested cores and GiB
  (their % is wasted / requested of the sums) and their monthly cost.
* **Top 10**: the services wasting the most money when the cluster has a price, else the most CPU
  cores; then the most memory, then namespace and deployment.
* **Trend**: per day of the range with data, Σ over the services of that day's waste (each floored at
  0), every day — excluded days included, marked ``is_excluded``.

The stores compute the per-service source days and the per-day sums (``raw_waste_sources``,
``raw_waste_trend`` of the dashboard backends); Python sums the services and rounds: cores and GiB to
4 decimals, percentages and money to 2.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections import defaultdict
from collections.abc import Collection, Iterable
from typing import Any

from apps.control.excluded_days import excluded_dates
from apps.control.models import Cluster
from apps.metrics.dashboard.results import DashboardBackend, as_date

HOURS_PER_MONTH = 730
TOP_N = 10
ORDERINGS = ("score", "cpu_waste_cores", "mem_waste_gib", "monthly_cost")


@dataclasses.dataclass(frozen=True)
class ServiceWaste:
    namespace: str
    deployment: str
    source_day: datetime.date
    pods: int | None
    cpu_request_cores: float
    cpu_used_cores: float
    cpu_waste_cores: float
    cpu_waste_pct: float | None
    mem_request_gib: float
    mem_used_gib: float
    mem_waste_gib: float
    mem_waste_pct: float | None
    monthly_cost: float | None
    score: int | None


@dataclasses.dataclass(frozen=True)
class WasteTotals:
    services: int
    cpu_request_cores: float
    cpu_waste_cores: float
    cpu_waste_pct: float | None
    mem_request_gib: float
    mem_waste_gib: float
    mem_waste_pct: float | None
    monthly_cost: float | None


@dataclasses.dataclass(frozen=True)
class NamespaceWaste:
    namespace: str
    totals: WasteTotals


@dataclasses.dataclass(frozen=True)
class WastePoint:
    day: datetime.date
    cpu_waste_cores: float
    mem_waste_gib: float
    monthly_cost: float | None
    is_excluded: bool


@dataclasses.dataclass(frozen=True)
class WasteSummary:
    cluster: str
    day_from: datetime.date
    day_to: datetime.date
    price_cpu_core_hour: float | None
    price_mem_gib_hour: float | None
    hours_per_month: int
    excluded_days: list[datetime.date]
    totals: WasteTotals
    top: list[ServiceWaste]
    namespaces: list[NamespaceWaste]
    services: list[ServiceWaste]
    trend: list[WastePoint]


def monthly_cost(*, cpu_cores: float, mem_gib: float, price_cpu: float | None, price_mem: float | None) -> float | None:
    """``(cores × CPU price + GiB × memory price) × 730``; ``None`` when neither price is set."""
    if price_cpu is None and price_mem is None:
        return None
    hourly = cpu_cores * (price_cpu or 0.0) + mem_gib * (price_mem or 0.0)
    return round(hourly * HOURS_PER_MONTH, 2)


def waste_score(*, cpu_waste_pct: float | None, mem_waste_pct: float | None) -> int | None:
    """The mean of the known waste percentages, rounded half up (0–100); ``None`` when neither is known."""
    known = [pct for pct in (cpu_waste_pct, mem_waste_pct) if pct is not None]
    if not known:
        return None
    return math.floor(sum(known) / len(known) + 0.5)


def _side(request: Any, used: Any, pods: int | None, scale: float) -> tuple[float, float, float, float | None]:
    """(request, used, wasted, waste %) of one resource over the pods, in ``scale`` units (raw floats)."""
    if request is None or used is None or not pods:
        total_request = 0.0 if request is None or not pods else float(request) * scale * pods
        return total_request, 0.0 if used is None or not pods else float(used) * pods, 0.0, None
    per_pod_request = float(request) * scale
    per_pod_waste = max(per_pod_request - float(used), 0.0)
    pct = 100 * per_pod_waste / per_pod_request if per_pod_request > 0 else None
    return per_pod_request * pods, float(used) * pods, per_pod_waste * pods, pct


def _pct(part: float, whole: float) -> float | None:
    return round(100 * part / whole, 2) if whole > 0 else None


def _totals(
    items: Iterable[ServiceWaste], raw: dict[tuple[str, str], tuple[float, ...]], cluster: Cluster
) -> WasteTotals:
    services = list(items)
    cpu_req = sum(raw[(s.namespace, s.deployment)][0] for s in services)
    cpu_waste = sum(raw[(s.namespace, s.deployment)][1] for s in services)
    mem_req = sum(raw[(s.namespace, s.deployment)][2] for s in services)
    mem_waste = sum(raw[(s.namespace, s.deployment)][3] for s in services)
    return WasteTotals(
        services=len(services),
        cpu_request_cores=round(cpu_req, 4),
        cpu_waste_cores=round(cpu_waste, 4),
        cpu_waste_pct=_pct(cpu_waste, cpu_req),
        mem_request_gib=round(mem_req, 4),
        mem_waste_gib=round(mem_waste, 4),
        mem_waste_pct=_pct(mem_waste, mem_req),
        monthly_cost=monthly_cost(
            cpu_cores=cpu_waste,
            mem_gib=mem_waste,
            price_cpu=cluster.price_cpu_core_hour,
            price_mem=cluster.price_mem_gib_hour,
        ),
    )


def _top_key(service: ServiceWaste) -> tuple[Any, ...]:
    cost = service.monthly_cost if service.monthly_cost is not None else 0.0
    return (-cost, -service.cpu_waste_cores, -service.mem_waste_gib, service.namespace, service.deployment)


def waste_summary(
    *,
    cluster: Cluster,
    day_from: datetime.date,
    day_to: datetime.date,
    backend: DashboardBackend | None = None,
    namespaces: Collection[str] | None = None,
) -> WasteSummary:
    """The cluster's waste over [day_from, day_to]: per service, per namespace, in total, and per day.

    ``namespaces``: only these (a scoped user's); ``None`` = the whole cluster.
    """
    from apps.metrics.dashboard import dashboard_store

    backend = backend or dashboard_store()
    excluded = excluded_dates(cluster=cluster, day_from=day_from, day_to=day_to)
    price_cpu, price_mem = cluster.price_cpu_core_hour, cluster.price_mem_gib_hour
    services: list[ServiceWaste] = []
    raw: dict[tuple[str, str], tuple[float, ...]] = {}
    scoped = {} if namespaces is None else {"only_namespaces": namespaces}
    rows = backend.raw_waste_sources(
        cluster=cluster.name, day_from=day_from, day_to=day_to, excluded=excluded, **scoped
    )
    for namespace, deployment, day, pods, cpu, req_cpu_m, mem, req_mem in sorted(rows, key=lambda r: (r[0], r[1])):
        pods = None if pods is None else int(pods)
        cpu_req, cpu_used, cpu_waste, cpu_pct = _side(req_cpu_m, cpu, pods, 0.001)
        mem_req_mib, mem_used_mib, mem_waste_mib, mem_pct = _side(req_mem, mem, pods, 1.0)
        mem_req, mem_used, mem_waste = mem_req_mib / 1024, mem_used_mib / 1024, mem_waste_mib / 1024
        raw[(namespace, deployment)] = (cpu_req, cpu_waste, mem_req, mem_waste)
        cpu_pct_shown = None if cpu_pct is None else round(cpu_pct, 2)
        mem_pct_shown = None if mem_pct is None else round(mem_pct, 2)
        services.append(
            ServiceWaste(
                namespace=namespace,
                deployment=deployment,
                source_day=as_date(day),
                pods=pods,
                cpu_request_cores=round(cpu_req, 4),
                cpu_used_cores=round(cpu_used, 4),
                cpu_waste_cores=round(cpu_waste, 4),
                cpu_waste_pct=cpu_pct_shown,
                mem_request_gib=round(mem_req, 4),
                mem_used_gib=round(mem_used, 4),
                mem_waste_gib=round(mem_waste, 4),
                mem_waste_pct=mem_pct_shown,
                monthly_cost=monthly_cost(
                    cpu_cores=cpu_waste, mem_gib=mem_waste, price_cpu=price_cpu, price_mem=price_mem
                ),
                score=waste_score(cpu_waste_pct=cpu_pct, mem_waste_pct=mem_pct),
            )
        )
    by_namespace: dict[str, list[ServiceWaste]] = defaultdict(list)
    for service in services:
        by_namespace[service.namespace].append(service)
    trend = [
        WastePoint(
            day=as_date(day),
            cpu_waste_cores=round(float(cpu or 0.0), 4),
            mem_waste_gib=round(float(mem or 0.0) / 1024, 4),
            monthly_cost=monthly_cost(
                cpu_cores=float(cpu or 0.0), mem_gib=float(mem or 0.0) / 1024, price_cpu=price_cpu, price_mem=price_mem
            ),
            is_excluded=as_date(day) in excluded,
        )
        for day, cpu, mem in backend.raw_waste_trend(cluster=cluster.name, day_from=day_from, day_to=day_to, **scoped)
    ]
    return WasteSummary(
        cluster=cluster.name,
        day_from=day_from,
        day_to=day_to,
        price_cpu_core_hour=price_cpu,
        price_mem_gib_hour=price_mem,
        hours_per_month=HOURS_PER_MONTH,
        excluded_days=sorted(excluded),
        totals=_totals(services, raw, cluster),
        top=sorted(services, key=_top_key)[:TOP_N],
        namespaces=[
            NamespaceWaste(namespace=namespace, totals=_totals(items, raw, cluster))
            for namespace, items in sorted(by_namespace.items())
        ],
        services=services,
        trend=trend,
    )


def waste_services_filter(
    services: Iterable[ServiceWaste], *, namespace: str = "", min_score: int | None = None, ordering: str = ""
) -> list[ServiceWaste]:
    """The API's filters on the per-service list: one namespace, a minimum score, an order (``-`` = descending)."""
    chosen = [
        s
        for s in services
        if (not namespace or s.namespace == namespace)
        and (min_score is None or (s.score is not None and s.score >= min_score))
    ]
    field = ordering.lstrip("-")
    if field in ORDERINGS:
        present = [s for s in chosen if getattr(s, field) is not None]
        missing = [s for s in chosen if getattr(s, field) is None]
        present.sort(key=lambda s: (s.namespace, s.deployment))
        present.sort(key=lambda s: getattr(s, field), reverse=ordering.startswith("-"))
        chosen = present + missing
    return chosen
