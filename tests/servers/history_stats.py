"""The statistics of the generated history, computed from its samples the way each backend evaluates them.

Reads the very lines ``openmetrics_day`` writes (the samples Prometheus and VictoriaMetrics hold),
then evaluates DESIGN §5.2 step by step, independently of the query text: the subquery's steps, the
gauges' lookback, ``rate(…[2m])``, the average (or maximum) over a Deployment's pods, usage ÷ limit,
and the quantile over the steps with Prometheus' definition (rank ``q × (n − 1)``, linear
interpolation between neighbours). Where the two backends differ, ``backend`` says which rules apply:

- Prometheus 2.42: a subquery's steps are the multiples of the step in [end − window, end]; a range
  ``[r]`` holds the samples in [t − r, t]; ``rate`` extrapolates (and never below a counter's zero);
  a gauge is seen up to 5 minutes after its last sample (a sample exactly 5 minutes old included).
- VictoriaMetrics: steps and ranges are left-open (end − window, end]; ``rate`` is the increase from
  the last sample before the range to the last one in it, over their time distance; a gauge is seen
  up to two sample intervals after its last sample.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence

from tests.servers.history import SAMPLE_SECONDS, Deployment, History, openmetrics_day

RATE_RANGE = 120
PROMETHEUS_LOOKBACK = 300
VM_LOOKBACK = 2 * SAMPLE_SECONDS
LINE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+) (?P<ts>\d+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')

Series = list[tuple[int, float]]


def quantile(q: float, values: Sequence[float]) -> float:
    """Prometheus' ``quantile_over_time``: rank q × (n − 1) in the sorted values, linear in between."""
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    weight = rank - low
    return ordered[low] * (1 - weight) + ordered[high] * weight


@dataclasses.dataclass(frozen=True)
class ContainerStats:
    """One row's statistics: values per step, then the figures DESIGN §5.2 stores."""

    cpu_steps: list[float]  # aggregate over pods of the CPU rate at each step (cores)
    mem_steps: list[float]  # MiB
    cpu_pct_steps: list[float]
    mem_pct_steps: list[float]
    request_cpu_m: int
    request_mem_mib: int
    limit_cpu_m: int | None
    limit_mem_mib: int | None
    pod_count: int
    quantile: float

    @property
    def p95_cpu_cores(self) -> float:
        return quantile(self.quantile, self.cpu_steps)

    @property
    def p95_mem_mib(self) -> float:
        return quantile(self.quantile, self.mem_steps)

    @property
    def p95_cpu_pct(self) -> float | None:
        return quantile(self.quantile, self.cpu_pct_steps) if self.cpu_pct_steps else None

    @property
    def p95_mem_pct(self) -> float | None:
        return quantile(self.quantile, self.mem_pct_steps) if self.mem_pct_steps else None


class DaySamples:
    """One day's samples of one history, by metric and pod."""

    def __init__(self, history: History, day: datetime.date) -> None:
        self.history = history
        self.day = day
        self.series: dict[tuple[str, str, str, str], Series] = defaultdict(list)  # (metric, pod, container, resource)
        for line in openmetrics_day(history, day):
            match = LINE.match(line)
            if match is None:
                continue
            labels = dict(LABEL.findall(match["labels"]))
            key = (match["name"], labels.get("pod", ""), labels.get("container", ""), labels.get("resource", ""))
            self.series[key].append((int(match["ts"]), float(match["value"])))

    def get(self, metric: str, pod: str, container: str = "", resource: str = "") -> Series:
        return self.series.get((metric, pod, container, resource), [])


def _steps(end: int, window: int, step: int, backend: str) -> list[int]:
    first = end - window
    first = first + (-first) % step
    if backend != "prometheus" and first == end - window:
        first += step
    return list(range(first, end + 1, step))


def _in_range(series: Series, start: int, end: int, backend: str) -> Series:
    if backend == "prometheus":
        return [(t, v) for t, v in series if start <= t <= end]
    return [(t, v) for t, v in series if start < t <= end]


def _gauge_at(series: Series, t: int, backend: str) -> float | None:
    """An instant selector at ``t``: the latest sample in [t − 5 min, t] on Prometheus 2.x (a sample exactly
    5 minutes old still counts), in (t − two sample intervals, t] on VictoriaMetrics."""
    if backend == "prometheus":
        seen = [(ts, v) for ts, v in series if t - PROMETHEUS_LOOKBACK <= ts <= t]
    else:
        seen = [(ts, v) for ts, v in series if t - VM_LOOKBACK < ts <= t]
    return seen[-1][1] if seen else None


def _rate_at(series: Series, t: int, backend: str) -> float | None:
    if backend == "prometheus":
        points = _in_range(series, t - RATE_RANGE, t, backend)
        if len(points) < 2:
            return None
        (first_t, first_v), (last_t, last_v) = points[0], points[-1]
        delta = last_v - first_v
        sampled = last_t - first_t
        average = sampled / (len(points) - 1)
        to_start = first_t - (t - RATE_RANGE)
        to_end = t - last_t
        if delta > 0 and first_v >= 0:
            to_start = min(to_start, sampled * (first_v / delta))
        threshold = average * 1.1
        interval = sampled + (to_start if to_start < threshold else average / 2)
        interval += to_end if to_end < threshold else average / 2
        return delta * (interval / sampled) / RATE_RANGE
    before = [(ts, v) for ts, v in series if ts <= t - RATE_RANGE]
    points = _in_range(series, t - RATE_RANGE, t, backend)
    if not points:
        return None
    if before and before[-1][0] > t - RATE_RANGE - VM_LOOKBACK:
        prev_t, prev_v = before[-1]
    elif len(points) >= 2:
        prev_t, prev_v = points[0]
    else:
        return None
    last_t, last_v = points[-1]
    return (last_v - prev_v) / (last_t - prev_t)


