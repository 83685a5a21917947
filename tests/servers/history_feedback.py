"""Safety-feedback series beside the generated history: OOM kills and CPU throttling (issue 11).

``openmetrics_feedback_day`` writes, for every pod of a ``History`` (tests/servers/history.py), cAdvisor's
``container_oom_events_total`` and ``container_cpu_cfs_periods_total`` /
``container_cpu_cfs_throttled_periods_total`` over the same sample times, in a file of its own per day
(promtool makes blocks that overlap the usage history's; Prometheus merges them). ``FeedbackSpec`` says
which container is OOM-killed how often and which is throttled how much on which day; the expected
statistics are the spec's numbers themselves: ``expected_oom_kills`` and ``expected_throttled_pct``.

The ``feedback_prometheus`` fixture serves a cluster ("feedback") whose services exercise every guard of
the refresh: an OOM kill off the source day, throttling, a service with too few days, a request that a
refresh must not lower by more than the clamp.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import OUTPUT, require_binary, stop_process
from tests.servers.history import (
    SAMPLE_SECONDS,
    Container,
    Deployment,
    History,
    _labels,
    _pod_lives,
    build_tsdb,
    mean_multiplier,
    write_day_files,
    write_openmetrics,
)

CFS_PERIODS_PER_SECOND = 10  # the kernel's default 100 ms CFS period
OOM_MINUTE = 40  # minutes after the window start when an OOM kill is counted


@dataclasses.dataclass(frozen=True)
class FeedbackSpec:
    """(namespace, deployment, container, day) → OOM kills of pod 0, and → throttled share (0–1) of every pod."""

    oom_kills: dict[tuple[str, str, str, datetime.date], int] = dataclasses.field(default_factory=dict)
    throttled: dict[tuple[str, str, str, datetime.date], float] = dataclasses.field(default_factory=dict)


def expected_oom_kills(spec: FeedbackSpec, deployment: Deployment, container: Container, day: datetime.date) -> int:
    return spec.oom_kills.get((deployment.namespace, deployment.name, container.name, day), 0)


def expected_throttled_pct(
    spec: FeedbackSpec, deployment: Deployment, container: Container, day: datetime.date
) -> float:
    return spec.throttled.get((deployment.namespace, deployment.name, container.name, day), 0.0) * 100


def openmetrics_feedback_day(history: History, spec: FeedbackSpec, day: datetime.date) -> Iterator[str]:
    """One day's feedback families (contiguous, counters declared without ``_total``, a final ``# EOF``)."""
    key, value = history.cluster_label
    start, _ = history.window_bounds(day)
    oom_at = int(start.timestamp()) + OOM_MINUTE * 60
    lives = [life for dep in history.deployments for life in _pod_lives(history, dep, day)]

    def times(start_ts: int, stop_ts: int) -> range:
        return range(start_ts - start_ts % SAMPLE_SECONDS, stop_ts + 1, SAMPLE_SECONDS)

    yield "# TYPE container_oom_events counter"
    for life in lives:
        dep = life.deployment
        for c in dep.containers:
            kills = expected_oom_kills(spec, dep, c, day) if life.index == 0 else 0
            labels = _labels(**{key: value}, namespace=dep.namespace, pod=life.name, container=c.name)
            for ts in times(life.start, life.stop):
                yield f"container_oom_events_total{labels} {kills if ts >= oom_at else 0} {ts}"
    for family, throttled_only in (("container_cpu_cfs_periods", False), ("container_cpu_cfs_throttled_periods", True)):
        yield f"# TYPE {family} counter"
        for life in lives:
            dep = life.deployment
            for c in dep.containers:
                share = spec.throttled.get((dep.namespace, dep.name, c.name, day), 0.0) if throttled_only else 1.0
                labels = _labels(**{key: value}, namespace=dep.namespace, pod=life.name, container=c.name)
                first = life.start - life.start % SAMPLE_SECONDS
                for ts in times(life.start, life.stop):
                    yield f"{family}_total{labels} {(ts - first) * CFS_PERIODS_PER_SECOND * share:.3f} {ts}"
    yield "# EOF"


def write_feedback_openmetrics(history: History, spec: FeedbackSpec, directory: Path) -> list[Path]:
    name = f"{history.cluster_label[1]}-feedback"
    return write_day_files(directory, history.days, name, lambda day: openmetrics_feedback_day(history, spec, day))


