"""The webhook process's WSGI handler answers exactly what Django's handler answers, on every path."""

from __future__ import annotations

import io
import json
import logging
import sys
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.handlers.wsgi import WSGIHandler
from django.urls import Resolver404, get_resolver
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.webhook import views
from apps.webhook.handler import MUTATE_PATH, MUTATE_ROUTE, WebhookHandler
from tests.factories import ClusterFactory, MicroserviceFactory
from tests.webhook.conftest import load_case

PROCESS_URLS = "apps.webhook.process_urls"


def _resolved_mutate_cluster(path: str) -> str | None:
    """What the webhook process's URL map makes of ``path``: the cluster of ``webhook-mutate``, else None."""
    try:
        match = get_resolver(PROCESS_URLS).resolve(path)
    except Resolver404:
        return None
    return match.kwargs["cluster"] if match.url_name == MUTATE_ROUTE else None


def _fast_mutate_cluster(path: str) -> str | None:
    match = MUTATE_PATH.fullmatch(path)
    return None if match is None else match["cluster"]


@pytest.mark.parametrize(
    ("path", "cluster"),
    [
        ("/mutate/prod", "prod"),
        ("/mutate/a-b_C9", "a-b_C9"),
        ("/mutate", None),
        ("/mutate/", None),
        ("/mutate/prod/", None),
        ("/mutate/prod/x", None),
        ("/mutate/prod\n", None),
        ("/mutate/pr od", None),
        ("/mutate/prød", None),
        ("/mutate/prod.json", None),
        ("//mutate/prod", None),
        ("mutate/prod", None),
        ("/Mutate/prod", None),
        ("/healthz", None),
    ],
)
def test_mutate_expression_matches_the_url_map(path, cluster):
    assert _resolved_mutate_cluster(path) == cluster
    assert _fast_mutate_cluster(path) == cluster


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from(["/", "mutate", "prod", "-", "_", "Z9", ".", " ", "\n", "%2F", "ø", "healthz", "\x00"]),
        max_size=6,
    ).map("".join)
)
def test_mutate_expression_matches_the_url_map_on_any_path(path):
    assert _fast_mutate_cluster(path) == _resolved_mutate_cluster(path)


def _environ(method: str, path: str, body: bytes = b"", **extra: str) -> dict[str, Any]:
    """What gunicorn hands the WSGI application for one request."""
    return {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8443",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "kubedoor-webhook.kubedoor.svc:443",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "https",
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    } | extra


def _call(application: Any, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    started: list[tuple[str, list[tuple[str, str]]]] = []
    result = application(environ, lambda status, headers, exc_info=None: started.append((status, headers)))
    try:
        body = b"".join(result)
    finally:
        result.close()
    return started[0][0], started[0][1], body


REVIEW = json.dumps(load_case("scale-kubectl")[0]).encode()
DENIED = json.dumps(load_case("unmanaged-create-denied")[0]).encode()
REQUESTS = {
    "patch": ("POST", "/mutate/prod", REVIEW, {}),
    "deny": ("POST", "/mutate/prod", DENIED, {}),
    "unknown cluster": ("POST", "/mutate/nowhere", DENIED, {}),
    "not json": ("POST", "/mutate/prod", b"junk", {}),
    "empty": ("POST", "/mutate/prod", b"", {}),
    "too large": ("POST", "/mutate/prod", b"{}", {"CONTENT_LENGTH": str(9 * 1024 * 1024)}),
    "get": ("GET", "/mutate/prod", b"", {}),
    "head": ("HEAD", "/mutate/prod", b"", {}),
    "options": ("OPTIONS", "/mutate/prod", b"", {}),
    "no content type": ("POST", "/mutate/prod", REVIEW, {"CONTENT_TYPE": ""}),
    "without cluster": ("POST", "/mutate", REVIEW, {}),
    "trailing slash": ("POST", "/mutate/prod/", REVIEW, {}),
    "healthz": ("GET", "/healthz", b"", {}),
    "elsewhere": ("POST", "/admin/", b"", {}),
}


@pytest.fixture
def prod(db, webhook_state, webhook_process):
    cluster = ClusterFactory(name="prod", admission_mode="enforce")
    MicroserviceFactory(cluster=cluster, namespace="shop", name="cart", replicas_specified=3)
    webhook_state.holder.refresh()
    return cluster


@pytest.mark.parametrize("name", list(REQUESTS))
def test_handler_answers_what_djangos_handler_answers(prod, webhook_state, caplog, name):
    # given the same request for Django's handler and the webhook's
    method, path, body, extra = REQUESTS[name]
    answers = []
    for application in (WSGIHandler(), WebhookHandler()):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="django.request"):
            # when
            answers.append((_call(application, _environ(method, path, body, **extra)), caplog.messages[:]))
        queued = [webhook_state.writer.queue.get_nowait() for _ in range(webhook_state.writer.queue.qsize())]
        answers[-1] += (sorted((event.action, event.namespace, event.name, event.message) for event in queued),)
    # then the status line, the headers, the body, what django.request logged and the audit events queued
    # are the same
    assert answers[0] == answers[1]


def test_handler_answers_a_review_with_the_patch(prod, webhook_state):
    status, headers, content = _call(WebhookHandler(), _environ("POST", "/mutate/prod", REVIEW))
    assert status == "200 OK"
    assert headers == [("Content-Type", "application/json"), ("Content-Length", str(len(content)))]
    assert json.loads(content)["response"]["warnings"] == ["kubedoor: spec.replicas 5 -> 3 (control table)"]
    assert webhook_state.writer.queue.qsize() == 1


def test_handler_answers_djangos_500_for_what_escapes_the_view(prod, monkeypatch):
    # given a view whose dispatch raises (the real one catches everything)
    def broken(self, request, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(views.AdmissionReviewView, "dispatch", broken)
    # when both handlers answer it, then both answer Django's 500
    django = _call(WSGIHandler(), _environ("POST", "/mutate/prod", REVIEW))
    webhook = _call(WebhookHandler(), _environ("POST", "/mutate/prod", REVIEW))
    assert webhook == django
    assert webhook[0] == "500 Internal Server Error"


def test_handler_refuses_settings_it_would_skip(webhook_process, monkeypatch):
    # given a database whose requests Django would wrap in a transaction
    monkeypatch.setitem(django_settings.DATABASES["default"], "ATOMIC_REQUESTS", True)
    # when, then
    with pytest.raises(RuntimeError, match="transaction"):
        WebhookHandler()
