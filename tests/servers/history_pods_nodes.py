"""Generated history of the cluster "fleet" for the per-pod and per-node figures, and their expected values.

The series (cAdvisor usage, kube-state-metrics requests, pod info with the node, owners, node
allocatable) carry ``k8s_cluster="fleet"`` and load into the suite's Prometheus and VictoriaMetrics
beside the other clusters' history (tests/servers/prometheus.py ``make_fleet``, one history for both),
so they never change those clusters' figures.

Shapes make every statistic differ: each pod's usage ramps up through the window and has one
short spike above its 95th percentile; a surge pod of ``web/worker`` runs only from minute 40 to
minute 65, its usage falling (so the time its last sample is still looked back to holds its lowest
value); the daemon pods of ``kube-system`` count on their nodes but not as the cluster's pods
(the namespace is excluded by default). Expected figures are not formulas of the shape but each
backend's own evaluation replayed on the very samples written, with tests/servers/history_stats.py's
rules (``backend``): the subquery's aligned steps, ``rate``, the lookback of instant selectors, ranges,
and ``quantile_over_time``'s interpolation (``expected_pod_figures`` / ``expected_node_figures``).

Where the backends differ most: the surge pod's series stop at minute 65 without a staleness marker.
Prometheus still sees its last memory sample and its ``kube_pod_info`` for 5 minutes, VictoriaMetrics
for two sample intervals (left-open, so for 30 s). On node-c the steps 65:30–70:00 hold worker 1 plus
the stale surge pod on Prometheus — among the window's highest values — and worker 1 alone on
VictoriaMetrics, so node-c's memory P95 is about 1.2 % lower there (checked step by step on both
servers). Elsewhere the difference is about 0.01 %: one step fewer (the window's start is left out)
and ``rate`` without extrapolation.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

from tests.servers import history
from tests.servers.history import write_day_files
from tests.servers.history_stats import Series, _gauge_at, _in_range, _rate_at, _steps, quantile

SAMPLE_SECONDS = history.SAMPLE_SECONDS  # the lookback rules of history_stats count in it
MARGIN_MINUTES = 10
MIB = 1024 * 1024
CLUSTER_LABEL = ("k8s_cluster", "fleet")
EXCLUDED_NAMESPACES = ("kube-system", "kubedoor")
# node: (allocatable cores, allocatable MiB)
NODES = {"node-a": (4.0, 16384), "node-b": (8.0, 32768), "node-c": (2.0, 8192)}


@dataclasses.dataclass(frozen=True)
class FleetContainer:
    name: str
    cpu: float  # cores at the start of the window, before the ramp, spike and day factor
    mem: float  # MiB
    request_cpu_m: int
    request_mem_mib: int


@dataclasses.dataclass(frozen=True)
class FleetPod:
    namespace: str
    deployment: str  # "" for a pod no Deployment owns (a DaemonSet's)
    name: str
    node: str
    containers: tuple[FleetContainer, ...]
    spike_minute: int  # one minute at 3× usage
    start_minute: int = -MARGIN_MINUTES  # minutes after the window's start
    stop_minute: int = 90 + MARGIN_MINUTES
    ramp_down: bool = False  # usage falls through the window instead of rising


def _hash(text: str, n: int) -> str:
    digest = hashlib.sha1(text.encode()).hexdigest()
    return "".join("bcdfghjklmnpqrstvwxz2456789"[int(c, 16)] for c in digest[:n])


def replicaset(namespace: str, deployment: str) -> str:
    return f"{deployment}-{_hash(f'fleet/{namespace}/{deployment}', 10)}"


def _pod(namespace: str, deployment: str, index: int, node: str, containers, spike: int, **life) -> FleetPod:
    name = f"{replicaset(namespace, deployment)}-{_hash(f'{deployment}/{index}', 5)}"
    return FleetPod(namespace, deployment, name, node, containers, spike, **life)


FRONT = (FleetContainer("front", 0.20, 300.0, 250, 384), FleetContainer("proxy", 0.05, 60.0, 50, 64))
WORKER = (FleetContainer("worker", 0.50, 500.0, 500, 768),)
AGENT = (FleetContainer("agent", 0.05, 50.0, 100, 64),)

PODS = (
    _pod("web", "front", 0, "node-a", FRONT, 20),
    _pod("web", "front", 1, "node-a", FRONT, 33),
    _pod("web", "front", 2, "node-b", FRONT, 47),
    _pod("web", "worker", 0, "node-b", WORKER, 58),
    _pod("web", "worker", 1, "node-c", WORKER, 71),
    # the surge pod: scaled up at minute 40, gone at minute 65
    _pod("web", "worker", 2, "node-c", WORKER, 52, start_minute=40, stop_minute=65, ramp_down=True),
    *(
        FleetPod("kube-system", "", f"node-agent-{_hash(node, 5)}", node, AGENT, 10 + 15 * i)
        for i, node in enumerate(NODES)
    ),
)


@dataclasses.dataclass(frozen=True)
class FleetHistory:
    time_zone: str
    days: tuple[datetime.date, ...]
    window: tuple[datetime.time, datetime.time]
    day_factor: dict[datetime.date, float]
    pods: tuple[FleetPod, ...] = PODS

    def window_bounds(self, day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
        tz = zoneinfo.ZoneInfo(self.time_zone)
        start = datetime.datetime.combine(day, self.window[0], tz)
        end = datetime.datetime.combine(day, self.window[1], tz)
        return start.astimezone(datetime.UTC), end.astimezone(datetime.UTC)


def shape(pod: FleetPod, minute: float) -> float:
    """The usage multiplier at ``minute`` after the window start: a ramp from 1 to 1.8 (or down from 1.8 to
    1), a 3× spike minute."""
    progress = min(1.0, max(0.0, minute / 90))
    ramp = 1.8 - 0.8 * progress if pod.ramp_down else 1.0 + 0.8 * progress
    spike = 3.0 if pod.spike_minute <= minute < pod.spike_minute + 1 else 1.0
    return ramp * spike


# --- the samples ---------------------------------------------------------------------------------


@dataclasses.dataclass
class DaySeries:
    """One day's samples as written (values parsed back from their text), per (pod name, container)."""

    cpu_counter: dict[tuple[str, str], Series]
    mem_bytes: dict[tuple[str, str], Series]
    times: dict[str, list[int]]  # per pod: its sample timestamps
    pod_info: dict[str, Series] = dataclasses.field(default_factory=dict)  # per pod: kube_pod_info (1)
    requests: dict[tuple[str, str, str], Series] = dataclasses.field(default_factory=dict)  # (pod, container, resource)
    allocatable: dict[tuple[str, str], Series] = dataclasses.field(default_factory=dict)  # (node, resource)


