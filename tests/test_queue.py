"""Queueing tasks by name (kubedoor_site/queue.py and each app's queue.py).

The broker path itself runs in the end-to-end tests (a real worker on Redis picks up operations,
collections and notifications queued by name); here: the names agree with the registered tasks,
what is sent, and eager mode.
"""

from __future__ import annotations

import pytest

from apps.audit import queue as audit_queue
from apps.control import collection_schedule
from apps.control import queue as control_queue
from apps.metrics import queue as metrics_queue
from kubedoor_site.celery import app as celery_app
from kubedoor_site.queue import task_send

RECORDED: list[dict] = []


@celery_app.task(name="tests.test_queue.record")
def record(**kwargs) -> None:
    RECORDED.append(kwargs)


@pytest.fixture
def sent(monkeypatch):
    """What ``send_task`` was asked to send (instead of the broker)."""
    calls: list[tuple[str, dict]] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, **options: calls.append((name, options)))
    RECORDED.clear()
    return calls


@pytest.fixture
def eager(monkeypatch):
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)


def test_every_name_queued_or_scheduled_is_a_registered_task():
    celery_app.loader.import_default_modules()  # what a worker does at start: import every app's tasks
    names = {
        control_queue.OPERATION_RUN_TASK: "apps.control.tasks.operation_run_task",
        control_queue.ADMISSION_POLICY_SYNC_TASK: "apps.webhook.tasks.admission_policy_sync_task",
        metrics_queue.COLLECTION_RUN_TASK: "apps.metrics.tasks.collection_run_task",
        collection_schedule.COLLECTION_SCHEDULED_TASK: "apps.metrics.tasks.collection_scheduled_task",
        audit_queue.NOTIFICATION_DELIVER_TASK: "apps.audit.tasks.notification_deliver_task",
        audit_queue.NOTIFICATION_REPEATS_SUMMARIZE_TASK: "apps.audit.tasks.notification_repeats_summarize_task",
    }

    for constant, expected in names.items():
        assert constant == expected
        assert celery_app.tasks[constant].name == expected


def test_a_task_is_sent_by_name_with_its_keyword_arguments(sent):
    task_send("tests.test_queue.record", kwargs={"x": 1})
    task_send("tests.test_queue.record", kwargs={"y": 2}, countdown=60.0)

    assert sent == [
        ("tests.test_queue.record", {"kwargs": {"x": 1}}),
        ("tests.test_queue.record", {"kwargs": {"y": 2}, "countdown": 60.0}),
    ]
    assert RECORDED == []


def test_eager_mode_runs_the_registered_task_in_process_and_sends_nothing(sent, eager):
    task_send("tests.test_queue.record", kwargs={"x": 1})
    task_send("tests.test_queue.record", kwargs={"y": 2}, countdown=60.0)

    assert RECORDED == [{"x": 1}, {"y": 2}]
    assert sent == []


@pytest.mark.parametrize(
    ("enqueue", "kwargs", "expected"),
    [
        (
            lambda: control_queue.operation_run_enqueue(operation_id=7),
            {"kwargs": {"operation_id": 7}},
            "apps.control.tasks.operation_run_task",
        ),
        (
            lambda: metrics_queue.collection_run_enqueue(run_id=8),
            {"kwargs": {"run_id": 8}},
            "apps.metrics.tasks.collection_run_task",
        ),
        (
            lambda: audit_queue.notification_deliver_enqueue(delivery_id=9),
            {"kwargs": {"delivery_id": 9}},
            "apps.audit.tasks.notification_deliver_task",
        ),
        (
            lambda: audit_queue.notification_repeats_summarize_enqueue(first_delivery_id=10, countdown=30.0),
            {"kwargs": {"first_delivery_id": 10}, "countdown": 30.0},
            "apps.audit.tasks.notification_repeats_summarize_task",
        ),
    ],
)
def test_each_app_queues_its_tasks_by_name(sent, enqueue, kwargs, expected):
    enqueue()

    assert sent == [(expected, kwargs)]
