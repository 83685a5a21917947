"""In-place resize (Kubernetes 1.35+) through the stand-in: each status path, the fallback, the 409, auditing."""

from __future__ import annotations

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.audit.models import AuditEvent, AuditSource
from apps.audit.services import Actor
from apps.control import operations, scheduling
from apps.control.models import OperationRun
from apps.control.resize import microservice_resize
from tests.factories import MicroserviceFactory

PODS_PATH = "/api/v1/namespaces/shop/pods"
DEPLOYMENT_PATH = "/apis/apps/v1/namespaces/shop/deployments/api"
CONTAINERS = [
    {"name": "sidecar", "image": "envoy:1", "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}}},
    {
        "name": "api",
        "image": "shop/api:1",
        "resources": {
            "requests": {"cpu": "100m", "memory": "64Mi", "ephemeral-storage": "1Gi"},
            "limits": {"cpu": "200m", "memory": "128Mi"},
        },
    },
]
WANTED = {"requests": {"cpu": "300m", "memory": "256Mi"}, "limits": {"cpu": "600m", "memory": "512Mi"}}
BODY = {"spec": {"containers": [{"name": "api", "resources": WANTED}]}}
NOTE = "the Deployment's template is unchanged, the next deploy applies the table through admission"


def api_actor(user) -> Actor:
    return Actor(user=user, name=user.get_username(), source=AuditSource.API, request_id="req-9")


@pytest.fixture
def api(k8s_standin, k8s_cluster, settings):
    settings.KUBEDOOR_RESIZE_POLL_SECONDS = 0.01
    settings.KUBEDOOR_RESIZE_WAIT_SECONDS = 0.03  # three read-backs at most
    k8s_standin.git_version = "v1.35.1"
    k8s_standin.add_deployment("shop", "api", replicas=2, containers=CONTAINERS)
    return MicroserviceFactory(
        cluster=k8s_cluster,
        namespace="shop",
        name="api",
        replicas_measured=2,
        request_cpu_m=300,
        request_mem_mib=256,
        limit_cpu_m=600,
        limit_mem_mib=512,
    )


def pod_names(standin) -> list[str]:
    return [pod["metadata"]["name"] for pod in standin.pods("shop", "api")]


def test_a_resize_patches_each_pod_resize_subresource_and_leaves_the_template(k8s_standin, api, operator):
    # given
    first, second = pod_names(k8s_standin)
    template_version = k8s_standin.deployment("shop", "api")["metadata"]["resourceVersion"]

    # when
    result = microservice_resize(actor=api_actor(operator), microservice=api)

    # then: one strategic merge patch per pod, only the controlled container's cpu and memory
    resizes = [r for r in k8s_standin.requests if r.path.endswith("/resize")]
    assert [(r.method, r.path, r.content_type, r.body) for r in resizes] == [
        ("PATCH", f"{PODS_PATH}/{first}/resize", "application/strategic-merge-patch+json", BODY),
        ("PATCH", f"{PODS_PATH}/{second}/resize", "application/strategic-merge-patch+json", BODY),
    ]
    # ... the running pods have the table's values, other keys and containers kept, no rollout
    for pod in k8s_standin.pods("shop", "api"):
        sidecar, container = pod["spec"]["containers"]
        assert container["resources"] == {
            "requests": {"cpu": "300m", "memory": "256Mi", "ephemeral-storage": "1Gi"},
            "limits": {"cpu": "600m", "memory": "512Mi"},
        }
        assert sidecar["resources"] == {"requests": {"cpu": "50m", "memory": "32Mi"}}
    assert pod_names(k8s_standin) == [first, second]
    assert k8s_standin.deployment("shop", "api")["metadata"]["resourceVersion"] == template_version
    assert k8s_standin.calls("PATCH", DEPLOYMENT_PATH) == []
    # ... every pod is reported done, nothing was polled (both settled at once)
    assert (result.ok, result.kind, result.error) == (True, "resize", "")
    assert result.pods == [
        {"pod": first, "state": "done", "detail": ""},
        {"pod": second, "state": "done", "detail": ""},
    ]
    assert result.message == f"resized in place (2 done): {NOTE}"
    assert len(k8s_standin.calls("GET", PODS_PATH)) == 1
    # ... and audited with the pods' former values
    (event,) = AuditEvent.objects.all()
    assert (event.action, event.result, event.actor) == ("microservice.resize", "ok", operator)
    assert event.request_id == "req-9"
    old = {"requests": CONTAINERS[1]["resources"]["requests"], "limits": CONTAINERS[1]["resources"]["limits"]}
    assert event.before == {"container": "api", "pods": {first: old, second: old}}
    assert event.after == {
        "container": "api",
        **WANTED,
        "pods": {first: "done", second: "done"},
        "restart_fallback": False,
    }


def test_a_pod_in_progress_is_read_back_until_the_kubelet_applied_it(k8s_standin, api, operator):
    first, second = pod_names(k8s_standin)
    k8s_standin.resize_plan("shop", second, "in_progress", "in_progress", "done")

    result = microservice_resize(actor=api_actor(operator), microservice=api)

    # the patch answered "in progress"; the second read-back saw it done
    assert result.ok is True
    assert [p["state"] for p in result.pods] == ["done", "done"]
    assert len(k8s_standin.calls("GET", PODS_PATH)) == 1 + 2
    applied = k8s_standin.pods("shop", "api")[1]["status"]["containerStatuses"][1]["resources"]
    assert applied == {
        "requests": {"cpu": "300m", "memory": "256Mi", "ephemeral-storage": "1Gi"},
        "limits": {"cpu": "600m", "memory": "512Mi"},
    }


def test_a_pod_still_in_progress_after_the_wait_is_reported_so_without_failing(k8s_standin, api, operator):
    _first, second = pod_names(k8s_standin)
    k8s_standin.resize_plan("shop", second, "in_progress")

    result = microservice_resize(actor=api_actor(operator), microservice=api)

    assert result.ok is True
    assert [p["state"] for p in result.pods] == ["done", "in_progress"]
    assert result.message == f"resized in place (1 done, 1 in progress): {NOTE}"
    assert len(k8s_standin.calls("GET", PODS_PATH)) == 1 + 3  # the wait allows three read-backs


def test_a_pod_deferred_too_long_fails_without_the_fallback_and_nothing_restarts(k8s_standin, api, operator):
    first, second = pod_names(k8s_standin)
    k8s_standin.resize_plan("shop", first, "deferred")

    result = microservice_resize(actor=api_actor(operator), microservice=api)

    assert (result.ok, result.error_kind) == (False, "conflict")
    assert result.pods == [
        {
            "pod": first,
            "state": "deferred",
            "detail": "Node didn't have enough resource: cpu, requested: 4000, used: 3500, capacity: 4000",
        },
        {"pod": second, "state": "done", "detail": ""},
    ]
    assert result.error == (
        f"{first} could not be resized in place (1 done, 1 deferred); ask for the restart fallback to roll them"
    )
    assert k8s_standin.calls("PATCH", DEPLOYMENT_PATH) == []  # no restart
    assert pod_names(k8s_standin) == [first, second]
    (event,) = AuditEvent.objects.all()
    assert (event.action, event.result, event.message) == ("microservice.resize", "error", result.error)
    assert event.after["pods"] == {first: "deferred", second: "done"}


def test_a_deferred_pod_that_fits_later_is_done(k8s_standin, api, operator):
    first, _second = pod_names(k8s_standin)
    k8s_standin.resize_plan("shop", first, "deferred", "deferred", "done")

    result = microservice_resize(actor=api_actor(operator), microservice=api, restart_fallback=True)

    assert result.ok is True
    assert [p["state"] for p in result.pods] == ["done", "done"]
    assert k8s_standin.calls("PATCH", DEPLOYMENT_PATH) == []


def test_an_infeasible_pod_falls_back_to_a_rolling_restart_when_asked(k8s_standin, api, operator):
    # given
    first, second = pod_names(k8s_standin)
    k8s_standin.resize_plan("shop", second, "infeasible")

    # when
    result = microservice_resize(actor=api_actor(operator), microservice=api, restart_fallback=True)

    # then: infeasible is final at once (no read-back), and the Deployment rolled
    assert len(k8s_standin.calls("GET", PODS_PATH)) == 1
    (restart,) = k8s_standin.calls("PATCH", DEPLOYMENT_PATH)
    stamp = restart.body["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
    assert [p["state"] for p in result.pods] == ["done", "infeasible"]
    assert result.pods[1]["detail"] == "Node didn't have enough capacity: cpu, requested: 64000, capacity: 4000"
    assert (result.ok, result.error) == (True, "")
    assert result.message == (
        f"resized in place (1 done, 1 infeasible): {NOTE} {second} could not be resized: restarted instead "
        f"(restarted at {stamp})"
    )
    # the rollout replaced both pods
    assert set(pod_names(k8s_standin)).isdisjoint({first, second})
    restart_event, resize_event = AuditEvent.objects.order_by("pk")
    assert (restart_event.action, restart_event.result) == ("microservice.restart", "ok")
    assert (resize_event.action, resize_event.result) == ("microservice.resize", "ok")
    assert resize_event.after["fallback_restart"] == {"ok": True, "message": f"restarted at {stamp}"}
    assert resize_event.after["restart_fallback"] is True


def test_a_resize_that_would_change_the_qos_class_is_rejected_and_can_fall_back(k8s_standin, k8s_cluster, operator):
    # given: a BestEffort pod (no resources) cannot be given requests in place
    k8s_standin.git_version = "v1.35.0"
    k8s_standin.add_deployment("shop", "bare", replicas=1, containers=[{"name": "bare", "image": "bare:1"}])
    service = MicroserviceFactory(cluster=k8s_cluster, namespace="shop", name="bare", request_cpu_m=100)
    (pod,) = [p["metadata"]["name"] for p in k8s_standin.pods("shop", "bare")]

    result = microservice_resize(actor=api_actor(operator), microservice=service)

    assert (result.ok, [p["state"] for p in result.pods]) == (False, ["rejected"])
    assert "Pod QOS Class may not change as a result of resizing" in result.pods[0]["detail"]
    assert pod in result.error
    assert k8s_standin.pods("shop", "bare")[0]["spec"]["containers"][0].get("resources") in (None, {})


def test_a_cluster_below_1_35_is_refused_with_a_conflict_and_nothing_is_patched(k8s_standin, api, operator):
    k8s_standin.git_version = "v1.34.3"

    result = microservice_resize(actor=api_actor(operator), microservice=api)

    assert (result.ok, result.error_kind) == (False, "conflict")
    assert result.error == (
        "cluster prod runs Kubernetes v1.34.3: in-place resize needs 1.35 or later; use a restart instead"
    )
    assert [(r.method, r.path) for r in k8s_standin.requests] == [("GET", "/version/")]
    (event,) = AuditEvent.objects.all()
    assert (event.action, event.result, event.message) == ("microservice.resize", "error", result.error)


def test_the_api_resizes_and_answers_409_below_1_35(operator_api, viewer_api, k8s_standin, api):
    url = f"/api/v1/microservices/{api.pk}/resize/"
    assert viewer_api.post(url, {}, format="json").status_code == 403
    assert k8s_standin.requests == []

    response = operator_api.post(url, {"restart_fallback": False}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["ok"], body["kind"], [p["state"] for p in body["pods"]]) == (True, "resize", ["done", "done"])

    k8s_standin.git_version = "v1.34.0"
    refused = operator_api.post(url, {}, format="json")
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        "cluster prod runs Kubernetes v1.34.0: in-place resize needs 1.35 or later; use a restart instead"
    )


def test_a_scheduled_resize_batch_runs_with_its_fallback_flag(k8s_standin, k8s_cluster, api, operator, settings):
    # given: a second Deployment whose only pod cannot be resized
    k8s_standin.add_deployment("shop", "web", replicas=1, containers=[dict(CONTAINERS[1], name="web")])
    web = MicroserviceFactory(cluster=k8s_cluster, namespace="shop", name="web", request_cpu_m=150)
    (web_pod,) = [p["metadata"]["name"] for p in k8s_standin.pods("shop", "web")]
    k8s_standin.resize_plan("shop", web_pod, "infeasible")
    operation = scheduling.operation_schedule(
        actor=api_actor(operator),
        kind="resize",
        targets=[api, web],
        restart_fallback=True,
        schedule="once",
        run_at=timezone.now() + datetime.timedelta(hours=1),
    )

    # when
    batch = scheduling.operation_run(operation_id=operation.pk, run_id="resize-1")

    # then
    assert batch is not None
    assert [(r.name, r.ok, [p["state"] for p in r.pods]) for r in batch.results] == [
        ("api", True, ["done", "done"]),
        ("web", True, ["infeasible"]),
    ]
    assert len(k8s_standin.calls("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web")) == 1  # the fallback
    run = OperationRun.objects.get()
    assert [item["pods"] for item in run.results][1] == [{"pod": web_pod, "state": "infeasible", "detail": (
        "Node didn't have enough capacity: cpu, requested: 64000, capacity: 4000")}]  # fmt: skip
    snapshot = AuditEvent.objects.get(action="operation.schedule").after
    assert (snapshot["kind"], snapshot["restart_fallback"], snapshot["replicas"]) == ("resize", True, None)


def test_resize_fields_are_validated(api, operator):
    with pytest.raises(ValidationError) as replicas:
        scheduling.operation_schedule(actor=api_actor(operator), kind="resize", targets=[api], replicas=3)
    assert replicas.value.message_dict == {"replicas": ["Replicas only apply to scale operations."]}
    with pytest.raises(ValidationError) as fallback:
        scheduling.operation_schedule(actor=api_actor(operator), kind="scale", targets=[api], restart_fallback=True)
    assert fallback.value.message_dict == {"restart_fallback": ["Only a resize has a restart fallback."]}
    assert not AuditEvent.objects.exists()


def test_a_viewer_cannot_resize(k8s_standin, api, viewer):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        operations.operation_target_run(actor=api_actor(viewer), kind="resize", microservice=api)
    assert k8s_standin.requests == []
