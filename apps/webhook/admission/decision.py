"""Deciding a review (DESIGN §6.2 steps 1–11) and rendering the answer.

``decide`` maps (review, control row, cluster settings,
whether control data is available) to a :class:`Decision`, and ``response_body`` renders the
AdmissionReview answer. Nothing here touches the database, the network or the clock, so the view,
the preview API and the tests share exactly one rule.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson

from apps.control.containers import controlled_container
from apps.control.namespaces import namespace_is_controlled
from apps.webhook.admission.quantity import cpu_text, mem_text, parse_quantity, same_quantity
from apps.webhook.admission.review import Review

REPLICAS_MODE_ENFORCE = "enforce"
MODE_OFF = "off"
MODE_AUDIT = "audit"
MODE_ENFORCE = "enforce"

# Decisions, also the label values of the admission counter.
ALLOW = "allow"
PATCH = "patch"
DENY = "deny"

ACTION_PATCH = "admission.patch"
ACTION_DENY = "admission.deny"
ACTION_AUDIT = "admission.audit"
ACTION_STORE_ERROR = "admission.store_error"

# The user the HPA controller writes ``deployments/scale`` as (kube-controller-manager with
# --use-service-account-credentials, the default of kubeadm and every managed Kubernetes).
HPA_CONTROLLER_USERNAME = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"


@dataclass(frozen=True)
class ControlRow:
    """What the control table asks of one Deployment, as the snapshot holds it."""

    namespace: str
    name: str
    container: str = ""
    replicas: int | None = None  # effective replicas, None = leave the Deployment's
    replicas_mode: str = REPLICAS_MODE_ENFORCE
    request_cpu_m: int | None = None
    request_mem_mib: int | None = None
    limit_cpu_m: int | None = None
    limit_mem_mib: int | None = None
    hpa_managed: bool = False  # an HPA targets the Deployment: its replicas are the HPA's, never ours


@dataclass(frozen=True)
class ClusterSettings:
    """The cluster fields the decision reads."""

    name: str
    admission_mode: str = MODE_ENFORCE
    namespaces: frozenset[str] = frozenset()
    excluded_namespaces: frozenset[str] = frozenset({"kube-system", "kubedoor"})
    allow_unmanaged: bool = False
    on_store_error: str = "allow"
    # KubeDoor's own identities (settings.KUBEDOOR_SERVICE_ACCOUNT_USERNAMES): their scale writes carry
    # an operator's decision and their restarts carry the table's values already, so they pass unchanged.
    own_usernames: frozenset[str] = frozenset()

    def is_namespace_controlled(self, namespace: str) -> bool:
        return namespace_is_controlled(
            namespace=namespace, namespaces=self.namespaces, excluded=self.excluded_namespaces
        )


@dataclass
class Decision:
    """The answer: allowed or not, the status of a denial, the patch and the warnings.

    ``audit_action`` is set when the decision must be written to the audit trail (patches, denials,
    audit-mode findings, store errors); pass-through allows only count in the metrics.
    """

    allowed: bool = True
    code: int | None = None
    message: str = ""
    reason: str = ""  # a short form of a denial's message, for audit-mode warnings
    patch: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    audit_action: str | None = None
    audit_result: str = "ok"
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        if not self.allowed:
            return DENY
        return PATCH if self.patch else ALLOW


# --- the decision --------------------------------------------------------------------------------


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _show(value: Any) -> str:
    return "unset" if value is None else str(value)


def _unmanaged_message(review: Review, cluster: ClusterSettings) -> str:
    return (
        f"KubeDoor: Deployment {review.namespace}/{review.name} is not in the control table of cluster "
        f"{cluster.name}, so it may not be created, rolled out or scaled. Register it first: add it under "
        f"Microservices in the KubeDoor admin, or POST /api/v1/microservices/ with "
        f'{{"cluster": "{cluster.name}", "namespace": "{review.namespace}", "name": "{review.name}"}}; '
        f"then apply again."
    )


def _store_error(cluster: ClusterSettings, review: Review) -> Decision:
    if cluster.on_store_error == "deny":
        return Decision(
            allowed=False,
            code=503,
            message=(
                "KubeDoor: the control table is unavailable (database unreachable and no snapshot); "
                f"refusing {review.namespace}/{review.name} because on_store_error is deny for cluster "
                f"{cluster.name}. Try again shortly."
            ),
            reason="control table unavailable (on_store_error=deny)",
            audit_action=ACTION_STORE_ERROR,
            audit_result="dry_run" if review.dry_run else "denied",
        )
    return Decision(
        warnings=["control table unavailable; allowed unchanged (on_store_error=allow)"],
        audit_action=ACTION_STORE_ERROR,
        audit_result="dry_run" if review.dry_run else "ok",
    )


def _replicas(obj: Any) -> Any:
    return _dig(obj, "spec", "replicas")


def _controlled_index(containers: list[dict[str, Any]], *, row: ControlRow, deployment: str) -> int | None:
    """The index of the container the row controls (§6.2 step 8), or None when the named one is absent."""
    names = [container["name"] for container in containers]  # parse_review checked each is a string
    name, _written = controlled_container(configured=row.container, deployment=deployment, names=names)
    return None if name is None else names.index(name)


def replicas_controlled(row: ControlRow) -> bool:
    """Whether admission sets the row's replicas: not for ``ignore``, an HPA's Deployment, or no count."""
    return row.replicas_mode == REPLICAS_MODE_ENFORCE and not row.hpa_managed and row.replicas is not None


def _replicas_ops(obj: Any, row: ControlRow, warnings: list[str], before: dict, after: dict) -> list[dict]:
    if not replicas_controlled(row):
        return []
    spec = obj.get("spec") or {}
    current = spec.get("replicas")
    if current == row.replicas:
        return []
    before["replicas"] = current
    after["replicas"] = row.replicas
    warnings.append(f"spec.replicas {_show(current)} -> {row.replicas} (control table)")
    if "spec" not in obj or obj["spec"] is None:
        return [{"op": "add", "path": "/spec", "value": {"replicas": row.replicas}}]
    return [{"op": "replace" if "replicas" in spec else "add", "path": "/spec/replicas", "value": row.replicas}]


# The four values a control row sets, in the order their warnings and patch operations come.
_RESOURCE_KEYS = (("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory"))


def _resource_ops(obj: dict, row: ControlRow, warnings: list[str], before: dict, after: dict) -> list[dict]:
    containers = obj["spec"]["template"]["spec"]["containers"]
    deployment = _dig(obj, "metadata", "name") or ""
    index = _controlled_index(containers, row=row, deployment=deployment)
    if index is None:
        if row.container:
            warnings.append(
                f"container {row.container} of the control table is not in the pod spec; resources left unchanged"
            )
        return []
    container = containers[index]
    cname = container["name"]
    resources = container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    # Four slots in _RESOURCE_KEYS order: what the container has, and what it ends up with.
    current = (requests.get("cpu"), requests.get("memory"), limits.get("cpu"), limits.get("memory"))
    wanted = (
        cpu_text(row.request_cpu_m) if row.request_cpu_m is not None else None,
        mem_text(row.request_mem_mib) if row.request_mem_mib is not None else None,
        cpu_text(row.limit_cpu_m) if row.limit_cpu_m is not None else None,
        mem_text(row.limit_mem_mib) if row.limit_mem_mib is not None else None,
    )
    final = list(current)
    for slot, value in enumerate(wanted):
        if value is None:
            part, key = _RESOURCE_KEYS[slot]
            kept = current[slot]
            warnings.append(
                f"container {cname} {part}.{key} not set in the control table; "
                + (f"keeping {kept}" if kept is not None else "left unset")
            )
        else:
            final[slot] = value
    for request_slot, limit_slot, key in ((0, 2, "cpu"), (1, 3, "memory")):
        request, limit = final[request_slot], final[limit_slot]
        request_q, limit_q = parse_quantity(request), parse_quantity(limit)
        if request_q is not None and limit_q is not None and request_q > limit_q:
            final[request_slot] = limit
            warnings.append(f"container {cname} requests.{key} {request} lowered to the limit {limit}")

    changes = [
        slot
        for slot in range(4)
        if final[slot] is not None and current[slot] != final[slot] and not same_quantity(current[slot], final[slot])
    ]
    if not changes:
        return []
    resources_path = f"/spec/template/spec/containers/{index}/resources"  # nothing in it to escape
    ops: list[dict[str, Any]] = []
    if not isinstance(container.get("resources"), dict):
        ops.append({"op": "add", "path": resources_path, "value": {}})
    made: set[str] = set()
    before_container = before.setdefault("containers", {}).setdefault(cname, {})
    after_container = after.setdefault("containers", {}).setdefault(cname, {})
    for slot in changes:
        part, key = _RESOURCE_KEYS[slot]
        old, new = current[slot], final[slot]
        # part and key are requests/limits and cpu/memory: nothing in them to escape
        if not isinstance(resources.get(part), dict) and part not in made:
            ops.append({"op": "add", "path": f"{resources_path}/{part}", "value": {}})
            made.add(part)
        op = "replace" if old is not None else "add"
        ops.append({"op": op, "path": f"{resources_path}/{part}/{key}", "value": new})
        warnings.append(f"container {cname} {part}.{key} {_show(old)} -> {new}")
        before_container.setdefault(part, {})[key] = old
        after_container.setdefault(part, {})[key] = new
    return ops


def _patched(review: Review, row: ControlRow, *, full: bool) -> Decision:
    warnings: list[str] = []
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    ops = _replicas_ops(review.object, row, warnings, before, after)
    if full and not review.is_scale:
        ops += _resource_ops(review.object, row, warnings, before, after)
    if not ops:
        return Decision(warnings=warnings)
    return Decision(
        patch=ops,
        warnings=warnings,
        audit_action=ACTION_PATCH,
        audit_result="dry_run" if review.dry_run else "ok",
        before=before,
        after=after,
    )


def _enforce(review: Review, row: ControlRow | None, cluster: ClusterSettings, store_available: bool) -> Decision:
    obj, old = review.object, review.old_object
    deleting = bool(_dig(obj, "metadata", "deletionTimestamp"))
    if review.operation == "CREATE":
        template_changed = replicas_changed = True
    else:
        template_changed = not review.is_scale and _dig(obj, "spec", "template") != _dig(old, "spec", "template")
        replicas_changed = old is None or _replicas(obj) != _replicas(old)
    if review.operation == "UPDATE":
        if deleting:
            return Decision()  # deletion and garbage collection never get stuck (§6.2 steps 3, 7)
        if not (template_changed or replicas_changed) and not (review.is_scale and store_available and row):
            # Labels, annotations, finalizers, owner references: nothing KubeDoor controls changes.
            return Decision()
    if not store_available:
        return _store_error(cluster, review)
    if row is None:
        if cluster.allow_unmanaged:
            return Decision(
                warnings=[
                    f"{review.namespace}/{review.name} is not in the control table of cluster "
                    f"{cluster.name}; allowed unchanged (allow_unmanaged)"
                ]
            )
        return Decision(
            allowed=False,
            code=403,
            message=_unmanaged_message(review, cluster),
            reason=f"{review.namespace}/{review.name} is not in the control table",
            audit_action=ACTION_DENY,
            audit_result="dry_run" if review.dry_run else "denied",
        )
    if review.is_scale:
        return _patched(review, row, full=False)
    if review.operation == "CREATE" or template_changed:
        return _patched(review, row, full=True)
    return _patched(review, row, full=False)


def decide(
    *, review: Review, row: ControlRow | None, cluster: ClusterSettings, store_available: bool = True
) -> Decision:
    """DESIGN §6.2: what to answer to ``review`` given the control row (None = not in the table)."""
    if review.operation not in ("CREATE", "UPDATE") or review.resource != "deployments":
        return Decision()
    if review.group not in ("apps", "") or review.kind not in ("Deployment", "Scale"):
        return Decision()
    if review.sub_resource not in ("", "scale"):
        return Decision()
    if not cluster.is_namespace_controlled(review.namespace):
        return Decision()
    if cluster.admission_mode == MODE_OFF:
        return Decision()
    if review.username and review.username in cluster.own_usernames and review.operation == "UPDATE":
        # KubeDoor's own scale (persistent or temporary) and restart (which already carries the
        # table's values read from the database) pass unchanged: a stale snapshot must not undo them.
        return Decision()
    if review.is_scale and review.username == HPA_CONTROLLER_USERNAME:
        # The HPA controller only scales Deployments an HPA targets (matchConditions skip these writes
        # on Kubernetes >= 1.28; this is the same rule for older clusters).
        return Decision()
    decision = _enforce(review, row, cluster, store_available)
    if cluster.admission_mode == MODE_AUDIT:
        return _as_audit(decision, review)
    decision.warnings = [WARNING_PREFIX + warning for warning in decision.warnings]
    return decision


WARNING_PREFIX = "kubedoor: "
AUDIT_PREFIX = "kubedoor audit mode, enforce would apply: "
AUDIT_DENY_PREFIX = "kubedoor audit mode, enforce would deny: "


def _as_audit(decision: Decision, review: Review) -> Decision:
    """§6.2 step 9: allow without a patch; the warnings say what enforce mode would have done."""
    if not decision.allowed:
        warnings = [f"{AUDIT_DENY_PREFIX}{decision.code} {decision.reason or decision.message}"]
    else:
        warnings = [AUDIT_PREFIX + warning for warning in decision.warnings]
    if decision.allowed and not decision.patch:
        decision.warnings = warnings
        return decision
    return Decision(
        warnings=warnings,
        audit_action=ACTION_AUDIT,
        audit_result="dry_run" if review.dry_run else "ok",
        before=decision.before,
        after=decision.after,
        message=decision.message,
    )


# --- the response --------------------------------------------------------------------------------


def response_body(*, review: Review, decision: Decision) -> dict[str, Any]:
    """The AdmissionReview answer in the request's apiVersion, echoing its uid."""
    response: dict[str, Any] = {"uid": review.uid, "allowed": decision.allowed}
    if not decision.allowed:
        response["status"] = {"code": decision.code or 403, "message": decision.message}
    if decision.patch:
        response["patchType"] = "JSONPatch"
        # orjson writes what json.dumps(separators=(",", ":")) does for a patch: ASCII pointers,
        # control-table integers and quantity strings.
        response["patch"] = base64.b64encode(orjson.dumps(decision.patch)).decode()
    if decision.warnings:
        response["warnings"] = decision.warnings
    return {"apiVersion": review.api_version, "kind": "AdmissionReview", "response": response}
