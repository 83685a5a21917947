"""Refreshing the control table from the daily-peak archive (DESIGN §5.4): metrics computes, control applies.

For each Deployment seen in the cluster's lookback, the source day's statistics of its controlled
container become a ``MicroserviceMeasurement``: pods, P95s, the observed limits, and the requests they
call for with the row's own headroom, floors and limits (the cluster's where the row sets none, or
for a Deployment without a row). The source day is the service's busiest day (``service`` mode) or
the cluster's busiest day (``cluster`` mode, as in KubeDoor 0.2), never a day of the cluster's
excluded-days calendar (``apps.control.excluded_days``); in ``cluster`` mode a Deployment
with no row on that day (new since) falls back to its own busiest day rather than keeping no
statistics.

The numbers themselves come from ``apps.metrics.recommender`` (pure): the requests with the safety
feedback of the lookback (OOM kills, throttling, the change clamp, the minimum days of data) and the
recommended pods, each with the reasons that made it (the row's ``explanation``).

``apps.control.measurements.microservices_measurements_apply`` writes them: it creates rows, keeps
what a refresh must never overwrite (specified pods, replicas mode, a set container,
overrides, limits of an existing row, requests a person set), marks vanished rows and audits every
change. The refresh adds one ``collection.run`` summary, in the same transaction.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import transaction

from apps.audit.services import Actor, audit_event_record
from apps.control.choices import PeakDayMode, ReplicasMode
from apps.control.containers import controlled_container
from apps.control.excluded_days import excluded_dates
from apps.control.measurements import (
    MicroserviceMeasurement,
    MicroserviceSettings,
    microservice_settings_list,
    microservices_measurements_apply,
)
from apps.control.models import Cluster
from apps.metrics import peaks, recommender
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


@dataclasses.dataclass(frozen=True)
class SourceDayChoice:
    """A service's source day, the rule that chose it, and the excluded days left out of the choice."""

    day: datetime.date
    rule: str  # "service", "cluster" or "service_fallback"
    excluded_days: tuple[datetime.date, ...] = ()


def source_day_choose(
    *,
    days: Mapping[datetime.date, Sequence[StatRow]],
    cluster_day: datetime.date | None,
    excluded_days: tuple[datetime.date, ...] = (),
) -> SourceDayChoice:
    """The one place a service's source day is chosen from its days in the lookback (DESIGN §5.4).

    ``cluster_day``: the cluster's busiest day in ``cluster`` mode (``None`` in ``service`` mode); a
    service absent that day falls back to its own busiest day.
    """
    if cluster_day is not None and cluster_day in days:
        return SourceDayChoice(day=cluster_day, rule="cluster", excluded_days=excluded_days)
    rule = "service" if cluster_day is None else "service_fallback"
    return SourceDayChoice(day=peaks.service_source_day(days), rule=rule, excluded_days=excluded_days)


def recommendation_settings(*, cluster: Cluster, settings: MicroserviceSettings) -> recommender.RecommendationSettings:
    """The cluster's settings, each replaced by the service's override where it sets one."""

    def pick(field: str) -> Any:
        own = getattr(settings, field)
        return own if own is not None else getattr(cluster, field)

    return recommender.RecommendationSettings(
        target_cpu_pct=pick("target_cpu_pct"),
        target_mem_pct=pick("target_mem_pct"),
        min_replicas=pick("min_replicas"),
        allow_single_replica=pick("allow_single_replica"),
        allow_scale_up=pick("allow_scale_up"),
        cpu_headroom=pick("cpu_headroom"),
        mem_headroom=pick("mem_headroom"),
        min_cpu_m=pick("min_cpu_m"),
        min_mem_mib=pick("min_mem_mib"),
        oom_bump=cluster.oom_bump,
        oom_bump_min_mib=cluster.oom_bump_min_mib,
        throttle_threshold_pct=cluster.throttle_threshold_pct,
        max_change_pct=cluster.max_change_pct,
        min_days=cluster.min_days,
    )


def lookback_of(
    *, days: Mapping[datetime.date, Sequence[StatRow]], container: str, excluded_days: Sequence[datetime.date] = ()
) -> recommender.Lookback:
    """What the lookback says of the controlled container: days with data, OOM kills, worst throttling."""
    rows = [row for day_rows in days.values() for row in day_rows if row.container == container]
    throttled = [row.throttled_pct for row in rows if row.throttled_pct is not None]
    return recommender.Lookback(
        days_with_data=len(days),
        oom_kills=sum(row.oom_kills or 0 for row in rows),
        throttled_pct=max(throttled) if throttled else None,
        excluded_days=tuple(excluded_days),
    )


def deployment_measure(
    *,
    cluster: Cluster,
    namespace: str,
    deployment: str,
    choice: SourceDayChoice,
    days: Mapping[datetime.date, Sequence[StatRow]],
    settings: MicroserviceSettings | None,
    hpa_name: str | None,
) -> MicroserviceMeasurement:
    """What the source day and the lookback say of one Deployment, for its row (``settings``; ``None``: no row)."""
    day_rows = days[choice.day]
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
    hpa = settings.hpa_name if hpa_name is None else hpa_name
    result = recommender.recommend(
        source=recommender.SourceDay(
            day=choice.day,
            rule=choice.rule,
            pod_count=row.pod_count or 0,
            p95_cpu_cores=row.p95_cpu_cores,
            p95_cpu_pct=row.p95_cpu_pct,
            p95_mem_mib=row.p95_mem_mib,
            p95_mem_pct=row.p95_mem_pct,
        ),
        lookback=lookback_of(days=days, container=container, excluded_days=choice.excluded_days),
        row=recommender.CurrentRow(
            request_cpu_m=settings.request_cpu_m,
            request_mem_mib=settings.request_mem_mib,
            limit_cpu_m=settings.limit_cpu_m,
            limit_mem_mib=settings.limit_mem_mib,
            is_hpa_managed=bool(hpa) or settings.replicas_mode == ReplicasMode.IGNORE,
        ),
        settings=recommendation_settings(cluster=cluster, settings=settings),
    )
    if not result.is_sufficient:  # too few days: presence and the reason only, the row's numbers stay
        return MicroserviceMeasurement(
            namespace=namespace,
            name=deployment,
            hpa_name=hpa_name,
            limit_cpu_m=row.limit_cpu_m,
            limit_mem_mib=row.limit_mem_mib,
            explanation=result.explanation(),
        )
    return MicroserviceMeasurement(
        namespace=namespace,
        name=deployment,
        source_day=choice.day,
        container=container,
        is_container_chosen=chosen,
        replicas_measured=row.pod_count or 0,
        request_cpu_m=result.request_cpu_m,
        request_cpu_capped=result.request_cpu_capped,
        request_mem_mib=result.request_mem_mib,
        request_mem_capped=result.request_mem_capped,
        hpa_name=hpa_name,
        replicas_recommended=result.replicas,
        explanation=result.explanation(),
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
        skipped = tuple(sorted(day for day in services[key] if day in excluded))
        measurements.append(
            deployment_measure(
                cluster=cluster,
                namespace=key[0],
                deployment=key[1],
                choice=source_day_choose(days=days, cluster_day=result.cluster_source_day, excluded_days=skipped),
                days=days,
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
