"""The Kubernetes door against the recording stand-in: exact requests, typed errors, valid objects."""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys

import kubernetes_validate
import pytest
from django.test import override_settings

from apps.control import k8s
from apps.control.models import Cluster
from tests.servers.k8s_standin import standin_kubeconfig

K8S_VERSION = kubernetes_validate.latest_version()
DEPLOYMENT_PATH = "/apis/apps/v1/namespaces/shop/deployments/cart"


def validate(obj: dict) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.fixture
def cart(k8s_standin):
    return k8s_standin.add_deployment(
        "shop",
        "cart",
        replicas=2,
        containers=[
            {
                "name": "cart",
                "image": "registry.local/cart:7",
                "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
            },
            {"name": "envoy", "image": "registry.local/envoy:1"},
        ],
    )


def test_deployment_get_reads_the_object_into_a_frozen_dataclass(k8s_standin, k8s_cluster, cart):
    # when
    deployment = k8s.deployment_get(cluster=k8s_cluster, namespace="shop", name="cart")

    # then
    assert deployment == k8s.Deployment(
        namespace="shop",
        name="cart",
        replicas=2,
        ready_replicas=2,
        available_replicas=2,
        updated_replicas=2,
        generation=1,
        observed_generation=1,
        resource_version=cart["metadata"]["resourceVersion"],
        labels={"app": "cart"},
        template_annotations={},
        containers=(
            k8s.ContainerResources(
                name="cart",
                image="registry.local/cart:7",
                requests={"cpu": "250m", "memory": "256Mi"},
                limits={"cpu": "1", "memory": "1Gi"},
            ),
            k8s.ContainerResources(name="envoy", image="registry.local/envoy:1", requests={}, limits={}),
        ),
    )
    with pytest.raises(AttributeError):
        deployment.replicas = 3  # type: ignore[misc]
    [call] = k8s_standin.requests
    assert (call.method, call.path, call.query, call.body) == ("GET", DEPLOYMENT_PATH, {}, None)
    assert call.headers["authorization"] == "Bearer standin-token"
    validate(k8s_standin.deployment("shop", "cart"))


def test_deployment_scale_sends_a_merge_patch_to_the_scale_subresource(k8s_standin, k8s_cluster, cart):
    # when
    scale = k8s.deployment_scale(cluster=k8s_cluster, namespace="shop", name="cart", replicas=5)

    # then
    assert scale.replicas == 5
    assert (scale.namespace, scale.name) == ("shop", "cart")
    [call] = k8s_standin.requests
    assert call.method == "PATCH"
    assert call.path == DEPLOYMENT_PATH + "/scale"
    assert call.content_type == "application/merge-patch+json"
    assert call.body == {"spec": {"replicas": 5}}
    assert call.query == {}
    assert k8s_standin.deployment("shop", "cart")["spec"]["replicas"] == 5
    # the patch is a valid Scale object once named, and the result a valid Deployment
    validate(
        {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {"name": "cart", "namespace": "shop"},
            **call.body,
        }
    )
    validate(k8s_standin.deployment("shop", "cart"))


def test_deployment_scale_dry_run_asks_the_server_for_a_dry_run(k8s_standin, k8s_cluster, cart):
    scale = k8s.deployment_scale(cluster=k8s_cluster, namespace="shop", name="cart", replicas=9, dry_run=True)

    assert scale.replicas == 9
    [call] = k8s_standin.requests
    assert call.query == {"dryRun": ["All"]}
    assert k8s_standin.deployment("shop", "cart")["spec"]["replicas"] == 2


def test_deployment_scale_refuses_negative_replicas_without_calling(k8s_standin, k8s_cluster, cart):
    with pytest.raises(ValueError, match="negative"):
        k8s.deployment_scale(cluster=k8s_cluster, namespace="shop", name="cart", replicas=-1)
    assert k8s_standin.requests == []


def test_deployment_restart_sends_the_restarted_at_annotation_as_a_strategic_merge_patch(
    k8s_standin, k8s_cluster, cart
):
    # given
    at = datetime.datetime(2026, 3, 29, 1, 30, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))

    # when
    deployment = k8s.deployment_restart(cluster=k8s_cluster, namespace="shop", name="cart", at=at)

    # then
    [call] = k8s_standin.requests
    assert call.method == "PATCH"
    assert call.path == DEPLOYMENT_PATH
    assert call.content_type == "application/strategic-merge-patch+json"
    assert call.body == {
        "spec": {
            "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-03-28T23:30:05Z"}}}
        }
    }
    assert deployment.restarted_at == "2026-03-28T23:30:05Z"
    assert deployment.replicas == 2
    stored = k8s_standin.deployment("shop", "cart")
    assert [c["name"] for c in stored["spec"]["template"]["spec"]["containers"]] == ["cart", "envoy"]
    validate(stored)


