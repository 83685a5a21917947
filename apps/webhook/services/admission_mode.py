"""Admission on, off or audit for a cluster (DESIGN §6.1), by webhook or by admission policies.

Registers, updates or deletes ``kubedoor-<cluster>`` through the Kubernetes door, then saves the mode
(or the engine) and its audit event. With the ``webhook`` engine that is the MutatingWebhookConfiguration
(built by apps/webhook/registration.py); with ``policy`` the admission policies, bindings and parameter
ConfigMaps (apps/webhook/policy.py, installed by services/admission_policy.py). The webhook
configuration and the policies are never on together for one cluster.
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
from apps.control.choices import AdmissionEngine, AdmissionMode
from apps.control.models import Cluster
from apps.control.onboarding import cluster_contact_record
from apps.webhook import registration
from apps.webhook.services import admission_policy

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
    """The mode and engine KubeDoor holds and what the cluster actually has registered (read from Kubernetes)."""
    name = registration.configuration_name(cluster.name)
    state: dict[str, Any] = {
        "cluster": cluster.name,
        "mode": cluster.admission_mode,
        "engine": cluster.admission_engine,
        "configuration": name,
        "registered": None,
        "registration": None,
        "policies": None,
        "in_sync": None,
        "error": "",
    }
    policy_engine = cluster.admission_engine == AdmissionEngine.POLICY
    try:
        obj = k8s.webhook_configuration_get(cluster=cluster, name=name)
        # the policies are read for the policy engine only (the webhook engine's switch removed them)
        policies = admission_policy.admission_policy_present(cluster=cluster) if policy_engine else None
    except k8s.K8sError as exc:
        state["error"] = exc.message
        return state
    summary = registration.configuration_summary(obj)
    state["registered"] = obj is not None
    state["registration"] = summary
    state["policies"] = policies
    if cluster.admission_mode == AdmissionMode.OFF:
        state["in_sync"] = obj is None and not policies
    elif policy_engine:
        wanted = 2 if cluster.allow_unmanaged else 4
        state["in_sync"] = obj is None and len(policies or []) == wanted
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


def _audit_needs_webhook(*, mode: str, engine: str) -> None:
    if mode == AdmissionMode.AUDIT and engine == AdmissionEngine.POLICY:
        raise ValidationError(
            {
                "mode": _(
                    "Audit mode needs the webhook engine: an admission policy cannot apply the table as warnings "
                    "only. Use enforce, or switch the engine to webhook first."
                )
            }
        )


def _install(*, cluster: Cluster, mode: str, engine: str, switching: bool = False) -> list[str]:
    """Put the cluster's admission in ``mode`` with ``engine``. On a switch of engine the other engine's
    objects go first, so the webhook configuration and the policies are never on together. Returns what
    was done."""
    name = registration.configuration_name(cluster.name)
    if mode == AdmissionMode.OFF:
        existed = k8s.webhook_configuration_delete(cluster=cluster, name=name)
        done = [f"deleted {name}" if existed else f"{name} was not registered"]
        if engine == AdmissionEngine.POLICY:
            done += admission_policy.admission_policy_remove(cluster=cluster)
        return done
    if engine == AdmissionEngine.POLICY:
        api_version = admission_policy.policy_api_version(cluster=cluster)  # refuses < 1.34 before any change
        done = [f"deleted {name}"] if k8s.webhook_configuration_delete(cluster=cluster, name=name) else []
        return done + admission_policy.admission_policy_install(cluster=cluster, api_version=api_version)
    done = admission_policy.admission_policy_remove(cluster=cluster) if switching else []
    existing = k8s.webhook_configuration_get(cluster=cluster, name=name)
    body = webhook_configuration_for(
        cluster=cluster, existing=existing, match_conditions=_supports_match_conditions(cluster)
    )
    k8s.webhook_configuration_apply(cluster=cluster, body=body)
    return [*done, f"{'updated' if existing else 'created'} {name}"]


def _refused(
    *, actor: Actor, cluster: Cluster, exc: k8s.K8sError, action: str, before: dict, after: dict, engines: set[str]
) -> AdmissionRegistrationError:
    message = _("Kubernetes refused the admission registration %(name)s of cluster %(cluster)s: %(error)s") % {
        "name": registration.configuration_name(cluster.name),
        "cluster": cluster.name,
        "error": exc.message,
    }
    if isinstance(exc, k8s.K8sForbidden):
        message += " " + _(
            "KubeDoor's service account needs get/create/update/delete on mutatingwebhookconfigurations."
        )
        if AdmissionEngine.POLICY in engines:
            message += " " + _(
                "For the policy engine also on the admission policies, their bindings and the ConfigMaps "
                "named kubedoor-<cluster>, and create on ConfigMaps."
            )
    audit_event_record(
        actor=actor,
        action=action,
        cluster=cluster.name,
        before=before,
        after=after,
        result=AuditResult.ERROR,
        message=message,
    )
    logger.warning("admission of %s not changed: %s", cluster.name, exc.message)
    return AdmissionRegistrationError(message, status=exc.status)


def admission_mode_set(*, actor: Actor, cluster: Cluster, mode: str) -> Cluster:
    """Turn admission off, to audit or to enforce (§6.1) with the cluster's engine: register or delete
    ``kubedoor-<cluster>`` (the webhook configuration, or the admission policies) first.

    Kubernetes is called before anything is saved and outside any transaction; when it refuses, the
    mode stays as it was, the failure is audited, and :class:`AdmissionRegistrationError` says why.
    """
    if mode not in AdmissionMode.values:
        raise ValidationError({"mode": _("Choose one of: %(modes)s.") % {"modes": ", ".join(AdmissionMode.values)}})
    _audit_needs_webhook(mode=mode, engine=cluster.admission_engine)
    before = cluster.admission_mode
    try:
        done = _install(cluster=cluster, mode=mode, engine=cluster.admission_engine)
        cluster_contact_record(cluster=cluster)
    except k8s.K8sError as exc:
        raise _refused(
            actor=actor,
            cluster=cluster,
            exc=exc,
            action="admission.mode",
            before={"admission_mode": before},
            after={"admission_mode": mode},
            engines={cluster.admission_engine},
        ) from exc
    detail = "; ".join(done)
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


def admission_engine_set(*, actor: Actor, cluster: Cluster, engine: str) -> Cluster:
    """Switch how the API server applies the table: KubeDoor's webhook, or admission policies (1.34+).

    With admission on, the old engine's objects are removed before the new ones are created (never both
    on); off, only the choice is saved. Refused like :func:`admission_mode_set`, and audited either way.
    """
    if engine not in AdmissionEngine.values:
        raise ValidationError(
            {"engine": _("Choose one of: %(engines)s.") % {"engines": ", ".join(AdmissionEngine.values)}}
        )
    before = cluster.admission_engine
    if engine == before:
        return cluster
    _audit_needs_webhook(mode=cluster.admission_mode, engine=engine)
    done: list[str] = []
    if cluster.admission_mode != AdmissionMode.OFF:
        try:
            done = _install(cluster=cluster, mode=cluster.admission_mode, engine=engine, switching=True)
        except k8s.K8sError as exc:
            raise _refused(
                actor=actor,
                cluster=cluster,
                exc=exc,
                action="admission.engine",
                before={"admission_engine": before},
                after={"admission_engine": engine},
                engines={before, engine},
            ) from exc
    detail = "; ".join(done) or "admission is off: nothing registered"
    with transaction.atomic():
        cluster.admission_engine = engine
        cluster.save(update_fields=["admission_engine", "updated_at"])
        audit_event_record(
            actor=actor,
            action="admission.engine",
            cluster=cluster.name,
            before={"admission_engine": before},
            after={"admission_engine": engine},
            message=f"admission engine {before} -> {engine}: {detail}",
        )
    logger.info("admission engine of %s: %s -> %s (%s)", cluster.name, before, engine, detail)
    return cluster
