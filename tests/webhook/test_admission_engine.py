"""The admission engine through the Kubernetes stand-in: policies and parameters created and removed (issue 12.3).

The webhook configuration and the admission policies are never on together for one cluster: every
switch removes the other engine's objects before it creates its own, which the recorded order of
requests shows.
"""

from __future__ import annotations

import datetime
import json

import kubernetes_validate
import pytest
from django.core.exceptions import ValidationError

from apps.audit.models import AuditEvent, AuditSource
from apps.audit.services import Actor
from apps.control import measurements, services
from apps.control.measurements import MicroserviceMeasurement
from apps.webhook import policy
from apps.webhook import services as webhook_services
from apps.webhook.snapshot import control_row_from
from tests.factories import MicroserviceFactory
from tests.servers.k8s_standin import deployment_manifest, standin_cluster

DAY = datetime.date(2026, 11, 29)
ADMISSION = "/apis/admissionregistration.k8s.io"
WEBHOOK_PATH = f"{ADMISSION}/v1/mutatingwebhookconfigurations"
KINDS = (
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
)


def admin_actor(user) -> Actor:
    return Actor(user=user, name=user.get_username(), source=AuditSource.API, request_id="req-e")


@pytest.fixture
def webhook_endpoint(settings):
    settings.KUBEDOOR_WEBHOOK_URL = "https://kubedoor-webhook.test"
    settings.KUBEDOOR_WEBHOOK_SERVICE = ""
    settings.KUBEDOOR_WEBHOOK_CA_BUNDLE = ""
    settings.KUBEDOOR_WEBHOOK_CA_INJECT_FROM = ""


@pytest.fixture
def prod(k8s_standin, db, webhook_endpoint):
    k8s_standin.git_version = "v1.34.2"
    for namespace in ("shop", "billing", "empty", "kube-system"):
        k8s_standin.add_namespace(namespace)
    cluster = standin_cluster(k8s_standin, name="prod", admission_engine="policy", failure_policy="Fail")
    unset = {"request_cpu_m": None, "request_mem_mib": None, "limit_cpu_m": None, "limit_mem_mib": None}
    MicroserviceFactory(
        cluster=cluster,
        namespace="shop",
        name="cart",
        replicas_measured=2,
        **unset | {"request_cpu_m": 250, "limit_mem_mib": 512},
    )
    MicroserviceFactory(cluster=cluster, namespace="shop", name="api", replicas_specified=4, hpa_name="api", **unset)
    MicroserviceFactory(
        cluster=cluster, namespace="billing", name="ledger", replicas_measured=1, container="app", **unset
    )
    return cluster


def stored(standin) -> dict[str, dict]:
    return {kind: obj for (kind, _), obj in standin.admission_policies.items()}