def test_deployment_list_pages_and_passes_the_label_selector(k8s_standin, k8s_cluster):
    # given
    k8s_standin.add_deployment("shop", "cart", labels={"app": "cart", "tier": "web"})
    k8s_standin.add_deployment("shop", "db", labels={"app": "db", "tier": "data"})
    k8s_standin.add_deployment("pay", "api", labels={"app": "api", "tier": "web"})
    page_2 = "/apis/apps/v1/namespaces/pay/deployments"
    k8s_standin.respond(
        "GET",
        page_2,
        body={
            "kind": "DeploymentList",
            "apiVersion": "apps/v1",
            "metadata": {"continue": "token-2"},
            "items": [k8s_standin.deployment("pay", "api")],
        },
        times=1,
    )
    k8s_standin.respond(
        "GET",
        page_2,
        body={"kind": "DeploymentList", "apiVersion": "apps/v1", "metadata": {}, "items": []},
        times=1,
    )
    k8s_standin.requests.clear()

    # when
    in_shop = k8s.deployment_list(cluster=k8s_cluster, namespaces=["shop"], label_selector="tier=web")
    in_pay = k8s.deployment_list(cluster=k8s_cluster, namespaces=["pay"])
    everywhere = k8s.deployment_list(cluster=k8s_cluster, label_selector="tier=web")

    # then
    assert [(d.namespace, d.name) for d in in_shop] == [("shop", "cart")]
    assert [(d.namespace, d.name) for d in in_pay] == [("pay", "api")]
    assert sorted((d.namespace, d.name) for d in everywhere) == [("pay", "api"), ("shop", "cart")]
    assert [(r.path, r.query) for r in k8s_standin.requests] == [
        ("/apis/apps/v1/namespaces/shop/deployments", {"labelSelector": ["tier=web"], "limit": ["500"]}),
        ("/apis/apps/v1/namespaces/pay/deployments", {"limit": ["500"]}),
        ("/apis/apps/v1/namespaces/pay/deployments", {"continue": ["token-2"], "limit": ["500"]}),
        ("/apis/apps/v1/deployments", {"labelSelector": ["tier=web"], "limit": ["500"]}),
    ]


def test_namespace_list(k8s_standin, k8s_cluster):
    k8s_standin.add_namespace("shop", {"team": "a"})
    k8s_standin.add_namespace("pay", {"team": "b"})

    assert k8s.namespace_list(cluster=k8s_cluster) == [
        k8s.Namespace(name="pay", labels={"team": "b"}, phase="Active"),
        k8s.Namespace(name="shop", labels={"team": "a"}, phase="Active"),
    ]
    assert k8s.namespace_list(cluster=k8s_cluster, label_selector="team=a") == [
        k8s.Namespace(name="shop", labels={"team": "a"}, phase="Active")
    ]
    assert [r.path for r in k8s_standin.requests] == ["/api/v1/namespaces", "/api/v1/namespaces"]


WEBHOOKS_PATH = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


