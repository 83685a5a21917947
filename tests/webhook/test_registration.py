"""Admission on/off: the MutatingWebhookConfiguration sent to the recording Kubernetes stand-in (§6.1)."""

from __future__ import annotations

import base64

import kubernetes_validate
import pytest
import trustme

from apps.audit.models import AuditEvent
from apps.control.models import Cluster
from tests.servers.k8s_standin import standin_cluster

CONFIGS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
URL = "/api/v1/clusters/prod/admission/"


@pytest.fixture
def ca_file(tmp_path, settings):
    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    settings.KUBEDOOR_WEBHOOK_CA_BUNDLE = str(path)
    settings.KUBEDOOR_WEBHOOK_CA_INJECT_FROM = ""
    settings.KUBEDOOR_WEBHOOK_URL = ""
    settings.KUBEDOOR_WEBHOOK_SERVICE = "kubedoor/kubedoor-webhook"
    return path


@pytest.fixture
def prod(k8s_standin, db):
    return standin_cluster(
        k8s_standin,
        name="prod",
        excluded_namespaces=["kube-system", "kubedoor", "monitoring"],
        failure_policy="Fail",
        webhook_timeout_seconds=3,
    )


HPA_CONDITION = {
    "name": "skip-hpa-controller-scale",
    "expression": "!(has(request.subResource) && request.subResource == 'scale' && "
    "request.userInfo.username == 'system:serviceaccount:kube-system:horizontal-pod-autoscaler')",
}