def test_enforce_with_the_policy_engine_creates_policies_and_parameters_and_no_webhook(k8s_standin, prod, admin_user):
    # when
    webhook_services.admission_mode_set(actor=admin_actor(admin_user), cluster=prod, mode="enforce")

    # then: the four objects, as built, in the version 1.34 serves
    objects = stored(k8s_standin)
    assert sorted(objects) == sorted(KINDS)
    expected = webhook_services.admission_policy.policy_objects_for(
        cluster=prod, api_version="admissionregistration.k8s.io/v1beta1"
    )
    for body in expected:
        got = dict(objects[body["kind"]])
        got["metadata"] = {k: v for k, v in got["metadata"].items() if k not in ("resourceVersion", "uid")}
        assert got == body
        kubernetes_validate.validate(got, "1.34", strict=True)
    assert objects["MutatingAdmissionPolicy"]["apiVersion"] == "admissionregistration.k8s.io/v1beta1"
    # ... one parameter ConfigMap per namespace with rows, holding exactly the table
    assert sorted(k8s_standin.config_maps) == [("billing", "kubedoor-prod"), ("shop", "kubedoor-prod")]
    assert k8s_standin.config_maps[("shop", "kubedoor-prod")]["data"] == {
        "api_managed": "1",
        "cart_limit_memory": "512Mi",
        "cart_managed": "1",
        "cart_replicas": "2",
        "cart_request_cpu": "250m",
    }
    assert k8s_standin.config_maps[("billing", "kubedoor-prod")]["data"] == {
        "ledger_container": "app",
        "ledger_managed": "1",
        "ledger_replicas": "1",
    }
    for config_map in k8s_standin.config_maps.values():
        kubernetes_validate.validate(config_map, "1.34", strict=True)
    # ... no webhook configuration, and the parameters were written before the policies
    assert k8s_standin.webhook_configurations == {}
    writes = [(r.method, r.path) for r in k8s_standin.requests if r.method in ("POST", "PUT", "DELETE")]
    assert writes.index(("POST", "/api/v1/namespaces/shop/configmaps")) < writes.index(
        ("POST", f"{ADMISSION}/v1beta1/mutatingadmissionpolicies")
    )
    prod.refresh_from_db()
    assert (prod.admission_mode, prod.admission_engine) == ("enforce", "policy")
    event = AuditEvent.objects.get(action="admission.mode")
    assert event.message.startswith("admission mode off -> enforce: parameters: 2 written, 0 unchanged, 0 deleted;")
    state = webhook_services.admission_state_get(cluster=prod)
    assert (state["engine"], state["registered"], state["in_sync"]) == ("policy", False, True)
    assert state["policies"] == [f"{kind} kubedoor-prod" for kind in reversed(KINDS[2:])] + [
        f"{kind} kubedoor-prod" for kind in reversed(KINDS[:2])
    ]


def test_v1_is_used_from_1_36_and_allow_unmanaged_leaves_out_the_validating_pair(k8s_standin, prod, admin_user):
    k8s_standin.git_version = "v1.36.0"
    prod.allow_unmanaged = True
    prod.save()

    webhook_services.admission_mode_set(actor=admin_actor(admin_user), cluster=prod, mode="enforce")

    objects = stored(k8s_standin)
    assert sorted(objects) == ["MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"]
    assert {o["apiVersion"] for o in objects.values()} == {"admissionregistration.k8s.io/v1"}
    for obj in objects.values():
        kubernetes_validate.validate(obj, "1.36", strict=True)


def test_the_policy_engine_is_refused_below_1_34_and_nothing_changes(k8s_standin, prod, admin_user, webhook_endpoint):
    # given: the webhook is registered (engine webhook, enforce)
    prod.admission_engine = "webhook"
    prod.save()
    k8s_standin.git_version = "v1.33.4"
    webhook_services.admission_mode_set(actor=admin_actor(admin_user), cluster=prod, mode="enforce")
    assert list(k8s_standin.webhook_configurations) == ["kubedoor-prod"]
    k8s_standin.reset()

    # when
    with pytest.raises(ValidationError) as refused:
        webhook_services.admission_engine_set(actor=admin_actor(admin_user), cluster=prod, engine="policy")

    # then
    assert refused.value.messages == [
        "Cluster prod runs Kubernetes v1.33.4: the policy engine needs 1.34 or later (MutatingAdmissionPolicy); "
        "keep the webhook engine."
    ]
    assert [(r.method, r.path) for r in k8s_standin.requests if r.method != "GET"] == []
    assert list(k8s_standin.webhook_configurations) == ["kubedoor-prod"]
    prod.refresh_from_db()
    assert prod.admission_engine == "webhook"


