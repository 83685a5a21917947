"""Scale, restart, save & scale/restart and batches against the recording Kubernetes stand-in."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connections

from apps.audit.models import AuditEvent, AuditSource, NotificationChannel, NotificationDelivery
from apps.audit.services import Actor
from apps.control import operations
from apps.control.models import Microservice
from tests.factories import MicroserviceFactory

SCALE_PATH = "/apis/apps/v1/namespaces/shop/deployments/{}/scale"
DEPLOYMENT_PATH = "/apis/apps/v1/namespaces/shop/deployments/{}"


def api_actor(user) -> Actor:
    return Actor(user=user, name=user.get_username(), source=AuditSource.API, request_id="req-1")


@pytest.fixture
def cart(k8s_standin, k8s_cluster):
    k8s_standin.add_deployment("shop", "cart", replicas=2)
    return MicroserviceFactory(cluster=k8s_cluster, namespace="shop", name="cart", replicas_measured=2)


def test_scale_to_given_replicas_is_persistent_patches_the_scale_subresource_and_audits(k8s_standin, cart, operator):
    # when
    result = operations.microservice_scale(actor=api_actor(operator), microservice=cart, replicas=5)

    # then: the Deployment is scaled ...
    assert (result.ok, result.before_replicas, result.after_replicas, result.error) == (True, 2, 5, "")
    assert [(r.method, r.path, r.content_type, r.body) for r in k8s_standin.requests] == [
        ("GET", DEPLOYMENT_PATH.format("cart"), "application/json", None),
        ("PATCH", SCALE_PATH.format("cart"), "application/merge-patch+json", {"spec": {"replicas": 5}}),
    ]
    # ... and the control table's specified pods became 5 first (one event each)
    cart.refresh_from_db()
    assert cart.replicas_specified == 5
    update, scale = AuditEvent.objects.order_by("pk")
    assert (update.action, update.before, update.after) == (
        "microservice.update",
        {"replicas_specified": None, "effective_replicas": 2},
        {"replicas_specified": 5, "effective_replicas": 5},
    )
    assert (scale.action, scale.actor, scale.actor_name, scale.source, scale.result) == (
        "microservice.scale",
        operator,
        "operator1",
        "api",
        "ok",
    )
    assert (scale.cluster, scale.namespace, scale.name) == ("prod", "shop", "cart")
    assert (scale.before, scale.after, scale.request_id) == (
        {"replicas": 2},
        {"replicas": 5, "temporary": False},
        "req-1",
    )
    assert scale.message == "scaled from 2 to 5"


def test_a_temporary_scale_leaves_the_control_table_unchanged(k8s_standin, cart, operator):
    result = operations.microservice_scale(actor=api_actor(operator), microservice=cart, replicas=5, temporary=True)

    assert (result.ok, result.after_replicas, result.temporary) == (True, 5, True)
    cart.refresh_from_db()
    assert cart.replicas_specified is None
    (scale,) = AuditEvent.objects.all()
    assert (scale.action, scale.after) == ("microservice.scale", {"replicas": 5, "temporary": True})
    assert scale.message == "scaled from 2 to 5 (temporary: the next deploy or restart applies the control table again)"


def test_a_scale_the_api_server_stores_differently_fails_naming_who_changed_it(k8s_standin, cart, operator):
    # given: the API server answers the scale with another count and the webhook's warning
    scale = {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": "cart", "namespace": "shop", "resourceVersion": "9"},
        "spec": {"replicas": 3},
        "status": {"replicas": 3},
    }
    k8s_standin.respond("PATCH", SCALE_PATH.format("cart"), body=scale)

    # when
    result = operations.microservice_scale(actor=api_actor(operator), microservice=cart, replicas=5, temporary=True)

    # then
    assert (result.ok, result.after_replicas, result.error_kind) == (False, 3, "conflict")
    assert result.error == (
        "asked for 5 replicas but the API server stored 3: "
        "an admission webhook or controller changed it (no warning was returned)"
    )
    (event,) = AuditEvent.objects.all()
    assert (event.result, event.message) == ("error", result.error)


def test_scale_without_replicas_uses_the_effective_replicas(k8s_standin, cart, operator):
    Microservice.objects.filter(pk=cart.pk).update(replicas_specified=0, replicas_recommended=7)
    cart.refresh_from_db()

    result = operations.microservice_scale(actor=api_actor(operator), microservice=cart)

    assert result.after_replicas == 0
    assert k8s_standin.calls("PATCH")[0].body == {"spec": {"replicas": 0}}


def test_scale_refuses_when_there_is_no_effective_replicas(k8s_standin, cart, operator):
    Microservice.objects.filter(pk=cart.pk).update(
        replicas_measured=0, replicas_specified=None, replicas_recommended=None
    )
    cart.refresh_from_db()

    with pytest.raises(ValidationError) as caught:
        operations.microservice_scale(actor=api_actor(operator), microservice=cart)

    assert list(caught.value.message_dict) == ["replicas"]
    assert "shop/cart has no effective replicas" in caught.value.message_dict["replicas"][0]
    assert k8s_standin.requests == []
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("replicas", [-1, 1001])
def test_scale_refuses_replicas_out_of_range(k8s_standin, cart, operator, replicas):
    with pytest.raises(ValidationError) as caught:
        operations.microservice_scale(actor=api_actor(operator), microservice=cart, replicas=replicas)

    assert caught.value.message_dict == {"replicas": ["Replicas must be between 0 and 1000."]}
    assert k8s_standin.requests == []
    assert not AuditEvent.objects.exists()


def test_a_viewer_cannot_scale_or_restart(k8s_standin, cart, viewer):
    with pytest.raises(PermissionDenied):
        operations.microservice_scale(actor=api_actor(viewer), microservice=cart, replicas=3)
    with pytest.raises(PermissionDenied):
        operations.microservice_restart(actor=api_actor(viewer), microservice=cart)

    assert k8s_standin.requests == []
    assert not AuditEvent.objects.exists()


def test_kubernetes_errors_are_returned_and_audited_not_raised(k8s_standin, cart, operator):
    k8s_standin.respond("PATCH", SCALE_PATH.format("cart"), status=403, body={"message": "no scale for you"})

    result = operations.microservice_scale(actor=api_actor(operator), microservice=cart, replicas=3)

    assert result.ok is False
    assert (result.error, result.error_kind) == (
        "cluster prod: scale deployment shop/cart: forbidden (no scale for you)",
        "forbidden",
    )
    event = AuditEvent.objects.get(action="microservice.scale")
    assert (event.action, event.result, event.message) == ("microservice.scale", "error", result.error)
    assert (event.before, event.after) == ({"replicas": 2}, {"replicas": 3, "temporary": False})


def test_restart_sends_the_restart_annotation_and_audits(k8s_standin, cart, operator):
    result = operations.microservice_restart(actor=api_actor(operator), microservice=cart)

    [patch] = k8s_standin.requests
    assert (patch.method, patch.path, patch.content_type) == (
        "PATCH",
        DEPLOYMENT_PATH.format("cart"),
        "application/strategic-merge-patch+json",
    )
    stamp = patch.body["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
    assert result.ok is True
    assert result.message == f"restarted at {stamp}"
    event = AuditEvent.objects.get()
    assert (event.action, event.result) == ("microservice.restart", "ok")
    assert event.after == {"replicas": 2, "restarted_at": stamp}


def test_dry_run_is_audited_as_dry_run_and_changes_nothing(k8s_standin, cart, operator):
    NotificationChannel.objects.create(name="all", kind="slack", target="http://127.0.0.1:9/x", actions=["*"])

    result = operations.microservice_scale(actor=api_actor(operator), microservice=cart, replicas=8, dry_run=True)

    assert result.ok is True
    assert k8s_standin.calls("PATCH")[0].query == {"dryRun": ["All"]}
    assert k8s_standin.deployment("shop", "cart")["spec"]["replicas"] == 2
    assert AuditEvent.objects.get().result == "dry_run"
    assert not NotificationDelivery.objects.exists()


def test_every_operation_queues_notifications_for_subscribed_channels(
    k8s_standin, cart, operator, django_capture_on_commit_callbacks
):
    scale_channel = NotificationChannel.objects.create(
        name="ops", kind="wecom", target="key", actions=["microservice.scale"]
    )
    NotificationChannel.objects.create(name="restarts", kind="slack", target="http://x/", actions=["*.restart"])
    NotificationChannel.objects.create(name="off", kind="slack", target="http://x/", actions=["*"], enabled=False)

    with django_capture_on_commit_callbacks() as callbacks:
        operations.microservice_scale(actor=api_actor(operator), microservice=cart, replicas=3)

    [delivery] = NotificationDelivery.objects.all()
    assert (delivery.channel, delivery.event.action, delivery.state) == (scale_channel, "microservice.scale", "pending")
    assert len(callbacks) == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_save_and_scale_commits_the_save_before_the_scale_reaches_kubernetes(k8s_standin, operator):
    # given
    from tests.servers.k8s_standin import standin_cluster

    cluster = standin_cluster(k8s_standin)
    k8s_standin.add_deployment("shop", "cart", replicas=2)
    microservice = MicroserviceFactory(cluster=cluster, namespace="shop", name="cart", replicas_measured=2)
    seen: list[int | None] = []

    def look_from_another_connection(record) -> None:
        # the stand-in's thread has its own database connection: it sees committed rows only
        if record.method == "PATCH":
            assert threading.current_thread() is not threading.main_thread()
            seen.append(Microservice.objects.get(pk=microservice.pk).replicas_specified)
            connections.close_all()

    k8s_standin.on_request = look_from_another_connection

    # when
    result = operations.microservice_save_and_scale(
        actor=api_actor(operator), microservice=microservice, data={"replicas_specified": 6}
    )

    # then
    assert seen == [6]
    assert (result.ok, result.after_replicas) == (True, 6)
    assert k8s_standin.calls("PATCH")[0].body == {"spec": {"replicas": 6}}
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == [
        "microservice.update",
        "microservice.scale",
    ]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_save_and_restart_commits_the_save_first(k8s_standin, operator):
    from tests.servers.k8s_standin import standin_cluster

    cluster = standin_cluster(k8s_standin)
    k8s_standin.add_deployment("shop", "cart", replicas=2)
    microservice = MicroserviceFactory(cluster=cluster, namespace="shop", name="cart", limit_cpu_m=1000)
    seen: list[int | None] = []

    def look(record) -> None:
        if record.method == "PATCH":
            seen.append(Microservice.objects.get(pk=microservice.pk).limit_cpu_m)
            connections.close_all()

    k8s_standin.on_request = look

    result = operations.microservice_save_and_restart(
        actor=api_actor(operator), microservice=microservice, data={"limit_cpu_m": 1500}
    )

    assert seen == [1500]
    assert result.ok is True


def test_save_and_scale_with_a_bad_value_saves_nothing_and_sends_nothing(k8s_standin, cart, operator):
    with pytest.raises(ValidationError):
        operations.microservice_save_and_scale(
            actor=api_actor(operator), microservice=cart, data={"replicas_specified": 5000}
        )

    assert k8s_standin.requests == []
    cart.refresh_from_db()
    assert cart.replicas_specified is None
    assert not AuditEvent.objects.exists()


def test_batch_waits_the_interval_between_targets_only_and_continues_past_failures(k8s_standin, k8s_cluster, operator):
    # given: three targets, the second missing in Kubernetes
    k8s_standin.add_deployment("shop", "a", replicas=1)
    k8s_standin.add_deployment("shop", "c", replicas=1)
    microservices = [
        MicroserviceFactory(cluster=k8s_cluster, namespace="shop", name=name, replicas_measured=1)
        for name in ("a", "b", "c")
    ]
    sleeps: list[float] = []

    # when
    batch = operations.operation_batch_run(
        actor=api_actor(operator),
        kind="scale",
        microservices=microservices,
        replicas=4,
        interval_seconds=30,
        sleep=sleeps.append,
    )

    # then
    assert sleeps == [30, 30]  # between targets, not after the last
    assert batch.ok is False
    assert batch.succeeded == ["shop/a", "shop/c"]
    assert batch.failed == ["shop/b"]
    assert batch.results[1].error == 'cluster prod: deployment shop/b: not found (deployments.apps "b" not found)'
    assert [r.path for r in k8s_standin.calls("PATCH")] == [SCALE_PATH.format("a"), SCALE_PATH.format("c")]
    scales = AuditEvent.objects.filter(action="microservice.scale").order_by("id")
    assert list(scales.values_list("name", "result")) == [("a", "ok"), ("b", "error"), ("c", "ok")]
    # b's Deployment was not found before anything was written: its table row is unchanged
    updates = AuditEvent.objects.filter(action="microservice.update").order_by("id")
    assert list(updates.values_list("name", flat=True)) == ["a", "c"]


def test_batch_interval_is_really_waited(k8s_standin, k8s_cluster, operator):
    # given
    for name in ("a", "b", "c"):
        k8s_standin.add_deployment("shop", name)
    microservices = [MicroserviceFactory(cluster=k8s_cluster, namespace="shop", name=name) for name in ("a", "b", "c")]

    # when
    batch = operations.operation_batch_run(
        actor=api_actor(operator), kind="restart", microservices=microservices, interval_seconds=0.4
    )

    # then: the recorded gaps between the patches are at least the interval (lower bounds only)
    assert batch.ok is True
    times = [r.at for r in k8s_standin.calls("PATCH")]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.4
    assert times[2] - times[1] >= 0.4


def test_batch_target_without_replicas_fails_alone(k8s_standin, k8s_cluster, operator):
    k8s_standin.add_deployment("shop", "a")
    k8s_standin.add_deployment("shop", "b")
    a = MicroserviceFactory(cluster=k8s_cluster, namespace="shop", name="a", replicas_measured=0)
    b = MicroserviceFactory(cluster=k8s_cluster, namespace="shop", name="b", replicas_measured=3)

    batch = operations.operation_batch_run(actor=api_actor(operator), kind="scale", microservices=[a, b])

    assert batch.failed == ["shop/a"]
    assert "no effective replicas" in batch.results[0].error
    assert [r.body for r in k8s_standin.calls("PATCH")] == [{"spec": {"replicas": 3}}]
    assert batch.as_dict()["failed"] == ["shop/a"]
