"""POST /api/v1/admission/preview: the decision for a Deployment, without changing anything (§6.4)."""

from __future__ import annotations

import copy

import jsonpatch
import kubernetes_validate
import pytest
import yaml

from apps.audit.models import AuditEvent
from apps.control import operations
from apps.control.models import Microservice
from apps.webhook.services import admission_preview
from tests.factories import ClusterFactory, MicroserviceFactory
from tests.webhook.conftest import load_case

URL = "/api/v1/admission/preview"


@pytest.fixture
def prod(db):
    cluster = ClusterFactory(name="prod", admission_mode="off")
    MicroserviceFactory(cluster=cluster, namespace="shop", name="cart", replicas_specified=3)
    return cluster


def _deployment(case="kubectl-create-no-resources"):
    obj = copy.deepcopy(load_case(case)[0]["request"]["object"])
    for key in ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields"):
        obj["metadata"].pop(key, None)
    return obj


FULL = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1000m", "memory": "1024Mi"}}


def test_preview_of_a_json_deployment(viewer_api, prod):
    # when
    deployment = _deployment()
    response = viewer_api.post(URL, {"cluster": "prod", "deployment": deployment}, format="json")
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["decision"], body["allowed"], body["status_code"], body["mode"], body["managed"]) == (
        "patch",
        True,
        200,
        "enforce",
        True,
    )
    assert (body["cluster"], body["namespace"], body["name"], body["operation"]) == ("prod", "shop", "cart", "CREATE")
    assert body["warnings"][0] == "kubedoor: spec.replicas 2 -> 3 (control table)"
    expected = copy.deepcopy(deployment)
    expected["spec"]["replicas"] = 3
    expected["spec"]["template"]["spec"]["containers"][0]["resources"] = FULL
    assert body["patched"] == expected
    assert jsonpatch.apply_patch(deployment, body["patch"]) == expected
    kubernetes_validate.validate(body["patched"], "1.30", strict=True)
    # nothing changed, nothing audited
    assert AuditEvent.objects.count() == 0
    assert Microservice.objects.get(name="cart").replicas_specified == 3


def test_preview_of_a_yaml_body(viewer_api, prod):
    text = yaml.safe_dump(_deployment())
    response = viewer_api.generic("POST", f"{URL}?cluster=prod", text, content_type="application/yaml")
    assert response.status_code == 200, response.content
    assert response.json()["decision"] == "patch"
    assert response.json()["patched"]["spec"]["replicas"] == 3


def test_preview_of_yaml_text_in_json(viewer_api, prod):
    text = yaml.safe_dump(_deployment())
    response = viewer_api.post(URL, {"cluster": "prod", "deployment": text, "mode": "audit"}, format="json")
    body = response.json()
    assert (body["decision"], body["mode"], body["patch"]) == ("allow", "audit", [])
    assert body["warnings"][0] == "kubedoor audit mode, enforce would apply: spec.replicas 2 -> 3 (control table)"


def test_preview_of_an_unmanaged_deployment(viewer_api, prod):
    deployment = _deployment("unmanaged-create-denied")
    body = viewer_api.post(URL, {"cluster": "prod", "deployment": deployment}, format="json").json()
    assert (body["decision"], body["allowed"], body["status_code"], body["managed"]) == ("deny", False, 403, False)
    assert body["message"].startswith("KubeDoor: Deployment shop/newsvc is not in the control table of cluster prod")
    assert body["patched"] == deployment


def test_preview_of_a_label_only_update(viewer_api, prod):
    review = load_case("label-only-update")[0]["request"]
    payload = {"cluster": "prod", "deployment": review["object"], "old_deployment": review["oldObject"]}
    body = viewer_api.post(URL, payload, format="json").json()
    assert (body["operation"], body["decision"], body["warnings"], body["patch"]) == ("UPDATE", "allow", [], [])


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"cluster": "prod", "deployment": "kind: Pod\nmetadata: {name: x}"}, "deployment"),
        ({"cluster": "prod", "deployment": "{unclosed: ["}, "deployment"),
        ({"cluster": "prod", "deployment": {"kind": "Deployment", "metadata": {}}}, "deployment"),
        (
            {
                "cluster": "prod",
                "deployment": {
                    "kind": "Deployment",
                    "metadata": {"name": "x"},
                    "spec": {"template": {"spec": {"containers": "nope"}}},
                },
            },
            "deployment",
        ),
        ({"deployment": {}}, "cluster"),
        ({"cluster": "prod", "deployment": {}, "mode": "off"}, "mode"),
    ],
)
def test_preview_rejects_bad_input_with_field_errors(viewer_api, prod, payload, field):
    response = viewer_api.post(URL, payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_preview_needs_a_role_and_a_known_cluster(nobody, viewer_api, prod, client):
    client.force_login(nobody)
    assert (
        client.post(URL, {"cluster": "prod", "deployment": _deployment()}, content_type="application/json").status_code
        == 403
    )
    assert viewer_api.post(URL, {"cluster": "nowhere", "deployment": _deployment()}, format="json").status_code == 404


def test_the_webhook_hands_its_preview_to_the_restart():
    # control does not import the webhook: the webhook app gives a restart in enforce mode this preview
    assert operations._admission_preview() is admission_preview
