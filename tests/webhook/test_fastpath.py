"""The webhook process's WSGI front: reviews take the fast path, everything else goes to Django."""

from __future__ import annotations

import io
import json

import pytest
from django.core.handlers.wsgi import WSGIHandler

from apps.webhook.fastpath import make_application, review_target
from tests.factories import ClusterFactory, MicroserviceFactory
from tests.webhook.conftest import load_case


@pytest.mark.parametrize(
    ("method", "path", "target"),
    [
        ("POST", "/mutate/prod", (True, "prod")),
        ("POST", "/mutate", (True, None)),
        ("POST", "/mutate/", (False, None)),
        ("POST", "/mutate/prod/x", (False, None)),
        ("POST", "/mutate/a b", (False, None)),
        ("POST", "/mutated", (False, None)),
        ("GET", "/mutate/prod", (False, None)),
        ("POST", "/healthz", (False, None)),
    ],
)
def test_review_target(method, path, target):
    assert review_target({"REQUEST_METHOD": method, "PATH_INFO": path}) == target


def _call(app, method, path, body=b""):
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "kubedoor-webhook.kubedoor.svc",
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
    }
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    result = app(environ, start_response)
    payload = b"".join(result)
    if hasattr(result, "close"):
        result.close()
    return seen["status"], seen["headers"], payload


@pytest.fixture
def app(db, webhook_state, webhook_process):
    cluster = ClusterFactory(name="prod", admission_mode="enforce")
    MicroserviceFactory(cluster=cluster, namespace="shop", name="cart", pod_count_manual=3)
    webhook_state.holder.refresh()
    return make_application(WSGIHandler())


def test_fast_path_answers_like_the_view(app, client):
    review = json.dumps(load_case("scale-kubectl")[0]).encode()
    status, headers, payload = _call(app, "POST", "/mutate/prod", review)
    view = client.post("/mutate/prod", data=review, content_type="application/json")
    assert status == "200 OK"
    assert headers == {"Content-Type": "application/json", "Content-Length": str(len(payload))}
    assert payload == view.content


def test_fast_path_400_and_413(app):
    status, _, payload = _call(app, "POST", "/mutate/prod", b"nope")
    assert status == "400 Bad Request"
    assert json.loads(payload)["detail"].startswith("Expected an AdmissionReview")
    environ_body = b"x" * 10
    status, _, payload = _call(app, "POST", "/mutate/prod", environ_body)
    assert status == "400 Bad Request"


def test_fast_path_refuses_too_large_without_reading(app):
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/mutate/prod", "CONTENT_LENGTH": str(9 * 1024 * 1024)}

    class Unreadable:
        def read(self, *args):
            raise AssertionError("the body must not be read")

    environ["wsgi.input"] = Unreadable()
    seen = {}
    payload = b"".join(make_application(WSGIHandler())(environ, lambda s, h: seen.update(status=s)))
    assert seen["status"] == "413 Request Entity Too Large"
    assert json.loads(payload) == {"status": 413, "detail": "The AdmissionReview is too large."}


def test_everything_else_goes_to_django(app):
    assert _call(app, "GET", "/healthz")[0] == "200 OK"
    assert _call(app, "GET", "/mutate/prod")[0].startswith("405")
    assert _call(app, "GET", "/admin/")[0].startswith("404")
