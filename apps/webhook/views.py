"""The admission endpoint and the webhook process's probes and metrics; thin, and they never raise.

Routed only by the webhook process (apps/webhook/process_urls.py), never by the web UI's.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from rest_framework.exceptions import APIException
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.views import APIView

from apps.webhook import metrics, openapi, services, snapshot

logger = logging.getLogger(__name__)


class AdmissionReviewTooLarge(APIException):
    status_code = 413


class AdmissionReviewParser(BaseParser):
    """The body as bytes, up to ``services.MAX_BODY_BYTES``: ``parse_review`` does the one ``json.loads``.

    Any media type is taken (the API server sends ``application/json``; the service judges the
    content). A larger body is refused from its Content-Length without being read.
    """

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> bytes:  # type: ignore[override]
        meta = parser_context["request"].META if parser_context else {}
        try:
            declared = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > services.MAX_BODY_BYTES:
            raise AdmissionReviewTooLarge()
        body = stream.read(services.MAX_BODY_BYTES + 1)
        if len(body) > services.MAX_BODY_BYTES:
            raise AdmissionReviewTooLarge()
        return body


class AdmissionReviewRenderer(BaseRenderer):
    """``application/json`` with no charset parameter: what the view answers, as the schema states it."""

    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return data


class AdmissionReviewView(APIView):
    """POST /mutate/<cluster>: the API server's AdmissionReview in, the answer out (DESIGN §6.2).

    No authentication, permission or throttle class (the API server authenticates KubeDoor by its
    TLS certificate, not the other way round), so nothing enforces CSRF either. The parser hands the
    raw body to the service, which returns the answer's bytes; the view writes them as they are.

    ``dispatch`` is DRF's without the steps that cannot change a review's answer (see its docstring).
    The class stays an APIView: the schema generator reads its parser, renderer and ``schema``, the
    allowed methods are ``http_method_names``, and whatever escapes goes to ``handle_exception``.
    """

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    throttle_classes: list[Any] = []
    parser_classes = [AdmissionReviewParser]
    renderer_classes = [AdmissionReviewRenderer]
    http_method_names = ["post"]
    schema = openapi.AdmissionReviewSchema()

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:  # type: ignore[override]
        """DRF's dispatch, minus what has nothing to do here: one review is one CPU-bound call, so the
        webhook's throughput is its CPU per review (bench/webhook/cpu.py).

        DRF's would wrap the request in its ``Request``, read the format suffix, negotiate the
        renderer, determine the version, run the (empty) authentication, permission and throttle
        loops, and answer a ``Response`` rendered through a template response: about 50 µs of a
        review's CPU, and none of it can change the answer (one parser, one renderer, no auth, no
        versions). Here the parser reads the Django request directly and the answer is a plain
        ``HttpResponse`` with the service's bytes — the same status, headers and body.
        """
        self.args = args
        self.kwargs = kwargs
        self.request = request  # type: ignore[assignment]  # the Django request: no DRF wrapper
        self.headers = {}
        try:
            method = (request.method or "").lower()
            if method in self.http_method_names:
                handler = getattr(self, method, self.http_method_not_allowed)
            else:
                handler = self.http_method_not_allowed
            return handler(request, *args, **kwargs)
        except Exception as exc:
            return self.handle_exception(exc)

    @openapi.admission_review_schema
    def post(self, request: HttpRequest, cluster: str | None = None) -> HttpResponse:
        try:
            body = AdmissionReviewParser().parse(request, parser_context={"request": request})
        except AdmissionReviewTooLarge:
            answer = services.too_large()
        else:
            # An empty body (no Content-Length) is b"": the service says 400.
            answer = services.admission_review_handle(cluster=cluster, body=body)
        return _response(answer)

    def http_method_not_allowed(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponse:  # type: ignore[override]
        return _response(services.method_not_allowed(), Allow="POST")

    def handle_exception(self, exc: Exception) -> HttpResponse:  # type: ignore[override]
        """Never raise: whatever escaped is logged and answered 500 in the endpoint's error shape."""
        logger.exception("admission endpoint failed: %s", exc)
        return _response(services.internal_error())


def _response(answer: services.ReviewAnswer, **headers: str) -> HttpResponse:
    """The service's bytes with their length: without Content-Length, gunicorn would answer every
    review in chunked encoding (one more write, and a chunk parser in the API server)."""
    response = HttpResponse(answer.body, status=answer.status, content_type=AdmissionReviewRenderer.media_type)
    response.headers["Content-Length"] = str(len(answer.body))
    for name, value in headers.items():
        response.headers[name] = value
    return response


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready once the first snapshot load was attempted: without data, reviews follow on_store_error."""
    holder = snapshot.holder
    holder.ensure_started()
    age = holder.age()
    body = {
        "status": "ok" if holder.attempted else "starting",
        "snapshot": "loaded" if age is not None else "unavailable",
        "snapshot_age_seconds": None if age is None else round(age, 3),
        "snapshot_checked_at": getattr(holder, "checked_at", None),
        "store_error": holder.last_error,
    }
    return JsonResponse(body, status=200 if holder.attempted else 503)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    metrics.snapshot_age_set(snapshot.holder.age())
    payload, content_type = metrics.exposition()
    return HttpResponse(payload, content_type=content_type)
