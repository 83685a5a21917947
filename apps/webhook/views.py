"""The admission endpoint and the webhook process's probes and metrics; thin, and they never raise.

Routed only by the webhook process (apps/webhook/process_urls.py), never by the web UI's.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from rest_framework.exceptions import APIException
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
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

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> bytes:
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
    """Writes the service's JSON bytes as they are, as ``application/json`` (no charset parameter)."""

    media_type = "application/json"
    format = "json"
    charset = None

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return data


class FixedNegotiation(BaseContentNegotiation):
    """One parser, one renderer: nothing to negotiate, whatever Accept says."""

    def select_parser(self, request: Any, parsers: list[Any]) -> Any:
        return parsers[0]

    def select_renderer(self, request: Any, renderers: list[Any], format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


class AdmissionReviewView(APIView):
    """POST /mutate/<cluster>: the API server's AdmissionReview in, the answer out (DESIGN §6.2).

    No authentication, permission or throttle class (the API server authenticates KubeDoor by its
    TLS certificate, not the other way round), so DRF does not enforce CSRF either. The parser hands
    the raw body to the service, the renderer writes the service's bytes, and the negotiation is
    fixed: DRF adds no JSON round trip and no content negotiation to a review.
    """

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    throttle_classes: list[Any] = []
    parser_classes = [AdmissionReviewParser]
    renderer_classes = [AdmissionReviewRenderer]
    content_negotiation_class = FixedNegotiation
    http_method_names = ["post"]
    schema = openapi.AdmissionReviewSchema()

    @property
    def default_response_headers(self) -> dict[str, str]:
        return {}  # DRF would add "Allow" to every answer; only the 405 carries it

    def perform_authentication(self, request: Request) -> None:
        """Nothing to authenticate: skip building an anonymous user for every review."""

    @openapi.admission_review_schema
    def post(self, request: Request, cluster: str | None = None) -> Response:
        try:
            body = request.data
        except AdmissionReviewTooLarge:
            answer = services.too_large()
        else:
            # An empty body (no Content-Length) reaches here as DRF's empty dict: the service says 400.
            answer = services.admission_review_handle(cluster=cluster, body=body if isinstance(body, bytes) else b"")
        return _response(answer)

    def http_method_not_allowed(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return _response(services.method_not_allowed(), Allow="POST")

    def handle_exception(self, exc: Exception) -> Response:
        """Never raise: whatever escaped is logged and answered 500 in the endpoint's error shape."""
        logger.exception("admission endpoint failed: %s", exc)
        return _response(services.internal_error())


def _response(answer: services.ReviewAnswer, **headers: str) -> Response:
    """The service's bytes with their length: without Content-Length, gunicorn would answer every
    review in chunked encoding (one more write, and a chunk parser in the API server)."""
    return Response(answer.body, status=answer.status, headers={"Content-Length": str(len(answer.body)), **headers})


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
