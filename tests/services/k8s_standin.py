"""A recording stand-in of the Kubernetes API server (no real kube-apiserver can run here).

A small threaded HTTP server on loopback that the official client (and so ``apps/control/k8s.py``)
talks to, in this process or in a Celery worker subprocess. It records every request and answers
either from a script the test sets, or from a tiny in-memory state of Deployments, Namespaces and
MutatingWebhookConfigurations.

Fixtures and helpers
--------------------
``k8s_standin`` (function scope) yields a started :class:`K8sStandin`; it is stopped afterwards.

``standin_kubeconfig(url)`` returns kubeconfig YAML text (context ``standin``) pointing at ``url``.

``standin_cluster(standin, name="prod", **fields)`` creates (or updates) the ``Cluster`` ``name``
whose stored ``kubeconfig`` points at the stand-in; needs database access.

``k8s_cluster`` (fixture) = ``standin_cluster(k8s_standin, name="prod")``.

The :class:`K8sStandin` API
---------------------------
``standin.url``
    ``http://127.0.0.1:<port>``.
``standin.requests``
    every request received, in order, as :class:`Recorded` (``method``, ``path``, ``query`` — a dict of
    lists as ``urllib.parse.parse_qs`` gives —, ``content_type``, ``body`` — parsed JSON, or the raw
    text when not JSON, or ``None`` —, ``headers``, ``at`` — ``time.time()`` when received).
``standin.calls(method=None, path=None)``
    the recorded requests filtered by method and/or exact path.
``standin.respond(method, path, status=200, body=None, delay=0.0, times=None)``
    script the answer to ``method path`` (exact path, query ignored). ``body`` is sent as JSON; for
    an error status without a body a Kubernetes ``Status`` object is made. ``delay`` seconds are
    waited before answering (make it larger than the client timeout to simulate a hang).
    ``times`` limits how often the script applies (``None`` = always). Counted scripts are used
    first, in the order they were set; then the latest unlimited one; then the default behaviour.
``standin.reset()``
    forget recorded requests and scripted answers (state is kept).
``standin.add_deployment(namespace, name, replicas=1, containers=None, labels=None)``
    put a Deployment into the state (its namespace too) and return it.
``standin.deployment(namespace, name)``
    the Deployment as the state holds it now (a copy), or ``None``.
``standin.on_request``
    a callable given each :class:`Recorded` before it is answered, in the server's thread (e.g. to
    read the database through that thread's own connection and see only committed data).
``standin.add_namespace(name, labels=None)``; ``standin.webhook_configurations`` (dict name → object).

Default behaviour (when no script matches): GET/list Deployments (all namespaces or one; label
selectors of the ``k=v,k2=v2`` form are honoured), GET/PATCH the ``scale`` subresource (a merge patch
on ``spec.replicas``), PATCH a Deployment (a recursive merge of the body, lists replaced: enough for the
restart annotation), list Namespaces, and GET/POST/PUT/DELETE MutatingWebhookConfigurations (PUT
needs the current ``metadata.resourceVersion``, else 409; POST of an existing name is 409). Each
write bumps ``metadata.resourceVersion`` (and a Deployment's ``generation`` on a spec change). A
``dryRun`` query parameter answers as if written without changing the state. Anything else is 404.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.services import LoopbackHTTPServer

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "AlreadyExists",
    422: "Invalid",
    500: "InternalError",
    503: "ServiceUnavailable",
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


@dataclass
class _Script:
    status: int
    body: Any
    delay: float
    times: int | None


def status_object(code: int, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": REASONS.get(code, "Unknown"),
        "code": code,
    }


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for term in filter(None, (part.strip() for part in selector.split(","))):
        key, _, value = term.partition("=")
        if labels.get(key.strip()) != value.strip().lstrip("="):
            return False
    return True


DEPLOYMENT_RE = re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments(?:/([^/]+))?(/scale)?$")
WEBHOOK_RE = re.compile(r"^/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations(?:/([^/]+))?$")


@dataclass
class K8sStandin:
    """The recording stand-in; see the module docstring for its API."""

    requests: list[Recorded] = field(default_factory=list)
    webhook_configurations: dict[str, dict[str, Any]] = field(default_factory=dict)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._scripts: dict[tuple[str, str], list[_Script]] = {}
        self._deployments: dict[tuple[str, str], dict[str, Any]] = {}
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

    # --- scripting and inspection ------------------------------------------------------------

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
            self._scripts.clear()

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper()) and (path is None or r.path == path)
            ]

    def add_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        with self._lock:
            self.namespaces.setdefault(name, dict(labels or {}))

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
            obj = {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": dict(labels or {"app": name}),
                    "uid": f"uid-{namespace}-{name}",
                    "resourceVersion": self._next_version(),
                    "generation": 1,
                },
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {"containers": containers or [{"name": name, "image": f"registry.local/{name}:1"}]},
                    },
                },
                "status": {
                    "replicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                    "updatedReplicas": replicas,
                    "observedGeneration": 1,
                },
            }
            self._deployments[(namespace, name)] = obj
            return copy.deepcopy(obj)

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._deployments.get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    # --- serving -----------------------------------------------------------------------------

    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

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
        query = parse_qs(parts.query)
        record = Recorded(
            method=handler.command,
            path=parts.path,
            query=query,
            content_type=handler.headers.get("Content-Type", ""),
            body=body,
            headers={k.lower(): v for k, v in handler.headers.items()},
            at=time.time(),
        )
        if self.on_request is not None:
            self.on_request(record)
        with self._lock:
            self.requests.append(record)
            script = self._take_script(record.method, record.path)
        if script is not None:
            if script.delay:
                self._stopping.wait(script.delay)
            status, answer = script.status, script.body
            if answer is None and status >= 400:
                answer = status_object(status, f"scripted {status} for {record.method} {record.path}")
        else:
            with self._lock:
                status, answer = self._default(record)
        self._send(handler, status, answer)

    def _take_script(self, method: str, path: str) -> _Script | None:
        scripts = self._scripts.get((method, path)) or []
        for script in scripts:  # counted scripts first, in the order they were set
            if script.times is not None and script.times > 0:
                script.times -= 1
                return script
        unlimited = [script for script in scripts if script.times is None]
        return unlimited[-1] if unlimited else None

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, answer: Any) -> None:
        payload = b"" if answer is None else json.dumps(answer).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def _default(self, r: Recorded) -> tuple[int, Any]:
        dry_run = bool(r.query.get("dryRun"))
        selector = (r.query.get("labelSelector") or [""])[0]
        if r.method == "GET" and r.path == "/apis/apps/v1/deployments":
            items = [d for d in self._deployments.values() if _selector_matches(selector, d["metadata"]["labels"])]
            return 200, self._list("DeploymentList", "apps/v1", items)
        if r.method == "GET" and r.path == "/api/v1/namespaces":
            items = [
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": n, "labels": lbl},
                    "status": {"phase": "Active"},
                }
                for n, lbl in sorted(self.namespaces.items())
                if _selector_matches(selector, lbl)
            ]
            return 200, self._list("NamespaceList", "v1", items)
        match = DEPLOYMENT_RE.match(r.path)
        if match:
            return self._deployment_call(r, match.group(1), match.group(2), bool(match.group(3)), dry_run, selector)
        match = WEBHOOK_RE.match(r.path)
        if match:
            return self._webhook_call(r, match.group(1), dry_run)
        return 404, status_object(404, f"the server could not find the requested resource ({r.method} {r.path})")

    def _list(self, kind: str, api_version: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "kind": kind,
            "apiVersion": api_version,
            "metadata": {"resourceVersion": str(self._version)},
            "items": items,
        }

    def _deployment_call(
        self, r: Recorded, namespace: str, name: str | None, scale: bool, dry_run: bool, selector: str
    ) -> tuple[int, Any]:
        if name is None:
            if r.method != "GET":
                return 405, status_object(405, "method not allowed")
            items = [
                d
                for (ns, _), d in sorted(self._deployments.items())
                if ns == namespace and _selector_matches(selector, d["metadata"]["labels"])
            ]
            return 200, self._list("DeploymentList", "apps/v1", items)
        obj = self._deployments.get((namespace, name))
        if obj is None:
            return 404, status_object(404, f'deployments.apps "{name}" not found')
        if r.method == "PATCH":
            if not isinstance(r.body, dict):
                return 400, status_object(400, "the body of the request was in an unknown format")
            target = copy.deepcopy(obj)
            if scale:
                _merge(target, {"spec": {"replicas": (r.body.get("spec") or {}).get("replicas")}})
            else:
                _merge(target, r.body)
            if target["spec"] != obj["spec"]:
                target["metadata"]["generation"] = obj["metadata"]["generation"] + 1
            target["metadata"]["resourceVersion"] = (
                self._next_version() if not dry_run else obj["metadata"]["resourceVersion"]
            )
            if not dry_run:
                self._deployments[(namespace, name)] = target
            obj = target
        elif r.method != "GET":
            return 405, status_object(405, "method not allowed")
        if scale:
            return 200, {
                "kind": "Scale",
                "apiVersion": "autoscaling/v1",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "resourceVersion": obj["metadata"]["resourceVersion"],
                },
                "spec": {"replicas": obj["spec"]["replicas"]},
                "status": {"replicas": obj["status"]["replicas"], "selector": f"app={name}"},
            }
        return 200, copy.deepcopy(obj)

    def _webhook_call(self, r: Recorded, name: str | None, dry_run: bool) -> tuple[int, Any]:
        configs = self.webhook_configurations
        if name is None:
            if r.method == "GET":
                return 200, self._list(
                    "MutatingWebhookConfigurationList", "admissionregistration.k8s.io/v1", list(configs.values())
                )
            if r.method == "POST":
                if not isinstance(r.body, dict):
                    return 400, status_object(400, "bad body")
                new_name = (r.body.get("metadata") or {}).get("name", "")
                if new_name in configs:
                    return 409, status_object(409, f'mutatingwebhookconfigurations "{new_name}" already exists')
                obj = copy.deepcopy(r.body)
                obj["metadata"]["resourceVersion"] = self._next_version()
                obj["metadata"]["uid"] = f"uid-{new_name}"
                if not dry_run:
                    configs[new_name] = obj
                return 201, obj
            return 405, status_object(405, "method not allowed")
        existing = configs.get(name)
        if existing is None:
            return 404, status_object(
                404, f'mutatingwebhookconfigurations.admissionregistration.k8s.io "{name}" not found'
            )
        if r.method == "GET":
            return 200, copy.deepcopy(existing)
        if r.method == "PUT":
            if not isinstance(r.body, dict):
                return 400, status_object(400, "bad body")
            sent_version = (r.body.get("metadata") or {}).get("resourceVersion")
            if sent_version != existing["metadata"]["resourceVersion"]:
                return 409, status_object(
                    409,
                    f'Operation cannot be fulfilled on mutatingwebhookconfigurations "{name}": '
                    "the object has been modified; please apply your changes to the latest version and try again",
                )
            obj = copy.deepcopy(r.body)
            obj["metadata"]["resourceVersion"] = self._next_version()
            obj["metadata"]["uid"] = existing["metadata"].get("uid", f"uid-{name}")
            if not dry_run:
                configs[name] = obj
            return 200, obj
        if r.method == "DELETE":
            if not dry_run:
                del configs[name]
            return 200, {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name},
            }
        return 405, status_object(405, "method not allowed")


def standin_kubeconfig(url: str, *, context: str = "standin", token: str = "standin-token") -> str:
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