def _max_in_window(series: Series, start: int, end: int, backend: str) -> float | None:
    points = _in_range(series, start, end, backend)
    return max(v for _, v in points) if points else None


def container_stats(
    samples: DaySamples,
    deployment: Deployment,
    container: str,
    *,
    backend: str = "prometheus",
    quantile_q: float = 0.95,
    aggregation: str = "avg",
    step: int = 30,
    window_end: datetime.datetime | None = None,
) -> ContainerStats:
    """What DESIGN §5.2 stores for (deployment, container) on the samples' day, on ``backend``."""
    history = samples.history
    start, end = history.window_bounds(samples.day)
    if window_end is not None:
        end = window_end
    t_start, t_end = int(start.timestamp()), int(end.timestamp())
    window = t_end - t_start
    series = samples.series
    pods = sorted({pod for (_, pod, name, _) in series if name == container and _owned(samples, deployment, pod)})
    aggregate: Callable[[list[float]], float] = max if aggregation == "max" else (lambda xs: sum(xs) / len(xs))
    limits: dict[str, dict[str, float | None]] = {
        resource: {
            pod: _max_in_window(
                samples.get("kube_pod_container_resource_limits", pod, container, resource), t_start, t_end, backend
            )
            for pod in pods
        }
        for resource in ("cpu", "memory")
    }
    cpu_steps: list[float] = []
    mem_steps: list[float] = []
    cpu_pct: list[float] = []
    mem_pct: list[float] = []
    ready_counts: list[int] = []
    for t in _steps(t_end, window, step, backend):
        cpu = {
            pod: _rate_at(samples.get("container_cpu_usage_seconds_total", pod, container), t, backend) for pod in pods
        }
        mem = {
            pod: _gauge_at(samples.get("container_memory_working_set_bytes", pod, container), t, backend)
            for pod in pods
        }
        cpu_now = {pod: v for pod, v in cpu.items() if v is not None}
        mem_now = {pod: v for pod, v in mem.items() if v is not None}
        if cpu_now:
            cpu_steps.append(aggregate(list(cpu_now.values())))
        if mem_now:
            mem_steps.append(aggregate(list(mem_now.values())) / 1048576)
        cpu_ratios = [v / lim * 100 for pod, v in cpu_now.items() if (lim := limits["cpu"][pod])]
        mem_ratios = [v / lim * 100 for pod, v in mem_now.items() if (lim := limits["memory"][pod])]
        if cpu_ratios:
            cpu_pct.append(aggregate(cpu_ratios))
        if mem_ratios:
            mem_pct.append(aggregate(mem_ratios))
        ready_counts.append(
            sum(
                1
                for pod in _deployment_pods(samples, deployment)
                if _gauge_at(samples.get("kube_pod_status_ready", pod), t, backend)
            )
        )

    def maximum(metric: str, resource: str) -> float | None:
        values = [
            v
            for pod in pods
            for _, v in _in_range(samples.get(metric, pod, container, resource), t_end - window, t_end, backend)
        ]
        return max(values) if values else None

    def scaled(value: float | None, factor: float) -> int | None:
        return None if value is None else round(value * factor)

    return ContainerStats(
        cpu_steps=cpu_steps,
        mem_steps=mem_steps,
        cpu_pct_steps=cpu_pct,
        mem_pct_steps=mem_pct,
        request_cpu_m=scaled(maximum("kube_pod_container_resource_requests", "cpu"), 1000) or 0,
        request_mem_mib=scaled(maximum("kube_pod_container_resource_requests", "memory"), 1 / 1048576) or 0,
        limit_cpu_m=scaled(maximum("kube_pod_container_resource_limits", "cpu"), 1000),
        limit_mem_mib=scaled(maximum("kube_pod_container_resource_limits", "memory"), 1 / 1048576),
        pod_count=min(ready_counts),
        quantile=quantile_q,
    )


def _named_by(deployment: Deployment, pod: str) -> bool:
    return any(pod == name or pod.startswith(name + "-") for name in deployment.pod_names)


def _owned(samples: DaySamples, deployment: Deployment, pod: str) -> bool:
    """Whether ``pod`` belongs to ``deployment``: its own names, else the name pattern (a pod another
    Deployment of the namespace owns by name is that one's, whatever it looks like)."""
    if deployment.pod_names:
        return _named_by(deployment, pod)
    if any(
        other.namespace == deployment.namespace and other.pod_names and _named_by(other, pod)
        for other in samples.history.deployments
    ):
        return False
    return bool(re.fullmatch(re.escape(deployment.name) + r"-[a-z0-9]{5,10}-[a-z0-9]{5}", pod))


def _deployment_pods(samples: DaySamples, deployment: Deployment) -> list[str]:
    return sorted(
        {
            pod
            for (metric, pod, _, _) in samples.series
            if metric == "kube_pod_status_ready" and _owned(samples, deployment, pod)
        }
    )
