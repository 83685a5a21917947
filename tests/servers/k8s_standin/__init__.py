"""A Kubernetes API server stand-in that records, admits and stores (no real kube-apiserver can run here).

A small threaded HTTP server on loopback that the official client (and so ``apps/control/k8s.py``)
talks to, in this process or in a Celery worker subprocess. It records every request and answers
either from a script the test sets, or from an in-memory state of Namespaces, Deployments (with
their ``scale`` subresource), HorizontalPodAutoscalers and MutatingWebhookConfigurations. Every
write of a Deployment goes through mutating admission as on a real server (``admission.py``): the
webhooks KubeDoor registered here are called over HTTP with a real AdmissionReview, their JSONPatch
applied, their warnings returned as ``Warning`` headers, their denials and failures (by
``failurePolicy``/``timeoutSeconds``) returned as ``Status`` errors; the result is validated,
stored, and read back by the caller.

Fixtures and helpers
--------------------
``k8s_standin`` (function scope) yields a started :class:`K8sStandin`; it is stopped afterwards.

``standin_kubeconfig(url, context="standin", token="standin-token")`` returns kubeconfig YAML text
pointing at ``url`` (the default token is KubeDoor's ServiceAccount).

``standin_cluster(standin, name="prod", **fields)`` creates (or updates) the ``Cluster`` ``name``
whose stored ``kubeconfig`` points at the stand-in; needs database access.

``k8s_cluster`` (fixture) = ``standin_cluster(k8s_standin, name="prod")``.

``deployment_manifest(namespace, name, replicas=1, containers=None, labels=None)`` is a Deployment as a
person writes it for ``kubectl apply``.

Users
-----
Bearer tokens map to users through ``standin.users`` (token → ``(username, groups)``); a request
without a known token is 401 (except ``GET /version``). Defaults: ``standin-token`` (the kubeconfig's)
is ``system:serviceaccount:kubedoor:kubedoor`` (deploy/base: ServiceAccount ``kubedoor`` in namespace
``kubedoor``); ``kubectl-token`` is the person ``jane@example.com``; ``hpa-token`` is
``system:serviceaccount:kube-system:horizontal-pod-autoscaler``. The names are module constants
(``KUBEDOOR_TOKEN``, ``KUBECTL_TOKEN``, ``HPA_TOKEN`` and the matching ``*_USERNAME``).

The :class:`K8sStandin` API
---------------------------
``standin.url``
    ``http://127.0.0.1:<port>``.
``standin.requests``
    every request received, in order, as :class:`Recorded` (``method``, ``path``, ``query`` — a dict of
    lists as ``urllib.parse.parse_qs`` gives —, ``content_type``, ``body`` — parsed JSON, or the raw
    text when not JSON, or ``None`` —, ``headers``, ``at`` — ``time.time()`` when received —, ``user``
    — the caller's username, ``""`` when the token is unknown).
``standin.calls(method=None, path=None)``
    the recorded requests filtered by method and/or exact path.
``standin.respond(method, path, status=200, body=None, delay=0.0, times=None)``
    script the answer to ``method path`` (exact path, query ignored), bypassing state and admission.
    ``body`` is sent as JSON; for an error status without a body a Kubernetes ``Status`` object is made.
    ``delay`` seconds are waited before answering (make it larger than the client timeout to simulate a
    hang). ``times`` limits how often the script applies (``None`` = always). Counted scripts are used
    first, in the order they were set; then the latest unlimited one; then the default behaviour.
``standin.reset()``
    forget recorded requests, admission calls and scripted answers (state, routes and users are kept).
``standin.add_namespace(name, labels=None)``; ``standin.namespaces`` (dict name → labels)
    a namespace (given labels are merged into an existing one's). Selectors see the built-in label
    ``kubernetes.io/metadata.name`` too; listings show only the labels given.
``standin.add_deployment(namespace, name, replicas=1, containers=None, labels=None)``
    put a Deployment into the state directly (no admission; its namespace too), defaulted like a
    stored one, and return it.
``standin.deployment(namespace, name)``
    the Deployment as the state holds it now (a copy), or ``None``.
``standin.add_hpa(namespace, name, target_deployment, min_replicas=1, max_replicas=10)``; ``standin.hpa(ns, name)``
    an ``autoscaling/v2`` HorizontalPodAutoscaler whose scaleTargetRef is the Deployment.
``standin.webhook_configurations``
    dict name → MutatingWebhookConfiguration as registered through the API (what ``admission_mode_set``
    creates). Fields left out are read with the API server's defaults (failurePolicy Fail,
    timeoutSeconds 10, empty selectors). Below v1.28 (``git_version``) ``matchConditions`` is dropped on
    write, as a server without the feature does (≤ 1.26 with a ``unknown field`` warning).
``standin.webhook_targets``; ``standin.route_webhooks(to, service=None, url=None)``
    where webhook calls go: a dict from a Service ``"namespace/name"``, a ``clientConfig.url`` prefix
    (``"https://kubedoor-webhook.test"``) or ``"*"`` (every webhook) to a loopback base URL
    (``"http://127.0.0.1:PORT"``); the clientConfig's path is kept. ``route_webhooks(to)`` routes every
    webhook. An unrouted webhook fails like an unreachable one.
``standin.admission_calls``
    every webhook call, in order, as ``admission.AdmissionCall`` (``configuration``, ``webhook``,
    ``url``, ``target``, ``review`` — the AdmissionReview sent —, ``request`` — its request part —,
    ``status``, ``response``, ``error``, ``seconds``).
``standin.git_version``
    what ``GET /version`` reports (default ``v1.30.2``).
``standin.pods(namespace, deployment)``; ``standin.resize_plan(namespace, pod, *states)``
    the pods of a Deployment (``spec.replicas`` running pods of its current template, replaced on a
    template change; see ``pods.py``), and the states (``done``, ``in_progress``, ``deferred``,
    ``infeasible``) a pod goes through after its next ``pods/resize`` patch, one per read.
``standin.admission_policies``; ``standin.config_maps``
    (kind, name) → Mutating/ValidatingAdmissionPolicy or binding as created through the API (served by
    ``git_version``: v1beta1 mutating from 1.34, v1 from 1.36, validating v1 from 1.30), and
    (namespace, name) → ConfigMap. Stored policies run on every Deployment write after the webhooks
    (``policies.py``, CEL through cel-python): mutations applied, validations refusing.
``standin.permissions``
    token → set of ``(group, "resource[/subresource]", verb, name)`` that ``POST
    /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`` allows it (``name`` ``""`` = any object); a
    token not in the dict is allowed everything. Only the reviews read it: the other calls are not refused.
``standin.on_request``
    a callable given each :class:`Recorded` before it is answered, in the server's thread (e.g. to
    read the database through that thread's own connection and see only committed data).
``standin.request(method, path, body=None, token="kubectl-token", content_type=None, query=None)``
    one real HTTP request to the stand-in, as a person's kubectl (or the HPA controller with
    ``token=HPA_TOKEN``) would send it: an :class:`Answer` ``(status, body, headers)`` with
    ``.warnings`` (the texts of the ``Warning`` headers). A PATCH defaults to a strategic merge patch.
``standin.kubectl_create(manifest, dry_run=False)``, ``standin.kubectl_scale(namespace, name, replicas)``,
``standin.kubectl_set_image(namespace, name, container, image)``
    the requests those kubectl commands send (POST with the last-applied annotation; a merge patch of
    the ``scale`` subresource; a strategic merge patch of the container), as ``jane@example.com``.

Behaviour (when no script matches)
----------------------------------
``GET /version``; ``POST`` of a SelfSubjectAccessReview (see ``permissions``); GET/list Namespaces;
GET/list Deployments (in all namespaces or one; label selectors in the ``k=v``, ``k!=v``, ``k in (…)``,
``k notin (…)``, ``k``, ``!k`` forms; paged by ``limit`` with a ``continue`` token, sorted by namespace
and name); POST (create), PUT,
PATCH (``application/merge-patch+json``, ``application/strategic-merge-patch+json``,
``application/json-patch+json``; a failing JSON patch ``test`` is 422) and DELETE of a Deployment;
GET/PUT/PATCH of its ``scale`` subresource (the patch applies to the ``autoscaling/v1`` Scale, whose
admitted ``spec.replicas`` is copied into the Deployment); GET/list of ``autoscaling/v2``
HorizontalPodAutoscalers; GET/list of Pods and PATCH of ``pods/<name>/resize`` (1.33+);
GET/POST/PUT/DELETE of ConfigMaps and of admission policies and their bindings; GET/POST/PUT/DELETE of
MutatingWebhookConfigurations (PUT needs the current ``metadata.resourceVersion``, else 409; POST of an
existing name is 409). A Deployment write is
defaulted (``apps/v1`` defaults), admitted (CREATE/UPDATE/DELETE; ``dryRun`` and the options reach the
review), validated (422 with the server's wording: selector, replicas, containers, requests above
limits), then stored: ``resourceVersion`` bumps (not on a no-op), ``generation`` bumps on a spec change,
and the status follows ``spec.replicas`` at once (the controller is instantaneous). A
``metadata.resourceVersion`` in a PUT or patch that is not the current one is 409. A ``dryRun`` query
parameter answers as if written without changing the state. Anything else is 404.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.servers import LoopbackHTTPServer
from tests.servers.k8s_standin import objects, pods, policies
from tests.servers.k8s_standin.admission import AdmissionCall, Attributes, User, admit, request_options, warning_header
from tests.servers.k8s_standin.objects import (
    REASONS,
    ApiError,
    deployment_manifest,
    selector_matches,
    status_object,
)

__all__ = [
    "HPA_TOKEN",
    "HPA_USERNAME",
    "KUBECTL_TOKEN",
    "KUBECTL_USERNAME",
    "KUBEDOOR_TOKEN",
    "KUBEDOOR_USERNAME",
    "REASONS",
    "AdmissionCall",
    "Answer",
    "K8sStandin",
    "Recorded",
    "deployment_manifest",
    "standin_cluster",
    "standin_kubeconfig",
    "status_object",
]

KUBEDOOR_TOKEN = "standin-token"
KUBEDOOR_USERNAME = "system:serviceaccount:kubedoor:kubedoor"
KUBECTL_TOKEN = "kubectl-token"
KUBECTL_USERNAME = "jane@example.com"
HPA_TOKEN = "hpa-token"
HPA_USERNAME = "system:serviceaccount:kube-system:horizontal-pod-autoscaler"


def default_users() -> dict[str, tuple[str, list[str]]]:
    return {
        KUBEDOOR_TOKEN: (
            KUBEDOOR_USERNAME,
            ["system:serviceaccounts", "system:serviceaccounts:kubedoor", "system:authenticated"],
        ),
        KUBECTL_TOKEN: (KUBECTL_USERNAME, ["system:authenticated"]),
        HPA_TOKEN: (
            HPA_USERNAME,
            ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
        ),
    }


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: Any
    headers: dict[str, str]
    at: float
    user: str = ""


_WARNING = re.compile(r'^\s*\d{3}\s+\S+\s+"((?:[^"\\]|\\.)*)"\s*$')


class Answer(NamedTuple):
    """What :meth:`K8sStandin.request` got back."""

    status: int
    body: Any
    headers: Message

    @property
    def warnings(self) -> list[str]:
        """The texts of the ``Warning: 299 - "…"`` headers, in order (UTF-8 as the server sent it)."""
        texts = []
        for value in self.headers.get_all("Warning") or []:
            raw = value.encode("latin-1", "replace").decode("utf-8", "replace")
            match = _WARNING.match(raw)
            texts.append(re.sub(r"\\(.)", r"\1", match.group(1)) if match else raw)
        return texts


@dataclass
class _Script:
    status: int
    body: Any
    delay: float
    times: int | None


@dataclass
class _Reply:
    status: int
    body: Any
    warnings: list[str] = field(default_factory=list)


DEPLOYMENT_RE = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments(?:/([^/]+))?(/scale)?$")
WEBHOOK_RE = re.compile(r"^/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations(?:/([^/]+))?$")
NAMESPACE_RE = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?$")
POD_RE = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?(/resize)?$")
CONFIG_MAP_RE = re.compile(r"^/api/v1/namespaces/([^/]+)/configmaps(?:/([^/]+))?$")
POLICY_RE = re.compile(
    r"^/apis/admissionregistration.k8s.io/(v1|v1beta1)/(mutatingadmissionpolicies|mutatingadmissionpolicybindings|"
    r"validatingadmissionpolicies|validatingadmissionpolicybindings)(?:/([^/]+))?$"
)
POLICY_KINDS = {
    "mutatingadmissionpolicies": "MutatingAdmissionPolicy",
    "mutatingadmissionpolicybindings": "MutatingAdmissionPolicyBinding",
    "validatingadmissionpolicies": "ValidatingAdmissionPolicy",
    "validatingadmissionpolicybindings": "ValidatingAdmissionPolicyBinding",
}
ACCESS_REVIEW_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
HPA_RE = re.compile(r"^/apis/autoscaling/v2/(?:namespaces/([^/]+)/)?horizontalpodautoscalers(?:/([^/]+))?$")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class K8sStandin:
    """The recording, admitting stand-in; see the module docstring for its API."""

    requests: list[Recorded] = field(default_factory=list)
    webhook_configurations: dict[str, dict[str, Any]] = field(default_factory=dict)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    git_version: str = "v1.30.2"
    users: dict[str, tuple[str, list[str]]] = field(default_factory=default_users)
    webhook_targets: dict[str, str] = field(default_factory=dict)
    admission_calls: list[AdmissionCall] = field(default_factory=list)
    # (kind, name) -> object, e.g. ("MutatingAdmissionPolicy", "kubedoor-prod"); the apiVersion is kept.
    admission_policies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # (namespace, name) -> ConfigMap
    config_maps: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # token → what SelfSubjectAccessReviews allow it: (group, resource[/subresource], verb, name) with
    # name "" for any object. A token not listed here is allowed everything.
    permissions: dict[str, set[tuple[str, str, str, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()  # Deployment writes, one at a time (webhooks are called unlocked)
        self._scripts: dict[tuple[str, str], list[_Script]] = {}
        self._deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self._hpas: dict[tuple[str, str], dict[str, Any]] = {}
        self._pods: dict[tuple[str, str], dict[str, Any]] = {}
        self._resize_plans: dict[tuple[str, str], list[str]] = {}
        self._resize_pending: dict[tuple[str, str], list[str]] = {}  # the steps a resized pod has left
        self._pod_serial = 0  # pods' own counter: the Deployments' resourceVersions stay as they were
        self._version = 100
        self._stopping = threading.Event()
        self._http = LoopbackHTTPServer(self._serve, name="k8s-standin")
        self.on_request: Callable[[Recorded], None] | None = None
        self.url = ""

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> K8sStandin:
        self.url = self._http.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._http.stop()

    # --- scripting, routing and inspection ---------------------------------------------------

    def respond(
        self,
        method: str,
        path: str,
        *,
        status: int = 200,
        body: Any = None,
        delay: float = 0.0,
        times: int | None = None,
    ) -> None:
        with self._lock:
            self._scripts.setdefault((method.upper(), path), []).append(_Script(status, body, delay, times))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.admission_calls.clear()
            self._scripts.clear()

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper()) and (path is None or r.path == path)
            ]

    def route_webhooks(self, to: str, *, service: str | None = None, url: str | None = None) -> None:
        """Send the calls of the webhooks of Service ``service`` ("namespace/name"), or of those whose
        clientConfig.url starts with ``url``, or (neither given) of every webhook, to base URL ``to``."""
        with self._lock:
            self.webhook_targets[service or url or "*"] = to.rstrip("/")

    # --- state -------------------------------------------------------------------------------

    def add_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        with self._lock:
            self.namespaces.setdefault(name, {}).update(labels or {})

    def add_deployment(
        self,
        namespace: str,
        name: str,
        *,
        replicas: int = 1,
        containers: list[dict[str, Any]] | None = None,
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            self.add_namespace(namespace)
            obj = objects.deployment_defaults(
                deployment_manifest(namespace, name, replicas=replicas, containers=containers, labels=labels)
            )
            obj["metadata"].update(
                {
                    "uid": f"uid-{namespace}-{name}",
                    "resourceVersion": self._next_version(),
                    "generation": 1,
                    "creationTimestamp": objects.now_stamp(),
                }
            )
            obj["status"] = objects.deployment_status(obj)
            self._deployments[(namespace, name)] = obj
            self._pods_sync(namespace, name)
            return copy.deepcopy(obj)

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._deployments.get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def pods(self, namespace: str, deployment: str) -> list[dict[str, Any]]:
        """The pods of a Deployment as the state holds them now (copies), by name."""
        with self._lock:
            prefix = f"{deployment}-"
            return [
                copy.deepcopy(pod)
                for (ns, name), pod in sorted(self._pods.items())
                if ns == namespace and name.startswith(prefix) and self._owner(pod) == deployment
            ]

    def resize_plan(self, namespace: str, pod: str, *states: str) -> None:
        """The states pod ``namespace/pod`` goes through after its next resize (see pods.py)."""
        for state in states:
            if state not in pods.RESIZE_STATES:
                raise ValueError(f"unknown resize state {state!r}")
        with self._lock:
            self._resize_plans[(namespace, pod)] = list(states) or ["done"]

    def add_hpa(
        self, namespace: str, name: str, target_deployment: str, *, min_replicas: int = 1, max_replicas: int = 10
    ) -> dict[str, Any]:
        with self._lock:
            self.add_namespace(namespace)
            target = self._deployments.get((namespace, target_deployment))
            current = ((target or {}).get("spec") or {}).get("replicas") or 0
            obj = {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": self._next_version(),
                    "creationTimestamp": objects.now_stamp(),
                },
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target_deployment},
                    "minReplicas": min_replicas,
                    "maxReplicas": max_replicas,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                        }
                    ],
                },
                "status": {"currentReplicas": current, "desiredReplicas": current},
            }
            self._hpas[(namespace, name)] = obj
            return copy.deepcopy(obj)

    def hpa(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._hpas.get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    # --- acting as a client ------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = KUBECTL_TOKEN,
        content_type: str | None = None,
        query: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> Answer:
        """One HTTP request to the stand-in as ``token``'s user; never raises for an HTTP error status."""
        method = method.upper()
        url = self.url + path + (("&" if "?" in path else "?") + urlencode(query) if query else "")
        data = None
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
            default = objects.STRATEGIC_MERGE_PATCH if method == "PATCH" else "application/json"
            headers["Content-Type"] = content_type or default
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with _NO_PROXY.open(request, timeout=timeout) as response:
                status, raw, got = response.status, response.read(), response.headers
        except urllib.error.HTTPError as exc:
            status, raw, got = exc.code, exc.read(), exc.headers
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode("utf-8", "replace")
        return Answer(status, parsed, got)

    def kubectl_create(self, manifest: dict[str, Any], *, dry_run: bool = False, token: str = KUBECTL_TOKEN) -> Answer:
        """``kubectl apply -f`` of a new Deployment: a POST carrying the last-applied annotation."""
        body = copy.deepcopy(manifest)
        annotations = body.setdefault("metadata", {}).setdefault("annotations", {})
        annotations["kubectl.kubernetes.io/last-applied-configuration"] = json.dumps(manifest, sort_keys=True) + "\n"
        namespace = body["metadata"].get("namespace", "default")
        query = {"fieldManager": "kubectl-client-side-apply", "fieldValidation": "Strict"}
        if dry_run:
            query["dryRun"] = "All"
        return self.request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", body, token=token, query=query)

    def kubectl_scale(self, namespace: str, name: str, replicas: int, *, token: str = KUBECTL_TOKEN) -> Answer:
        """``kubectl scale deployment/<name> --replicas=N``: a merge patch of the scale subresource."""
        return self.request(
            "PATCH",
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
            {"spec": {"replicas": replicas}},
            token=token,
            content_type=objects.MERGE_PATCH,
        )

    def kubectl_set_image(
        self, namespace: str, name: str, container: str, image: str, *, token: str = KUBECTL_TOKEN
    ) -> Answer:
        """``kubectl set image deployment/<name> <container>=<image>``: a strategic merge patch."""
        return self.request(
            "PATCH",
            f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
            {"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}},
            token=token,
            content_type=objects.STRATEGIC_MERGE_PATCH,
            query={"fieldManager": "kubectl-set"},
        )

    # --- serving -----------------------------------------------------------------------------

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def _user(self, headers: dict[str, str]) -> User | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        known = self.users.get(token.strip()) if scheme.lower() == "bearer" else None
        return User(known[0], tuple(known[1])) if known else None

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in handler.headers.items()}
        user = self._user(headers)
        record = Recorded(
            method=handler.command,
            path=parts.path,
            query=parse_qs(parts.query),
            content_type=handler.headers.get("Content-Type", ""),
            body=body,
            headers=headers,
            at=time.time(),
            user=user.username if user else "",
        )
        if self.on_request is not None:
            self.on_request(record)
        with self._lock:
            self.requests.append(record)
            script = self._take_script(record.method, record.path)
        if script is not None:
            if script.delay:
                self._stopping.wait(script.delay)
            reply = _Reply(script.status, script.body)
            if reply.body is None and reply.status >= 400:
                reply.body = status_object(reply.status, f"scripted {reply.status} for {record.method} {record.path}")
        else:
            try:
                reply = self._default(record, user)
            except ApiError as exc:
                reply = _Reply(exc.code, exc.body, exc.warnings)
        self._send(handler, reply)

    def _take_script(self, method: str, path: str) -> _Script | None:
        scripts = self._scripts.get((method, path)) or []
        for script in scripts:  # counted scripts first, in the order they were set
            if script.times is not None and script.times > 0:
                script.times -= 1
                return script
        unlimited = [script for script in scripts if script.times is None]
        return unlimited[-1] if unlimited else None

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, reply: _Reply) -> None:
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", "application/json")
            for text in reply.warnings:
                # Go writes the header's UTF-8 bytes as they are; http.server encodes latin-1.
                handler.send_header("Warning", warning_header(text).encode().decode("latin-1"))
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def _default(self, r: Recorded, user: User | None) -> _Reply:
        if r.method == "GET" and r.path in ("/version", "/version/"):
            return _Reply(200, self._version_info())
        if user is None:
            return _Reply(401, status_object(401, "Unauthorized", reason="Unauthorized"))
        selector = (r.query.get("labelSelector") or [""])[0]
        if r.method == "GET" and r.path == "/apis/apps/v1/deployments":
            with self._lock:
                items = [
                    copy.deepcopy(d)
                    for _, d in sorted(self._deployments.items())
                    if selector_matches(selector, d["metadata"].get("labels") or {})
                ]
                return _Reply(200, self._list("DeploymentList", "apps/v1", items, r.query))
        if r.method == "POST" and r.path == ACCESS_REVIEW_PATH:
            return self._access_review(r, user)
        match = NAMESPACE_RE.match(r.path)
        if match and r.method == "GET":
            return self._namespaces(match.group(1), selector)
        match = DEPLOYMENT_RE.match(r.path)
        if match:
            namespace, name, scale = match.group(1), match.group(2), bool(match.group(3))
            if r.method == "GET":
                return self._deployment_read(namespace, name, scale, selector, r.query)
            if r.method in ("POST", "PUT", "PATCH", "DELETE"):
                return self._deployment_write(r, user, namespace, name, scale)
            return _Reply(405, status_object(405, "method not allowed"))
        match = POD_RE.match(r.path)
        if match:
            return self._pod_call(r, match.group(1), match.group(2), bool(match.group(3)), selector)
        match = CONFIG_MAP_RE.match(r.path)
        if match:
            with self._lock:
                return self._config_map_call(r, match.group(1), match.group(2))
        match = POLICY_RE.match(r.path)
        if match:
            with self._lock:
                return self._policy_call(r, match.group(1), POLICY_KINDS[match.group(2)], match.group(3))
        match = HPA_RE.match(r.path)
        if match and r.method == "GET":
            return self._hpa_read(match.group(1), match.group(2), selector)
        match = WEBHOOK_RE.match(r.path)
        if match:
            with self._lock:
                return self._webhook_call(r, match.group(1), bool(r.query.get("dryRun")))
        message = f"the server could not find the requested resource ({r.method} {r.path})"
        return _Reply(404, status_object(404, message))

    def _access_review(self, r: Recorded, user: User) -> _Reply:
        """A SelfSubjectAccessReview, answered from ``permissions`` of the caller's token."""
        body = r.body if isinstance(r.body, dict) else {}
        attributes = (body.get("spec") or {}).get("resourceAttributes")
        if body.get("kind") != "SelfSubjectAccessReview" or not isinstance(attributes, dict):
            raise ApiError(400, "SelfSubjectAccessReview: spec.resourceAttributes is required")
        token = r.headers.get("authorization", "").partition(" ")[2].strip()
        resource = str(attributes.get("resource") or "")
        if attributes.get("subresource"):
            resource = f"{resource}/{attributes['subresource']}"
        wanted = (str(attributes.get("group") or ""), resource, str(attributes.get("verb") or ""))
        granted = self.permissions.get(token)
        name = str(attributes.get("name") or "")
        allowed = granted is None or any(g[:3] == wanted and g[3] in ("", name) for g in granted)
        status: dict[str, Any] = {"allowed": allowed}
        if allowed:
            status["reason"] = f'RBAC: allowed for user "{user.username}"'
        return _Reply(201, {**body, "apiVersion": "authorization.k8s.io/v1", "status": status})

    def _version_info(self) -> dict[str, str]:
        found = re.match(r"v(\d+)\.(\d+)", self.git_version)
        major, minor = (found.group(1), found.group(2)) if found else ("1", "30")
        return {
            "major": major,
            "minor": minor,
            "gitVersion": self.git_version,
            "gitCommit": "39683505b630ff2121012f3c5b16215a1449d5ed",
            "gitTreeState": "clean",
            "buildDate": "2024-06-11T20:21:00Z",
            "goVersion": "go1.22.4",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    def _minor(self) -> int:
        return int(self._version_info()["minor"])

    def _list(
        self, kind: str, api_version: str, items: list[dict[str, Any]], query: dict[str, list[str]] | None = None
    ) -> dict[str, Any]:
        """A list answer; with ``limit`` in ``query`` one page of it and a ``continue`` token for the next
        (an opaque text, as a real server's; a token that is not one of ours is 400)."""
        metadata: dict[str, Any] = {"resourceVersion": str(self._version)}
        query = query or {}
        start = 0
        token = (query.get("continue") or [""])[0]
        if token:
            try:
                start = int(json.loads(base64.urlsafe_b64decode(token.encode()))["start"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ApiError(400, f"continue key is not valid: {exc}") from None
        limit = int((query.get("limit") or ["0"])[0] or 0)
        if limit > 0:
            end = start + limit
            if end < len(items):
                metadata["continue"] = base64.urlsafe_b64encode(json.dumps({"start": end}).encode()).decode()
                metadata["remainingItemCount"] = len(items) - end
            items = items[start:end]
        else:
            items = items[start:]
        return {"kind": kind, "apiVersion": api_version, "metadata": metadata, "items": items}

    # --- reads -------------------------------------------------------------------------------

    def _namespaces(self, name: str | None, selector: str) -> _Reply:
        def namespace(n: str, labels: dict[str, str]) -> dict[str, Any]:
            return {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": n, "labels": dict(labels)},
                "status": {"phase": "Active"},
            }

        with self._lock:
            if name is not None:
                if name not in self.namespaces:
                    raise objects.not_found("namespaces", name, group="")
                return _Reply(200, namespace(name, self.namespaces[name]))
            items = [
                namespace(n, labels)
                for n, labels in sorted(self.namespaces.items())
                if selector_matches(selector, {**labels, "kubernetes.io/metadata.name": n})
            ]
            return _Reply(200, self._list("NamespaceList", "v1", items))

    def _deployment_read(
        self, namespace: str, name: str | None, scale: bool, selector: str, query: dict[str, list[str]] | None = None
    ) -> _Reply:
        with self._lock:
            if name is None:
                items = [
                    copy.deepcopy(d)
                    for (ns, _), d in sorted(self._deployments.items())
                    if ns == namespace and selector_matches(selector, d["metadata"].get("labels") or {})
                ]
                return _Reply(200, self._list("DeploymentList", "apps/v1", items, query))
            obj = self._deployments.get((namespace, name))
            if obj is None:
                raise objects.not_found("deployments", name)
            return _Reply(200, objects.scale_of(obj) if scale else copy.deepcopy(obj))

    def _hpa_read(self, namespace: str | None, name: str | None, selector: str) -> _Reply:
        with self._lock:
            if name is not None and namespace is not None:
                obj = self._hpas.get((namespace, name))
                if obj is None:
                    raise objects.not_found("horizontalpodautoscalers", name, group="autoscaling")
                return _Reply(200, copy.deepcopy(obj))
            items = [
                copy.deepcopy(h)
                for (ns, _), h in sorted(self._hpas.items())
                if (namespace is None or ns == namespace)
                and selector_matches(selector, h["metadata"].get("labels") or {})
            ]
            return _Reply(200, self._list("HorizontalPodAutoscalerList", "autoscaling/v2", items))

    # --- Deployment writes -------------------------------------------------------------------

    def _deployment_write(self, r: Recorded, user: User, namespace: str, name: str | None, scale: bool) -> _Reply:
        dry_run = bool(r.query.get("dryRun"))
        with self._write_lock:
            with self._lock:
                current = copy.deepcopy(self._deployments.get((namespace, name))) if name else None
                namespace_labels = copy.deepcopy(self.namespaces.get(namespace))
                configurations = copy.deepcopy(self.webhook_configurations)
                targets = dict(self.webhook_targets)
            if name is None:
                if r.method != "POST":
                    return _Reply(405, status_object(405, "method not allowed"))
                if namespace_labels is None:
                    raise objects.not_found("namespaces", namespace, group="")
                attrs = self._create_attributes(r, user, namespace, dry_run)
            else:
                if r.method == "POST" or (scale and r.method == "DELETE"):
                    return _Reply(405, status_object(405, "method not allowed"))
                if current is None:
                    raise objects.not_found("deployments", name)
                attrs = self._change_attributes(r, user, current, scale, dry_run)
            outcome = admit(
                attrs,
                configurations=configurations,
                namespace_labels=namespace_labels or {},
                targets=targets,
                record=self._record_admission,
            )
            with self._lock:
                stored_policies = copy.deepcopy(self.admission_policies)
                params = {n: copy.deepcopy(c) for (ns, n), c in self.config_maps.items() if ns == namespace}
            if stored_policies:  # the webhook-less engine: admission policies after the mutating webhooks
                outcome.object = policies.admit(
                    attrs,
                    outcome.object,
                    stored=stored_policies,
                    params_by_name=params,
                    namespace_labels=namespace_labels or {},
                )
            try:
                return self._finish(attrs, current, outcome.object, dry_run, outcome.warnings)
            except ApiError as exc:
                exc.warnings = outcome.warnings
                raise

    def _record_admission(self, call: AdmissionCall) -> None:
        with self._lock:
            self.admission_calls.append(call)

    def _create_attributes(self, r: Recorded, user: User, namespace: str, dry_run: bool) -> Attributes:
        body = r.body
        if not isinstance(body, dict) or body.get("kind", "Deployment") != "Deployment":
            raise ApiError(400, "the body of the request is not a Deployment")
        if body.get("apiVersion", "apps/v1") != "apps/v1":
            raise ApiError(400, f"the API version in the data ({body.get('apiVersion')}) does not match apps/v1")
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = "apps/v1", "Deployment"
        meta = obj.setdefault("metadata", {})
        if meta.get("namespace") not in (None, "", namespace):
            raise ApiError(400, "the namespace of the provided object does not match the namespace sent on the request")
        meta["namespace"] = namespace
        for key in ("uid", "resourceVersion", "creationTimestamp", "generation", "deletionTimestamp"):
            meta.pop(key, None)
        obj.pop("status", None)
        request_name = meta.get("name") or ""
        if not request_name and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]  # named after admission, as in Go
        options = request_options("CREATE", dry_run=dry_run, query=r.query)
        return Attributes(
            "CREATE", namespace, request_name, "", objects.deployment_defaults(obj), None, user, dry_run, options
        )

    def _change_attributes(
        self, r: Recorded, user: User, current: dict[str, Any], scale: bool, dry_run: bool
    ) -> Attributes:
        namespace, name = current["metadata"]["namespace"], current["metadata"]["name"]
        if r.method == "DELETE":
            options = request_options("DELETE", dry_run=dry_run, query=r.query)
            return Attributes("DELETE", namespace, name, "", None, current, user, dry_run, options)
        old = objects.scale_of(current) if scale else current
        if r.method == "PUT":
            if not isinstance(r.body, dict):
                raise ApiError(400, "the body of the request was in an unknown format")
            new = copy.deepcopy(r.body)
            sent_name = (new.get("metadata") or {}).get("name")
            if sent_name != name:
                raise ApiError(400, f"the name of the object ({sent_name}) does not match the name on the URL ({name})")
        else:
            new = objects.apply_patch(old, r.body, r.content_type)
        meta = new.setdefault("metadata", {})
        sent_version = meta.get("resourceVersion")
        if sent_version and sent_version != current["metadata"]["resourceVersion"]:
            raise objects.conflict("deployments.apps", name)
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        for key in ("name", "namespace", "uid", "creationTimestamp", "resourceVersion", "generation"):
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
        if scale:
            new["status"] = copy.deepcopy(old["status"])
        else:
            objects.deployment_defaults(new)
        options = request_options("UPDATE", dry_run=dry_run, query=r.query)
        return Attributes("UPDATE", namespace, name, "scale" if scale else "", new, old, user, dry_run, options)

    def _finish(
        self,
        attrs: Attributes,
        current: dict[str, Any] | None,
        admitted: dict[str, Any] | None,
        dry_run: bool,
        warnings: list[str],
    ) -> _Reply:
        """Validate the admitted object and store it (unless a dry run): the answer to the caller."""
        created_name = ((admitted or {}).get("metadata") or {}).get("name") or ""
        key = (attrs.namespace, attrs.name if current is not None else created_name)
        if attrs.operation == "DELETE":
            assert current is not None
            if not dry_run:
                with self._lock:
                    self._deployments.pop(key, None)
                    self._pods_sync(*key)
            details = {"name": attrs.name, "group": "apps", "kind": "deployments", "uid": current["metadata"]["uid"]}
            body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
            return _Reply(200, body, warnings)
        assert admitted is not None
        if attrs.sub_resource == "scale":
            assert current is not None
            replicas = (admitted.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                error = ("spec.replicas", f"Invalid value: {replicas}", "must be greater than or equal to 0")
                raise objects.invalid("Scale", "autoscaling", attrs.name, [error])
            new = copy.deepcopy(current)
            new["spec"]["replicas"] = replicas
        else:
            new = objects.deployment_defaults(copy.deepcopy(admitted))  # defaults again after the patches
            errors = objects.deployment_errors(new, old=current)
            if errors:
                raise objects.invalid("Deployment", "apps", key[1], errors)
            if current is not None:
                for meta_key in ("name", "namespace", "uid", "creationTimestamp", "generation"):
                    new["metadata"][meta_key] = current["metadata"][meta_key]
                new["status"] = copy.deepcopy(current["status"])
            else:
                new["metadata"]["namespace"] = attrs.namespace
        stored = self._store(key, new, current, dry_run)
        if attrs.sub_resource == "scale":
            return _Reply(200, objects.scale_of(stored), warnings)
        return _Reply(201 if current is None else 200, stored, warnings)

    def _store(
        self, key: tuple[str, str], new: dict[str, Any], current: dict[str, Any] | None, dry_run: bool
    ) -> dict[str, Any]:
        with self._lock:
            if current is None:
                if key in self._deployments:
                    raise ApiError(
                        409,
                        f'deployments.apps "{key[1]}" already exists',
                        details={"name": key[1], "group": "apps", "kind": "deployments"},
                    )
                new["metadata"].update(
                    {"uid": str(uuid.uuid4()), "creationTimestamp": objects.now_stamp(), "generation": 1}
                )
            else:
                new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                if new == current:
                    return new  # a no-op write changes nothing, not even the resourceVersion
                if new["spec"] != current["spec"]:
                    new["metadata"]["generation"] = current["metadata"]["generation"] + 1
            if not dry_run:
                new["metadata"]["resourceVersion"] = self._next_version()
            elif current is None:
                new["metadata"].pop("resourceVersion", None)  # a dry-run create is stored nowhere
            new["status"] = objects.deployment_status(new)
            if not dry_run:
                self._deployments[key] = copy.deepcopy(new)
                self._pods_sync(*key)
            return new

    # --- pods and their resize subresource -----------------------------------------------------

    @staticmethod
    def _owner(pod: dict[str, Any]) -> str:
        owner = ((pod["metadata"].get("ownerReferences") or [{}])[0]).get("name", "")
        return owner.rsplit("-", 1)[0]

    def _pods_sync(self, namespace: str, name: str) -> None:
        """The instantaneous ReplicaSet controller: ``spec.replicas`` pods of the current template."""
        with self._lock:
            deployment = self._deployments.get((namespace, name))
            mine = sorted(key for key, pod in self._pods.items() if key[0] == namespace and self._owner(pod) == name)
            if deployment is None:
                for key in mine:
                    del self._pods[key]
                return
            wanted = pods.template_hash(deployment["spec"]["template"])
            for key in mine:
                if self._pods[key]["metadata"]["labels"].get("pod-template-hash") != wanted:
                    del self._pods[key]  # a rollout replaces every pod of the old template
            current = sorted(key for key, pod in self._pods.items() if key[0] == namespace and self._owner(pod) == name)
            replicas = deployment["spec"].get("replicas") or 0
            for key in current[replicas:]:
                del self._pods[key]
            index = 0
            while len([k for k in self._pods if k[0] == namespace and self._owner(self._pods[k]) == name]) < replicas:
                self._pod_serial += 1
                pod = pods.pod_for(deployment, index, uid=f"uid-pod-{self._pod_serial}", version=f"p{self._pod_serial}")
                index += 1
                key = (namespace, pod["metadata"]["name"])
                if key not in self._pods:
                    self._pods[key] = pod

    def _pod_advance(self, key: tuple[str, str]) -> None:
        """A read of a pod moves its resize one step along its plan (the last step stays)."""
        plan = self._resize_pending.get(key)
        if plan and len(plan) > 1:
            plan.pop(0)
            pods.resize_state_apply(self._pods[key], plan[0])

    def _pod_call(self, r: Recorded, namespace: str, name: str | None, resize: bool, selector: str) -> _Reply:
        with self._lock:
            if name is None:
                if r.method != "GET":
                    return _Reply(405, status_object(405, "method not allowed"))
                keys = [
                    key
                    for key, pod in sorted(self._pods.items())
                    if key[0] == namespace and selector_matches(selector, pod["metadata"].get("labels") or {})
                ]
                for key in keys:
                    self._pod_advance(key)
                return _Reply(200, self._list("PodList", "v1", [copy.deepcopy(self._pods[key]) for key in keys]))
            key = (namespace, name)
            pod = self._pods.get(key)
            if pod is None:
                raise objects.not_found("pods", name, group="")
            if r.method == "GET":
                self._pod_advance(key)
                return _Reply(200, copy.deepcopy(self._pods[key]))
            if not resize or r.method != "PATCH":
                return _Reply(405, status_object(405, "method not allowed"))
            if self._minor() < 33:  # the resize subresource arrived (beta, on by default) in 1.33
                message = f"the server could not find the requested resource ({r.method} {r.path})"
                return _Reply(404, status_object(404, message))
            patched = pods.resize_patched(pod, r.body, r.content_type)
            if r.query.get("dryRun"):
                return _Reply(200, patched)
            if patched["spec"] != pod["spec"]:
                patched["metadata"]["generation"] = pod["metadata"].get("generation", 1) + 1
                self._pod_serial += 1
                patched["metadata"]["resourceVersion"] = f"p{self._pod_serial}"
                plan = list(self._resize_plans.get(key) or ["done"])
                self._resize_pending[key] = plan
                pods.resize_state_apply(patched, plan[0])
            self._pods[key] = patched
            return _Reply(200, copy.deepcopy(patched))

    # --- ConfigMaps (the admission policy's parameters) -----------------------------------------

    def _config_map_call(self, r: Recorded, namespace: str, name: str | None) -> _Reply:
        dry_run = bool(r.query.get("dryRun"))
        if name is None:
            if r.method == "GET":
                items = [copy.deepcopy(c) for (ns, _), c in sorted(self.config_maps.items()) if ns == namespace]
                return _Reply(200, self._list("ConfigMapList", "v1", items))
            if r.method != "POST" or not isinstance(r.body, dict):
                return _Reply(405, status_object(405, "method not allowed"))
            if namespace not in self.namespaces:
                raise objects.not_found("namespaces", namespace, group="")
            new_name = (r.body.get("metadata") or {}).get("name", "")
            if (namespace, new_name) in self.config_maps:
                return _Reply(409, status_object(409, f'configmaps "{new_name}" already exists'))
            obj = self._config_map_checked(r.body, namespace, new_name)
            if not dry_run:
                self.config_maps[(namespace, new_name)] = obj
            return _Reply(201, copy.deepcopy(obj))
        existing = self.config_maps.get((namespace, name))
        if existing is None:
            raise objects.not_found("configmaps", name, group="")
        if r.method == "GET":
            return _Reply(200, copy.deepcopy(existing))
        if r.method == "PUT" and isinstance(r.body, dict):
            sent_version = (r.body.get("metadata") or {}).get("resourceVersion")
            if sent_version and sent_version != existing["metadata"]["resourceVersion"]:
                raise objects.conflict("configmaps", name)
            obj = self._config_map_checked(r.body, namespace, name)
            obj["metadata"]["uid"] = existing["metadata"]["uid"]
            if not dry_run:
                self.config_maps[(namespace, name)] = obj
            return _Reply(200, copy.deepcopy(obj))
        if r.method == "DELETE":
            if not dry_run:
                del self.config_maps[(namespace, name)]
            return _Reply(200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name}})
        return _Reply(405, status_object(405, "method not allowed"))

    def _config_map_checked(self, body: dict[str, Any], namespace: str, name: str) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        data = obj.get("data") or {}
        bad = [key for key in data if not re.fullmatch(r"[-._a-zA-Z0-9]+", key) or not isinstance(data[key], str)]
        if bad:
            raise objects.invalid("ConfigMap", "", name, [(f"data[{bad[0]}]", "Invalid value", "a valid config key")])
        size = sum(len(key) + len(value.encode()) for key, value in data.items())
        if size > 1024 * 1024:
            raise objects.invalid("ConfigMap", "", name, [("data", "Too long", "must have at most 1048576 bytes")])
        obj["apiVersion"], obj["kind"] = "v1", "ConfigMap"
        obj["metadata"]["namespace"] = namespace
        obj["metadata"]["resourceVersion"] = self._next_version()
        obj["metadata"].setdefault("uid", f"uid-cm-{namespace}-{name}")
        return obj

    # --- admission policies and their bindings ------------------------------------------------

    def _policy_versions(self, kind: str) -> tuple[str, ...]:
        """The admissionregistration versions this server serves for ``kind`` (by ``git_version``)."""
        minor = self._minor()
        if kind.startswith("Validating"):
            return ("v1",) if minor >= 30 else ()
        served = []
        if minor >= 36:
            served.append("v1")
        if minor >= 34:
            served.append("v1beta1")
        return tuple(served)

    def _policy_call(self, r: Recorded, version: str, kind: str, name: str | None) -> _Reply:
        if version not in self._policy_versions(kind):
            message = f"the server could not find the requested resource ({r.method} {r.path})"
            return _Reply(404, status_object(404, message))
        plural = next(p for p, k in POLICY_KINDS.items() if k == kind)
        dry_run = bool(r.query.get("dryRun"))
        if name is None:
            if r.method == "GET":
                items = [copy.deepcopy(o) for (k, _), o in sorted(self.admission_policies.items()) if k == kind]
                return _Reply(200, self._list(f"{kind}List", f"admissionregistration.k8s.io/{version}", items))
            if r.method != "POST" or not isinstance(r.body, dict):
                return _Reply(405, status_object(405, "method not allowed"))
            new_name = (r.body.get("metadata") or {}).get("name", "")
            if (kind, new_name) in self.admission_policies:
                message = f'{plural}.admissionregistration.k8s.io "{new_name}" already exists'
                return _Reply(409, status_object(409, message))
            obj = copy.deepcopy(r.body)
            obj["metadata"]["resourceVersion"] = self._next_version()
            obj["metadata"]["uid"] = f"uid-{kind}-{new_name}"
            if not dry_run:
                self.admission_policies[(kind, new_name)] = obj
            return _Reply(201, copy.deepcopy(obj))
        existing = self.admission_policies.get((kind, name))
        if existing is None:
            raise objects.not_found(plural, name, group="admissionregistration.k8s.io")
        if r.method == "GET":
            return _Reply(200, copy.deepcopy(existing))
        if r.method == "PUT" and isinstance(r.body, dict):
            if (r.body.get("metadata") or {}).get("resourceVersion") != existing["metadata"]["resourceVersion"]:
                raise objects.conflict(f"{plural}.admissionregistration.k8s.io", name)
            obj = copy.deepcopy(r.body)
            obj["metadata"]["resourceVersion"] = self._next_version()
            obj["metadata"]["uid"] = existing["metadata"]["uid"]
            if not dry_run:
                self.admission_policies[(kind, name)] = obj
            return _Reply(200, copy.deepcopy(obj))
        if r.method == "DELETE":
            if not dry_run:
                del self.admission_policies[(kind, name)]
            return _Reply(200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name}})
        return _Reply(405, status_object(405, "method not allowed"))

    # --- MutatingWebhookConfigurations -------------------------------------------------------

    def _without_unknown_fields(self, obj: dict[str, Any]) -> list[str]:
        """Drop ``matchConditions`` on servers without the feature (1.28 turned it on by default)."""
        minor = self._minor()
        warnings = []
        if minor >= 28:
            return warnings
        for index, webhook in enumerate(obj.get("webhooks") or []):
            if isinstance(webhook, dict) and webhook.pop("matchConditions", None) is not None and minor < 27:
                warnings.append(f'unknown field "webhooks[{index}].matchConditions"')
        return warnings

    def _webhook_call(self, r: Recorded, name: str | None, dry_run: bool) -> _Reply:
        configs = self.webhook_configurations
        if name is None:
            if r.method == "GET":
                return _Reply(
                    200,
                    self._list(
                        "MutatingWebhookConfigurationList", "admissionregistration.k8s.io/v1", list(configs.values())
                    ),
                )
            if r.method == "POST":
                if not isinstance(r.body, dict):
                    return _Reply(400, status_object(400, "bad body"))
                new_name = (r.body.get("metadata") or {}).get("name", "")
                if new_name in configs:
                    return _Reply(409, status_object(409, f'mutatingwebhookconfigurations "{new_name}" already exists'))
                obj = copy.deepcopy(r.body)
                warnings = self._without_unknown_fields(obj)
                obj["metadata"]["resourceVersion"] = self._next_version()
                obj["metadata"]["uid"] = f"uid-{new_name}"
                if not dry_run:
                    configs[new_name] = obj
                return _Reply(201, obj, warnings)
            return _Reply(405, status_object(405, "method not allowed"))
        existing = configs.get(name)
        if existing is None:
            return _Reply(
                404,
                status_object(404, f'mutatingwebhookconfigurations.admissionregistration.k8s.io "{name}" not found'),
            )
        if r.method == "GET":
            return _Reply(200, copy.deepcopy(existing))
        if r.method == "PUT":
            if not isinstance(r.body, dict):
                return _Reply(400, status_object(400, "bad body"))
            sent_version = (r.body.get("metadata") or {}).get("resourceVersion")
            if sent_version != existing["metadata"]["resourceVersion"]:
                raise objects.conflict("mutatingwebhookconfigurations.admissionregistration.k8s.io", name)
            obj = copy.deepcopy(r.body)
            warnings = self._without_unknown_fields(obj)
            obj["metadata"]["resourceVersion"] = self._next_version()
            obj["metadata"]["uid"] = existing["metadata"].get("uid", f"uid-{name}")
            if not dry_run:
                configs[name] = obj
            return _Reply(200, obj, warnings)
        if r.method == "DELETE":
            if not dry_run:
                del configs[name]
            return _Reply(
                200,
                {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": {"name": name}},
            )
        return _Reply(405, status_object(405, "method not allowed"))


def standin_kubeconfig(url: str, *, context: str = "standin", token: str = KUBEDOOR_TOKEN) -> str:
    """Kubeconfig YAML text whose context ``context`` points at ``url`` (plain HTTP, bearer token)."""
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        f"current-context: {context}\n"
        "clusters:\n"
        f"- name: {context}\n"
        f"  cluster:\n    server: {url}\n"
        "users:\n"
        f"- name: {context}\n"
        f"  user:\n    token: {token}\n"
        "contexts:\n"
        f"- name: {context}\n"
        f"  context:\n    cluster: {context}\n    user: {context}\n"
    )


def standin_cluster(standin: K8sStandin, *, name: str = "prod", **fields: Any) -> Any:
    """The ``Cluster`` ``name`` (created when missing) whose stored kubeconfig points at the stand-in."""
    from apps.control.models import Cluster

    cluster, _ = Cluster.objects.get_or_create(name=name, defaults={"display_name": name.title()})
    cluster.kubeconfig = standin_kubeconfig(standin.url)
    cluster.in_cluster = False
    cluster.kubeconfig_path = ""
    cluster.kube_context = ""
    for key, value in fields.items():
        setattr(cluster, key, value)
    cluster.save()
    return cluster


@pytest.fixture
def k8s_standin() -> Iterator[K8sStandin]:
    standin = K8sStandin().start()
    yield standin
    standin.stop()


@pytest.fixture
def k8s_cluster(k8s_standin: K8sStandin, db: None) -> Any:
    return standin_cluster(k8s_standin, name="prod")