def _times(history: FleetHistory, pod: FleetPod, day: datetime.date) -> list[int]:
    t0 = int(history.window_bounds(day)[0].timestamp())
    return list(range(t0 + pod.start_minute * 60, t0 + pod.stop_minute * 60 + 1, SAMPLE_SECONDS))


def day_series(history: FleetHistory, day: datetime.date) -> DaySeries:
    t0 = int(history.window_bounds(day)[0].timestamp())
    factor = history.day_factor.get(day, 1.0)
    series = DaySeries({}, {}, {})
    whole_day = _times(history, FleetPod("", "", "", "", (), 0), day)
    for node, (cores, mib) in NODES.items():
        series.allocatable[(node, "cpu")] = [(ts, cores) for ts in whole_day]
        series.allocatable[(node, "memory")] = [(ts, float(mib * MIB)) for ts in whole_day]
    for pod in history.pods:
        times = _times(history, pod, day)
        series.times[pod.name] = times
        series.pod_info[pod.name] = [(ts, 1.0) for ts in times]
        for c in pod.containers:
            series.requests[(pod.name, c.name, "cpu")] = [(ts, c.request_cpu_m / 1000) for ts in times]
            series.requests[(pod.name, c.name, "memory")] = [(ts, float(c.request_mem_mib * MIB)) for ts in times]
            total, counter, gauge = 5000.0, [], []
            previous = None
            for ts in times:
                if previous is not None:
                    total += c.cpu * factor * shape(pod, (previous - t0) / 60) * (ts - previous)
                previous = ts
                counter.append((ts, float(f"{total:.6f}")))
                gauge.append((ts, float(f"{c.mem * factor * shape(pod, (ts - t0) / 60) * MIB:.1f}")))
            series.cpu_counter[(pod.name, c.name)] = counter
            series.mem_bytes[(pod.name, c.name)] = gauge
    return series


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def openmetrics_day(history: FleetHistory, day: datetime.date) -> Iterator[str]:
    key, value = CLUSTER_LABEL
    series = day_series(history, day)
    yield "# TYPE container_cpu_usage_seconds counter"
    for pod in history.pods:
        for c in pod.containers:
            labels = _labels(**{key: value}, namespace=pod.namespace, pod=pod.name, container=c.name)
            for ts, total in series.cpu_counter[(pod.name, c.name)]:
                yield f"container_cpu_usage_seconds_total{labels} {total:.6f} {ts}"
    yield "# TYPE container_memory_working_set_bytes gauge"
    for pod in history.pods:
        for c in pod.containers:
            labels = _labels(**{key: value}, namespace=pod.namespace, pod=pod.name, container=c.name)
            for ts, amount in series.mem_bytes[(pod.name, c.name)]:
                yield f"container_memory_working_set_bytes{labels} {amount:.1f} {ts}"
    yield "# TYPE kube_pod_container_resource_requests gauge"
    for pod in history.pods:
        for c in pod.containers:
            for resource, unit, amount in (
                ("cpu", "core", c.request_cpu_m / 1000),
                ("memory", "byte", c.request_mem_mib * MIB),
            ):
                labels = _labels(
                    **{key: value},
                    namespace=pod.namespace,
                    pod=pod.name,
                    container=c.name,
                    node=pod.node,
                    resource=resource,
                    unit=unit,
                )
                for ts in series.times[pod.name]:
                    yield f"kube_pod_container_resource_requests{labels} {amount} {ts}"
    yield "# TYPE kube_pod_info gauge"
    for pod in history.pods:
        labels = _labels(**{key: value}, namespace=pod.namespace, pod=pod.name, node=pod.node, uid=_hash(pod.name, 8))
        for ts in series.times[pod.name]:
            yield f"kube_pod_info{labels} 1 {ts}"
    yield "# TYPE kube_pod_status_ready gauge"
    for pod in history.pods:
        labels = _labels(**{key: value}, namespace=pod.namespace, pod=pod.name, condition="true")
        for ts in series.times[pod.name]:
            yield f"kube_pod_status_ready{labels} 1 {ts}"
    yield "# TYPE kube_pod_owner gauge"
    for pod in history.pods:
        if not pod.deployment:
            continue
        labels = _labels(
            **{key: value},
            namespace=pod.namespace,
            pod=pod.name,
            owner_kind="ReplicaSet",
            owner_name=replicaset(pod.namespace, pod.deployment),
            owner_is_controller="true",
        )
        for ts in series.times[pod.name]:
            yield f"kube_pod_owner{labels} 1 {ts}"
    yield "# TYPE kube_replicaset_owner gauge"
    whole_day = _times(history, FleetPod("", "", "", "", (), 0), day)
    for namespace, deployment in sorted({(p.namespace, p.deployment) for p in history.pods if p.deployment}):
        labels = _labels(
            **{key: value},
            namespace=namespace,
            replicaset=replicaset(namespace, deployment),
            owner_kind="Deployment",
            owner_name=deployment,
            owner_is_controller="true",
        )
        for ts in whole_day:
            yield f"kube_replicaset_owner{labels} 1 {ts}"
    yield "# TYPE kube_node_status_allocatable gauge"
    for node, (cores, mib) in NODES.items():
        for resource, unit, amount in (("cpu", "core", cores), ("memory", "byte", mib * MIB)):
            labels = _labels(**{key: value}, node=node, resource=resource, unit=unit)
            for ts in whole_day:
                yield f"kube_node_status_allocatable{labels} {amount} {ts}"
    yield "# EOF"


