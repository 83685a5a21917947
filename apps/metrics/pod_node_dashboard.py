"""The pod curves of a service and the node board of a cluster (selectors over the pod/node store).

* **Pod curves.** One line per pod over the day range, one point per day the pod was measured
  (pods come and go with rollouts, so most lines are short). At most ``MAX_POD_CURVES`` pods are
  drawn: those with the highest P95 CPU on any day of the range (ties by name); ``pods_total``
  says how many there were.
* **Node board.** The nodes of the last day of the range that has node figures: per node the P95
  CPU and memory its pods used, the sum of its pods' requests and its allocatable, each as a % of
  allocatable. The **most loaded** and **least loaded** nodes rank by CPU used % (then memory used
  %, then name); nodes without an allocatable CPU are not ranked. The **spread** is the highest
  minus the lowest used % over the ranked nodes, for CPU and memory: a wide spread means the
  scheduler packs some nodes and leaves others idle.

Percentages are rounded to 2 decimals, cores to 4 and MiB to 2, like the dashboard.
"""

from __future__ import annotations

import dataclasses
import datetime

from apps.metrics.pod_node_store import PodNodeStore, pod_node_store

MAX_POD_CURVES = 20
RANKED = 5


@dataclasses.dataclass(frozen=True)
class PodPoint:
    day: datetime.date
    cpu_cores: float | None
    mem_mib: float | None


@dataclasses.dataclass(frozen=True)
class PodCurve:
    pod: str
    points: list[PodPoint]


@dataclasses.dataclass(frozen=True)
class PodCurves:
    days: list[datetime.date]  # every day of the range on which some pod of the service was measured
    pods_total: int
    pods: list[PodCurve]  # sorted by pod name


def pod_curves(
    *,
    cluster: str,
    namespace: str,
    deployment: str,
    day_from: datetime.date,
    day_to: datetime.date,
    store: PodNodeStore | None = None,
) -> PodCurves:
    store = store or pod_node_store()
    rows = store.pod_rows(cluster=cluster, namespace=namespace, deployment=deployment, day_from=day_from, day_to=day_to)
    by_pod: dict[str, list[PodPoint]] = {}
    for row in rows:
        by_pod.setdefault(row.pod, []).append(
            PodPoint(
                day=row.day,
                cpu_cores=None if row.p95_cpu_cores is None else round(row.p95_cpu_cores, 4),
                mem_mib=None if row.p95_mem_mib is None else round(row.p95_mem_mib, 2),
            )
        )

    def busiest(pod: str) -> tuple[float, str]:
        return (-max((p.cpu_cores or 0.0 for p in by_pod[pod]), default=0.0), pod)

    shown = sorted(sorted(by_pod, key=busiest)[:MAX_POD_CURVES])
    return PodCurves(
        days=sorted({row.day for row in rows}),
        pods_total=len(by_pod),
        pods=[PodCurve(pod=pod, points=sorted(by_pod[pod], key=lambda p: p.day)) for pod in shown],
    )


@dataclasses.dataclass(frozen=True)
class NodeFigures:
    node: str
    cpu_used_cores: float | None
    cpu_request_cores: float | None
    cpu_allocatable_cores: float | None
    cpu_used_pct: float | None
    cpu_request_pct: float | None
    mem_used_mib: float | None
    mem_request_mib: float | None
    mem_allocatable_mib: float | None
    mem_used_pct: float | None
    mem_request_pct: float | None


@dataclasses.dataclass(frozen=True)
class NodeSpread:
    cpu_min_pct: float | None
    cpu_max_pct: float | None
    cpu_spread_pct: float | None
    mem_min_pct: float | None
    mem_max_pct: float | None
    mem_spread_pct: float | None


@dataclasses.dataclass(frozen=True)
class NodeBoard:
    day: datetime.date | None  # None: no node figures in the range
    nodes: list[NodeFigures]  # by name
    most_loaded: list[NodeFigures]
    least_loaded: list[NodeFigures]
    spread: NodeSpread


def _pct(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return round(100 * part / whole, 2)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _range(values: list[float]) -> tuple[float | None, float | None, float | None]:
    if not values:
        return None, None, None
    return min(values), max(values), round(max(values) - min(values), 2)


def node_board(
    *, cluster: str, day_from: datetime.date, day_to: datetime.date, store: PodNodeStore | None = None
) -> NodeBoard:
    store = store or pod_node_store()
    rows = store.node_day(cluster=cluster, day_from=day_from, day_to=day_to)
    nodes = []
    for _, node, cpu, mem, req_cpu_m, req_mem, alloc_cpu_m, alloc_mem in rows:
        req_cpu = None if req_cpu_m is None else req_cpu_m / 1000
        alloc_cpu = None if alloc_cpu_m is None else alloc_cpu_m / 1000
        nodes.append(
            NodeFigures(
                node=node,
                cpu_used_cores=_round(cpu, 4),
                cpu_request_cores=_round(req_cpu, 4),
                cpu_allocatable_cores=_round(alloc_cpu, 4),
                cpu_used_pct=_pct(cpu, alloc_cpu),
                cpu_request_pct=_pct(req_cpu, alloc_cpu),
                mem_used_mib=_round(mem, 2),
                mem_request_mib=None if req_mem is None else float(req_mem),
                mem_allocatable_mib=None if alloc_mem is None else float(alloc_mem),
                mem_used_pct=_pct(mem, alloc_mem),
                mem_request_pct=_pct(req_mem, alloc_mem),
            )
        )
    ranked = sorted(
        (n for n in nodes if n.cpu_used_pct is not None),
        key=lambda n: (-(n.cpu_used_pct or 0.0), -(n.mem_used_pct or 0.0), n.node),
    )
    cpu_range = _range([n.cpu_used_pct for n in ranked if n.cpu_used_pct is not None])
    mem_range = _range([n.mem_used_pct for n in ranked if n.mem_used_pct is not None])
    return NodeBoard(
        day=rows[0][0] if rows else None,
        nodes=nodes,
        most_loaded=ranked[:RANKED],
        least_loaded=sorted(ranked, key=lambda n: (n.cpu_used_pct or 0.0, n.mem_used_pct or 0.0, n.node))[:RANKED],
        spread=NodeSpread(*cpu_range, *mem_range),
    )
