"""Generated history of the cluster "fleet" for the per-pod and per-node figures, and their expected values.

The series (cAdvisor usage, kube-state-metrics requests, pod info with the node, owners, node
allocatable) carry ``k8s_cluster="fleet"`` and load into the suite's Prometheus beside the other
clusters' history (tests/servers/prometheus.py), so they never change those clusters' figures.

Shapes make every statistic differ: each pod's usage ramps up through the window and has one
short spike above its 95th percentile; a surge pod of ``web/worker`` runs only from minute 40 to
minute 65, its usage falling (so the 5 minutes its last sample is still looked back to hold its
lowest value); the daemon pods of ``kube-system`` count on their nodes but not as the cluster's pods
(the namespace is excluded by default). Expected figures are not formulas of the shape but
Prometheus' own evaluation replayed on the very samples written: the subquery's aligned steps,
``rate``'s extrapolation, the 5-minute lookback of instant selectors, and ``quantile_over_time``'s
interpolation (``expected_pod_figures`` / ``expected_node_figures``).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import math
import zoneinfo
from collections.abc import Iterator, Sequence
from pathlib import Path

SAMPLE_SECONDS = 30
MARGIN_MINUTES = 10
LOOKBACK_SECONDS = 300
RATE_SECONDS = 120
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

    cpu_counter: dict[tuple[str, str], list[tuple[int, float]]]
    mem_bytes: dict[tuple[str, str], list[tuple[int, float]]]
    times: dict[str, list[int]]  # per pod: its sample timestamps


def _times(history: FleetHistory, pod: FleetPod, day: datetime.date) -> list[int]:
    t0 = int(history.window_bounds(day)[0].timestamp())
    return list(range(t0 + pod.start_minute * 60, t0 + pod.stop_minute * 60 + 1, SAMPLE_SECONDS))


def day_series(history: FleetHistory, day: datetime.date) -> DaySeries:
    t0 = int(history.window_bounds(day)[0].timestamp())
    factor = history.day_factor.get(day, 1.0)
    series = DaySeries({}, {}, {})
    for pod in history.pods:
        times = _times(history, pod, day)
        series.times[pod.name] = times
        for c in pod.containers:
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
    """One file per day, like tests/servers/history.py (promtool builds each into blocks)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for day in history.days:
        path = directory / f"fleet-{day.isoformat()}.om"
        with path.open("w") as out:
            for line in openmetrics_day(history, day):
                out.write(line)
                out.write("\n")
        paths.append(path)
    return paths


# --- Prometheus' evaluation, replayed ------------------------------------------------------------


def quantile(q: float, values: Sequence[float]) -> float:
    """``quantile_over_time``: sort, rank q·(n−1), interpolate linearly between its neighbours."""
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    lower = max(0, math.floor(rank))
    upper = min(len(ordered) - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


def _rate(samples: list[tuple[int, float]], t: int) -> float | None:
    """``rate(x[2m])`` at ``t`` (Prometheus 2.x: both ends of the range included, extrapolated)."""
    start = t - RATE_SECONDS
    points = [(ts, v) for ts, v in samples if start <= ts <= t]
    if len(points) < 2:
        return None
    (first_t, first_v), (last_t, last_v) = points[0], points[-1]
    result = last_v - first_v
    to_start = float(first_t - start)
    to_end = float(t - last_t)
    sampled = float(last_t - first_t)
    average = sampled / (len(points) - 1)
    if result > 0 and first_v >= 0:
        to_start = min(to_start, sampled * (first_v / result))
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    return result * (interval / sampled) / RATE_SECONDS


def _gauge(samples: list[tuple[int, float]], t: int) -> float | None:
    """An instant selector at ``t``: the latest sample of the last 5 minutes."""
    found = None
    for ts, v in samples:
        if ts > t:
            break
        if ts >= t - LOOKBACK_SECONDS:
            found = v
    return found


def _present(times: list[int], t: int) -> bool:
    return any(t - LOOKBACK_SECONDS <= ts <= t for ts in times)


def steps(history: FleetHistory, day: datetime.date, step_seconds: int = 30) -> list[int]:
    """The subquery's evaluation times: multiples of the step in [end − window, end]."""
    start, end = (int(bound.timestamp()) for bound in history.window_bounds(day))
    first = start + (-start) % step_seconds
    return list(range(first, end + 1, step_seconds))


def pod_usage_at(pod: FleetPod, series: DaySeries, t: int, kind: str) -> float | None:
    """``sum by (namespace, pod)`` of the containers' usage at ``t`` (cores or MiB); None when absent."""
    values = []
    for c in pod.containers:
        if kind == "cpu":
            value = _rate(series.cpu_counter[(pod.name, c.name)], t)
        else:
            value = _gauge(series.mem_bytes[(pod.name, c.name)], t)
        if value is not None:
            values.append(value)
    return sum(values) if values else None


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
    history: FleetHistory, day: datetime.date, *, q: float = 0.95
) -> dict[tuple[str, str, str], tuple[Figures, Figures]]:
    """Per (namespace, deployment, pod) of the cluster's namespaces: CPU (cores) and memory (MiB) figures."""
    series = day_series(history, day)
    expected = {}
    for pod in history.pods:
        if pod.namespace in EXCLUDED_NAMESPACES or not pod.deployment:
            continue
        cpu, mem = [], []
        for t in steps(history, day):
            value = pod_usage_at(pod, series, t, "cpu")
            if value is not None:
                cpu.append(value)
            value = pod_usage_at(pod, series, t, "mem")
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


def expected_node_figures(history: FleetHistory, day: datetime.date, *, q: float = 0.95) -> dict[str, NodeExpected]:
    """Per node: its pods' summed usage figures (every namespace), the largest summed requests, allocatable."""
    series = day_series(history, day)
    expected = {}
    for node, (cores, mib) in NODES.items():
        on_node = [pod for pod in history.pods if pod.node == node]
        cpu, mem, req_cpu, req_mem = [], [], [], []
        for t in steps(history, day):
            placed = [pod for pod in on_node if _present(series.times[pod.name], t)]
            usage = [pod_usage_at(pod, series, t, "cpu") for pod in placed]
            if any(v is not None for v in usage):
                cpu.append(sum(v for v in usage if v is not None))
            usage = [pod_usage_at(pod, series, t, "mem") for pod in placed]
            if any(v is not None for v in usage):
                mem.append(sum(v for v in usage if v is not None) / MIB)
            if placed:
                req_cpu.append(sum(c.request_cpu_m / 1000 for pod in placed for c in pod.containers))
                req_mem.append(sum(c.request_mem_mib * MIB for pod in placed for c in pod.containers))
        expected[node] = NodeExpected(
            cpu=_figures(cpu, q),
            mem=_figures(mem, q),
            request_cpu_m=round(max(req_cpu) * 1000),
            request_mem_mib=round(max(req_mem) / MIB),
            allocatable_cpu_m=round(cores * 1000),
            allocatable_mem_mib=mib,
        )
    return expected