def write_openmetrics(history: FleetHistory, directory: Path) -> list[Path]:
    return write_day_files(directory, history.days, "fleet", lambda day: openmetrics_day(history, day))


# --- each backend's evaluation, replayed ---------------------------------------------------------


def steps(history: FleetHistory, day: datetime.date, step_seconds: int = 30, backend: str = "prometheus") -> list[int]:
    """The subquery's evaluation times over the day's window on ``backend`` (history_stats' rules)."""
    start, end = (int(bound.timestamp()) for bound in history.window_bounds(day))
    return _steps(end, end - start, step_seconds, backend)


def pod_usage_at(pod: FleetPod, series: DaySeries, t: int, kind: str, backend: str) -> float | None:
    """``sum by (namespace, pod)`` of the containers' usage at ``t`` (cores or bytes); None when absent."""
    values = []
    for c in pod.containers:
        if kind == "cpu":
            value = _rate_at(series.cpu_counter[(pod.name, c.name)], t, backend)
        else:
            value = _gauge_at(series.mem_bytes[(pod.name, c.name)], t, backend)
        if value is not None:
            values.append(value)
    return sum(values) if values else None


def _placed(pod: FleetPod, series: DaySeries, t: int, backend: str) -> bool:
    """``kube_pod_info{node}`` of the pod is seen at ``t`` (the instant selector's lookback)."""
    return _gauge_at(series.pod_info[pod.name], t, backend) is not None


