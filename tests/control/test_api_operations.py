"""The operations API: scale/restart actions and scheduled operations, roles, validation, auditing."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.audit.models import AuditEvent
from apps.control.models import ScheduledOperation
from tests.factories import ClusterFactory, MicroserviceFactory

OPS = "/api/v1/operations/"


@pytest.fixture
def cart(k8s_standin, k8s_cluster):
    k8s_standin.add_deployment("shop", "cart", replicas=2)
    return MicroserviceFactory(cluster=k8s_cluster, namespace="shop", name="cart", replicas_measured=3)


def scale_url(service) -> str:
    return f"/api/v1/microservices/{service.pk}/scale/"


def restart_url(service) -> str:
    return f"/api/v1/microservices/{service.pk}/restart/"


def test_operator_scales_with_given_replicas(operator_api, cart, k8s_standin):
    response = operator_api.post(scale_url(cart), {"replicas": 5}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["ok"], body["before_replicas"], body["after_replicas"], body["name"]) == (True, 2, 5, "cart")
    assert k8s_standin.calls("PATCH")[0].body == {"spec": {"replicas": 5}}
    update, event = AuditEvent.objects.order_by("id")
    assert (update.action, update.after["replicas_specified"]) == ("microservice.update", 5)
    assert (event.action, event.actor_name, event.source, event.result) == (
        "microservice.scale",
        "operator1",
        "api",
        "ok",
    )


def test_a_temporary_scale_leaves_the_table_alone(operator_api, cart, k8s_standin):
    response = operator_api.post(scale_url(cart), {"replicas": 5, "temporary": True}, format="json")

    assert response.status_code == 200
    assert (response.json()["after_replicas"], response.json()["temporary"]) == (5, True)
    cart.refresh_from_db()
    assert cart.replicas_specified is None
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["microservice.scale"]


def test_a_deployment_missing_in_the_cluster_is_404_naming_it_and_changes_nothing(operator_api, cart, k8s_standin):
    k8s_standin.respond("GET", "/apis/apps/v1/namespaces/shop/deployments/cart", status=404)

    response = operator_api.post(scale_url(cart), {"replicas": 4}, format="json")

    assert response.status_code == 404
    assert response.json()["code"] == "kubernetes_not_found"
    assert "deployment shop/cart: not found" in response.json()["detail"]
    assert k8s_standin.calls("PATCH") == []
    cart.refresh_from_db()
    assert cart.replicas_specified is None
    assert list(AuditEvent.objects.values_list("action", "result")) == [("microservice.scale", "error")]


def test_an_unreachable_cluster_is_502(operator_api, cart, k8s_standin):
    k8s_standin.respond("GET", "/apis/apps/v1/namespaces/shop/deployments/cart", status=503)

    response = operator_api.post(scale_url(cart), {"replicas": 4}, format="json")

    assert response.status_code == 502
    assert response.json()["code"] == "kubernetes_error"


def test_scale_without_replicas_uses_the_effective_replicas(operator_api, cart, k8s_standin):
    response = operator_api.post(scale_url(cart), {}, format="json")

    assert response.status_code == 200
    assert response.json()["after_replicas"] == 3
    assert k8s_standin.calls("PATCH")[0].body == {"spec": {"replicas": 3}}


@pytest.mark.parametrize("replicas", [-1, 1001])
def test_scale_replicas_out_of_range_is_400_naming_the_field(operator_api, cart, k8s_standin, replicas):
    response = operator_api.post(scale_url(cart), {"replicas": replicas}, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["replicas"]
    assert k8s_standin.requests == []
    assert not AuditEvent.objects.exists()


def test_scale_without_any_replica_count_is_400(operator_api, cart, k8s_standin):
    cart.replicas_measured = 0
    cart.save()

    response = operator_api.post(scale_url(cart), {}, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["replicas"]
    assert k8s_standin.requests == []


def test_a_kubernetes_conflict_is_409_with_a_readable_message_and_audited(operator_api, cart, k8s_standin):
    k8s_standin.respond("PATCH", "/apis/apps/v1/namespaces/shop/deployments/cart/scale", status=409)

    response = operator_api.post(scale_url(cart), {"replicas": 4, "temporary": True}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "status": 409,
        "code": "kubernetes_conflict",
        "detail": "cluster prod: scale deployment shop/cart: conflict "
        "(scripted 409 for PATCH /apis/apps/v1/namespaces/shop/deployments/cart/scale)",
    }
    assert AuditEvent.objects.get().result == "error"


def test_operator_restarts(operator_api, cart, k8s_standin):
    response = operator_api.post(restart_url(cart), {}, format="json")

    assert response.status_code == 200
    [patch] = k8s_standin.requests
    assert patch.content_type == "application/strategic-merge-patch+json"
    assert AuditEvent.objects.get().action == "microservice.restart"


@pytest.mark.parametrize("url", [scale_url, restart_url])
def test_viewers_cannot_scale_or_restart(viewer_api, cart, k8s_standin, url):
    response = viewer_api.post(url(cart), {"replicas": 3}, format="json")

    assert response.status_code == 403
    assert k8s_standin.requests == []
    assert not AuditEvent.objects.exists()


def test_viewers_cannot_schedule_but_can_list(viewer_api, cart, k8s_standin):
    response = viewer_api.post(OPS, {"kind": "restart", "targets": [cart.pk], "schedule": "now"}, format="json")

    assert response.status_code == 403
    assert not ScheduledOperation.objects.exists()
    assert k8s_standin.requests == []
    assert not AuditEvent.objects.exists()
    assert viewer_api.get(OPS).status_code == 200


def test_operator_schedules_a_once_operation_and_reads_it_back(operator_api, cart):
    run_at = (timezone.now() + datetime.timedelta(days=1)).replace(microsecond=0)

    response = operator_api.post(
        OPS,
        {
            "kind": "scale",
            "targets": [cart.pk],
            "replicas": 4,
            "interval_seconds": 10,
            "schedule": "once",
            "run_at": run_at.astimezone(datetime.timezone(datetime.timedelta(hours=8))).isoformat(),
            "time_zone": "Asia/Shanghai",
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    operation = ScheduledOperation.objects.get()
    assert body["id"] == operation.pk
    assert (body["kind"], body["cluster"], body["targets"], body["replicas"]) == ("scale", "prod", [cart.pk], 4)
    assert (body["schedule"], body["state"], body["enabled"], body["created_by"]) == (
        "once",
        "scheduled",
        True,
        "operator1",
    )
    assert operation.run_at == run_at
    assert PeriodicTask.objects.get().clocked.clocked_time == run_at
    listed = operator_api.get(OPS).json()
    assert [item["id"] for item in listed["results"]] == [operation.pk]


def test_a_naive_run_at_is_read_in_the_given_time_zone(operator_api, cart):
    local = (timezone.now() + datetime.timedelta(days=1)).astimezone(datetime.timezone(datetime.timedelta(hours=9)))
    naive = local.replace(tzinfo=None, microsecond=0)

    response = operator_api.post(
        OPS,
        {
            "kind": "restart",
            "targets": [cart.pk],
            "schedule": "once",
            "run_at": naive.isoformat(),
            "time_zone": "Asia/Tokyo",
        },
        format="json",
    )

    assert response.status_code == 201
    assert ScheduledOperation.objects.get().run_at == naive.replace(
        tzinfo=datetime.timezone(datetime.timedelta(hours=9))
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"schedule": "cron", "cron": "every day"}, "cron"),
        ({"schedule": "once", "run_at": "2020-01-01T00:00:00Z"}, "run_at"),
        ({"schedule": "once", "run_at": "tomorrow"}, "run_at"),
        ({"schedule": "cron", "cron": "0 9 * * *", "time_zone": "Nowhere/Land"}, "time_zone"),
        ({"replicas": -1}, "replicas"),
        ({"replicas": 1001}, "replicas"),
        ({"schedule": "weekly"}, "schedule"),
        ({"interval_seconds": -5}, "interval_seconds"),
    ],
)
def test_invalid_operations_are_400_naming_the_field(operator_api, cart, k8s_standin, payload, field):
    response = operator_api.post(OPS, {"kind": "scale", "targets": [cart.pk], **payload}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert (body["status"], body["code"]) == (400, "invalid")
    assert list(body["errors"]) == [field]
    assert not ScheduledOperation.objects.exists()
    assert not PeriodicTask.objects.exists()
    assert k8s_standin.requests == []


def test_targets_in_different_clusters_are_400(operator_api, cart):
    other = MicroserviceFactory(cluster=ClusterFactory(name="staging"), namespace="shop", name="cart")

    response = operator_api.post(OPS, {"kind": "restart", "targets": [cart.pk, other.pk]}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"targets": ["All targets must be in the same cluster."]}
    assert not ScheduledOperation.objects.exists()


def test_patch_pauses_and_edits_and_delete_cancels(operator_api, cart):
    created = operator_api.post(
        OPS, {"kind": "restart", "targets": [cart.pk], "schedule": "cron", "cron": "0 9 * * *"}, format="json"
    ).json()
    url = f"{OPS}{created['id']}/"

    paused = operator_api.patch(url, {"enabled": False}, format="json")
    assert paused.status_code == 200
    assert (paused.json()["state"], paused.json()["next_run_at"]) == ("paused", None)
    assert PeriodicTask.objects.get().enabled is False

    edited = operator_api.patch(
        url, {"enabled": True, "cron": "15 7 * * 1", "time_zone": "Europe/Paris"}, format="json"
    )
    assert edited.status_code == 200, edited.json()
    crontab = PeriodicTask.objects.get().crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week, str(crontab.timezone)) == (
        "15",
        "7",
        "1",
        "Europe/Paris",
    )
    assert edited.json()["state"] == "scheduled"

    bad = operator_api.patch(url, {"cron": "nope"}, format="json")
    assert bad.status_code == 400
    assert list(bad.json()["errors"]) == ["cron"]

    cancelled = operator_api.delete(url)
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert not PeriodicTask.objects.exists()
    assert operator_api.get(url).json()["state"] == "cancelled"


def test_viewers_cannot_edit_or_cancel(operator_api, viewer_api, cart):
    created = operator_api.post(
        OPS, {"kind": "restart", "targets": [cart.pk], "schedule": "cron", "cron": "0 9 * * *"}, format="json"
    ).json()
    url = f"{OPS}{created['id']}/"
    events = AuditEvent.objects.count()

    assert viewer_api.patch(url, {"enabled": False}, format="json").status_code == 403
    assert viewer_api.delete(url).status_code == 403

    assert PeriodicTask.objects.get().enabled is True
    assert AuditEvent.objects.count() == events
