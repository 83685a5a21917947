"""Answering one AdmissionReview from the in-memory snapshot: the hot path of the webhook process.

Never raises, never queries, never opens a connection: the view hands it the raw body and writes the
bytes it returns. Patches, denials and store errors are queued for the background audit writer.
"""

from __future__ import annotations

import logging
import time
from typing import Any, NamedTuple

import orjson
from django.conf import settings

from apps.webhook import admission, audit_writer, metrics, snapshot
from apps.webhook.audit_writer import AuditWriter
from apps.webhook.snapshot import SnapshotHolder

logger = logging.getLogger(__name__)

# A Deployment is at most ~1.5 MB in etcd; an UPDATE review carries it twice plus metadata.
MAX_BODY_BYTES = 8 * 1024 * 1024
# The answer as compact UTF-8 JSON: byte for byte what ``json.dumps(separators=(",", ":"),
# ensure_ascii=False).encode()`` writes for it (strings, bools, None and integers of the control table),
# in a tenth of the time.
_dumps = orjson.dumps


class ReviewAnswer(NamedTuple):
    """The HTTP status and the body the view answers (a named tuple: one per review, cheap to build)."""

    status: int
    body: bytes


def _error(status: int, message: str) -> ReviewAnswer:
    return ReviewAnswer(status, _dumps({"status": status, "detail": message}))


def too_large() -> ReviewAnswer:
    return _error(413, "The AdmissionReview is too large.")


def method_not_allowed() -> ReviewAnswer:
    return _error(405, "POST an AdmissionReview.")


def internal_error() -> ReviewAnswer:
    return _error(500, "KubeDoor could not answer this request; see the webhook log.")


def _cluster_for(
    name: str | None, snapshot_clusters: dict[str, Any] | None
) -> tuple[admission.ClusterSettings, Any, bool]:
    """The cluster's settings, its rows (or None) and whether control data is available."""
    if snapshot_clusters is None:
        fallback = admission.ClusterSettings(
            name=name or "", on_store_error=settings.KUBEDOOR_WEBHOOK_ON_STORE_ERROR_DEFAULT
        )
        return fallback, None, False
    if name is None and len(snapshot_clusters) == 1:
        name = next(iter(snapshot_clusters))
    control = snapshot_clusters.get(name) if name is not None else None
    if control is None:
        return admission.ClusterSettings(name=name or "", admission_mode=admission.MODE_OFF), None, True
    return control.settings, control.rows, True


def admission_review_handle(
    *,
    cluster: str | None,
    body: bytes,
    holder: SnapshotHolder | None = None,
    writer: AuditWriter | None = None,
) -> ReviewAnswer:
    """Answer one AdmissionReview from the in-memory snapshot; never raises, never queries.

    A body that is not an AdmissionReview gets 400. Patches, denials and store errors are queued for
    the audit writer; pass-through allows are only counted.
    """
    started = time.perf_counter()
    holder = holder or snapshot.holder
    writer = writer or audit_writer.writer
    try:
        review = admission.parse_review(body)
    except admission.AdmissionParseError as exc:
        metrics.admission_observe(decision="invalid", seconds=time.perf_counter() - started)
        return _error(400, f"Expected an AdmissionReview (admission.k8s.io/v1 or v1beta1): {exc}")
    try:
        holder.ensure_started()
        current = holder.current
        cluster_settings, rows, available = _cluster_for(cluster, current.clusters if current else None)
        if cluster is None and current is not None and len(current.clusters) != 1:
            decision = admission.Decision(
                warnings=[f"kubedoor: {len(current.clusters)} clusters configured; register /mutate/<cluster>"]
            )
        else:
            row = rows.get((review.namespace, review.name)) if rows is not None else None
            decision = admission.decide(review=review, row=row, cluster=cluster_settings, store_available=available)
        answer = admission.response_body(review=review, decision=decision)
    except Exception:  # the view never fails: an unexpected error is answered like a store error
        logger.exception("admission decision failed for %s %s/%s", review.uid, review.namespace, review.name)
        policy = settings.KUBEDOOR_WEBHOOK_ON_STORE_ERROR_DEFAULT
        decision = admission.Decision(
            allowed=policy != "deny",
            code=503,
            message="KubeDoor could not decide on this request (internal error); see the webhook log.",
            warnings=["kubedoor: internal error; allowed unchanged"] if policy != "deny" else [],
        )
        answer = admission.response_body(review=review, decision=decision)
        cluster_settings = admission.ClusterSettings(name=cluster or "")
    if decision.audit_action is not None:
        _queue_audit(
            writer, action=decision.audit_action, review=review, decision=decision, cluster=cluster_settings.name
        )
    metrics.admission_observe(decision=decision.label, seconds=time.perf_counter() - started)
    return ReviewAnswer(200, _dumps(answer))


def _queue_audit(
    writer: AuditWriter, *, action: str, review: admission.Review, decision: admission.Decision, cluster: str
) -> None:
    what = f"{review.operation} {review.kind}" + (f"/{review.sub_resource}" if review.sub_resource else "")
    details = "; ".join(decision.warnings) if decision.warnings else decision.message
    if not decision.allowed:
        details = decision.message
    writer.submit(
        action=action,
        cluster=cluster,
        namespace=review.namespace,
        name=review.name,
        before=decision.before,
        after=decision.after,
        result=decision.audit_result,
        message=f"{what} by {review.username or 'unknown'} (uid {review.uid}): {details}",
    )
