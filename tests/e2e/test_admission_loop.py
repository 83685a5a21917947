"""The loop closed: operations, HPAs and admission agree, through a stand-in that admits like Kubernetes.

Every Kubernetes write here goes through the stand-in, which sends it as an AdmissionReview to the
MutatingWebhookConfiguration KubeDoor registered (``admission_mode_set``), answered by the real
webhook process (gunicorn on the test database), and stores the patched object. Operations run
through the same services the API, the admin and the Celery worker call; the scheduled ones through
a real worker with embedded beat. A test acts as kubectl only after ``webhook_process.wait_fresh()``,
so the webhook's snapshot holds what the test committed.
"""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import Actor
from apps.control import scheduling
from apps.control.models import Microservice, ScheduledOperation
from apps.control.selectors import hpa_targets_get
from apps.metrics.refresh import control_table_refresh
from apps.metrics.store import OrmStore
from apps.webhook.services import admission_mode_set
from tests.control.scheduling.test_e2e import beat_sees_changes_again, wait_until
from tests.control.test_admin import logged_in
from tests.factories import MicroserviceFactory
from tests.metrics.test_refresh import TODAY, load, peak
from tests.servers.k8s_standin import HPA_TOKEN, K8sStandin, deployment_manifest, standin_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

SYSTEM = Actor.system("tests")
CONTAINER = [{"name": "cart", "image": "registry.local/cart:1", "resources": {"requests": {"cpu": "2"}}}]
WORKER_ENV = {"CELERY_BEAT_MAX_LOOP_INTERVAL": "1", "KUBEDOOR_K8S_TIMEOUT_SECONDS": "5"}


def resources(standin: K8sStandin, name: str = "cart") -> dict:
    (container,) = standin.deployment("shop", name)["spec"]["template"]["spec"]["containers"]
    return container.get("resources", {})


def replicas(standin: K8sStandin, name: str = "cart") -> int:
    return standin.deployment("shop", name)["spec"]["replicas"]


TABLE_RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}


@pytest.fixture
def enforced(admitting_cluster, k8s_standin, webhook_process):
    """Cluster ``prod`` in enforce; ``shop/cart`` registered (3 pods, 250m/256Mi of 500m/512Mi) and deployed."""
    cart = MicroserviceFactory(
        cluster=admitting_cluster,
        namespace="shop",
        name="cart",
        replicas_measured=3,
        request_cpu_m=250,
        request_mem_mib=256,
        limit_cpu_m=500,
        limit_mem_mib=512,
    )
    k8s_standin.add_namespace("shop")
    admission_mode_set(actor=SYSTEM, cluster=admitting_cluster, mode="enforce")
    webhook_process.wait_fresh()
    created = k8s_standin.kubectl_create(deployment_manifest("shop", "cart", replicas=1, containers=CONTAINER))
    assert created.status == 201, created.body
    return cart


def test_enforce_end_to_end_create_refuse_update_and_a_persons_scale(enforced, k8s_standin, webhook_process):
    # then: the person's CREATE was stored with the table's replicas and resources
    assert (replicas(k8s_standin), resources(k8s_standin)) == (3, TABLE_RESOURCES)
    (config,) = k8s_standin.webhook_configurations.values()
    assert config["webhooks"][0]["clientConfig"]["url"] == "https://kubedoor-webhook.test/mutate/prod"

    # an unregistered Deployment is refused with the webhook's message, and not stored
    refused = k8s_standin.kubectl_create(deployment_manifest("shop", "stray"))
    assert refused.status == 403
    assert "Deployment shop/stray is not in the control table of cluster prod" in refused.body["message"]
    assert k8s_standin.deployment("shop", "stray") is None

    # an image update keeps the table's values (and takes the new image)
    updated = k8s_standin.kubectl_set_image("shop", "cart", "cart", "registry.local/cart:2")
    assert updated.status == 200, updated.body
    assert (replicas(k8s_standin), resources(k8s_standin)) == (3, TABLE_RESOURCES)
    assert k8s_standin.deployment("shop", "cart")["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.local/cart:2"
    )

    # a person's `kubectl scale` is rewritten to the table's count, with the webhook's warning
    scaled = k8s_standin.kubectl_scale("shop", "cart", 7)
    assert scaled.status == 200
    assert (scaled.body["spec"]["replicas"], replicas(k8s_standin)) == (3, 3)
    assert scaled.warnings == ["kubedoor: spec.replicas 7 -> 3 (control table)"]


