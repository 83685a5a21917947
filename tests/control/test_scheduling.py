"""Scheduled operations: validation, the beat entry kept in step, next run times, idempotent runs."""

from __future__ import annotations

import datetime
import json
import zoneinfo

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, PeriodicTask

from apps.audit.models import AuditEvent
from apps.audit.services import Actor
from apps.control import scheduling
from apps.control.models import OperationRun, ScheduledOperation
from kubedoor_site.celery import app as celery_app
from tests.factories import ClusterFactory, MicroserviceFactory

UTC = datetime.UTC
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def api_actor(user) -> Actor:
    return Actor(user=user, name=user.get_username(), source="api")


@pytest.fixture
def targets(k8s_standin, k8s_cluster):
    for name in ("a", "b"):
        k8s_standin.add_deployment("shop", name, replicas=1)
    return [MicroserviceFactory(cluster=k8s_cluster, namespace="shop", name=name, pod_count=3) for name in ("a", "b")]


def test_once_creates_a_one_off_clocked_beat_entry(targets, operator):
    run_at = timezone.now() + datetime.timedelta(hours=2)

    operation = scheduling.operation_schedule(
        actor=api_actor(operator), kind="scale", targets=targets, replicas=4, schedule="once", run_at=run_at
    )

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


def test_a_naive_run_at_is_read_in_the_operation_time_zone(targets, operator):
    local = (timezone.now() + datetime.timedelta(days=2)).astimezone(BERLIN).replace(tzinfo=None, microsecond=0)

    operation = scheduling.operation_schedule(
        actor=api_actor(operator),
        kind="restart",
        targets=targets,
        schedule="once",
        run_at=local,
        time_zone="Europe/Berlin",
    )

    assert operation.run_at == local.replace(tzinfo=BERLIN)


def test_cron_creates_a_crontab_in_the_time_zone(targets, operator):
    operation = scheduling.operation_schedule(
        actor=api_actor(operator),
        kind="restart",
        targets=targets,
        schedule="cron",
        cron="0  9 * * 1-5",
        time_zone="Europe/Berlin",
    )

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


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        # winter time (CET, UTC+1): 09:00 local is 08:00 UTC
        (datetime.datetime(2026, 3, 27, 7, 0, tzinfo=UTC), datetime.datetime(2026, 3, 27, 8, 0, tzinfo=UTC)),
        # across the spring change (29 March 2026): the next 09:00 is CEST, 07:00 UTC
        (datetime.datetime(2026, 3, 28, 8, 30, tzinfo=UTC), datetime.datetime(2026, 3, 29, 7, 0, tzinfo=UTC)),
        # across the autumn change (25 October 2026): back to CET, 08:00 UTC
        (datetime.datetime(2026, 10, 24, 8, 0, tzinfo=UTC), datetime.datetime(2026, 10, 25, 8, 0, tzinfo=UTC)),
    ],
)
def test_next_cron_run_follows_daylight_saving(after, expected):
    got = scheduling.next_run_compute(
        schedule="cron", run_at=None, cron="0 9 * * *", time_zone="Europe/Berlin", after=after
    )

    assert got == expected


def test_next_cron_run_agrees_with_beat_across_daylight_saving(targets, operator):
    # given: the crontab beat itself evaluates, in Europe/Berlin
    scheduling.operation_schedule(
        actor=api_actor(operator), kind="restart", targets=targets, schedule="cron", cron="0 9 * * *",
        time_zone="Europe/Berlin",
    )  # fmt: skip
    beat_schedule = PeriodicTask.objects.get().crontab.schedule
    last_run = datetime.datetime(2026, 3, 28, 8, 0, tzinfo=UTC)  # Saturday 09:00 CET

    # when
    last_local = last_run.astimezone(beat_schedule.tz)
    beat_next = last_local + beat_schedule.remaining_delta(last_local)[1]
    ours = scheduling.next_run_compute(
        schedule="cron", run_at=None, cron="0 9 * * *", time_zone="Europe/Berlin", after=last_run
    )

    # then
    assert ours == datetime.datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    assert beat_next.astimezone(UTC) == ours


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"schedule": "cron", "cron": "61 * * * *"}, "cron"),
        ({"schedule": "cron", "cron": "* * *"}, "cron"),
        ({"schedule": "once", "run_at": datetime.datetime(2020, 1, 1, tzinfo=UTC)}, "run_at"),
        ({"schedule": "once", "run_at": None}, "run_at"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"replicas": 1001}, "replicas"),
        ({"replicas": -1}, "replicas"),
        ({"interval_seconds": 3601}, "interval_seconds"),
        ({"schedule": "weekly"}, "schedule"),
        ({"kind": "delete"}, "kind"),
        ({"targets": []}, "targets"),
    ],
)
def test_invalid_input_names_the_field_and_writes_nothing(targets, operator, overrides, field):
    values = {"kind": "scale", "targets": targets, "replicas": 2, "schedule": "now", **overrides}

    with pytest.raises(ValidationError) as caught:
        scheduling.operation_schedule(actor=api_actor(operator), **values)

    assert list(caught.value.message_dict) == [field]
    assert not ScheduledOperation.objects.exists()
    assert not PeriodicTask.objects.exists()
    assert not AuditEvent.objects.exists()


