"""The review corpus (tests/webhook/reviews/) posted to the real view, as the API server posts it."""

from __future__ import annotations

import base64
import json
import socket

import jsonpatch
import kubernetes_validate
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from tests.factories import ClusterFactory, MicroserviceFactory
from tests.webhook.conftest import case_names, load_case

K8S_VERSION = "1.30"


def _no_network(*args, **kwargs):
    raise AssertionError("the admission request path opened a network connection")


@pytest.mark.parametrize("case", case_names())
def test_review_corpus(case, db, client, webhook_state, webhook_process, settings, monkeypatch):
    # given the cluster, its control row (or none) and a loaded snapshot (or none: store down)
    review, expected = load_case(case)
    setup, expect = expected["setup"], expected["expect"]
    cluster = ClusterFactory(name="prod", **({"admission_mode": "enforce"} | setup.get("cluster", {})))
    MicroserviceFactory(cluster=cluster, namespace="shop", name="unrelated", replicas_measured=9)
    if setup["row"] is not None:
        MicroserviceFactory(
            cluster=cluster, namespace=setup.get("namespace", "shop"), name=setup.get("name", "cart"), **setup["row"]
        )
    if setup.get("store_available", True):
        webhook_state.holder.refresh()
    else:
        settings.KUBEDOOR_WEBHOOK_ON_STORE_ERROR_DEFAULT = setup.get("cluster", {}).get("on_store_error", "allow")
    obj = review["request"]["object"]
    if obj.get("kind") in ("Deployment", "Scale"):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)

    # when the API server posts the review: no query, no network connection
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    with CaptureQueriesContext(connection) as queries:
        response = client.post("/mutate/prod", data=json.dumps(review), content_type="application/json")
    monkeypatch.undo()

    # then
    assert len(queries) == 0, [q["sql"] for q in queries]
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["apiVersion"] == review["apiVersion"]
    assert body["kind"] == "AdmissionReview"
    answer = body["response"]
    assert answer["uid"] == review["request"]["uid"]
    assert answer["allowed"] is expect["allowed"]
    if expect["allowed"]:
        assert "status" not in answer
    else:
        assert answer["status"] == {"code": expect["code"], "message": expect["message"]}
    assert answer.get("warnings", []) == expect["warnings"]
    if expect["patched"] is None:
        assert "patch" not in answer
        assert "patchType" not in answer
    else:
        assert answer["patchType"] == "JSONPatch"
        ops = json.loads(base64.b64decode(answer["patch"]))
        assert all(op["op"] in ("add", "replace") for op in ops)
        result = jsonpatch.apply_patch(obj, ops)
        assert result == expect["patched"]
        kubernetes_validate.validate(result, K8S_VERSION, strict=True)

    # audit: nothing written on the request path; the background writer writes exactly one event
    assert AuditEvent.objects.count() == 0
    written = webhook_state.writer.drain()
    if expect["audit"] is None:
        assert written == 0
        assert AuditEvent.objects.count() == 0
    else:
        event = AuditEvent.objects.get()
        assert (event.action, event.result) == (expect["audit"]["action"], expect["audit"]["result"])
        assert (event.actor_name, event.source, event.cluster) == ("webhook", "webhook", "prod")
        assert (event.namespace, event.name) == (review["request"]["namespace"], review["request"]["name"])
        assert review["request"]["uid"] in event.message
        assert review["request"]["userInfo"]["username"] in event.message