def test_a_persistent_api_scale_moves_the_deployment_and_the_table(
    enforced, k8s_standin, webhook_process, operator_api
):
    # when
    response = operator_api.post(f"/api/v1/microservices/{enforced.pk}/scale/", {"replicas": 5}, format="json")

    # then: the Deployment and the table are at 5, with one event for each
    assert response.status_code == 200, response.json()
    assert (response.json()["before_replicas"], response.json()["after_replicas"]) == (3, 5)
    enforced.refresh_from_db()
    assert (replicas(k8s_standin), enforced.replicas_specified) == (5, 5)
    actions = list(AuditEvent.objects.filter(source="api").order_by("id").values_list("action", "result"))
    assert actions == [("microservice.update", "ok"), ("microservice.scale", "ok")]
    # ... and admission now holds 5 against a person's scale
    webhook_process.wait_fresh()
    assert k8s_standin.kubectl_scale("shop", "cart", 2).body["spec"]["replicas"] == 5


def test_a_temporary_scale_passes_admission_and_the_next_restart_brings_the_table_back(
    enforced, k8s_standin, operator_api
):
    response = operator_api.post(
        f"/api/v1/microservices/{enforced.pk}/scale/", {"replicas": 1, "temporary": True}, format="json"
    )
    assert response.status_code == 200, response.json()
    enforced.refresh_from_db()
    assert (replicas(k8s_standin), enforced.replicas_specified) == (1, None)

    response = operator_api.post(f"/api/v1/microservices/{enforced.pk}/restart/", {}, format="json")

    assert response.status_code == 200, response.json()
    assert replicas(k8s_standin) == 3
    assert resources(k8s_standin) == TABLE_RESOURCES


