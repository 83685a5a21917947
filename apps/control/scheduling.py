"""Scheduled operations: now, once at a time, or by cron, backed by django-celery-beat (DESIGN §4.5).

The services here keep each ``ScheduledOperation`` and its beat entry (``PeriodicTask`` with a
one-off ``ClockedSchedule`` or a ``CrontabSchedule`` in the operation's time zone) in step, in one
transaction. ``operation_run`` is what the Celery task executes: idempotent per run id (the task
id of the message), so a redelivered message does not act twice.
"""

from __future__ import annotations

import datetime
import json
import logging
import zoneinfo
from collections.abc import Mapping, Sequence
from typing import Any

from croniter import croniter
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, PeriodicTask

from apps.audit.models import AuditResult, AuditSource
from apps.audit.services import Actor, audit_event_record
from apps.control.models import (
    MAX_INTERVAL_SECONDS,
    Microservice,
    OperationKind,
    OperationRun,
    OperationRunState,
    OperationState,
    ScheduledOperation,
    ScheduleKind,
)
from apps.control.operations import (
    BatchResult,
    TargetResult,
    operation_batch_run,
    operation_permission_check,
    replicas_validate,
)

logger = logging.getLogger(__name__)

RUN_TASK = "apps.control.tasks.operation_run_task"
SCHEDULER_ACTOR_NAME = "scheduler"
EDITABLE_FIELDS = (
    "targets",
    "replicas",
    "temporary",
    "interval_seconds",
    "schedule",
    "run_at",
    "cron",
    "time_zone",
    "enabled",
)


# --- pure helpers -----------------------------------------------------------------------------


