"""The admission view's HTTP behaviour and the webhook process's URL map, probes and metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import Resolver404, get_resolver

from apps.audit.models import AuditEvent
from apps.webhook import services, views
from tests.factories import ClusterFactory, MicroserviceFactory
from tests.webhook.conftest import load_case


@pytest.fixture
def prod(db, webhook_state):
    cluster = ClusterFactory(name="prod", admission_mode="enforce")
    MicroserviceFactory(cluster=cluster, namespace="shop", name="cart", replicas_specified=3)
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


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "options", "head"])
def test_other_methods_are_refused_with_405_in_the_same_shape(client, prod, webhook_process, method):
    response = getattr(client, method)("/mutate/prod")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    if method != "head":
        assert response.json() == {"status": 405, "detail": "POST an AdmissionReview."}


def test_too_large_body_gets_413(client, prod, webhook_state, webhook_process):
    response = _post(client, "/mutate/prod", b"{" + b" " * (8 * 1024 * 1024 + 10) + b"}")
    assert response.status_code == 413
    assert response.json() == {"status": 413, "detail": "The AdmissionReview is too large."}
    assert webhook_state.writer.queue.qsize() == 0


def test_too_large_is_refused_from_content_length_without_reading(rf):
    # given a request announcing 9 MiB whose body must not be read
    class Unreadable:
        def read(self, *args):
            raise AssertionError("the body must not be read")

    request = rf.post("/mutate/prod", data=b"{}", content_type="application/json")
    request.META["CONTENT_LENGTH"] = str(9 * 1024 * 1024)
    request._stream = Unreadable()
    # when
    response = views.AdmissionReviewView.as_view()(request, cluster="prod")
    # then
    assert response.status_code == 413
    assert json.loads(response.content) == {"status": 413, "detail": "The AdmissionReview is too large."}


def test_answer_is_the_service_bytes_as_json_whatever_the_request_accepts(client, prod, webhook_state, webhook_process):
    # given the API server's request, addressed by Service name (not in ALLOWED_HOSTS) and accepting anything
    body = json.dumps(load_case("scale-kubectl")[0]).encode()
    # when
    response = client.post(
        "/mutate/prod",
        data=body,
        content_type="application/json",
        HTTP_HOST="kubedoor-webhook.kubedoor.svc:443",
        HTTP_ACCEPT="application/yaml",
    )
    # then the body is exactly what the service answers, with no charset parameter and no cookie
    expected = services.admission_review_handle(cluster="prod", body=body)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.content == expected.body
    assert not response.cookies


def test_a_body_without_content_type_is_still_read(client, prod, webhook_process):
    review = load_case("scale-kubectl")[0]
    response = client.generic("POST", "/mutate/prod", json.dumps(review).encode(), content_type="")
    assert response.status_code == 200
    assert response.json()["response"]["patchType"] == "JSONPatch"


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


def test_webhook_process_needs_no_csrf_token(client, prod, webhook_process):
    # the API server posts without a CSRF token or cookie
    client = client.__class__(enforce_csrf_checks=True)
    review = load_case("scale-kubectl")[0]
    response = _post(client, "/mutate/prod", json.dumps(review))
    assert response.status_code == 200
    assert response.json()["response"]["patchType"] == "JSONPatch"


@pytest.mark.parametrize("path", ["/mutate/x", "/mutate", "/mutate/prod"])
def test_web_process_answers_404_to_mutate(client, prod, webhook_state, path):
    # given the web UI's process (the default URL map) and a review it would otherwise patch
    review = load_case("scale-kubectl")[0]
    # when
    response = _post(client, path, json.dumps(review))
    # then it is not there, and nothing was decided or queued
    assert response.status_code == 404
    assert webhook_state.writer.queue.qsize() == 0


def test_webhook_process_routes_exactly_mutate_probes_and_metrics():
    resolver = get_resolver("apps.webhook.process_urls")
    routes = {str(pattern.pattern) for pattern in resolver.url_patterns}
    assert routes == {"mutate/<slug:cluster>", "mutate", "healthz", "readyz", "metrics"}
    assert resolver.resolve("/mutate/prod").func.view_class is views.AdmissionReviewView
    assert resolver.resolve("/mutate").func.view_class is views.AdmissionReviewView
    assert resolver.resolve("/mutate/prod").kwargs == {"cluster": "prod"}
    assert resolver.resolve("/healthz").func is views.healthz
    assert resolver.resolve("/readyz").func is views.readyz
    assert resolver.resolve("/metrics").func is views.metrics_view
    for path in ("/", "/mutate/", "/mutate/prod/x", "/mutate/a b", "/mutated", "/admin/", "/api/v1/clusters/"):
        with pytest.raises(Resolver404):
            resolver.resolve(path)


@pytest.mark.parametrize(
    "path", ["/admin/", "/api/v1/clusters/", "/api/schema/", "/i18n/setlang/", "/mutate/", "/mutate/prod/x", "/"]
)
def test_webhook_process_exposes_nothing_else(client, prod, webhook_process, path):
    assert client.get(path).status_code == 404
    assert client.post(path).status_code == 404


def test_webhook_process_settings_route_its_own_map_with_no_middleware():
    # KUBEDOOR_PROCESS=webhook (apps/webhook/wsgi.py sets it) is read when the settings load
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.ROOT_URLCONF, len(settings.MIDDLEWARE))"
    )
    env = os.environ | {"KUBEDOOR_PROCESS": "webhook", "DJANGO_SETTINGS_MODULE": "kubedoor_site.settings"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["apps.webhook.process_urls", "0"]


def test_webhook_process_has_no_per_request_receivers(db):
    # given the webhook process's WSGI module loaded (apps/webhook/wsgi.py), against the test database
    code = (
        "import apps.webhook.wsgi; from django.core import signals; "
        "print(type(apps.webhook.wsgi.application).__name__, signals.request_started.has_listeners(), "
        "signals.request_finished.has_listeners())"
    )
    db = connection.settings_dict
    env = os.environ | {"DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    # when
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    # then it answers through its own handler, and nothing runs when a request starts or ends: the
    # request thread never opens a connection (the snapshot and audit threads keep their own) and never
    # reverses a URL
    assert done.stdout.split() == ["WebhookHandler", "False", "False"]


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


def test_steady_state_answers_make_no_query_and_pass_throughs_are_not_audited(
    client, prod, webhook_state, webhook_process
):
    reviews = [load_case(name)[0] for name in ("label-only-update", "namespace-excluded", "scale-to-effective")]
    with CaptureQueriesContext(connection) as queries:
        for review in reviews:
            assert _post(client, "/mutate/prod", json.dumps(review)).status_code == 200
    assert len(queries) == 0
    assert webhook_state.writer.drain() == 0
    assert AuditEvent.objects.count() == 0