@dataclasses.dataclass(frozen=True)
class Figures:
    """One pod's or node's day: the quantile the collection stores and the other statistics beside it."""

    p95: float
    p80: float
    maximum: float
    mean: float


def _figures(values: list[float], q: float) -> Figures:
    return Figures(quantile(q, values), quantile(0.80, values), max(values), sum(values) / len(values))


def expected_pod_figures(
    history: FleetHistory, day: datetime.date, *, q: float = 0.95, backend: str = "prometheus"
) -> dict[tuple[str, str, str], tuple[Figures, Figures]]:
    """Per (namespace, deployment, pod) of the cluster's namespaces: CPU (cores) and memory (MiB) figures."""
    series = day_series(history, day)
    expected = {}
    for pod in history.pods:
        if pod.namespace in EXCLUDED_NAMESPACES or not pod.deployment:
            continue
        cpu, mem = [], []
        for t in steps(history, day, backend=backend):
            value = pod_usage_at(pod, series, t, "cpu", backend)
            if value is not None:
                cpu.append(value)
            value = pod_usage_at(pod, series, t, "mem", backend)
            if value is not None:
                mem.append(value / MIB)
        expected[(pod.namespace, pod.deployment, pod.name)] = (_figures(cpu, q), _figures(mem, q))
    return expected


@dataclasses.dataclass(frozen=True)
class NodeExpected:
    cpu: Figures  # cores
    mem: Figures  # MiB
    request_cpu_m: int
    request_mem_mib: int
    allocatable_cpu_m: int
    allocatable_mem_mib: int


def expected_node_figures(
    history: FleetHistory, day: datetime.date, *, q: float = 0.95, backend: str = "prometheus"
) -> dict[str, NodeExpected]:
    """Per node: its pods' summed usage figures (every namespace), the largest summed requests, allocatable.

    At each step a pod counts on its node while its ``kube_pod_info`` is seen; its requests while its
    request series are seen too (``max_over_time`` of the per-step sums); allocatable is the largest
    sample in the window's range (left-open on VictoriaMetrics).
    """
    series = day_series(history, day)
    start, end = (int(bound.timestamp()) for bound in history.window_bounds(day))
    expected = {}
    for node in NODES:
        on_node = [pod for pod in history.pods if pod.node == node]
        cpu, mem, req_cpu, req_mem = [], [], [], []
        for t in steps(history, day, backend=backend):
            placed = [pod for pod in on_node if _placed(pod, series, t, backend)]
            usage = [pod_usage_at(pod, series, t, "cpu", backend) for pod in placed]
            if any(v is not None for v in usage):
                cpu.append(sum(v for v in usage if v is not None))
            usage = [pod_usage_at(pod, series, t, "mem", backend) for pod in placed]
            if any(v is not None for v in usage):
                mem.append(sum(v for v in usage if v is not None) / MIB)
            requests = {
                resource: [
                    value
                    for pod in placed
                    for c in pod.containers
                    if (value := _gauge_at(series.requests[(pod.name, c.name, resource)], t, backend)) is not None
                ]
                for resource in ("cpu", "memory")
            }
            if requests["cpu"]:
                req_cpu.append(sum(requests["cpu"]))
            if requests["memory"]:
                req_mem.append(sum(requests["memory"]))
        allocatable = {
            resource: max(v for _, v in _in_range(series.allocatable[(node, resource)], start, end, backend))
            for resource in ("cpu", "memory")
        }
        expected[node] = NodeExpected(
            cpu=_figures(cpu, q),
            mem=_figures(mem, q),
            request_cpu_m=round(max(req_cpu) * 1000),
            request_mem_mib=round(max(req_mem) / MIB),
            allocatable_cpu_m=round(allocatable["cpu"] * 1000),
            allocatable_mem_mib=round(allocatable["memory"] / MIB),
        )
    return expected
