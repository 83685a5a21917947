"""PromQL text of the daily-peak statistics (DESIGN §5.2). Pure functions: settings in, text out.

Every statistic is one instant query evaluated at the window's end, over a subquery of the
window's length with an explicit step, so Prometheus and VictoriaMetrics agree. Pods map to
Deployments through ``kube_pod_owner`` (ReplicaSet) joined with ``kube_replicaset_owner``
(Deployment); pods without those series fall back to the name pattern
``<deployment>-<hash>-<suffix>``. Rows are per container; ``POD`` and empty names are ignored.

Two ways to attribute a pod's series to its Deployment (``QuerySettings.attribution``):

- ``owner``: join every series with that mapping (``pod_deployment``). Exact, but the backend
  evaluates the mapping in every query and joins it at every step of every subquery: on Prometheus
  that was most of a day's time (bench/README.md).
- ``name``: read the Deployment off the pod's name (``label_replace`` with the pattern), no mapping,
  no join. The day's ``pods`` request (the mapping itself, evaluated once) tells where a name and
  the owners disagree (a pod named unlike its Deployment, or like another one); the Deployments
  concerned are queried again with ``owner`` attribution, restricted to their pods, and those answers
  replace the name's (apps/metrics/daily.py). Everywhere else both give the same series: a pod the
  owners map follows its name, and a pod without owners falls back to its name either way.

A day costs three subqueries (P95 CPU, P95 memory, ready pods), one plain query (requests, limits
and which pods run each container, per pod), the two safety-feedback queries and the owners' mapping
(``pods``). The usage-as-%-of-limit statistics are derived from the
P95 and the limit where every pod of a Deployment's container has the same limit (the quantile and the
average or maximum over pods commute with dividing by one constant); only Deployments whose pods'
limits differ need the per-pod query (``usage_pct_query`` restricted to their pods). On Prometheus each
query is its own request (Prometheus evaluates one query on one core, so separate requests run in
parallel); VictoriaMetrics evaluates the arguments of ``union`` in parallel, so there the three
subqueries travel in one request, told apart by the ``kubedoor_statistic`` label.
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

# Statistics of one day, as stored.
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
PERCENT_STATISTICS = {"cpu": "p95_cpu_pct", "memory": "p95_mem_pct"}
# The label that tells the parts of one request apart (``union`` on VictoriaMetrics, ``resources``).
STATISTIC_LABEL = "kubedoor_statistic"


# How the statistics attribute a pod's series to its Deployment (``QuerySettings.attribution``).
OWNER = "owner"
NAME = "name"


class Backend:
    """The metrics backends whose query text differs (``Cluster.metrics_backend``)."""

    PROMETHEUS = "prometheus"
    VICTORIAMETRICS = "victoriametrics"


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
    backend: str = Backend.PROMETHEUS
    attribution: str = OWNER  # or NAME: see the module's docstring


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


def _by_name(expr: str) -> str:
    """``expr`` with the Deployment its pod's name gives (series of other pods keep no such label)."""
    return f'label_replace({expr}, "deployment", "$1", "pod", {quote(POD_NAME_PATTERN)})'


def _joined(settings: QuerySettings, expr: str) -> str:
    """``expr`` (per pod) with the pod's Deployment as a label (by its owners, or its name)."""
    if settings.attribution == NAME:
        return _by_name(expr)
    return f"({expr} * on (namespace, pod) group_left (deployment) {pod_deployment(settings)})"


_NAME_RE = re.compile(POD_NAME_PATTERN)


def named_deployment(pod: str) -> str | None:
    """The Deployment a pod's name gives, as ``label_replace`` reads it (the whole name must match)."""
    match = _NAME_RE.fullmatch(pod)
    return match.group(1) if match else None


