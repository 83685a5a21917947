"""Scheduled operations: now, once at a time, or by cron, backed by django-celery-beat (DESIGN §4.5).

One module per job; every public name is importable from here:

- ``cron``: time zones, cron fields, the next run time (pure);
- ``validation``: the fields of an operation, checked as the services store them;
- ``selectors``: reads (targets in their given order, the list);
- ``services``: schedule, update, pause, resume, cancel — each with its beat entry
  (``kubedoor_site.beat``) and audit event in one transaction;
- ``run``: one run of an operation, what ``apps.control.tasks.operation_run_task`` executes.
"""

from apps.control.queue import OPERATION_RUN_TASK as RUN_TASK
from apps.control.scheduling.cron import cron_fields, next_run_compute, time_zone_get
from apps.control.scheduling.run import SCHEDULER_ACTOR_NAME, operation_run
from apps.control.scheduling.selectors import operation_list, operation_scope_filter, targets_ordered
from apps.control.scheduling.services import (
    operation_cancel,
    operation_pause,
    operation_resume,
    operation_schedule,
    operation_snapshot,
    operation_update,
)
from apps.control.scheduling.validation import EDITABLE_FIELDS, operation_validate, operation_values_validate

__all__ = [
    "EDITABLE_FIELDS",
    "RUN_TASK",
    "SCHEDULER_ACTOR_NAME",
    "cron_fields",
    "next_run_compute",
    "operation_cancel",
    "operation_list",
    "operation_scope_filter",
    "operation_pause",
    "operation_resume",
    "operation_run",
    "operation_schedule",
    "operation_snapshot",
    "operation_update",
    "operation_validate",
    "operation_values_validate",
    "targets_ordered",
    "time_zone_get",
]
