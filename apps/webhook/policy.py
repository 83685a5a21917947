"""The webhook-less engine (Kubernetes 1.34+): the admission policies of one cluster, built from settings (pure).

With a cluster's ``admission_engine`` = ``policy``, the API server applies the control table itself:

- a ``MutatingAdmissionPolicy`` ``kubedoor-<cluster>`` whose CEL JSONPatch mutation sets the replicas
  (unless HPA-managed, ``ignore`` or no effective replicas) and the cpu/memory requests and limits of the
  controlled container, as the webhook's decision does (DESIGN §6.2 steps 3–8);
- its ``MutatingAdmissionPolicyBinding``, whose ``paramRef`` reads the values from the ConfigMap
  ``kubedoor-<cluster>`` of the request's namespace (one per namespace, written by
  ``apps.webhook.services.admission_policy``; keys below);
- when ``allow_unmanaged`` is off, a ``ValidatingAdmissionPolicy`` + binding that refuses a Deployment
  missing from those parameters (§6.2 step 3).

The parameters are flat string keys, because CEL in Kubernetes cannot parse JSON: for Deployment ``D``,
``D_managed`` ("1": it has a control row), ``D_replicas``, ``D_container``, ``D_request_cpu``,
``D_request_memory``, ``D_limit_cpu``, ``D_limit_memory`` (absent = not set in the table). Deployment
names cannot contain ``_``, so no two Deployments' keys collide.

What the policy cannot do that the webhook does is listed in README.md ("Webhook-less enforcement").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from apps.webhook.admission.decision import HPA_CONTROLLER_USERNAME, ControlRow, replicas_controlled
from apps.webhook.admission.quantity import cpu_text, mem_text
from apps.webhook.registration import IGNORE_LABEL, NAMESPACE_NAME_LABEL, namespace_selector

POLICY_SINCE = (1, 34)  # MutatingAdmissionPolicy admissionregistration.k8s.io/v1beta1
POLICY_V1_SINCE = (1, 36)  # ... and /v1
GROUP = "admissionregistration.k8s.io"
VALIDATING_API_VERSION = f"{GROUP}/v1"
MANAGED_BY = {"app.kubernetes.io/managed-by": "kubedoor"}
FIELDS = ("managed", "replicas", "container", "request_cpu", "request_memory", "limit_cpu", "limit_memory")


def object_name(cluster_name: str) -> str:
    """Every object of a cluster's engine (policies, bindings, parameter ConfigMaps) is ``kubedoor-<cluster>``."""
    return f"kubedoor-{cluster_name}"


def mutating_api_version(major: int, minor: int) -> str:
    """The MutatingAdmissionPolicy version a server serves: v1 from 1.36, v1beta1 on 1.34 and 1.35."""
    return f"{GROUP}/v1" if (major, minor) >= POLICY_V1_SINCE else f"{GROUP}/v1beta1"


def param_key(name: str, field: str) -> str:
    return f"{name}_{field}"


def params_data(rows: Iterable[ControlRow]) -> dict[str, str]:
    """One namespace's parameters: what the control table asks of each of its Deployments."""
    data: dict[str, str] = {}
    for row in rows:
        data[param_key(row.name, "managed")] = "1"
        if replicas_controlled(row):
            data[param_key(row.name, "replicas")] = str(row.replicas)
        if row.container:
            data[param_key(row.name, "container")] = row.container
        values = {
            "request_cpu": cpu_text(row.request_cpu_m) if row.request_cpu_m is not None else None,
            "request_memory": mem_text(row.request_mem_mib) if row.request_mem_mib is not None else None,
            "limit_cpu": cpu_text(row.limit_cpu_m) if row.limit_cpu_m is not None else None,
            "limit_memory": mem_text(row.limit_mem_mib) if row.limit_mem_mib is not None else None,
        }
        for field, value in values.items():
            if value is not None:
                data[param_key(row.name, field)] = value
    return dict(sorted(data.items()))


