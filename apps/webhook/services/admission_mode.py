"""Admission on, off or audit for a cluster (DESIGN §6.1): the MutatingWebhookConfiguration in Kubernetes.

Registers, updates or deletes ``kubedoor-<cluster>`` through the Kubernetes door, then saves the mode
and its audit event. The configuration document itself is built by apps/webhook/registration.py (pure).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from apps.audit.models import AuditResult
from apps.audit.services import Actor, audit_event_record
from apps.control import k8s
from apps.control.choices import AdmissionMode
from apps.control.models import Cluster
from apps.control.onboarding import cluster_contact_record
from apps.webhook import registration

logger = logging.getLogger(__name__)


class AdmissionRegistrationError(Exception):
    """Kubernetes refused or could not take the registration; the mode was left unchanged."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _endpoint(cluster: Cluster) -> registration.WebhookEndpoint:
    """Where ``cluster``'s API server reaches the webhook: the cluster's own endpoint, else the global one.

    A cluster with a webhook URL or Service of its own (a remote cluster) uses it with its own CA
    bundle; otherwise the KUBEDOOR_WEBHOOK_* settings apply, as for the cluster KubeDoor runs in.
    """
    if cluster.webhook_url or cluster.webhook_service:
        ca_pem = cluster.webhook_ca_bundle.encode()
        if ca_pem and b"-----BEGIN CERTIFICATE-----" not in ca_pem:
            raise ValidationError(
                _("The webhook CA bundle of cluster %(cluster)s is not a PEM certificate."),
                params={"cluster": cluster.name},
            )
        return registration.WebhookEndpoint(
            service=cluster.webhook_service,
            url=cluster.webhook_url,
            ca_bundle_pem=ca_pem,
            service_port=cluster.webhook_service_port or 443,
        )
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
            endpoint=_endpoint(cluster),
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

    def record(*, result: str, message: str) -> None:
        audit_event_record(
            actor=actor,
            action="admission.mode",
            cluster=cluster.name,
            before={"admission_mode": before},
            after={"admission_mode": mode},
            result=result,
            message=message,
        )

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
        cluster_contact_record(cluster=cluster)
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
        record(result=AuditResult.ERROR, message=message)
        logger.warning("admission mode of %s not changed: %s", cluster.name, exc.message)
        raise AdmissionRegistrationError(message, status=exc.status) from exc
    with transaction.atomic():
        cluster.admission_mode = mode
        cluster.save(update_fields=["admission_mode", "updated_at"])
        record(result=AuditResult.OK, message=f"admission mode {before} -> {mode}: {detail}")
    logger.info("admission mode of %s: %s -> %s (%s)", cluster.name, before, mode, detail)
    return cluster
