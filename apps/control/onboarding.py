"""Onboarding a remote cluster (issue 13 §1): the bundle to apply there, the connection, its check.

1. :func:`bundle_build` — the manifests an administrator applies in the remote cluster: a Namespace,
   a ServiceAccount, the least-privilege ClusterRole and its binding (from ``RBAC_REQUIREMENTS``, the
   declaration deploy/ and the RBAC test agree with) and a long-lived token Secret.
2. :func:`cluster_connect` — the Secret read back from that cluster (token and ``ca.crt``) and the
   API server's URL become the cluster's stored kubeconfig (an audited cluster update).
3. :func:`cluster_connection_check` — through the Kubernetes door: the server version, then one
   SelfSubjectAccessReview per permission the door uses; what is refused is named. The result is
   stored on the cluster (connection state, Kubernetes version, last successful call).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.services import Actor
from apps.control import k8s
from apps.control.choices import ConnectionState
from apps.control.models import Cluster
from apps.control.rbac import RBAC_REQUIREMENTS, cluster_role_rules, webhook_configuration_name
from apps.control.services import cluster_update

logger = logging.getLogger(__name__)

BUNDLE_NAMESPACE = "kubedoor"
BUNDLE_SERVICE_ACCOUNT = "kubedoor"
TOKEN_SECRET_SUFFIX = "-token"
MANAGED_BY = {"app.kubernetes.io/managed-by": "kubedoor"}
# A successful call is stamped at most this often, so busy callers cost one UPDATE a minute.
CONTACT_STAMP_EVERY = datetime.timedelta(seconds=60)


def bundle_build(*, cluster_name: str, namespace: str = BUNDLE_NAMESPACE) -> list[dict[str, Any]]:
    """The objects to apply in the remote cluster ``cluster_name`` (``kubectl apply -f``), in order."""
    account = BUNDLE_SERVICE_ACCOUNT
    labels = {**MANAGED_BY, "kubedoor.io/cluster": cluster_name}
    role_name = f"kubedoor-{cluster_name}"
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": dict(labels)}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": account, "namespace": namespace, "labels": dict(labels)},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role_name, "labels": dict(labels)},
            "rules": cluster_role_rules(webhook_names=[webhook_configuration_name(cluster_name)]),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": role_name, "labels": dict(labels)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
        {
            # Since 1.24 no token Secret is made by itself; this one is filled by the token controller
            # and lives until it is deleted (revoke access by deleting it).
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {
                "name": f"{account}{TOKEN_SECRET_SUFFIX}",
                "namespace": namespace,
                "labels": dict(labels),
                "annotations": {"kubernetes.io/service-account.name": account},
            },
        },
    ]


def bundle_yaml(*, cluster_name: str, namespace: str = BUNDLE_NAMESPACE) -> str:
    """:func:`bundle_build` as one multi-document YAML text."""
    return yaml.safe_dump_all(bundle_build(cluster_name=cluster_name, namespace=namespace), sort_keys=False)


@dataclass(frozen=True)
class ServiceAccountToken:
    """What a token Secret read back from the remote cluster holds."""

    token: str
    ca_pem: str


def secret_parse(text: str) -> ServiceAccountToken:
    """The token and CA of a ``kubernetes.io/service-account-token`` Secret given as YAML or JSON."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationError(_("The Secret is neither YAML nor JSON: %(error)s"), params={"error": exc}) from exc
    if not isinstance(document, dict) or document.get("kind") != "Secret":
        raise ValidationError(_("Expected a Secret (kind: Secret), as `kubectl get secret -o yaml` prints it."))
    values: dict[str, str] = {}
    for key, value in (document.get("data") or {}).items():
        try:
            values[str(key)] = base64.b64decode(str(value), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ValidationError(_("The Secret's data.%(key)s is not base64 text."), params={"key": key}) from exc
    values.update({str(k): str(v) for k, v in (document.get("stringData") or {}).items()})
    name = str((document.get("metadata") or {}).get("name") or "")
    missing = [key for key in ("token", "ca.crt") if not values.get(key)]
    if missing:
        raise ValidationError(
            _("The Secret %(name)s has no %(keys)s yet: the token controller fills it; read it again."),
            params={"name": name, "keys": ", ".join(missing)},
        )
    if "-----BEGIN CERTIFICATE-----" not in values["ca.crt"]:
        raise ValidationError(_("The Secret %(name)s's ca.crt is not a PEM certificate."), params={"name": name})
    return ServiceAccountToken(token=values["token"].strip(), ca_pem=values["ca.crt"])


def kubeconfig_build(*, cluster_name: str, server: str, credentials: ServiceAccountToken) -> str:
    """A kubeconfig with one context ``cluster_name``: ``server`` verified by the CA, the token as user."""
    if not server.startswith(("https://", "http://")):
        raise ValidationError(_("The API server URL must start with https://, e.g. https://10.0.0.1:6443."))
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {
                    "server": server.rstrip("/"),
                    "certificate-authority-data": base64.b64encode(credentials.ca_pem.encode()).decode(),
                },
            }
        ],
        "users": [{"name": f"kubedoor-{cluster_name}", "user": {"token": credentials.token}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": f"kubedoor-{cluster_name}"}}],
        "current-context": cluster_name,
    }
    return yaml.safe_dump(document, sort_keys=False)


@dataclass(frozen=True)
class ConnectionReport:
    """What the connection check found; ``missing`` names each refused permission."""

    cluster: str
    state: str
    version: str = ""
    allowed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "state": self.state,
            "version": self.version,
            "allowed": list(self.allowed),
            "missing": list(self.missing),
            "error": self.error,
        }


