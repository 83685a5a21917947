"""The admission decision of DESIGN §6.2, as pure functions.

``parse_review`` turns a request body into a :class:`Review` (or raises :class:`AdmissionParseError`
for anything that is not an AdmissionReview), ``decide`` maps (review, control row, cluster settings,
whether control data is available) to a :class:`Decision`, and ``response_body`` renders the
AdmissionReview answer. Nothing here touches the database, the network or the clock, so the view,
the preview API and the tests share exactly one rule.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
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


class AdmissionParseError(ValueError):
    """The body is not an AdmissionReview this webhook can answer; the message says why."""


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


@dataclass(frozen=True)
class ClusterSettings:
    """The cluster fields the decision reads."""

    name: str
    admission_mode: str = MODE_ENFORCE
    namespaces: frozenset[str] = frozenset()
    excluded_namespaces: frozenset[str] = frozenset({"kube-system", "kubedoor"})
    allow_unmanaged: bool = False
    on_store_error: str = "allow"

    def is_namespace_controlled(self, namespace: str) -> bool:
        if namespace in self.excluded_namespaces:
            return False
        return not self.namespaces or namespace in self.namespaces


@dataclass(frozen=True)
class Review:
    """The parts of an AdmissionReview request the decision needs."""

    api_version: str
    uid: str
    kind: str
    group: str
    resource: str
    sub_resource: str
    operation: str
    namespace: str
    name: str
    object: Any
    old_object: Any
    dry_run: bool
    username: str

    @property
    def is_scale(self) -> bool:
        return self.kind == "Scale" or self.sub_resource == "scale"


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


# --- parsing -------------------------------------------------------------------------------------


def _expect(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind):
        raise AdmissionParseError(f"{where} must be {_type_name(kind)}")
    return value


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {dict: "an object", str: "a string", list: "a list", bool: "a boolean", int: "a number"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds if k is not type(None)) + (
        " or null" if type(None) in kinds else ""
    )


_QUANTITY_TYPES = (str, int, float)


def _check_pod_spec(spec: Any, where: str) -> None:
    _expect(spec, dict, where)
    for key in ("containers", "initContainers"):
        containers = spec.get(key)
        if containers is None and key == "initContainers":
            continue
        _expect(containers, list, f"{where}.{key}")
        for index, container in enumerate(containers):
            at = f"{where}.{key}[{index}]"
            _expect(container, dict, at)
            _expect(container.get("name"), str, f"{at}.name")
            resources = container.get("resources")
            if resources is None:
                continue
            _expect(resources, dict, f"{at}.resources")
            for part in ("requests", "limits"):
                values = resources.get(part)
                if values is None:
                    continue
                _expect(values, dict, f"{at}.resources.{part}")
                for name, value in values.items():
                    _expect(value, _QUANTITY_TYPES, f"{at}.resources.{part}.{name}")


def _check_object(obj: Any, *, kind: str, where: str) -> None:
    _expect(obj, dict, where)
    _expect(obj.get("metadata", {}), dict, f"{where}.metadata")
    spec = _expect(obj.get("spec", {}), dict, f"{where}.spec")
    replicas = spec.get("replicas")
    if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int)):
        raise AdmissionParseError(f"{where}.spec.replicas must be an integer")
    if kind == "Deployment":
        template = _expect(spec.get("template"), dict, f"{where}.spec.template")
        _expect(template.get("metadata", {}), dict, f"{where}.spec.template.metadata")
        _check_pod_spec(template.get("spec"), f"{where}.spec.template.spec")


def parse_review(body: bytes | str | Mapping[str, Any]) -> Review:
    """Parse and check an AdmissionReview; raise :class:`AdmissionParseError` with a readable reason."""
    if isinstance(body, Mapping):
        document: Any = body
    else:
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise AdmissionParseError(f"the body is not JSON: {exc}") from None
        except RecursionError:
            raise AdmissionParseError("the body is not JSON a webhook accepts: nested too deeply") from None
    _expect(document, dict, "the body")
    api_version = document.get("apiVersion")
    if document.get("kind") != "AdmissionReview" or api_version not in API_VERSIONS:
        raise AdmissionParseError(
            "the body is not an AdmissionReview: expected kind AdmissionReview and apiVersion "
            + " or ".join(API_VERSIONS)
        )
    request = _expect(document.get("request"), dict, "request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise AdmissionParseError("request.uid must be a non-empty string")
    kind_ref = _expect(request.get("kind"), dict, "request.kind")
    kind = _expect(kind_ref.get("kind"), str, "request.kind.kind")
    resource_ref = _expect(request.get("resource", {}), dict, "request.resource")
    resource = _expect(resource_ref.get("resource", ""), str, "request.resource.resource")
    group = _expect(resource_ref.get("group", ""), str, "request.resource.group")
    sub_resource = _expect(request.get("subResource") or "", str, "request.subResource")
    operation = _expect(request.get("operation"), str, "request.operation")
    namespace = _expect(request.get("namespace") or "", str, "request.namespace")
    name = _expect(request.get("name") or "", str, "request.name")
    dry_run = _expect(request.get("dryRun") or False, bool, "request.dryRun")
    user_info = _expect(request.get("userInfo") or {}, dict, "request.userInfo")
    username = user_info.get("username") if isinstance(user_info.get("username"), str) else ""
    obj = request.get("object")
    old = request.get("oldObject")
    if group in ("apps", "") and resource == "deployments" and operation in ("CREATE", "UPDATE"):
        checked_kind = "Scale" if (kind == "Scale" or sub_resource == "scale") else kind
        if checked_kind in ("Deployment", "Scale"):
            _check_object(obj, kind=checked_kind, where="request.object")
            if old is not None:
                _check_object(old, kind=checked_kind, where="request.oldObject")
            metadata = obj.get("metadata", {})
            name = name or (metadata.get("name") if isinstance(metadata.get("name"), str) else "")
            namespace = namespace or (metadata.get("namespace") if isinstance(metadata.get("namespace"), str) else "")
    return Review(
        api_version=api_version,
        uid=uid,
        kind=kind,
        group=group,
        resource=resource,
        sub_resource=sub_resource,
        operation=operation,
        namespace=namespace,
        name=name,
        object=obj,
        old_object=old,
        dry_run=dry_run,
        username=username,
    )


# --- quantities and JSON pointers ----------------------------------------------------------------

_SUFFIXES = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity ("250m", "1.5", "512Mi", "1e3") as a Decimal; None when unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    return _parse_quantity_text(value)


@functools.lru_cache(maxsize=4096)
def _parse_quantity_text(value: str) -> Decimal | None:
    text = value.strip()
    for suffix in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E"):
        if text.endswith(suffix):
            number, multiplier = text[: -len(suffix)], _SUFFIXES[suffix]
            break
    else:
        number, multiplier = text, _SUFFIXES[""]
    try:
        parsed = Decimal(number)
    except InvalidOperation:
        return None
    if not parsed.is_finite():
        return None
    return parsed * multiplier


def _same_quantity(a: Any, b: Any) -> bool:
    """ "0.25" and "250m" are the same CPU; rewriting one into the other would only churn rollouts."""
    qa, qb = parse_quantity(a), parse_quantity(b)
    return qa is not None and qa == qb


def pointer(*segments: str | int) -> str:
    """An RFC 6901 JSON pointer: "~" becomes "~0" and "/" becomes "~1" in every segment."""
    return "".join("/" + str(segment).replace("~", "~0").replace("/", "~1") for segment in segments)


def cpu_text(millicores: int) -> str:
    return f"{millicores}m"


def mem_text(mebibytes: int) -> str:
    return f"{mebibytes}Mi"


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


def controlled_container(containers: list[dict[str, Any]], *, row: ControlRow, deployment: str) -> int | None:
    """The index of the container the row controls (§6.2 step 8), or None when the named one is absent."""
    if row.container:
        for index, container in enumerate(containers):
            if container.get("name") == row.container:
                return index
        return None
    for index, container in enumerate(containers):
        if container.get("name") == deployment:
            return index
    return 0 if containers else None


def _replicas_ops(obj: Any, row: ControlRow, warnings: list[str], before: dict, after: dict) -> list[dict]:
    if row.replicas_mode != REPLICAS_MODE_ENFORCE or row.replicas is None:
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


def _resource_ops(obj: dict, row: ControlRow, warnings: list[str], before: dict, after: dict) -> list[dict]:
    containers = obj["spec"]["template"]["spec"]["containers"]
    deployment = _dig(obj, "metadata", "name") or ""
    index = controlled_container(containers, row=row, deployment=deployment)
    if index is None:
        if row.container:
            warnings.append(
                f"container {row.container} of the control table is not in the pod spec; resources left unchanged"
            )
        return []
    container = containers[index]
    cname = container["name"]
    resources = container.get("resources") or {}
    current = {part: dict(resources.get(part) or {}) for part in ("requests", "limits")}
    wanted = {
        ("requests", "cpu"): cpu_text(row.request_cpu_m) if row.request_cpu_m is not None else None,
        ("requests", "memory"): mem_text(row.request_mem_mib) if row.request_mem_mib is not None else None,
        ("limits", "cpu"): cpu_text(row.limit_cpu_m) if row.limit_cpu_m is not None else None,
        ("limits", "memory"): mem_text(row.limit_mem_mib) if row.limit_mem_mib is not None else None,
    }
    final = {part: dict(values) for part, values in current.items()}
    for (part, key), value in wanted.items():
        if value is None:
            kept = current[part].get(key)
            warnings.append(
                f"container {cname} {part}.{key} not set in the control table; "
                + (f"keeping {kept}" if kept is not None else "left unset")
            )
        else:
            final[part][key] = value
    for key in ("cpu", "memory"):
        request, limit = final["requests"].get(key), final["limits"].get(key)
        request_q, limit_q = parse_quantity(request), parse_quantity(limit)
        if request_q is not None and limit_q is not None and request_q > limit_q:
            final["requests"][key] = limit
            warnings.append(f"container {cname} requests.{key} {request} lowered to the limit {limit}")

    base = ("spec", "template", "spec", "containers", index)
    ops: list[dict[str, Any]] = []
    changes: list[tuple[str, str, Any, Any]] = []
    for part in ("requests", "limits"):
        for key in ("cpu", "memory"):
            old, new = current[part].get(key), final[part].get(key)
            if new is not None and old != new and not _same_quantity(old, new):
                changes.append((part, key, old, new))
    if not changes:
        return []
    if not isinstance(container.get("resources"), dict):
        ops.append({"op": "add", "path": pointer(*base, "resources"), "value": {}})
    made: set[str] = set()
    for part, key, old, new in changes:
        if not isinstance(resources.get(part), dict) and part not in made:
            ops.append({"op": "add", "path": pointer(*base, "resources", part), "value": {}})
            made.add(part)
        op = "replace" if old is not None else "add"
        ops.append({"op": op, "path": pointer(*base, "resources", part, key), "value": new})
        warnings.append(f"container {cname} {part}.{key} {_show(old)} -> {new}")
        before.setdefault("containers", {}).setdefault(cname, {}).setdefault(part, {})[key] = old
        after.setdefault("containers", {}).setdefault(cname, {}).setdefault(part, {})[key] = new
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
        response["patch"] = base64.b64encode(json.dumps(decision.patch, separators=(",", ":")).encode()).decode()
    if decision.warnings:
        response["warnings"] = decision.warnings
    return {"apiVersion": review.api_version, "kind": "AdmissionReview", "response": response}


def fallback_body(*, document: Any, allowed: bool, code: int, message: str) -> dict[str, Any] | None:
    """An answer for a review whose decision failed unexpectedly; None when no uid can be echoed."""
    if not isinstance(document, dict):
        return None
    request = document.get("request")
    uid = request.get("uid") if isinstance(request, dict) else None
    api_version = document.get("apiVersion")
    if not isinstance(uid, str) or not uid or api_version not in API_VERSIONS:
        return None
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if allowed:
        response["warnings"] = [message]
    else:
        response["status"] = {"code": code, "message": message}
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}
