"""Scheduled operations end to end: a real Celery worker with embedded beat on Redis, against the test database.

The Kubernetes API is the recording stand-in (reached by the worker through the cluster's stored
kubeconfig); chat deliveries go to a real loopback receiver. Waits are bounded polls with generous
limits: nothing here asserts an upper bound on how fast anything happened.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from apps.audit.models import AuditEvent, NotificationChannel, NotificationDelivery
from apps.audit.services import Actor
from apps.control import scheduling
from apps.control.models import OperationRun, ScheduledOperation
from apps.control.tasks import operation_run_task
from tests.factories import MicroserviceFactory
from tests.servers import OUTPUT
from tests.servers.k8s_standin import standin_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

WORKER_ENV = {
    "CELERY_BEAT_MAX_LOOP_INTERVAL": "1",
    "KUBEDOOR_NOTIFY_MAX_RETRIES": "2",
    "KUBEDOOR_NOTIFY_RETRY_DELAY_SECONDS": "0.2",
    "KUBEDOOR_NOTIFY_TIMEOUT_SECONDS": "0.5",
    "KUBEDOOR_K8S_TIMEOUT_SECONDS": "5",
}
WORKER_NAME = "ops-e2e"


@pytest.fixture(scope="module")
def worker_with_beat(celery_worker_factory):
    from tests.servers import stop_process

    process = celery_worker_factory(beat=True, extra_env=WORKER_ENV, name=WORKER_NAME)
    yield process
    stop_process(process, timeout=15)


def wait_until(condition: Callable[[], object], *, timeout: float = 60.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached after {timeout} s")


def worker_log() -> str:
    logs = sorted(OUTPUT.glob(f"celery-{WORKER_NAME}-*.log"), key=lambda p: p.stat().st_mtime)
    return logs[-1].read_text(errors="replace")


def actor(user) -> Actor:
    return Actor(user=user, name=user.get_username(), source="api")


def beat_sees_changes_again() -> None:
    """The flush between transactional tests deletes beat's change marker row; beat then misses the first
    change it sees after it (it compares against its last timestamp, which became None). Put an old marker
    back and give beat a few of its 1-second loops to read it, so the test's schedule changes are noticed."""
    PeriodicTasks.objects.update_or_create(
        ident=1, defaults={"last_update": datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)}
    )
    time.sleep(3)


@pytest.fixture
def setup(worker_with_beat, k8s_standin, operator):
    beat_sees_changes_again()
    cluster = standin_cluster(k8s_standin)
    for name in ("a", "b"):
        k8s_standin.add_deployment("shop", name, replicas=1)
    services = [MicroserviceFactory(cluster=cluster, namespace="shop", name=n, replicas_measured=3) for n in ("a", "b")]
    return cluster, services


def test_a_once_operation_runs_exactly_once_and_disables_itself_and_a_cancelled_one_never_runs(
    worker_with_beat, setup, k8s_standin, operator, http_receiver
):
    # given: a channel told about runs, two operations due in a few seconds; the second is cancelled
    _, services = setup
    NotificationChannel.objects.create(
        name="runs", kind="slack", target=http_receiver.url + "/runs", actions=["operation.run"]
    )
    run_at = timezone.now() + datetime.timedelta(seconds=6)
    due = scheduling.operation_schedule(
        actor=actor(operator), kind="scale", targets=services, replicas=4, schedule="once", run_at=run_at,
        interval_seconds=1,
    )  # fmt: skip
    cancelled = scheduling.operation_schedule(
        actor=actor(operator), kind="restart", targets=services[:1], schedule="once", run_at=run_at
    )
    scheduling.operation_cancel(actor=actor(operator), operation=cancelled)
    assert PeriodicTask.objects.filter(name=cancelled.beat_name).count() == 0

    # when: beat fires
    wait_until(lambda: ScheduledOperation.objects.get(pk=due.pk).state == "done", what="the once operation done")

    # then: both targets scaled once, not before the time, one second apart at least
    patches = k8s_standin.calls("PATCH")
    assert [(p.path, p.body) for p in patches] == [
        ("/apis/apps/v1/namespaces/shop/deployments/a/scale", {"spec": {"replicas": 4}}),
        ("/apis/apps/v1/namespaces/shop/deployments/b/scale", {"spec": {"replicas": 4}}),
    ]
    assert patches[0].at >= run_at.timestamp()
    assert patches[1].at - patches[0].at >= 1
    due.refresh_from_db()
    assert (due.enabled, due.next_run_at) == (False, None)
    assert due.last_result["succeeded"] == ["shop/a", "shop/b"]
    assert PeriodicTask.objects.get(name=due.beat_name).enabled is False
    assert OperationRun.objects.filter(operation=due).count() == 1
    event = AuditEvent.objects.get(action="operation.run")
    assert (event.actor_name, event.actor, event.source) == ("scheduler", operator, "task")
    # the run was notified by the worker
    [got] = http_receiver.wait_for(1)
    assert got.body["text"].startswith(f"*KubeDoor operation.run prod/operation-{due.pk}*\n• result: ✅ ok")
    wait_until(lambda: NotificationDelivery.objects.get().state == "sent", what="delivery recorded as sent")

    # and: several beat loops later, still exactly one run, and the cancelled operation never ran
    time.sleep(3)
    assert len(k8s_standin.calls("PATCH")) == 2
    assert OperationRun.objects.count() == 1
    assert ScheduledOperation.objects.get(pk=cancelled.pk).state == "cancelled"