def test_switching_engines_removes_the_other_engine_first(k8s_standin, prod, admin_user):
    actor = admin_actor(admin_user)
    prod.admission_engine = "webhook"
    prod.save()
    webhook_services.admission_mode_set(actor=actor, cluster=prod, mode="enforce")
    assert list(k8s_standin.webhook_configurations) == ["kubedoor-prod"]
    k8s_standin.reset()

    # webhook -> policy: the configuration is deleted before any policy exists
    webhook_services.admission_engine_set(actor=actor, cluster=prod, engine="policy")
    writes = [(r.method, r.path) for r in k8s_standin.requests if r.method in ("POST", "PUT", "DELETE")]
    assert writes[0] == ("DELETE", f"{WEBHOOK_PATH}/kubedoor-prod")
    assert k8s_standin.webhook_configurations == {}
    assert sorted(stored(k8s_standin)) == sorted(KINDS)
    k8s_standin.reset()

    # policy -> webhook: bindings, policies and parameters are deleted before the configuration is created
    webhook_services.admission_engine_set(actor=actor, cluster=prod, engine="webhook")
    writes = [(r.method, r.path) for r in k8s_standin.requests if r.method in ("POST", "PUT", "DELETE")]
    assert writes[-1] == ("POST", WEBHOOK_PATH)
    assert all(method == "DELETE" for method, _ in writes[:-1])
    assert stored(k8s_standin) == {}
    assert k8s_standin.config_maps == {}
    assert list(k8s_standin.webhook_configurations) == ["kubedoor-prod"]
    events = AuditEvent.objects.filter(action="admission.engine").order_by("pk")
    assert [(e.before, e.after, e.result) for e in events] == [
        ({"admission_engine": "webhook"}, {"admission_engine": "policy"}, "ok"),
        ({"admission_engine": "policy"}, {"admission_engine": "webhook"}, "ok"),
    ]


def test_turning_admission_off_removes_policies_and_parameters(k8s_standin, prod, admin_user):
    actor = admin_actor(admin_user)
    webhook_services.admission_mode_set(actor=actor, cluster=prod, mode="enforce")

    webhook_services.admission_mode_set(actor=actor, cluster=prod, mode="off")

    assert stored(k8s_standin) == {}
    assert k8s_standin.config_maps == {}
    assert k8s_standin.webhook_configurations == {}
    assert webhook_services.admission_state_get(cluster=prod)["in_sync"] is True


def test_audit_mode_needs_the_webhook_engine(k8s_standin, prod, admin_user):
    with pytest.raises(ValidationError) as refused:
        webhook_services.admission_mode_set(actor=admin_actor(admin_user), cluster=prod, mode="audit")
    assert "Audit mode needs the webhook engine" in refused.value.message_dict["mode"][0]
    assert k8s_standin.requests == []
    assert not AuditEvent.objects.exists()


def test_edits_and_refreshes_rewrite_the_parameters_of_their_namespace_only(
    k8s_standin, prod, admin_user, settings, django_capture_on_commit_callbacks
):
    # given: the policy engine on, tasks run in-process
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from kubedoor_site.celery import app

    app.conf.task_always_eager = True
    try:
        webhook_services.admission_mode_set(actor=admin_actor(admin_user), cluster=prod, mode="enforce")
        prod.refresh_from_db()
        k8s_standin.reset()
        cart = prod.microservices.get(name="cart")

        # when: a person edits a row
        with django_capture_on_commit_callbacks(execute=True):
            services.microservice_update(actor=admin_actor(admin_user), microservice=cart, data={"limit_cpu_m": 900})

        # then: only shop's ConfigMap is written, with the new value
        writes = [(r.method, r.path) for r in k8s_standin.requests if r.method != "GET"]
        assert writes == [("PUT", "/api/v1/namespaces/shop/configmaps/kubedoor-prod")]
        assert k8s_standin.config_maps[("shop", "kubedoor-prod")]["data"]["cart_limit_cpu"] == "900m"
        k8s_standin.reset()

        # when: a refresh measures billing/ledger anew and finds billing/new
        with django_capture_on_commit_callbacks(execute=True):
            measurements.microservices_measurements_apply(
                cluster=prod,
                measurements=[
                    MicroserviceMeasurement(namespace="billing", name="ledger", replicas_measured=3, source_day=DAY),
                    MicroserviceMeasurement(namespace="billing", name="new", replicas_measured=2, source_day=DAY),
                    MicroserviceMeasurement(namespace="shop", name="cart", replicas_measured=2),
                    MicroserviceMeasurement(namespace="shop", name="api", replicas_measured=0),
                ],
                actor=Actor.system("refresh"),
            )

        # then: billing's ConfigMap is rewritten in one write
        writes = [(r.method, r.path) for r in k8s_standin.requests if r.method != "GET"]
        assert ("PUT", "/api/v1/namespaces/billing/configmaps/kubedoor-prod") in writes
        data = k8s_standin.config_maps[("billing", "kubedoor-prod")]["data"]
        assert (data["ledger_replicas"], data["new_managed"], data["new_replicas"]) == ("3", "1", "2")
        expected = policy.params_data(
            control_row_from(s, apply_recommended=prod.apply_recommended_replicas)
            for s in prod.microservices.filter(namespace="billing")
        )
        assert data == expected
        k8s_standin.reset()

        # when: unmanaged Deployments become allowed: the policies are applied again, without the validating pair
        with django_capture_on_commit_callbacks(execute=True):
            services.cluster_update(actor=admin_actor(admin_user), cluster=prod, data={"allow_unmanaged": True})
        assert sorted(stored(k8s_standin)) == ["MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"]
    finally:
        app.conf.task_always_eager = False