def time_zone_get(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError({"time_zone": _("Unknown time zone %(tz)s.") % {"tz": name}}) from exc


def cron_fields(expression: str) -> list[str]:
    """The five fields of a standard cron expression; ``ValidationError`` on ``cron`` otherwise."""
    fields = expression.split()
    if len(fields) != 5 or not croniter.is_valid(" ".join(fields)):
        raise ValidationError(
            {"cron": _("Enter a valid cron expression with five fields: minute hour day-of-month month day-of-week.")}
        )
    return fields


def next_run_compute(
    *, schedule: str, run_at: datetime.datetime | None, cron: str, time_zone: str, after: datetime.datetime
) -> datetime.datetime | None:
    """When the operation runs next after ``after`` (UTC), or ``None`` (``now``, or a past ``once``).

    Cron times are wall-clock times in ``time_zone``, so the UTC instant follows daylight saving.
    """
    if schedule == ScheduleKind.ONCE:
        return run_at if run_at is not None and run_at > after else None
    if schedule == ScheduleKind.CRON:
        tz = time_zone_get(time_zone)
        following = croniter(" ".join(cron_fields(cron)), after.astimezone(tz)).get_next(datetime.datetime)
        return following.astimezone(datetime.UTC)
    return None


def _aware(value: datetime.datetime, time_zone: str) -> datetime.datetime:
    if timezone.is_naive(value):
        return value.replace(tzinfo=time_zone_get(time_zone))
    return value


def operation_snapshot(operation: ScheduledOperation) -> dict[str, Any]:
    return {
        "id": operation.pk,
        "kind": operation.kind,
        "targets": [str(service) for service in targets_ordered(operation)],
        "replicas": operation.replicas,
        "temporary": operation.temporary,
        "interval_seconds": operation.interval_seconds,
        "schedule": operation.schedule,
        "run_at": operation.run_at.isoformat() if operation.run_at else None,
        "cron": operation.cron,
        "time_zone": operation.time_zone,
        "enabled": operation.enabled,
        "state": operation.state,
    }


def targets_ordered(operation: ScheduledOperation) -> list[Microservice]:
    """The targets in the order they were given (the order of the many-to-many rows)."""
    through = ScheduledOperation.targets.through
    ids = list(
        through.objects.filter(scheduledoperation=operation).order_by("id").values_list("microservice_id", flat=True)
    )
    by_id = {service.pk: service for service in Microservice.objects.select_related("cluster").filter(pk__in=ids)}
    return [by_id[pk] for pk in ids if pk in by_id]


def operation_list() -> Any:
    """Scheduled operations, newest first (a selector kept beside its services)."""
    rows = ScheduledOperation.objects.select_related("cluster").prefetch_related("targets")
    return rows.order_by("-created_at", "-id")


# --- validation -------------------------------------------------------------------------------


def _validated(values: dict[str, Any], *, now: datetime.datetime, check_past: bool) -> dict[str, Any]:
    errors: dict[str, str] = {}
    kind = values["kind"]
    if kind not in OperationKind.values:
        errors["kind"] = _("Choose scale or restart.")
    targets: Sequence[Microservice] = values["targets"]
    if not targets:
        errors["targets"] = _("Choose at least one microservice.")
    elif len({service.cluster_id for service in targets}) > 1:
        errors["targets"] = _("All targets must be in the same cluster.")
    replicas = values["replicas"]
    if values.get("temporary") and kind == OperationKind.RESTART:
        errors["temporary"] = _("Only a scale can be temporary.")
    if replicas is not None and kind == OperationKind.RESTART:
        errors["replicas"] = _("Replicas only apply to scale operations.")
    else:
        try:
            replicas_validate(replicas)
        except ValidationError as exc:
            errors["replicas"] = exc.message_dict["replicas"][0]
    interval = values["interval_seconds"]
    if interval is None or not 0 <= interval <= MAX_INTERVAL_SECONDS:
        errors["interval_seconds"] = _("The interval must be between 0 and %(max)s seconds.") % {
            "max": MAX_INTERVAL_SECONDS
        }
    schedule = values["schedule"]
    try:
        time_zone_get(values["time_zone"])
        tz_ok = True
    except ValidationError as exc:
        errors["time_zone"] = exc.message_dict["time_zone"][0]
        tz_ok = False
    if schedule not in ScheduleKind.values:
        errors["schedule"] = _("Choose now, once or cron.")
    elif schedule == ScheduleKind.ONCE:
        values["cron"] = ""
        if values["run_at"] is None:
            errors["run_at"] = _("Give the time to run at.")
        elif tz_ok:
            values["run_at"] = _aware(values["run_at"], values["time_zone"]).astimezone(datetime.UTC)
            if check_past and values["run_at"] <= now:
                errors["run_at"] = _("The time to run at is in the past.")
    elif schedule == ScheduleKind.CRON:
        values["run_at"] = None
        try:
            values["cron"] = " ".join(cron_fields(values["cron"] or ""))
        except ValidationError as exc:
            errors["cron"] = exc.message_dict["cron"][0]
    else:
        values["run_at"] = None
        values["cron"] = ""
    if errors:
        raise ValidationError(errors)
    return values


def operation_validate(*, values: Mapping[str, Any], check_past: bool = True) -> dict[str, Any]:
    """Check an operation's fields as the services will (for forms); ``ValidationError`` names each bad field."""
    full = {
        "kind": values.get("kind"),
        "targets": list(values.get("targets") or []),
        "replicas": values.get("replicas"),
        "temporary": bool(values.get("temporary")),
        "interval_seconds": values.get("interval_seconds", 0),
        "schedule": values.get("schedule", ScheduleKind.NOW),
        "run_at": values.get("run_at"),
        "cron": values.get("cron") or "",
        "time_zone": values.get("time_zone") or "UTC",
    }
    return _validated(full, now=timezone.now(), check_past=check_past)


# --- the beat entry ---------------------------------------------------------------------------


def _beat_sync(operation: ScheduledOperation) -> None:
    """Create, update or delete the operation's beat entry so beat does exactly what the row says."""
    task = operation.periodic_task
    wanted = operation.schedule in (ScheduleKind.ONCE, ScheduleKind.CRON) and operation.state in (
        OperationState.SCHEDULED,
        OperationState.PAUSED,
    )
    if not wanted:
        if task is not None:
            operation.periodic_task = None
            operation.save(update_fields=["periodic_task"])
            _beat_delete(task)
        return
    if task is None:
        task = PeriodicTask(name=operation.beat_name, task=RUN_TASK)
    old_clocked = task.clocked
    if operation.schedule == ScheduleKind.ONCE:
        assert operation.run_at is not None
        if old_clocked is not None and old_clocked.clocked_time == operation.run_at:
            task.clocked = old_clocked
        else:
            task.clocked = ClockedSchedule.objects.create(clocked_time=operation.run_at)
        task.crontab = None
        task.one_off = True
    else:
        minute, hour, day_of_month, month_of_year, day_of_week = cron_fields(operation.cron)
        task.crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
            timezone=zoneinfo.ZoneInfo(operation.time_zone),
        )
        task.clocked = None
        task.one_off = False
    task.interval = None
    task.solar = None
    task.kwargs = json.dumps({"operation_id": operation.pk})
    task.enabled = operation.enabled and operation.state == OperationState.SCHEDULED
    task.description = f"KubeDoor {operation.kind} of {operation.targets.count()} microservice(s)"
    if task.enabled and task.one_off:
        task.last_run_at = None  # a re-armed one-off must fire again
    task.save()
    if operation.periodic_task_id != task.pk:
        operation.periodic_task = task
        operation.save(update_fields=["periodic_task"])
    if old_clocked is not None and old_clocked != task.clocked:
        ClockedSchedule.objects.filter(pk=old_clocked.pk, periodictask__isnull=True).delete()


