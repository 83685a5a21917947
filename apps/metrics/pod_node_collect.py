"""Collection of one day's per-pod and per-node figures (called by ``services.collection_run`` per day).

The six queries of ``pod_node_promql`` run at most ``concurrency`` at a time against the run's
Prometheus client; their results become ``PodPeakRow`` and ``NodePeakRow`` rows that replace the
day in the pod/node store beside the daily-peak store. A failing query raises the client's
``PrometheusError`` before anything of the day is written, like the Deployment statistics.
"""

from __future__ import annotations

import datetime
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.utils import timezone

from apps.metrics import peaks, pod_node_promql
from apps.metrics.pod_node_store import NodePeakRow, PodNodeStore, PodPeakRow
from apps.metrics.prometheus import PrometheusClient, Sample
from apps.metrics.promql import QuerySettings

logger = logging.getLogger(__name__)

MIB = 1048576
CPU_DIGITS = 6
MEM_DIGITS = 3


def _cpu(value: float | None) -> float | None:
    return None if value is None else peaks.round_clean(value, CPU_DIGITS)


def _mem(value: float | None) -> float | None:
    return None if value is None else peaks.round_clean(value, MEM_DIGITS)


def pod_rows_from_results(
    *,
    cluster: str,
    window: peaks.Window,
    settings: QuerySettings,
    results: dict[str, list[Sample]],
    collected_at: datetime.datetime,
) -> list[PodPeakRow]:
    """One row per (namespace, deployment, pod) seen by either statistic, sorted."""
    values: dict[tuple[str, str, str], dict[str, float]] = {}
    for statistic in pod_node_promql.POD_STATISTICS:
        for sample in results.get(statistic, []):
            key = (
                sample.labels.get("namespace", ""),
                sample.labels.get("deployment", ""),
                sample.labels.get("pod", ""),
            )
            if all(key):
                values.setdefault(key, {})[statistic] = sample.value
    return [
        PodPeakRow(
            cluster=cluster,
            day=window.day,
            namespace=namespace,
            deployment=deployment,
            pod=pod,
            window_start=window.start,
            window_end=window.end,
            p95_cpu_cores=_cpu(stats.get("pod_cpu_cores")),
            p95_mem_mib=_mem(stats.get("pod_mem_mib")),
            quantile=settings.quantile,
            step_seconds=settings.step_seconds,
            collected_at=collected_at,
        )
        for (namespace, deployment, pod), stats in sorted(values.items())
    ]


def node_rows_from_results(
    *,
    cluster: str,
    window: peaks.Window,
    settings: QuerySettings,
    results: dict[str, list[Sample]],
    collected_at: datetime.datetime,
) -> list[NodePeakRow]:
    """One row per node seen by any statistic, sorted; CPU requests and allocatable in m, memory in MiB."""
    values: dict[str, dict[str, Any]] = {}

    def put(node: str, key: str, value: Any) -> None:
        if node:
            values.setdefault(node, {})[key] = value

    for sample in results.get("node_cpu_cores", []):
        put(sample.labels.get("node", ""), "p95_cpu_cores", _cpu(sample.value))
    for sample in results.get("node_mem_mib", []):
        put(sample.labels.get("node", ""), "p95_mem_mib", _mem(sample.value))
    for statistic, prefix in (("node_requests", "request"), ("node_allocatable", "allocatable")):
        for sample in results.get(statistic, []):
            resource = sample.labels.get("resource", "")
            if resource == "cpu":
                put(sample.labels.get("node", ""), f"{prefix}_cpu_m", peaks.round_clean(sample.value * 1000))
            elif resource == "memory":
                put(sample.labels.get("node", ""), f"{prefix}_mem_mib", peaks.round_clean(sample.value / MIB))
    return [
        NodePeakRow(
            cluster=cluster,
            day=window.day,
            node=node,
            window_start=window.start,
            window_end=window.end,
            p95_cpu_cores=stats.get("p95_cpu_cores"),
            p95_mem_mib=stats.get("p95_mem_mib"),
            request_cpu_m=stats.get("request_cpu_m"),
            request_mem_mib=stats.get("request_mem_mib"),
            allocatable_cpu_m=stats.get("allocatable_cpu_m"),
            allocatable_mem_mib=stats.get("allocatable_mem_mib"),
            quantile=settings.quantile,
            step_seconds=settings.step_seconds,
            collected_at=collected_at,
        )
        for node, stats in sorted(values.items())
    ]


def pod_node_day_collect(
    *,
    client: PrometheusClient,
    cluster: str,
    window: peaks.Window,
    settings: QuerySettings,
    store: PodNodeStore,
    concurrency: int = 4,
) -> tuple[int, int]:
    """Query, then replace the day's pod and node rows; returns (pod rows, node rows) written."""
    queries = pod_node_promql.day_queries(settings)
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="promql-pod-node") as pool:
        futures = {name: pool.submit(client.query, text, at=window.end) for name, text in queries.items()}
        # ``result()`` re-raises the first failure; the pool's exit waits for (or drops) the rest.
        results = {name: future.result() for name, future in futures.items()}
    collected_at = timezone.now()
    pods = pod_rows_from_results(
        cluster=cluster, window=window, settings=settings, results=results, collected_at=collected_at
    )
    nodes = node_rows_from_results(
        cluster=cluster, window=window, settings=settings, results=results, collected_at=collected_at
    )
    written = (
        store.pods_replace(cluster=cluster, day=window.day, rows=pods),
        store.nodes_replace(cluster=cluster, day=window.day, rows=nodes),
    )
    logger.info("pods and nodes %s %s: %d pods, %d nodes", cluster, window.day, *written)
    return written