def misnamed(mapping: Sequence[tuple[str, str, str]]) -> set[tuple[str, str]]:
    """The (namespace, Deployment)s whose pods' names and owners disagree, from the ``pods`` request's answer
    (``pod_deployment``).

    ``mapping`` is (namespace, pod, deployment) per pod. A pod named unlike its Deployment puts
    that Deployment here, and the one its name points to (which would otherwise count it).
    """
    found: set[tuple[str, str]] = set()
    for namespace, pod, deployment in mapping:
        named = named_deployment(pod)
        if named != deployment:
            found.add((namespace, deployment))
            if named is not None:
                found.add((namespace, named))
    return found


def _window(settings: QuerySettings) -> str:
    return f"[{settings.window_seconds}s:{settings.step_seconds}s]"


def _usage(settings: QuerySettings, kind: str, *matchers: str) -> str:
    containers = (NON_EMPTY_CONTAINER, 'container!="POD"', *matchers)
    if kind == "cpu":
        return f"rate(container_cpu_usage_seconds_total{selector(settings, *containers)}[2m])"
    return f"container_memory_working_set_bytes{selector(settings, *containers)}"


def _resource(settings: QuerySettings, family: str, resource: str = "", *matchers: str) -> str:
    resource_matcher = (f"resource={quote(resource)}",) if resource else ()
    return family + selector(settings, *resource_matcher, NON_EMPTY_CONTAINER, *matchers)


def _quantile_of(settings: QuerySettings, per_pod: str) -> str:
    """The quantile over the window of the cross-pod aggregate of ``per_pod``.

    The usage series are joined to their Deployment as they are (one series per running
    container), without first summing them per pod: an aggregation over every series at each of
    the window's steps is what a subquery spends its time on.
    """
    agg = "max" if settings.aggregation == "max" else "avg"
    inner = f"{agg} by (namespace, deployment, container) ({per_pod})"
    return f"quantile_over_time({settings.quantile:g}, ({inner}){_window(settings)})"


def usage_query(settings: QuerySettings, kind: str, *matchers: str) -> str:
    """P95 CPU (cores) or memory (MiB) per pod."""
    text = _quantile_of(settings, _joined(settings, _usage(settings, kind, *matchers)))
    return text if kind == "cpu" else f"{text} / {MIB}"


def usage_pct_query(
    settings: QuerySettings, kind: str, *, namespaces: Sequence[str] = (), pods: Sequence[str] = ()
) -> str:
    """P95 usage as % of each pod's own limit; pods without a limit drop out (the statistic is then absent).

    Needed only for Deployments whose pods' limits differ (``namespaces`` and ``pods`` restrict the
    query to theirs); elsewhere the percentage is the P95 over the shared limit. Each pod's limit is
    its highest in the window (a pod's limit changes only by replacing the pod, or by an in-place
    resize, after which the higher one counts: the same limit the ``resources`` query reports),
    pinned to the window's end (evaluated once, see ``_over_window``).
    """
    resource = "cpu" if kind == "cpu" else "memory"
    matchers: list[str] = []
    if namespaces:
        matchers.append(f"namespace=~{quote(_regex_union(sorted(set(namespaces))))}")
    if pods:
        matchers.append(f"pod=~{quote(_regex_union(sorted(set(pods))))}")
    limit = f"max_over_time({_resource(settings, LIMITS, resource, *matchers)}[{settings.window_seconds}s] @ end())"
    per_pod = (
        f"{_joined(settings, _usage(settings, kind, *matchers))} / on (namespace, pod, container) group_left "
        f"max by (namespace, pod, container) ({limit}) * 100"
    )
    return _quantile_of(settings, per_pod)


def _tagged(expr: str, part: str) -> str:
    return f'label_replace({expr}, {quote(STATISTIC_LABEL)}, {quote(part)}, "", "")'


