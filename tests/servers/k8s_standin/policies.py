"""Admission policies as an API server evaluates them (the subset KubeDoor's engine uses), with cel-python.

``mutate`` runs a ``MutatingAdmissionPolicy`` with its binding on one admission request and returns the
patched object (JSONPatch mutations); ``validate`` runs a ``ValidatingAdmissionPolicy`` with its binding
and returns whether it denies, and the message. Both follow the Kubernetes order: match constraints
(resource rules and namespace selector), the binding's ``paramRef`` (the named object in the request's
namespace; ``parameterNotFoundAction``), ``matchConditions`` (any false skips the policy), ``variables``
(in order, each seeing the ones before), then the mutations or validations. A CEL error follows the
policy's ``failurePolicy`` (``Fail`` refuses the request, ``Ignore`` skips the policy).

The Kubernetes CEL library functions the engine uses are provided here: the list function ``indexOf``,
and the quantity functions ``quantity``, ``isQuantity``, ``isGreaterThan``, ``compareTo``; ``JSONPatch{…}``
builds a patch operation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import celpy
import jsonpatch
from celpy import celtypes

from tests.servers.k8s_standin import objects


class PolicyFailure(Exception):
    """The policy failed and its failurePolicy is Fail: the API server refuses the request."""


class JSONPatch(celtypes.MapType):
    """``JSONPatch{op: …, path: …, value: …}`` in a mutation expression."""


class Quantity:
    def __init__(self, text: str) -> None:
        amount = objects.quantity(text)
        if amount is None:
            raise ValueError(f"invalid quantity {text!r}")
        self.amount = amount


def _index_of(items: Any, item: Any) -> celtypes.IntType:
    for index, candidate in enumerate(items):
        if candidate == item:
            return celtypes.IntType(index)
    return celtypes.IntType(-1)


def _quantity(text: Any) -> Quantity:
    return Quantity(str(text))


def _is_quantity(text: Any) -> celtypes.BoolType:
    return celtypes.BoolType(objects.quantity(str(text)) is not None)


def _is_greater_than(a: Quantity, b: Quantity) -> celtypes.BoolType:
    return celtypes.BoolType(a.amount > b.amount)


def _compare_to(a: Quantity, b: Quantity) -> celtypes.IntType:
    return celtypes.IntType((a.amount > b.amount) - (a.amount < b.amount))


FUNCTIONS = {
    "indexOf": _index_of,
    "quantity": _quantity,
    "isQuantity": _is_quantity,
    "isGreaterThan": _is_greater_than,
    "compareTo": _compare_to,
}
_ENV = celpy.Environment(annotations={"JSONPatch": JSONPatch})
_PROGRAMS: dict[str, Any] = {}


def _program(expression: str) -> Any:
    program = _PROGRAMS.get(expression)
    if program is None:
        program = _ENV.program(_ENV.compile(expression), functions=FUNCTIONS)
        _PROGRAMS[expression] = program
    return program


def to_python(value: Any) -> Any:
    if isinstance(value, celtypes.MapType):
        return {str(k): to_python(v) for k, v in value.items()}
    if isinstance(value, celtypes.ListType):
        return [to_python(v) for v in value]
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.IntType | celtypes.UintType):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    return value


def evaluate(expression: str, activation: dict[str, Any]) -> Any:
    """One CEL expression; ``celpy.CELEvalError`` (also returned as a value by cel-python) is raised."""
    result = _program(expression).evaluate(activation)
    if isinstance(result, celpy.CELEvalError):
        raise result
    return result


@dataclass
class Outcome:
    matched: bool  # the policy applied to the request (constraints, params and conditions passed)
    patched: dict[str, Any] | None = None  # mutating: the object after the mutations
    allowed: bool = True  # validating
    message: str = ""


def _rule_matches(rule: dict[str, Any], request: dict[str, Any]) -> bool:
    resource = request["resource"]
    name = resource["resource"] + (f"/{request['subResource']}" if request.get("subResource") else "")
    return (
        resource.get("group", "") in rule.get("apiGroups", [])
        and resource.get("version") in rule.get("apiVersions", [])
        and request["operation"] in rule.get("operations", [])
        and name in rule.get("resources", [])
    )


def _applies(policy: dict[str, Any], request: dict[str, Any], namespace_labels: dict[str, str]) -> bool:
    constraints = policy["spec"]["matchConstraints"]
    if not any(_rule_matches(rule, request) for rule in constraints.get("resourceRules", [])):
        return False
    labels = {**namespace_labels, "kubernetes.io/metadata.name": request["namespace"]}
    return objects.label_selector_matches(constraints.get("namespaceSelector"), labels)


def _activation(
    request: dict[str, Any], params: dict[str, Any] | None, namespace_labels: dict[str, str]
) -> dict[str, Any]:
    namespace = {"metadata": {"name": request["namespace"], "labels": namespace_labels}}
    return {
        "object": celpy.json_to_cel(request.get("object")),
        "oldObject": celpy.json_to_cel(request.get("oldObject")),
        "request": celpy.json_to_cel(request),
        "params": celpy.json_to_cel(params),
        "namespaceObject": celpy.json_to_cel(namespace),
    }


def _conditions_pass(policy: dict[str, Any], activation: dict[str, Any]) -> bool:
    failed: list[str] = []
    for condition in policy["spec"].get("matchConditions") or []:
        try:
            if not bool(evaluate(condition["expression"], activation)):
                return False
        except (celpy.CELEvalError, ValueError, TypeError) as exc:
            failed.append(f"{condition['name']}: {exc}")
    if failed:
        raise _failure(policy, "; ".join(failed))
    return True


def _failure(policy: dict[str, Any], message: str) -> Exception:
    return PolicyFailure(f"policy {policy['metadata']['name']} failed: {message}")


def _with_variables(policy: dict[str, Any], activation: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for variable in policy["spec"].get("variables") or []:
        scope = {**activation, "variables": celtypes.MapType({celtypes.StringType(k): v for k, v in values.items()})}
        values[variable["name"]] = evaluate(variable["expression"], scope)
    return {**activation, "variables": celtypes.MapType({celtypes.StringType(k): v for k, v in values.items()})}


def _params(binding: dict[str, Any], params_by_name: dict[str, dict[str, Any]]) -> tuple[bool, dict | None]:
    """(found or not needed, the parameter object) for the binding's ``paramRef``."""
    ref = binding["spec"].get("paramRef")
    if ref is None:
        return True, None
    found = params_by_name.get(ref["name"])
    return found is not None, found


