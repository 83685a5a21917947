"""The webhook-less engine in a cluster (Kubernetes 1.34+): policies, bindings and their parameters.

Installs, refreshes and removes, through the Kubernetes door, the objects apps/webhook/policy.py
builds: the MutatingAdmissionPolicy and its binding, the ValidatingAdmissionPolicy and its binding
(when ``allow_unmanaged`` is off), and one parameter ConfigMap ``kubedoor-<cluster>`` per controlled
namespace that has control rows, written in bulk (one write per namespace) after every edit or refresh.
The mode switch (services/admission_mode.py) decides when; nothing here saves the cluster.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from apps.control import k8s
from apps.control.choices import AdmissionEngine, AdmissionMode
from apps.control.models import Cluster
from apps.control.selectors import cluster_list, microservice_list
from apps.webhook import policy
from apps.webhook.admission import ControlRow
from apps.webhook.snapshot import control_row_from

logger = logging.getLogger(__name__)

MUTATING_VERSIONS = ("admissionregistration.k8s.io/v1", "admissionregistration.k8s.io/v1beta1")


def policy_api_version(*, cluster: Cluster) -> str:
    """The MutatingAdmissionPolicy version the cluster serves; ``ValidationError`` below 1.34."""
    try:
        version = k8s.server_version_get(cluster=cluster)
    except k8s.K8sError as exc:
        raise ValidationError(
            _("Cannot read the Kubernetes version of cluster %(cluster)s: %(error)s")
            % {"cluster": cluster.name, "error": exc.message}
        ) from exc
    if not version.at_least(*policy.POLICY_SINCE):
        raise ValidationError(
            _(
                "Cluster %(cluster)s runs Kubernetes %(version)s: the policy engine needs 1.34 or later "
                "(MutatingAdmissionPolicy); keep the webhook engine."
            )
            % {"cluster": cluster.name, "version": version.git_version or f"{version.major}.{version.minor}"}
        )
    return policy.mutating_api_version(version.major, version.minor)


def policy_objects_for(*, cluster: Cluster, api_version: str) -> list[dict[str, Any]]:
    return policy.policy_objects(
        cluster_name=cluster.name,
        api_version=api_version,
        excluded_namespaces=cluster.excluded_namespaces or [],
        namespaces=cluster.namespaces or [],
        own_usernames=list(settings.KUBEDOOR_SERVICE_ACCOUNT_USERNAMES),
        failure_policy=cluster.failure_policy,
        allow_unmanaged=cluster.allow_unmanaged,
    )


def _rows_by_namespace(cluster: Cluster, namespaces: Sequence[str] | None) -> dict[str, list[ControlRow]]:
    rows = microservice_list(cluster=cluster).order_by("namespace", "name")
    if namespaces is not None:
        rows = rows.filter(namespace__in=namespaces)
    grouped: dict[str, list[ControlRow]] = defaultdict(list)
    for service in rows:
        grouped[service.namespace].append(
            control_row_from(service, apply_recommended=cluster.apply_recommended_replicas)
        )
    return grouped


def admission_params_write(*, cluster: Cluster, namespaces: Sequence[str] | None = None) -> dict[str, int]:
    """Write the parameter ConfigMaps of ``namespaces`` (``None``: every namespace of the cluster).

    A controlled namespace with rows gets its ConfigMap (created, replaced, or left when unchanged); one
    without rows, or no longer controlled, loses it. Raises ``K8sError`` on the first failed call.
    """
    grouped = _rows_by_namespace(cluster, namespaces)
    if namespaces is None:
        targets = {ns.name for ns in k8s.namespace_list(cluster=cluster)} | set(grouped)
    else:
        targets = set(namespaces)
    name = policy.object_name(cluster.name)
    counts = {"written": 0, "unchanged": 0, "deleted": 0}
    for namespace in sorted(targets):
        rows = grouped.get(namespace) or []
        if rows and cluster.is_namespace_controlled(namespace):
            body = policy.params_config_map(cluster_name=cluster.name, namespace=namespace, rows=rows)
            changed = k8s.config_map_apply(
                cluster=cluster,
                namespace=namespace,
                name=name,
                data=body["data"],
                labels=body["metadata"]["labels"],
            )
            counts["written" if changed else "unchanged"] += 1
        elif k8s.config_map_delete(cluster=cluster, namespace=namespace, name=name):
            counts["deleted"] += 1
    logger.info("cluster %s: admission policy parameters %s", cluster.name, counts)
    return counts


def admission_policy_install(*, cluster: Cluster, api_version: str) -> list[str]:
    """Write the parameters, then the policies and bindings (the validating pair only without
    ``allow_unmanaged``); returns what was done, for the audit message."""
    counts = admission_params_write(cluster=cluster)
    done = [f"parameters: {counts['written']} written, {counts['unchanged']} unchanged, {counts['deleted']} deleted"]
    for body in policy_objects_for(cluster=cluster, api_version=api_version):
        k8s.admission_policy_apply(cluster=cluster, body=body)
        done.append(f"applied {body['kind']} {body['metadata']['name']}")
    if cluster.allow_unmanaged:
        name = policy.object_name(cluster.name)
        for kind in (k8s.VALIDATING_POLICY_BINDING, k8s.VALIDATING_POLICY):
            if k8s.admission_policy_delete(
                cluster=cluster, api_version=policy.VALIDATING_API_VERSION, kind=kind, name=name
            ):
                done.append(f"deleted {kind} {name}")
    return done


def admission_policy_present(*, cluster: Cluster) -> list[str]:
    """The engine's policy objects the cluster has now, as ``Kind name`` (bindings and policies)."""
    name = policy.object_name(cluster.name)
    found = []
    for api_version, kind in _all_kinds():
        try:
            obj = k8s.admission_policy_get(cluster=cluster, api_version=api_version, kind=kind, name=name)
        except k8s.K8sNotFound:
            obj = None
        if obj is not None and f"{kind} {name}" not in found:
            found.append(f"{kind} {name}")
    return found


