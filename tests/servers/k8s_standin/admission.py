"""Mutating admission as kube-apiserver 1.30 does it: match, call over HTTP, verify, patch, or refuse.

``admit`` runs one write through every webhook of every MutatingWebhookConfiguration (configurations
in name order, webhooks in list order, each seeing the previous patches; no reinvocation). A webhook
is called when its ``rules`` (apiGroups, apiVersions, operations, resources with ``*``, ``*/scale``,
``*/*``; scope), ``namespaceSelector`` (against the namespace's labels plus the built-in
``kubernetes.io/metadata.name``), ``objectSelector`` (new or old object's labels) and
``matchConditions`` (CEL, through the ``cel-python`` package) all match.

The AdmissionReview (v1, or v1beta1 when the webhook lists only that) is POSTed to the loopback URL
its ``clientConfig`` is routed to (see ``K8sStandin.route_webhooks``), with ``?timeout=<n>s`` as the
real server adds, and a client timeout of ``timeoutSeconds`` (default 10). A webhook that is not
routed, refuses, times out, answers non-200, garbage, another apiVersion/kind or another uid has
*failed*: ``failurePolicy: Ignore`` goes on without it, ``Fail`` (the default) refuses with 500
``Internal error occurred: failed calling webhook "<name>": …``. ``allowed: false`` refuses with the
webhook's code (at least 400) and ``admission webhook "<name>" denied the request: <message>``. A
JSONPatch that does not apply is 500 whatever the policy. ``warnings`` are collected (deduplicated)
for the ``Warning`` headers. A dry run is refused (400) by a webhook whose sideEffects are not
``None``/``NoneOnDryRun``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import json
import ssl
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jsonpatch
import jsonpointer

from tests.servers.k8s_standin.objects import ApiError, label_selector_matches

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
REVIEW_VERSIONS = ("v1", "v1beta1")
DEFAULT_TIMEOUT_SECONDS = 10

DEPLOYMENT_KIND = {"group": "apps", "version": "v1", "kind": "Deployment"}
SCALE_KIND = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
DEPLOYMENT_RESOURCE = {"group": "apps", "version": "v1", "resource": "deployments"}
OPTIONS_KIND = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class User:
    """Who a bearer token authenticates as (``userInfo`` of the review)."""

    username: str
    groups: tuple[str, ...] = ()

    @property
    def uid(self) -> str:
        """Service accounts have a uid; people from an identity provider have none."""
        if self.username.startswith("system:serviceaccount:"):
            return str(uuid.uuid5(uuid.NAMESPACE_URL, self.username))
        return ""

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"username": self.username}
        if self.uid:
            info["uid"] = self.uid
        info["groups"] = list(self.groups)
        return info


@dataclass(frozen=True)
class AdmissionCall:
    """One webhook call the stand-in made (or tried to make)."""

    configuration: str  # the MutatingWebhookConfiguration
    webhook: str  # the webhook's name
    url: str  # what the API server would call (clientConfig, with ?timeout=)
    target: str  # the loopback URL actually called; "" when the webhook is not routed
    review: dict[str, Any]  # the AdmissionReview sent
    status: int | None  # the HTTP status of the answer; None without an answer
    response: dict[str, Any] | None  # the AdmissionReview answered (parsed), when it was JSON
    error: str  # why the call failed ("" when the webhook answered a valid review)
    seconds: float

    @property
    def request(self) -> dict[str, Any]:
        return self.review["request"]


@dataclass
class Attributes:
    """What the API server knows about one write when it admits it."""

    operation: str  # CREATE, UPDATE, DELETE
    namespace: str
    name: str
    sub_resource: str  # "" or "scale"
    object: dict[str, Any] | None
    old_object: dict[str, Any] | None
    user: User
    dry_run: bool
    options: dict[str, Any]

    @property
    def resource(self) -> str:
        return "deployments" + (f"/{self.sub_resource}" if self.sub_resource else "")


@dataclass
class Outcome:
    object: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)


def request_options(operation: str, *, dry_run: bool, query: dict[str, list[str]]) -> dict[str, Any]:
    """The options a real server puts in the review: a PATCH's PatchOptions become UpdateOptions."""
    options: dict[str, Any] = {"kind": OPTIONS_KIND[operation], "apiVersion": "meta.k8s.io/v1"}
    if dry_run:
        options["dryRun"] = ["All"]
    if operation != "DELETE":
        for key in ("fieldManager", "fieldValidation"):
            if query.get(key):
                options[key] = query[key][0]
    elif query.get("propagationPolicy"):
        options["propagationPolicy"] = query["propagationPolicy"][0]
    return options


# --- matching -------------------------------------------------------------------------------------