def mutate(
    *,
    policy: dict[str, Any],
    binding: dict[str, Any],
    request: dict[str, Any],
    params_by_name: dict[str, dict[str, Any]],
    namespace_labels: dict[str, str] | None = None,
) -> Outcome:
    """The object after ``policy``'s mutations, or ``matched=False`` when the policy does not apply.

    Raises :class:`PolicyFailure` when a CEL error meets ``failurePolicy: Fail``.
    """
    labels = namespace_labels or {}
    if not _applies(policy, request, labels):
        return Outcome(matched=False)
    found, params = _params(binding, params_by_name)
    if not found:
        if binding["spec"]["paramRef"].get("parameterNotFoundAction") == "Deny":
            raise _failure(policy, "no params found for policy binding with `Deny` parameterNotFoundAction")
        return Outcome(matched=False)
    activation = _activation(request, params, labels)
    ignore = policy["spec"].get("failurePolicy", "Fail") == "Ignore"
    try:
        if not _conditions_pass(policy, activation):
            return Outcome(matched=False)
        scope = _with_variables(policy, activation)
        patched = copy.deepcopy(request["object"])
        for mutation in policy["spec"]["mutations"]:
            operations = to_python(evaluate(mutation["jsonPatch"]["expression"], scope))
            if operations:
                patched = jsonpatch.JsonPatch(operations).apply(patched)
            scope = {**scope, "object": celpy.json_to_cel(patched)}
    except (celpy.CELEvalError, ValueError, TypeError, jsonpatch.JsonPatchException, PolicyFailure) as exc:
        if ignore:
            return Outcome(matched=False, message=str(exc))
        raise exc if isinstance(exc, PolicyFailure) else _failure(policy, str(exc)) from exc
    return Outcome(matched=True, patched=patched)