def _all_kinds() -> list[tuple[str, str]]:
    kinds = [
        (policy.VALIDATING_API_VERSION, k8s.VALIDATING_POLICY_BINDING),
        (policy.VALIDATING_API_VERSION, k8s.VALIDATING_POLICY),
    ]
    for version in MUTATING_VERSIONS:
        kinds += [(version, k8s.MUTATING_POLICY_BINDING), (version, k8s.MUTATING_POLICY)]
    return kinds


def admission_policy_remove(*, cluster: Cluster) -> list[str]:
    """Delete the bindings, the policies (either served version) and every parameter ConfigMap."""
    name = policy.object_name(cluster.name)
    done: list[str] = []
    for api_version, kind in _all_kinds():
        try:
            deleted = k8s.admission_policy_delete(cluster=cluster, api_version=api_version, kind=kind, name=name)
        except k8s.K8sNotFound:
            deleted = False
        if deleted:
            done.append(f"deleted {kind} {name}")
    deleted_maps = 0
    for namespace in k8s.namespace_list(cluster=cluster):
        if k8s.config_map_delete(cluster=cluster, namespace=namespace.name, name=name):
            deleted_maps += 1
    if deleted_maps:
        done.append(f"deleted {deleted_maps} parameter ConfigMap(s) {name}")
    return done


def admission_policy_sync(*, cluster_id: int, namespaces: Sequence[str] | None = None) -> dict[str, Any]:
    """What the sync task runs after an edit or a refresh: the parameters of ``namespaces`` (``None``:
    all of them, and the policies again, e.g. after ``allow_unmanaged`` or the namespaces changed).

    Does nothing unless the cluster uses the policy engine with admission on. A Kubernetes failure is
    logged and returned, not raised: the next edit, refresh or mode switch writes everything again.
    """
    cluster = cluster_list().filter(pk=cluster_id).first()
    if cluster is None or cluster.admission_engine != AdmissionEngine.POLICY:
        return {"skipped": True}
    if cluster.admission_mode == AdmissionMode.OFF:
        return {"skipped": True}
    try:
        if namespaces is None:
            done = admission_policy_install(cluster=cluster, api_version=policy_api_version(cluster=cluster))
            return {"skipped": False, "done": done}
        return {"skipped": False, **admission_params_write(cluster=cluster, namespaces=list(namespaces))}
    except (k8s.K8sError, ValidationError) as exc:
        message = exc.message if isinstance(exc, k8s.K8sError) else "; ".join(exc.messages)
        logger.warning("cluster %s: admission policy parameters not written: %s", cluster.name, message)
        return {"skipped": False, "error": message}