def test_targets_in_different_clusters_are_refused(targets, operator):
    other = MicroserviceFactory(cluster=ClusterFactory(name="staging"), namespace="shop", name="a")

    with pytest.raises(ValidationError) as caught:
        scheduling.operation_schedule(actor=api_actor(operator), kind="restart", targets=[*targets, other])

    assert caught.value.message_dict == {"targets": ["All targets must be in the same cluster."]}
    assert not ScheduledOperation.objects.exists()


def test_a_viewer_cannot_schedule(targets, viewer, k8s_standin):
    with pytest.raises(PermissionDenied):
        scheduling.operation_schedule(actor=api_actor(viewer), kind="restart", targets=targets)

    assert not ScheduledOperation.objects.exists()
    assert not AuditEvent.objects.exists()
    assert k8s_standin.requests == []


def test_pause_resume_and_edit_keep_the_beat_entry_in_step(targets, operator):
    operation = scheduling.operation_schedule(
        actor=api_actor(operator), kind="restart", targets=targets, schedule="cron", cron="0 9 * * *"
    )

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


def test_moving_a_once_operation_replaces_its_clocked_schedule(targets, operator):
    first = timezone.now() + datetime.timedelta(hours=1)
    second = first + datetime.timedelta(hours=1)
    operation = scheduling.operation_schedule(
        actor=api_actor(operator), kind="restart", targets=targets, schedule="once", run_at=first
    )

    scheduling.operation_update(actor=api_actor(operator), operation=operation, data={"run_at": second})

    assert [c.clocked_time for c in ClockedSchedule.objects.all()] == [second]
    assert PeriodicTask.objects.get().clocked.clocked_time == second


def test_cancel_deletes_the_beat_entry_and_keeps_the_history(targets, operator):
    operation = scheduling.operation_schedule(
        actor=api_actor(operator),
        kind="restart",
        targets=targets,
        schedule="once",
        run_at=timezone.now() + datetime.timedelta(hours=1),
    )

    scheduling.operation_cancel(actor=api_actor(operator), operation=operation)

    operation.refresh_from_db()
    assert not PeriodicTask.objects.exists()
    assert not ClockedSchedule.objects.exists()
    assert (operation.state, operation.enabled, operation.periodic_task) == ("cancelled", False, None)
    assert AuditEvent.objects.order_by("-id").first().action == "operation.cancel"
    with pytest.raises(ValidationError):
        scheduling.operation_update(actor=api_actor(operator), operation=operation, data={"enabled": True})


def test_a_run_acts_once_per_run_id_and_audits_as_the_scheduler(targets, operator, k8s_standin):
    # given
    operation = scheduling.operation_schedule(
        actor=api_actor(operator),
        kind="scale",
        targets=targets,
        replicas=5,
        schedule="once",
        run_at=timezone.now() + datetime.timedelta(hours=1),
    )

    # when: the same message is delivered twice
    first = scheduling.operation_run(operation_id=operation.pk, run_id="run-1")
    operation.refresh_from_db()
    operation.enabled = True  # even if someone re-enabled it in between, the run id is done
    operation.state = "scheduled"
    operation.save()
    second = scheduling.operation_run(operation_id=operation.pk, run_id="run-1")

    # then
    assert first is not None
    assert first.ok is True
    assert second is None
    assert len(k8s_standin.calls("PATCH")) == 2  # a and b, once each
    run = OperationRun.objects.get()
    assert (run.run_id, run.state, len(run.results)) == ("run-1", "done", 2)
    event = AuditEvent.objects.get(action="operation.run")
    assert (event.actor_name, event.actor, event.source, event.result) == ("scheduler", operator, "task", "ok")
    assert event.after["succeeded"] == ["shop/a", "shop/b"]
    scale_events = AuditEvent.objects.filter(action="microservice.scale")
    assert {(e.actor_name, e.actor_id) for e in scale_events} == {("scheduler", operator.pk)}


