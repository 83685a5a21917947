"""Schedule, edit, pause, resume and cancel operations, keeping each one's beat entry in step (DESIGN §4.5).

Each service changes the ``ScheduledOperation``, its beat entry (a one-off clocked entry for
``once``, a crontab in the operation's time zone for ``cron``, none for ``now`` or a finished
operation) and its audit event in one transaction; ``now`` is queued for a worker after commit.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.services import Actor, audit_event_record
from apps.control.models import Microservice, OperationKind, OperationState, ScheduledOperation, ScheduleKind
from apps.control.operations import operation_permission_check
from apps.control.queue import OPERATION_RUN_TASK, operation_run_enqueue
from apps.control.scheduling.cron import cron_fields, next_run_compute
from apps.control.scheduling.selectors import targets_ordered
from apps.control.scheduling.validation import EDITABLE_FIELDS, operation_values_validate
from kubedoor_site.beat import Clocked, Crontab, periodic_task_sync, periodic_tasks_delete
from kubedoor_site.exceptions import editable_fields_check

logger = logging.getLogger(__name__)


def operation_audit_record(*, actor: Actor, operation: ScheduledOperation, action: str, **fields: Any) -> None:
    """Append the event of ``action`` on ``operation`` (named ``operation-<id>`` in its cluster)."""
    audit_event_record(
        actor=actor, action=action, cluster=operation.cluster.name, name=f"operation-{operation.pk}", **fields
    )


def operation_snapshot(operation: ScheduledOperation) -> dict[str, Any]:
    """The audited state of an operation."""
    return {
        "id": operation.pk,
        "kind": operation.kind,
        "targets": [str(microservice) for microservice in targets_ordered(operation)],
        "replicas": operation.replicas,
        "temporary": operation.temporary,
        "restart_fallback": operation.restart_fallback,
        "interval_seconds": operation.interval_seconds,
        "schedule": operation.schedule,
        "run_at": operation.run_at.isoformat() if operation.run_at else None,
        "cron": operation.cron,
        "time_zone": operation.time_zone,
        "enabled": operation.enabled,
        "state": operation.state,
    }


def _beat_sync(operation: ScheduledOperation) -> None:
    """Create, update or delete the operation's beat entry so beat does exactly what the row says."""
    wanted = operation.schedule in (ScheduleKind.ONCE, ScheduleKind.CRON) and operation.state in (
        OperationState.SCHEDULED,
        OperationState.PAUSED,
    )
    if not wanted:
        task = operation.periodic_task
        if task is not None:
            operation.periodic_task = None
            operation.save(update_fields=["periodic_task"])
            periodic_tasks_delete(names=[task.name])
        return
    schedule: Clocked | Crontab
    if operation.schedule == ScheduleKind.ONCE:
        assert operation.run_at is not None
        schedule = Clocked(at=operation.run_at)
    else:
        minute, hour, day_of_month, month_of_year, day_of_week = cron_fields(operation.cron)
        schedule = Crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
            time_zone=operation.time_zone,
        )
    task = periodic_task_sync(
        name=operation.beat_name,
        task=OPERATION_RUN_TASK,
        schedule=schedule,
        kwargs={"operation_id": operation.pk},
        enabled=operation.enabled and operation.state == OperationState.SCHEDULED,
        description=f"KubeDoor {operation.kind} of {operation.targets.count()} microservice(s)",
    )
    if task is not None and operation.periodic_task_id != task.pk:
        operation.periodic_task = task
        operation.save(update_fields=["periodic_task"])


def operation_schedule(
    *,
    actor: Actor,
    kind: str,
    targets: Sequence[Microservice],
    replicas: int | None = None,
    temporary: bool = False,
    restart_fallback: bool = False,
    interval_seconds: int = 0,
    schedule: str = ScheduleKind.NOW,
    run_at: datetime.datetime | None = None,
    cron: str = "",
    time_zone: str = "UTC",
    enabled: bool = True,
) -> ScheduledOperation:
    """Create an operation and its beat entry; ``now`` is queued for a worker once the transaction commits.

    Raises ``ValidationError`` naming each bad field, ``PermissionDenied`` for a person without the
    kind's permission; nothing is written then.
    """
    if kind in OperationKind.values:
        operation_permission_check(actor=actor, kind=kind, targets=targets)
    now = timezone.now()
    values = operation_values_validate(
        {
            "kind": kind,
            "targets": list(targets),
            "replicas": replicas,
            "temporary": temporary,
            "restart_fallback": restart_fallback,
            "interval_seconds": interval_seconds,
            "schedule": schedule,
            "run_at": run_at,
            "cron": cron,
            "time_zone": time_zone,
        },
        now=now,
        check_past=True,
    )
    with transaction.atomic():
        operation = ScheduledOperation.objects.create(
            kind=kind,
            cluster_id=values["targets"][0].cluster_id,
            replicas=values["replicas"],
            temporary=bool(values["temporary"]),
            restart_fallback=bool(values["restart_fallback"]),
            interval_seconds=values["interval_seconds"],
            schedule=values["schedule"],
            run_at=values["run_at"],
            cron=values["cron"],
            time_zone=values["time_zone"],
            enabled=enabled,
            state=OperationState.SCHEDULED if enabled else OperationState.PAUSED,
            created_by=actor.user,
            created_by_name=actor.name,
            next_run_at=next_run_compute(
                schedule=values["schedule"],
                run_at=values["run_at"],
                cron=values["cron"],
                time_zone=values["time_zone"],
                after=now,
            ),
        )
        for microservice in values["targets"]:
            operation.targets.add(microservice)
        _beat_sync(operation)
        operation_audit_record(
            actor=actor,
            operation=operation,
            action="operation.schedule",
            after=operation_snapshot(operation),
        )
        if operation.schedule == ScheduleKind.NOW and enabled:
            transaction.on_commit(lambda: operation_run_enqueue(operation_id=operation.pk))
    logger.info("operation %s scheduled: %s %s by %s", operation.pk, kind, schedule, actor.name)
    return operation