def webhook_body(url: str = "https://kubedoor.example/mutate/prod") -> dict:
    return {
        "metadata": {"name": "kubedoor-prod", "labels": {"app.kubernetes.io/managed-by": "kubedoor"}},
        "webhooks": [
            {
                "name": "deployments.kubedoor.io",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Ignore",
                "timeoutSeconds": 5,
                "clientConfig": {"url": url},
                "rules": [
                    {
                        "apiGroups": ["apps"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["deployments", "deployments/scale"],
                    }
                ],
            }
        ],
    }


def test_webhook_configuration_apply_creates_then_replaces_with_the_resource_version(k8s_standin, k8s_cluster):
    # when: first apply creates
    created = k8s.webhook_configuration_apply(cluster=k8s_cluster, body=webhook_body())

    # then
    get_1, post = k8s_standin.requests
    assert (get_1.method, get_1.path) == ("GET", WEBHOOKS_PATH + "/kubedoor-prod")
    assert (post.method, post.path, post.content_type) == ("POST", WEBHOOKS_PATH, "application/json")
    assert post.body == {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        **webhook_body(),
    }
    validate(post.body)
    assert created["metadata"]["name"] == "kubedoor-prod"
    version = created["metadata"]["resourceVersion"]

    # when: a second apply replaces, carrying the stored resourceVersion
    k8s_standin.requests.clear()
    replaced = k8s.webhook_configuration_apply(
        cluster=k8s_cluster, body=webhook_body("https://other.example/mutate/prod")
    )

    # then
    get_2, put = k8s_standin.requests
    assert (get_2.method, put.method, put.path) == ("GET", "PUT", WEBHOOKS_PATH + "/kubedoor-prod")
    assert put.body["metadata"] == {
        "name": "kubedoor-prod",
        "labels": {"app.kubernetes.io/managed-by": "kubedoor"},
        "resourceVersion": version,
    }
    assert put.body["webhooks"][0]["clientConfig"] == {"url": "https://other.example/mutate/prod"}
    validate(put.body)
    assert replaced["metadata"]["resourceVersion"] != version
    assert k8s.webhook_configuration_get(cluster=k8s_cluster, name="kubedoor-prod") == replaced


def test_webhook_configuration_get_and_delete_of_a_missing_object(k8s_standin, k8s_cluster):
    assert k8s.webhook_configuration_get(cluster=k8s_cluster, name="kubedoor-prod") is None
    assert k8s.webhook_configuration_delete(cluster=k8s_cluster, name="kubedoor-prod") is False
    k8s.webhook_configuration_apply(cluster=k8s_cluster, body=webhook_body())
    k8s_standin.requests.clear()

    assert k8s.webhook_configuration_delete(cluster=k8s_cluster, name="kubedoor-prod") is True

    [call] = k8s_standin.requests
    assert (call.method, call.path) == ("DELETE", WEBHOOKS_PATH + "/kubedoor-prod")
    assert k8s_standin.webhook_configurations == {}


def test_webhook_configuration_apply_conflict_is_typed(k8s_standin, k8s_cluster):
    k8s.webhook_configuration_apply(cluster=k8s_cluster, body=webhook_body())
    k8s_standin.respond("PUT", WEBHOOKS_PATH + "/kubedoor-prod", status=409)

    with pytest.raises(k8s.K8sConflict) as caught:
        k8s.webhook_configuration_apply(cluster=k8s_cluster, body=webhook_body())

    assert caught.value.status == 409
    assert caught.value.message == (
        "cluster prod: replace mutating webhook configuration kubedoor-prod: conflict "
        f"(scripted 409 for PUT {WEBHOOKS_PATH}/kubedoor-prod)"
    )


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        (404, k8s.K8sNotFound, "not found"),
        (403, k8s.K8sForbidden, "forbidden"),
        (401, k8s.K8sForbidden, "forbidden"),
        (409, k8s.K8sConflict, "conflict"),
        (422, k8s.K8sInvalid, "rejected as invalid"),
        (503, k8s.K8sUnavailable, "API server error 503"),
    ],
)
def test_http_errors_map_to_typed_errors_with_readable_messages(k8s_standin, k8s_cluster, cart, status, error, words):
    k8s_standin.respond(
        "PATCH",
        DEPLOYMENT_PATH + "/scale",
        status=status,
        body={"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "the reason given", "code": status},
    )

    with pytest.raises(error) as caught:
        k8s.deployment_scale(cluster=k8s_cluster, namespace="shop", name="cart", replicas=3)

    assert caught.value.message == f"cluster prod: scale deployment shop/cart: {words} (the reason given)"
    assert isinstance(caught.value, k8s.K8sError)
    assert k8s_standin.deployment("shop", "cart")["spec"]["replicas"] == 2


def test_missing_deployment_is_not_found(k8s_standin, k8s_cluster):
    with pytest.raises(k8s.K8sNotFound) as caught:
        k8s.deployment_restart(cluster=k8s_cluster, namespace="shop", name="gone")
    assert caught.value.message == (
        'cluster prod: restart deployment shop/gone: not found (deployments.apps "gone" not found)'
    )


def test_a_hanging_api_server_times_out_as_unavailable(k8s_standin, k8s_cluster, cart):
    k8s_standin.respond("GET", DEPLOYMENT_PATH, delay=5.0)

    with override_settings(KUBEDOOR_K8S_TIMEOUT_SECONDS=0.3), pytest.raises(k8s.K8sUnavailable) as caught:
        k8s.deployment_get(cluster=k8s_cluster, namespace="shop", name="cart")

    assert caught.value.reason == "timeout"
    assert caught.value.message == "cluster prod: deployment shop/cart: no answer within 0.3 s"


def test_a_refused_connection_is_unavailable(db):
    # given: a port nobody listens on
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cluster = Cluster.objects.create(name="gone", kubeconfig=standin_kubeconfig(f"http://127.0.0.1:{port}"))

    with pytest.raises(k8s.K8sUnavailable) as caught:
        k8s.deployment_get(cluster=cluster, namespace="shop", name="cart")

    assert caught.value.reason == "unreachable"
    assert (
        caught.value.message
        == "cluster gone: deployment shop/cart: cannot connect to the API server (connection refused)"
    )


def test_unusable_connection_settings_are_unavailable(db):
    cluster = Cluster.objects.create(name="broken", kubeconfig="- just\n- a list\n")

    with pytest.raises(k8s.K8sUnavailable) as caught:
        k8s.deployment_get(cluster=cluster, namespace="shop", name="cart")

    assert caught.value.reason == "config"
    assert caught.value.message.startswith("cluster broken: no usable Kubernetes connection settings")


def test_kubeconfig_path_and_context_are_used(k8s_standin, tmp_path, db):
    # given: a file whose current context points nowhere and whose "standin" context is the stand-in
    path = tmp_path / "config"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: elsewhere\n"
        "clusters:\n"
        "- name: elsewhere\n  cluster:\n    server: http://127.0.0.1:1\n"
        f"- name: standin\n  cluster:\n    server: {k8s_standin.url}\n"
        "users:\n- name: u\n  user:\n    token: standin-token\n"
        "contexts:\n"
        "- name: elsewhere\n  context:\n    cluster: elsewhere\n    user: u\n"
        "- name: standin\n  context:\n    cluster: standin\n    user: u\n"
    )
    k8s_standin.add_deployment("shop", "cart")
    cluster = Cluster.objects.create(name="file", kubeconfig_path=str(path), kube_context="standin")

    # when
    deployment = k8s.deployment_get(cluster=cluster, namespace="shop", name="cart")

    # then
    assert deployment.name == "cart"
    assert [(r.method, r.path) for r in k8s_standin.requests] == [("GET", DEPLOYMENT_PATH)]


