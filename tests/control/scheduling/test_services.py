"""Scheduling services: the beat entry kept in step with schedule, edit, pause, resume and cancel."""

from __future__ import annotations

import datetime
import json
import zoneinfo

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, PeriodicTask

from apps.audit.models import AuditEvent
from apps.control import scheduling
from apps.control.models import ScheduledOperation
from tests.factories import api_actor

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def test_once_creates_a_one_off_clocked_beat_entry(operator_schedules, targets, operator):
    run_at = timezone.now() + datetime.timedelta(hours=2)

    operation = operator_schedules(kind="scale", replicas=4, schedule="once", run_at=run_at)

    task = PeriodicTask.objects.get()
    assert operation.periodic_task == task
    assert (task.name, task.task, task.one_off, task.enabled) == (
        f"kubedoor-operation-{operation.pk}",
        "apps.control.tasks.operation_run_task",
        True,
        True,
    )
    assert json.loads(task.kwargs) == {"operation_id": operation.pk}
    assert task.clocked.clocked_time == run_at
    assert task.crontab is None
    assert (operation.next_run_at, operation.state, operation.created_by) == (run_at, "scheduled", operator)
    event = AuditEvent.objects.get()
    assert (event.action, event.actor_name, event.cluster, event.name) == (
        "operation.schedule",
        "operator1",
        "prod",
        f"operation-{operation.pk}",
    )
    assert event.after["targets"] == ["shop/a", "shop/b"]


def test_cron_creates_a_crontab_in_the_time_zone(operator_schedules):
    operation = operator_schedules(schedule="cron", cron="0  9 * * 1-5", time_zone="Europe/Berlin")

    crontab = PeriodicTask.objects.get().crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year, crontab.day_of_week) == (
        "0",
        "9",
        "*",
        "*",
        "1-5",
    )
    assert str(crontab.timezone) == "Europe/Berlin"
    assert operation.cron == "0 9 * * 1-5"
    assert operation.next_run_at.astimezone(BERLIN).time() == datetime.time(9, 0)


def test_a_viewer_cannot_schedule(targets, viewer, k8s_standin):
    with pytest.raises(PermissionDenied):
        scheduling.operation_schedule(actor=api_actor(viewer), kind="restart", targets=targets)

    assert not ScheduledOperation.objects.exists()
    assert not AuditEvent.objects.exists()
    assert k8s_standin.requests == []


def test_pause_resume_and_edit_keep_the_beat_entry_in_step(operator_schedules, targets, operator):
    operation = operator_schedules(schedule="cron", cron="0 9 * * *")

    scheduling.operation_pause(actor=api_actor(operator), operation=operation)
    task = PeriodicTask.objects.get()
    operation.refresh_from_db()
    assert (task.enabled, operation.enabled, operation.state, operation.next_run_at) == (False, False, "paused", None)

    scheduling.operation_resume(actor=api_actor(operator), operation=operation)
    scheduling.operation_update(
        actor=api_actor(operator), operation=operation, data={"cron": "30 18 * * *", "targets": targets[::-1]}
    )
    task = PeriodicTask.objects.get()
    operation.refresh_from_db()
    assert task.enabled is True
    assert (task.crontab.minute, task.crontab.hour) == ("30", "18")
    assert operation.state == "scheduled"
    assert [str(s) for s in scheduling.targets_ordered(operation)] == ["shop/b", "shop/a"]
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == [
        "operation.schedule",
        "operation.update",
        "operation.update",
        "operation.update",
    ]


def test_moving_a_once_operation_replaces_its_clocked_schedule(operator_schedules, operator):
    first = timezone.now() + datetime.timedelta(hours=1)
    second = first + datetime.timedelta(hours=1)
    operation = operator_schedules(schedule="once", run_at=first)

    scheduling.operation_update(actor=api_actor(operator), operation=operation, data={"run_at": second})

    assert [c.clocked_time for c in ClockedSchedule.objects.all()] == [second]
    assert PeriodicTask.objects.get().clocked.clocked_time == second


def test_cancel_deletes_the_beat_entry_and_keeps_the_history(operator_schedules, operator):
    operation = operator_schedules(schedule="once")

    scheduling.operation_cancel(actor=api_actor(operator), operation=operation)

    operation.refresh_from_db()
    assert not PeriodicTask.objects.exists()
    assert not ClockedSchedule.objects.exists()
    assert (operation.state, operation.enabled, operation.periodic_task) == ("cancelled", False, None)
    assert AuditEvent.objects.order_by("-id").first().action == "operation.cancel"
    with pytest.raises(ValidationError):
        scheduling.operation_update(actor=api_actor(operator), operation=operation, data={"enabled": True})


def test_now_is_queued_after_commit(operator_schedules, k8s_standin, eager_celery, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        operation = operator_schedules()

    assert len(k8s_standin.calls("PATCH")) == 2
    operation.refresh_from_db()
    assert (operation.state, operation.periodic_task) == ("done", None)
    assert not PeriodicTask.objects.exists()