# --- the "feedback" cluster -----------------------------------------------------------------------

FEEDBACK_LABEL = "fb"


def _c(name: str, cpu_peak: float, mem_peak: float, limits: tuple[int, int] = (1000, 1024)) -> Container:
    return Container(
        name=name,
        cpu_base=cpu_peak / 3,
        cpu_peak=cpu_peak,
        mem_base=mem_peak / 2,
        mem_peak=mem_peak,
        request_cpu_m=250,
        request_mem_mib=256,
        limit_cpu_m=limits[0],
        limit_mem_mib=limits[1],
    )


FEEDBACK_DEPLOYMENTS = (
    Deployment("shop", "api", 4, (_c("api", 0.15, 300.0),)),  # OOM-killed on a day other than the source day
    Deployment("shop", "worker", 2, (_c("worker", 0.4, 100.0),)),  # throttled on one day
    Deployment("shop", "calm", 2, (_c("calm", 0.1, 100.0),)),  # a row whose requests a refresh must not halve
)
# Seen only on the last two days: too few days of data.
FRESH_DEPLOYMENTS = (Deployment("shop", "fresh", 2, (_c("fresh", 0.2, 200.0),)),)


@dataclasses.dataclass(frozen=True)
class FeedbackPrometheus:
    url: str
    history: History
    fresh: History
    spec: FeedbackSpec

    @property
    def days(self) -> tuple[datetime.date, ...]:
        return self.history.days


def feedback_histories(days: tuple[datetime.date, ...], *, time_zone: str, window, label_key: str):
    factors = {days[0]: 1.0, days[1]: 2.0, days[2]: 1.25, days[3]: 1.0}  # the second day is every service's busiest
    history = History((label_key, FEEDBACK_LABEL), time_zone, days, window, FEEDBACK_DEPLOYMENTS, factors, flat=True)
    fresh = History((label_key, FEEDBACK_LABEL), time_zone, days[2:], window, FRESH_DEPLOYMENTS, {}, flat=True)
    spec = FeedbackSpec(
        oom_kills={("shop", "api", "api", days[2]): 1},
        throttled={("shop", "worker", "worker", days[0]): 0.25, ("shop", "worker", "worker", days[3]): 0.05},
    )
    return history, fresh, spec


@pytest.fixture(scope="session")
def feedback_prometheus(tmp_path_factory) -> Iterator[FeedbackPrometheus]:
    """A Prometheus of its own with four days of the "feedback" cluster: usage plus OOM and throttling."""
    from tests.servers.prometheus import CLUSTER_LABEL, TIME_ZONE, WINDOW, start_prometheus

    promtool = require_binary("promtool")
    root = tmp_path_factory.mktemp("prometheus-feedback")
    today = datetime.datetime.now(datetime.UTC).date()
    days = tuple(today - datetime.timedelta(days=n) for n in (5, 4, 3, 2))
    history, fresh, spec = feedback_histories(days, time_zone=TIME_ZONE, window=WINDOW, label_key=CLUSTER_LABEL)
    files = [
        *write_openmetrics(history, root / "usage"),
        *write_openmetrics(fresh, root / "fresh"),
        *write_feedback_openmetrics(history, spec, root / "feedback"),
        *write_feedback_openmetrics(fresh, spec, root / "feedback-fresh"),
    ]
    build_tsdb(files, root / "data", promtool=promtool)
    OUTPUT.mkdir(exist_ok=True)
    process, url = start_prometheus(root / "data", log_path=OUTPUT / "prometheus-feedback.log")
    try:
        yield FeedbackPrometheus(url=url, history=history, fresh=fresh, spec=spec)
    finally:
        stop_process(process)


def expected_cpu_cores(history: History, deployment: Deployment, container: Container, day: datetime.date) -> float:
    """P95 CPU of a ``flat`` history: the plateau's peak × the day's factor × the mean pod multiplier."""
    assert history.flat
    return container.cpu_peak * history.factor(day) * mean_multiplier(deployment)


def expected_mem_mib(history: History, deployment: Deployment, container: Container, day: datetime.date) -> float:
    """P95 memory of a ``flat`` history, like ``expected_cpu_cores``."""
    assert history.flat
    return container.mem_peak * history.factor(day) * mean_multiplier(deployment)
