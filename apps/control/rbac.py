"""What KubeDoor may do in a Kubernetes cluster: one declaration, pure (no Kubernetes import).

``RBAC_REQUIREMENTS`` lists every (apiGroup, resource, verb) the Kubernetes door (apps/control/k8s.py)
calls. deploy/base/rbac.yaml's ClusterRole, the RBAC test (tests/deploy/test_rbac.py, which also
derives the same list from the door's source) and the onboarding bundle of a remote cluster
(apps/control/onboarding.py) are all built from or held to it, so a new call cannot reach one of
them without the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WEBHOOK_CONFIGURATION_PREFIX = "kubedoor-"


def webhook_configuration_name(cluster_name: str) -> str:
    """The MutatingWebhookConfiguration KubeDoor registers for the KubeDoor cluster ``cluster_name``."""
    return f"{WEBHOOK_CONFIGURATION_PREFIX}{cluster_name}"


@dataclass(frozen=True)
class Permission:
    """One verb on one resource; ``named`` = limited to KubeDoor's own objects named ``kubedoor-<cluster>``."""

    group: str
    resource: str  # "deployments" or "deployments/scale"
    verb: str
    named: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.resource, self.verb)

    def label(self, name: str = "") -> str:
        """As ``kubectl auth can-i`` spells it: ``patch deployments.apps/scale``, ``list namespaces``."""
        base, _, sub = self.resource.partition("/")
        text = f"{self.verb} {base}{'.' + self.group if self.group else ''}{'/' + sub if sub else ''}"
        return f"{text} {name}" if name else text


# RBAC `resourceNames` cannot narrow `create` (the object has no name yet) nor `list`/`watch`; so
# `create` of webhook configurations is unnamed while get/update/delete name KubeDoor's own.
RBAC_REQUIREMENTS: tuple[Permission, ...] = (
    Permission("apps", "deployments", "get"),
    Permission("apps", "deployments", "list"),
    Permission("apps", "deployments", "patch"),
    Permission("apps", "deployments/scale", "patch"),
    Permission("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "create"),
    Permission("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "get", named=True),
    Permission("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "update", named=True),
    Permission("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "delete", named=True),
    Permission("autoscaling", "horizontalpodautoscalers", "list"),
    Permission("", "namespaces", "list"),
    # The admission engine "policy": KubeDoor's admission policies and bindings, named like the webhook
    # configuration, and their parameters, one ConfigMap kubedoor-<cluster> per controlled namespace.
    *(
        Permission("admissionregistration.k8s.io", resource, verb, named=verb != "create")
        for resource in (
            "mutatingadmissionpolicies",
            "mutatingadmissionpolicybindings",
            "validatingadmissionpolicies",
            "validatingadmissionpolicybindings",
        )
        for verb in ("create", "get", "update", "delete")
    ),
    *(Permission("", "configmaps", verb, named=verb != "create") for verb in ("create", "get", "update", "delete")),
    # In-place resize (Kubernetes 1.35+): the pods of a Deployment and their resize subresource.
    Permission("", "pods", "list"),
    Permission("", "pods/resize", "patch"),
)


def cluster_role_rules(*, webhook_names: Sequence[str]) -> list[dict[str, Any]]:
    """The ClusterRole's rules: one rule per (group, resource, named), verbs in declaration order.

    ``webhook_names`` are the configurations the named verbs are limited to (``kubedoor-<cluster>``
    for each KubeDoor cluster registered in this Kubernetes cluster).
    """
    if not webhook_names and any(p.named for p in RBAC_REQUIREMENTS):
        raise ValueError("the role needs at least one webhook configuration name")
    rules: dict[tuple[str, str, bool], dict[str, Any]] = {}
    for permission in RBAC_REQUIREMENTS:
        key = (permission.group, permission.resource, permission.named)
        rule = rules.get(key)
        if rule is None:
            rule = {"apiGroups": [permission.group], "resources": [permission.resource], "verbs": []}
            if permission.named:
                rule["resourceNames"] = list(webhook_names)
            rules[key] = rule
        rule["verbs"].append(permission.verb)
    return list(rules.values())