def test_the_webhook_engine_queues_no_parameter_writes(
    k8s_standin, prod, admin_user, django_capture_on_commit_callbacks
):
    prod.admission_engine = "webhook"
    prod.admission_mode = "enforce"
    prod.save()
    cart = prod.microservices.get(name="cart")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.microservice_update(actor=admin_actor(admin_user), microservice=cart, data={"limit_cpu_m": 900})
    assert callbacks == []


def test_with_the_policy_engine_the_api_server_applies_the_table_itself(k8s_standin, prod, admin_user):
    # given: the policy engine on; no webhook process anywhere
    webhook_services.admission_mode_set(actor=admin_actor(admin_user), cluster=prod, mode="enforce")
    assert k8s_standin.webhook_configurations == {}
    containers = [
        {"name": "cart", "image": "shop/cart:1", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
        {"name": "proxy", "image": "envoy:1"},
    ]

    # when: a person creates a registered Deployment
    created = k8s_standin.kubectl_create(deployment_manifest("shop", "cart", replicas=5, containers=containers))

    # then: the stored object carries the table's replicas and values, other keys and containers kept
    assert created.status == 201, created.body
    stored_cart = k8s_standin.deployment("shop", "cart")
    assert stored_cart["spec"]["replicas"] == 2
    cart, proxy = stored_cart["spec"]["template"]["spec"]["containers"]
    assert cart["resources"] == {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}}
    assert proxy["resources"] == {}  # the defaults only
    assert k8s_standin.admission_calls == []  # no webhook was called

    # ... a person's scale is set back to the table; an HPA-managed Deployment keeps what it is given
    assert k8s_standin.kubectl_scale("shop", "cart", 7).body["spec"]["replicas"] == 2
    k8s_standin.add_deployment("shop", "api", replicas=3)
    assert k8s_standin.kubectl_scale("shop", "api", 6).body["spec"]["replicas"] == 6

    # ... and an unregistered Deployment is refused with the webhook's message
    refused = k8s_standin.kubectl_create(deployment_manifest("shop", "rogue", replicas=1))
    assert refused.status == 403
    assert refused.body["message"] == (
        "deployments.apps \"rogue\" is forbidden: ValidatingAdmissionPolicy 'kubedoor-prod' with binding "
        "'kubedoor-prod' denied request: KubeDoor: Deployment shop/rogue is not in the control table of cluster "
        "prod, so it may not be created, rolled out or scaled. Register it first: add it under Microservices in "
        'the KubeDoor admin, or POST /api/v1/microservices/ with {"cluster": "prod", "namespace": "shop", '
        '"name": "rogue"}; then apply again.'
    )
    assert k8s_standin.deployment("shop", "rogue") is None


def test_the_api_switches_engine_and_mode_for_admins_only(k8s_standin, prod, admin_api, viewer_api):
    url = "/api/v1/clusters/prod/admission/"
    assert viewer_api.post(url, {"engine": "webhook"}, format="json").status_code == 403
    assert admin_api.post(url, {}, format="json").status_code == 400

    response = admin_api.post(url, {"engine": "policy", "mode": "enforce"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["engine"], body["mode"], body["registered"], body["in_sync"]) == ("policy", "enforce", False, True)
    refused = admin_api.post(url, {"mode": "audit"}, format="json")
    assert refused.status_code == 400
    assert "Audit mode needs the webhook engine" in json.dumps(refused.json())