def cluster_connection_check(*, cluster: Cluster) -> ConnectionReport:
    """Reach the API server and review each permission the door uses; store and return the result.

    Kubernetes is called outside any transaction; the result is written in one UPDATE afterwards.
    """
    allowed: list[str] = []
    missing: list[str] = []
    try:
        version = k8s.server_version_get(cluster=cluster)
        for permission in RBAC_REQUIREMENTS:
            name = webhook_configuration_name(cluster.name) if permission.named else ""
            label = permission.label(name)
            (allowed if k8s.access_review(cluster=cluster, permission=permission, name=name) else missing).append(label)
    except k8s.K8sError as exc:
        report = ConnectionReport(cluster=cluster.name, state=ConnectionState.FAILED, error=exc.message)
        _store(cluster, report)
        return report
    state = ConnectionState.INCOMPLETE if missing else ConnectionState.OK
    report = ConnectionReport(
        cluster=cluster.name,
        state=state,
        version=version.git_version,
        allowed=tuple(allowed),
        missing=tuple(missing),
    )
    _store(cluster, report, succeeded=True)
    logger.info("cluster %s: connection %s, %d permission(s) missing", cluster.name, state, len(missing))
    return report


def _store(cluster: Cluster, report: ConnectionReport, *, succeeded: bool = False) -> None:
    now = timezone.now()
    detail = report.error or (_("Missing: %(names)s") % {"names": "; ".join(report.missing)} if report.missing else "")
    fields: dict[str, Any] = {
        "connection_state": report.state,
        "connection_detail": detail,
        "connection_checked_at": now,
    }
    if succeeded:
        fields.update(kubernetes_version=report.version, last_success_at=now)
    Cluster.objects.filter(pk=cluster.pk).update(**fields)
    for key, value in fields.items():
        setattr(cluster, key, value)


def cluster_contact_record(*, cluster: Cluster) -> None:
    """Stamp a successful Kubernetes call on ``cluster``; at most one UPDATE per minute and cluster."""
    now = timezone.now()
    if cluster.last_success_at is not None and now - cluster.last_success_at < CONTACT_STAMP_EVERY:
        return
    Cluster.objects.filter(pk=cluster.pk).exclude(last_success_at__gte=now - CONTACT_STAMP_EVERY).update(
        last_success_at=now
    )
    cluster.last_success_at = now


def cluster_connect(
    *, actor: Actor, cluster: Cluster, server: str, secret_text: str
) -> tuple[Cluster, ConnectionReport]:
    """Store the kubeconfig made from the remote Secret (audited, secret redacted), then check it."""
    credentials = secret_parse(secret_text)
    kubeconfig = kubeconfig_build(cluster_name=cluster.name, server=server, credentials=credentials)
    data: Mapping[str, Any] = {"kubeconfig": kubeconfig, "in_cluster": False, "kubeconfig_path": "", "kube_context": ""}
    cluster = cluster_update(actor=actor, cluster=cluster, data=data)
    return cluster, cluster_connection_check(cluster=cluster)
