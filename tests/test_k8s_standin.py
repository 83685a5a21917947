"""The Kubernetes stand-in admits like kube-apiserver: against the real webhook process, and alone.

The first group registers KubeDoor's webhook through the project's own service
(``admission_mode_set``) and acts as a person's kubectl against the stand-in, which calls the real
webhook process (gunicorn) over HTTP. The second group checks the stand-in's own API-server
behaviour with small loopback webhooks written here.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes_validate
import pytest
from django.db import DatabaseError

from apps.audit.models import AuditEvent, AuditSource
from apps.audit.services import Actor
from apps.control import k8s
from apps.webhook import snapshot
from apps.webhook.services import admission_mode_set
from apps.webhook.snapshot import SnapshotHolder
from tests.factories import MicroserviceFactory
from tests.servers import LoopbackHTTPServer, free_port
from tests.servers.k8s_standin import (
    ACCESS_REVIEW_PATH,
    HPA_TOKEN,
    HPA_USERNAME,
    KUBECTL_TOKEN,
    KUBEDOOR_TOKEN,
    KUBEDOOR_USERNAME,
    K8sStandin,
    admission,
    deployment_manifest,
    objects,
)
from tests.servers.k8s_standin.admission import SCALE_KIND

HOOK = "prod.deployments.kubedoor.io"
DEPLOYMENTS = "/apis/apps/v1/namespaces/shop/deployments"
CONFIGS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
JANE = {"username": "jane@example.com", "groups": ["system:authenticated"]}


def enforce(cluster) -> None:
    admission_mode_set(actor=Actor.system("test"), cluster=cluster, mode="enforce")


def cart_manifest(**fields: Any) -> dict[str, Any]:
    return deployment_manifest(
        "shop", "cart", containers=[{"name": "cart", "image": "registry.local/cart:7"}], **fields
    )


# --- against the real webhook process ------------------------------------------------------------


def test_create_of_a_registered_deployment_is_stored_with_the_control_rows_values(
    admitting_cluster, k8s_standin, webhook_process
):
    # given: enforce mode registered through KubeDoor's service, and cart's row in the control table
    enforce(admitting_cluster)
    MicroserviceFactory(cluster=admitting_cluster, namespace="shop", name="cart", replicas_specified=3)
    k8s_standin.add_namespace("shop")
    webhook_process.wait_fresh()

    # when: a person applies a new Deployment with 1 replica and no resources
    answer = k8s_standin.kubectl_create(cart_manifest(replicas=1))

    # then: the stored (and answered) Deployment carries the control row's values
    assert answer.status == 201, answer.body
    stored = k8s_standin.deployment("shop", "cart")
    assert answer.body == stored
    assert stored["spec"]["replicas"] == 3
    assert stored["spec"]["template"]["spec"]["containers"] == [
        {
            "name": "cart",
            "image": "registry.local/cart:7",
            "resources": {
                "requests": {"cpu": "250m", "memory": "256Mi"},
                "limits": {"cpu": "1000m", "memory": "1024Mi"},
            },
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
        }
    ]
    assert (stored["metadata"]["generation"], stored["status"]["replicas"]) == (1, 3)
    kubernetes_validate.validate(stored, "1.30", strict=True)
    # the webhook's warnings reached the caller as Warning headers
    assert answer.warnings == [
        "kubedoor: spec.replicas 1 -> 3 (control table)",
        "kubedoor: container cart requests.cpu unset -> 250m",
        "kubedoor: container cart requests.memory unset -> 256Mi",
        "kubedoor: container cart limits.cpu unset -> 1000m",
        "kubedoor: container cart limits.memory unset -> 1024Mi",
    ]
    assert answer.headers.get_all("Warning")[0] == '299 - "kubedoor: spec.replicas 1 -> 3 (control table)"'
    # the webhook got the review a real API server sends
    [call] = k8s_standin.admission_calls
    assert (call.configuration, call.webhook, call.error, call.status) == ("kubedoor-prod", HOOK, "", 200)
    assert call.url == "https://kubedoor-webhook.test/mutate/prod?timeout=5s"
    assert call.target == f"{webhook_process.url}/mutate/prod?timeout=5s"
    request = call.request
    assert call.review["apiVersion"] == "admission.k8s.io/v1"
    assert (request["kind"], request["resource"]) == (
        {"group": "apps", "version": "v1", "kind": "Deployment"},
        {"group": "apps", "version": "v1", "resource": "deployments"},
    )
    assert "subResource" not in request
    assert (request["operation"], request["namespace"], request["name"]) == ("CREATE", "shop", "cart")
    assert (request["userInfo"], request["oldObject"], request["dryRun"]) == (JANE, None, False)
    assert request["options"] == {
        "kind": "CreateOptions",
        "apiVersion": "meta.k8s.io/v1",
        "fieldManager": "kubectl-client-side-apply",
        "fieldValidation": "Strict",
    }
    assert request["object"]["spec"]["replicas"] == 1
    assert call.response["response"]["uid"] == request["uid"]
    assert [r.user for r in k8s_standin.calls("POST", DEPLOYMENTS)] == ["jane@example.com"]


def test_create_of_an_unregistered_deployment_is_refused_and_not_stored(
    admitting_cluster, k8s_standin, webhook_process
):
    enforce(admitting_cluster)
    k8s_standin.add_namespace("shop")
    webhook_process.wait_fresh()

    answer = k8s_standin.kubectl_create(deployment_manifest("shop", "rogue"))

    assert answer.status == 403
    [call] = k8s_standin.admission_calls
    webhook_status = call.response["response"]["status"]
    assert webhook_status["code"] == 403
    assert "Deployment shop/rogue is not in the control table of cluster prod" in webhook_status["message"]
    assert answer.body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'admission webhook "{HOOK}" denied the request: {webhook_status["message"]}',
        "code": 403,
    }
    assert k8s_standin.deployment("shop", "rogue") is None


def test_the_scale_subresource_reaches_the_webhook_as_a_scale_and_the_patched_replicas_are_stored(
    admitting_cluster, k8s_standin, webhook_process
):
    # given: cart runs 3 replicas; the control table says 4
    enforce(admitting_cluster)
    MicroserviceFactory(cluster=admitting_cluster, namespace="shop", name="cart", replicas_specified=4)
    before = k8s_standin.add_deployment("shop", "cart", replicas=3)
    webhook_process.wait_fresh()

    # when: `kubectl scale --replicas=7`
    answer = k8s_standin.kubectl_scale("shop", "cart", 7)

    # then: the webhook saw a Scale and its patch decided the stored count
    assert answer.status == 200, answer.body
    assert (answer.body["kind"], answer.body["spec"], answer.body["status"]) == (
        "Scale",
        {"replicas": 4},
        {"replicas": 4, "selector": "app=cart"},
    )
    assert answer.warnings == ["kubedoor: spec.replicas 7 -> 4 (control table)"]
    stored = k8s_standin.deployment("shop", "cart")
    assert (stored["spec"]["replicas"], stored["status"]["replicas"]) == (4, 4)
    assert stored["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert int(stored["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    [call] = k8s_standin.admission_calls
    request = call.request
    assert (request["kind"], request["requestKind"]) == (SCALE_KIND, SCALE_KIND)
    assert (request["subResource"], request["requestSubResource"], request["operation"]) == ("scale", "scale", "UPDATE")
    assert (request["object"]["spec"], request["oldObject"]["spec"]) == ({"replicas": 7}, {"replicas": 3})
    assert request["object"]["metadata"]["uid"] == before["metadata"]["uid"]
    assert request["options"] == {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}
    # KubeDoor's own reading of the result agrees
    assert k8s.deployment_get(cluster=admitting_cluster, namespace="shop", name="cart").replicas == 4


@pytest.mark.parametrize(("namespace", "labels"), [("batch", {"kubedoor-ignore": "true"}), ("kube-system", {})])
def test_a_namespace_the_selector_excludes_is_not_sent_to_the_webhook(
    admitting_cluster, k8s_standin, webhook_process, namespace, labels
):
    enforce(admitting_cluster)
    k8s_standin.add_namespace(namespace, labels)

    answer = k8s_standin.kubectl_create(deployment_manifest(namespace, "job", replicas=2))

    assert answer.status == 201, answer.body
    assert (answer.warnings, k8s_standin.admission_calls) == ([], [])
    assert k8s_standin.deployment(namespace, "job")["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    ("policy", "status"),
    [("Ignore", 201), ("Fail", 500)],
)
def test_a_webhook_that_is_down_follows_the_failure_policy(admitting_cluster, k8s_standin, policy, status):
    # given: registered, but the webhook's address refuses connections
    admitting_cluster.failure_policy = policy
    admitting_cluster.save()
    enforce(admitting_cluster)
    MicroserviceFactory(cluster=admitting_cluster, namespace="shop", name="cart", replicas_specified=3)
    k8s_standin.add_namespace("shop")
    dead = free_port()
    k8s_standin.route_webhooks(to=f"http://127.0.0.1:{dead}")

    # when
    answer = k8s_standin.kubectl_create(cart_manifest(replicas=1))

    # then
    reason = (
        'failed to call webhook: Post "https://kubedoor-webhook.test/mutate/prod?timeout=5s": '
        f"dial tcp 127.0.0.1:{dead}: connect: connection refused"
    )
    [call] = k8s_standin.admission_calls
    assert (call.status, call.response, call.error) == (None, None, reason)
    assert answer.status == status
    if policy == "Ignore":
        stored = k8s_standin.deployment("shop", "cart")
        assert stored["spec"]["replicas"] == 1
        assert stored["spec"]["template"]["spec"]["containers"][0]["resources"] == {}
    else:
        message = f'failed calling webhook "{HOOK}": {reason}'
        assert (answer.body["message"], answer.body["reason"]) == (
            f"Internal error occurred: {message}",
            "InternalError",
        )
        assert answer.body["details"] == {"causes": [{"message": message}]}
        assert k8s_standin.deployment("shop", "cart") is None


# --- small loopback webhooks ---------------------------------------------------------------------


class FakeWebhook:
    """A loopback webhook answering each review with ``answer(request) -> response fields``."""

    def __init__(self, answer: Callable[[dict[str, Any]], dict[str, Any] | bytes], *, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.reviews: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self.http = LoopbackHTTPServer(self.serve, name="fake-webhook")
        self.url = self.http.start()

    def serve(self, handler) -> None:
        review = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
        self.reviews.append(review)
        if self.delay:
            self.stopping.wait(self.delay)  # a slow webhook: the API server's timeout must cut it
        result = self.answer(review["request"])
        if isinstance(result, bytes):
            payload = result
        else:
            response = {"uid": review["request"]["uid"], "allowed": True, **result}
            payload = json.dumps({"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": response})
            payload = payload.encode()
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def stop(self) -> None:
        self.stopping.set()
        self.http.stop()


@pytest.fixture
def fake_webhooks() -> Iterator[Callable[..., FakeWebhook]]:
    started: list[FakeWebhook] = []

    def start(answer: Callable[[dict[str, Any]], Any], **kwargs: Any) -> FakeWebhook:
        started.append(FakeWebhook(answer, **kwargs))
        return started[-1]

    yield start
    for webhook in started:
        webhook.stop()


def patch_of(operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(operations).encode()).decode()}


def register(standin: K8sStandin, name: str, *, webhook: str = "hook.test", **fields: Any) -> None:
    """Register a MutatingWebhookConfiguration through the API, as KubeDoor's ServiceAccount."""
    hook = {
        "name": webhook,
        "admissionReviewVersions": ["v1"],
        "clientConfig": {"service": {"namespace": "hooks", "name": name, "path": f"/{name}", "port": 443}},
        "rules": [
            {
                "apiGroups": ["apps"],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["deployments", "deployments/scale"],
            }
        ],
        "sideEffects": "None",
        "timeoutSeconds": 2,
        **fields,
    }
    body = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration"}
    body |= {"metadata": {"name": name}, "webhooks": [hook]}
    assert standin.request("POST", CONFIGS, body, token=KUBEDOOR_TOKEN).status == 201


