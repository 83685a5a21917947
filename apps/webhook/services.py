"""Webhook services: answering a review from the snapshot, admission on/off (registration), preview."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonpatch
import yaml
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from apps.audit.models import AuditResult
from apps.audit.services import Actor, audit_event_record
from apps.control import k8s
from apps.control.choices import AdmissionMode
from apps.control.models import Cluster, Microservice
from apps.control.selectors import microservice_get
from apps.webhook import admission, audit_writer, metrics, registration, snapshot
from apps.webhook.audit_writer import AuditWriter
from apps.webhook.snapshot import SnapshotHolder

logger = logging.getLogger(__name__)

# A Deployment is at most ~1.5 MB in etcd; an UPDATE review carries it twice plus metadata.
MAX_BODY_BYTES = 8 * 1024 * 1024
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True)
class ReviewAnswer:
    status: int
    body: bytes


def _error(status: int, message: str) -> ReviewAnswer:
    return ReviewAnswer(status, _DUMPS({"status": status, "detail": message}).encode())


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
        _queue_audit(writer, review=review, decision=decision, cluster=cluster_settings.name)
    metrics.admission_observe(decision=decision.label, seconds=time.perf_counter() - started)
    return ReviewAnswer(200, _DUMPS(answer).encode())


def _queue_audit(writer: AuditWriter, *, review: admission.Review, decision: admission.Decision, cluster: str) -> None:
    what = f"{review.operation} {review.kind}" + (f"/{review.sub_resource}" if review.sub_resource else "")
    details = "; ".join(decision.warnings) if decision.warnings else decision.message
    if not decision.allowed:
        details = decision.message
    writer.submit(
        action=decision.audit_action,
        cluster=cluster,
        namespace=review.namespace,
        name=review.name,
        before=decision.before,
        after=decision.after,
        result=decision.audit_result,
        message=f"{what} by {review.username or 'unknown'} (uid {review.uid}): {details}",
    )


# --- registration (§6.1) -------------------------------------------------------------------------


class AdmissionRegistrationError(Exception):
    """Kubernetes refused or could not take the registration; the mode was left unchanged."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _endpoint() -> registration.WebhookEndpoint:
    ca_pem = b""
    ca_path = settings.KUBEDOOR_WEBHOOK_CA_BUNDLE
    if ca_path:
        try:
            ca_pem = Path(ca_path).read_bytes()
        except OSError as exc:
            raise ValidationError(
                _("Cannot read the webhook CA bundle %(path)s (KUBEDOOR_WEBHOOK_CA_BUNDLE): %(error)s"),
                params={"path": ca_path, "error": exc.strerror or exc},
            ) from exc
        if b"-----BEGIN CERTIFICATE-----" not in ca_pem:
            raise ValidationError(
                _("The webhook CA bundle %(path)s is not a PEM certificate."), params={"path": ca_path}
            )
    return registration.WebhookEndpoint(
        service=settings.KUBEDOOR_WEBHOOK_SERVICE,
        url=settings.KUBEDOOR_WEBHOOK_URL,
        ca_bundle_pem=ca_pem,
        ca_inject_from=settings.KUBEDOOR_WEBHOOK_CA_INJECT_FROM,
    )


def webhook_configuration_for(
    *, cluster: Cluster, existing: dict[str, Any] | None = None, match_conditions: bool = False
) -> dict[str, Any]:
    """The MutatingWebhookConfiguration ``kubedoor-<cluster>`` KubeDoor registers for ``cluster``."""
    try:
        return registration.configuration_build(
            cluster_name=cluster.name,
            excluded_namespaces=cluster.excluded_namespaces or [],
            failure_policy=cluster.failure_policy,
            timeout_seconds=cluster.webhook_timeout_seconds,
            endpoint=_endpoint(),
            existing=existing,
            match_conditions=match_conditions,
        )
    except registration.RegistrationConfigError as exc:
        raise ValidationError(str(exc)) from exc


def admission_state_get(*, cluster: Cluster) -> dict[str, Any]:
    """The mode KubeDoor holds and what the cluster actually has registered (read from Kubernetes)."""
    name = registration.configuration_name(cluster.name)
    state: dict[str, Any] = {
        "cluster": cluster.name,
        "mode": cluster.admission_mode,
        "configuration": name,
        "registered": None,
        "registration": None,
        "in_sync": None,
        "error": "",
    }
    try:
        obj = k8s.webhook_configuration_get(cluster=cluster, name=name)
    except k8s.K8sError as exc:
        state["error"] = exc.message
        return state
    summary = registration.configuration_summary(obj)
    state["registered"] = obj is not None
    state["registration"] = summary
    if cluster.admission_mode == AdmissionMode.OFF:
        state["in_sync"] = obj is None
    else:
        state["in_sync"] = summary is not None and (summary["failure_policy"], summary["timeout_seconds"]) == (
            cluster.failure_policy,
            cluster.webhook_timeout_seconds,
        )
    return state


def _supports_match_conditions(cluster: Cluster) -> bool:
    """Whether the API server takes ``matchConditions`` (1.28+); unknown (version unreadable) = no."""
    try:
        version = k8s.server_version_get(cluster=cluster)
    except k8s.K8sError as exc:
        logger.warning(
            "cluster %s: server version not read, registering without matchConditions: %s", cluster.name, exc
        )
        return False
    return version.at_least(*registration.MATCH_CONDITIONS_SINCE)


