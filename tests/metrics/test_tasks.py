"""The collection task through a real Celery worker on Redis, and the daily beat entry."""

from __future__ import annotations

import datetime
import json
import time

import pytest
from django_celery_beat.models import PeriodicTask

from apps.audit.services import Actor
from apps.control.models import Microservice
from apps.metrics import services
from apps.metrics.models import CollectionRun, DailyPeak
from tests.factories import ClusterFactory
from tests.servers.prometheus import CLUSTER_LABEL, TIME_ZONE


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_collection_runs_through_a_real_celery_worker(prometheus_server, celery_worker_factory):
    # given
    celery_worker_factory(name="metrics")
    cluster = ClusterFactory(
        name="prod",
        prometheus_url=prometheus_server.url,
        prometheus_label_key=CLUSTER_LABEL,
        prometheus_label_value="prod",
        time_zone=TIME_ZONE,
    )
    # when: started like the API does; the task is queued after commit
    run = services.collection_start(cluster=cluster, days=7, actor=Actor.system("tester", source="system"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.state in ("done", "failed"):
            break
        time.sleep(0.2)
    # then
    assert run.state == "done", run.errors
    assert run.progress_done == run.progress_total
    for day in prometheus_server.days:
        assert DailyPeak.objects.filter(cluster="prod", day=day).count() == 9
    assert Microservice.objects.filter(cluster=cluster).count() == 7
    assert Microservice.objects.get(name="cart").source_day == prometheus_server.days[1]


def test_schedule_follows_the_cluster(db):
    # given: a window ending 11:30 in Shanghai, no explicit time
    cluster = ClusterFactory(name="prod", time_zone="Asia/Shanghai", peak_end=datetime.time(11, 30))
    # when
    task = services.collection_schedule_sync(cluster=cluster)
    # then
    assert task.name == "kubedoor-collect-prod"
    assert task.task == "apps.metrics.tasks.collection_scheduled_task"
    assert json.loads(task.kwargs) == {"cluster": "prod"}
    assert (task.crontab.hour, task.crontab.minute, str(task.crontab.timezone)) == ("11", "45", "Asia/Shanghai")
    assert task.enabled is True
    # an explicit time, then disabling
    cluster.collect_at = datetime.time(23, 5)
    cluster.save()
    task = services.collection_schedule_sync(cluster=cluster)
    assert (task.crontab.hour, task.crontab.minute) == ("23", "5")
    assert PeriodicTask.objects.filter(name="kubedoor-collect-prod").count() == 1
    cluster.collect_enabled = False
    cluster.save()
    assert services.collection_schedule_sync(cluster=cluster) is None
    assert not PeriodicTask.objects.filter(name="kubedoor-collect-prod").exists()
    # re-enabled, then the cluster is deleted
    cluster.collect_enabled = True
    cluster.save()
    services.collection_schedule_sync(cluster=cluster)
    services.collection_schedule_delete(cluster_name="prod")
    assert not PeriodicTask.objects.filter(name="kubedoor-collect-prod").exists()


def test_the_scheduled_task_collects_two_days_and_skips_a_busy_cluster(db, prometheus_server):
    cluster = ClusterFactory(
        name="prod",
        prometheus_url=prometheus_server.url,
        prometheus_label_key=CLUSTER_LABEL,
        prometheus_label_value="prod",
        time_zone=TIME_ZONE,
    )
    busy = services.collection_start(cluster=cluster, days=1, actor=Actor.system("x"), enqueue=False)
    assert services.collection_scheduled(cluster_name="prod") is None
    assert CollectionRun.objects.count() == 1
    busy.state = "done"
    busy.save()
    run = services.collection_scheduled(cluster_name="prod")
    assert (run.days, run.state, run.requested_by) == (2, "done", "scheduler")
