"""The admission endpoint and the webhook process's probes and metrics; thin, and they never raise."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from apps.webhook import metrics, services, snapshot


@csrf_exempt
def mutate(request: HttpRequest, cluster: str | None = None) -> HttpResponse:
    """POST /mutate/<cluster>: the API server's AdmissionReview in, the answer out (DESIGN §6.2)."""
    if request.method != "POST":
        answer = {"status": 405, "detail": "POST an AdmissionReview."}
        return JsonResponse(answer, status=405, headers={"Allow": "POST"})
    body = request.read(services.MAX_BODY_BYTES + 1)
    if len(body) > services.MAX_BODY_BYTES:
        answer = services.too_large()
    else:
        answer = services.admission_review_handle(cluster=cluster, body=body)
    return HttpResponse(answer.body, status=answer.status, content_type="application/json")


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
        "store_error": holder.last_error,
    }
    return JsonResponse(body, status=200 if holder.attempted else 503)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    metrics.snapshot_age_set(snapshot.holder.age())
    payload, content_type = metrics.exposition()
    return HttpResponse(payload, content_type=content_type)