def test_configurations_run_in_name_order_each_seeing_the_previous_patch(k8s_standin, fake_webhooks):
    # given: "b-labels" is registered first but runs second, and sees "a-replicas"'s patch
    second = fake_webhooks(lambda request: patch_of([{"op": "add", "path": "/metadata/labels/seen", "value": "yes"}]))
    first = fake_webhooks(
        lambda request: {
            **patch_of([{"op": "replace", "path": "/spec/replicas", "value": 5}]),
            "warnings": ['say "hi"'],
        }
    )
    register(k8s_standin, "b-labels")
    register(k8s_standin, "a-replicas")
    k8s_standin.route_webhooks(to=second.url, service="hooks/b-labels")
    k8s_standin.route_webhooks(to=first.url, service="hooks/a-replicas")
    k8s_standin.add_deployment("shop", "cart", replicas=2)

    # when: a strategic merge patch of the image (kubectl set image)
    answer = k8s_standin.kubectl_set_image("shop", "cart", "cart", "registry.local/cart:8")

    # then
    assert answer.status == 200, answer.body
    assert [c.configuration for c in k8s_standin.admission_calls] == ["a-replicas", "b-labels"]
    assert second.reviews[0]["request"]["object"]["spec"]["replicas"] == 5
    assert [c.url for c in k8s_standin.admission_calls] == [
        "https://a-replicas.hooks.svc:443/a-replicas?timeout=2s",
        "https://b-labels.hooks.svc:443/b-labels?timeout=2s",
    ]
    stored = k8s_standin.deployment("shop", "cart")
    assert (stored["spec"]["replicas"], stored["metadata"]["labels"]) == (5, {"app": "cart", "seen": "yes"})
    assert stored["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/cart:8"
    assert answer.warnings == ['say "hi"']
    assert answer.headers.get_all("Warning") == ['299 - "say \\"hi\\""']
    assert first.reviews[0]["request"]["options"] == {
        "kind": "UpdateOptions",
        "apiVersion": "meta.k8s.io/v1",
        "fieldManager": "kubectl-set",
    }


@pytest.mark.parametrize(("policy", "status"), [("Ignore", 200), ("Fail", 500)])
def test_a_webhook_slower_than_its_timeout_follows_the_failure_policy(k8s_standin, fake_webhooks, policy, status):
    slow = fake_webhooks(lambda request: patch_of([{"op": "replace", "path": "/spec/replicas", "value": 9}]), delay=5)
    register(k8s_standin, "slow", failurePolicy=policy, timeoutSeconds=1)
    k8s_standin.route_webhooks(to=slow.url)
    k8s_standin.add_deployment("shop", "cart", replicas=2)

    started = time.monotonic()
    answer = k8s_standin.kubectl_scale("shop", "cart", 3)
    elapsed = time.monotonic() - started

    assert 1.0 <= elapsed < 3.0
    assert answer.status == status
    [call] = k8s_standin.admission_calls
    reason = 'failed to call webhook: Post "https://slow.hooks.svc:443/slow?timeout=1s": context deadline exceeded'
    assert (call.status, call.error) == (None, reason)
    expected_replicas = 3 if policy == "Ignore" else 2
    assert k8s_standin.deployment("shop", "cart")["spec"]["replicas"] == expected_replicas
    if policy == "Fail":
        assert answer.body["message"] == f'Internal error occurred: failed calling webhook "hook.test": {reason}'


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"<html>oops</html>", "failed to call webhook: couldn't get version/kind; json parse error: "),
        (
            json.dumps(
                {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": "x"}}
            ).encode(),
            'received invalid webhook response: expected response.uid="',
        ),
    ],
)
def test_garbage_or_another_uid_is_a_failed_call(k8s_standin, fake_webhooks, answer, error):
    hook = fake_webhooks(lambda request: answer)
    register(k8s_standin, "broken", failurePolicy="Fail")
    k8s_standin.route_webhooks(to=hook.url)
    k8s_standin.add_deployment("shop", "cart", replicas=2)

    reply = k8s_standin.kubectl_scale("shop", "cart", 3)

    assert reply.status == 500
    [call] = k8s_standin.admission_calls
    assert call.error.startswith(error)
    assert reply.body["message"] == f'Internal error occurred: failed calling webhook "hook.test": {call.error}'
    assert k8s_standin.deployment("shop", "cart")["spec"]["replicas"] == 2


