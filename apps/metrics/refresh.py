"""Refreshing the control table from the daily-peak archive (DESIGN §5.4).

For each Deployment seen in the cluster's lookback, the source day's statistics of its controlled
container become the row's measured fields and, where the rules allow, its requests. The source day
is the service's busiest day (``service`` mode) or the cluster's busiest day (``cluster`` mode, as in
KubeDoor 0.2); in ``cluster`` mode a Deployment with no row on that day (new since) falls back to its
own busiest day rather than keeping no statistics.

What a refresh never overwrites: ``pod_count_manual``, ``pod_count_ai``, ``replicas_mode``, a set
``container`` (whoever set it), the per-service headroom/floor overrides, and limits of an existing
row (limits are copied from observation only when the row is created).

**Requests edited by hand.** A request field (``request_cpu_m`` / ``request_mem_mib``) counts as set
by a person when the latest audited person-made change to that field (``microservice.create`` or
``microservice.update`` from the admin or the API) left a value in it. Such a request is never
refreshed; a person clearing the field (setting it empty) hands it back to collection. Requests
written by refreshes, imports and discovery are refreshed. The audit trail is the record of who
changed what, so no extra column is needed and a change of headroom still applies to every
collected row.

All writes of one refresh happen in one transaction with bulk operations: new rows, changed rows,
one audit event per changed row (bulk-inserted; discoveries go through ``audit_event_record`` so
"new service found" notifications fire) and one ``collection.run`` summary.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
from collections.abc import Iterable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.models import AuditEvent, AuditResult, AuditSource
from apps.audit.services import Actor, audit_event_record
from apps.control.choices import PeakDayMode
from apps.control.models import Cluster, Microservice
from apps.metrics import peaks
from apps.metrics.store import PeakStore, StatRow

logger = logging.getLogger(__name__)

REQUEST_FIELDS = ("request_cpu_m", "request_mem_mib")
DISCOVERED_FIELDS = (
    "container",
    "pod_count",
    "request_cpu_m",
    "request_mem_mib",
    "limit_cpu_m",
    "limit_mem_mib",
    "source_day",
)
MEASURED_FIELDS = (
    "container",
    "pod_count",
    "p95_cpu_pct",
    "p95_mem_pct",
    "p95_cpu_cores",
    "p95_mem_mib",
    "request_cpu_m",
    "request_mem_mib",
    "request_capped",
    "source_day",
    "is_present",
    "hpa_name",
)
PERSON_SOURCES = (AuditSource.ADMIN, AuditSource.API)
# Up to this many new services each get a "new service found" notification; beyond it (a first
# collection of a big cluster) the discoveries are recorded in bulk and the summary carries the count.
DISCOVERY_NOTIFY_LIMIT = 50
UPDATE_BATCH = 5000


@dataclasses.dataclass
class RefreshResult:
    added: int = 0
    updated: int = 0
    vanished: int = 0
    unchanged: int = 0
    unmanaged: list[str] = dataclasses.field(default_factory=list)
    cluster_source_day: datetime.date | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "vanished": self.vanished,
            "unchanged": self.unchanged,
            "unmanaged": len(self.unmanaged),
            "cluster_source_day": self.cluster_source_day,
        }


def hand_set_requests(*, cluster: Cluster) -> dict[tuple[str, str], set[str]]:
    """(namespace, name) → the request fields a person set last (see the module docstring)."""
    state: dict[tuple[str, str, str], bool] = {}
    events = (
        AuditEvent.objects.filter(
            cluster=cluster.name,
            action__in=("microservice.create", "microservice.update"),
            source__in=PERSON_SOURCES,
        )
        .order_by("at", "id")
        .values_list("namespace", "name", "after")
    )
    for namespace, name, after in events.iterator(chunk_size=2000):
        if not isinstance(after, dict):
            continue
        for field in REQUEST_FIELDS:
            if field in after:
                state[(namespace, name, field)] = after[field] is not None
    result: dict[tuple[str, str], set[str]] = {}
    for (namespace, name, field), is_set in state.items():
        if is_set:
            result.setdefault((namespace, name), set()).add(field)
    return result


def _values(service: Microservice, fields: Iterable[str]) -> dict[str, Any]:
    return {field: getattr(service, field) for field in fields}


def _jsonable(value: Any) -> Any:
    """Dates as ISO strings, like ``audit_event_record`` stores them (the values here are flat)."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, datetime.date):
        return json.loads(json.dumps(value, cls=DjangoJSONEncoder))
    return value