def test_a_redelivered_run_message_does_not_scale_twice(worker_with_beat, setup, k8s_standin, operator):
    # given: a cron operation (beat will not fire it during the test) and one message id sent twice
    _, services = setup
    operation = scheduling.operation_schedule(
        actor=actor(operator), kind="scale", targets=services[:1], replicas=6, schedule="cron", cron="0 3 1 1 *"
    )
    task_id = f"redelivered-{operation.pk}"

    # when
    operation_run_task.apply_async(kwargs={"operation_id": operation.pk}, task_id=task_id)
    wait_until(lambda: OperationRun.objects.filter(run_id=task_id, state="done").exists(), what="first delivery done")
    operation_run_task.apply_async(kwargs={"operation_id": operation.pk}, task_id=task_id)
    wait_until(
        lambda: worker_log().count(f"operation_run_task[{task_id}] succeeded") == 2, what="second delivery handled"
    )

    # then
    assert [(p.path, p.body) for p in k8s_standin.calls("PATCH")] == [
        ("/apis/apps/v1/namespaces/shop/deployments/a/scale", {"spec": {"replicas": 6}})
    ]
    assert AuditEvent.objects.filter(action="microservice.scale").count() == 1
    assert AuditEvent.objects.filter(action="operation.run").count() == 1


def test_a_cron_operation_runs_by_beat_and_computes_its_next_run(worker_with_beat, setup, k8s_standin, operator):
    # given: every minute, in a non-UTC zone
    _, services = setup
    operation = scheduling.operation_schedule(
        actor=actor(operator), kind="restart", targets=services[:1], schedule="cron", cron="* * * * *",
        time_zone="Asia/Shanghai",
    )  # fmt: skip

    # when
    wait_until(
        lambda: ScheduledOperation.objects.get(pk=operation.pk).last_run_at, timeout=90, what="the first cron run"
    )

    # then: still scheduled, next run at the following minute boundary after the run
    operation.refresh_from_db()
    assert operation.state == "scheduled"
    assert operation.enabled is True
    following = (operation.last_run_at + datetime.timedelta(minutes=1)).replace(second=0, microsecond=0)
    assert operation.next_run_at == following
    assert len(k8s_standin.calls("PATCH")) >= 1
    assert PeriodicTask.objects.get(name=operation.beat_name).enabled is True
    scheduling.operation_cancel(actor=actor(operator), operation=operation)
    assert not PeriodicTask.objects.filter(name=operation.beat_name).exists()


def test_a_failing_chat_endpoint_is_retried_by_the_worker_then_given_up(
    worker_with_beat, setup, k8s_standin, operator, http_receiver
):
    # given: a chat endpoint answering 500
    _, services = setup
    http_receiver.behave(status=500, body={"error": "down"})
    NotificationChannel.objects.create(name="ops", kind="webhook", target=http_receiver.url + "/h", actions=["*"])

    # when: an operation is run now
    operation = scheduling.operation_schedule(actor=actor(operator), kind="restart", targets=services[:1])
    wait_until(lambda: ScheduledOperation.objects.get(pk=operation.pk).state == "done", what="the operation done")
    wait_until(
        lambda: NotificationDelivery.objects.filter(state="failed").count() == 3, what="three deliveries given up"
    )

    # then: the operation succeeded; each of the three events (schedule, restart, run) was tried three times
    operation.refresh_from_db()
    assert operation.last_result["ok"] is True
    assert len(k8s_standin.calls("PATCH")) == 1
    assert len(http_receiver.received) == 9
    for delivery in NotificationDelivery.objects.all():
        assert (delivery.attempts, delivery.last_error) == (3, 'HTTP 500: {"error": "down"}')