def operation_update(*, actor: Actor, operation: ScheduledOperation, data: Mapping[str, Any]) -> ScheduledOperation:
    """Edit a scheduled operation (targets, replicas, interval, schedule, enabled) and its beat entry."""
    editable_fields_check(data, EDITABLE_FIELDS)
    operation_permission_check(
        actor=actor,
        kind=operation.kind,
        targets=[*operation.targets.select_related("cluster"), *data.get("targets", [])],
    )
    with transaction.atomic():
        operation = ScheduledOperation.objects.select_for_update().select_related("cluster").get(pk=operation.pk)
        if operation.state in (OperationState.CANCELLED, OperationState.DONE):
            raise ValidationError(
                {
                    "non_field_errors": _("A %(state)s operation cannot be changed.")
                    % {"state": operation.get_state_display()}
                }
            )
        before = operation_snapshot(operation)
        current = {
            "kind": operation.kind,
            "targets": targets_ordered(operation),
            "replicas": operation.replicas,
            "temporary": operation.temporary,
            "restart_fallback": operation.restart_fallback,
            "interval_seconds": operation.interval_seconds,
            "schedule": operation.schedule,
            "run_at": operation.run_at,
            "cron": operation.cron,
            "time_zone": operation.time_zone,
        }
        merged = {**current, **{k: v for k, v in data.items() if k != "enabled"}}
        if "targets" in data:
            merged["targets"] = list(data["targets"])
        now = timezone.now()
        time_changed = any(key in data for key in ("run_at", "schedule", "time_zone"))
        values = operation_values_validate(
            merged, now=now, check_past=time_changed and merged["schedule"] == ScheduleKind.ONCE
        )
        if values["schedule"] == ScheduleKind.NOW and operation.schedule != ScheduleKind.NOW:
            raise ValidationError({"schedule": _("A scheduled operation cannot be turned into a run now.")})
        stored = ("replicas", "temporary", "restart_fallback", "interval_seconds", "schedule", "run_at", "cron")
        for field in (*stored, "time_zone"):
            setattr(operation, field, values[field])
        if "targets" in data:
            operation.cluster_id = values["targets"][0].cluster_id
            operation.targets.clear()
            for microservice in values["targets"]:
                operation.targets.add(microservice)
        if "enabled" in data:
            operation.enabled = bool(data["enabled"])
        if operation.state in (OperationState.SCHEDULED, OperationState.PAUSED):
            operation.state = OperationState.SCHEDULED if operation.enabled else OperationState.PAUSED
        operation.next_run_at = (
            next_run_compute(
                schedule=operation.schedule,
                run_at=operation.run_at,
                cron=operation.cron,
                time_zone=operation.time_zone,
                after=now,
            )
            if operation.enabled
            else None
        )
        operation.save()
        _beat_sync(operation)
        after = operation_snapshot(operation)
        changed = [key for key in after if before.get(key) != after.get(key)]
        if changed:
            operation_audit_record(
                actor=actor,
                operation=operation,
                action="operation.update",
                before={key: before.get(key) for key in changed},
                after={key: after[key] for key in changed},
            )
    return operation


def operation_pause(*, actor: Actor, operation: ScheduledOperation) -> ScheduledOperation:
    return operation_update(actor=actor, operation=operation, data={"enabled": False})


def operation_resume(*, actor: Actor, operation: ScheduledOperation) -> ScheduledOperation:
    return operation_update(actor=actor, operation=operation, data={"enabled": True})


def operation_cancel(*, actor: Actor, operation: ScheduledOperation) -> ScheduledOperation:
    """Stop an operation for good: its beat entry is deleted; the row stays as history."""
    operation_permission_check(actor=actor, kind=operation.kind, targets=operation.targets.select_related("cluster"))
    with transaction.atomic():
        operation = ScheduledOperation.objects.select_for_update().select_related("cluster").get(pk=operation.pk)
        if operation.state == OperationState.CANCELLED:
            return operation
        before = {"state": operation.state, "enabled": operation.enabled}
        operation.state = OperationState.CANCELLED
        operation.enabled = False
        operation.next_run_at = None
        operation.save()
        _beat_sync(operation)
        operation_audit_record(
            actor=actor,
            operation=operation,
            action="operation.cancel",
            before=before,
            after={"state": operation.state, "enabled": False},
        )
    logger.info("operation %s cancelled by %s", operation.pk, actor.name)
    return operation