def test_match_conditions_keep_the_hpa_controllers_scale_away_from_the_webhook(k8s_standin, fake_webhooks):
    hook = fake_webhooks(lambda request: {})
    skip_hpa = (
        "!(has(request.subResource) && request.subResource == 'scale' && "
        f"request.userInfo.username == '{HPA_USERNAME}')"
    )
    register(k8s_standin, "kubedoor", matchConditions=[{"name": "skip-hpa", "expression": skip_hpa}])
    k8s_standin.route_webhooks(to=hook.url)
    k8s_standin.add_deployment("shop", "cart", replicas=2)
    k8s_standin.add_hpa("shop", "cart", "cart", min_replicas=2, max_replicas=6)
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "cart", "namespace": "shop"}}

    # when: the HPA controller scales (PUT of the Scale), then a person does
    by_hpa = k8s_standin.request(
        "PUT", f"{DEPLOYMENTS}/cart/scale", {**scale, "spec": {"replicas": 5}}, token=HPA_TOKEN
    )
    by_person = k8s_standin.kubectl_scale("shop", "cart", 4)

    # then: only the person's write was sent to the webhook
    assert (by_hpa.status, by_person.status) == (200, 200)
    assert [c.request["userInfo"]["username"] for c in k8s_standin.admission_calls] == ["jane@example.com"]
    assert [(r.method, r.user) for r in k8s_standin.calls(path=f"{DEPLOYMENTS}/cart/scale")] == [
        ("PUT", HPA_USERNAME),
        ("PATCH", "jane@example.com"),
    ]
    assert k8s_standin.deployment("shop", "cart")["spec"]["replicas"] == 4
    listed = k8s_standin.request("GET", "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers")
    assert [h["spec"]["scaleTargetRef"] for h in listed.body["items"]] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cart"}
    ]