def params_config_map(*, cluster_name: str, namespace: str, rows: Iterable[ControlRow]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": object_name(cluster_name),
            "namespace": namespace,
            "labels": {**MANAGED_BY, "kubedoor.io/cluster": cluster_name},
        },
        "data": params_data(rows),
    }


# --- CEL ------------------------------------------------------------------------------------------

IS_SCALE = "has(request.subResource) && request.subResource == 'scale'"
REGISTERED = "has(params.data) && (object.metadata.name + '_managed') in params.data"
CONTAINER = "object.spec.template.spec.containers[variables.index]"
TABLE_FIELDS_CHANGED = (
    f"request.operation == 'CREATE' || ({IS_SCALE}) || "
    "object.spec.template != oldObject.spec.template || "
    "(has(object.spec.replicas) ? object.spec.replicas : -1) != "
    "(has(oldObject.spec.replicas) ? oldObject.spec.replicas : -1)"
)
# For an unregistered Deployment a scale counts only when it changes the replicas (§6.2 step 3).
UNMANAGED_CHANGE = (
    "request.operation == 'CREATE' || "
    f"(!({IS_SCALE}) && object.spec.template != oldObject.spec.template) || "
    "(has(object.spec.replicas) ? object.spec.replicas : -1) != "
    "(has(oldObject.spec.replicas) ? oldObject.spec.replicas : -1)"
)


