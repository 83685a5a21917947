"""The Kubernetes door: the only module that imports ``kubernetes`` (STYLE.md §1.2).

Every call goes through one ``ApiClient`` per cluster, built from the cluster's connection
settings (in-cluster service account; ``kubeconfig_path`` + ``kube_context``; the kubeconfig text
stored on the cluster; or the standard loading: ``KUBECONFIG`` / ``~/.kube/config``), cached and
rebuilt when those settings change. Every request carries an explicit timeout
(``settings.KUBEDOOR_K8S_TIMEOUT_SECONDS``) and is not retried here: callers (Celery tasks)
decide about retries. Responses are read as JSON, not through the client's generated models, so
a partial object from the API server never fails deserialisation; results are frozen
dataclasses, except for the webhook-configuration functions, which return the object as a dict.

Errors are typed: ``K8sNotFound`` (404), ``K8sForbidden`` (401/403), ``K8sConflict`` (409),
``K8sInvalid`` (400/422), ``K8sUnavailable`` (connection refused, timeout, TLS, 5xx, unusable
kubeconfig). Each has a readable ``message`` naming the cluster and the object.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import urllib3
import yaml
from django.conf import settings
from django.utils import timezone

# What this door calls, declared once (deploy/ and the onboarding bundle are held to it).
from apps.control.rbac import RBAC_REQUIREMENTS as RBAC_REQUIREMENTS
from apps.control.rbac import Permission

if TYPE_CHECKING:
    from kubernetes import client as k8s_client
    from kubernetes.client.exceptions import ApiException

    from apps.control.models import Cluster

logger = logging.getLogger(__name__)

RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
LIST_PAGE_SIZE = 500

T = TypeVar("T")


# --- errors -----------------------------------------------------------------------------------


class K8sError(Exception):
    """A Kubernetes call failed; ``message`` says why in words an operator understands."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return self.message


class K8sNotFound(K8sError):
    """The object (or its namespace) does not exist."""


class K8sForbidden(K8sError):
    """The credentials are refused (401) or lack the permission (403)."""


class K8sConflict(K8sError):
    """The object changed meanwhile (stale resourceVersion) or already exists."""


class K8sInvalid(K8sError):
    """The API server rejected the request body (400/422)."""


class K8sUnavailable(K8sError):
    """The API server cannot be reached: refused, timed out, TLS failure, 5xx, or no usable kubeconfig."""


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerResources:
    name: str
    image: str
    requests: Mapping[str, str]
    limits: Mapping[str, str]


@dataclass(frozen=True)
class Deployment:
    namespace: str
    name: str
    replicas: int | None
    ready_replicas: int
    available_replicas: int
    updated_replicas: int
    generation: int
    observed_generation: int
    resource_version: str
    labels: Mapping[str, str] = field(default_factory=dict)
    template_annotations: Mapping[str, str] = field(default_factory=dict)
    containers: tuple[ContainerResources, ...] = ()

    @property
    def restarted_at(self) -> str | None:
        return self.template_annotations.get(RESTARTED_AT_ANNOTATION)


@dataclass(frozen=True)
class Scale:
    namespace: str
    name: str
    replicas: int
    status_replicas: int
    resource_version: str
    warnings: tuple[str, ...] = ()  # the API server's Warning headers (admission webhooks' warnings)


@dataclass(frozen=True)
class HorizontalPodAutoscaler:
    namespace: str
    name: str
    target_kind: str
    target_name: str
    min_replicas: int | None
    max_replicas: int


@dataclass(frozen=True)
class ServerVersion:
    major: int
    minor: int
    git_version: str

    def at_least(self, major: int, minor: int) -> bool:
        return (self.major, self.minor) >= (major, minor)


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: Mapping[str, str]
    phase: str


# --- clients ----------------------------------------------------------------------------------


def _kube() -> ModuleType:
    """``kubernetes.client``, imported on first use: its generated models cost ≈ 60 MiB of resident
    memory, which a process that never calls Kubernetes (the webhook's workers, collection chunks, the
    web process until someone operates) does not pay."""
    from kubernetes import client

    return client


_clients: dict[Any, tuple[str, k8s_client.ApiClient]] = {}
_clients_lock = threading.Lock()


def _fingerprint(cluster: Cluster) -> str:
    parts = [str(cluster.in_cluster), cluster.kubeconfig_path, cluster.kube_context, cluster.kubeconfig]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _default_kubeconfig_files() -> list[str]:
    """The files the Kubernetes client reads when a cluster names none: ``$KUBECONFIG``'s, else ~/.kube/config."""
    paths = os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)
    return [path for path in (os.path.expanduser(part) for part in paths if part) if os.path.exists(path)]