def admission_mode_set(*, actor: Actor, cluster: Cluster, mode: str) -> Cluster:
    """Turn admission off, to audit or to enforce (§6.1): register or delete ``kubedoor-<cluster>`` first.

    Kubernetes is called before anything is saved and outside any transaction; when it refuses, the
    mode stays as it was, the failure is audited, and :class:`AdmissionRegistrationError` says why.
    """
    if mode not in AdmissionMode.values:
        raise ValidationError({"mode": _("Choose one of: %(modes)s.") % {"modes": ", ".join(AdmissionMode.values)}})
    before = cluster.admission_mode
    name = registration.configuration_name(cluster.name)
    try:
        if mode == AdmissionMode.OFF:
            existed = k8s.webhook_configuration_delete(cluster=cluster, name=name)
            detail = f"deleted {name}" if existed else f"{name} was not registered"
        else:
            existing = k8s.webhook_configuration_get(cluster=cluster, name=name)
            body = webhook_configuration_for(
                cluster=cluster, existing=existing, match_conditions=_supports_match_conditions(cluster)
            )
            k8s.webhook_configuration_apply(cluster=cluster, body=body)
            detail = f"{'updated' if existing else 'created'} {name}"
    except k8s.K8sError as exc:
        message = _("Kubernetes refused the admission registration %(name)s of cluster %(cluster)s: %(error)s") % {
            "name": name,
            "cluster": cluster.name,
            "error": exc.message,
        }
        if isinstance(exc, k8s.K8sForbidden):
            message += " " + _(
                "KubeDoor's service account needs get/create/update/delete on mutatingwebhookconfigurations."
            )
        audit_event_record(
            actor=actor,
            action="admission.mode",
            cluster=cluster.name,
            before={"admission_mode": before},
            after={"admission_mode": mode},
            result=AuditResult.ERROR,
            message=message,
        )
        logger.warning("admission mode of %s not changed: %s", cluster.name, exc.message)
        raise AdmissionRegistrationError(message, status=exc.status) from exc
    with transaction.atomic():
        cluster.admission_mode = mode
        cluster.save(update_fields=["admission_mode", "updated_at"])
        audit_event_record(
            actor=actor,
            action="admission.mode",
            cluster=cluster.name,
            before={"admission_mode": before},
            after={"admission_mode": mode},
            message=f"admission mode {before} -> {mode}: {detail}",
        )
    logger.info("admission mode of %s: %s -> %s (%s)", cluster.name, before, mode, detail)
    return cluster


# --- preview (§6.4) ------------------------------------------------------------------------------


def _control_row(service: Any) -> admission.ControlRow:
    return admission.ControlRow(
        namespace=service.namespace,
        name=service.name,
        container=service.container,
        replicas=service.effective_replicas,
        replicas_mode=service.replicas_mode,
        request_cpu_m=service.request_cpu_m,
        request_mem_mib=service.request_mem_mib,
        limit_cpu_m=service.limit_cpu_m,
        limit_mem_mib=service.limit_mem_mib,
        hpa_managed=service.is_hpa_managed,
    )


def _as_deployment(value: Any, field: str) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ValidationError({field: _("Not valid JSON or YAML: %(error)s") % {"error": exc}}) from exc
    if not isinstance(value, dict) or value.get("kind") != "Deployment":
        raise ValidationError({field: _("Expected a Deployment (kind: Deployment) as JSON or YAML.")})
    metadata = value.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        raise ValidationError({field: _("The Deployment needs metadata.name.")})
    return value


def admission_preview(
    *, cluster: Cluster, deployment: Any, old_deployment: Any = None, mode: str | None = None
) -> dict[str, Any]:
    """What the webhook would answer for ``deployment`` (CREATE, or UPDATE from ``old_deployment``).

    Reads the control row from the database (not the snapshot) and changes nothing. ``mode`` defaults
    to the cluster's, or ``enforce`` while admission is off, so the preview always shows the patch.
    """
    obj = _as_deployment(deployment, "deployment")
    old = _as_deployment(old_deployment, "old_deployment") if old_deployment is not None else None
    namespace = obj["metadata"].get("namespace") or "default"
    obj = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
    if mode is not None and mode not in (AdmissionMode.AUDIT, AdmissionMode.ENFORCE):
        raise ValidationError({"mode": _("Choose audit or enforce.")})
    used_mode = mode or (cluster.admission_mode if cluster.admission_mode != AdmissionMode.OFF else "enforce")
    document = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "preview",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "operation": "UPDATE" if old is not None else "CREATE",
            "namespace": namespace,
            "name": obj["metadata"]["name"],
            "object": obj,
            "oldObject": old,
            "dryRun": True,
        },
    }
    try:
        review = admission.parse_review(document)
    except admission.AdmissionParseError as exc:
        raise ValidationError({"deployment": str(exc).replace("request.object", "deployment")}) from exc
    try:
        row = _control_row(microservice_get(cluster=cluster.name, namespace=namespace, name=review.name))
    except Microservice.DoesNotExist:
        row = None
    settings_ = admission.ClusterSettings(
        name=cluster.name,
        admission_mode=used_mode,
        namespaces=frozenset(cluster.namespaces or ()),
        excluded_namespaces=frozenset(cluster.excluded_namespaces or ()),
        allow_unmanaged=cluster.allow_unmanaged,
        on_store_error=cluster.on_store_error,
    )
    decision = admission.decide(review=review, row=row, cluster=settings_)
    patched = jsonpatch.apply_patch(obj, decision.patch) if decision.patch else obj
    return {
        "cluster": cluster.name,
        "namespace": namespace,
        "name": review.name,
        "operation": review.operation,
        "mode": used_mode,
        "managed": row is not None,
        "decision": decision.label,
        "allowed": decision.allowed,
        "status_code": 200 if decision.allowed else decision.code,
        "message": decision.message,
        "warnings": decision.warnings,
        "patch": decision.patch,
        "patched": patched,
    }
