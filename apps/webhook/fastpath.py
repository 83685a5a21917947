"""The webhook process's WSGI front: admission reviews straight to the service, the rest to Django.

``POST /mutate`` and ``POST /mutate/<cluster>`` — every request the API server sends — are answered
through ``services.admission_review_handle``, the same service the Django view calls, without Django's
per-request machinery (signals, URL resolution, request and response objects), which costs about as
much CPU as the decision itself. Probes, metrics, other methods and unknown paths go to Django.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from apps.webhook import services

_CLUSTER = re.compile(r"[-a-zA-Z0-9_]+")
_STATUS = {200: "200 OK", 400: "400 Bad Request", 413: "413 Request Entity Too Large"}

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def review_target(environ: dict[str, Any]) -> tuple[bool, str | None]:
    """Whether the request is an admission review for the fast path, and for which cluster."""
    if environ.get("REQUEST_METHOD") != "POST":
        return False, None
    path = environ.get("PATH_INFO", "")
    if path == "/mutate":
        return True, None
    if path.startswith("/mutate/") and _CLUSTER.fullmatch(path, 8):
        return True, path[8:]
    return False, None


def make_application(django_application: WSGIApp) -> WSGIApp:
    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        is_review, cluster = review_target(environ)
        if not is_review:
            return django_application(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > services.MAX_BODY_BYTES:
            answer = services.too_large()
        else:
            body = environ["wsgi.input"].read(length) if length > 0 else b""
            answer = services.admission_review_handle(cluster=cluster, body=body)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(answer.body)))]
        start_response(_STATUS[answer.status], headers)
        return [answer.body]

    return application
