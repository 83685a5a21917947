"""What the stand-in does to objects, as a kube-apiserver does it: pure functions, no state, no I/O.

Status bodies, label selectors (string and ``LabelSelector`` forms), the three patch types, the
defaults and the validation of ``apps/v1`` Deployments, the ``autoscaling/v1`` Scale of a Deployment,
and resource quantities. Each follows Kubernetes 1.30 closely enough for KubeDoor's tests; where it
stops short the docstring says so.
"""

from __future__ import annotations

import copy
import datetime
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import jsonpatch
import jsonpointer

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "AlreadyExists",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
    503: "ServiceUnavailable",
}

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH, STRATEGIC_MERGE_PATCH)


class ApiError(Exception):
    """A request the API server refuses: ``status`` and the ``Status`` body it answers with."""

    def __init__(self, code: int, message: str, *, reason: str | None = None, details: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.body = status_object(code, message, reason=reason, details=details)
        self.warnings: list[str] = []


def status_object(code: int, message: str, *, reason: str | None = None, details: dict | None = None) -> dict[str, Any]:
    """A ``Status`` failure body as the API server sends it."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": REASONS.get(code, "Unknown") if reason is None else reason,
        "code": code,
    }
    if not body["reason"]:
        del body["reason"]
    if details:
        body["details"] = details
    return body


def not_found(kind: str, name: str, group: str = "apps") -> ApiError:
    plural = f"{kind}.{group}" if group else kind
    return ApiError(404, f'{plural} "{name}" not found', details={"name": name, "group": group, "kind": kind})


def conflict(kind: str, name: str) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {kind} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        reason="Conflict",
        details={"name": name, "kind": kind.split(".")[0]},
    )


def now_stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- label selectors ------------------------------------------------------------------------------

_TERM = re.compile(r"^\s*(!?)\s*([^\s!=<>,()]+)\s*(?:(==|=|!=)\s*([^\s,()]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$")


def _split_terms(selector: str) -> list[str]:
    """Split ``a=b,c in (x,y)`` at the commas outside parentheses."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term for term in terms if term.strip()]


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Whether ``labels`` match a selector in the query-string form: ``k=v``, ``k==v``, ``k!=v``,
    ``k in (a,b)``, ``k notin (a,b)``, ``k`` and ``!k``. An unparsable term matches nothing."""
    for term in _split_terms(selector):
        match = _TERM.match(term)
        if match is None:
            return False
        negated, key, op, value, set_op, values = match.groups()
        if negated:
            if op or set_op or key in labels:
                return False
        elif op in ("=", "=="):
            if labels.get(key) != value:
                return False
        elif op == "!=":
            if labels.get(key) == value:
                return False
        elif set_op:
            members = {v.strip() for v in values.split(",") if v.strip()}
            if set_op == "in" and labels.get(key) not in members:
                return False
            if set_op == "notin" and key in labels and labels[key] in members:
                return False
        elif key not in labels:
            return False
    return True


def label_selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Whether ``labels`` match a ``LabelSelector`` (``matchLabels`` and ``matchExpressions``).

    ``None`` and ``{}`` match everything, as for a webhook's namespaceSelector and objectSelector.
    """
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = set(expression.get("values") or [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def selector_string(selector: dict[str, Any] | None) -> str:
    """A ``LabelSelector`` in the string form the Scale status carries, sorted by key."""
    terms: list[tuple[str, str]] = [(k, f"{k}={v}") for k, v in ((selector or {}).get("matchLabels") or {}).items()]
    for expression in (selector or {}).get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = ",".join(sorted(expression.get("values") or []))
        text = {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key}.get(
            operator, f"!{key}"
        )
        terms.append((key, text))
    return ",".join(text for _, text in sorted(terms))


# --- patches --------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: maps merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# The patchMergeKey of the list fields a Deployment has (strategic merge patch). A list not named here
# is atomic: the patch replaces it, as for args, command, tolerations and envFrom.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "resourceClaims": "name",
}
# Lists of scalars whose strategy is "merge" (a set union), e.g. metadata.finalizers.
MERGED_SCALAR_LISTS = {"finalizers"}


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A strategic merge patch over Deployment-shaped objects (what kubectl patch, set, apply send).

    Lists of objects with a merge key (containers by name, env by name …) merge item by item; other
    lists are replaced. The directives ``$patch: replace|delete``, ``$retainKeys``,
    ``$setElementOrder/<list>`` and ``$deleteFromPrimitiveList/<list>`` are honoured. Merge keys come
    from the field's name rather than from the OpenAPI schema, which is exact for a Deployment.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    body = {k: v for k, v in patch.items() if k != "$patch"}
    if directive == "replace":
        return _strip_directives(body)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    orders = {k.split("/", 1)[1]: v for k, v in body.items() if k.startswith("$setElementOrder/")}
    removals = {k.split("/", 1)[1]: v for k, v in body.items() if k.startswith("$deleteFromPrimitiveList/")}
    retain = body.get("$retainKeys")
    for key, value in body.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in MERGE_KEYS:
            result[key] = _merge_list(result.get(key), value, MERGE_KEYS[key])
        elif isinstance(value, list) and key in MERGED_SCALAR_LISTS:
            current = list(result.get(key) or [])
            result[key] = current + [v for v in value if v not in current]
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    for key, values in removals.items():
        if isinstance(result.get(key), list):
            result[key] = [v for v in result[key] if v not in values]
    for key, order in orders.items():
        if isinstance(result.get(key), list) and key in MERGE_KEYS:
            result[key] = _ordered(result[key], order, MERGE_KEYS[key])
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(current: Any, patch: list[Any], merge_key: str) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [_strip_directives(i) for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    result = [copy.deepcopy(item) for item in (current if isinstance(current, list) else [])]
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            result.append(copy.deepcopy(item))
            continue
        index = next(
            (i for i, old in enumerate(result) if isinstance(old, dict) and old.get(merge_key) == item[merge_key]),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(_strip_directives(item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def _ordered(items: list[Any], order: list[Any], merge_key: str) -> list[Any]:
    keys = [entry.get(merge_key) for entry in order if isinstance(entry, dict)]
    ranked = sorted(
        enumerate(items),
        key=lambda pair: (keys.index(pair[1].get(merge_key)) if pair[1].get(merge_key) in keys else len(keys), pair[0]),
    )
    return [item for _, item in ranked]


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return copy.deepcopy(value)


def apply_patch(current: dict[str, Any], body: Any, content_type: str) -> dict[str, Any]:
    """The object ``current`` with the caller's PATCH body applied, or :class:`ApiError` as the server says.

    A JSON patch goes through the ``jsonpatch`` library; a failing ``test`` operation (or any operation
    that does not apply) is 422, as in kube-apiserver.
    """
    media = content_type.split(";")[0].strip().lower()
    if media == JSON_PATCH:
        if not isinstance(body, list):
            raise ApiError(400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        try:
            patched = jsonpatch.JsonPatch(body).apply(copy.deepcopy(current))
        except jsonpatch.InvalidJsonPatch as exc:
            raise ApiError(400, str(exc)) from exc
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise ApiError(422, str(exc)) from exc
    elif media in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
        if not isinstance(body, dict):
            raise ApiError(400, "the body of the request was in an unknown format - expected a JSON object")
        patched = merge_patch(current, body) if media == MERGE_PATCH else strategic_merge_patch(current, body)
    elif media == APPLY_PATCH:
        raise ApiError(415, "the Kubernetes stand-in does not implement server-side apply")
    else:
        raise ApiError(
            415,
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(PATCH_TYPES),
        )
    if not isinstance(patched, dict):
        raise ApiError(400, "the patch does not leave an object")
    return patched


# --- quantities -----------------------------------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")
_SUFFIX = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def quantity(value: Any) -> Decimal | None:
    """A resource quantity (``250m``, ``1Gi``, ``1e3``, ``2``) as a Decimal; ``None`` when unparsable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _QUANTITY.match(str(value).strip()) if isinstance(value, str) else None
    if match is None:
        return None
    number, exponent, suffix = match.groups()
    try:
        amount = Decimal(number)
        return amount * (Decimal(10) ** int(exponent[1:]) if exponent else _SUFFIX[suffix or ""])
    except (InvalidOperation, ValueError):
        return None


# --- Deployments ----------------------------------------------------------------------------------


def deployment_manifest(
    namespace: str,
    name: str,
    *,
    replicas: int | None = 1,
    containers: list[dict[str, Any]] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment as a person writes it for ``kubectl apply`` (no server-set fields)."""
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": copy.deepcopy(containers or [{"name": name, "image": f"registry.local/{name}:1"}])},
        },
    }
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {"app": name})},
        "spec": spec,
    }


def _image_pull_policy(image: str) -> str:
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _container_defaults(container: dict[str, Any]) -> None:
    container.setdefault("resources", {})
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    if isinstance(container.get("image"), str):
        container.setdefault("imagePullPolicy", _image_pull_policy(container["image"]))
    for port in container.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def deployment_defaults(obj: dict[str, Any]) -> dict[str, Any]:
    """The ``apps/v1`` defaults kube-apiserver fills in on every write (in place; returns ``obj``)."""
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return obj
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                rolling.setdefault("maxUnavailable", "25%")
                rolling.setdefault("maxSurge", "25%")
    template = spec.get("template")
    pod = template.get("spec") if isinstance(template, dict) else None
    if isinstance(pod, dict):
        pod.setdefault("restartPolicy", "Always")
        pod.setdefault("terminationGracePeriodSeconds", 30)
        pod.setdefault("dnsPolicy", "ClusterFirst")
        pod.setdefault("securityContext", {})
        pod.setdefault("schedulerName", "default-scheduler")
        for key in ("initContainers", "containers"):
            for container in pod.get(key) or []:
                if isinstance(container, dict):
                    _container_defaults(container)
    return obj


def _dig(obj: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(obj, dict):
            obj = obj.get(key)
        elif isinstance(obj, list) and isinstance(key, int) and 0 <= key < len(obj):
            obj = obj[key]
        else:
            return None
    return obj


def _go_map(labels: Any) -> str:
    items = ", ".join(f'"{k}":"{v}"' for k, v in sorted((labels or {}).items()))
    return f"map[string]string{{{items}}}"


def deployment_errors(obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[tuple[str, str, str]]:
    """The validation errors of a Deployment as (field, type, detail), in kube-apiserver's words.

    Covers what KubeDoor's writes can get wrong: name, replicas, selector (and its immutability on
    update), template labels, containers, and each container's requests against its limits.
    """
    errors: list[tuple[str, str, str]] = []
    name = _dig(obj, "metadata", "name")
    if not name:
        errors.append(("metadata.name", "Required value", "name or generateName is required"))
    elif not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", name) or len(name) > 253:
        errors.append(
            ("metadata.name", f'Invalid value: "{name}"', "a lowercase RFC 1123 subdomain must consist of lower case "
             "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")
        )  # fmt: skip
    replicas = _dig(obj, "spec", "replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        errors.append(("spec.replicas", f"Invalid value: {replicas!r}", "must be an integer"))
    elif replicas < 0:
        errors.append(("spec.replicas", f"Invalid value: {replicas}", "must be greater than or equal to 0"))
    selector = _dig(obj, "spec", "selector")
    if not isinstance(selector, dict):
        errors.append(("spec.selector", "Required value", ""))
    elif not selector.get("matchLabels") and not selector.get("matchExpressions"):
        errors.append(("spec.selector", "Invalid value: {}", "empty selector is invalid for deployment"))
    else:
        labels = _dig(obj, "spec", "template", "metadata", "labels") or {}
        if not label_selector_matches(selector, labels):
            errors.append(
                ("spec.template.metadata.labels", f"Invalid value: {_go_map(labels)}",
                 "`selector` does not match template `labels`")
            )  # fmt: skip
        if old is not None and selector != _dig(old, "spec", "selector"):
            errors.append(("spec.selector", f"Invalid value: {selector}", "field is immutable"))
    containers = _dig(obj, "spec", "template", "spec", "containers")
    if not isinstance(containers, list) or not containers:
        errors.append(("spec.template.spec.containers", "Required value", ""))
        return errors
    seen: set[str] = set()
    for index, container in enumerate(containers):
        at = f"spec.template.spec.containers[{index}]"
        if not isinstance(container, dict):
            errors.append((at, "Invalid value", "must be an object"))
            continue
        cname = container.get("name")
        if not cname:
            errors.append((f"{at}.name", "Required value", ""))
        elif cname in seen:
            errors.append((f"{at}.name", f'Duplicate value: "{cname}"', ""))
        seen.add(cname or "")
        if not container.get("image"):
            errors.append((f"{at}.image", "Required value", ""))
        errors.extend(_resource_errors(container.get("resources"), f"{at}.resources"))
    return errors


def _resource_errors(resources: Any, at: str) -> list[tuple[str, str, str]]:
    if resources is None:
        return []
    if not isinstance(resources, dict):
        return [(at, "Invalid value", "must be an object")]
    errors: list[tuple[str, str, str]] = []
    parsed: dict[str, dict[str, Decimal]] = {"requests": {}, "limits": {}}
    for part in ("requests", "limits"):
        for key, value in (resources.get(part) or {}).items():
            amount = quantity(value)
            if amount is None:
                errors.append((f"{at}.{part}[{key}]", f'Invalid value: "{value}"', "quantities must match the "
                               "regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"))  # fmt: skip
            else:
                parsed[part][key] = amount
    for key, request in parsed["requests"].items():
        limit = parsed["limits"].get(key)
        if limit is not None and request > limit:
            shown = resources["requests"][key]
            errors.append(
                (f"{at}.requests", f'Invalid value: "{shown}"',
                 f"must be less than or equal to {key} limit of {resources['limits'][key]}")
            )  # fmt: skip
    return errors


def invalid(kind: str, group: str, name: str, errors: list[tuple[str, str, str]]) -> ApiError:
    """The 422 ``Status`` kube-apiserver answers for validation errors."""
    texts = [f"{field}: {kind_}" + (f": {detail}" if detail else "") for field, kind_, detail in errors]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    causes = [
        {
            "reason": "FieldValueRequired" if kind_ == "Required value" else "FieldValueInvalid",
            "message": text.split(": ", 1)[1],
            "field": field,
        }
        for (field, kind_, _), text in zip(errors, texts, strict=True)
    ]
    return ApiError(
        422,
        f'{kind}.{group} "{name}" is invalid: {summary}' if group else f'{kind} "{name}" is invalid: {summary}',
        details={"name": name, "group": group, "kind": kind, "causes": causes},
    )


def deployment_status(obj: dict[str, Any]) -> dict[str, Any]:
    """The status of a Deployment whose controller has caught up (zero counts are omitted, as in Go)."""
    replicas = _dig(obj, "spec", "replicas") or 0
    status: dict[str, Any] = {"observedGeneration": _dig(obj, "metadata", "generation") or 1}
    if replicas:
        for key in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"):
            status[key] = replicas
    return status


def scale_of(deployment: dict[str, Any]) -> dict[str, Any]:
    """The ``autoscaling/v1`` Scale of a Deployment (``spec.replicas`` 0 is omitted, as in Go)."""
    meta = deployment["metadata"]
    metadata = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta}
    replicas = _dig(deployment, "spec", "replicas") or 0
    status: dict[str, Any] = {"replicas": _dig(deployment, "status", "replicas") or 0}
    selector = selector_string(_dig(deployment, "spec", "selector"))
    if selector:
        status["selector"] = selector
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": replicas} if replicas else {},
        "status": status,
    }