def test_match_conditions_are_dropped_by_a_server_older_than_1_28():
    standin = K8sStandin(git_version="v1.26.15").start()
    try:
        register(standin, "kubedoor", matchConditions=[{"name": "never", "expression": "false"}])
        version = standin.request("GET", "/version", token=None)
    finally:
        standin.stop()
    assert (version.status, version.body["major"], version.body["minor"]) == (200, "1", "26")
    assert "matchConditions" not in standin.webhook_configurations["kubedoor"]["webhooks"][0]


def test_a_denial_carries_the_webhooks_code_and_message_and_a_json_patch_test_failure_is_422(
    k8s_standin, fake_webhooks
):
    hook = fake_webhooks(
        lambda request: (
            {
                "allowed": False,
                "status": {"code": 409, "message": "frozen for the release"},
                "warnings": ["até segunda"],
            }
            if request["operation"] == "UPDATE"
            else {}
        )
    )
    register(k8s_standin, "freeze")
    k8s_standin.route_webhooks(to=hook.url)
    k8s_standin.add_deployment("shop", "cart", replicas=2)

    denied = k8s_standin.request(
        "PATCH",
        f"{DEPLOYMENTS}/cart",
        [{"op": "test", "path": "/spec/replicas", "value": 2}, {"op": "replace", "path": "/spec/replicas", "value": 6}],
        content_type="application/json-patch+json",
    )
    failed_test = k8s_standin.request(
        "PATCH",
        f"{DEPLOYMENTS}/cart",
        [{"op": "test", "path": "/spec/replicas", "value": 7}],
        content_type="application/json-patch+json",
    )

    assert (denied.status, denied.body["message"]) == (
        409,
        'admission webhook "hook.test" denied the request: frozen for the release',
    )
    assert denied.warnings == ["até segunda"]  # UTF-8 in the header, as Go writes it
    assert failed_test.status == 422
    assert failed_test.body["reason"] == "Invalid"
    assert len(hook.reviews) == 1  # the failed test op never reached admission
    assert k8s_standin.deployment("shop", "cart")["spec"]["replicas"] == 2


