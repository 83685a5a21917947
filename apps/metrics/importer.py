"""Import from KubeDoor 0.2's ClickHouse: ``k8s_res_control`` → control table, ``k8s_resources`` → archive.

0.2 wrote -1 for "not set"; those become null. ``env`` selects the cluster. The import is idempotent:
control rows are created or updated to the imported values by ``microservices_import_apply`` (only
changed rows are written and audited as ``microservice.import``), and an archive day is (re)written
only when KubeDoor itself has not collected it yet — days already collected are kept and reported. 0.2 had no container
dimension, so an archived row's container is the Deployment's name, the window is the cluster's
peak window of that day, and ``step_seconds = 0`` marks the row as imported.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections import defaultdict
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.audit.services import Actor, audit_event_record
from apps.control.measurements import MicroserviceImported, microservices_import_apply
from apps.control.models import Cluster
from apps.metrics import clickhouse as ch
from apps.metrics import peaks
from apps.metrics.store import PeakRow, PeakStore

IMPORTED_STEP = 0


@dataclasses.dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    days_written: list[str] = dataclasses.field(default_factory=list)
    days_kept: list[str] = dataclasses.field(default_factory=list)
    rows_written: int = 0

    def summary(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _null(value: Any, *, kind: type = float, digits: int | None = None) -> Any:
    """0.2's -1 (and negative values generally) mean "not set"."""
    if value is None or float(value) < 0:
        return None
    if kind is int:
        return round(float(value))
    return round(float(value), digits) if digits is not None else float(value)


def _control_row(row: tuple) -> MicroserviceImported:
    (namespace, deployment, init, count, manual, ai, cpu_pct, mem_pct, req_cpu, req_mem, lim_cpu, lim_mem) = row
    return MicroserviceImported(
        namespace=namespace,
        name=deployment,
        replicas_initial=_null(init, kind=int) or 0,
        replicas_measured=_null(count, kind=int) or 0,
        replicas_specified=_null(manual, kind=int),
        replicas_recommended=_null(ai, kind=int),
        p95_cpu_pct=_null(cpu_pct, digits=3),
        p95_mem_pct=_null(mem_pct, digits=3),
        request_cpu_m=_null(req_cpu, kind=int),
        request_mem_mib=_null(req_mem, kind=int),
        limit_cpu_m=_null(lim_cpu, kind=int),
        limit_mem_mib=_null(lim_mem, kind=int),
    )


def kubedoor_import(
    *, cluster: Cluster, source: ch.ClickHouseDoor, store: PeakStore, actor: Actor, env: str | None = None
) -> ImportResult:
    env = env or cluster.name
    result = ImportResult()
    control = source.execute(ch.KUBEDOOR_RES_CONTROL_SQL, {"env": env})
    resources = source.execute(ch.KUBEDOOR_RESOURCES_SQL, {"env": env})

    # --- archive: one replace per day not yet collected by KubeDoor itself
    collected_at = timezone.now()
    by_day: dict[datetime.date, list[PeakRow]] = defaultdict(list)
    for values in resources:
        (day, namespace, deployment, pods, load, cpu_pct, wss_mb, wss_pct, req_cpu, req_mem, lim_cpu, lim_mem, _) = (
            values
        )
        day = day if isinstance(day, datetime.date) else datetime.date.fromisoformat(str(day))
        if not cluster.is_namespace_controlled(namespace):
            continue
        window = peaks.peak_window(day=day, start=cluster.peak_start, end=cluster.peak_end, time_zone=cluster.time_zone)
        by_day[day].append(
            PeakRow(
                cluster=cluster.name,
                day=day,
                namespace=namespace,
                deployment=deployment,
                container=deployment,
                window_start=window.start,
                window_end=window.end,
                pod_count=_null(pods, kind=int),
                p95_cpu_cores=_null(load, digits=6),
                p95_cpu_pct=_null(cpu_pct, digits=3),
                p95_mem_mib=_null(wss_mb, digits=3),
                p95_mem_pct=_null(wss_pct, digits=3),
                request_cpu_m=_null(req_cpu, kind=int),
                request_mem_mib=_null(req_mem, kind=int),
                limit_cpu_m=_null(lim_cpu, kind=int),
                limit_mem_mib=_null(lim_mem, kind=int),
                quantile=0.95,
                aggregation="avg",
                step_seconds=IMPORTED_STEP,
                collected_at=collected_at,
            )
        )
    for day in sorted(by_day):
        existing = store.rows(cluster=cluster.name, day_from=day, day_to=day)
        if any(row.step_seconds != IMPORTED_STEP for row in existing):
            result.days_kept.append(day.isoformat())
            continue
        result.rows_written += store.day_replace(cluster=cluster.name, day=day, rows=by_day[day])
        result.days_written.append(day.isoformat())

    # --- control table
    rows = [_control_row(row) for row in control if cluster.is_namespace_controlled(row[0])]
    with transaction.atomic():
        applied = microservices_import_apply(cluster=cluster, rows=rows, actor=actor)
        result.created, result.updated, result.unchanged = applied.created, applied.updated, applied.unchanged
        audit_event_record(
            actor=actor,
            action="kubedoor.import",
            cluster=cluster.name,
            after={"env": env, **result.summary()},
            message=f"imported from KubeDoor 0.2 (env {env})",
        )
    return result
