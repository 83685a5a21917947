"""Generated Prometheus history (OpenMetrics, one file per day) and the shape behind it.

The tests and bench/collect build a real Prometheus TSDB from these files with
``promtool tsdb create-blocks-from openmetrics`` (and import the same lines into VictoriaMetrics).
The expected statistics are computed from these very samples (tests/servers/history_stats.py, the
way each backend evaluates them), never read back from a backend.

Shape of one day (per pod and container, minutes after the peak window's start in the cluster's time
zone): usage sits at ``base`` until minute 20, *ramps* linearly up to ``peak`` at minute 50, falls back
to ``base`` by minute 60; two one-minute *spikes* at 1.5 × ``peak`` (minutes 30 and 75) lie above the
95th percentile. So the window's P95, P80, maximum and mean all differ. Every level is multiplied by
the day's factor and by the pod's own multiplier ``1 + 0.1 × index``. A Deployment may have a *surge
pod* (one extra pod for a few minutes, so the ready-pod count is not constant) and a *rollout* (every
pod replaced, 5 minutes of overlap, optionally with a new CPU limit). Samples cover the window plus
``margin`` minutes on both sides at a 30 s interval (counters need that for ``rate(…[2m])``; gauges
for the 5 min lookback).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import subprocess
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SAMPLE_SECONDS = 30
RAMP = (20, 50, 60)  # minutes after the window start: rise from base, peak, back to base
FLAT_PLATEAU = (30, 50)  # minutes after the window start at peak in a ``flat`` history
SPIKES = (30, 75)  # minutes after the window start of the one-minute spikes
SPIKE_MINUTES = 1
SPIKE_FACTOR = 1.5  # a spike's level, × peak
MIB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Container:
    name: str
    cpu_base: float  # cores
    cpu_peak: float
    mem_base: float  # MiB
    mem_peak: float
    request_cpu_m: int
    request_mem_mib: int
    limit_cpu_m: int | None
    limit_mem_mib: int | None
    # The CPU limit of the pods a rollout brings (None: unchanged), so the Deployment's pods' limits differ.
    rollout_limit_cpu_m: int | None = None

    def limits(self, generation: int) -> tuple[int | None, int | None]:
        if generation and self.rollout_limit_cpu_m is not None:
            return self.rollout_limit_cpu_m, self.limit_mem_mib
        return self.limit_cpu_m, self.limit_mem_mib


@dataclasses.dataclass(frozen=True)
class Deployment:
    namespace: str
    name: str
    pods: int
    containers: tuple[Container, ...]
    # Pod names that do not follow <deployment>-<hash>-<suffix>; mapped only through kube_pod_owner.
    pod_names: tuple[str, ...] = ()
    # False: no kube_pod_owner / kube_replicaset_owner series (the pod-name pattern must map them).
    owner_series: bool = True
    # Minutes after the window start when a rollout replaces every pod (5 min surge overlap).
    rollout_minute: int | None = None
    # Minutes after the window start between which one extra pod (index ``pods``) runs and is ready.
    surge: tuple[int, int] | None = None

    def pod_name(self, index: int, generation: int = 0) -> str:
        if self.pod_names and index >= len(self.pod_names):
            return f"{self.pod_names[0]}-surge-{index}"
        if self.pod_names:
            return self.pod_names[index] if generation == 0 else f"{self.pod_names[index]}-g{generation}"
        return f"{self.name}-{self.replicaset_hash(generation)}-{_suffix(self.name, index, generation)}"

    def replicaset_hash(self, generation: int = 0) -> str:
        digest = hashlib.sha1(f"{self.namespace}/{self.name}/{generation}".encode()).hexdigest()
        return "".join("bcdfghjklmnpqrstvwxz2456789"[int(c, 16)] for c in digest[:10])

    def replicaset(self, generation: int = 0) -> str:
        return f"{self.name}-{self.replicaset_hash(generation)}"


def _suffix(name: str, index: int, generation: int) -> str:
    digest = hashlib.sha1(f"{name}/{index}/{generation}".encode()).hexdigest()
    return "".join("bcdfghjklmnpqrstvwxz2456789"[int(c, 16)] for c in digest[:5])


@dataclasses.dataclass(frozen=True)
class History:
    cluster_label: tuple[str, str]  # the external label every series carries, e.g. ("k8s_cluster", "prod")
    time_zone: str
    days: tuple[datetime.date, ...]
    window: tuple[datetime.time, datetime.time]
    deployments: tuple[Deployment, ...]
    day_factor: dict[datetime.date, float] = dataclasses.field(default_factory=dict)
    margin_minutes: int = 10
    # A flat plateau instead of the ramp and spikes: usage at ``peak`` from minute 30 to 50, else at
    # ``base``, so P95 = peak exactly (the safety-feedback history, whose tests are about OOM kills and
    # throttling, not about telling statistics apart: tests/servers/history_feedback.py).
    flat: bool = False

    def factor(self, day: datetime.date) -> float:
        return self.day_factor.get(day, 1.0)

    def window_bounds(self, day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
        tz = zoneinfo.ZoneInfo(self.time_zone)
        start = datetime.datetime.combine(day, self.window[0], tz)
        end = datetime.datetime.combine(day, self.window[1], tz)
        return start.astimezone(datetime.UTC), end.astimezone(datetime.UTC)


def pod_multiplier(index: int) -> float:
    return 1.0 + 0.1 * index


def ramp(minute: float) -> float:
    """0 at base, 1 at peak: the ramp up, the top and the fall (spikes aside)."""
    rise, top, fall = RAMP
    if rise <= minute < top:
        return (minute - rise) / (top - rise)
    if top <= minute < fall:
        return (fall - minute) / (fall - top)
    return 0.0


def level(
    history: History, deployment: Deployment, container: Container, day: datetime.date, minute: float, kind: str
) -> float:
    """Per-pod usage (before the pod multiplier) at ``minute`` after the window start."""
    base, peak = (container.cpu_base, container.cpu_peak) if kind == "cpu" else (container.mem_base, container.mem_peak)
    if history.flat:
        value = peak if FLAT_PLATEAU[0] <= minute < FLAT_PLATEAU[1] else base
    elif any(spike <= minute < spike + SPIKE_MINUTES for spike in SPIKES):
        value = peak * SPIKE_FACTOR
    else:
        value = base + (peak - base) * ramp(minute)
    return value * history.factor(day)


def mean_multiplier(deployment: Deployment) -> float:
    return sum(pod_multiplier(i) for i in range(deployment.pods)) / deployment.pods


# --- OpenMetrics --------------------------------------------------------------------------------


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


@dataclasses.dataclass
class _PodLife:
    deployment: Deployment
    index: int
    generation: int
    name: str
    start: int  # unix seconds (first sample)
    stop: int  # unix seconds (last sample, inclusive)


def _pod_lives(history: History, deployment: Deployment, day: datetime.date) -> list[_PodLife]:
    start, end = history.window_bounds(day)
    first = int(start.timestamp()) - history.margin_minutes * 60
    last = int(end.timestamp()) + history.margin_minutes * 60
    lives = []
    if deployment.surge is not None:
        t0 = int(start.timestamp())
        index = deployment.pods
        lives.append(
            _PodLife(
                deployment,
                index,
                0,
                deployment.pod_name(index),
                t0 + deployment.surge[0] * 60,
                t0 + deployment.surge[1] * 60,
            )
        )
    for i in range(deployment.pods):
        if deployment.rollout_minute is None:
            lives.append(_PodLife(deployment, i, 0, deployment.pod_name(i, 0), first, last))
        else:
            switch = int(start.timestamp()) + deployment.rollout_minute * 60
            lives.append(_PodLife(deployment, i, 0, deployment.pod_name(i, 0), first, switch))
            lives.append(_PodLife(deployment, i, 1, deployment.pod_name(i, 1), switch - 300, last))
    return lives


def first_sample(history: History, day: datetime.date) -> int:
    """The first sample's time (unix seconds) of the pods that run all day."""
    start, _ = history.window_bounds(day)
    return int(start.timestamp()) - history.margin_minutes * 60


