"""Operations in the admin: scale/restart actions with their intermediate page, Save & scale/restart, schedules."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.audit.models import AuditEvent
from apps.audit.services import Actor
from apps.control import scheduling
from apps.control.models import Microservice, ScheduledOperation
from tests.factories import MicroserviceFactory

CHANGELIST = "/admin/control/microservice/"
OPS_CHANGELIST = "/admin/control/scheduledoperation/"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def rows(k8s_standin, k8s_cluster):
    for name in ("a", "b"):
        k8s_standin.add_deployment("shop", name, replicas=1)
    return [MicroserviceFactory(cluster=k8s_cluster, namespace="shop", name=n, replicas_measured=2) for n in ("a", "b")]


def test_scale_action_shows_the_intermediate_page(operator, rows, k8s_standin):
    response = logged_in(operator).post(CHANGELIST, {"action": "scale_action", ACTION_CHECKBOX_NAME: [rows[0].pk]})

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="schedule"' in html
    assert 'name="replicas"' in html
    assert 'name="interval_seconds"' in html
    assert k8s_standin.requests == []


def test_scale_now_of_one_row_scales_at_once(operator, rows, k8s_standin):
    response = logged_in(operator).post(
        CHANGELIST,
        {
            "action": "scale_action",
            ACTION_CHECKBOX_NAME: [rows[0].pk],
            "apply": "1",
            "schedule": "now",
            "replicas": "5",
            "interval_seconds": "0",
            "time_zone": "UTC",
        },
        follow=True,
    )

    assert response.status_code == 200
    assert "Microservice shop/a: scaled from 1 to 5" in response.content.decode()
    assert [(r.path, r.body) for r in k8s_standin.calls("PATCH")] == [
        ("/apis/apps/v1/namespaces/shop/deployments/a/scale", {"spec": {"replicas": 5}})
    ]
    update, event = AuditEvent.objects.order_by("id")
    assert (update.action, update.after["replicas_specified"]) == ("microservice.update", 5)
    assert (event.action, event.source, event.actor_name) == ("microservice.scale", "admin", "operator1")


def test_restart_of_several_rows_at_a_time_is_scheduled_with_the_interval(operator, rows, k8s_standin):
    run_at = (timezone.now() + datetime.timedelta(days=1)).astimezone(datetime.timezone(datetime.timedelta(hours=8)))

    response = logged_in(operator).post(
        CHANGELIST,
        {
            "action": "restart_action",
            ACTION_CHECKBOX_NAME: [r.pk for r in rows],
            "apply": "1",
            "schedule": "once",
            "run_at": run_at.strftime("%Y-%m-%dT%H:%M"),
            "time_zone": "Asia/Shanghai",
            "interval_seconds": "30",
        },
    )

    assert response.status_code == 302
    operation = ScheduledOperation.objects.get()
    assert (operation.kind, operation.schedule, operation.interval_seconds) == ("restart", "once", 30)
    assert operation.run_at == run_at.replace(second=0, microsecond=0)
    assert [str(s) for s in scheduling.targets_ordered(operation)] == ["shop/a", "shop/b"]
    assert PeriodicTask.objects.get().clocked.clocked_time == operation.run_at
    assert k8s_standin.requests == []


def test_an_invalid_cron_redisplays_the_page_with_the_error(operator, rows, k8s_standin):
    response = logged_in(operator).post(
        CHANGELIST,
        {
            "action": "scale_action",
            ACTION_CHECKBOX_NAME: [r.pk for r in rows],
            "apply": "1",
            "schedule": "cron",
            "cron": "61 25 * * *",
            "time_zone": "UTC",
            "interval_seconds": "0",
        },
    )

    assert response.status_code == 200
    assert "Enter a valid cron expression" in response.content.decode()
    assert not ScheduledOperation.objects.exists()
    assert not PeriodicTask.objects.exists()


@pytest.mark.parametrize("action", ["scale_action", "restart_action"])
def test_viewers_have_no_scale_or_restart_action(viewer, rows, k8s_standin, action):
    client = logged_in(viewer)

    page = client.get(CHANGELIST).content.decode()
    response = client.post(
        CHANGELIST,
        {"action": action, ACTION_CHECKBOX_NAME: [rows[0].pk], "apply": "1", "schedule": "now", "time_zone": "UTC"},
    )

    assert 'value="scale_action"' not in page
    assert 'value="restart_action"' not in page
    assert response.status_code in (200, 302, 403)
    assert k8s_standin.requests == []
    assert not AuditEvent.objects.exists()
    assert not ScheduledOperation.objects.exists()


def change_data(service: Microservice, **overrides) -> dict:
    data = {
        "replicas_specified": "" if service.replicas_specified is None else service.replicas_specified,
        "limit_cpu_m": service.limit_cpu_m,
        "limit_mem_mib": service.limit_mem_mib,
    }
    data.update(overrides)
    return data


def test_save_and_scale_saves_then_scales_to_the_saved_replicas(operator, rows, k8s_standin):
    client = logged_in(operator)
    url = f"{CHANGELIST}{rows[0].pk}/change/"
    assert "Save &amp; scale" in client.get(url).content.decode()

    response = client.post(url, {**change_data(rows[0], replicas_specified=4), "_saveandscale": "1"}, follow=True)

    assert response.status_code == 200
    assert "Microservice shop/a: scaled from 1 to 4" in response.content.decode()
    rows[0].refresh_from_db()
    assert rows[0].replicas_specified == 4
    assert k8s_standin.calls("PATCH")[0].body == {"spec": {"replicas": 4}}
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == [
        "microservice.update",
        "microservice.scale",
    ]


def test_save_and_restart(operator, rows, k8s_standin):
    url = f"{CHANGELIST}{rows[0].pk}/change/"

    response = logged_in(operator).post(url, {**change_data(rows[0], limit_cpu_m=1500), "_saveandrestart": "1"})

    assert response.status_code == 302
    [patch] = k8s_standin.requests
    assert patch.content_type == "application/strategic-merge-patch+json"
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == [
        "microservice.update",
        "microservice.restart",
    ]


def test_save_and_scale_with_an_invalid_value_saves_and_sends_nothing(operator, rows, k8s_standin):
    url = f"{CHANGELIST}{rows[0].pk}/change/"

    response = logged_in(operator).post(url, {**change_data(rows[0], replicas_specified=5000), "_saveandscale": "1"})

    assert response.status_code == 200  # the form again, with the error
    assert k8s_standin.requests == []
    assert not AuditEvent.objects.exists()


def test_viewers_get_no_save_and_scale(viewer, rows, k8s_standin):
    client = logged_in(viewer)
    url = f"{CHANGELIST}{rows[0].pk}/change/"

    assert "Save &amp; scale" not in client.get(url).content.decode()
    response = client.post(url, {**change_data(rows[0], replicas_specified=4), "_saveandscale": "1"})

    assert response.status_code == 403
    assert k8s_standin.requests == []
    assert not AuditEvent.objects.exists()
    rows[0].refresh_from_db()
    assert rows[0].replicas_specified is None


def test_scheduled_operations_admin_lists_pauses_and_cancels(operator, viewer, rows):
    operation = scheduling.operation_schedule(
        actor=Actor(user=operator, name="operator1", source="api"),
        kind="restart",
        targets=rows,
        schedule="cron",
        cron="0 9 * * *",
        time_zone="Europe/Berlin",
    )
    client = logged_in(operator)

    listing = client.get(OPS_CHANGELIST).content.decode()
    assert "0 9 * * * Europe/Berlin" in listing
    assert "shop/a, shop/b" in listing
    assert logged_in(viewer).get(OPS_CHANGELIST).status_code == 200

    client.post(OPS_CHANGELIST, {"action": "pause_action", ACTION_CHECKBOX_NAME: [operation.pk]})
    assert PeriodicTask.objects.get().enabled is False
    client.post(OPS_CHANGELIST, {"action": "resume_action", ACTION_CHECKBOX_NAME: [operation.pk]})
    assert PeriodicTask.objects.get().enabled is True
    client.post(OPS_CHANGELIST, {"action": "cancel_action", ACTION_CHECKBOX_NAME: [operation.pk]})
    operation.refresh_from_db()
    assert operation.state == "cancelled"
    assert not PeriodicTask.objects.exists()


def test_viewers_cannot_pause_or_cancel(operator, viewer, rows):
    operation = scheduling.operation_schedule(
        actor=Actor(user=operator, name="operator1", source="api"),
        kind="restart",
        targets=rows,
        schedule="cron",
        cron="0 9 * * *",
    )

    logged_in(viewer).post(OPS_CHANGELIST, {"action": "cancel_action", ACTION_CHECKBOX_NAME: [operation.pk]})

    assert PeriodicTask.objects.get().enabled is True
    operation.refresh_from_db()
    assert operation.state == "scheduled"


def test_add_and_edit_a_scheduled_operation_in_the_admin(operator, rows):
    client = logged_in(operator)
    assert client.get(f"{OPS_CHANGELIST}add/").status_code == 200

    added = client.post(
        f"{OPS_CHANGELIST}add/",
        {
            "kind": "scale",
            "targets": [rows[1].pk, rows[0].pk],
            "replicas": "3",
            "interval_seconds": "5",
            "schedule": "cron",
            "cron": "30 6 * * 1-5",
            "time_zone": "America/New_York",
            "enabled": "on",
        },
    )

    assert added.status_code == 302, added.content.decode()[:3000]
    operation = ScheduledOperation.objects.get()
    crontab = PeriodicTask.objects.get().crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week, str(crontab.timezone)) == (
        "30",
        "6",
        "1-5",
        "America/New_York",
    )
    assert (operation.replicas, operation.created_by_name) == (3, "operator1")
    assert client.get(f"{OPS_CHANGELIST}{operation.pk}/change/").status_code == 200

    bad = client.post(
        f"{OPS_CHANGELIST}{operation.pk}/change/",
        {
            "targets": [rows[0].pk],
            "replicas": "3",
            "interval_seconds": "5",
            "schedule": "once",
            "run_at": "2020-01-01T09:00",
            "cron": "",
            "time_zone": "UTC",
            "enabled": "on",
        },
    )
    assert bad.status_code == 200
    assert "The time to run at is in the past." in bad.content.decode()
    assert PeriodicTask.objects.get().crontab is not None

    edited = client.post(
        f"{OPS_CHANGELIST}{operation.pk}/change/",
        {
            "targets": [rows[0].pk],
            "replicas": "3",
            "interval_seconds": "5",
            "schedule": "cron",
            "cron": "0 22 * * *",
            "time_zone": "America/New_York",
            "enabled": "on",
        },
    )
    assert edited.status_code == 302
    assert PeriodicTask.objects.get().crontab.hour == "22"
    assert [str(s) for s in scheduling.targets_ordered(operation)] == ["shop/a"]


def test_a_once_operation_change_page_shows_the_time_in_its_zone(operator, viewer, rows):
    run_at = datetime.datetime(2031, 5, 1, 1, 30, tzinfo=datetime.UTC)
    operation = scheduling.operation_schedule(
        actor=Actor(user=operator, name="operator1", source="api"),
        kind="restart",
        targets=rows,
        schedule="once",
        run_at=run_at,
        time_zone="Asia/Shanghai",
    )

    html = logged_in(operator).get(f"{OPS_CHANGELIST}{operation.pk}/change/").content.decode()

    assert 'value="2031-05-01T09:30"' in html
    assert logged_in(viewer).get(f"{OPS_CHANGELIST}{operation.pk}/change/").status_code == 200
    assert logged_in(viewer).get(f"{OPS_CHANGELIST}add/").status_code == 403
