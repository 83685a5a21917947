"""The admission view's HTTP behaviour and the webhook process's URL map, probes and metrics."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from tests.factories import ClusterFactory, MicroserviceFactory
from tests.webhook.conftest import load_case


@pytest.fixture
def prod(db, webhook_state):
    cluster = ClusterFactory(name="prod", admission_mode="enforce")
    MicroserviceFactory(cluster=cluster, namespace="shop", name="cart", pod_count_manual=3)
    webhook_state.holder.refresh()
    return cluster


def _post(client, path, body):
    return client.post(path, data=body, content_type="application/json")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "the body is not JSON"),
        (b"not json", "the body is not JSON"),
        (b"[1, 2]", "the body must be an object"),
        (b'{"kind": "Deployment"}', "the body is not an AdmissionReview"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"kind": {}}}',
            "request.uid must be a non-empty string",
        ),
    ],
)
def test_non_review_bodies_get_400_with_a_clear_message(client, prod, webhook_process, body, detail):
    response = _post(client, "/mutate/prod", body)
    assert response.status_code == 400
    assert response.json()["status"] == 400
    assert response.json()["detail"].startswith(
        f"Expected an AdmissionReview (admission.k8s.io/v1 or v1beta1): {detail}"
    )


def test_get_is_refused_with_405(client, prod, webhook_process):
    response = client.get("/mutate/prod")
    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_too_large_body_gets_413(client, prod, webhook_process):
    response = _post(client, "/mutate/prod", b"{" + b" " * (8 * 1024 * 1024 + 10) + b"}")
    assert response.status_code == 413


def test_mutate_without_cluster_uses_the_only_cluster(client, prod, webhook_process):
    review = load_case("scale-kubectl")[0]
    response = _post(client, "/mutate", json.dumps(review))
    assert response.status_code == 200
    assert response.json()["response"]["warnings"] == ["kubedoor: spec.replicas 5 -> 3 (control table)"]


def test_mutate_without_cluster_with_two_clusters_allows_with_a_warning(client, prod, webhook_state, webhook_process):
    ClusterFactory(name="staging")
    webhook_state.holder.refresh(force=True)
    review = load_case("scale-kubectl")[0]
    answer = _post(client, "/mutate", json.dumps(review)).json()["response"]
    assert answer == {
        "uid": review["request"]["uid"],
        "allowed": True,
        "warnings": ["kubedoor: 2 clusters configured; register /mutate/<cluster>"],
    }


def test_unknown_cluster_allows_unchanged(client, prod, webhook_process):
    review = load_case("unmanaged-create-denied")[0]
    answer = _post(client, "/mutate/nowhere", json.dumps(review)).json()["response"]
    assert answer == {"uid": review["request"]["uid"], "allowed": True}


def test_web_process_serves_mutate_too_without_csrf(client, prod):
    # the web process mounts /mutate at the root as well; the API server posts without a CSRF token
    client = client.__class__(enforce_csrf_checks=True)
    review = load_case("scale-kubectl")[0]
    response = _post(client, "/mutate/prod", json.dumps(review))
    assert response.status_code == 200
    assert response.json()["response"]["patchType"] == "JSONPatch"


@pytest.mark.parametrize("path", ["/admin/", "/api/v1/clusters/", "/api/schema/", "/i18n/setlang/"])
def test_webhook_process_exposes_nothing_else(client, prod, webhook_process, path):
    assert client.get(path).status_code == 404


def test_webhook_process_probes(client, prod, webhook_process):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"
    assert ready.json()["snapshot"] == "loaded"
    assert ready.json()["store_error"] == ""


def test_readyz_before_the_first_load_is_503(client, db, webhook_state, webhook_process):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["snapshot"] == "unavailable"


def test_metrics_count_decisions_and_latency(client, prod, webhook_process):
    def sample(text, name):
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    before = client.get("/metrics").content.decode()
    _post(client, "/mutate/prod", json.dumps(load_case("scale-kubectl")[0]))
    _post(client, "/mutate/prod", json.dumps(load_case("unmanaged-create-denied")[0]))
    _post(client, "/mutate/prod", json.dumps(load_case("label-only-update")[0]))
    _post(client, "/mutate/prod", b"junk")
    after = client.get("/metrics").content.decode()
    for decision in ("patch", "deny", "allow", "invalid"):
        name = f'kubedoor_webhook_admissions_total{{decision="{decision}"}}'
        assert sample(after, name) - sample(before, name) == 1.0
    count = "kubedoor_webhook_admission_seconds_count"
    assert sample(after, count) - sample(before, count) == 4.0
    assert sample(after, "kubedoor_webhook_snapshot_age_seconds") >= 0.0


def test_steady_state_answers_make_no_query_and_pass_throughs_are_not_audited(client, prod, webhook_state):
    reviews = [load_case(name)[0] for name in ("label-only-update", "namespace-excluded", "scale-to-effective")]
    with CaptureQueriesContext(connection) as queries:
        for review in reviews:
            assert _post(client, "/mutate/prod", json.dumps(review)).status_code == 200
    assert len(queries) == 0
    assert webhook_state.writer.drain() == 0
    assert AuditEvent.objects.count() == 0
