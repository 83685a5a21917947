"""Import from KubeDoor 0.2's ClickHouse: ``k8s_res_control`` → control table, ``k8s_resources`` → archive.

0.2 wrote -1 for "not set"; those become null. ``env`` selects the cluster. The import is idempotent:
control rows are created or updated to the imported values (only changed rows are written and
audited as ``microservice.import``), and an archive day is (re)written only when KubeDoor itself has
not collected it yet — days already collected are kept and reported. 0.2 had no container
dimension, so an archived row's container is the Deployment's name, the window is the cluster's
peak window of that day, and ``step_seconds = 0`` marks the row as imported.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections import defaultdict
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from apps.audit.models import AuditEvent, AuditResult
from apps.audit.services import Actor, audit_event_record
from apps.control.models import Cluster, Microservice
from apps.metrics import clickhouse as ch
from apps.metrics import peaks
from apps.metrics.store import PeakRow, PeakStore

IMPORTED_STEP = 0
CONTROL_FIELDS = (
    "pod_count_init",
    "pod_count",
    "pod_count_manual",
    "pod_count_ai",
    "p95_cpu_pct",
    "p95_mem_pct",
    "request_cpu_m",
    "request_mem_mib",
    "limit_cpu_m",
    "limit_mem_mib",
)


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


def _control_values(row: tuple) -> dict[str, Any]:
    (_ns, _dep, init, count, manual, ai, cpu_pct, mem_pct, req_cpu, req_mem, lim_cpu, lim_mem) = row
    return {
        "pod_count_init": _null(init, kind=int) or 0,
        "pod_count": _null(count, kind=int) or 0,
        "pod_count_manual": _null(manual, kind=int),
        "pod_count_ai": _null(ai, kind=int),
        "p95_cpu_pct": _null(cpu_pct, digits=3),
        "p95_mem_pct": _null(mem_pct, digits=3),
        "request_cpu_m": _null(req_cpu, kind=int),
        "request_mem_mib": _null(req_mem, kind=int),
        "limit_cpu_m": _null(lim_cpu, kind=int),
        "limit_mem_mib": _null(lim_mem, kind=int),
    }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


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
    existing_rows = {(s.namespace, s.name): s for s in Microservice.objects.filter(cluster=cluster)}
    new_rows: list[Microservice] = []
    changed: list[tuple[Microservice, dict[str, Any], dict[str, Any]]] = []
    for row in control:
        namespace, deployment = row[0], row[1]
        if not cluster.is_namespace_controlled(namespace):
            continue
        values = _control_values(row)
        service = existing_rows.get((namespace, deployment))
        if service is None:
            new_rows.append(
                Microservice(cluster=cluster, namespace=namespace, name=deployment, updated_by=actor.name, **values)
            )
            continue
        diff = [field for field in CONTROL_FIELDS if getattr(service, field) != values[field]]
        if not diff:
            result.unchanged += 1
            continue
        before = {field: getattr(service, field) for field in diff}
        for field in diff:
            setattr(service, field, values[field])
        changed.append((service, before, {field: values[field] for field in diff}))
    result.created = len(new_rows)
    result.updated = len(changed)

    with transaction.atomic():
        Microservice.objects.bulk_create(new_rows, batch_size=1000)
        now = timezone.now()
        for service, _, _ in changed:
            service.updated_at = now
            service.updated_by = actor.name
        Microservice.objects.bulk_update(
            [service for service, _, _ in changed], [*CONTROL_FIELDS, "updated_at", "updated_by"], batch_size=1000
        )
        events = [
            AuditEvent(
                actor=actor.user,
                actor_name=actor.name,
                source=actor.source,
                action="microservice.import",
                cluster=cluster.name,
                namespace=service.namespace,
                name=service.name,
                before=None,
                after=_jsonable({field: getattr(service, field) for field in CONTROL_FIELDS}),
                result=AuditResult.OK,
            )
            for service in new_rows
        ] + [
            AuditEvent(
                actor=actor.user,
                actor_name=actor.name,
                source=actor.source,
                action="microservice.import",
                cluster=cluster.name,
                namespace=service.namespace,
                name=service.name,
                before=_jsonable(before),
                after=_jsonable(after),
                result=AuditResult.OK,
            )
            for service, before, after in changed
        ]
        AuditEvent.objects.bulk_create(events, batch_size=1000)
        audit_event_record(
            actor=actor,
            action="kubedoor.import",
            cluster=cluster.name,
            after={"env": env, **result.summary()},
            message=f"imported from KubeDoor 0.2 (env {env})",
        )
    return result