def openmetrics_day(history: History, day: datetime.date) -> Iterator[str]:
    """The lines of one day's OpenMetrics file (families contiguous, a final ``# EOF``)."""
    key, value = history.cluster_label
    start, _ = history.window_bounds(day)
    t0 = int(start.timestamp())
    lives = [life for dep in history.deployments for life in _pod_lives(history, dep, day)]

    def times(life: _PodLife) -> range:
        return range(life.start - life.start % SAMPLE_SECONDS, life.stop + 1, SAMPLE_SECONDS)

    yield "# TYPE container_cpu_usage_seconds counter"
    for life in lives:
        dep = life.deployment
        for c in dep.containers:
            labels = _labels(**{key: value}, namespace=dep.namespace, pod=life.name, container=c.name)
            total = 1000.0 if life.generation == 0 and life.start == first_sample(history, day) else 0.0
            previous = None
            for ts in times(life):
                if previous is not None:
                    minute = (previous - t0) / 60
                    total += level(history, dep, c, day, minute, "cpu") * pod_multiplier(life.index) * (ts - previous)
                previous = ts
                yield f"container_cpu_usage_seconds_total{labels} {total:.6f} {ts}"
    yield "# TYPE container_memory_working_set_bytes gauge"
    for life in lives:
        dep = life.deployment
        for c in dep.containers:
            labels = _labels(**{key: value}, namespace=dep.namespace, pod=life.name, container=c.name)
            for ts in times(life):
                mib = level(history, dep, c, day, (ts - t0) / 60, "mem") * pod_multiplier(life.index)
                yield f"container_memory_working_set_bytes{labels} {mib * MIB:.1f} {ts}"
    for family, field in (
        ("kube_pod_container_resource_requests", "request"),
        ("kube_pod_container_resource_limits", "limit"),
    ):
        yield f"# TYPE {family} gauge"
        for life in lives:
            dep = life.deployment
            for c in dep.containers:
                if field == "limit":
                    cpu_m, mem = c.limits(life.generation)
                else:
                    cpu_m, mem = c.request_cpu_m, c.request_mem_mib
                for resource, unit_name, amount in (
                    ("cpu", "core", None if cpu_m is None else cpu_m / 1000),
                    ("memory", "byte", None if mem is None else mem * MIB),
                ):
                    if amount is None:
                        continue
                    labels = _labels(
                        **{key: value},
                        namespace=dep.namespace,
                        pod=life.name,
                        container=c.name,
                        node="node-1",
                        resource=resource,
                        unit=unit_name,
                    )
                    for ts in times(life):
                        yield f"{family}{labels} {amount} {ts}"
    yield "# TYPE kube_pod_status_ready gauge"
    for life in lives:
        dep = life.deployment
        labels = _labels(**{key: value}, namespace=dep.namespace, pod=life.name, condition="true")
        for ts in times(life):
            yield f"kube_pod_status_ready{labels} 1 {ts}"
    yield "# TYPE kube_pod_owner gauge"
    for life in lives:
        dep = life.deployment
        if not dep.owner_series:
            continue
        labels = _labels(
            **{key: value},
            namespace=dep.namespace,
            pod=life.name,
            owner_kind="ReplicaSet",
            owner_name=dep.replicaset(life.generation),
            owner_is_controller="true",
        )
        for ts in times(life):
            yield f"kube_pod_owner{labels} 1 {ts}"
    yield "# TYPE kube_replicaset_owner gauge"
    for dep in history.deployments:
        if not dep.owner_series:
            continue
        dep_lives = [life for life in lives if life.deployment is dep]
        for generation in sorted({life.generation for life in dep_lives}):
            span = [life for life in dep_lives if life.generation == generation]
            first = min(life.start for life in span)
            last = max(life.stop for life in span)
            labels = _labels(
                **{key: value},
                namespace=dep.namespace,
                replicaset=dep.replicaset(generation),
                owner_kind="Deployment",
                owner_name=dep.name,
                owner_is_controller="true",
            )
            for ts in range(first - first % SAMPLE_SECONDS, last + 1, SAMPLE_SECONDS):
                yield f"kube_replicaset_owner{labels} 1 {ts}"
    yield "# EOF"


def write_day_files(
    directory: Path, days: Iterable[datetime.date], name: str, lines: Callable[[datetime.date], Iterable[str]]
) -> list[Path]:
    """One OpenMetrics file per day, ``{name}-{day}.om`` holding ``lines(day)``: promtool builds each into blocks."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for day in days:
        path = directory / f"{name}-{day.isoformat()}.om"
        with path.open("w") as out:
            out.writelines(line + "\n" for line in lines(day))
        paths.append(path)
    return paths


def write_openmetrics(history: History, directory: Path) -> list[Path]:
    return write_day_files(directory, history.days, history.cluster_label[1], lambda day: openmetrics_day(history, day))


def build_tsdb(files: Sequence[Path], data_dir: Path, *, promtool: str = "promtool", parallel: int = 2) -> None:
    """Turn OpenMetrics files into TSDB blocks (one promtool per file, ``parallel`` at a time)."""
    data_dir.mkdir(parents=True, exist_ok=True)

    def one(path: Path) -> None:
        result = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(path), str(data_dir)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"promtool failed on {path.name}: {result.stderr[-2000:]}")

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(one, files))