def test_validation_after_admission_refuses_requests_above_limits(k8s_standin, fake_webhooks):
    raise_request = [
        {"op": "add", "path": "/spec/template/spec/containers/0/resources/requests", "value": {"cpu": "2"}}
    ]
    hook = fake_webhooks(lambda request: patch_of(raise_request))
    register(k8s_standin, "greedy")
    k8s_standin.route_webhooks(to=hook.url)
    k8s_standin.add_namespace("shop")
    manifest = cart_manifest()
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1"}}

    answer = k8s_standin.kubectl_create(manifest)

    assert answer.status == 422
    assert answer.body["message"] == (
        'Deployment.apps "cart" is invalid: spec.template.spec.containers[0].resources.requests: '
        'Invalid value: "2": must be less than or equal to cpu limit of 1'
    )
    assert k8s_standin.deployment("shop", "cart") is None


def test_unknown_tokens_are_401_and_users_are_recorded(k8s_standin):
    k8s_standin.add_deployment("shop", "cart")

    nobody = k8s_standin.request("GET", f"{DEPLOYMENTS}/cart", token="stolen")
    person = k8s_standin.request("GET", f"{DEPLOYMENTS}/cart", token=KUBECTL_TOKEN)
    kubedoor = k8s_standin.request("GET", f"{DEPLOYMENTS}/cart", token=KUBEDOOR_TOKEN)

    assert (nobody.status, nobody.body["reason"]) == (401, "Unauthorized")
    assert (person.status, kubedoor.status) == (200, 200)
    assert [r.user for r in k8s_standin.requests] == ["", "jane@example.com", KUBEDOOR_USERNAME]