def _cel_string(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a CEL string literal


def match_conditions(own_usernames: Sequence[str], *, last: dict[str, str]) -> list[dict[str, str]]:
    """What lets a request reach the policy at all, in the webhook's order (§6.2 steps 1, 3, 5, 7)."""
    own = ", ".join(_cel_string(name) for name in sorted(own_usernames))
    return [
        {
            # KubeDoor's own scale and restart writes carry an operator's decision (§6.2 step 5)
            "name": "skip-kubedoor-updates",
            "expression": f"!(request.operation == 'UPDATE' && request.userInfo.username in [{own}])",
        },
        {
            "name": "skip-hpa-controller-scale",
            "expression": f"!(({IS_SCALE}) && request.userInfo.username == '{HPA_CONTROLLER_USERNAME}')",
        },
        {
            # deletion and garbage collection never get stuck (§6.2 step 7)
            "name": "skip-deleting",
            "expression": "request.operation != 'UPDATE' || !has(object.metadata.deletionTimestamp)",
        },
        last,
    ]


def _variables() -> list[dict[str, str]]:
    key = "variables.key + "
    variables = [
        ("key", "object.metadata.name + '_'"),
        ("scale", IS_SCALE),
        (
            "full",
            "!variables.scale && (request.operation == 'CREATE' || object.spec.template != oldObject.spec.template)",
        ),
        ("replicas", f"({key}'replicas') in params.data ? int(params.data[{key}'replicas']) : -1"),
        ("names", "variables.full ? object.spec.template.spec.containers.map(c, c.name) : []"),
        (
            "index",
            f"!variables.full ? -1 : ({key}'container') in params.data ? "
            f"variables.names.indexOf(params.data[{key}'container']) : "
            "variables.names.indexOf(object.metadata.name) >= 0 ? variables.names.indexOf(object.metadata.name) : "
            "size(variables.names) > 0 ? 0 : -1",
        ),
        ("hasResources", f"variables.index >= 0 && has({CONTAINER}.resources)"),
        ("hasRequests", f"variables.hasResources && has({CONTAINER}.resources.requests)"),
        ("hasLimits", f"variables.hasResources && has({CONTAINER}.resources.limits)"),
        ("path", "'/spec/template/spec/containers/' + string(variables.index) + '/resources'"),
    ]
    for part, part_var in (("requests", "hasRequests"), ("limits", "hasLimits")):
        for resource, suffix in (("cpu", "Cpu"), ("memory", "Memory")):
            prefix = "request" if part == "requests" else "limit"
            name = f"{prefix}{suffix}"
            current = f"{CONTAINER}.resources.{part}"
            variables.append(
                (
                    f"current_{name}",
                    f"variables.{part_var} && '{resource}' in {current} ? string({current}['{resource}']) : ''",
                )
            )
            variables.append(
                (
                    f"wanted_{name}",
                    f"({key}'{prefix}_{resource}') in params.data ? params.data[{key}'{prefix}_{resource}'] "
                    f": variables.current_{name}",
                )
            )
    for suffix in ("Cpu", "Memory"):
        request, limit = f"variables.wanted_request{suffix}", f"variables.wanted_limit{suffix}"
        # a request above its limit is lowered to the limit (§6.2 step 8)
        variables.append(
            (
                f"final_request{suffix}",
                f"{request} != '' && {limit} != '' && isQuantity({request}) && isQuantity({limit}) && "
                f"quantity({request}).isGreaterThan(quantity({limit})) ? {limit} : {request}",
            )
        )
        variables.append((f"final_limit{suffix}", limit))
    for name in ("requestCpu", "requestMemory", "limitCpu", "limitMemory"):
        final, current = f"variables.final_{name}", f"variables.current_{name}"
        # "0.25" and "250m" are the same CPU: rewriting one into the other would only churn rollouts
        variables.append(
            (
                f"change_{name}",
                f"variables.index >= 0 && {final} != '' && {final} != {current} && !({current} != '' && "
                f"isQuantity({current}) && isQuantity({final}) && "
                f"quantity({current}).compareTo(quantity({final})) == 0)",
            )
        )
    variables += [
        ("changeRequests", "variables.change_requestCpu || variables.change_requestMemory"),
        ("changeLimits", "variables.change_limitCpu || variables.change_limitMemory"),
    ]
    return [{"name": name, "expression": expression} for name, expression in variables]


def _patch(condition: str, path: str, value: str, op: str = "'add'") -> str:
    # each field in parentheses: a conditional as a field value is read unambiguously by every CEL parser
    return f"({condition} ? [JSONPatch{{op: ({op}), path: ({path}), value: ({value})}}] : [])"


def mutation_expression() -> str:
    """The list of JSONPatch operations; ``add`` on an existing key replaces it (RFC 6902)."""
    parts = [
        _patch(
            "variables.replicas >= 0 && (!has(object.spec.replicas) || object.spec.replicas != variables.replicas)",
            "'/spec/replicas'",
            "variables.replicas",
            op="has(object.spec.replicas) ? 'replace' : 'add'",
        ),
        _patch(
            "(variables.changeRequests || variables.changeLimits) && !variables.hasResources", "variables.path", "{}"
        ),
        _patch("variables.changeRequests && !variables.hasRequests", "variables.path + '/requests'", "{}"),
        _patch("variables.change_requestCpu", "variables.path + '/requests/cpu'", "variables.final_requestCpu"),
        _patch(
            "variables.change_requestMemory", "variables.path + '/requests/memory'", "variables.final_requestMemory"
        ),
        _patch("variables.changeLimits && !variables.hasLimits", "variables.path + '/limits'", "{}"),
        _patch("variables.change_limitCpu", "variables.path + '/limits/cpu'", "variables.final_limitCpu"),
        _patch("variables.change_limitMemory", "variables.path + '/limits/memory'", "variables.final_limitMemory"),
    ]
    return " +\n".join(parts)


def _match_constraints(excluded_namespaces: Sequence[str], namespaces: Sequence[str]) -> dict[str, Any]:
    selector = namespace_selector(excluded_namespaces)
    if namespaces:  # only the listed namespaces are controlled (an exclusion still wins)
        selector["matchExpressions"].append(
            {"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": sorted(set(namespaces))}
        )
    return {
        "namespaceSelector": selector,
        "resourceRules": [
            {
                "apiGroups": ["apps"],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["deployments", "deployments/scale"],
                "scope": "Namespaced",
            }
        ],
        "matchPolicy": "Equivalent",
    }


def _metadata(cluster_name: str) -> dict[str, Any]:
    return {"name": object_name(cluster_name), "labels": {**MANAGED_BY, "kubedoor.io/cluster": cluster_name}}


def mutating_policy(
    *,
    cluster_name: str,
    api_version: str,
    excluded_namespaces: Sequence[str],
    namespaces: Sequence[str],
    own_usernames: Sequence[str],
    failure_policy: str,
) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": "MutatingAdmissionPolicy",
        "metadata": _metadata(cluster_name),
        "spec": {
            "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
            "matchConstraints": _match_constraints(excluded_namespaces, namespaces),
            "matchConditions": match_conditions(
                own_usernames,
                last={
                    "name": "table-fields-changed-and-registered",
                    "expression": f"({TABLE_FIELDS_CHANGED}) && {REGISTERED}",
                },
            ),
            "variables": _variables(),
            "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": mutation_expression()}}],
            "failurePolicy": failure_policy,
            "reinvocationPolicy": "Never",
        },
    }