def _expected(
    client_config, *, annotations=None, excluded=("kube-system", "kubedoor", "monitoring"), match_conditions=True
):
    metadata = {
        "name": "kubedoor-prod",
        "labels": {"app.kubernetes.io/managed-by": "kubedoor", "kubedoor.io/cluster": "prod"},
    }
    if annotations:
        metadata["annotations"] = annotations
    expressions = [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": sorted(excluded)}]
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": metadata,
        "webhooks": [
            {
                "name": "prod.deployments.kubedoor.io",
                "admissionReviewVersions": ["v1", "v1beta1"],
                "clientConfig": client_config,
                "rules": [
                    {
                        "apiGroups": ["apps"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["deployments", "deployments/scale"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {
                    "matchExpressions": [
                        *(expressions if excluded else []),
                        {"key": "kubedoor-ignore", "operator": "DoesNotExist"},
                    ]
                },
                "failurePolicy": "Fail",
                "timeoutSeconds": 3,
                "sideEffects": "None",
                "reinvocationPolicy": "Never",
                **({"matchConditions": [HPA_CONDITION]} if match_conditions else {}),
            }
        ],
    }


def _writes(standin):
    return [r for r in standin.requests if r.method in ("POST", "PUT", "DELETE", "PATCH")]


def test_enforce_creates_the_exact_configuration(admin_api, prod, k8s_standin, ca_file):
    # when
    response = admin_api.post(URL, {"mode": "enforce"}, format="json")
    # then the one write is the exact object of §6.1, valid for Kubernetes 1.30
    assert response.status_code == 200, response.content
    writes = _writes(k8s_standin)
    assert [(r.method, r.path) for r in writes] == [("POST", CONFIGS)]
    ca_b64 = base64.b64encode(ca_file.read_bytes()).decode()
    service = {"namespace": "kubedoor", "name": "kubedoor-webhook", "path": "/mutate/prod", "port": 443}
    assert writes[0].body == _expected({"service": service, "caBundle": ca_b64})
    kubernetes_validate.validate(writes[0].body, "1.30", strict=True)
    # the mode is saved and audited, and the state read back from the cluster
    prod.refresh_from_db()
    assert prod.admission_mode == "enforce"
    event = AuditEvent.objects.get(action="admission.mode")
    assert (event.actor_name, event.source, event.cluster, event.result) == ("admin1", "api", "prod", "ok")
    assert (event.before, event.after) == ({"admission_mode": "off"}, {"admission_mode": "enforce"})
    assert event.message == "admission mode off -> enforce: created kubedoor-prod"
    state = response.json()
    assert (state["mode"], state["registered"], state["in_sync"], state["error"]) == ("enforce", True, True, "")
    assert state["registration"]["path"] == "/mutate/prod"
    assert state["registration"]["service"] == "kubedoor/kubedoor-webhook"
    assert (state["registration"]["failure_policy"], state["registration"]["timeout_seconds"]) == ("Fail", 3)


def test_changing_mode_replaces_with_the_current_resource_version(admin_api, prod, k8s_standin, ca_file):
    assert admin_api.post(URL, {"mode": "enforce"}, format="json").status_code == 200
    version = k8s_standin.webhook_configurations["kubedoor-prod"]["metadata"]["resourceVersion"]
    prod.webhook_timeout_seconds = 10
    prod.save()
    k8s_standin.reset()
    # when
    response = admin_api.post(URL, {"mode": "audit"}, format="json")
    # then
    assert response.status_code == 200
    writes = _writes(k8s_standin)
    assert [(r.method, r.path) for r in writes] == [("PUT", f"{CONFIGS}/kubedoor-prod")]
    assert writes[0].body["metadata"]["resourceVersion"] == version
    assert writes[0].body["webhooks"][0]["timeoutSeconds"] == 10
    kubernetes_validate.validate(writes[0].body, "1.30", strict=True)
    prod.refresh_from_db()
    assert prod.admission_mode == "audit"


def test_off_deletes_the_configuration(admin_api, prod, k8s_standin, ca_file):
    assert admin_api.post(URL, {"mode": "enforce"}, format="json").status_code == 200
    k8s_standin.reset()
    response = admin_api.post(URL, {"mode": "off"}, format="json")
    assert response.status_code == 200
    assert [(r.method, r.path) for r in _writes(k8s_standin)] == [("DELETE", f"{CONFIGS}/kubedoor-prod")]
    assert k8s_standin.webhook_configurations == {}
    prod.refresh_from_db()
    assert prod.admission_mode == "off"
    assert (response.json()["registered"], response.json()["in_sync"]) == (False, True)
    assert AuditEvent.objects.filter(action="admission.mode").first().message == (
        "admission mode enforce -> off: deleted kubedoor-prod"
    )


def test_forbidden_by_kubernetes_is_readable_and_leaves_the_mode(admin_api, prod, k8s_standin, ca_file):
    # given a service account without the permission
    message = (
        'mutatingwebhookconfigurations.admissionregistration.k8s.io is forbidden: User "system:serviceaccount:'
        'kubedoor:kubedoor" cannot create resource "mutatingwebhookconfigurations"'
    )
    k8s_standin.respond(
        "POST",
        CONFIGS,
        status=403,
        body={
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": message,
            "reason": "Forbidden",
            "code": 403,
        },
    )
    # when
    response = admin_api.post(URL, {"mode": "enforce"}, format="json")
    # then
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "kubernetes_error"
    assert body["detail"].startswith("Kubernetes refused the admission registration kubedoor-prod of cluster prod: ")
    assert "cannot create resource" in body["detail"]
    assert body["detail"].endswith(
        "KubeDoor's service account needs get/create/update/delete on mutatingwebhookconfigurations."
    )
    assert "Traceback" not in body["detail"]
    prod.refresh_from_db()
    assert prod.admission_mode == "off"
    assert k8s_standin.webhook_configurations == {}
    event = AuditEvent.objects.get(action="admission.mode")
    assert (event.result, event.after) == ("error", {"admission_mode": "enforce"})
    assert event.message == body["detail"]


def test_cert_manager_injection_annotation_instead_of_a_bundle(admin_api, prod, k8s_standin, settings):
    settings.KUBEDOOR_WEBHOOK_CA_BUNDLE = ""
    settings.KUBEDOOR_WEBHOOK_CA_INJECT_FROM = "kubedoor/kubedoor-webhook-tls"
    settings.KUBEDOOR_WEBHOOK_URL = ""
    settings.KUBEDOOR_WEBHOOK_SERVICE = "kubedoor/kubedoor-webhook"
    assert admin_api.post(URL, {"mode": "enforce"}, format="json").status_code == 200
    (write,) = _writes(k8s_standin)
    service = {"namespace": "kubedoor", "name": "kubedoor-webhook", "path": "/mutate/prod", "port": 443}
    assert write.body == _expected(
        {"service": service}, annotations={"cert-manager.io/inject-ca-from": "kubedoor/kubedoor-webhook-tls"}
    )
    kubernetes_validate.validate(write.body, "1.30", strict=True)
    # cert-manager injects the CA; a later update keeps it instead of blanking it
    k8s_standin.webhook_configurations["kubedoor-prod"]["webhooks"][0]["clientConfig"]["caBundle"] = "SU5KRUNURUQ="
    k8s_standin.reset()
    assert admin_api.post(URL, {"mode": "audit"}, format="json").status_code == 200
    (put,) = _writes(k8s_standin)
    assert put.body["webhooks"][0]["clientConfig"]["caBundle"] == "SU5KRUNURUQ="


def test_url_instead_of_a_service_and_no_excluded_namespaces(admin_api, prod, k8s_standin, ca_file, settings):
    settings.KUBEDOOR_WEBHOOK_URL = "https://kubedoor.example.com:8443/"
    prod.excluded_namespaces = []
    prod.save()
    assert admin_api.post(URL, {"mode": "enforce"}, format="json").status_code == 200
    (write,) = _writes(k8s_standin)
    ca_b64 = base64.b64encode(ca_file.read_bytes()).decode()
    assert write.body == _expected(
        {"url": "https://kubedoor.example.com:8443/mutate/prod", "caBundle": ca_b64}, excluded=()
    )
    kubernetes_validate.validate(write.body, "1.30", strict=True)


def test_missing_ca_is_a_400_and_nothing_is_sent(admin_api, prod, k8s_standin, settings):
    settings.KUBEDOOR_WEBHOOK_CA_BUNDLE = ""
    settings.KUBEDOOR_WEBHOOK_CA_INJECT_FROM = ""
    settings.KUBEDOOR_WEBHOOK_URL = ""
    response = admin_api.post(URL, {"mode": "enforce"}, format="json")
    assert response.status_code == 400
    assert "KUBEDOOR_WEBHOOK_CA_BUNDLE" in response.json()["errors"]["non_field_errors"][0]
    assert _writes(k8s_standin) == []
    assert Cluster.objects.get(name="prod").admission_mode == "off"


def test_invalid_mode_is_a_400(admin_api, prod, k8s_standin, ca_file):
    response = admin_api.post(URL, {"mode": "on"}, format="json")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["mode"]
    assert k8s_standin.requests == []


def test_only_admins_change_the_mode_and_viewers_read_it(operator_api, viewer_api, prod, k8s_standin, ca_file):
    assert operator_api.post(URL, {"mode": "enforce"}, format="json").status_code == 403
    assert _writes(k8s_standin) == []
    assert AuditEvent.objects.filter(action="admission.mode").count() == 0
    state = viewer_api.get(URL)
    assert state.status_code == 200
    assert state.json() == {
        "cluster": "prod",
        "mode": "off",
        "engine": "webhook",
        "configuration": "kubedoor-prod",
        "registered": False,
        "registration": None,
        "policies": None,
        "in_sync": True,
        "error": "",
    }


def test_state_reports_an_unreachable_cluster(viewer_api, prod, k8s_standin):
    k8s_standin.respond("GET", f"{CONFIGS}/kubedoor-prod", status=503)
    state = viewer_api.get(URL).json()
    assert (state["registered"], state["in_sync"]) == (None, None)
    assert state["error"] != ""


def test_unknown_cluster_is_404(admin_api, db):
    assert admin_api.post("/api/v1/clusters/nowhere/admission/", {"mode": "enforce"}, format="json").status_code == 404


@pytest.mark.parametrize(("version", "conditions"), [("v1.28.0", True), ("v1.27.12", False), ("v1.31.1-eks-1", True)])
def test_match_conditions_follow_the_servers_version(admin_api, prod, k8s_standin, ca_file, version, conditions):
    k8s_standin.git_version = version

    response = admin_api.post(URL, {"mode": "enforce"}, format="json")

    assert response.status_code == 200, response.content
    (write,) = _writes(k8s_standin)
    assert write.body["webhooks"][0].get("matchConditions") == ([HPA_CONDITION] if conditions else None)
    if conditions:
        kubernetes_validate.validate(write.body, "1.30", strict=True)


def test_an_unreadable_version_registers_without_match_conditions(admin_api, prod, k8s_standin, ca_file):
    k8s_standin.respond("GET", "/version/", status=503)

    response = admin_api.post(URL, {"mode": "enforce"}, format="json")

    assert response.status_code == 200, response.content
    (write,) = _writes(k8s_standin)
    assert "matchConditions" not in write.body["webhooks"][0]


def test_a_clusters_own_webhook_url_and_ca_win_over_the_global_ones(admin_api, prod, k8s_standin, ca_file):
    # given: a remote cluster reaching KubeDoor by URL, with a CA of its own (the global settings differ)
    own_ca = trustme.CA().cert_pem.bytes()
    prod.webhook_url = "https://door.example.net/"
    prod.webhook_ca_bundle = own_ca.decode()
    prod.save()
    # when
    assert admin_api.post(URL, {"mode": "enforce"}, format="json").status_code == 200
    # then
    (write,) = _writes(k8s_standin)
    own_b64 = base64.b64encode(own_ca).decode()
    assert write.body == _expected({"url": "https://door.example.net/mutate/prod", "caBundle": own_b64})
    assert own_b64 != base64.b64encode(ca_file.read_bytes()).decode()
    # and: the registration's success is stamped as the cluster's last successful call
    assert Cluster.objects.get(name="prod").last_success_at is not None


def test_a_clusters_own_service_and_port(admin_api, prod, k8s_standin, ca_file):
    own_ca = trustme.CA().cert_pem.bytes()
    prod.webhook_service = "door/kubedoor-proxy"
    prod.webhook_service_port = 8443
    prod.webhook_ca_bundle = own_ca.decode()
    prod.save()
    assert admin_api.post(URL, {"mode": "audit"}, format="json").status_code == 200
    (write,) = _writes(k8s_standin)
    client = write.body["webhooks"][0]["clientConfig"]
    assert client["service"] == {"namespace": "door", "name": "kubedoor-proxy", "path": "/mutate/prod", "port": 8443}
    assert client["caBundle"] == base64.b64encode(own_ca).decode()
    kubernetes_validate.validate(write.body, "1.30", strict=True)


def test_a_clusters_own_ca_that_is_not_pem_is_a_400_naming_the_cluster(admin_api, prod, k8s_standin, ca_file):
    prod.webhook_url = "https://door.example.net"
    prod.webhook_ca_bundle = "not a certificate"
    prod.save()
    response = admin_api.post(URL, {"mode": "enforce"}, format="json")
    assert response.status_code == 400
    assert "cluster prod is not a PEM certificate" in response.json()["errors"]["non_field_errors"][0]
    assert _writes(k8s_standin) == []