def test_dry_run_and_delete(k8s_standin, fake_webhooks):
    hook = fake_webhooks(lambda request: patch_of([{"op": "replace", "path": "/spec/replicas", "value": 4}]))
    register(k8s_standin, "fixer")
    k8s_standin.route_webhooks(to=hook.url)
    k8s_standin.add_namespace("shop")

    dry = k8s_standin.kubectl_create(cart_manifest(), dry_run=True)
    assert (dry.status, dry.body["spec"]["replicas"]) == (201, 4)
    assert hook.reviews[0]["request"]["dryRun"] is True
    assert hook.reviews[0]["request"]["options"]["dryRun"] == ["All"]
    assert k8s_standin.deployment("shop", "cart") is None

    created = k8s_standin.kubectl_create(cart_manifest())
    deleted = k8s_standin.request("DELETE", f"{DEPLOYMENTS}/cart")
    assert (created.status, deleted.status, deleted.body["status"]) == (201, 200, "Success")
    assert deleted.body["details"]["uid"] == created.body["metadata"]["uid"]
    assert k8s_standin.deployment("shop", "cart") is None
    assert len(hook.reviews) == 2  # the rules do not cover DELETE


def test_audit_events_of_the_webhook_land_before_the_next_test(admitting_cluster, k8s_standin, webhook_process):
    """The fixture's teardown waits for them; here they are already visible once awaited."""
    enforce(admitting_cluster)
    MicroserviceFactory(cluster=admitting_cluster, namespace="shop", name="cart", replicas_specified=3)
    k8s_standin.add_deployment("shop", "cart", replicas=2)
    webhook_process.wait_fresh()

    assert k8s_standin.kubectl_scale("shop", "cart", 5).status == 200

    webhook_process.wait_audit_events(1)
    event = AuditEvent.objects.get(source=AuditSource.WEBHOOK)
    assert (event.action, event.cluster, event.namespace, event.name) == ("admission.patch", "prod", "shop", "cart")
    assert (event.before, event.after) == ({"replicas": 5}, {"replicas": 3})


# --- pure parts ------------------------------------------------------------------------------------


def _attrs(operation: str = "UPDATE", sub_resource: str = "", labels: dict | None = None, old_labels=None):
    obj = {"metadata": {"labels": labels or {}}}
    old = {"metadata": {"labels": old_labels}} if old_labels is not None else None
    user = admission.User("jane@example.com", ("system:authenticated",))
    return admission.Attributes(operation, "shop", "cart", sub_resource, obj, old, user, False, {})


RULE = {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["deployments"]}