def _apply(
    *,
    cluster: Cluster,
    service: Microservice,
    day: datetime.date,
    day_rows: list[StatRow],
    hand_set: set[str],
    created: bool,
) -> None:
    """Write one source day's statistics into a control row (in memory), following §5.4."""
    service.is_present = True
    name, write_name = peaks.controlled_container(deployment=service.name, configured=service.container, rows=day_rows)
    if name is None:
        return  # the configured container was not seen that day: keep the measured fields
    row = next(r for r in day_rows if r.container == name)
    if write_name:
        service.container = name
    service.source_day = day
    service.pod_count = row.pod_count or 0
    service.p95_cpu_cores = row.p95_cpu_cores
    service.p95_mem_mib = row.p95_mem_mib
    service.p95_cpu_pct = row.p95_cpu_pct
    service.p95_mem_pct = row.p95_mem_pct
    if created:
        service.pod_count_init = service.pod_count
        service.limit_cpu_m = row.limit_cpu_m
        service.limit_mem_mib = row.limit_mem_mib
    cpu, mem = peaks.request_from_peak(
        p95_cpu_cores=row.p95_cpu_cores,
        p95_mem_mib=row.p95_mem_mib,
        cpu_headroom=service.cpu_headroom if service.cpu_headroom is not None else cluster.cpu_headroom,
        mem_headroom=service.mem_headroom if service.mem_headroom is not None else cluster.mem_headroom,
        min_cpu_m=service.min_cpu_m if service.min_cpu_m is not None else cluster.min_cpu_m,
        min_mem_mib=service.min_mem_mib if service.min_mem_mib is not None else cluster.min_mem_mib,
    )
    capped = False
    refreshed_any = False
    if "request_cpu_m" not in hand_set and cpu is not None:
        service.request_cpu_m, was_capped = peaks.cap_at_limit(cpu, service.limit_cpu_m)
        capped |= was_capped
        refreshed_any = True
    if "request_mem_mib" not in hand_set and mem is not None:
        service.request_mem_mib, was_capped = peaks.cap_at_limit(mem, service.limit_mem_mib)
        capped |= was_capped
        refreshed_any = True
    if refreshed_any:
        service.request_capped = capped


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
    if cluster.peak_day_mode == PeakDayMode.CLUSTER:
        result.cluster_source_day = peaks.cluster_source_day(rows)
    hand = hand_set_requests(cluster=cluster)
    existing = {(s.namespace, s.name): s for s in Microservice.objects.filter(cluster=cluster)}
    now = timezone.now()

    new_rows: list[Microservice] = []
    changed: list[tuple[Microservice, dict[str, Any], dict[str, Any]]] = []
    for key in sorted(services):
        days = services[key]
        day = (
            result.cluster_source_day
            if result.cluster_source_day is not None and result.cluster_source_day in days
            else peaks.service_source_day(days)
        )
        service = existing.get(key)
        if service is None:
            if not cluster.auto_register_new:
                result.unmanaged.append(f"{key[0]}/{key[1]}")
                continue
            service = Microservice(cluster=cluster, namespace=key[0], name=key[1], updated_by=actor.name)
            _apply(cluster=cluster, service=service, day=day, day_rows=days[day], hand_set=set(), created=True)
            if hpa_targets is not None:
                service.hpa_name = hpa_targets.get(key, "")
            service.created_at = service.updated_at = now
            new_rows.append(service)
            continue
        before = _values(service, MEASURED_FIELDS)
        _apply(
            cluster=cluster, service=service, day=day, day_rows=days[day], hand_set=hand.get(key, set()), created=False
        )
        if hpa_targets is not None:
            service.hpa_name = hpa_targets.get(key, "")
        after = _values(service, MEASURED_FIELDS)
        if before != after:
            diff_keys = [f for f in MEASURED_FIELDS if before[f] != after[f]]
            changed.append((service, {f: before[f] for f in diff_keys}, {f: after[f] for f in diff_keys}))
        else:
            result.unchanged += 1

    vanished: list[Microservice] = []
    for key, service in existing.items():
        if key not in services and service.is_present:
            service.is_present = False
            vanished.append(service)

    result.added = len(new_rows)
    result.updated = len(changed)
    result.vanished = len(vanished)

    with transaction.atomic():
        if new_rows:
            Microservice.objects.bulk_create(new_rows, batch_size=1000)
        to_update = [service for service, _, _ in changed] + vanished
        for service in to_update:
            service.updated_at = now
            service.updated_by = actor.name
        if to_update:
            bulk_update(to_update, [*MEASURED_FIELDS, "updated_at", "updated_by"])
        events = [
            _event(actor, "microservice.refresh", cluster, service, before, after) for service, before, after in changed
        ] + [
            _event(actor, "microservice.vanished", cluster, service, {"is_present": True}, {"is_present": False})
            for service in vanished
        ]
        bulk_insert_events(events)
        discovered = [
            _event(
                actor,
                "microservice.discovered",
                cluster,
                service,
                None,
                _values(service, DISCOVERED_FIELDS),
                message="new service found",
            )
            for service in new_rows
        ]
        if len(discovered) <= DISCOVERY_NOTIFY_LIMIT:
            for event in discovered:  # one by one: each notifies its subscribers
                audit_event_record(
                    actor=actor,
                    action=event.action,
                    cluster=event.cluster,
                    namespace=event.namespace,
                    name=event.name,
                    after=event.after,
                    message=event.message,
                )
        else:
            bulk_insert_events(discovered)
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