def _build_client(cluster: Cluster) -> k8s_client.ApiClient:
    if not (cluster.in_cluster or cluster.kubeconfig or cluster.kubeconfig_path or _default_kubeconfig_files()):
        # Said before importing the client (see ``_kube``): a cluster without a connection, such as one whose
        # metrics are collected but which is not operated from here, costs no memory for it.
        raise K8sUnavailable(
            f"cluster {cluster.name}: no Kubernetes connection settings (not in-cluster, no kubeconfig, "
            "no $KUBECONFIG or ~/.kube/config)",
            reason="config",
        )
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    configuration = _kube().Configuration()
    context = cluster.kube_context or None
    try:
        if cluster.in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)
        elif cluster.kubeconfig:
            document = yaml.safe_load(cluster.kubeconfig)
            if not isinstance(document, dict):
                raise ConfigException("the stored kubeconfig is not a YAML mapping")
            k8s_config.load_kube_config_from_dict(
                document, context=context, client_configuration=configuration, persist_config=False
            )
        elif cluster.kubeconfig_path:
            k8s_config.load_kube_config(
                config_file=cluster.kubeconfig_path,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
        else:
            k8s_config.load_kube_config(context=context, client_configuration=configuration, persist_config=False)
    except (ConfigException, yaml.YAMLError, OSError, KeyError, TypeError, ValueError) as exc:
        raise K8sUnavailable(
            f"cluster {cluster.name}: no usable Kubernetes connection settings ({exc})", reason="config"
        ) from exc
    # No hidden retries: a refused connection fails at once and the caller decides what to do.
    configuration.retries = False
    return _kube().ApiClient(configuration)


def api_client(cluster: Cluster) -> k8s_client.ApiClient:
    """The cached client of ``cluster``, rebuilt when its connection settings changed."""
    key = cluster.pk if cluster.pk is not None else f"unsaved:{cluster.name}"
    fingerprint = _fingerprint(cluster)
    with _clients_lock:
        cached = _clients.get(key)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
    fresh = _build_client(cluster)
    with _clients_lock:
        old = _clients.get(key)
        _clients[key] = (fingerprint, fresh)
    if old is not None and old[1] is not fresh:
        logger.info("cluster %s: Kubernetes connection settings changed, client rebuilt", cluster.name)
        old[1].close()
    return fresh


def _api(cluster: Cluster, name: str) -> Any:
    """``kubernetes.client.<name>`` on the cluster's client; the client is built (or refused) first, so a
    cluster without connection settings never imports the Kubernetes client (``_build_client``)."""
    client = api_client(cluster)
    return getattr(_kube(), name)(client)


def clients_clear() -> None:
    """Forget every cached client (tests, and a process that reloads its configuration)."""
    with _clients_lock:
        cached = list(_clients.values())
        _clients.clear()
    for _, api in cached:
        api.close()


# --- calls ------------------------------------------------------------------------------------


def _timeout() -> float:
    return float(settings.KUBEDOOR_K8S_TIMEOUT_SECONDS)


def _status_message(exc: ApiException) -> str:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if body:
        try:
            status = json.loads(body)
        except ValueError:
            return str(body)[:300]
        if isinstance(status, dict) and status.get("message"):
            return str(status["message"])
    return str(exc.reason or "")


def _call(cluster: Cluster, what: str, func: Callable[[], Any]) -> Any:
    """Run one API call, turning every failure into a typed ``K8sError`` naming ``what``."""
    try:
        return func()
    except _kube().ApiException as exc:
        detail = _status_message(exc)
        status = exc.status
        prefix = f"cluster {cluster.name}: {what}"
        if status == 404:
            raise K8sNotFound(f"{prefix}: not found ({detail})", status=status) from exc
        if status in (401, 403):
            raise K8sForbidden(f"{prefix}: forbidden ({detail})", status=status) from exc
        if status == 409:
            raise K8sConflict(f"{prefix}: conflict ({detail})", status=status) from exc
        if status in (400, 422):
            raise K8sInvalid(f"{prefix}: rejected as invalid ({detail})", status=status) from exc
        if not status or status >= 500:
            raise K8sUnavailable(
                f"{prefix}: API server error {status or ''} ({detail})".strip(), status=status
            ) from exc
        raise K8sError(f"{prefix}: HTTP {status} ({detail})", status=status) from exc
    except urllib3.exceptions.NewConnectionError as exc:
        raise K8sUnavailable(
            f"cluster {cluster.name}: {what}: cannot connect to the API server ({_reason(exc)})",
            reason="unreachable",
        ) from exc
    except urllib3.exceptions.TimeoutError as exc:
        raise K8sUnavailable(
            f"cluster {cluster.name}: {what}: no answer within {_timeout():g} s", reason="timeout"
        ) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise K8sUnavailable(
            f"cluster {cluster.name}: {what}: API server unreachable ({_reason(exc)})", reason="unreachable"
        ) from exc


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    return text[:300]


def _json(response: Any) -> dict[str, Any]:
    data = response.data
    if not data:
        return {}
    return json.loads(data)


_WARNING = re.compile(r'^\s*\d{3}\s+\S+\s+"((?:[^"\\]|\\.)*)"')


def _warnings(response: Any) -> tuple[str, ...]:
    """The texts of the response's ``Warning: 299 - "text"`` headers (RFC 7234), in order."""
    headers = getattr(response, "headers", None)
    if headers is None or not hasattr(headers, "getlist"):
        return ()
    texts: list[str] = []
    for value in headers.getlist("Warning"):
        try:  # the API server writes UTF-8 bytes; the HTTP client decoded them as latin-1
            value = value.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass
        match = _WARNING.match(value)
        texts.append(match.group(1).replace('\\"', '"') if match else value)
    return tuple(texts)


def _dry_run(dry_run: bool) -> dict[str, str]:
    return {"dry_run": "All"} if dry_run else {}


def _page_size() -> int:
    """Items per page of a list call (``settings.KUBEDOOR_K8S_LIST_PAGE_SIZE``, default ``LIST_PAGE_SIZE``)."""
    return max(1, int(getattr(settings, "KUBEDOOR_K8S_LIST_PAGE_SIZE", LIST_PAGE_SIZE)))


def _common() -> dict[str, Any]:
    return {"_request_timeout": _timeout(), "_preload_content": False}


# --- converters -------------------------------------------------------------------------------


def _deployment(obj: Mapping[str, Any]) -> Deployment:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    template = spec.get("template") or {}
    pod_spec = template.get("spec") or {}
    containers = tuple(
        ContainerResources(
            name=str(c.get("name", "")),
            image=str(c.get("image", "")),
            requests=dict((c.get("resources") or {}).get("requests") or {}),
            limits=dict((c.get("resources") or {}).get("limits") or {}),
        )
        for c in pod_spec.get("containers") or []
    )
    return Deployment(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        replicas=spec.get("replicas"),
        ready_replicas=int(status.get("readyReplicas") or 0),
        available_replicas=int(status.get("availableReplicas") or 0),
        updated_replicas=int(status.get("updatedReplicas") or 0),
        generation=int(meta.get("generation") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        resource_version=str(meta.get("resourceVersion") or ""),
        labels=dict(meta.get("labels") or {}),
        template_annotations=dict((template.get("metadata") or {}).get("annotations") or {}),
        containers=containers,
    )


def _scale(obj: Mapping[str, Any], *, namespace: str, name: str, warnings: tuple[str, ...] = ()) -> Scale:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    return Scale(
        namespace=str(meta.get("namespace") or namespace),
        name=str(meta.get("name") or name),
        replicas=int(spec.get("replicas") or 0),
        status_replicas=int(status.get("replicas") or 0),
        resource_version=str(meta.get("resourceVersion") or ""),
        warnings=warnings,
    )


def _hpa(obj: Mapping[str, Any]) -> HorizontalPodAutoscaler:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    target = spec.get("scaleTargetRef") or {}
    return HorizontalPodAutoscaler(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        target_kind=str(target.get("kind", "")),
        target_name=str(target.get("name", "")),
        min_replicas=spec.get("minReplicas"),
        max_replicas=int(spec.get("maxReplicas") or 0),
    )


def _namespace(obj: Mapping[str, Any]) -> Namespace:
    meta = obj.get("metadata") or {}
    return Namespace(
        name=str(meta.get("name", "")),
        labels=dict(meta.get("labels") or {}),
        phase=str((obj.get("status") or {}).get("phase") or ""),
    )


def _pages(fetch: Callable[[str | None], dict[str, Any]]) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        page = fetch(token)
        yield from page.get("items") or []
        token = (page.get("metadata") or {}).get("continue") or None
        if not token:
            return


# --- deployments ------------------------------------------------------------------------------


def deployment_get(*, cluster: Cluster, namespace: str, name: str) -> Deployment:
    apps = _api(cluster, "AppsV1Api")
    obj = _call(
        cluster,
        f"deployment {namespace}/{name}",
        lambda: _json(apps.read_namespaced_deployment(name, namespace, **_common())),
    )
    return _deployment(obj)


def deployment_list(
    *, cluster: Cluster, namespaces: Sequence[str] | None = None, label_selector: str = ""
) -> list[Deployment]:
    """Deployments in ``namespaces`` (all namespaces when empty), filtered by ``label_selector``; paged."""
    apps = _api(cluster, "AppsV1Api")
    selector = {"label_selector": label_selector} if label_selector else {}
    result: list[Deployment] = []
    if not namespaces:

        def fetch_all(token: str | None) -> dict[str, Any]:
            extra = {"_continue": token} if token else {}
            return _call(
                cluster,
                "list deployments in all namespaces",
                lambda: _json(
                    apps.list_deployment_for_all_namespaces(limit=_page_size(), **selector, **extra, **_common())
                ),
            )

        return [_deployment(item) for item in _pages(fetch_all)]
    for namespace in namespaces:

        def fetch(token: str | None, namespace: str = namespace) -> dict[str, Any]:
            extra = {"_continue": token} if token else {}
            return _call(
                cluster,
                f"list deployments in {namespace}",
                lambda: _json(
                    apps.list_namespaced_deployment(namespace, limit=_page_size(), **selector, **extra, **_common())
                ),
            )

        result.extend(_deployment(item) for item in _pages(fetch))
    return result


def deployment_object_list(*, cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    """Every Deployment of ``namespace`` exactly as the API server stores it: one list call, paged with
    ``limit``/``continue`` (for comparing each with what admission would make of it)."""
    apps = _api(cluster, "AppsV1Api")

    def fetch(token: str | None) -> dict[str, Any]:
        extra = {"_continue": token} if token else {}
        return _call(
            cluster,
            f"list deployments in {namespace}",
            lambda: _json(apps.list_namespaced_deployment(namespace, limit=_page_size(), **extra, **_common())),
        )

    return list(_pages(fetch))


def deployment_object_get(*, cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """The Deployment exactly as the API server stores it (for computing a patch against it)."""
    apps = _api(cluster, "AppsV1Api")
    return _call(
        cluster,
        f"deployment {namespace}/{name}",
        lambda: _json(apps.read_namespaced_deployment(name, namespace, **_common())),
    )


def deployment_scale(*, cluster: Cluster, namespace: str, name: str, replicas: int, dry_run: bool = False) -> Scale:
    """Set ``spec.replicas`` through the ``scale`` subresource (a JSON merge patch).

    The result is what the API server stored after admission, with the warnings it returned, so the
    caller can tell when a webhook changed the count.
    """
    if replicas < 0:
        raise ValueError("replicas must not be negative")
    apps = _api(cluster, "AppsV1Api")
    body = {"spec": {"replicas": replicas}}
    logger.info("scale %s/%s/%s to %s%s", cluster.name, namespace, name, replicas, " (dry run)" if dry_run else "")
    response = _call(
        cluster,
        f"scale deployment {namespace}/{name}",
        lambda: apps.patch_namespaced_deployment_scale(
            name, namespace, body, _content_type=MERGE_PATCH, **_dry_run(dry_run), **_common()
        ),
    )
    return _scale(_json(response), namespace=namespace, name=name, warnings=_warnings(response))


def deployment_json_patch(
    *, cluster: Cluster, namespace: str, name: str, operations: list[dict[str, Any]], dry_run: bool = False
) -> Deployment:
    """Apply an RFC 6902 JSON patch (e.g. a restart that also carries the table's values)."""
    return _deployment_patch(cluster, namespace, name, operations, JSON_PATCH, what="patch", dry_run=dry_run)


def _deployment_patch(
    cluster: Cluster, namespace: str, name: str, body: Any, content_type: str, *, what: str, dry_run: bool
) -> Deployment:
    """PATCH the Deployment with ``body`` of ``content_type``; ``what`` names the call in an error."""
    apps = _api(cluster, "AppsV1Api")
    obj = _call(
        cluster,
        f"{what} deployment {namespace}/{name}",
        lambda: _json(
            apps.patch_namespaced_deployment(
                name, namespace, body, _content_type=content_type, **_dry_run(dry_run), **_common()
            )
        ),
    )
    return _deployment(obj)


def restart_patch(*, at: datetime.datetime) -> dict[str, Any]:
    """The strategic merge patch ``kubectl rollout restart`` sends."""
    stamp = at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: stamp}}}}}