@pytest.mark.parametrize(
    ("hook", "attrs", "namespace_labels", "called"),
    [
        ({"rules": [RULE]}, _attrs(), {}, True),
        ({"rules": [RULE]}, _attrs(sub_resource="scale"), {}, False),
        ({"rules": [{**RULE, "resources": ["*/scale"]}]}, _attrs(sub_resource="scale"), {}, True),
        ({"rules": [{**RULE, "resources": ["*"]}]}, _attrs(sub_resource="scale"), {}, False),
        ({"rules": [{**RULE, "resources": ["*/*"]}]}, _attrs(sub_resource="scale"), {}, True),
        ({"rules": [{**RULE, "operations": ["*"]}]}, _attrs("CREATE"), {}, True),
        ({"rules": [RULE]}, _attrs("CREATE"), {}, False),
        ({"rules": [{**RULE, "scope": "Cluster"}]}, _attrs(), {}, False),
        ({"rules": [{**RULE, "apiGroups": ["extensions"]}]}, _attrs(), {}, False),
        ({"rules": [RULE], "namespaceSelector": {"matchLabels": {"team": "a"}}}, _attrs(), {"team": "a"}, True),
        ({"rules": [RULE], "namespaceSelector": {"matchLabels": {"team": "a"}}}, _attrs(), {"team": "b"}, False),
        (
            {
                "rules": [RULE],
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["shop", "pay"]},
                        {"key": "tier", "operator": "NotIn", "values": ["batch"]},
                        {"key": "team", "operator": "Exists"},
                        {"key": "kubedoor-ignore", "operator": "DoesNotExist"},
                    ]
                },
            },
            _attrs(),
            {"team": "a", "tier": "web"},
            True,
        ),
        (
            {"rules": [RULE], "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]}},
            _attrs(),
            {},
            False,
        ),
        (
            {
                "rules": [RULE],
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["shop"]}
                    ]
                },
            },
            _attrs(),
            {},
            False,
        ),
        ({"rules": [RULE], "objectSelector": {"matchLabels": {"ctl": "yes"}}}, _attrs(labels={"ctl": "yes"}), {}, True),
        (
            {"rules": [RULE], "objectSelector": {"matchLabels": {"ctl": "yes"}}},
            _attrs(labels={}, old_labels={"ctl": "yes"}),
            {},
            True,
        ),
        ({"rules": [RULE], "objectSelector": {"matchLabels": {"ctl": "yes"}}}, _attrs(labels={}), {}, False),
    ],
)
def test_rules_and_selectors_decide_which_webhooks_are_called(hook, attrs, namespace_labels, called):
    assert admission.hook_matches(hook, attrs, namespace_labels) is called


def test_strategic_merge_patch_merges_containers_by_name_and_honours_directives():
    current = deployment_manifest(
        "shop",
        "cart",
        containers=[
            {"name": "cart", "image": "cart:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "envoy", "image": "envoy:1"},
        ],
    )
    patch = {
        "metadata": {"finalizers": ["x"]},
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "envoy"}, {"name": "cart"}],
                    "containers": [
                        {"name": "cart", "env": [{"name": "A", "$patch": "delete"}, {"name": "C", "value": "3"}]},
                        {"name": "log", "image": "log:1"},
                    ],
                }
            },
            "selector": {"$patch": "replace", "matchLabels": {"app": "cart", "v": "2"}},
        },
    }

    patched = objects.strategic_merge_patch(current, patch)

    assert patched["spec"]["template"]["spec"]["containers"] == [
        {"name": "envoy", "image": "envoy:1"},
        {"name": "cart", "image": "cart:1", "env": [{"name": "B", "value": "2"}, {"name": "C", "value": "3"}]},
        {"name": "log", "image": "log:1"},
    ]
    assert patched["spec"]["selector"] == {"matchLabels": {"app": "cart", "v": "2"}}
    assert patched["metadata"]["finalizers"] == ["x"]
    assert (
        objects.merge_patch(current, {"spec": {"template": {"spec": {"containers": []}}}})["spec"]["template"]["spec"][
            "containers"
        ]
        == []
    )


@pytest.mark.parametrize(
    ("selector", "matches"),
    [("app=cart", True), ("app==cart,tier!=db", True), ("tier in (web, api)", True), ("tier notin (web)", False),
     ("app", True), ("!app", False), ("!gone", True), ("app=other", False)],
)  # fmt: skip
def test_label_selector_strings(selector, matches):
    assert objects.selector_matches(selector, {"app": "cart", "tier": "web"}) is matches


