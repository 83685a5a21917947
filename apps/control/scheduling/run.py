"""One run of a scheduled operation: what ``operation_run_task`` executes (DESIGN §4.5).

Idempotent per run id (the task id of the message), so a redelivered message does not act twice,
and a run interrupted and redelivered skips the targets it already handled.
"""

from __future__ import annotations

import datetime
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.models import AuditResult, AuditSource
from apps.audit.services import Actor
from apps.control.models import OperationRun, OperationRunState, OperationState, ScheduledOperation, ScheduleKind
from apps.control.operations import BatchResult, TargetResult, operation_batch_run
from apps.control.scheduling.cron import next_run_compute
from apps.control.scheduling.selectors import targets_ordered
from apps.control.scheduling.services import operation_audit_record
from kubedoor_site.beat import periodic_task_disable

logger = logging.getLogger(__name__)

SCHEDULER_ACTOR_NAME = "scheduler"


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
        microservices=targets_ordered(operation),
        replicas=operation.replicas,
        temporary=operation.temporary,
        restart_fallback=operation.restart_fallback,
        interval_seconds=operation.interval_seconds,
        skip=lambda microservice: done.get(microservice.pk),
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
            periodic_task_disable(name=operation.beat_name)
        operation_audit_record(
            actor=actor,
            operation=operation,
            action="operation.run",
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
