"""PromQL text of the daily-peak statistics (DESIGN §5.2). Pure functions: settings in, text out.

Every statistic is one instant query evaluated at the window's end, over a subquery of the
window's length with an explicit step, so Prometheus and VictoriaMetrics agree. Pods map to
Deployments through ``kube_pod_owner`` (ReplicaSet) joined with ``kube_replicaset_owner``
(Deployment); pods without those series fall back to the name pattern
``<deployment>-<hash>-<suffix>``. Rows are per container; ``POD`` and empty names are ignored.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

# <deployment>-<pod-template-hash>-<5 characters>: the names a ReplicaSet gives its pods.
POD_NAME_PATTERN = "(.+)-[a-z0-9]{5,10}-[a-z0-9]{5}"
MIB = 1048576
NON_EMPTY_CONTAINER = 'container!=""'
REQUESTS = "kube_pod_container_resource_requests"
LIMITS = "kube_pod_container_resource_limits"

# Statistics of one day, in the order they are queried.
CONTAINER_STATISTICS = (
    "p95_cpu_cores",
    "p95_mem_mib",
    "p95_cpu_pct",
    "p95_mem_pct",
    "request_cpu_m",
    "request_mem_mib",
    "limit_cpu_m",
    "limit_mem_mib",
)
# Safety feedback per container over the window (issue 11): OOM kills and the % of CPU periods throttled.
FEEDBACK_STATISTICS = ("oom_kills", "throttled_pct")
STATISTICS = (*CONTAINER_STATISTICS, "pod_count", *FEEDBACK_STATISTICS)


@dataclasses.dataclass(frozen=True)
class QuerySettings:
    """What shapes the query text: the cluster's filter, namespaces and peak statistic settings."""

    label_key: str = ""
    label_value: str = ""
    namespaces: tuple[str, ...] = ()
    excluded_namespaces: tuple[str, ...] = ()
    quantile: float = 0.95
    aggregation: str = "avg"
    step_seconds: int = 30
    window_seconds: int = 5400


def quote(value: str) -> str:
    """A PromQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _regex_union(values: Sequence[str]) -> str:
    return "|".join(re.escape(value) for value in values)


def selector(settings: QuerySettings, *matchers: str) -> str:
    """Label matchers for one metric: the cluster's external label, its namespaces, then ``matchers``."""
    parts: list[str] = []
    if settings.label_key:
        parts.append(f"{settings.label_key}={quote(settings.label_value)}")
    if settings.namespaces:
        parts.append(f"namespace=~{quote(_regex_union(settings.namespaces))}")
    elif settings.excluded_namespaces:
        parts.append(f"namespace!~{quote(_regex_union(settings.excluded_namespaces))}")
    parts.extend(matchers)
    return "{" + ", ".join(parts) + "}"


def _over_window(settings: QuerySettings, series: str) -> str:
    """The series' last value in the window, pinned to the window's end (``@ end()``).

    Pinned expressions are step-invariant: Prometheus (and VictoriaMetrics) evaluate them once per
    query instead of at every subquery step, which is what makes 1 000 Deployments affordable.
    """
    return f"last_over_time({series}[{settings.window_seconds}s] @ end())"


def pod_deployment(settings: QuerySettings) -> str:
    """One series per (namespace, pod, deployment) with value 1, for every pod seen in the window.

    Evaluated once per query (see ``_over_window``), so a pod replaced by a rollout during the
    window maps to its Deployment like the pods that replace it.
    """
    owner = _over_window(settings, "kube_pod_owner" + selector(settings, 'owner_kind="ReplicaSet"'))
    replicaset = _over_window(settings, "kube_replicaset_owner" + selector(settings, 'owner_kind="Deployment"'))
    named = _over_window(
        settings,
        "container_memory_working_set_bytes"
        + selector(settings, NON_EMPTY_CONTAINER, 'container!="POD"', f"pod=~{quote(POD_NAME_PATTERN)}"),
    )
    by_owner = (
        "group by (namespace, pod, deployment) ("
        f'label_replace({owner}, "replicaset", "$1", "owner_name", "(.*)")'
        " * on (namespace, replicaset) group_left (deployment) "
        "group by (namespace, replicaset, deployment) ("
        f'label_replace({replicaset}, "deployment", "$1", "owner_name", "(.*)")))'
    )
    by_name = (
        "group by (namespace, pod, deployment) ("
        f'label_replace({named}, "deployment", "$1", "pod", {quote(POD_NAME_PATTERN)}))'
    )
    return f"({by_owner} or on (namespace, pod) {by_name})"


def _container_series(settings: QuerySettings, expr: str) -> str:
    """Per pod and container, joined to the pod's Deployment."""
    join = f"on (namespace, pod) group_left (deployment) {pod_deployment(settings)}"
    return f"(sum by (namespace, pod, container) ({expr}) * {join})"


def _window(settings: QuerySettings) -> str:
    return f"[{settings.window_seconds}s:{settings.step_seconds}s]"


def _usage(settings: QuerySettings, kind: str) -> str:
    containers = (NON_EMPTY_CONTAINER, 'container!="POD"')
    if kind == "cpu":
        return f"rate(container_cpu_usage_seconds_total{selector(settings, *containers)}[2m])"
    return f"container_memory_working_set_bytes{selector(settings, *containers)}"


def _resource(settings: QuerySettings, family: str, resource: str) -> str:
    return family + selector(settings, f"resource={quote(resource)}", NON_EMPTY_CONTAINER)