def restart_operations(obj: Mapping[str, Any], *, at: datetime.datetime) -> list[dict[str, Any]]:
    """The JSON patch that stamps the restart annotation on ``obj``'s pod template."""
    stamp = restart_patch(at=at)["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT_ANNOTATION]
    template = (obj.get("spec") or {}).get("template") or {}
    metadata = template.get("metadata")
    if not isinstance(metadata, dict):
        return [
            {"op": "add", "path": "/spec/template/metadata", "value": {"annotations": {RESTARTED_AT_ANNOTATION: stamp}}}
        ]
    if not isinstance(metadata.get("annotations"), dict):
        return [{"op": "add", "path": "/spec/template/metadata/annotations", "value": {RESTARTED_AT_ANNOTATION: stamp}}]
    key = RESTARTED_AT_ANNOTATION.replace("~", "~0").replace("/", "~1")
    return [{"op": "add", "path": f"/spec/template/metadata/annotations/{key}", "value": stamp}]


def deployment_restart(
    *, cluster: Cluster, namespace: str, name: str, at: datetime.datetime | None = None, dry_run: bool = False
) -> Deployment:
    """Roll the pods: stamp the pod template's ``restartedAt`` annotation (strategic merge patch)."""
    body = restart_patch(at=at or timezone.now())
    logger.info("restart %s/%s/%s%s", cluster.name, namespace, name, " (dry run)" if dry_run else "")
    return _deployment_patch(cluster, namespace, name, body, STRATEGIC_MERGE_PATCH, what="restart", dry_run=dry_run)


# --- namespaces -------------------------------------------------------------------------------


def namespace_list(*, cluster: Cluster, label_selector: str = "") -> list[Namespace]:
    core = _api(cluster, "CoreV1Api")
    selector = {"label_selector": label_selector} if label_selector else {}

    def fetch(token: str | None) -> dict[str, Any]:
        extra = {"_continue": token} if token else {}
        return _call(
            cluster,
            "list namespaces",
            lambda: _json(core.list_namespace(limit=_page_size(), **selector, **extra, **_common())),
        )

    return [_namespace(item) for item in _pages(fetch)]


# --- autoscalers and the server ---------------------------------------------------------------


def hpa_list(*, cluster: Cluster, namespaces: Sequence[str] | None = None) -> list[HorizontalPodAutoscaler]:
    """``autoscaling/v2`` HorizontalPodAutoscalers in ``namespaces`` (all namespaces when empty); paged."""
    autoscaling = _api(cluster, "AutoscalingV2Api")
    result: list[HorizontalPodAutoscaler] = []
    scopes: Sequence[str | None] = namespaces or [None]
    for namespace in scopes:

        def fetch(token: str | None, namespace: str | None = namespace) -> dict[str, Any]:
            extra = {"_continue": token} if token else {}
            if namespace is None:
                return _call(
                    cluster,
                    "list horizontal pod autoscalers in all namespaces",
                    lambda: _json(
                        autoscaling.list_horizontal_pod_autoscaler_for_all_namespaces(
                            limit=_page_size(), **extra, **_common()
                        )
                    ),
                )
            return _call(
                cluster,
                f"list horizontal pod autoscalers in {namespace}",
                lambda: _json(
                    autoscaling.list_namespaced_horizontal_pod_autoscaler(
                        namespace, limit=_page_size(), **extra, **_common()
                    )
                ),
            )

        result.extend(_hpa(item) for item in _pages(fetch))
    return result


def server_version_get(*, cluster: Cluster) -> ServerVersion:
    """The API server's version (``/version``); minor versions like ``30+`` (EKS, GKE) count as 30."""
    version = _api(cluster, "VersionApi")
    obj = _call(cluster, "server version", lambda: _json(version.get_code(**_common())))

    def number(value: Any) -> int:
        digits = re.match(r"\d+", str(value or ""))
        return int(digits.group(0)) if digits else 0

    return ServerVersion(
        major=number(obj.get("major")), minor=number(obj.get("minor")), git_version=str(obj.get("gitVersion", ""))
    )


# --- mutating webhook configurations ----------------------------------------------------------


def webhook_configuration_get(*, cluster: Cluster, name: str) -> dict[str, Any] | None:
    """The MutatingWebhookConfiguration ``name`` as a dict, or ``None`` when it does not exist."""
    admission = _api(cluster, "AdmissionregistrationV1Api")
    try:
        return _call(
            cluster,
            f"mutating webhook configuration {name}",
            lambda: _json(admission.read_mutating_webhook_configuration(name, **_common())),
        )
    except K8sNotFound:
        return None


def webhook_configuration_apply(*, cluster: Cluster, body: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
    """Create the MutatingWebhookConfiguration, or replace it (with its resourceVersion) when it exists."""
    admission = _api(cluster, "AdmissionregistrationV1Api")
    name = str((body.get("metadata") or {}).get("name") or "")
    if not name:
        raise ValueError("a webhook configuration needs metadata.name")
    body = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration", **body}
    existing = webhook_configuration_get(cluster=cluster, name=name)
    if existing is None:
        logger.info("cluster %s: create mutating webhook configuration %s", cluster.name, name)
        return _call(
            cluster,
            f"create mutating webhook configuration {name}",
            lambda: _json(admission.create_mutating_webhook_configuration(body, **_dry_run(dry_run), **_common())),
        )
    version = (existing.get("metadata") or {}).get("resourceVersion")
    replacement = {**body, "metadata": {**body["metadata"]}}
    if version:
        replacement["metadata"]["resourceVersion"] = version
    logger.info("cluster %s: replace mutating webhook configuration %s", cluster.name, name)
    return _call(
        cluster,
        f"replace mutating webhook configuration {name}",
        lambda: _json(
            admission.replace_mutating_webhook_configuration(name, replacement, **_dry_run(dry_run), **_common())
        ),
    )


def webhook_configuration_delete(*, cluster: Cluster, name: str, dry_run: bool = False) -> bool:
    """Delete the MutatingWebhookConfiguration; ``False`` when it did not exist."""
    admission = _api(cluster, "AdmissionregistrationV1Api")
    try:
        _call(
            cluster,
            f"delete mutating webhook configuration {name}",
            lambda: _json(admission.delete_mutating_webhook_configuration(name, **_dry_run(dry_run), **_common())),
        )
    except K8sNotFound:
        return False
    logger.info("cluster %s: deleted mutating webhook configuration %s", cluster.name, name)
    return True


# --- pods and in-place resize -----------------------------------------------------------------


@dataclass(frozen=True)
class PodCondition:
    type: str
    status: str
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class Pod:
    """A pod as far as an in-place resize needs it: what it asks for and what the kubelet applied."""

    namespace: str
    name: str
    phase: str
    is_deleting: bool
    containers: tuple[ContainerResources, ...]
    # Per container name: the resources the kubelet actually applied (status.containerStatuses[].resources).
    applied: Mapping[str, Mapping[str, Mapping[str, str]]]
    conditions: tuple[PodCondition, ...] = ()
    resource_version: str = ""

    def condition(self, kind: str) -> PodCondition | None:
        for condition in self.conditions:
            if condition.type == kind and condition.status == "True":
                return condition
        return None


def _pod(obj: Mapping[str, Any]) -> Pod:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    containers = tuple(
        ContainerResources(
            name=str(c.get("name", "")),
            image=str(c.get("image", "")),
            requests=dict((c.get("resources") or {}).get("requests") or {}),
            limits=dict((c.get("resources") or {}).get("limits") or {}),
        )
        for c in spec.get("containers") or []
    )
    applied = {
        str(s.get("name", "")): {
            "requests": dict((s.get("resources") or {}).get("requests") or {}),
            "limits": dict((s.get("resources") or {}).get("limits") or {}),
        }
        for s in status.get("containerStatuses") or []
        if isinstance(s.get("resources"), dict)
    }
    conditions = tuple(
        PodCondition(
            type=str(c.get("type", "")),
            status=str(c.get("status", "")),
            reason=str(c.get("reason") or ""),
            message=str(c.get("message") or ""),
        )
        for c in status.get("conditions") or []
    )
    return Pod(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        phase=str(status.get("phase") or ""),
        is_deleting=bool(meta.get("deletionTimestamp")),
        containers=containers,
        applied=applied,
        conditions=conditions,
        resource_version=str(meta.get("resourceVersion") or ""),
    )


def label_selector_text(selector: Mapping[str, Any]) -> str:
    """A Deployment's ``spec.selector`` (matchLabels and matchExpressions) as a list-call label selector."""
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = ",".join(sorted(expression.get("values") or []))
        if operator == "In":
            parts.append(f"{key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def deployment_pods_list(*, cluster: Cluster, namespace: str, name: str) -> list[Pod]:
    """The pods of Deployment ``namespace/name`` (by its selector), one paged list call."""
    obj = deployment_object_get(cluster=cluster, namespace=namespace, name=name)
    selector = label_selector_text((obj.get("spec") or {}).get("selector") or {})
    if not selector:  # apps/v1 requires a selector; never list the whole namespace by accident
        raise K8sInvalid(f"cluster {cluster.name}: deployment {namespace}/{name} has no pod selector")
    core = _api(cluster, "CoreV1Api")

    def fetch(token: str | None) -> dict[str, Any]:
        extra = {"_continue": token} if token else {}
        return _call(
            cluster,
            f"list pods of deployment {namespace}/{name}",
            lambda: _json(
                core.list_namespaced_pod(namespace, label_selector=selector, limit=LIST_PAGE_SIZE, **extra, **_common())
            ),
        )

    return [_pod(item) for item in _pages(fetch)]


def pod_resize(
    *,
    cluster: Cluster,
    namespace: str,
    name: str,
    container: str,
    requests: Mapping[str, str],
    limits: Mapping[str, str],
    dry_run: bool = False,
) -> Pod:
    """Resize one container of a running pod in place: a strategic merge patch of the ``resize`` subresource.

    Only ``cpu`` and ``memory`` keys given here are sent; the kubelet applies them without restarting
    the pod when it can (Kubernetes 1.35+), and reports how it went in the pod's conditions.
    """
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = dict(requests)
    if limits:
        resources["limits"] = dict(limits)
    body = {"spec": {"containers": [{"name": container, "resources": resources}]}}
    core = _api(cluster, "CoreV1Api")
    logger.info("resize %s/%s/%s container %s: %s", cluster.name, namespace, name, container, resources)
    obj = _call(
        cluster,
        f"resize pod {namespace}/{name}",
        lambda: _json(
            core.patch_namespaced_pod_resize(
                name, namespace, body, _content_type=STRATEGIC_MERGE_PATCH, **_dry_run(dry_run), **_common()
            )
        ),
    )
    return _pod(obj)


# --- admission policies (the webhook-less engine) and their parameters ------------------------

MUTATING_POLICY = "MutatingAdmissionPolicy"
MUTATING_POLICY_BINDING = "MutatingAdmissionPolicyBinding"
VALIDATING_POLICY = "ValidatingAdmissionPolicy"
VALIDATING_POLICY_BINDING = "ValidatingAdmissionPolicyBinding"


@dataclass(frozen=True)
class _PolicyMethods:
    read: Callable[..., Any]
    create: Callable[..., Any]
    replace: Callable[..., Any]
    delete: Callable[..., Any]


def _policy_api(cluster: Cluster, api_version: str, kind: str) -> _PolicyMethods:
    """The generated client methods for one policy kind (named here so the RBAC test can read them)."""
    group, _, version = api_version.partition("/")
    if group != "admissionregistration.k8s.io" or version not in ("v1", "v1beta1"):
        raise ValueError(f"no admission policy API for {api_version} {kind}")
    if kind in (VALIDATING_POLICY, VALIDATING_POLICY_BINDING) and version != "v1":
        raise ValueError(f"no admission policy API for {api_version} {kind}")
    api: Any = (
        _api(cluster, "AdmissionregistrationV1Api")
        if version == "v1"
        else _api(cluster, "AdmissionregistrationV1beta1Api")
    )
    if kind == MUTATING_POLICY:
        return _PolicyMethods(
            api.read_mutating_admission_policy,
            api.create_mutating_admission_policy,
            api.replace_mutating_admission_policy,
            api.delete_mutating_admission_policy,
        )
    if kind == MUTATING_POLICY_BINDING:
        return _PolicyMethods(
            api.read_mutating_admission_policy_binding,
            api.create_mutating_admission_policy_binding,
            api.replace_mutating_admission_policy_binding,
            api.delete_mutating_admission_policy_binding,
        )
    if kind == VALIDATING_POLICY:
        return _PolicyMethods(
            api.read_validating_admission_policy,
            api.create_validating_admission_policy,
            api.replace_validating_admission_policy,
            api.delete_validating_admission_policy,
        )
    if kind == VALIDATING_POLICY_BINDING:
        return _PolicyMethods(
            api.read_validating_admission_policy_binding,
            api.create_validating_admission_policy_binding,
            api.replace_validating_admission_policy_binding,
            api.delete_validating_admission_policy_binding,
        )
    raise ValueError(f"no admission policy API for {api_version} {kind}")


def admission_policy_get(*, cluster: Cluster, api_version: str, kind: str, name: str) -> dict[str, Any] | None:
    """A (Mutating|Validating)AdmissionPolicy or its binding as a dict, or ``None`` when it does not exist."""
    methods = _policy_api(cluster, api_version, kind)
    try:
        return _call(cluster, f"{kind} {name}", lambda: _json(methods.read(name, **_common())))
    except K8sNotFound:
        return None


def admission_policy_apply(*, cluster: Cluster, body: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
    """Create the policy object ``body``, or replace it (with its resourceVersion) when it exists."""
    api_version, kind = str(body.get("apiVersion", "")), str(body.get("kind", ""))
    name = str((body.get("metadata") or {}).get("name") or "")
    if not name:
        raise ValueError("an admission policy object needs metadata.name")
    methods = _policy_api(cluster, api_version, kind)
    existing = admission_policy_get(cluster=cluster, api_version=api_version, kind=kind, name=name)
    if existing is None:
        logger.info("cluster %s: create %s %s", cluster.name, kind, name)
        return _call(
            cluster, f"create {kind} {name}", lambda: _json(methods.create(body, **_dry_run(dry_run), **_common()))
        )
    replacement = {**body, "metadata": {**body["metadata"]}}
    version = (existing.get("metadata") or {}).get("resourceVersion")
    if version:
        replacement["metadata"]["resourceVersion"] = version
    logger.info("cluster %s: replace %s %s", cluster.name, kind, name)
    return _call(
        cluster,
        f"replace {kind} {name}",
        lambda: _json(methods.replace(name, replacement, **_dry_run(dry_run), **_common())),
    )


def admission_policy_delete(*, cluster: Cluster, api_version: str, kind: str, name: str) -> bool:
    """Delete a policy object; ``False`` when it did not exist."""
    methods = _policy_api(cluster, api_version, kind)
    try:
        _call(cluster, f"delete {kind} {name}", lambda: _json(methods.delete(name, **_common())))
    except K8sNotFound:
        return False
    logger.info("cluster %s: deleted %s %s", cluster.name, kind, name)
    return True


def config_map_apply(
    *, cluster: Cluster, namespace: str, name: str, data: Mapping[str, str], labels: Mapping[str, str]
) -> bool:
    """Write ConfigMap ``namespace/name`` with exactly ``data``; ``True`` when it changed (or was created)."""
    core = _api(cluster, "CoreV1Api")
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "data": dict(data),
    }
    try:
        existing = _call(
            cluster,
            f"config map {namespace}/{name}",
            lambda: _json(core.read_namespaced_config_map(name, namespace, **_common())),
        )
    except K8sNotFound:
        _call(
            cluster,
            f"create config map {namespace}/{name}",
            lambda: _json(core.create_namespaced_config_map(namespace, body, **_common())),
        )
        return True
    if (existing.get("data") or {}) == body["data"] and ((existing.get("metadata") or {}).get("labels") or {}) == dict(
        labels
    ):
        return False
    body["metadata"]["resourceVersion"] = (existing.get("metadata") or {}).get("resourceVersion")
    _call(
        cluster,
        f"replace config map {namespace}/{name}",
        lambda: _json(core.replace_namespaced_config_map(name, namespace, body, **_common())),
    )
    return True


def config_map_delete(*, cluster: Cluster, namespace: str, name: str) -> bool:
    """Delete ConfigMap ``namespace/name``; ``False`` when it did not exist."""
    core = _api(cluster, "CoreV1Api")
    try:
        _call(
            cluster,
            f"delete config map {namespace}/{name}",
            lambda: _json(core.delete_namespaced_config_map(name, namespace, **_common())),
        )
    except K8sNotFound:
        return False
    return True


# --- access reviews ---------------------------------------------------------------------------


def access_review(*, cluster: Cluster, permission: Permission, name: str = "") -> bool:
    """Whether the cluster's credentials may do ``permission`` (on object ``name``): a SelfSubjectAccessReview.

    Every authenticated user may create one (the built-in ``system:basic-user`` role), so the check
    needs no permission of its own.
    """
    authorization = _api(cluster, "AuthorizationV1Api")
    resource, _, subresource = permission.resource.partition("/")
    attributes: dict[str, Any] = {"group": permission.group, "resource": resource, "verb": permission.verb}
    if subresource:
        attributes["subresource"] = subresource
    if name:
        attributes["name"] = name
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }
    obj = _call(
        cluster,
        f"access review {permission.label(name)}",
        lambda: _json(authorization.create_self_subject_access_review(body, **_common())),
    )
    return bool((obj.get("status") or {}).get("allowed"))
