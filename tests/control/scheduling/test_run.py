"""One run of a scheduled operation: idempotent per run id, resumable, disabled when done."""

from __future__ import annotations

import datetime

from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.audit.models import AuditEvent
from apps.control import scheduling
from apps.control.models import OperationRun
from tests.factories import api_actor


def test_a_run_acts_once_per_run_id_and_audits_as_the_scheduler(operator_schedules, operator, k8s_standin):
    # given
    operation = operator_schedules(kind="scale", replicas=5, schedule="once")

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


def test_a_once_run_disables_itself_and_records_its_result(operator_schedules, k8s_standin):
    k8s_standin.respond("PATCH", "/apis/apps/v1/namespaces/shop/deployments/b", status=409)
    operation = operator_schedules(schedule="once")

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


def test_an_interrupted_run_resumes_without_repeating_handled_targets(operator_schedules, targets, k8s_standin):
    operation = operator_schedules(schedule="cron", cron="0 9 * * *")
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


def test_a_paused_or_cancelled_operation_does_not_run(operator_schedules, operator, k8s_standin):
    operation = operator_schedules(schedule="cron", cron="0 9 * * *")
    scheduling.operation_pause(actor=api_actor(operator), operation=operation)

    assert scheduling.operation_run(operation_id=operation.pk, run_id="x") is None
    scheduling.operation_cancel(actor=api_actor(operator), operation=operation)
    assert scheduling.operation_run(operation_id=operation.pk, run_id="y") is None
    assert k8s_standin.requests == []
    assert not OperationRun.objects.exists()