def _quantile_of(settings: QuerySettings, per_pod: str) -> str:
    """The quantile over the window of the cross-pod aggregate of ``per_pod``."""
    agg = "max" if settings.aggregation == "max" else "avg"
    inner = f"{agg} by (namespace, deployment, container) ({per_pod})"
    return f"quantile_over_time({settings.quantile:g}, ({inner}){_window(settings)})"


def usage_query(settings: QuerySettings, kind: str) -> str:
    """P95 CPU (cores) or memory (MiB) per pod."""
    text = _quantile_of(settings, _container_series(settings, _usage(settings, kind)))
    return text if kind == "cpu" else f"{text} / {MIB}"


def usage_pct_query(settings: QuerySettings, kind: str) -> str:
    """P95 usage as % of the limit; pods without a limit drop out (the statistic is then absent).

    Each pod's limit is its last one in the window, pinned to the window's end (evaluated once, see
    ``_over_window``); a pod's limit cannot change without replacing the pod.
    """
    resource = "cpu" if kind == "cpu" else "memory"
    limit = _over_window(settings, _resource(settings, LIMITS, resource))
    per_pod = (
        f"{_container_series(settings, _usage(settings, kind))} / on (namespace, pod, container) group_left "
        f"max by (namespace, pod, container) ({limit}) * 100"
    )
    return _quantile_of(settings, per_pod)


def resource_query(settings: QuerySettings, family: str, resource: str) -> str:
    """The maximum over the window of the configured requests or limits (m or MiB).

    The maximum over time and over pods commute, so no subquery is needed: each pod's maximum over
    the window, joined to its Deployment, then the maximum over the Deployment's pods.
    """
    per_pod = (
        f"max by (namespace, pod, container) (max_over_time({_resource(settings, family, resource)}"
        f"[{settings.window_seconds}s]))"
    )
    joined = f"({per_pod} * on (namespace, pod) group_left (deployment) {pod_deployment(settings)})"
    text = f"max by (namespace, deployment, container) {joined}"
    return f"{text} * 1000" if resource == "cpu" else f"{text} / {MIB}"


def pod_count_query(settings: QuerySettings) -> str:
    """The minimum over the window of the Deployment's ready pods."""
    ready = "kube_pod_status_ready" + selector(settings, 'condition="true"') + " == 1"
    per_pod = (
        f"(max by (namespace, pod) ({ready}) * on (namespace, pod) group_left (deployment) {pod_deployment(settings)})"
    )
    return f"min_over_time((count by (namespace, deployment) ({per_pod})){_window(settings)})"


def oom_kills_query(settings: QuerySettings) -> str:
    """OOM kills per container in the window, summed over the Deployment's pods.

    cAdvisor's ``container_oom_events_total`` where present; else the restarts of containers whose last
    termination (kube-state-metrics) in the window was ``OOMKilled``.
    """
    window = f"[{settings.window_seconds}s]"
    events = _container_series(settings, f"increase(container_oom_events_total{selector(settings)}{window})")
    restarts = f"increase(kube_pod_container_status_restarts_total{selector(settings)}{window})"
    oom_killed = (
        "max by (namespace, pod, container) (max_over_time(kube_pod_container_status_last_terminated_reason"
        f"{selector(settings, quote_matcher('reason', 'OOMKilled'))}{window}))"
    )
    restarted = _container_series(settings, f"{restarts} * on (namespace, pod, container) group_left {oom_killed}")
    by_container = "sum by (namespace, deployment, container) "
    return f"{by_container}({events}) or {by_container}({restarted})"


def throttled_pct_query(settings: QuerySettings) -> str:
    """CFS periods throttled as % of all periods in the window, over the Deployment's pods."""
    window = f"[{settings.window_seconds}s]"
    by_container = "sum by (namespace, deployment, container) "
    throttled = _container_series(
        settings, f"increase(container_cpu_cfs_throttled_periods_total{selector(settings)}{window})"
    )
    periods = _container_series(settings, f"increase(container_cpu_cfs_periods_total{selector(settings)}{window})")
    return f"{by_container}({throttled}) / ({by_container}({periods}) > 0) * 100"


def quote_matcher(label: str, value: str) -> str:
    return f"{label}={quote(value)}"


def statistic_query(settings: QuerySettings, statistic: str) -> str:
    builders = {
        "p95_cpu_cores": lambda: usage_query(settings, "cpu"),
        "p95_mem_mib": lambda: usage_query(settings, "mem"),
        "p95_cpu_pct": lambda: usage_pct_query(settings, "cpu"),
        "p95_mem_pct": lambda: usage_pct_query(settings, "mem"),
        "request_cpu_m": lambda: resource_query(settings, REQUESTS, "cpu"),
        "request_mem_mib": lambda: resource_query(settings, REQUESTS, "memory"),
        "limit_cpu_m": lambda: resource_query(settings, LIMITS, "cpu"),
        "limit_mem_mib": lambda: resource_query(settings, LIMITS, "memory"),
        "pod_count": lambda: pod_count_query(settings),
        "oom_kills": lambda: oom_kills_query(settings),
        "throttled_pct": lambda: throttled_pct_query(settings),
    }
    return builders[statistic]()


def day_queries(settings: QuerySettings) -> dict[str, str]:
    """Every statistic's query text for one day's window (the same text for every day of a run)."""
    return {statistic: statistic_query(settings, statistic) for statistic in STATISTICS}