def test_a_once_run_disables_itself_and_records_its_result(targets, operator, k8s_standin):
    k8s_standin.respond("PATCH", "/apis/apps/v1/namespaces/shop/deployments/b", status=409)
    operation = scheduling.operation_schedule(
        actor=api_actor(operator),
        kind="restart",
        targets=targets,
        schedule="once",
        run_at=timezone.now() + datetime.timedelta(hours=1),
    )

    scheduling.operation_run(operation_id=operation.pk, run_id="r")

    operation.refresh_from_db()
    assert (operation.state, operation.enabled, operation.next_run_at) == ("done", False, None)
    assert operation.last_run_at is not None
    assert operation.last_result["failed"] == ["shop/b"]
    assert operation.last_result["succeeded"] == ["shop/a"]
    assert operation.last_result["run_id"] == "r"
    assert PeriodicTask.objects.get().enabled is False
    event = AuditEvent.objects.get(action="operation.run")
    assert (event.result, event.message) == ("error", "1 succeeded, 1 failed: shop/b")


def test_an_interrupted_run_resumes_without_repeating_handled_targets(targets, operator, k8s_standin):
    operation = scheduling.operation_schedule(
        actor=api_actor(operator),
        kind="restart",
        targets=targets,
        schedule="cron",
        cron="0 9 * * *",
    )
    # a worker died after restarting "a": its progress was saved under the run id
    OperationRun.objects.create(
        run_id="r",
        operation=operation,
        results=[
            {
                "service_id": targets[0].pk,
                "cluster": "prod",
                "namespace": "shop",
                "name": "a",
                "kind": "restart",
                "ok": True,
                "message": "restarted",
            }
        ],
    )

    # a redelivery while that run still looks alive is left alone
    assert scheduling.operation_run(operation_id=operation.pk, run_id="r") is None
    assert k8s_standin.requests == []
    # once it has made no progress for longer than a target can take, the redelivery resumes it
    OperationRun.objects.filter(run_id="r").update(updated_at=timezone.now() - datetime.timedelta(minutes=10))

    batch = scheduling.operation_run(operation_id=operation.pk, run_id="r")

    assert [r.path for r in k8s_standin.calls("PATCH")] == ["/apis/apps/v1/namespaces/shop/deployments/b"]
    assert batch.succeeded == ["shop/a", "shop/b"]
    operation.refresh_from_db()
    assert operation.state == "scheduled"
    assert operation.next_run_at > timezone.now()


def test_a_paused_or_cancelled_operation_does_not_run(targets, operator, k8s_standin):
    operation = scheduling.operation_schedule(
        actor=api_actor(operator), kind="restart", targets=targets, schedule="cron", cron="0 9 * * *"
    )
    scheduling.operation_pause(actor=api_actor(operator), operation=operation)

    assert scheduling.operation_run(operation_id=operation.pk, run_id="x") is None
    scheduling.operation_cancel(actor=api_actor(operator), operation=operation)
    assert scheduling.operation_run(operation_id=operation.pk, run_id="y") is None
    assert k8s_standin.requests == []
    assert not OperationRun.objects.exists()


def test_now_is_queued_after_commit(targets, operator, k8s_standin, django_capture_on_commit_callbacks):
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            operation = scheduling.operation_schedule(actor=api_actor(operator), kind="restart", targets=targets)
    finally:
        celery_app.conf.task_always_eager = previous

    assert len(k8s_standin.calls("PATCH")) == 2
    operation.refresh_from_db()
    assert (operation.state, operation.periodic_task) == ("done", None)
    assert not PeriodicTask.objects.exists()