def resources_query(settings: QuerySettings, *matchers: str) -> str:
    """Per pod and container: requests and limits (maximum over the window), and running.

    One plain query (no subquery) answers what used to take four: the requests and limits of a
    Deployment are the maxima over its pods (the maximum over time and over pods commute); the pods'
    limits tell whether they share one (then the %-of-limit statistics need no query of their own),
    and ``running`` (value 1) lists the pods whose containers were seen in the window: a running pod
    without a limit also rules the shortcut out.
    """
    window = f"[{settings.window_seconds}s]"
    per_pod = "max by (namespace, pod, container, resource)"
    parts = [
        _tagged(f"{per_pod} (max_over_time({_resource(settings, REQUESTS, '', *matchers)}{window}))", "request"),
        _tagged(f"{per_pod} (max_over_time({_resource(settings, LIMITS, '', *matchers)}{window}))", "limit"),
        _tagged(
            f"group by (namespace, pod, container) (last_over_time({_usage(settings, 'memory', *matchers)}{window}))",
            "running",
        ),
    ]
    return _joined(settings, "(" + " or ".join(parts) + ")")


def pod_count_query(settings: QuerySettings, *matchers: str) -> str:
    """The minimum over the window of the Deployment's ready pods.

    ``and`` keeps the pod → Deployment series (one per pod, evaluated once: the owners' mapping, or
    with ``name`` attribution the pods with a ready series in the window, named) whose pod is ready at
    each step, so duplicated ready series of a pod count once without an aggregation per step.
    """
    ready_series = "kube_pod_status_ready" + selector(settings, 'condition="true"', *matchers)
    if settings.attribution == NAME:
        pods = f"group by (namespace, pod, deployment) ({_by_name(_over_window(settings, ready_series))})"
    else:
        pods = pod_deployment(settings)
    per_pod = f"{pods} and on (namespace, pod) ({ready_series} == 1)"
    return f"min_over_time((count by (namespace, deployment) ({per_pod})){_window(settings)})"


def _container_series(settings: QuerySettings, expr: str) -> str:
    """Per pod and container, with the pod's Deployment (see ``_joined``)."""
    return _joined(settings, f"sum by (namespace, pod, container) ({expr})")


def oom_kills_query(settings: QuerySettings, *matchers: str) -> str:
    """OOM kills per container in the window, summed over the Deployment's pods.

    cAdvisor's ``container_oom_events_total`` where present; else the restarts of containers whose last
    termination (kube-state-metrics) in the window was ``OOMKilled``.
    """
    window = f"[{settings.window_seconds}s]"
    events = _container_series(settings, f"increase(container_oom_events_total{selector(settings, *matchers)}{window})")
    restarts = f"increase(kube_pod_container_status_restarts_total{selector(settings, *matchers)}{window})"
    oom_killed = (
        "max by (namespace, pod, container) (max_over_time(kube_pod_container_status_last_terminated_reason"
        f"{selector(settings, quote_matcher('reason', 'OOMKilled'), *matchers)}{window}))"
    )
    restarted = _container_series(settings, f"{restarts} * on (namespace, pod, container) group_left {oom_killed}")
    by_container = "sum by (namespace, deployment, container) "
    return f"{by_container}({events}) or {by_container}({restarted})"


def throttled_pct_query(settings: QuerySettings, *matchers: str) -> str:
    """CFS periods throttled as % of all periods in the window, over the Deployment's pods."""
    window = f"[{settings.window_seconds}s]"
    by_container = "sum by (namespace, deployment, container) "
    throttled = _container_series(
        settings, f"increase(container_cpu_cfs_throttled_periods_total{selector(settings, *matchers)}{window})"
    )
    periods = _container_series(
        settings, f"increase(container_cpu_cfs_periods_total{selector(settings, *matchers)}{window})"
    )
    return f"{by_container}({throttled}) / ({by_container}({periods}) > 0) * 100"


def quote_matcher(label: str, value: str) -> str:
    return f"{label}={quote(value)}"