def test_client_is_cached_and_rebuilt_when_connection_settings_change(k8s_standin, k8s_cluster, cart):
    from tests.servers.k8s_standin import K8sStandin

    first = k8s.api_client(k8s_cluster)
    assert k8s.api_client(k8s_cluster) is first

    # when: the cluster is pointed at another API server
    second_server = K8sStandin().start()
    try:
        second_server.add_deployment("shop", "cart", replicas=7)
        k8s_cluster.kubeconfig = standin_kubeconfig(second_server.url)
        k8s_cluster.save()

        rebuilt = k8s.api_client(k8s_cluster)
        deployment = k8s.deployment_get(cluster=k8s_cluster, namespace="shop", name="cart")
    finally:
        second_server.stop()

    # then
    assert rebuilt is not first
    assert deployment.replicas == 7
    assert len(second_server.requests) == 1
    assert k8s_standin.requests == []


def test_the_kubernetes_client_is_imported_only_when_a_cluster_is_called():
    # Its generated models cost ≈ 60 MiB in every process; the webhook's workers and collection chunks
    # never call Kubernetes. A fresh interpreter loads the apps, the tasks and both URL maps.
    code = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubedoor_site.settings")
import django
django.setup()
from django.urls import get_resolver
from kubedoor_site.celery import app
app.loader.import_default_modules()
get_resolver("kubedoor_site.urls").url_patterns
get_resolver("apps.webhook.process_urls").url_patterns
from apps.control import k8s
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "kubernetes")
print(len(loaded))
k8s._kube()
print(len([m for m in sys.modules if m.split(".")[0] == "kubernetes"]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    before, after = (int(line) for line in result.stdout.split())
    assert before == 0
    assert after > 100  # the check can tell: the client's models are hundreds of modules


def test_a_cluster_without_connection_settings_is_unavailable_without_loading_the_client(tmp_path):
    # A cluster whose metrics are collected but which is not operated from here (no in-cluster, no
    # kubeconfig, none by default): the collection's HPA read answers "not read" without the client.
    code = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubedoor_site.settings")
import django
django.setup()
from apps.control import k8s
from apps.control.models import Cluster
try:
    k8s.hpa_list(cluster=Cluster(name="metrics-only"))
except k8s.K8sUnavailable as exc:
    print(exc.reason, exc.message)
print(len([m for m in sys.modules if m.split(".")[0] == "kubernetes"]))
"""
    env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none.yaml")}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True, env=env
    )
    refused, loaded = result.stdout.strip().splitlines()
    assert refused == (
        "config cluster metrics-only: no Kubernetes connection settings "
        "(not in-cluster, no kubeconfig, no $KUBECONFIG or ~/.kube/config)"
    )
    assert loaded == "0"