def test_save_and_restart_applies_the_saved_limits_at_once(enforced, k8s_standin, operator):
    from apps.control.operations import microservice_save_and_restart

    # when: a limit is saved and the service restarted in the same breath (no wait for the snapshot)
    result = microservice_save_and_restart(
        actor=Actor(user=operator, name="operator1", source="admin"), microservice=enforced, data={"limit_cpu_m": 800}
    )

    # then
    assert result.ok, result.error
    assert resources(k8s_standin)["limits"]["cpu"] == "800m"
    template = k8s_standin.deployment("shop", "cart")["spec"]["template"]
    assert template["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]


def test_the_admin_scale_action_is_persistent(enforced, k8s_standin, operator):
    response = logged_in(operator).post(
        "/admin/control/microservice/",
        {
            "action": "scale_action",
            "_selected_action": [enforced.pk],
            "apply": "1",
            "schedule": "now",
            "replicas": "4",
            "interval_seconds": "0",
            "time_zone": "UTC",
        },
        follow=True,
    )

    assert response.status_code == 200
    assert "scaled from 3 to 4" in response.content.decode()
    enforced.refresh_from_db()
    assert (replicas(k8s_standin), enforced.replicas_specified) == (4, 4)


def test_a_scale_that_admission_rewrites_fails_and_says_who(admitting_cluster, enforced, k8s_standin, operator_api):
    # given: KubeDoor talks to the cluster as a user the webhook does not know as its own
    k8s_standin.users["stranger-token"] = ("system:serviceaccount:ops:kubedoor-copy", ["system:authenticated"])
    standin_cluster(k8s_standin, name="prod", kubeconfig=_kubeconfig(k8s_standin, "stranger-token"))

    response = operator_api.post(
        f"/api/v1/microservices/{enforced.pk}/scale/", {"replicas": 6, "temporary": True}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["detail"] == (
        "asked for 6 replicas but the API server stored 3: KubeDoor's admission webhook rewrote it "
        "(kubedoor: spec.replicas 6 -> 3 (control table))"
    )
    assert replicas(k8s_standin) == 3
    event = AuditEvent.objects.get(action="microservice.scale")
    assert (event.result, event.after) == ("error", {"replicas": 3, "temporary": True})


def _kubeconfig(standin: K8sStandin, token: str) -> str:
    from tests.servers.k8s_standin import standin_kubeconfig

    return standin_kubeconfig(standin.url, token=token)


@pytest.mark.parametrize(("policy", "status", "stored"), [("Ignore", 200, 6), ("Fail", 502, 3)])
def test_a_scale_while_the_webhook_is_down_follows_the_failure_policy(
    admitting_cluster, enforced, k8s_standin, operator_api, policy, status, stored
):
    from tests.servers import free_port

    # given: the registration carries the policy, and the webhook cannot be reached
    admitting_cluster.failure_policy = policy
    admitting_cluster.webhook_timeout_seconds = 1
    admitting_cluster.save()
    admission_mode_set(actor=SYSTEM, cluster=admitting_cluster, mode="enforce")
    k8s_standin.route_webhooks(to=f"http://127.0.0.1:{free_port()}")

    response = operator_api.post(
        f"/api/v1/microservices/{enforced.pk}/scale/", {"replicas": 6, "temporary": True}, format="json"
    )

    assert response.status_code == status, response.json()
    assert replicas(k8s_standin) == stored
    if policy == "Fail":
        assert 'failed calling webhook "prod.deployments.kubedoor.io"' in response.json()["detail"]


# --- HPAs ----------------------------------------------------------------------------------------


def test_hpas_are_seen_not_fought(enforced, k8s_standin, webhook_process):
    # given: an HPA scales "api", none scales "cart"; the refresh reads them through the door
    api = MicroserviceFactory(cluster=enforced.cluster, namespace="shop", name="api", replicas_measured=2)
    k8s_standin.add_deployment("shop", "api", replicas=2)
    k8s_standin.add_hpa("shop", "api-hpa", "api", min_replicas=2, max_replicas=10)
    store = OrmStore()
    load(store, [peak(TODAY, "api", pods=2), peak(TODAY, "cart", pods=3)])
    targets = hpa_targets_get(cluster=enforced.cluster)
    assert targets == {("shop", "api"): "api-hpa"}
    # one day of data is enough here, and no day-to-day clamp (issue 11's refresh rules, off for this test)
    enforced.cluster.min_days, enforced.cluster.max_change_pct = 1, 100
    enforced.cluster.save(update_fields=["min_days", "max_change_pct"])
    control_table_refresh(cluster=enforced.cluster, store=store, today=TODAY, actor=SYSTEM, hpa_targets=targets)
    api.refresh_from_db()
    enforced.refresh_from_db()
    assert (api.hpa_name, api.is_hpa_managed, enforced.hpa_name) == ("api-hpa", True, "")
    webhook_process.wait_fresh()

    # when/then: the HPA controller's scale write passes for the HPA's Deployment
    hpa_scale = k8s_standin.kubectl_scale("shop", "api", 8, token=HPA_TOKEN)
    assert (hpa_scale.status, replicas(k8s_standin, "api")) == (200, 8)
    # ... a person's scale of it passes too (its replicas are the HPA's, never the table's)
    assert k8s_standin.kubectl_scale("shop", "api", 6).body["spec"]["replicas"] == 6
    # ... while the same write by a person on a service without an HPA is rewritten
    assert k8s_standin.kubectl_scale("shop", "cart", 8).body["spec"]["replicas"] == 3
    # ... and requests and limits are still enforced on the HPA's Deployment, replicas kept as sent
    updated = k8s_standin.kubectl_set_image("shop", "api", "api", "registry.local/api:2")
    assert updated.status == 200, updated.body
    (container,) = k8s_standin.deployment("shop", "api")["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == {  # requests from the refresh: P95 0.1 cores, 100 MiB
        "requests": {"cpu": "100m", "memory": "100Mi"},
        "limits": {"cpu": "1000m", "memory": "1024Mi"},
    }
    assert replicas(k8s_standin, "api") == 6


@pytest.mark.parametrize(("version", "conditions"), [("v1.30.2", True), ("v1.27.9", False)])
def test_the_hpa_controllers_scale_writes_skip_the_webhook_where_the_server_can(
    admitting_cluster, k8s_standin, webhook_process, version, conditions
):
    # given: a Deployment whose HPA KubeDoor has not seen yet (no mark in the table)
    k8s_standin.git_version = version
    MicroserviceFactory(cluster=admitting_cluster, namespace="shop", name="web", replicas_measured=2)
    k8s_standin.add_deployment("shop", "web", replicas=2)
    admission_mode_set(actor=SYSTEM, cluster=admitting_cluster, mode="enforce")
    webhook_process.wait_fresh()
    (config,) = k8s_standin.webhook_configurations.values()
    assert ("matchConditions" in config["webhooks"][0]) is conditions
    k8s_standin.reset()

    # when: the HPA controller scales it
    answer = k8s_standin.kubectl_scale("shop", "web", 5, token=HPA_TOKEN)

    # then: it passes either way; on 1.28+ the API server did not even call the webhook
    assert (answer.status, replicas(k8s_standin, "web")) == (200, 5)
    assert len(k8s_standin.admission_calls) == (0 if conditions else 1)


# --- scheduled operations through a real worker ---------------------------------------------------


@pytest.fixture(scope="module")
def worker_with_beat(celery_worker_factory):
    from tests.servers import stop_process

    process = celery_worker_factory(beat=True, extra_env=WORKER_ENV, name="admission-loop")
    yield process
    stop_process(process, timeout=15)


def test_once_and_cron_scales_through_the_worker_are_persistent_and_admitted(
    worker_with_beat, enforced, k8s_standin, operator
):
    beat_sees_changes_again()
    actor = Actor(user=operator, name="operator1", source="api")
    # a once operation due in a few seconds, fired by beat
    once = scheduling.operation_schedule(
        actor=actor,
        kind="scale",
        targets=[enforced],
        replicas=2,
        schedule="once",
        run_at=timezone.now() + datetime.timedelta(seconds=4),
    )
    wait_until(lambda: ScheduledOperation.objects.get(pk=once.pk).state == "done", what="the once scale done")
    enforced.refresh_from_db()
    assert (replicas(k8s_standin), enforced.replicas_specified) == (2, 2)
    assert ScheduledOperation.objects.get(pk=once.pk).last_result["ok"] is True

    # a cron operation (nightly scale-down, temporary) run by the worker as beat would fire it
    cron = scheduling.operation_schedule(
        actor=actor, kind="scale", targets=[enforced], replicas=1, temporary=True, schedule="cron", cron="0 1 * * *"
    )
    from apps.control.tasks import operation_run_task

    operation_run_task.apply_async(kwargs={"operation_id": cron.pk})
    wait_until(lambda: ScheduledOperation.objects.get(pk=cron.pk).last_run_at, what="the cron scale run")
    enforced.refresh_from_db()
    assert (replicas(k8s_standin), enforced.replicas_specified) == (1, 2)
    scales = AuditEvent.objects.filter(action="microservice.scale").order_by("id")
    assert [(event.after, event.result) for event in scales] == [
        ({"replicas": 2, "temporary": False}, "ok"),
        ({"replicas": 1, "temporary": True}, "ok"),
    ]
    assert Microservice.objects.get(pk=enforced.pk).replicas_specified == 2
