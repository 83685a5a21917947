"""What the webhook would answer for a Deployment (DESIGN §6.4), read from the database, changing nothing."""

from __future__ import annotations

from typing import Any

import jsonpatch
import yaml
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from apps.control.choices import AdmissionMode
from apps.control.containers import controlled_container
from apps.control.models import Cluster, Microservice
from apps.control.selectors import microservice_get
from apps.webhook import admission
from apps.webhook.snapshot import cluster_settings_from, control_row_from


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
        row = control_row_from(
            microservice_get(cluster=cluster.name, namespace=namespace, name=review.name),
            apply_recommended=cluster.apply_recommended_replicas,
        )
    except Microservice.DoesNotExist:
        row = None
    decision = admission.decide(
        review=review, row=row, cluster=cluster_settings_from(cluster, admission_mode=used_mode)
    )
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


RESIZED_KEYS = ("cpu", "memory")


def admission_container_resources(
    *, cluster: Cluster, namespace: str, name: str, containers: list[dict[str, Any]]
) -> tuple[str, dict[str, str], dict[str, str]] | None:
    """The controlled container of Deployment ``namespace/name`` and its cpu/memory requests and limits
    as admission would set them over ``containers`` (e.g. a running pod's), or ``None`` when the row
    names a container the list lacks, or the Deployment is not in the control table.

    The same decision as the webhook's full patch (row values, the container's own where the row has
    none, a request above its limit lowered to it), so an in-place resize and the next deploy agree.
    """
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"spec": {"containers": containers}}},
    }
    preview = admission_preview(cluster=cluster, deployment=deployment, mode="enforce")
    if not preview["managed"]:
        return None
    try:
        row = control_row_from(
            microservice_get(cluster=cluster.name, namespace=namespace, name=name),
            apply_recommended=cluster.apply_recommended_replicas,
        )
    except Microservice.DoesNotExist:
        return None
    names = [str(container.get("name")) for container in containers]
    chosen, _written = controlled_container(configured=row.container, deployment=name, names=names)
    if chosen is None:
        return None
    patched = preview["patched"]["spec"]["template"]["spec"]["containers"][names.index(chosen)]
    resources = patched.get("resources") or {}
    requests = {k: str(v) for k, v in (resources.get("requests") or {}).items() if k in RESIZED_KEYS}
    limits = {k: str(v) for k, v in (resources.get("limits") or {}).items() if k in RESIZED_KEYS}
    return str(patched.get("name", "")), requests, limits
