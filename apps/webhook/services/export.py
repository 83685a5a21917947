"""The control table as a GitOps change: what admission would set on each live Deployment, as data,
as kustomize strategic-merge patches, and as the fields an Argo CD or Flux setup should leave to KubeDoor.

The values are never computed a second way: each controlled Deployment is read from the cluster (one
list call per namespace, paged) and handed, as a CREATE review, to the same pure decision the webhook
and the preview use (``apps.webhook.admission.decide``); the export keeps, from the patched object,
the replicas (only where admission sets them) and the controlled container's requests and limits that
the row configures or that admission changed (a request lowered to its limit). Applied over the same
Deployments, the patches give what admission gives.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import yaml
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from apps.accounts.scopes import scope_filter
from apps.control import k8s
from apps.control.containers import controlled_container
from apps.control.models import Cluster
from apps.control.selectors import microservice_list
from apps.webhook import admission
from apps.webhook.snapshot import cluster_settings_from, control_row_from

FORMATS = ("kustomize", "json")
LAYOUTS = ("tar", "stream")
PARTS = ("requests", "limits")
KEYS = ("cpu", "memory")
# The row's column that configures each resource key: a key the row leaves empty keeps the Deployment's value.
ROW_FIELDS = {
    ("requests", "cpu"): "request_cpu_m",
    ("requests", "memory"): "request_mem_mib",
    ("limits", "cpu"): "limit_cpu_m",
    ("limits", "memory"): "limit_mem_mib",
}
KUSTOMIZE_COMPONENT = {"apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component"}


@dataclass(frozen=True)
class DeploymentTarget:
    """What admission would set on one live Deployment, and what it would send to get there.

    ``container`` is the controlled container's name (None when the row names one the pod spec lacks,
    so resources are left alone); ``replicas`` is None where admission leaves them (HPA-managed,
    ``replicas_mode`` ignore, no effective count); ``requests``/``limits`` hold only the keys admission
    owns. ``patch`` is the JSONPatch the webhook would answer for the live object (empty: no drift),
    ``live`` and ``wanted`` the values it changes, before and after.
    """

    namespace: str
    name: str
    container: str | None
    replicas: int | None
    requests: dict[str, str]
    limits: dict[str, str]
    hpa_managed: bool
    replicas_mode: str
    patch: list[dict[str, Any]] = field(default_factory=list)
    # The names of the containers before the controlled one: kustomize's strategic merge puts the patch's
    # list items first, so the patch names them (name only, nothing merged) to keep the pod's order.
    containers_before: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    live: dict[str, Any] = field(default_factory=dict)
    wanted: dict[str, Any] = field(default_factory=dict)

    @property
    def owns_anything(self) -> bool:
        return self.replicas is not None or bool(self.requests or self.limits)

    def strategic_patch(self) -> dict[str, Any]:
        """The strategic-merge patch that sets exactly the fields admission owns (containers merge by name)."""
        spec: dict[str, Any] = {}
        if self.replicas is not None:
            spec["replicas"] = self.replicas
        if self.container is not None and (self.requests or self.limits):
            resources = {
                part: values for part, values in (("requests", self.requests), ("limits", self.limits)) if values
            }
            containers: list[dict[str, Any]] = [{"name": name} for name in self.containers_before]
            containers.append({"name": self.container, "resources": resources})
            spec["template"] = {"spec": {"containers": containers}}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }

    def owned_paths(self) -> list[str]:
        """The owned fields as jq path expressions (Argo CD's ``jqPathExpressions``)."""
        paths = [".spec.replicas"] if self.replicas is not None else []
        if self.container is not None:
            select = f".spec.template.spec.containers[] | select(.name == {_jq_string(self.container)})"
            for part, values in (("requests", self.requests), ("limits", self.limits)):
                paths += [f"{select} | .resources.{part}.{key}" for key in KEYS if key in values]
        return paths

    def as_data(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "container": self.container,
            "replicas": self.replicas,
            "requests": self.requests,
            "limits": self.limits,
            "hpa_managed": self.hpa_managed,
            "replicas_mode": self.replicas_mode,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class ClusterTargets:
    """Every controlled Deployment of a cluster (or of one namespace) that is live, and the rows that are not."""

    cluster: str
    namespace: str | None
    targets: list[DeploymentTarget]
    missing: list[dict[str, str]]  # control rows whose Deployment the cluster does not have
    namespaces: list[str]  # the namespaces listed, one list call each


def _jq_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def deployment_target(
    *, obj: dict[str, Any], row: admission.ControlRow, cluster: admission.ClusterSettings
) -> DeploymentTarget:
    """What admission (enforce) would make of the live Deployment ``obj`` under ``row`` (pure)."""
    metadata = obj.get("metadata") or {}
    namespace, name = metadata.get("namespace") or row.namespace, metadata.get("name") or row.name
    settings = admission.ClusterSettings(
        name=cluster.name,
        admission_mode=admission.MODE_ENFORCE,
        namespaces=cluster.namespaces,
        excluded_namespaces=cluster.excluded_namespaces,
        allow_unmanaged=cluster.allow_unmanaged,
        on_store_error=cluster.on_store_error,
    )
    review = admission.parse_review(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "export",
                "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
                "operation": "CREATE",
                "namespace": namespace,
                "name": name,
                "object": obj,
                "dryRun": True,
            },
        }
    )
    decision = admission.decide(review=review, row=row, cluster=settings)
    patched = jsonpatch.apply_patch(obj, decision.patch) if decision.patch else obj
    containers = ((patched.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    names = [str(container.get("name")) for container in containers]
    chosen, _written = controlled_container(configured=row.container, deployment=name, names=names)
    index = None if chosen is None else names.index(chosen)
    changed = (decision.after or {}).get("containers") or {}
    owned: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
    container_name: str | None = None
    before: tuple[str, ...] = ()
    if index is not None:
        before = tuple(str(c.get("name")) for c in containers[:index])
        container = containers[index]
        container_name = container["name"]
        resources = container.get("resources") or {}
        for part in PARTS:
            values = resources.get(part) or {}
            for key in KEYS:
                configured = getattr(row, ROW_FIELDS[(part, key)]) is not None
                if (configured or key in (changed.get(container_name, {}).get(part) or {})) and key in values:
                    owned[part][key] = str(values[key])
    replicas = (patched.get("spec") or {}).get("replicas") if admission.replicas_controlled(row) else None
    return DeploymentTarget(
        namespace=namespace,
        name=name,
        container=container_name,
        replicas=replicas,
        requests=owned["requests"],
        limits=owned["limits"],
        hpa_managed=row.hpa_managed,
        replicas_mode=row.replicas_mode,
        patch=decision.patch,
        containers_before=before,
        warnings=decision.warnings,
        live=decision.before or {},
        wanted=decision.after or {},
    )


def cluster_targets(*, cluster: Cluster, namespace: str | None = None, user: Any = None) -> ClusterTargets:
    """Read every controlled Deployment of ``cluster`` (one paged list call per namespace of the control
    table, controlled namespaces only) and compute what admission would set on each.

    With ``user``, only the rows of their scopes (``apps.accounts.scopes``) are read and exported.

    Raises ``k8s.K8sError`` when the cluster cannot be read.
    """
    settings = cluster_settings_from(cluster)
    rows: dict[str, dict[str, admission.ControlRow]] = defaultdict(dict)
    services = scope_filter(user, microservice_list(cluster=cluster, namespace=namespace or None))
    for service in services.order_by("namespace", "name"):
        if settings.is_namespace_controlled(service.namespace):
            rows[service.namespace][service.name] = control_row_from(
                service, apply_recommended=cluster.apply_recommended_replicas
            )
    targets: list[DeploymentTarget] = []
    missing: list[dict[str, str]] = []
    for ns in sorted(rows):
        live = {
            (obj.get("metadata") or {}).get("name"): obj
            for obj in k8s.deployment_object_list(cluster=cluster, namespace=ns)
        }
        for name, row in sorted(rows[ns].items()):
            obj = live.get(name)
            if obj is None:
                missing.append({"namespace": ns, "name": name})
                continue
            targets.append(deployment_target(obj=obj, row=row, cluster=settings))
    return ClusterTargets(
        cluster=cluster.name, namespace=namespace or None, targets=targets, missing=missing, namespaces=sorted(rows)
    )


def export_check(*, format: str, layout: str = "tar") -> None:
    """Refuse an unknown ``format`` or ``layout`` with the value named."""
    if format not in FORMATS:
        raise ValidationError(
            {"format": _("Unknown format %(value)s: choose kustomize or json.") % {"value": format or '""'}}
        )
    if layout not in LAYOUTS:
        raise ValidationError(
            {"layout": _("Unknown layout %(value)s: choose tar or stream.") % {"value": layout or '""'}}
        )


# --- renderings ----------------------------------------------------------------------------------


def export_data(export: ClusterTargets) -> dict[str, Any]:
    """The ``json`` format: the same values as the kustomize tree, as data."""
    owned = [target for target in export.targets if target.owns_anything]
    return {
        "cluster": export.cluster,
        "namespace": export.namespace,
        "deployments": [{**target.as_data(), "patch": target.strategic_patch()} for target in owned],
        "missing": export.missing,
        "argocd_ignore_differences": argocd_ignore_differences(owned),
    }


def argocd_ignore_differences(targets: Iterable[DeploymentTarget]) -> list[dict[str, Any]]:
    return [
        {
            "group": "apps",
            "kind": "Deployment",
            "name": target.name,
            "namespace": target.namespace,
            "jqPathExpressions": target.owned_paths(),
        }
        for target in targets
        if target.owns_anything
    ]


def _yaml(document: Any) -> str:
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _comment(text: str) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in text.splitlines())


def _argocd_text(targets: list[DeploymentTarget]) -> str:
    head = _(
        "Argo CD: with KubeDoor's admission on (enforce), the webhook sets these fields whenever a Deployment\n"
        "is written, so Argo CD would see them differ from Git. Merge this into the Application's spec so\n"
        "Argo CD neither reports nor reverts them (RespectIgnoreDifferences keeps a sync from writing them).\n"
        "Not needed when you commit the patches of this export and keep them up to date instead."
    )
    body = {
        "spec": {
            "syncPolicy": {"syncOptions": ["RespectIgnoreDifferences=true"]},
            "ignoreDifferences": argocd_ignore_differences(targets),
        }
    }
    return _comment(head) + _yaml(body)


def _flux_text(cluster: str) -> str:
    return _(
        "# Flux and KubeDoor (cluster %(cluster)s)\n\n"
        "Flux's kustomize-controller applies server-side and detects drift with a server-side dry run. A dry\n"
        "run passes the mutating webhooks too (KubeDoor's declares sideEffects: None), so while KubeDoor's\n"
        "admission is on (enforce) the replicas, requests and limits it owns come back as KubeDoor sets them\n"
        "and Flux neither reports nor reverts them: nothing needs to be ignored.\n\n"
        "With admission off or in audit, Flux applies what Git holds. To make the control table the\n"
        "reviewable source, list this export's folder (or one namespace's folder in it) under components:\n"
        "in the kustomization.yaml that Flux builds, and commit a new export when the table changes.\n\n"
        "For an HPA-managed Deployment keep spec.replicas out of Git altogether (the export never sets it).\n"
    ) % {"cluster": cluster}


def _readme_text(export: ClusterTargets) -> str:
    lines = [
        _("# KubeDoor export of cluster %(cluster)s") % {"cluster": export.cluster},
        "",
        _(
            "Each namespace folder is a kustomize Component: one strategic-merge patch per Deployment, setting\n"
            "the replicas (unless HPA-managed or replicas_mode ignore) and the requests and limits of the\n"
            "controlled container that KubeDoor's admission would set now. The containers before the controlled\n"
            "one are named too (name only), so that kustomize keeps the pod's container order. Use it from your\n"
            "overlay:\n\n"
            "    components:\n"
            "      - path/to/this/folder   # every namespace, or path/to/this/folder/<namespace>"
        ),
        "",
        _("argocd-ignore-differences.yaml and FLUX.md say which fields to leave to KubeDoor when admission stays on."),
    ]
    if export.missing:
        lines += ["", _("Control rows without a Deployment in the cluster (not exported):")]
        lines += [f"- {item['namespace']}/{item['name']}" for item in export.missing]
    return "\n".join(lines) + "\n"


def patch_file(deployment: str) -> str:
    """A Deployment's patch file: ``.patch.yaml``, so that no name (``kustomization`` included) collides
    with a file kustomize reads by its name."""
    return f"{deployment}.patch.yaml"


def export_files(export: ClusterTargets) -> dict[str, str]:
    """The kustomize tree as relative path → text, in a stable order."""
    by_namespace: dict[str, list[DeploymentTarget]] = defaultdict(list)
    for target in export.targets:
        if target.owns_anything:
            by_namespace[target.namespace].append(target)
    files: dict[str, str] = {}
    files["kustomization.yaml"] = _yaml({**KUSTOMIZE_COMPONENT, "components": sorted(by_namespace)})
    for ns in sorted(by_namespace):
        targets = sorted(by_namespace[ns], key=lambda t: t.name)
        files[f"{ns}/kustomization.yaml"] = _yaml(
            {**KUSTOMIZE_COMPONENT, "patches": [{"path": patch_file(target.name)} for target in targets]}
        )
        for target in targets:
            files[f"{ns}/{patch_file(target.name)}"] = _yaml(target.strategic_patch())
    owned = [target for ns in sorted(by_namespace) for target in sorted(by_namespace[ns], key=lambda t: t.name)]
    files["argocd-ignore-differences.yaml"] = _argocd_text(owned)
    files["FLUX.md"] = _flux_text(export.cluster)
    files["README.md"] = _readme_text(export)
    return files


def export_folder(cluster: str) -> str:
    return f"kubedoor-{cluster}"


def export_tarball(export: ClusterTargets) -> bytes:
    """The tree as a gzip tar under ``kubedoor-<cluster>/`` (fixed times and owners: the same table
    gives the same bytes)."""
    buffer = io.BytesIO()
    root = export_folder(export.cluster)
    with (
        gzip.GzipFile(filename="", fileobj=buffer, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        folders: set[str] = set()
        for path, text in export_files(export).items():
            parts = path.split("/")[:-1]
            for depth in range(len(parts)):
                folder = "/".join(parts[: depth + 1])
                if folder not in folders:
                    folders.add(folder)
                    info = tarfile.TarInfo(f"{root}/{folder}")
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            data = text.encode()
            info = tarfile.TarInfo(f"{root}/{path}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def export_stream(export: ClusterTargets) -> str:
    """The tree as one multi-document YAML stream: each YAML file a document headed by ``# Source: <path>``,
    the notes as comments."""
    root = export_folder(export.cluster)
    documents = []
    notes = []
    for path, text in export_files(export).items():
        if path.endswith(".yaml"):
            documents.append(f"# Source: {root}/{path}\n{text}")
        else:
            notes.append(f"# Source: {root}/{path}\n" + _comment(text))
    return "---\n".join(notes + documents)


def cluster_export(
    *, cluster: Cluster, format: str, layout: str = "tar", namespace: str | None = None, user: Any = None
) -> Any:
    """The export of ``cluster``: data (``json``), gzip tar bytes (``kustomize``) or YAML text (``stream``).

    With ``user``, only the rows of their scopes.
    """
    export_check(format=format, layout=layout)
    export = cluster_targets(cluster=cluster, namespace=namespace, user=user)
    if format == "json":
        return export_data(export)
    if layout == "stream":
        return export_stream(export)
    return export_tarball(export)


__all__ = [
    "FORMATS",
    "LAYOUTS",
    "ClusterTargets",
    "DeploymentTarget",
    "argocd_ignore_differences",
    "cluster_export",
    "cluster_targets",
    "deployment_target",
    "export_check",
    "export_data",
    "export_files",
    "export_folder",
    "export_stream",
    "export_tarball",
]