def test_snapshot_checked_at_is_when_the_last_successful_check_began(monkeypatch):
    # given: a holder whose stamp query takes a moment
    stamps = iter([(1,), (1,)])

    def slow_stamp():
        time.sleep(0.01)  # the query's own duration, not a synchronisation
        return next(stamps)

    holder = SnapshotHolder(stamp_loader=slow_stamp, loader=dict, autostart=False)
    before = time.time()
    holder.refresh()
    first = holder.checked_at
    holder.refresh()  # unchanged stamp: no rebuild, but a successful check all the same

    assert before <= first < before + 0.01
    assert holder.checked_at > first

    def failing_stamp():
        raise DatabaseError("down")

    holder.stamp_loader = failing_stamp
    monkeypatch.setattr(snapshot, "close_old_connections", lambda: None)  # no database in this test
    checked = holder.checked_at
    holder.refresh()
    assert (holder.checked_at, holder.last_error) == (checked, "down")


def test_deployment_lists_are_paged_by_limit_and_continue(k8s_standin):
    # given five Deployments in shop and one elsewhere
    for name in ("a", "b", "c", "d", "e"):
        k8s_standin.add_deployment("shop", name)
    k8s_standin.add_deployment("pay", "z")
    path = "/apis/apps/v1/namespaces/shop/deployments"
    # when listed two at a time
    names, token, pages = [], None, 0
    while True:
        query = {"limit": "2", **({"continue": token} if token else {})}
        page = k8s_standin.request("GET", path, token=KUBEDOOR_TOKEN, query=query).body
        pages += 1
        names += [item["metadata"]["name"] for item in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
    # then every item once, in order, over three pages; without limit one page holds all
    assert (names, pages) == (["a", "b", "c", "d", "e"], 3)
    whole = k8s_standin.request("GET", path, token=KUBEDOOR_TOKEN).body
    assert [item["metadata"]["name"] for item in whole["items"]] == names
    assert "continue" not in whole["metadata"]
    # a token that is not the server's is refused
    refused = k8s_standin.request("GET", path, token=KUBEDOOR_TOKEN, query={"limit": "2", "continue": "bogus"})
    assert refused.status == 400
    assert refused.body["message"].startswith("continue key is not valid")


def test_self_subject_access_reviews_answer_from_the_tokens_permission_set(k8s_standin):
    # given: jane may get one webhook configuration by name and patch the scale subresource
    k8s_standin.permissions[KUBECTL_TOKEN] = {
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "get", "kubedoor-prod"),
        ("apps", "deployments/scale", "patch", ""),
    }

    def review(**attributes: str) -> Any:
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }
        return k8s_standin.request("POST", ACCESS_REVIEW_PATH, body)

    mwc = {"group": "admissionregistration.k8s.io", "resource": "mutatingwebhookconfigurations", "verb": "get"}
    # then: the named permission holds for that name only; the subresource only as a subresource
    answer = review(**mwc, name="kubedoor-prod")
    assert answer.status == 201
    assert answer.body["status"] == {"allowed": True, "reason": 'RBAC: allowed for user "jane@example.com"'}
    assert review(**mwc, name="kubedoor-other").body["status"] == {"allowed": False}
    assert review(**mwc).body["status"] == {"allowed": False}
    scale = {"group": "apps", "resource": "deployments", "verb": "patch"}
    assert review(**scale, subresource="scale").body["status"]["allowed"] is True
    assert review(**scale).body["status"]["allowed"] is False
    # ... a token without a set is allowed everything; an unknown token is 401
    body = {"kind": "SelfSubjectAccessReview", "spec": {"resourceAttributes": {"verb": "delete", "resource": "pods"}}}
    assert k8s_standin.request("POST", ACCESS_REVIEW_PATH, body, token=HPA_TOKEN).body["status"]["allowed"] is True
    assert k8s_standin.request("POST", ACCESS_REVIEW_PATH, body, token="nobody").status == 401
    # ... and a review without resourceAttributes is a 400
    assert k8s_standin.request("POST", ACCESS_REVIEW_PATH, {"kind": "SelfSubjectAccessReview"}).status == 400
