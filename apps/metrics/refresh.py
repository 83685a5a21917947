"""Refreshing the control table from the daily-peak archive (DESIGN §5.4): metrics computes, control applies.

For each Deployment seen in the cluster's lookback, the source day's statistics of its controlled
container become a ``MicroserviceMeasurement``: pods, P95s, the observed limits, and the requests they
call for with the row's own headroom, floors and limits (the cluster's where the row sets none, or
for a Deployment without a row). The source day is the service's busiest day (``service`` mode) or
the cluster's busiest day (``cluster`` mode, as in KubeDoor 0.2), never a day of the cluster's
excluded-days calendar (``apps.control.excluded_days``); in ``cluster`` mode a Deployment
with no row on that day (new since) falls back to its own busiest day rather than keeping no
statistics.

``apps.control.measurements.microservices_measurements_apply`` writes them: it creates rows, keeps
what a refresh must never overwrite (specified and recommended pods, replicas mode, a set container,
overrides, limits of an existing row, requests a person set), marks vanished rows and audits every
change. The refresh adds one ``collection.run`` summary, in the same transaction.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Sequence
from typing import Any

from django.db import transaction

from apps.audit.services import Actor, audit_event_record
from apps.control.choices import PeakDayMode
from apps.control.containers import controlled_container
from apps.control.excluded_days import excluded_dates
from apps.control.measurements import (
    MicroserviceMeasurement,
    MicroserviceSettings,
    microservice_settings_list,
    microservices_measurements_apply,
)
from apps.control.models import Cluster
from apps.metrics import peaks
from apps.metrics.store import PeakStore, StatRow

logger = logging.getLogger(__name__)

# The source day's statistics a measurement carries as the store holds them (the limits observed are
# copied only into a new row).
MEASURED_AS_IS = ("p95_cpu_cores", "p95_mem_mib", "p95_cpu_pct", "p95_mem_pct", "limit_cpu_m", "limit_mem_mib")


@dataclasses.dataclass
class RefreshResult:
    added: int = 0
    updated: int = 0
    vanished: int = 0
    unchanged: int = 0
    unmanaged: list[str] = dataclasses.field(default_factory=list)
    cluster_source_day: datetime.date | None = None
    excluded_days: list[datetime.date] = dataclasses.field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "vanished": self.vanished,
            "unchanged": self.unchanged,
            "unmanaged": len(self.unmanaged),
            "cluster_source_day": self.cluster_source_day,
            "excluded_days": len(self.excluded_days),
        }


def deployment_measure(
    *,
    cluster: Cluster,
    namespace: str,
    deployment: str,
    day: datetime.date,
    day_rows: Sequence[StatRow],
    settings: MicroserviceSettings | None,
    hpa_name: str | None,
) -> MicroserviceMeasurement:
    """What ``day`` says of one Deployment, for its row (``settings``; ``None``: no row yet)."""
    configured = settings.container if settings is not None else ""
    p95_cpu = {row.container: row.p95_cpu_cores for row in day_rows}
    container, chosen = controlled_container(
        configured=configured, deployment=deployment, names=list(p95_cpu), p95_cpu=p95_cpu
    )
    if container is None:  # the configured container was not seen that day
        return MicroserviceMeasurement(namespace=namespace, name=deployment, hpa_name=hpa_name)
    row = next(r for r in day_rows if r.container == container)
    if settings is None:  # what a new row will hold: no overrides, the limits observed
        settings = MicroserviceSettings(limit_cpu_m=row.limit_cpu_m, limit_mem_mib=row.limit_mem_mib)
    cpu, mem = peaks.request_from_peak(
        p95_cpu_cores=row.p95_cpu_cores,
        p95_mem_mib=row.p95_mem_mib,
        cpu_headroom=settings.cpu_headroom if settings.cpu_headroom is not None else cluster.cpu_headroom,
        mem_headroom=settings.mem_headroom if settings.mem_headroom is not None else cluster.mem_headroom,
        min_cpu_m=settings.min_cpu_m if settings.min_cpu_m is not None else cluster.min_cpu_m,
        min_mem_mib=settings.min_mem_mib if settings.min_mem_mib is not None else cluster.min_mem_mib,
    )
    cpu, cpu_capped = peaks.cap_at_limit(cpu, settings.limit_cpu_m)
    mem, mem_capped = peaks.cap_at_limit(mem, settings.limit_mem_mib)
    return MicroserviceMeasurement(
        namespace=namespace,
        name=deployment,
        source_day=day,
        container=container,
        is_container_chosen=chosen,
        replicas_measured=row.pod_count or 0,
        request_cpu_m=cpu,
        request_cpu_capped=cpu_capped,
        request_mem_mib=mem,
        request_mem_capped=mem_capped,
        hpa_name=hpa_name,
        **{field: getattr(row, field) for field in MEASURED_AS_IS},
    )


def control_table_refresh(
    *,
    cluster: Cluster,
    store: PeakStore,
    today: datetime.date,
    actor: Actor,
    run_id: int | None = None,
    hpa_targets: dict[tuple[str, str], str] | None = None,
) -> RefreshResult:
    """Refresh the cluster's control rows from the last ``lookback_days`` days up to ``today``.

    ``hpa_targets`` maps (namespace, Deployment) to the HPA scaling it; every refreshed row's
    ``hpa_name`` follows it. ``None`` (HPAs not read) keeps the rows' marks as they are.
    """
    day_from = today - datetime.timedelta(days=cluster.lookback_days - 1)
    rows = [
        row
        for row in store.stats(cluster=cluster.name, day_from=day_from, day_to=today)
        if cluster.is_namespace_controlled(row.namespace)
    ]
    services = peaks.group_by_service(rows)
    result = RefreshResult()
    # Excluded days (the cluster's calendar) stay in the archive but are never a source day.
    excluded = excluded_dates(cluster=cluster, day_from=day_from, day_to=today)
    result.excluded_days = sorted(excluded)
    if cluster.peak_day_mode == PeakDayMode.CLUSTER:
        result.cluster_source_day = peaks.cluster_source_day(row for row in rows if row.day not in excluded)
    settings = microservice_settings_list(cluster=cluster)
    measurements = []
    for key in sorted(services):
        days = {day: day_rows for day, day_rows in services[key].items() if day not in excluded}
        if not days:  # seen only on excluded days: present, its measured fields stay
            measurements.append(
                MicroserviceMeasurement(
                    namespace=key[0], name=key[1], hpa_name=None if hpa_targets is None else hpa_targets.get(key, "")
                )
            )
            continue
        day = (
            result.cluster_source_day
            if result.cluster_source_day is not None and result.cluster_source_day in days
            else peaks.service_source_day(days)
        )
        measurements.append(
            deployment_measure(
                cluster=cluster,
                namespace=key[0],
                deployment=key[1],
                day=day,
                day_rows=days[day],
                settings=settings.get(key),
                hpa_name=None if hpa_targets is None else hpa_targets.get(key, ""),
            )
        )

    with transaction.atomic():
        applied = microservices_measurements_apply(cluster=cluster, measurements=measurements, actor=actor)
        result.added, result.updated, result.vanished = applied.added, applied.updated, applied.vanished
        result.unchanged, result.unmanaged = applied.unchanged, applied.unmanaged
        summary = result.summary()
        if run_id is not None:
            summary["run"] = run_id
        if hpa_targets is not None:
            summary["hpa_managed"] = sum(1 for key in services if key in hpa_targets)
        if result.unmanaged:
            summary["unmanaged_names"] = result.unmanaged[:100]
        audit_event_record(
            actor=actor,
            action="collection.run",
            cluster=cluster.name,
            after=summary,
            message=(
                f"refresh: {result.added} added, {result.updated} updated, {result.vanished} vanished, "
                f"{len(result.unmanaged)} seen unmanaged"
            ),
        )
    logger.info("refresh %s: %s", cluster.name, result.summary())
    return result
