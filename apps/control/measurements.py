"""The measured side of the control table: what collection measured, applied to the rows in bulk (DESIGN §5.4).

Metrics computes, control applies. ``apps.metrics.refresh`` reads each row's own settings here
(``microservice_settings_list``), computes one ``MicroserviceMeasurement`` per Deployment seen in the
lookback and hands them to ``microservices_measurements_apply``; the import of KubeDoor 0.2 hands its
rows to ``microservices_import_apply``. With a person's edits (``apps.control.services``) these are the
only writers of the control table.

A refresh writes the recommended pods and the row's ``explanation`` (the reasons behind its numbers,
``apps.metrics.recommender``) with the measured fields; a row the refresh found too little data for keeps
its numbers and only gets the explanation saying so.

What a refresh never overwrites: ``replicas_specified``, ``replicas_mode``, a set
``container`` (whoever set it), the per-service headroom/floor overrides, the limits of an existing row
(observed limits are copied only into a new row), and a request a person set (``request_*_by_hand``,
set by ``apps.control.services`` when an admin or API user writes the request, cleared when they clear
it). An import adopts 0.2's values as they are, the specified and recommended pods included: they are
what 0.2's users set.

Both write in bulk, in the caller's transaction: new rows with ``bulk_create``; changed rows with one
``UPDATE … FROM unnest(arrays)`` per 5 000 on PostgreSQL (Django's ``bulk_update`` builds a CASE per
field and row: 37 s for 10 000 rows, against well under a second), with ``bulk_update`` elsewhere; one
audit event per changed row, through ``audit_events_record``.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Sequence
from typing import Any, cast

from django.db import connection, transaction
from django.db.models import Field
from django.utils import timezone
from psycopg.types.json import Jsonb

from apps.audit.services import Actor, AuditDraft, audit_events_record
from apps.control.models import Cluster, Microservice
from apps.control.services import MICROSERVICE_REQUEST_FIELDS, admission_params_changed

# The fields a refresh writes (and audits when they change).
MEASURED_FIELDS = (
    "container",
    "replicas_measured",
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
    "replicas_recommended",
    "explanation",
)
# The measured fields an audit event names when they change: the explanation is the reasons for the others.
AUDITED_FIELDS = tuple(field for field in MEASURED_FIELDS if field != "explanation")
# What the "new service found" event of a discovered row says.
DISCOVERED_FIELDS = (
    "container",
    "replicas_measured",
    "request_cpu_m",
    "request_mem_mib",
    "limit_cpu_m",
    "limit_mem_mib",
    "source_day",
)
# Whether a person set the request (CPU, memory), read with the measured fields.
REQUEST_BY_HAND_FIELDS = tuple(f"{field}_by_hand" for field in MICROSERVICE_REQUEST_FIELDS)
# Up to this many new services each get a "new service found" notification; beyond it (a first
# collection of a big cluster) the discoveries are recorded in bulk and the summary carries the count.
DISCOVERY_NOTIFY_LIMIT = 50
UPDATE_BATCH = 5000

Key = tuple[str, str]  # (namespace, Deployment name)


@dataclasses.dataclass(frozen=True, slots=True)
class MicroserviceSettings:
    """What may be set on a row that its measurement is computed with (the defaults: nothing set)."""

    container: str = ""
    cpu_headroom: float | None = None
    mem_headroom: float | None = None
    min_cpu_m: int | None = None
    min_mem_mib: int | None = None
    limit_cpu_m: int | None = None
    limit_mem_mib: int | None = None
    target_cpu_pct: float | None = None
    target_mem_pct: float | None = None
    min_replicas: int | None = None
    allow_single_replica: bool | None = None
    allow_scale_up: bool | None = None
    # The row as it stands, which the safety feedback compares with (no decrease after an OOM kill, the clamp).
    request_cpu_m: int | None = None
    request_mem_mib: int | None = None
    hpa_name: str = ""
    replicas_mode: str = "enforce"


SETTINGS_FIELDS = tuple(field.name for field in dataclasses.fields(MicroserviceSettings))


@dataclasses.dataclass(frozen=True, slots=True)
class MicroserviceMeasurement:
    """What one Deployment's source day says, computed for its control row (by ``apps.metrics``).

    ``source_day`` ``None``: the Deployment was seen, but not the container its row is set to; only its
    presence (and HPA) is known. ``container`` is the container measured; ``is_container_chosen`` says
    it was picked as the busiest of several, so a row with no container set takes its name (admission
    then patches the same one). ``request_*`` are the requests the statistics call for (P95 with the
    headroom, at least the floor, capped at the row's limit: ``request_*_capped``); ``None`` when there
    is nothing to compute them from. ``limit_*`` are the limits observed, copied only into a new row.
    ``hpa_name`` ``None``: the HPAs were not read, the row keeps its mark. ``replicas_recommended`` is the
    recommended pods (``None``: none, the explanation says why); ``explanation`` the reasons behind the
    numbers (``None``: leave the row's).
    """

    namespace: str
    name: str
    source_day: datetime.date | None = None
    container: str = ""
    is_container_chosen: bool = False
    replicas_measured: int = 0
    p95_cpu_cores: float | None = None
    p95_mem_mib: float | None = None
    p95_cpu_pct: float | None = None
    p95_mem_pct: float | None = None
    request_cpu_m: int | None = None
    request_cpu_capped: bool = False
    request_mem_mib: int | None = None
    request_mem_capped: bool = False
    limit_cpu_m: int | None = None
    limit_mem_mib: int | None = None
    hpa_name: str | None = None
    replicas_recommended: int | None = None
    explanation: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class MeasurementsApplied:
    added: int
    updated: int
    vanished: int
    unchanged: int
    unmanaged: list[str]  # "namespace/name" seen without a row, the cluster not registering new ones


@dataclasses.dataclass(frozen=True, slots=True)
class MicroserviceImported:
    """One row of KubeDoor 0.2's control table, its "not set" already turned into ``None``."""

    namespace: str
    name: str
    replicas_initial: int
    replicas_measured: int
    replicas_specified: int | None
    replicas_recommended: int | None
    p95_cpu_pct: float | None
    p95_mem_pct: float | None
    request_cpu_m: int | None
    request_mem_mib: int | None
    limit_cpu_m: int | None
    limit_mem_mib: int | None


IMPORTED_FIELDS = tuple(field.name for field in dataclasses.fields(MicroserviceImported))[2:]


@dataclasses.dataclass(frozen=True)
class ImportApplied:
    created: int
    updated: int
    unchanged: int


def microservice_settings_list(*, cluster: Cluster) -> dict[Key, MicroserviceSettings]:
    """The settings of the cluster's rows, by (namespace, name)."""
    rows = Microservice.objects.filter(cluster=cluster).order_by().values_list("namespace", "name", *SETTINGS_FIELDS)
    return {(namespace, name): MicroserviceSettings(*values) for namespace, name, *values in rows}


@transaction.atomic
def microservices_measurements_apply(
    *, cluster: Cluster, measurements: Iterable[MicroserviceMeasurement], actor: Actor
) -> MeasurementsApplied:
    """Apply one refresh's measurements to the cluster's control rows, following §5.4.

    A measured Deployment without a row gets one (when the cluster registers new Deployments, else it is
    listed in ``unmanaged``), audited as ``microservice.discovered`` ("new service found", notified while
    there are at most ``DISCOVERY_NOTIFY_LIMIT``); a row whose measured fields change is written and
    audited as ``microservice.refresh`` with exactly the fields that changed; a present row no
    measurement names is marked not present (``microservice.vanished``), never deleted.
    """
    read = (*MEASURED_FIELDS, *REQUEST_BY_HAND_FIELDS)
    existing = _rows_read(cluster=cluster, fields=read)
    blank = {field: _model_field(field).get_default() for field in read}
    new_rows: list[Microservice] = []
    changed: list[tuple[int, Key, dict[str, Any], dict[str, Any]]] = []  # pk, key, before, after
    seen: set[Key] = set()
    unmanaged: list[str] = []
    unchanged = 0
    for measurement in measurements:
        key = (measurement.namespace, measurement.name)
        seen.add(key)
        found = existing.get(key)
        if found is not None:
            after = _measured(found[1], measurement)
            if after != found[1]:
                changed.append((found[0], key, found[1], after))
            else:
                unchanged += 1
        elif cluster.auto_register_new:
            values = _measured(blank, measurement)
            new_rows.append(
                Microservice(
                    cluster=cluster,
                    namespace=measurement.namespace,
                    name=measurement.name,
                    replicas_initial=values["replicas_measured"],
                    limit_cpu_m=measurement.limit_cpu_m,
                    limit_mem_mib=measurement.limit_mem_mib,
                    updated_by=actor.name,
                    **values,
                )
            )
        else:
            unmanaged.append(f"{key[0]}/{key[1]}")
    vanished = [
        (pk, key, row, row | {"is_present": False})
        for key, (pk, row) in existing.items()
        if key not in seen and row["is_present"]
    ]

    drafts = [
        _change_draft(
            actor=actor, action=action, cluster=cluster, key=key, before=before, after=after, fields=AUDITED_FIELDS
        )
        for action, rows in (("microservice.refresh", changed), ("microservice.vanished", vanished))
        for _, key, before, after in rows
        if any(before[field] != after[field] for field in AUDITED_FIELDS)  # not when only the reasons changed
    ]
    drafts.extend(
        _row_draft(
            actor=actor,
            action="microservice.discovered",
            cluster=cluster,
            key=(microservice.namespace, microservice.name),
            after={field: getattr(microservice, field) for field in DISCOVERED_FIELDS},
            message="new service found",
            notify=len(new_rows) <= DISCOVERY_NOTIFY_LIMIT,
        )
        for microservice in new_rows
    )
    updates = [(pk, after) for pk, _, _, after in [*changed, *vanished]]
    _rows_write(new_rows=new_rows, updates=updates, fields=MEASURED_FIELDS, drafts=drafts, actor=actor)
    touched = [row.namespace for row in new_rows] + [key[0] for _, key, _, _ in [*changed, *vanished]]
    admission_params_changed(cluster=cluster, namespaces=touched)
    return MeasurementsApplied(
        added=len(new_rows),
        updated=len(changed),
        vanished=len(vanished),
        unchanged=unchanged,
        unmanaged=unmanaged,
    )


def _measured(row: dict[str, Any], measurement: MicroserviceMeasurement) -> dict[str, Any]:
    """A row's fields after ``measurement`` (§5.4): what a refresh may change, and what it must keep."""
    after = dict(row)
    after["is_present"] = True
    if measurement.hpa_name is not None:
        after["hpa_name"] = measurement.hpa_name
    if measurement.explanation is not None:
        after["explanation"] = measurement.explanation
    if measurement.source_day is None:
        return after  # its set container was not seen that day: the measured fields stay
    if measurement.is_container_chosen and not after["container"]:
        after["container"] = measurement.container
    after["source_day"] = measurement.source_day
    after["replicas_measured"] = measurement.replicas_measured
    after["p95_cpu_cores"] = measurement.p95_cpu_cores
    after["p95_mem_mib"] = measurement.p95_mem_mib
    after["p95_cpu_pct"] = measurement.p95_cpu_pct
    after["p95_mem_pct"] = measurement.p95_mem_pct
    after["replicas_recommended"] = measurement.replicas_recommended
    capped = refreshed = False
    if not row["request_cpu_m_by_hand"] and measurement.request_cpu_m is not None:
        after["request_cpu_m"] = measurement.request_cpu_m
        capped |= measurement.request_cpu_capped
        refreshed = True
    if not row["request_mem_mib_by_hand"] and measurement.request_mem_mib is not None:
        after["request_mem_mib"] = measurement.request_mem_mib
        capped |= measurement.request_mem_capped
        refreshed = True
    if refreshed:  # the flag speaks of the requests this refresh wrote
        after["request_capped"] = capped
    kept = [
        {"code": f"request_{kind}_by_hand", "params": {field: row[field]}}
        for kind, field in (("cpu", "request_cpu_m"), ("mem", "request_mem_mib"))
        if row[f"{field}_by_hand"]
    ]
    if kept and measurement.explanation is not None:  # the reasons say which request is a person's
        after["explanation"] = {**measurement.explanation, "reasons": [*measurement.explanation["reasons"], *kept]}
    return after


@transaction.atomic
def microservices_import_apply(
    *, cluster: Cluster, rows: Iterable[MicroserviceImported], actor: Actor
) -> ImportApplied:
    """Create or update the cluster's rows to KubeDoor 0.2's values; only changed rows are written.

    Each created or changed row is audited as ``microservice.import`` (a created row with every imported
    field, a changed one with the fields that changed); nothing is notified.
    """
    existing = _rows_read(cluster=cluster, fields=IMPORTED_FIELDS)
    new_rows: list[Microservice] = []
    created: list[AuditDraft] = []
    changed: list[AuditDraft] = []
    updates: list[tuple[int, dict[str, Any]]] = []
    unchanged = 0
    for row in rows:
        key = (row.namespace, row.name)
        values = {field: getattr(row, field) for field in IMPORTED_FIELDS}
        found = existing.get(key)
        if found is None:
            new_rows.append(
                Microservice(cluster=cluster, namespace=row.namespace, name=row.name, updated_by=actor.name, **values)
            )
            created.append(
                _row_draft(actor=actor, action="microservice.import", cluster=cluster, key=key, after=values)
            )
        elif found[1] != values:
            updates.append((found[0], values))
            changed.append(
                _change_draft(
                    actor=actor,
                    action="microservice.import",
                    cluster=cluster,
                    key=key,
                    before=found[1],
                    after=values,
                    fields=IMPORTED_FIELDS,
                )
            )
        else:
            unchanged += 1
    _rows_write(new_rows=new_rows, updates=updates, fields=IMPORTED_FIELDS, drafts=[*created, *changed], actor=actor)
    touched = [row.namespace for row in new_rows] + [draft.namespace for draft in changed]
    admission_params_changed(cluster=cluster, namespaces=touched)
    return ImportApplied(created=len(new_rows), updated=len(updates), unchanged=unchanged)


def _rows_read(*, cluster: Cluster, fields: Sequence[str]) -> dict[Key, tuple[int, dict[str, Any]]]:
    """The cluster's rows by (namespace, name): primary key and ``fields``, in the table's order."""
    rows = Microservice.objects.filter(cluster=cluster).values_list("pk", "namespace", "name", *fields)
    return {(namespace, name): (pk, dict(zip(fields, values, strict=True))) for pk, namespace, name, *values in rows}


def _change_draft(
    *,
    actor: Actor,
    action: str,
    cluster: Cluster,
    key: Key,
    before: dict[str, Any],
    after: dict[str, Any],
    fields: Sequence[str],
) -> AuditDraft:
    """The event of a row changed in bulk: exactly the ``fields`` that changed, before and after; not notified."""
    keys = [field for field in fields if before[field] != after[field]]
    return _row_draft(
        actor=actor,
        action=action,
        cluster=cluster,
        key=key,
        before={field: before[field] for field in keys},
        after={field: after[field] for field in keys},
    )


def _row_draft(
    *,
    actor: Actor,
    action: str,
    cluster: Cluster,
    key: Key,
    after: dict[str, Any],
    before: dict[str, Any] | None = None,
    message: str = "",
    notify: bool = False,
) -> AuditDraft:
    """The event of one control row (``key``: namespace, name) written in bulk."""
    return AuditDraft.by(
        actor,
        action=action,
        cluster=cluster.name,
        namespace=key[0],
        name=key[1],
        before=before,
        after=after,
        message=message,
        notify=notify,
    )


def _rows_write(
    *,
    new_rows: list[Microservice],
    updates: list[tuple[int, dict[str, Any]]],
    fields: Sequence[str],
    drafts: list[AuditDraft],
    actor: Actor,
) -> None:
    """New rows, changed rows (their ``fields``) and the audit events of both, in bulk."""
    if new_rows:
        Microservice.objects.bulk_create(new_rows, batch_size=1000)
    _rows_update(rows=updates, fields=fields, now=timezone.now(), actor=actor)
    audit_events_record(drafts=drafts)


def _model_field(name: str) -> Field[Any, Any]:
    """One of ``Microservice``'s own (concrete) fields: no relation's reverse side is measured or written."""
    return cast("Field[Any, Any]", Microservice._meta.get_field(name))


def _column(field: Field[Any, Any]) -> str:
    """The field's database column (a concrete field always has one)."""
    assert field.column is not None, field
    return field.column


def _db_value(value: Any, *, json: bool) -> Any:
    """A value as psycopg binds it in an array: JSON documents wrapped, the rest as they are."""
    return Jsonb(value) if json else value


def _rows_update(
    *, rows: Sequence[tuple[int, dict[str, Any]]], fields: Sequence[str], now: datetime.datetime, actor: Actor
) -> None:
    """Write ``fields`` (from each row's values), ``updated_at`` and ``updated_by`` of many rows by primary key.

    On PostgreSQL one ``UPDATE … FROM unnest(arrays)`` per ``UPDATE_BATCH`` rows, the arrays bound on the
    server; elsewhere Django's ``bulk_update``. Only the model's own column names enter the statement.
    """
    if not rows:
        return
    stamp = {"updated_at": now, "updated_by": actor.name}
    written = [*fields, *stamp]
    if connection.vendor != "postgresql":
        Microservice.objects.bulk_update(
            [Microservice(pk=pk, **values, **stamp) for pk, values in rows], written, batch_size=1000
        )
        return
    meta = Microservice._meta
    quote = connection.ops.quote_name
    model_fields = [_model_field(name) for name in written]
    key = meta.pk
    assert key is not None
    assignments = ", ".join(f"{quote(_column(f))} = v.{quote(_column(f))}" for f in model_fields)
    arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in [key, *model_fields])
    columns = ", ".join(quote(c) for c in [_column(key), *(_column(f) for f in model_fields)])
    sql = (
        f"UPDATE {quote(meta.db_table)} AS m SET {assignments} "
        f"FROM unnest({arrays}) AS v({columns}) WHERE m.{quote(_column(key))} = v.{quote(_column(key))}"
    )
    json_fields = {
        name for name, field in zip(written, model_fields, strict=True) if field.get_internal_type() == "JSONField"
    }
    connection.ensure_connection()
    # One array per column, bound on the server by psycopg's own cursor (Django's cursor would quote
    # every element in Python); same connection, inside the caller's transaction.
    with connection.connection.cursor() as cursor:
        for start in range(0, len(rows), UPDATE_BATCH):
            batch = rows[start : start + UPDATE_BATCH]
            params: list[list[Any]] = [[pk for pk, _ in batch]]
            params.extend([_db_value(values[name], json=name in json_fields) for _, values in batch] for name in fields)
            params.extend([value] * len(batch) for value in stamp.values())
            cursor.execute(sql, params)