def mutating_binding(*, cluster_name: str, api_version: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": _metadata(cluster_name),
        "spec": {
            "policyName": object_name(cluster_name),
            # the ConfigMap of the request's own namespace (no namespace given); none there = nothing to apply
            "paramRef": {"name": object_name(cluster_name), "parameterNotFoundAction": "Allow"},
        },
    }


def unmanaged_message(cluster_name: str) -> str:
    """The webhook's denial text (§6.2 step 3) as a CEL ``messageExpression``."""
    namespace, name = "request.namespace", "object.metadata.name"
    segments = [
        _cel_string("KubeDoor: Deployment "),
        namespace,
        _cel_string("/"),
        name,
        _cel_string(
            f" is not in the control table of cluster {cluster_name}, so it may not be created, rolled out or "
            "scaled. Register it first: add it under Microservices in the KubeDoor admin, or POST "
            f'/api/v1/microservices/ with {{"cluster": "{cluster_name}", "namespace": "'
        ),
        namespace,
        _cel_string('", "name": "'),
        name,
        _cel_string('"}; then apply again.'),
    ]
    return " + ".join(segments)


def validating_policy(
    *,
    cluster_name: str,
    excluded_namespaces: Sequence[str],
    namespaces: Sequence[str],
    own_usernames: Sequence[str],
    failure_policy: str,
) -> dict[str, Any]:
    return {
        "apiVersion": VALIDATING_API_VERSION,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": _metadata(cluster_name),
        "spec": {
            "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
            "matchConstraints": _match_constraints(excluded_namespaces, namespaces),
            "matchConditions": match_conditions(
                own_usernames, last={"name": "table-fields-changed", "expression": UNMANAGED_CHANGE}
            ),
            "validations": [
                {"expression": REGISTERED, "messageExpression": unmanaged_message(cluster_name), "reason": "Forbidden"}
            ],
            "failurePolicy": failure_policy,
        },
    }


def validating_binding(*, cluster_name: str) -> dict[str, Any]:
    return {
        "apiVersion": VALIDATING_API_VERSION,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": _metadata(cluster_name),
        "spec": {
            "policyName": object_name(cluster_name),
            # no ConfigMap in the namespace = no Deployment of it is registered: refuse
            "paramRef": {"name": object_name(cluster_name), "parameterNotFoundAction": "Deny"},
            "validationActions": ["Deny"],
        },
    }


def policy_objects(
    *,
    cluster_name: str,
    api_version: str,
    excluded_namespaces: Sequence[str],
    namespaces: Sequence[str],
    own_usernames: Sequence[str],
    failure_policy: str,
    allow_unmanaged: bool,
) -> list[dict[str, Any]]:
    """The objects one cluster's engine needs, each policy before its binding."""
    common: dict[str, Any] = {
        "cluster_name": cluster_name,
        "excluded_namespaces": excluded_namespaces,
        "namespaces": namespaces,
        "own_usernames": own_usernames,
        "failure_policy": failure_policy,
    }
    objects = [
        mutating_policy(api_version=api_version, **common),
        mutating_binding(cluster_name=cluster_name, api_version=api_version),
    ]
    if not allow_unmanaged:
        objects += [validating_policy(**common), validating_binding(cluster_name=cluster_name)]
    return objects


__all__ = [
    "IGNORE_LABEL",
    "POLICY_SINCE",
    "object_name",
    "params_config_map",
    "params_data",
    "policy_objects",
]
