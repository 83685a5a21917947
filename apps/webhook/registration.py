"""The MutatingWebhookConfiguration ``kubedoor-<cluster>`` of DESIGN §6.1, built from settings (pure)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from apps.control.rbac import webhook_configuration_name
from apps.webhook.admission.decision import HPA_CONTROLLER_USERNAME

CA_INJECT_ANNOTATION = "cert-manager.io/inject-ca-from"
IGNORE_LABEL = "kubedoor-ignore"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


class RegistrationConfigError(ValueError):
    """The webhook settings do not allow a registration; the message names the setting to fix."""


@dataclass(frozen=True)
class WebhookEndpoint:
    """Where and how the API server reaches the webhook (from KUBEDOOR_WEBHOOK_* settings)."""

    service: str = ""  # "namespace/name"
    url: str = ""  # a base URL; "/mutate/<cluster>" is appended
    ca_bundle_pem: bytes = b""
    ca_inject_from: str = ""  # cert-manager Certificate "namespace/name"
    service_port: int = 443


# The HPA controller's scale writes never reach the webhook where the API server evaluates
# matchConditions (beta and on by default since 1.28, GA in 1.30); older servers reject the field,
# and there the decision lets those writes through itself.
MATCH_CONDITIONS_SINCE = (1, 28)
SKIP_HPA_CONTROLLER = {
    "name": "skip-hpa-controller-scale",
    "expression": (
        f"!(has(request.subResource) && request.subResource == 'scale' && "
        f"request.userInfo.username == '{HPA_CONTROLLER_USERNAME}')"
    ),
}


def configuration_name(cluster_name: str) -> str:
    return webhook_configuration_name(cluster_name)  # the name the ClusterRole's resourceNames hold


def _client_config(cluster_name: str, endpoint: WebhookEndpoint, existing_ca: str) -> dict[str, Any]:
    path = f"/mutate/{cluster_name}"
    config: dict[str, Any]
    if endpoint.url:
        if not endpoint.url.startswith("https://"):
            raise RegistrationConfigError("KUBEDOOR_WEBHOOK_URL must be an https:// URL.")
        config = {"url": endpoint.url.rstrip("/") + path}
    else:
        namespace, _, name = endpoint.service.partition("/")
        if not namespace or not name:
            raise RegistrationConfigError(
                "KUBEDOOR_WEBHOOK_SERVICE must be 'namespace/name' (or set KUBEDOOR_WEBHOOK_URL)."
            )
        config = {"service": {"namespace": namespace, "name": name, "path": path, "port": endpoint.service_port}}
    if endpoint.ca_bundle_pem:
        config["caBundle"] = base64.b64encode(endpoint.ca_bundle_pem).decode()
    elif endpoint.ca_inject_from and existing_ca:
        config["caBundle"] = existing_ca  # keep what cert-manager injected; it rewrites it when it rotates
    elif not endpoint.ca_inject_from and not endpoint.url:
        raise RegistrationConfigError(
            "The API server cannot verify the webhook's certificate: set KUBEDOOR_WEBHOOK_CA_BUNDLE (a PEM file) "
            "or KUBEDOOR_WEBHOOK_CA_INJECT_FROM (cert-manager Certificate namespace/name)."
        )
    return config


def namespace_selector(excluded_namespaces: Sequence[str]) -> dict[str, Any]:
    """Skip the cluster's excluded namespaces and any namespace labelled ``kubedoor-ignore``."""
    expressions: list[dict[str, Any]] = []
    if excluded_namespaces:
        expressions.append(
            {"key": NAMESPACE_NAME_LABEL, "operator": "NotIn", "values": sorted(set(excluded_namespaces))}
        )
    expressions.append({"key": IGNORE_LABEL, "operator": "DoesNotExist"})
    return {"matchExpressions": expressions}


def configuration_build(
    *,
    cluster_name: str,
    excluded_namespaces: Sequence[str],
    failure_policy: str,
    timeout_seconds: int,
    endpoint: WebhookEndpoint,
    existing: dict[str, Any] | None = None,
    match_conditions: bool = False,
) -> dict[str, Any]:
    """The MutatingWebhookConfiguration for one cluster, exactly as sent to the API server.

    ``match_conditions`` (the API server is 1.28 or newer) adds the condition that keeps the HPA
    controller's scale writes away from the webhook.
    """
    existing_ca = ""
    if existing:
        for existing_webhook in existing.get("webhooks") or []:
            existing_ca = ((existing_webhook or {}).get("clientConfig") or {}).get("caBundle") or existing_ca
    metadata: dict[str, Any] = {
        "name": configuration_name(cluster_name),
        "labels": {"app.kubernetes.io/managed-by": "kubedoor", "kubedoor.io/cluster": cluster_name},
    }
    if endpoint.ca_inject_from and not endpoint.ca_bundle_pem:
        metadata["annotations"] = {CA_INJECT_ANNOTATION: endpoint.ca_inject_from}
    webhook: dict[str, Any] = {
        "name": f"{cluster_name}.deployments.kubedoor.io",
        "admissionReviewVersions": ["v1", "v1beta1"],
        "clientConfig": _client_config(cluster_name, endpoint, existing_ca),
        "rules": [
            {
                "apiGroups": ["apps"],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["deployments", "deployments/scale"],
                "scope": "Namespaced",
            }
        ],
        "namespaceSelector": namespace_selector(excluded_namespaces),
        "failurePolicy": failure_policy,
        "timeoutSeconds": timeout_seconds,
        "sideEffects": "None",
        "reinvocationPolicy": "Never",
    }
    if match_conditions:
        webhook["matchConditions"] = [dict(SKIP_HPA_CONTROLLER)]
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": metadata,
        "webhooks": [webhook],
    }


def configuration_summary(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the cluster actually has registered, in the fields an operator checks."""
    if obj is None:
        return None
    webhooks = obj.get("webhooks") or [{}]
    webhook = webhooks[0] or {}
    client = webhook.get("clientConfig") or {}
    service = client.get("service") or {}
    return {
        "name": (obj.get("metadata") or {}).get("name"),
        "resource_version": (obj.get("metadata") or {}).get("resourceVersion"),
        "service": f"{service.get('namespace')}/{service.get('name')}" if service else None,
        "path": service.get("path"),
        "url": client.get("url"),
        "ca_bundle": bool(client.get("caBundle")),
        "failure_policy": webhook.get("failurePolicy"),
        "timeout_seconds": webhook.get("timeoutSeconds"),
        "namespace_selector": webhook.get("namespaceSelector"),
        "rules": webhook.get("rules"),
    }