def validate(
    *,
    policy: dict[str, Any],
    binding: dict[str, Any],
    request: dict[str, Any],
    params_by_name: dict[str, dict[str, Any]],
    namespace_labels: dict[str, str] | None = None,
) -> Outcome:
    """Whether ``policy`` (bound by ``binding`` with ``validationActions: [Deny]``) refuses the request."""
    labels = namespace_labels or {}
    if not _applies(policy, request, labels):
        return Outcome(matched=False)
    found, params = _params(binding, params_by_name)
    if not found:
        if binding["spec"]["paramRef"].get("parameterNotFoundAction") == "Deny":
            return Outcome(
                matched=True,
                allowed=False,
                message="no params found for policy binding with `Deny` parameterNotFoundAction",
            )
        return Outcome(matched=False)
    activation = _activation(request, params, labels)
    ignore = policy["spec"].get("failurePolicy", "Fail") == "Ignore"
    try:
        if not _conditions_pass(policy, activation):
            return Outcome(matched=False)
        scope = _with_variables(policy, activation)
        for validation in policy["spec"]["validations"]:
            if not bool(evaluate(validation["expression"], scope)):
                message = validation.get("message", "")
                if validation.get("messageExpression"):
                    message = str(evaluate(validation["messageExpression"], scope))
                return Outcome(matched=True, allowed=False, message=message)
    except (celpy.CELEvalError, ValueError, TypeError, PolicyFailure) as exc:
        if ignore:
            return Outcome(matched=False, message=str(exc))
        return Outcome(matched=True, allowed=False, message=str(exc))
    return Outcome(matched=True)


def admit(
    attrs: Any,
    obj: dict[str, Any] | None,
    *,
    stored: dict[tuple[str, str], dict[str, Any]],
    params_by_name: dict[str, dict[str, Any]],
    namespace_labels: dict[str, str],
) -> dict[str, Any] | None:
    """A Deployment write through the stored admission policies, as the API server runs them after the
    mutating webhooks: each bound MutatingAdmissionPolicy's mutations, then each bound
    ValidatingAdmissionPolicy (``Deny``). Returns the object to store, or raises ``ApiError``."""
    from tests.servers.k8s_standin.admission import _review

    if attrs.operation == "DELETE" or obj is None:
        return obj
    review = _review({"admissionReviewVersions": ["v1"]}, attrs, obj)
    assert review is not None
    request = review["request"]
    name = attrs.name or (obj.get("metadata") or {}).get("name", "")
    resource = "deployments.apps"
    for kind, binding_kind in (
        ("MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"),
        ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"),
    ):
        for (stored_kind, policy_name), policy in sorted(stored.items()):
            if stored_kind != kind:
                continue
            bindings = [
                b
                for (k, _), b in sorted(stored.items())
                if k == binding_kind and b["spec"]["policyName"] == policy_name
            ]
            for binding in bindings:
                args = {
                    "policy": policy,
                    "binding": binding,
                    "request": request,
                    "params_by_name": params_by_name,
                    "namespace_labels": namespace_labels,
                }
                try:
                    if kind.startswith("Mutating"):
                        outcome = mutate(**args)
                        if outcome.matched:
                            request = {**request, "object": outcome.patched}
                        continue
                    verdict = validate(**args)
                except PolicyFailure as exc:
                    raise objects.ApiError(500, f"Internal error occurred: {exc}") from exc
                if not verdict.allowed:
                    reason = policy["spec"]["validations"][0].get("reason") or "Invalid"
                    code = {"Forbidden": 403, "Unauthorized": 401, "RequestEntityTooLarge": 413}.get(reason, 422)
                    raise objects.ApiError(
                        code,
                        f"{resource} \"{name}\" is forbidden: ValidatingAdmissionPolicy '{policy_name}' with binding "
                        f"'{binding['metadata']['name']}' denied request: {verdict.message}",
                        reason=reason,
                    )
    return request["object"]