def _beat_delete(task: PeriodicTask) -> None:
    clocked = task.clocked
    task.delete()
    if clocked is not None:
        ClockedSchedule.objects.filter(pk=clocked.pk, periodictask__isnull=True).delete()


def _enqueue_now(operation_id: int) -> None:
    from apps.control.tasks import operation_run_task

    operation_run_task.apply_async(kwargs={"operation_id": operation_id})


# --- services ---------------------------------------------------------------------------------


def operation_schedule(
    *,
    actor: Actor,
    kind: str,
    targets: Sequence[Microservice],
    replicas: int | None = None,
    temporary: bool = False,
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
        operation_permission_check(actor=actor, kind=kind)
    now = timezone.now()
    values = _validated(
        {
            "kind": kind,
            "targets": list(targets),
            "replicas": replicas,
            "temporary": temporary,
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
        for service in values["targets"]:
            operation.targets.add(service)
        _beat_sync(operation)
        audit_event_record(
            actor=actor,
            action="operation.schedule",
            cluster=operation.cluster.name,
            name=f"operation-{operation.pk}",
            after=operation_snapshot(operation),
        )
        if operation.schedule == ScheduleKind.NOW and enabled:
            transaction.on_commit(lambda: _enqueue_now(operation.pk))
    logger.info("operation %s scheduled: %s %s by %s", operation.pk, kind, schedule, actor.name)
    return operation


def operation_update(*, actor: Actor, operation: ScheduledOperation, data: Mapping[str, Any]) -> ScheduledOperation:
    """Edit a scheduled operation (targets, replicas, interval, schedule, enabled) and its beat entry."""
    unknown = set(data) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({field: _("This field cannot be changed.") for field in sorted(unknown)})
    operation_permission_check(actor=actor, kind=operation.kind)
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
        values = _validated(merged, now=now, check_past=time_changed and merged["schedule"] == ScheduleKind.ONCE)
        if values["schedule"] == ScheduleKind.NOW and operation.schedule != ScheduleKind.NOW:
            raise ValidationError({"schedule": _("A scheduled operation cannot be turned into a run now.")})
        for field in ("replicas", "temporary", "interval_seconds", "schedule", "run_at", "cron", "time_zone"):
            setattr(operation, field, values[field])
        if "targets" in data:
            operation.cluster_id = values["targets"][0].cluster_id
            operation.targets.clear()
            for service in values["targets"]:
                operation.targets.add(service)
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
            audit_event_record(
                actor=actor,
                action="operation.update",
                cluster=operation.cluster.name,
                name=f"operation-{operation.pk}",
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
    operation_permission_check(actor=actor, kind=operation.kind)
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
        audit_event_record(
            actor=actor,
            action="operation.cancel",
            cluster=operation.cluster.name,
            name=f"operation-{operation.pk}",
            before=before,
            after={"state": operation.state, "enabled": False},
        )
    logger.info("operation %s cancelled by %s", operation.pk, actor.name)
    return operation


def _stale_after(operation: ScheduledOperation) -> datetime.timedelta:
    """How long a run may go without progress before a redelivered message takes it over."""
    per_target = operation.interval_seconds + 2 * float(settings.KUBEDOOR_K8S_TIMEOUT_SECONDS) + 60
    return datetime.timedelta(seconds=per_target)


def operation_run(*, operation_id: int, run_id: str) -> BatchResult | None:
    """Execute one run of an operation (what the Celery task calls); ``None`` when nothing was done.

    Idempotent by ``run_id``: a finished run is not repeated, and a run interrupted and redelivered
    skips the targets it already handled. Acts as ``scheduler`` on behalf of the creator.
    """
    operation = ScheduledOperation.objects.select_related("cluster", "created_by").filter(pk=operation_id).first()
    if operation is None:
        logger.warning("operation %s does not exist (run %s)", operation_id, run_id)
        return None
    if operation.state in (OperationState.CANCELLED, OperationState.DONE) or not operation.enabled:
        logger.info("operation %s is %s: run %s skipped", operation_id, operation.state, run_id)
        return None
    try:
        with transaction.atomic():
            run, created = OperationRun.objects.get_or_create(run_id=run_id, defaults={"operation": operation})
    except IntegrityError:
        run, created = OperationRun.objects.get(run_id=run_id), False
    if not created and run.state == OperationRunState.DONE:
        logger.info("run %s of operation %s already done: redelivery ignored", run_id, operation_id)
        return None
    if not created and run.updated_at > timezone.now() - _stale_after(operation):
        # The broker redelivered a message whose first delivery is still working (a long batch):
        # leave it; only a run without progress for longer than a target can take is resumed.
        logger.info("run %s of operation %s still in progress elsewhere: redelivery ignored", run_id, operation_id)
        return None
    done = {int(item["service_id"]): TargetResult(**item) for item in run.results}
    if operation.schedule != ScheduleKind.CRON:
        ScheduledOperation.objects.filter(pk=operation.pk).update(state=OperationState.RUNNING)
    actor = Actor.system(SCHEDULER_ACTOR_NAME, source=AuditSource.TASK, on_behalf_of=operation.created_by)
    progress = list(run.results)

    def persist(result: TargetResult) -> None:
        progress.append(result.as_dict())
        OperationRun.objects.filter(pk=run.pk).update(results=progress, updated_at=timezone.now())

    batch = operation_batch_run(
        actor=actor,
        kind=operation.kind,
        services=targets_ordered(operation),
        replicas=operation.replicas,
        temporary=operation.temporary,
        interval_seconds=operation.interval_seconds,
        skip=lambda service: done.get(service.pk),
        on_result=persist,
    )
    finished = timezone.now()
    summary = {"run_id": run_id, **batch.as_dict()}
    with transaction.atomic():
        OperationRun.objects.filter(pk=run.pk).update(
            state=OperationRunState.DONE,
            finished_at=finished,
            updated_at=finished,
            results=[r.as_dict() for r in batch.results],
        )
        operation = ScheduledOperation.objects.select_for_update().select_related("cluster").get(pk=operation.pk)
        operation.last_run_at = finished
        operation.last_result = summary
        if operation.schedule == ScheduleKind.CRON:
            if operation.state == OperationState.RUNNING:
                operation.state = OperationState.SCHEDULED
            operation.next_run_at = (
                next_run_compute(
                    schedule=operation.schedule,
                    run_at=None,
                    cron=operation.cron,
                    time_zone=operation.time_zone,
                    after=finished,
                )
                if operation.enabled and operation.state == OperationState.SCHEDULED
                else None
            )
        elif operation.state != OperationState.CANCELLED:
            # now / once ran: they disable themselves (beat already disabled the one-off entry)
            operation.state = OperationState.DONE
            operation.enabled = False
            operation.next_run_at = None
        operation.save()
        if operation.periodic_task_id and operation.schedule == ScheduleKind.ONCE:
            PeriodicTask.objects.filter(pk=operation.periodic_task_id).update(enabled=False)
        audit_event_record(
            actor=actor,
            action="operation.run",
            cluster=operation.cluster.name,
            name=f"operation-{operation.pk}",
            after=summary,
            result=AuditResult.OK if batch.ok else AuditResult.ERROR,
            message=(
                _("%(ok)s succeeded, %(failed)s failed: %(names)s")
                % {"ok": len(batch.succeeded), "failed": len(batch.failed), "names": ", ".join(batch.failed)}
                if batch.failed
                else _("%(ok)s succeeded") % {"ok": len(batch.succeeded)}
            ),
        )
    logger.info("operation %s run %s: %s ok, %s failed", operation.pk, run_id, len(batch.succeeded), len(batch.failed))
    return batch