def _rule_matches(rule: dict[str, Any], attrs: Attributes) -> bool:
    def has(values: Any, wanted: str) -> bool:
        return "*" in (values or []) or wanted in (values or [])

    if not (has(rule.get("apiGroups"), "apps") and has(rule.get("apiVersions"), "v1")):
        return False
    if not has(rule.get("operations"), attrs.operation):
        return False
    if rule.get("scope", "*") not in ("*", "Namespaced"):
        return False
    resources = rule.get("resources") or []
    if attrs.sub_resource:
        return any(r in (attrs.resource, f"*/{attrs.sub_resource}", "deployments/*", "*/*") for r in resources)
    return any(r in ("deployments", "*", "*/*") for r in resources)


def _labels(obj: dict[str, Any] | None) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


def hook_matches(hook: dict[str, Any], attrs: Attributes, namespace_labels: dict[str, str]) -> bool:
    """Rules, namespaceSelector and objectSelector (matchConditions are evaluated separately)."""
    if not any(_rule_matches(rule, attrs) for rule in hook.get("rules") or []):
        return False
    labels = {**namespace_labels, NAMESPACE_NAME_LABEL: attrs.namespace}
    if not label_selector_matches(hook.get("namespaceSelector"), labels):
        return False
    selector = hook.get("objectSelector")
    return label_selector_matches(selector, _labels(attrs.object)) or (
        attrs.old_object is not None and label_selector_matches(selector, _labels(attrs.old_object))
    )


def match_conditions(hook: dict[str, Any], request: dict[str, Any], namespace: dict[str, Any]) -> bool | str:
    """True when every matchCondition holds, False when one is false, else the evaluation error."""
    conditions = hook.get("matchConditions") or []
    if not conditions:
        return True
    import celpy  # only webhooks with matchConditions pay for the import

    env = celpy.Environment()
    activation = {
        "request": celpy.json_to_cel(request),
        "object": celpy.json_to_cel(request.get("object")),
        "oldObject": celpy.json_to_cel(request.get("oldObject")),
        "namespaceObject": celpy.json_to_cel(namespace),
    }
    errors: list[str] = []
    for condition in conditions:
        name, expression = condition.get("name", ""), condition.get("expression", "")
        try:
            result = env.program(env.compile(expression)).evaluate(activation)
        except (celpy.CELParseError, celpy.CELEvalError) as exc:
            errors.append(f"{name}: {exc.args[0] if exc.args else exc}")
            continue
        if isinstance(result, Exception):
            errors.append(f"{name}: {result}")
        elif not isinstance(result, bool | celpy.celtypes.BoolType):
            errors.append(f"{name}: expression must evaluate to bool")
        elif not bool(result):
            return False
    return "; ".join(errors) if errors else True


# --- calling --------------------------------------------------------------------------------------


def _query_with_timeout(url: str, timeout: int) -> str:
    return url + ("&" if "?" in url else "?") + f"timeout={timeout}s"


def webhook_urls(client: dict[str, Any], targets: dict[str, str], timeout: int) -> tuple[str, str]:
    """(the URL the API server would call, the loopback URL it is routed to or "").

    ``targets`` maps a Service ``"namespace/name"``, a URL prefix (``"https://kubedoor.test"``) or
    ``"*"`` to a loopback base URL; the path (and query) from ``clientConfig`` is kept.
    """
    if client.get("url"):
        shown = str(client["url"])
        parts = urlsplit(shown)
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        prefixes = [
            key for key in targets if "://" in key and shown.startswith(key) and shown[len(key) :][:1] in ("", "/", "?")
        ]
        if prefixes:
            best = max(prefixes, key=len)
            routed = targets[best].rstrip("/") + shown[len(best) :]
        else:
            routed = targets["*"].rstrip("/") + tail if "*" in targets else ""
    else:
        service = client.get("service") or {}
        namespace, name = service.get("namespace", ""), service.get("name", "")
        path = service.get("path") or "/"
        shown = f"https://{name}.{namespace}.svc:{service.get('port', 443)}{path}"
        base = targets.get(f"{namespace}/{name}") or targets.get("*")
        routed = base.rstrip("/") + path if base else ""
    return _query_with_timeout(shown, timeout), (_query_with_timeout(routed, timeout) if routed else "")


class CallFailed(Exception):
    """The webhook could not be called or answered something that is not a valid review."""


def _ssl_context(client: dict[str, Any]) -> ssl.SSLContext:
    """Trust the caBundle; the loopback address is not the Service's DNS name, so no host check."""
    context = ssl.create_default_context()
    if client.get("caBundle"):
        context.load_verify_locations(cadata=base64.b64decode(client["caBundle"]).decode())
    context.check_hostname = False
    return context


