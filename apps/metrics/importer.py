"""Import from KubeDoor 0.2's ClickHouse: ``k8s_res_control`` → control table, ``k8s_resources`` → archive.

0.2 wrote -1 for "not set"; those become null. ``env`` selects the cluster; rows whose ``env`` is empty
(added by hand in 0.2, which left the column blank) belong to whichever cluster is being imported into,
so they are imported with that cluster's rows (for one deployment the latest row wins, whatever its env).
The rows come from a ``KubedoorSource``: the old ClickHouse itself, or an upload of its tables
(``apps.metrics.import_runs``). KubeDoor 1.x's per-cluster settings (``k8s_agent_status``) are applied
where they map onto the cluster (see ``agent_settings_map``); what does not map is reported. The import is idempotent:
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
from collections.abc import Callable
from typing import Any, Protocol

from django.db import transaction
from django.utils import timezone

from apps.audit.services import Actor, audit_event_record
from apps.control.measurements import MicroserviceImported, microservices_import_apply
from apps.control.models import Cluster
from apps.control.services import cluster_update
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
    rows_read: int = 0
    settings_imported: dict[str, Any] = dataclasses.field(default_factory=dict)
    settings_not_imported: dict[str, Any] = dataclasses.field(default_factory=dict)

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


class KubedoorSource(Protocol):
    """Where KubeDoor's tables are read from; rows in the column order of the ``KUBEDOOR_*_SQL`` constants."""

    def control_rows(self, *, env: str) -> list[tuple]: ...

    def resource_rows(self, *, env: str) -> list[tuple]: ...

    def agent_status(self, *, env: str) -> dict[str, Any] | None:
        """KubeDoor 1.x's ``k8s_agent_status`` row of ``env`` (None: no such table or row)."""


class ClickHouseSource:
    """The old KubeDoor ClickHouse, read through the door's SQL constants."""

    def __init__(self, door: ch.ClickHouseDoor) -> None:
        self.door = door

    def control_rows(self, *, env: str) -> list[tuple]:
        return self.door.execute(ch.KUBEDOOR_RES_CONTROL_SQL, {"env": env})

    def resource_rows(self, *, env: str) -> list[tuple]:
        return self.door.execute(ch.KUBEDOOR_RESOURCES_SQL, {"env": env})

    def agent_status(self, *, env: str) -> dict[str, Any] | None:
        present = [name for (name,) in self.door.execute(ch.KUBEDOOR_AGENT_STATUS_COLUMNS_SQL)]
        # Column names only from the known list, never from the server's answer as such.
        columns = [name for name in AGENT_STATUS_COLUMNS if name in present]
        if "env" not in columns:
            return None
        rows = self.door.execute(ch.KUBEDOOR_AGENT_STATUS_SQL.format(columns=", ".join(columns)), {"env": env})
        return dict(zip(columns, rows[0], strict=True)) if rows else None


# KubeDoor 1.x's k8s_agent_status columns (1.3 added nms_not_confirm and scheduler).
AGENT_STATUS_COLUMNS = (
    "env",
    "collect",
    "peak_hours",
    "admission",
    "admission_namespace",
    "nms_not_confirm",
    "scheduler",
)
# What the 1.x settings that have no counterpart on a cluster were, and why they are not applied.
AGENT_STATUS_NOT_MAPPED = {
    "admission": "admission is switched per cluster with its admission mode (off/audit/enforce), not imported",
    "admission_namespace": "1.x's admission namespaces are not the controlled namespaces; set those by hand",
    "nms_not_confirm": "KubeDoor has no confirmation step for namespaces",
    "scheduler": "KubeDoor 1.x's pod scheduler has no counterpart",
}


def _truthy(value: Any) -> bool:
    """1.x's Bool as ClickHouse returns it (0/1, or true/false in an export)."""
    if isinstance(value, bool | int | float):
        return bool(value)
    return str(value).strip().lower() in ("1", "true")


def agent_settings_map(status: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """KubeDoor 1.x settings → (cluster fields to set, settings not imported with their value and reason).

    ``peak_hours`` (``HH:MM:SS-HH:MM:SS``, as in 0.2) sets the peak window and ``collect`` the daily
    collection; an unreadable peak window is reported, not guessed.
    """
    fields: dict[str, Any] = {}
    skipped: dict[str, Any] = {}
    if "collect" in status:
        fields["collect_enabled"] = _truthy(status["collect"])
    hours = str(status.get("peak_hours") or "").strip()
    if hours:
        try:
            start, end = (datetime.time.fromisoformat(part.strip()) for part in hours.split("-"))
        except ValueError:
            skipped["peak_hours"] = {"value": hours, "reason": "not HH:MM:SS-HH:MM:SS"}
        else:
            fields["peak_start"], fields["peak_end"] = start, end
    for name, reason in AGENT_STATUS_NOT_MAPPED.items():
        if name in status:
            value = status[name]
            skipped[name] = {"value": value if isinstance(value, str | int | float) else str(value), "reason": reason}
    return fields, skipped


Progress = Callable[[int, int], None]


def kubedoor_import(
    *,
    cluster: Cluster,
    source: KubedoorSource,
    store: PeakStore,
    actor: Actor,
    env: str | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Import one env into ``cluster``; ``progress(done, total)`` counts source rows processed."""
    env = env or cluster.name
    result = ImportResult()
    control = source.control_rows(env=env)
    resources = source.resource_rows(env=env)
    status = source.agent_status(env=env)
    result.rows_read = len(control) + len(resources) + (1 if status else 0)
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, result.rows_read)

    if progress is not None:
        progress(0, result.rows_read)

    # --- KubeDoor 1.x cluster settings
    if status:
        fields, result.settings_not_imported = agent_settings_map(status)
        result.settings_imported = {
            key: value.isoformat() if isinstance(value, datetime.time) else value for key, value in fields.items()
        }
        cluster = cluster_update(actor=actor, cluster=cluster, data=fields)
        advance(1)

    # --- archive: one replace per day not yet collected by KubeDoor itself
    archive_start = done
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
        advance(len(by_day[day]))
    advance(archive_start + len(resources) - done)  # rows skipped (excluded namespaces, kept days)

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
            message=f"imported from KubeDoor (env {env})",
        )
    advance(len(control))
    return result
