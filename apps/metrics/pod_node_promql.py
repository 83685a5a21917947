"""PromQL text of the per-pod and per-node daily statistics. Pure functions: settings in, text out.

Like the Deployment statistics (``apps.metrics.promql``) every query is one instant query at the
window's end over a subquery of the window's length with the cluster's explicit step.

* **Pods** follow the cluster's namespace filter and map to their Deployment the same way
  (``promql.pod_deployment``). A pod's usage is the sum of its containers (``POD`` and unnamed
  containers left out); its statistic is the cluster's quantile over the steps at which it ran.
* **Nodes** count every namespace (a node is shared by all of them); only the cluster's external
  label filters. A pod is placed on its node through ``kube_pod_info{node}`` at each step; a node's
  usage is the sum of its pods' usage, its requests the sum of its pods' container requests
  (``kube_pod_container_resource_requests`` joined with ``kube_pod_info``), their largest value in
  the window; allocatable is the largest ``kube_node_status_allocatable`` in the window.
"""

from __future__ import annotations

import dataclasses

from apps.metrics import promql
from apps.metrics.promql import QuerySettings

POD_STATISTICS = ("pod_cpu_cores", "pod_mem_mib")
NODE_STATISTICS = ("node_cpu_cores", "node_mem_mib", "node_requests", "node_allocatable")
STATISTICS = (*POD_STATISTICS, *NODE_STATISTICS)
MIB = promql.MIB
_CONTAINERS = ('container!=""', 'container!="POD"')


def node_settings(settings: QuerySettings) -> QuerySettings:
    """The cluster's settings without its namespace filter: a node's figures count every namespace."""
    return dataclasses.replace(settings, namespaces=(), excluded_namespaces=())


def _subquery(settings: QuerySettings) -> str:
    return f"[{settings.window_seconds}s:{settings.step_seconds}s]"


def _pod_usage(settings: QuerySettings, kind: str) -> str:
    """Per (namespace, pod): the sum of its containers' CPU cores or working-set bytes."""
    if kind == "cpu":
        series = f"rate(container_cpu_usage_seconds_total{promql.selector(settings, *_CONTAINERS)}[2m])"
    else:
        series = f"container_memory_working_set_bytes{promql.selector(settings, *_CONTAINERS)}"
    return f"sum by (namespace, pod) ({series})"


def pod_usage_query(settings: QuerySettings, kind: str) -> str:
    """The quantile over the window of each pod's CPU (cores) or memory (MiB), with its Deployment.

    The Deployment is joined to the pod's quantile once, not to its usage at every step: the mapping is
    pinned to the window's end (``promql.pod_deployment``), so the result is the same, and the CPU query
    costs Prometheus about half (bench/README.md).
    """
    quantile = f"quantile_over_time({settings.quantile:g}, ({_pod_usage(settings, kind)}){_subquery(settings)})"
    text = f"{quantile} * on (namespace, pod) group_left (deployment) {promql.pod_deployment(settings)}"
    return text if kind == "cpu" else f"({text}) / {MIB}"


def pod_node(settings: QuerySettings) -> str:
    """One series per (namespace, pod, node) with value 1 for the pods running at the evaluation time.

    ``topk by (namespace, pod) (1, …)`` keeps one node per pod when a pod name moved between nodes
    within the lookback (a StatefulSet's pod), so the join never finds duplicates.
    """
    info = "kube_pod_info" + promql.selector(node_settings(settings), 'node!=""')
    return f"max by (namespace, pod, node) (topk by (namespace, pod) (1, {info}))"


def node_usage_query(settings: QuerySettings, kind: str) -> str:
    """The quantile over the window of the summed usage of each node's pods (cores or MiB)."""
    usage = _pod_usage(node_settings(settings), kind)
    per_node = f"sum by (node) ({usage} * on (namespace, pod) group_left (node) {pod_node(settings)})"
    text = f"quantile_over_time({settings.quantile:g}, ({per_node}){_subquery(settings)})"
    return text if kind == "cpu" else f"{text} / {MIB}"


def node_requests_query(settings: QuerySettings) -> str:
    """Per (node, resource): the largest sum over the window of the requests of the pods on the node.

    Units as kube-state-metrics exports them (cores, bytes); one query for CPU and memory.
    """
    requests = (
        "sum by (namespace, pod, resource) (kube_pod_container_resource_requests"
        + promql.selector(node_settings(settings), 'resource=~"cpu|memory"', 'container!=""')
        + ")"
    )
    per_node = f"sum by (node, resource) ({requests} * on (namespace, pod) group_left (node) {pod_node(settings)})"
    return f"max_over_time(({per_node}){_subquery(settings)})"


def node_allocatable_query(settings: QuerySettings) -> str:
    """Per (node, resource): the largest allocatable CPU (cores) and memory (bytes) in the window."""
    series = "kube_node_status_allocatable" + promql.selector(node_settings(settings), 'resource=~"cpu|memory"')
    return f"max by (node, resource) (max_over_time({series}[{settings.window_seconds}s]))"


def day_queries(settings: QuerySettings) -> dict[str, str]:
    """Every pod and node statistic's query text for one day's window."""
    return {
        "pod_cpu_cores": pod_usage_query(settings, "cpu"),
        "pod_mem_mib": pod_usage_query(settings, "mem"),
        "node_cpu_cores": node_usage_query(settings, "cpu"),
        "node_mem_mib": node_usage_query(settings, "mem"),
        "node_requests": node_requests_query(settings),
        "node_allocatable": node_allocatable_query(settings),
    }
