"""Sample pod and node figures for the demo cluster (``manage.py kubedoor_demo``), clearly made up.

Each microservice of the cluster runs its measured number of pods; a pod keeps its name for a week
(a weekly rollout gives new names), so the pod curves show lines over several days. A pod's P95
varies around the service's own P95 with a weekday rhythm. Pods are spread over nodes sized so
the cluster is about 55 % requested, unevenly (the first nodes get up to 1.6× the last's share), so the node board
has a most and a least loaded node; a node's figures are the sums of its pods'. Written through
the configured pod/node store, replacing those days.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import random

from django.utils import timezone

from apps.control.models import Cluster, Microservice
from apps.metrics import peaks
from apps.metrics.pod_node_store import NodePeakRow, PodNodeStore, PodPeakRow, pod_node_store

NODE_CPU_M = 32_000
NODE_MEM_MIB = 65_536
WEEKDAY_RHYTHM = (1.0, 1.05, 1.1, 1.05, 0.95, 0.6, 0.55)  # Monday … Sunday


def _suffix(text: str, n: int) -> str:
    digest = hashlib.sha1(text.encode()).hexdigest()
    return "".join("bcdfghjklmnpqrstvwxz2456789"[int(c, 16)] for c in digest[:n])


def pod_node_demo_write(
    *, cluster: Cluster, last_day: datetime.date, days: int = 30, seed: int = 7, store: PodNodeStore | None = None
) -> tuple[int, int]:
    """Write ``days`` days of pod and node figures ending ``last_day``; returns (pod rows, node rows)."""
    store = store or pod_node_store()
    rng = random.Random(seed)
    services = list(Microservice.objects.filter(cluster=cluster).order_by("namespace", "name"))
    requested = sum((s.request_cpu_m or 100) * max(1, s.replicas_measured or 1) for s in services)
    node_count = max(3, math.ceil(requested / (NODE_CPU_M * 0.55)))
    nodes = [f"{cluster.name}-node-{i + 1}" for i in range(node_count)]
    # uneven placement: the first node is chosen with weight 1, the last with 0.6
    weights = [1 - 0.4 * i / (node_count - 1) for i in range(node_count)]
    placement = {
        (s.namespace, s.name, i): rng.choices(nodes, weights)[0]
        for s in services
        for i in range(max(1, s.replicas_measured or 1))
    }
    written = (0, 0)
    for offset in range(days):
        day = last_day - datetime.timedelta(days=days - 1 - offset)
        window = peaks.peak_window(day=day, start=cluster.peak_start, end=cluster.peak_end, time_zone=cluster.time_zone)
        week = day.toordinal() // 7
        rhythm = WEEKDAY_RHYTHM[day.weekday()]
        collected_at = min(timezone.now(), window.end + datetime.timedelta(hours=1))
        pod_rows: list[PodPeakRow] = []
        per_node = {node: [0.0, 0.0, 0, 0] for node in nodes}  # cpu, mem, requested m, requested MiB
        for s in services:
            replicaset = f"{s.name}-{_suffix(f'{s.namespace}/{s.name}/{week}', 10)}"
            for i in range(max(1, s.replicas_measured or 1)):
                cpu = round((s.p95_cpu_cores or 0.1) * rhythm * rng.uniform(0.6, 1.3), 4)
                mem = round((s.p95_mem_mib or 128.0) * rng.uniform(0.85, 1.1), 1)
                pod_rows.append(
                    PodPeakRow(
                        cluster=cluster.name,
                        day=day,
                        namespace=s.namespace,
                        deployment=s.name,
                        pod=f"{replicaset}-{_suffix(f'{s.name}/{i}/{week}', 5)}",
                        window_start=window.start,
                        window_end=window.end,
                        p95_cpu_cores=cpu,
                        p95_mem_mib=mem,
                        quantile=cluster.peak_quantile,
                        step_seconds=cluster.peak_step_seconds,
                        collected_at=collected_at,
                    )
                )
                figures = per_node[placement[(s.namespace, s.name, i)]]
                figures[0] += cpu
                figures[1] += mem
                figures[2] += s.request_cpu_m or 100
                figures[3] += s.request_mem_mib or 128
        node_rows = [
            NodePeakRow(
                cluster=cluster.name,
                day=day,
                node=node,
                window_start=window.start,
                window_end=window.end,
                p95_cpu_cores=round(cpu, 4),
                p95_mem_mib=round(mem, 1),
                request_cpu_m=int(req_cpu),
                request_mem_mib=int(req_mem),
                allocatable_cpu_m=NODE_CPU_M,
                allocatable_mem_mib=NODE_MEM_MIB,
                quantile=cluster.peak_quantile,
                step_seconds=cluster.peak_step_seconds,
                collected_at=collected_at,
            )
            for node, (cpu, mem, req_cpu, req_mem) in per_node.items()
        ]
        written = (
            written[0] + store.pods_replace(cluster=cluster.name, day=day, rows=pod_rows),
            written[1] + store.nodes_replace(cluster=cluster.name, day=day, rows=node_rows),
        )
    return written