def _post(url: str, shown: str, review: dict[str, Any], client: dict[str, Any], timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=json.dumps(review).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json, */*"},
        method="POST",
    )
    extra = {"context": _ssl_context(client)} if url.startswith("https://") else {}
    try:
        with _NO_PROXY.open(request, timeout=timeout, **extra) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except TimeoutError as exc:
        raise CallFailed(f'failed to call webhook: Post "{shown}": context deadline exceeded') from exc
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise CallFailed(f'failed to call webhook: Post "{shown}": context deadline exceeded') from exc
        host = urlsplit(url).netloc
        if isinstance(reason, ConnectionRefusedError):
            detail = f"dial tcp {host}: connect: connection refused"
        else:
            detail = str(reason)
        raise CallFailed(f'failed to call webhook: Post "{shown}": {detail}') from exc
    except (ConnectionError, OSError) as exc:
        raise CallFailed(f'failed to call webhook: Post "{shown}": {exc}') from exc


def _verify(status: int, raw: bytes, review: dict[str, Any]) -> dict[str, Any]:
    """The ``response`` of a valid answer, else :class:`CallFailed` saying what is wrong with it."""
    text = raw.decode("utf-8", "replace")
    if status != 200:
        try:
            message = json.loads(text).get("message")
        except (ValueError, AttributeError):
            message = None
        if message:
            raise CallFailed(f"failed to call webhook: {message}")
        if status >= 500:
            detail = f'an error on the server ("{text[:200]}") has prevented the request from succeeding'
        else:
            detail = f"the server responded with the status code {status} but did not return more information"
        raise CallFailed(f"failed to call webhook: {detail}")
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise CallFailed(f"failed to call webhook: couldn't get version/kind; json parse error: {exc}") from exc
    if not isinstance(document, dict):
        raise CallFailed("failed to call webhook: couldn't get version/kind; json parse error: not an object")
    version, kind = document.get("apiVersion"), document.get("kind")
    if (version, kind) != (review["apiVersion"], "AdmissionReview"):
        raise CallFailed(
            "received invalid webhook response: expected webhook response of "
            f"{review['apiVersion']}, Kind=AdmissionReview, got {version}, Kind={kind}"
        )
    response = document.get("response")
    if not isinstance(response, dict):
        raise CallFailed("received invalid webhook response: webhook response was absent")
    uid = review["request"]["uid"]
    if response.get("uid") != uid:
        got = response.get("uid")
        raise CallFailed(f'received invalid webhook response: expected response.uid="{uid}", got "{got}"')
    if not isinstance(response.get("allowed"), bool):
        raise CallFailed("received invalid webhook response: response.allowed must be a boolean")
    if review["apiVersion"].endswith("/v1") and response.get("patch") and not response.get("patchType"):
        raise CallFailed(
            "received invalid webhook response: webhook returned response.patch but not response.patchType"
        )
    if response.get("patchType") not in (None, "JSONPatch"):
        patch_type = response.get("patchType")
        raise CallFailed(
            f'received invalid webhook response: webhook returned invalid response.patchType of "{patch_type}"'
        )
    return response


def _deny(hook_name: str, status: Any) -> ApiError:
    status = status if isinstance(status, dict) else {}
    code = status.get("code") if isinstance(status.get("code"), int) else 0
    code = max(code, 400)
    denied = f'admission webhook "{hook_name}" denied the request'
    if status.get("message"):
        message = f"{denied}: {status['message']}"
    elif status.get("reason"):
        message = f"{denied}: {status['reason']}"
    else:
        message = f"{denied} without explanation"
    return ApiError(code, message, reason=status.get("reason") or "", details=status.get("details"))


def _internal(message: str) -> ApiError:
    return ApiError(500, f"Internal error occurred: {message}", details={"causes": [{"message": message}]})


def _review(hook: dict[str, Any], attrs: Attributes, obj: dict[str, Any] | None) -> dict[str, Any] | None:
    versions = [v for v in hook.get("admissionReviewVersions") or [] if v in REVIEW_VERSIONS]
    if not versions:
        return None
    kind = SCALE_KIND if attrs.sub_resource == "scale" else DEPLOYMENT_KIND
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": kind,
        "resource": DEPLOYMENT_RESOURCE,
    }
    if attrs.sub_resource:
        request["subResource"] = attrs.sub_resource
    request["requestKind"] = kind
    request["requestResource"] = DEPLOYMENT_RESOURCE
    if attrs.sub_resource:
        request["requestSubResource"] = attrs.sub_resource
    if attrs.name:
        request["name"] = attrs.name
    request.update(
        {
            "namespace": attrs.namespace,
            "operation": attrs.operation,
            "userInfo": attrs.user.info(),
            "object": copy.deepcopy(obj),
            "oldObject": copy.deepcopy(attrs.old_object),
            "dryRun": attrs.dry_run,
            "options": copy.deepcopy(attrs.options),
        }
    )
    return {"kind": "AdmissionReview", "apiVersion": f"admission.k8s.io/{versions[0]}", "request": request}


def admit(
    attrs: Attributes,
    *,
    configurations: dict[str, dict[str, Any]],
    namespace_labels: dict[str, str],
    targets: dict[str, str],
    record: Any,
) -> Outcome:
    """Run ``attrs`` through the matching webhooks; the admitted object, or :class:`ApiError`.

    ``record`` is called with each :class:`AdmissionCall`.
    """
    outcome = Outcome(object=copy.deepcopy(attrs.object))
    namespace_object = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": attrs.namespace, "labels": {**namespace_labels, NAMESPACE_NAME_LABEL: attrs.namespace}},
    }
    try:
        for config_name in sorted(configurations):
            for hook in configurations[config_name].get("webhooks") or []:
                _admit_one(config_name, hook, attrs, outcome, namespace_labels, namespace_object, targets, record)
    except ApiError as exc:
        exc.warnings = list(outcome.warnings)  # a refused request still carries the warnings gathered so far
        raise
    return outcome


def _admit_one(
    config_name: str,
    hook: dict[str, Any],
    attrs: Attributes,
    outcome: Outcome,
    namespace_labels: dict[str, str],
    namespace_object: dict[str, Any],
    targets: dict[str, str],
    record: Any,
) -> None:
    """Call one webhook when it matches, updating ``outcome``; :class:`ApiError` when it refuses."""
    hook_name = str(hook.get("name", ""))
    current = dataclasses.replace(attrs, object=outcome.object)
    if not hook_matches(hook, current, namespace_labels):
        return
    ignore = hook.get("failurePolicy", "Fail") == "Ignore"
    review = _review(hook, attrs, outcome.object)
    if review is None:
        failure = "webhook does not accept v1 or v1beta1 AdmissionReview"
        if ignore:
            return
        raise _internal(f'failed calling webhook "{hook_name}": {failure}')
    matched = match_conditions(hook, review["request"], namespace_object)
    if matched is False:
        return
    if matched is not True:
        if ignore:
            return
        raise _internal(f'failed calling webhook "{hook_name}": failed to evaluate match conditions: {matched}')
    if attrs.dry_run and hook.get("sideEffects") not in ("None", "NoneOnDryRun"):
        raise ApiError(400, f'admission webhook "{hook_name}" does not support dry run')
    response = _call(config_name, hook, review, targets, record)
    if isinstance(response, str):
        if ignore:
            return
        raise _internal(f'failed calling webhook "{hook_name}": {response}')
    for warning in response.get("warnings") or []:
        if isinstance(warning, str) and warning not in outcome.warnings:
            outcome.warnings.append(warning)
    if not response["allowed"]:
        raise _deny(hook_name, response.get("status"))
    if response.get("patch"):
        outcome.object = _patched(outcome.object, response["patch"])


def _call(
    config_name: str, hook: dict[str, Any], review: dict[str, Any], targets: dict[str, str], record: Any
) -> dict[str, Any] | str:
    """The webhook's ``response``, or why calling it failed."""
    timeout = int(hook.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS)
    client = hook.get("clientConfig") or {}
    shown, target = webhook_urls(client, targets, timeout)
    started = time.monotonic()
    status: int | None = None
    parsed: dict[str, Any] | None = None
    try:
        if not target:
            raise CallFailed(
                f'failed to call webhook: Post "{shown}": no route to the webhook '
                "(the stand-in's webhook_targets has no entry for it)"
            )
        status, raw = _post(target, shown, review, client, timeout)
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        response = _verify(status, raw, review)
        error = ""
    except CallFailed as exc:
        response, error = None, str(exc)
    record(
        AdmissionCall(
            configuration=config_name,
            webhook=str(hook.get("name", "")),
            url=shown,
            target=target,
            review=review,
            status=status,
            response=parsed if isinstance(parsed, dict) else None,
            error=error,
            seconds=time.monotonic() - started,
        )
    )
    return response if response is not None else error


def _patched(obj: dict[str, Any] | None, patch: str) -> dict[str, Any]:
    try:
        operations = json.loads(base64.b64decode(patch, validate=True))
        result = jsonpatch.JsonPatch(operations).apply(copy.deepcopy(obj))
    except (
        binascii.Error,
        ValueError,
        TypeError,
        jsonpatch.JsonPatchException,
        jsonpointer.JsonPointerException,
    ) as exc:  # noqa: E501
        raise _internal(str(exc)) from exc
    if not isinstance(result, dict):
        raise _internal("the patched object is not an object")
    return result


def warning_header(text: str) -> str:
    """``299 - "text"`` with ``"`` and ``\\`` escaped, as kube-apiserver writes a Warning header."""
    return '299 - "' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