def statistic_query(settings: QuerySettings, statistic: str) -> str:
    """The query of one statistic on its own (``resources`` answers requests and limits together)."""
    builders = {
        "p95_cpu_cores": lambda: usage_query(settings, "cpu"),
        "p95_mem_mib": lambda: usage_query(settings, "mem"),
        "p95_cpu_pct": lambda: usage_pct_query(settings, "cpu"),
        "p95_mem_pct": lambda: usage_pct_query(settings, "mem"),
        "pod_count": lambda: pod_count_query(settings),
        "resources": lambda: resources_query(settings),
        "oom_kills": lambda: oom_kills_query(settings),
        "throttled_pct": lambda: throttled_pct_query(settings),
    }
    return builders[statistic]()


SUBQUERY_STATISTICS = ("p95_cpu_cores", "p95_mem_mib", "pod_count")


# Pods listed by name in the owner-attributed requests of a day (``owner_queries``); beyond that many,
# those requests cover every pod (the same answers, a longer query instead of a huge regex).
MAX_LISTED_PODS = 200


def day_queries(settings: QuerySettings) -> dict[str, str]:
    """The requests of one day's window (the same text for every day of a run), by name.

    The statistics attribute pods by name; ``pods`` asks for the owners' mapping, which tells the
    Deployments ``owner_queries`` must answer again (``misnamed``). Prometheus: one request per subquery
    statistic, then ``resources``. VictoriaMetrics: the three subqueries in one ``union`` (each part
    tagged with ``STATISTIC_LABEL``), then ``resources``. On both, the safety feedback
    (``FEEDBACK_STATISTICS``) as two more requests.
    """
    named = dataclasses.replace(settings, attribution=NAME)
    feedback = {name: statistic_query(named, name) for name in FEEDBACK_STATISTICS}
    if settings.backend == Backend.VICTORIAMETRICS:
        parts = ", ".join(_tagged(statistic_query(named, name), name) for name in SUBQUERY_STATISTICS)
        usage = {"usage": f"union({parts})", "resources": resources_query(named)}
        return {**usage, **feedback, "pods": pod_deployment(settings)}
    queries = {name: statistic_query(named, name) for name in SUBQUERY_STATISTICS}
    queries["resources"] = resources_query(named)
    return {**queries, **feedback, "pods": pod_deployment(settings)}


# The statistics ``owner_queries`` answers again.
OWNER_STATISTICS = ("p95_cpu_cores", "p95_mem_mib", "pod_count", "resources", *FEEDBACK_STATISTICS)


def owner_queries(settings: QuerySettings, namespaces: Sequence[str], pods: Sequence[str]) -> dict[str, str]:
    """The statistics of the given pods attributed by their owners (``misnamed`` Deployments' pods).

    With more than ``MAX_LISTED_PODS`` pods the requests are not restricted to them.
    """
    owners = dataclasses.replace(settings, attribution=OWNER)
    matchers: tuple[str, ...] = ()
    if len(set(pods)) <= MAX_LISTED_PODS:
        matchers = (
            f"namespace=~{quote(_regex_union(sorted(set(namespaces))))}",
            f"pod=~{quote(_regex_union(sorted(set(pods))))}",
        )
    return {
        "p95_cpu_cores": usage_query(owners, "cpu", *matchers),
        "p95_mem_mib": usage_query(owners, "mem", *matchers),
        "pod_count": pod_count_query(owners, *matchers),
        "resources": resources_query(owners, *matchers),
        "oom_kills": oom_kills_query(owners, *matchers),
        "throttled_pct": throttled_pct_query(owners, *matchers),
    }


def run_queries(settings: QuerySettings) -> dict[str, str]:
    """What a run shows of its queries: the day's requests and the per-pod %-of-limit queries."""
    return {
        **day_queries(settings),
        "p95_cpu_pct": usage_pct_query(settings, "cpu"),
        "p95_mem_pct": usage_pct_query(settings, "mem"),
    }