def bulk_update(services: list[Microservice], fields: list[str]) -> None:
    """Write ``fields`` of many control rows.

    On PostgreSQL one ``UPDATE … FROM unnest(arrays)`` per 5 000 rows (Django's ``bulk_update`` builds a
    CASE per field and row, which takes tens of seconds for 10 000 rows); elsewhere Django's own.
    Values are bound parameters; only the model's own column names are written into the statement.
    """
    if connection.vendor != "postgresql":
        Microservice.objects.bulk_update(services, fields, batch_size=1000)
        return
    meta = Microservice._meta
    quote = connection.ops.quote_name
    model_fields = [meta.get_field(name) for name in fields]
    pk = meta.pk
    assignments = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in model_fields)
    arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in [pk, *model_fields])
    columns = ", ".join(quote(c) for c in [pk.column, *(f.column for f in model_fields)])
    sql = (
        f"UPDATE {quote(meta.db_table)} AS m SET {assignments} "
        f"FROM unnest({arrays}) AS v({columns}) WHERE m.{quote(pk.column)} = v.{quote(pk.column)}"
    )
    connection.ensure_connection()
    # One array per column, bound on the server by psycopg's own cursor (Django's cursor would quote
    # every element in Python); same connection, inside the refresh's transaction.
    with connection.connection.cursor() as cursor:
        for start in range(0, len(services), UPDATE_BATCH):
            batch = services[start : start + UPDATE_BATCH]
            params = [[service.pk for service in batch]]
            params.extend([getattr(service, f.attname) for service in batch] for f in model_fields)
            cursor.execute(sql, params)


def bulk_insert_events(events: list[AuditEvent]) -> None:
    """Append many audit events (the per-row events of one refresh) in one statement per 5 000.

    On PostgreSQL an ``INSERT … SELECT FROM unnest(arrays)`` bound on the server (Django's
    ``bulk_create`` quotes every value in Python, seconds for 10 000 events); elsewhere ``bulk_create``.
    Only inserts: the trail stays append-only.
    """
    if connection.vendor != "postgresql":
        AuditEvent.objects.bulk_create(events, batch_size=1000)
        return
    meta = AuditEvent._meta
    quote = connection.ops.quote_name
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    arrays = ", ".join(
        "%s::text[]::jsonb[]" if f.get_internal_type() == "JSONField" else f"%s::{f.db_type(connection)}[]"
        for f in fields
    )
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"SELECT * FROM unnest({arrays})"
    )
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        for start in range(0, len(events), UPDATE_BATCH):
            batch = events[start : start + UPDATE_BATCH]
            params = []
            for f in fields:
                values = [getattr(event, f.attname) for event in batch]
                if f.get_internal_type() == "JSONField":
                    values = [None if v is None else json.dumps(v, cls=DjangoJSONEncoder) for v in values]
                params.append(values)
            cursor.execute(sql, params)


def _event(
    actor: Actor,
    action: str,
    cluster: Cluster,
    service: Microservice,
    before: dict[str, Any] | None,
    after: dict[str, Any],
    message: str = "",
) -> AuditEvent:
    return AuditEvent(
        actor=actor.user,
        actor_name=actor.name,
        source=actor.source,
        action=action,
        cluster=cluster.name,
        namespace=service.namespace,
        name=service.name,
        before=None if before is None else _jsonable(before),
        after=_jsonable(after),
        result=AuditResult.OK,
        message=message,
        request_id=actor.request_id,
        remote_addr=actor.remote_addr,
    )
