"""Writes the admission corpus: complete AdmissionReview documents and, beside each, its expectations.

Run ``python -m tests.webhook.reviews.make_reviews`` to rewrite the files after changing a case.
Each case ``<name>.json`` is the exact body the API server posts; ``<name>.expected.json`` holds the
setup (cluster settings, control row or none, whether control data is available) and the expected
answer: allowed, status code and message, warnings, audit event, and the full Deployment (or Scale)
after the returned patch is applied — spelled out here by hand, never computed by the webhook's code.

The object builders are shared with the benchmark (bench/webhook), which needs the same realistic
≈10 KB Deployments as kubectl, Helm and Argo CD send them.
"""

from __future__ import annotations

import copy
import json
import sys
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

KUBECTL = {"username": "alice@example.com", "groups": ["devs", "system:authenticated"]}
HELM = {
    "username": "system:serviceaccount:ci:helm-deployer",
    "groups": ["system:serviceaccounts", "system:authenticated"],
}
ARGO = {
    "username": "system:serviceaccount:argocd:argocd-application-controller",
    "groups": ["system:serviceaccounts", "system:serviceaccounts:argocd", "system:authenticated"],
}
KUBEDOOR = {
    "username": "system:serviceaccount:kubedoor:kubedoor",
    "groups": ["system:serviceaccounts", "system:serviceaccounts:kubedoor", "system:authenticated"],
}
HPA = {"username": "system:serviceaccount:kube-system:horizontal-pod-autoscaler", "groups": ["system:serviceaccounts"]}
GC = {"username": "system:serviceaccount:kube-system:generic-garbage-collector", "groups": ["system:serviceaccounts"]}


def container(
    name: str, image: str, *, resources: dict | None = None, port: int | None = 8080, env: int = 8
) -> dict[str, Any]:
    """A container as the API server stores it (defaults filled in)."""
    body: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "env": [{"name": f"SETTING_{i}", "value": f"value-{name}-{i}"} for i in range(env)]
        + [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "volumeMounts": [{"name": "config", "mountPath": f"/etc/{name}", "readOnly": True}],
    }
    if port is not None:
        probe = {
            "httpGet": {"path": "/healthz", "port": port, "scheme": "HTTP"},
            "initialDelaySeconds": 5,
            "timeoutSeconds": 1,
            "periodSeconds": 10,
            "successThreshold": 1,
            "failureThreshold": 3,
        }
        body["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        body["readinessProbe"] = probe
        body["livenessProbe"] = copy.deepcopy(probe)
    if resources is not None:
        body["resources"] = resources
    return body


def deployment(
    name: str,
    namespace: str,
    containers: list[dict[str, Any]],
    *,
    style: str = "kubectl",
    replicas: int | None = 2,
    init_containers: list[dict[str, Any]] | None = None,
    generation: int = 3,
    template_annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment as the API server hands it to admission: defaulted, with metadata of the tool."""
    labels = {"app": name, "team": "platform"}
    annotations: dict[str, str] = {"deployment.kubernetes.io/revision": str(generation)}
    manager = {"kubectl": "kubectl-client-side-apply", "helm": "helm", "argocd": "argocd-controller"}[style]
    if style == "helm":
        labels |= {
            "app.kubernetes.io/managed-by": "Helm",
            "app.kubernetes.io/name": name,
            "helm.sh/chart": f"{name}-1.4.2",
        }
        annotations |= {"meta.helm.sh/release-name": name, "meta.helm.sh/release-namespace": namespace}
    if style == "argocd":
        labels |= {"app.kubernetes.io/instance": f"{namespace}-{name}"}
        annotations |= {"argocd.argoproj.io/tracking-id": f"{namespace}-{name}:apps/Deployment:{namespace}/{name}"}
    pod_spec: dict[str, Any] = {
        "containers": containers,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": name,
        "serviceAccount": name,
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "volumes": [{"name": "config", "configMap": {"name": f"{name}-config", "defaultMode": 420}}],
    }
    if init_containers:
        pod_spec["initContainers"] = init_containers
    template_metadata: dict[str, Any] = {"labels": {"app": name}}
    if template_annotations:
        template_metadata["annotations"] = dict(template_annotations)
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": template_metadata, "spec": pod_spec},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": 600,
    }
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"0b1e6c52-4d1a-4f7e-9c1d-{zlib.crc32(f'{namespace}/{name}'.encode()):012d}",
            "resourceVersion": "4815162342",
            "generation": generation,
            "creationTimestamp": "2026-03-02T08:15:00Z",
            "labels": labels,
            "annotations": annotations,
            "managedFields": [
                {
                    "manager": manager,
                    "operation": "Update" if style != "helm" else "Apply",
                    "apiVersion": "apps/v1",
                    "time": "2026-11-20T09:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {f"f:{key}": {} for key in labels}}},
                }
            ],
        },
        "spec": spec,
    }
    if style == "kubectl":
        manifest = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {k: v for k, v in spec.items() if k in ("replicas", "selector", "template")},
        }
        annotations["kubectl.kubernetes.io/last-applied-configuration"] = (
            json.dumps(manifest, separators=(",", ":"), sort_keys=True) + "\n"
        )
    return obj


def with_status(obj: dict[str, Any]) -> dict[str, Any]:
    """The stored object of an UPDATE (oldObject) carries a status."""
    old = copy.deepcopy(obj)
    replicas = old["spec"].get("replicas", 1)
    old["status"] = {
        "observedGeneration": old["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "lastUpdateTime": "2026-11-20T09:01:00Z",
                "lastTransitionTime": "2026-11-20T09:01:00Z",
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
            }
        ],
    }
    return old


def scale(name: str, namespace: str, replicas: int, *, status_replicas: int) -> dict[str, Any]:
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": "5a1d2c3b-0000-4000-8000-000000000042",
            "resourceVersion": "4815162342",
            "creationTimestamp": "2026-03-02T08:15:00Z",
        },
        "spec": {"replicas": replicas},
        "status": {"replicas": status_replicas, "selector": f"app={name}"},
    }


def review(
    operation: str,
    obj: dict[str, Any],
    *,
    old: dict[str, Any] | None = None,
    uid: str,
    user: dict[str, Any] = KUBECTL,
    api_version: str = "admission.k8s.io/v1",
    dry_run: bool = False,
    sub_resource: str = "",
    field_manager: str = "kubectl-client-side-apply",
) -> dict[str, Any]:
    """A complete AdmissionReview as the API server posts it."""
    is_scale = sub_resource == "scale"
    kind = {"group": "autoscaling", "version": "v1", "kind": "Scale"} if is_scale else None
    kind = kind or {"group": "apps", "version": "v1", "kind": obj.get("kind", "Deployment")}
    resource_name = {"Deployment": "deployments", "StatefulSet": "statefulsets"}.get(obj.get("kind"), "deployments")
    request: dict[str, Any] = {
        "uid": uid,
        "kind": kind,
        "resource": {"group": "apps", "version": "v1", "resource": resource_name},
        "requestKind": kind,
        "requestResource": {"group": "apps", "version": "v1", "resource": resource_name},
        "name": obj["metadata"]["name"],
        "namespace": obj["metadata"]["namespace"],
        "operation": operation,
        "userInfo": user,
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
        "options": {
            "kind": "CreateOptions" if operation == "CREATE" else "UpdateOptions",
            "apiVersion": "meta.k8s.io/v1",
            "fieldManager": field_manager,
        },
    }
    if sub_resource:
        request["subResource"] = sub_resource
        request["requestSubResource"] = sub_resource
    return {"apiVersion": api_version, "kind": "AdmissionReview", "request": request}


# --- expectations helpers ------------------------------------------------------------------------

ROW = {"replicas_measured": 2, "request_cpu_m": 250, "request_mem_mib": 256, "limit_cpu_m": 1000, "limit_mem_mib": 1024}
RES_FULL = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1000m", "memory": "1024Mi"}}
OLD_RES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}


def w(text: str) -> str:
    return "kubedoor: " + text


def res_warnings(cname: str, old: dict | None, new: dict) -> list[str]:
    """The warnings of a full resource patch, in the order the webhook writes them."""
    out = []
    for part in ("requests", "limits"):
        for key in ("cpu", "memory"):
            before = ((old or {}).get(part) or {}).get(key)
            after = new[part][key]
            if before != after:
                out.append(w(f"container {cname} {part}.{key} {before or 'unset'} -> {after}"))
    return out


def patched(obj: dict[str, Any], *, replicas: int | None = None, resources: dict[int, dict] | None = None) -> dict:
    out = copy.deepcopy(obj)
    if replicas is not None:
        out["spec"]["replicas"] = replicas
    for index, value in (resources or {}).items():
        out["spec"]["template"]["spec"]["containers"][index]["resources"] = value
    return out


def cases() -> dict[str, tuple[dict, dict]]:  # noqa: C901 - one flat list of cases reads best
    out: dict[str, tuple[dict, dict]] = {}

    def add(name: str, doc: dict, setup: dict, expect: dict) -> None:
        base = {"allowed": True, "code": None, "message": "", "warnings": [], "patched": None, "audit": None}
        out[name] = (doc, {"description": setup.pop("description"), "setup": setup, "expect": base | expect})

    # 1. kubectl apply creating a Deployment with no resources at all.
    obj = deployment("cart", "shop", [container("cart", "registry.example.com/shop/cart:1.8.0")], replicas=2)
    add(
        "kubectl-create-no-resources",
        review("CREATE", obj, uid="c0000001-0000-4000-8000-000000000001"),
        {
            "description": "CREATE without resources: replicas and all four values added",
            "row": ROW | {"replicas_specified": 3},
        },
        {
            "patched": patched(obj, replicas=3, resources={0: RES_FULL}),
            "warnings": [w("spec.replicas 2 -> 3 (control table)"), *res_warnings("cart", None, RES_FULL)],
            "audit": {"action": "admission.patch", "result": "ok"},
        },
    )

    # 2. kubectl apply with a new image on a Deployment that has other resources.
    new = deployment("cart", "shop", [container("cart", "registry.example.com/shop/cart:1.9.0", resources=OLD_RES)])
    old = with_status(
        deployment("cart", "shop", [container("cart", "registry.example.com/shop/cart:1.8.0", resources=OLD_RES)])
    )
    add(
        "kubectl-update-image",
        review("UPDATE", new, old=old, uid="c0000002-0000-4000-8000-000000000002"),
        {
            "description": "UPDATE with a new image: full patch, measured pod count 4",
            "row": ROW | {"replicas_measured": 4},
        },
        {
            "patched": patched(new, replicas=4, resources={0: RES_FULL}),
            "warnings": [w("spec.replicas 2 -> 4 (control table)"), *res_warnings("cart", OLD_RES, RES_FULL)],
            "audit": {"action": "admission.patch", "result": "ok"},
        },
    )

    # 2b. The same image update of a Deployment an HPA targets: resources patched, replicas kept as sent.
    add(
        "kubectl-update-image-hpa-managed",
        review("UPDATE", new, old=old, uid="c0000102-0000-4000-8000-000000000102"),
        {
            "description": "UPDATE with a new image of an HPA-managed service",
            "row": ROW | {"replicas_measured": 4, "hpa_name": "cart"},
        },
        {
            "patched": patched(new, resources={0: RES_FULL}),
            "warnings": res_warnings("cart", OLD_RES, RES_FULL),
            "audit": {"action": "admission.patch", "result": "ok"},
        },
    )

    # 3. Helm upgrade of a Deployment with a mesh sidecar listed first: the container named like the
    # Deployment is controlled, the sidecar is untouched.
    sidecar_res = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}}
    containers_new = [
        container("istio-proxy", "docker.io/istio/proxyv2:1.23.2", resources=sidecar_res, port=15021, env=4),
        container("checkout", "registry.example.com/shop/checkout:4.2.0", resources=OLD_RES),
    ]
    containers_old = copy.deepcopy(containers_new)
    containers_old[1]["image"] = "registry.example.com/shop/checkout:4.1.9"
    new = deployment("checkout", "shop", containers_new, style="helm", replicas=3)
    old = with_status(deployment("checkout", "shop", containers_old, style="helm", replicas=3))
    add(
        "helm-upgrade-sidecar-first",
        review("UPDATE", new, old=old, uid="c0000003-0000-4000-8000-000000000003", user=HELM, field_manager="helm"),
        {
            "description": "Helm upgrade, sidecar first: only the container named like the Deployment",
            "name": "checkout",
            "row": ROW | {"replicas_measured": 3},
        },
        {
            "patched": patched(new, resources={1: RES_FULL}),
            "warnings": res_warnings("checkout", OLD_RES, RES_FULL),
            "audit": {"action": "admission.patch", "result": "ok"},
        },
    )

    # 4. Argo CD sync with init containers; no container named like the Deployment: the first one.
    init = [container("migrate", "registry.example.com/billing/migrate:2.0.0", resources=OLD_RES, port=None, env=2)]
    new = deployment(
        "billing-api",
        "billing",
        [
            container("server", "registry.example.com/billing/api:2.0.0"),
            container("metrics", "prom/statsd-exporter:v0.27.1", port=9102, env=1),
        ],
        style="argocd",
        init_containers=init,
    )
    old_containers = copy.deepcopy(new["spec"]["template"]["spec"]["containers"])
    old_containers[0]["image"] = "registry.example.com/billing/api:1.9.3"
    old = with_status(deployment("billing-api", "billing", old_containers, style="argocd", init_containers=init))
    add(
        "argocd-sync-init-containers",
        review(
            "UPDATE",
            new,
            old=old,
            uid="c0000004-0000-4000-8000-000000000004",
            user=ARGO,
            field_manager="argocd-controller",
        ),
        {
            "description": "Argo CD sync with init containers: first container patched, init container untouched",
            "namespace": "billing",
            "name": "billing-api",
            "row": ROW,
        },
        {
            "patched": patched(new, resources={0: RES_FULL}),
            "warnings": res_warnings("server", None, RES_FULL),
            "audit": {"action": "admission.patch", "result": "ok"},
        },
    )

    # 5. Only limits set: requests created key by key, limits replaced.
    only_limits = {"limits": {"cpu": "2", "memory": "2Gi"}}
    obj = deployment(
        "search", "shop", [container("search", "registry.example.com/shop/search:3.0.0", resources=only_limits)]
    )
    add(
        "create-only-limits",
        review("CREATE", obj, uid="c0000005-0000-4000-8000-000000000005"),
        {"description": "CREATE with only limits", "name": "search", "row": ROW},
        {
            "patched": patched(obj, resources={0: RES_FULL}),
            "warnings": res_warnings("search", only_limits, RES_FULL),
            "audit": {"action": "admission.patch", "result": "ok"},
        },
    )

    # 6. Only requests set: limits created.
    only_requests = {"requests": {"cpu": "100m", "memory": "128Mi"}}
    obj = deployment(
        "search", "shop", [container("search", "registry.example.com/shop/search:3.0.0", resources=only_requests)]
    )
    add(
        "create-only-requests",
        review("CREATE", obj, uid="c0000006-0000-4000-8000-000000000006"),
        {"description": "CREATE with only requests", "name": "search", "row": ROW},
        {
            "patched": patched(obj, resources={0: RES_FULL}),
            "warnings": res_warnings("search", only_requests, RES_FULL),
            "audit": {"action": "admission.patch", "result": "ok"},
        },
    )

    # 7. GPU and ephemeral storage next to cpu/memory; keys with "/" and "~" (JSON-pointer escaping).
    gpu = {
        "requests": {"cpu": "1", "memory": "4Gi", "ephemeral-storage": "10Gi", "example.com/gpu": "1"},
        "limits": {
            "cpu": "4",
            "memory": "8Gi",
            "ephemeral-storage": "20Gi",
            "nvidia.com/gpu": "1",
            "example.com/fpga~v2": "2",
        },
    }
    gpu_new = {
        "requests": {"cpu": "250m", "memory": "256Mi", "ephemeral-storage": "10Gi", "example.com/gpu": "1"},
        "limits": {
            "cpu": "1000m",
            "memory": "1024Mi",
            "ephemeral-storage": "20Gi",
            "nvidia.com/gpu": "1",
            "example.com/fpga~v2": "2",
        },
    }
    new = deployment(
        "trainer", "ml", [container("trainer", "registry.example.com/ml/trainer:7.1", resources=gpu)], replicas=1
    )
    old = with_status(
        deployment(
            "trainer", "ml", [container("trainer", "registry.example.com/ml/trainer:7.0", resources=gpu)], replicas=1
        )
    )
    add(
        "update-gpu-ephemeral-storage",
        review("UPDATE", new, old=old, uid="c0000007-0000-4000-8000-000000000007"),
        {
            "description": "GPU, FPGA (key with ~ and /) and ephemeral-storage untouched",
            "namespace": "ml",
            "name": "trainer",
            "row": ROW | {"replicas_measured": 1},
        },
        {
            "patched": patched(new, resources={0: gpu_new}),
            "warnings": res_warnings("trainer", gpu, gpu_new),
            "audit": {"action": "admission.patch", "result": "ok"},
        },
    )

    # 8. The row names its container (the second one).
    two = [
        container("web", "nginx:1.27", resources=OLD_RES, port=80),
        container("worker", "registry.example.com/shop/worker:5", resources=OLD_RES),
    ]
    obj = deployment("orders", "shop", two)
    add(
        "create-row-names-container",
        review("CREATE", obj, uid="c0000008-0000-4000-8000-000000000008"),
        {
            "description": "The row's container is patched, the other left alone",
            "name": "orders",
            "row": ROW | {"container": "worker"},
        },
        {
            "patched": patched(obj, resources={1: RES_FULL}),
            "warnings": res_warnings("worker", OLD_RES, RES_FULL),
            "audit": {"action": "admission.patch", "result": "ok"},
        },
    )

    # 9. The row names a container the pod spec does not have: replicas only, and a warning.
    obj = deployment("orders", "shop", copy.deepcopy(two))
    add(
        "create-row-container-missing",
        review("CREATE", obj, uid="c0000009-0000-4000-8000-000000000009"),
        {
            "description": "Named container absent: resources untouched, warning",
            "name": "orders",
            "row": ROW | {"container": "ghost", "replicas_measured": 5},
        },
        {
            "patched": patched(obj, replicas=5),
            "warnings": [
                w("spec.replicas 2 -> 5 (control table)"),
                w("container ghost of the control table is not in the pod spec; resources left unchanged"),
            ],
            "audit": {"action": "admission.patch", "result": "ok"},
        },
    )

    # 10. Limits not configured in the row: kept; the row's CPU request above the kept limit is lowered.
    res = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "200m", "memory": "512Mi"}}
    res_after = {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"cpu": "200m", "memory": "512Mi"}}
    obj = deployment("cart", "shop", [container("cart", "registry.example.com/shop/cart:1.8.0", resources=res)])
    add(
        "create-request-above-kept-limit",
        review("CREATE", obj, uid="c0000010-0000-4000-8000-000000000010"),
        {
            "description": "Unconfigured limits kept with warnings; request lowered to the limit",
            "row": {
                "replicas_measured": 2,
                "request_cpu_m": 250,
                "request_mem_mib": 256,
                "limit_cpu_m": None,
                "limit_mem_mib": None,
            },
        },
        {
            "patched": patched(obj, resources={0: res_after}),
            "warnings": [
                w("container cart limits.cpu not set in the control table; keeping 200m"),
                w("container cart limits.memory not set in the control table; keeping 512Mi"),
                w("container cart requests.cpu 250m lowered to the limit 200m"),
                w("container cart requests.cpu 100m -> 200m"),
                w("container cart requests.memory 128Mi -> 256Mi"),
            ],
            "audit": {"action": "admission.patch", "result": "ok"},
        },
    )

    # 11. Same values in another notation: nothing to patch.
    same = {"requests": {"cpu": "0.25", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    obj = deployment("cart", "shop", [container("cart", "registry.example.com/shop/cart:1.8.0", resources=same)])
    add(
        "create-same-values-other-notation",
        review("CREATE", obj, uid="c0000011-0000-4000-8000-000000000011"),
        {"description": "0.25 = 250m, 1 = 1000m, 1Gi = 1024Mi: no patch", "row": ROW},
        {},
    )

    # 12. kubectl scale: the scale subresource gets the table's replicas.
    sc_new, sc_old = scale("cart", "shop", 5, status_replicas=2), scale("cart", "shop", 2, status_replicas=2)
    add(
        "scale-kubectl",
        review(
            "UPDATE",
            sc_new,
            old=sc_old,
            uid="c0000012-0000-4000-8000-000000000012",
            sub_resource="scale",
            field_manager="kubectl-scale",
        ),
        {"description": "kubectl scale 2 -> 5; the table says 3", "row": ROW | {"replicas_specified": 3}},
        {
            "patched": {**sc_new, "spec": {"replicas": 3}},
            "warnings": [w("spec.replicas 5 -> 3 (control table)")],
            "audit": {"action": "admission.patch", "result": "ok"},
        },
    )

    # 13. An HPA scaling a service whose replicas are HPA-managed: allowed unchanged.
    sc_new, sc_old = scale("cart", "shop", 7, status_replicas=4), scale("cart", "shop", 4, status_replicas=4)
    add(
        "scale-hpa-replicas-ignored",
        review(
            "UPDATE",
            sc_new,
            old=sc_old,
            uid="c0000013-0000-4000-8000-000000000013",
            user=HPA,
            sub_resource="scale",
            field_manager="horizontal-pod-autoscaler",
        ),
        {
            "description": "HPA scale with replicas_mode ignore",
            "row": ROW | {"replicas_specified": 3, "replicas_mode": "ignore"},
        },
        {},
    )

    # 14. The HPA controller's scale of a service KubeDoor has not marked HPA-managed (yet): it only
    # scales Deployments an HPA targets, so it passes (on 1.28+ matchConditions skip the call).
    add(
        "scale-hpa-controller-passes",
        review(
            "UPDATE",
            sc_new,
            old=sc_old,
            uid="c0000014-0000-4000-8000-000000000014",
            user=HPA,
            sub_resource="scale",
            field_manager="horizontal-pod-autoscaler",
        ),
        {"description": "HPA controller's scale with replicas_mode enforce", "row": ROW | {"replicas_measured": 4}},
        {},
    )

    # 14b. A person's scale of a Deployment an HPA targets: its replicas are the HPA's, never the table's.
    add(
        "scale-hpa-managed-by-person",
        review("UPDATE", sc_new, old=sc_old, uid="c0000114-0000-4000-8000-000000000114", sub_resource="scale"),
        {
            "description": "kubectl scale of an HPA-managed service",
            "row": ROW | {"replicas_measured": 4, "hpa_name": "cart"},
        },
        {},
    )

    # 14c. KubeDoor's own scale (an operator's temporary or persistent scale) passes unchanged.
    add(
        "scale-by-kubedoor-passes",
        review(
            "UPDATE",
            sc_new,
            old=sc_old,
            uid="c0000214-0000-4000-8000-000000000214",
            user=KUBEDOOR,
            sub_resource="scale",
            field_manager="kubedoor",
        ),
        {"description": "KubeDoor's own scale", "row": ROW | {"replicas_measured": 4}},
        {},
    )

    # 15. Scale to exactly the effective replicas: allowed unchanged.
    sc_new, sc_old = scale("cart", "shop", 3, status_replicas=2), scale("cart", "shop", 2, status_replicas=2)
    add(
        "scale-to-effective",
        review(
            "UPDATE",
            sc_new,
            old=sc_old,
            uid="c0000015-0000-4000-8000-000000000015",
            sub_resource="scale",
            field_manager="kubectl-scale",
        ),
        {"description": "Scale to the table's own value", "row": ROW | {"replicas_specified": 3}},
        {},
    )

    # 16. Scale of a service with no effective replicas (nothing measured, nothing specified).
    add(
        "scale-no-effective-replicas",
        review(
            "UPDATE",
            sc_new,
            old=sc_old,
            uid="c0000016-0000-4000-8000-000000000016",
            sub_resource="scale",
            field_manager="kubectl-scale",
        ),
        {"description": "No effective replicas: never forced", "row": ROW | {"replicas_measured": 0}},
        {},
    )

    # 17. kubectl rollout restart: template annotation changes -> full patch.
    new = deployment(
        "cart",
        "shop",
        [container("cart", "registry.example.com/shop/cart:1.8.0", resources=OLD_RES)],
        template_annotations={"kubectl.kubernetes.io/restartedAt": "2026-11-22T09:30:00Z"},
    )
    old = with_status(
        deployment("cart", "shop", [container("cart", "registry.example.com/shop/cart:1.8.0", resources=OLD_RES)])
    )
    add(
        "rollout-restart",
        review("UPDATE", new, old=old, uid="c0000017-0000-4000-8000-000000000017", field_manager="kubectl-rollout"),
        {"description": "kubectl rollout restart: full patch", "row": ROW | {"replicas_specified": 3}},
        {
            "patched": patched(new, replicas=3, resources={0: RES_FULL}),
            "warnings": [w("spec.replicas 2 -> 3 (control table)"), *res_warnings("cart", OLD_RES, RES_FULL)],
            "audit": {"action": "admission.patch", "result": "ok"},
        },
    )

    # 18. Label-only change on a managed Deployment that differs from the table: allowed unchanged.
    old = with_status(
        deployment("cart", "shop", [container("cart", "registry.example.com/shop/cart:1.8.0", resources=OLD_RES)])
    )
    new = copy.deepcopy(old)
    new["metadata"]["labels"]["cost-center"] = "cc-42"
    add(
        "label-only-update",
        review("UPDATE", new, old=old, uid="c0000018-0000-4000-8000-000000000018", field_manager="kubectl-label"),
        {"description": "Labels only: no pods restart, nothing patched", "row": ROW | {"replicas_specified": 3}},
        {},
    )

    # 19. Replicas-only UPDATE (kubectl edit): only replicas patched, resources left as they are.
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 6
    add(
        "replicas-only-update",
        review("UPDATE", new, old=old, uid="c0000019-0000-4000-8000-000000000019", field_manager="kubectl-edit"),
        {
            "description": "Template unchanged, replicas changed: replicas patch only",
            "row": ROW | {"replicas_specified": 3},
        },
        {
            "patched": patched(new, replicas=3),
            "warnings": [w("spec.replicas 6 -> 3 (control table)")],
            "audit": {"action": "admission.patch", "result": "ok"},
        },
    )

    # 20. The same with replicas_mode ignore: allowed unchanged.
    add(
        "replicas-only-update-hpa-managed",
        review("UPDATE", new, old=old, uid="c0000020-0000-4000-8000-000000000020", field_manager="kubectl-edit"),
        {
            "description": "Replicas change of an HPA-managed service",
            "row": ROW | {"replicas_specified": 3, "replicas_mode": "ignore"},
        },
        {},
    )

    # 21. Helm install without spec.replicas, as a dry run: same decision, audited as dry_run.
    obj = deployment(
        "cart", "shop", [container("cart", "registry.example.com/shop/cart:1.8.0")], style="helm", replicas=None
    )
    add(
        "helm-create-dry-run-no-replicas",
        review(
            "CREATE", obj, uid="c0000021-0000-4000-8000-000000000021", user=HELM, dry_run=True, field_manager="helm"
        ),
        {"description": "Dry-run CREATE without spec.replicas", "row": ROW | {"replicas_specified": 3}},
        {
            "patched": patched(obj, replicas=3, resources={0: RES_FULL}),
            "warnings": [w("spec.replicas unset -> 3 (control table)"), *res_warnings("cart", None, RES_FULL)],
            "audit": {"action": "admission.patch", "result": "dry_run"},
        },
    )

    # 22. admission.k8s.io/v1beta1 (older API servers): answered in v1beta1.
    new = deployment("cart", "shop", [container("cart", "registry.example.com/shop/cart:1.9.0", resources=RES_FULL)])
    old = with_status(
        deployment("cart", "shop", [container("cart", "registry.example.com/shop/cart:1.8.0", resources=RES_FULL)])
    )
    add(
        "v1beta1-update-image",
        review(
            "UPDATE", new, old=old, uid="c0000022-0000-4000-8000-000000000022", api_version="admission.k8s.io/v1beta1"
        ),
        {
            "description": "v1beta1 review; resources already right, replicas patched",
            "row": ROW | {"replicas_specified": 3},
        },
        {
            "patched": patched(new, replicas=3),
            "warnings": [w("spec.replicas 2 -> 3 (control table)")],
            "audit": {"action": "admission.patch", "result": "ok"},
        },
    )

    # 23. Unmanaged CREATE: denied with 403 and how to register.
    obj = deployment("newsvc", "shop", [container("newsvc", "registry.example.com/shop/newsvc:0.1.0")])
    deny = (
        "KubeDoor: Deployment shop/newsvc is not in the control table of cluster prod, so it may not be created, "
        "rolled out or scaled. Register it first: add it under Microservices in the KubeDoor admin, or POST "
        '/api/v1/microservices/ with {"cluster": "prod", "namespace": "shop", "name": "newsvc"}; then apply again.'
    )
    add(
        "unmanaged-create-denied",
        review("CREATE", obj, uid="c0000023-0000-4000-8000-000000000023"),
        {"description": "Not in the table: denied", "name": "newsvc", "row": None},
        {"allowed": False, "code": 403, "message": deny, "audit": {"action": "admission.deny", "result": "denied"}},
    )

    # 24. Unmanaged CREATE with allow_unmanaged: allowed with a warning.
    add(
        "unmanaged-create-allowed",
        review("CREATE", obj, uid="c0000024-0000-4000-8000-000000000024"),
        {
            "description": "Not in the table, allow_unmanaged",
            "name": "newsvc",
            "row": None,
            "cluster": {"allow_unmanaged": True},
        },
        {
            "warnings": [
                w("shop/newsvc is not in the control table of cluster prod; allowed unchanged (allow_unmanaged)")
            ]
        },
    )

    # 25. Unmanaged UPDATE that only touches annotations: allowed unchanged.
    old = with_status(obj)
    new = copy.deepcopy(old)
    new["metadata"]["annotations"]["owner"] = "team-shop"
    add(
        "unmanaged-annotation-update",
        review("UPDATE", new, old=old, uid="c0000025-0000-4000-8000-000000000025", field_manager="kubectl-annotate"),
        {"description": "Unmanaged, annotations only", "name": "newsvc", "row": None},
        {},
    )

    # 26. Unmanaged scale: denied.
    sc_new, sc_old = scale("newsvc", "shop", 4, status_replicas=2), scale("newsvc", "shop", 2, status_replicas=2)
    add(
        "unmanaged-scale-denied",
        review(
            "UPDATE",
            sc_new,
            old=sc_old,
            uid="c0000026-0000-4000-8000-000000000026",
            sub_resource="scale",
            field_manager="kubectl-scale",
        ),
        {"description": "Unmanaged scale", "name": "newsvc", "row": None},
        {"allowed": False, "code": 403, "message": deny, "audit": {"action": "admission.deny", "result": "denied"}},
    )

    # 27. Unmanaged Deployment being deleted (finalizer removed by the garbage collector): allowed.
    old = with_status(obj)
    old["metadata"]["finalizers"] = ["foregroundDeletion"]
    old["metadata"]["deletionTimestamp"] = "2026-11-22T09:40:00Z"
    old["metadata"]["deletionGracePeriodSeconds"] = 0
    new = copy.deepcopy(old)
    del new["metadata"]["finalizers"]
    new["spec"]["replicas"] = 0
    add(
        "unmanaged-being-deleted",
        review(
            "UPDATE",
            new,
            old=old,
            uid="c0000027-0000-4000-8000-000000000027",
            user=GC,
            field_manager="generic-garbage-collector",
        ),
        {"description": "Deletion never gets stuck", "name": "newsvc", "row": None},
        {},
    )

    # 28. Managed Deployment being deleted, with a template change in the same update: allowed.
    base = deployment("cart", "shop", [container("cart", "registry.example.com/shop/cart:1.8.0", resources=OLD_RES)])
    old = with_status(base)
    old["metadata"]["deletionTimestamp"] = "2026-11-22T09:40:00Z"
    old["metadata"]["deletionGracePeriodSeconds"] = 0
    old["metadata"]["finalizers"] = ["example.com/cleanup"]
    new = copy.deepcopy(old)
    new["metadata"]["finalizers"] = []
    new["spec"]["template"]["metadata"]["labels"]["stage"] = "teardown"
    add(
        "managed-being-deleted",
        review("UPDATE", new, old=old, uid="c0000028-0000-4000-8000-000000000028", field_manager="cleanup-operator"),
        {"description": "Being deleted: allowed unchanged", "row": ROW | {"replicas_specified": 3}},
        {},
    )

    # 29. Excluded namespace: not controlled.
    obj = deployment(
        "coredns", "kube-system", [container("coredns", "registry.k8s.io/coredns/coredns:v1.11.1", port=8181)]
    )
    add(
        "namespace-excluded",
        review("CREATE", obj, uid="c0000029-0000-4000-8000-000000000029"),
        {"description": "kube-system is excluded", "namespace": "kube-system", "name": "coredns", "row": None},
        {},
    )

    # 30. Namespace outside the cluster's controlled list.
    obj = deployment("ledger", "finance", [container("ledger", "registry.example.com/finance/ledger:1.0")])
    add(
        "namespace-not-controlled",
        review("CREATE", obj, uid="c0000030-0000-4000-8000-000000000030"),
        {
            "description": "Only shop is controlled",
            "namespace": "finance",
            "name": "ledger",
            "row": None,
            "cluster": {"namespaces": ["shop"]},
        },
        {},
    )

    # 31. Audit mode: no patch, warnings say what enforce would do.
    new = deployment("cart", "shop", [container("cart", "registry.example.com/shop/cart:1.9.0", resources=OLD_RES)])
    old = with_status(
        deployment("cart", "shop", [container("cart", "registry.example.com/shop/cart:1.8.0", resources=OLD_RES)])
    )
    audit = "kubedoor audit mode, enforce would apply: "
    add(
        "audit-mode-update-image",
        review("UPDATE", new, old=old, uid="c0000031-0000-4000-8000-000000000031"),
        {"description": "Audit mode", "row": ROW | {"replicas_specified": 3}, "cluster": {"admission_mode": "audit"}},
        {
            "warnings": [
                audit + "spec.replicas 2 -> 3 (control table)",
                *(audit + x.removeprefix("kubedoor: ") for x in res_warnings("cart", OLD_RES, RES_FULL)),
            ],
            "audit": {"action": "admission.audit", "result": "ok"},
        },
    )

    # 32. Audit mode, unmanaged CREATE: allowed, the warning says enforce would deny.
    obj = deployment("newsvc", "shop", [container("newsvc", "registry.example.com/shop/newsvc:0.1.0")])
    add(
        "audit-mode-unmanaged",
        review("CREATE", obj, uid="c0000032-0000-4000-8000-000000000032"),
        {"description": "Audit mode, unmanaged", "name": "newsvc", "row": None, "cluster": {"admission_mode": "audit"}},
        {
            "warnings": ["kubedoor audit mode, enforce would deny: 403 shop/newsvc is not in the control table"],
            "audit": {"action": "admission.audit", "result": "ok"},
        },
    )

    # 33. No control data (database down at start): on_store_error allow.
    obj = deployment("cart", "shop", [container("cart", "registry.example.com/shop/cart:1.8.0")])
    add(
        "store-unavailable-allow",
        review("CREATE", obj, uid="c0000033-0000-4000-8000-000000000033"),
        {"description": "No snapshot, store down, default allow", "row": ROW, "store_available": False},
        {
            "warnings": [w("control table unavailable; allowed unchanged (on_store_error=allow)")],
            "audit": {"action": "admission.store_error", "result": "ok"},
        },
    )

    # 34. The same with on_store_error deny: 503.
    add(
        "store-unavailable-deny",
        review("CREATE", obj, uid="c0000034-0000-4000-8000-000000000034"),
        {
            "description": "No snapshot, store down, deny",
            "row": ROW,
            "store_available": False,
            "cluster": {"on_store_error": "deny"},
        },
        {
            "allowed": False,
            "code": 503,
            "message": (
                "KubeDoor: the control table is unavailable (database unreachable and no snapshot); refusing "
                "shop/cart because on_store_error is deny for cluster prod. Try again shortly."
            ),
            "audit": {"action": "admission.store_error", "result": "denied"},
        },
    )

    # 35. Not a Deployment (a StatefulSet): allowed unchanged.
    sts = deployment("db", "shop", [container("db", "postgres:16", port=5432)], replicas=1)
    sts["kind"] = "StatefulSet"
    sts["spec"]["serviceName"] = "db"
    del sts["spec"]["strategy"], sts["spec"]["progressDeadlineSeconds"]
    add(
        "other-kind-statefulset",
        review("CREATE", sts, uid="c0000035-0000-4000-8000-000000000035"),
        {"description": "Kind not Deployment/Scale", "name": "db", "row": None},
        {},
    )

    # 36. Unmanaged label-only change while the store is down: allowed without a store error.
    old = with_status(deployment("newsvc", "shop", [container("newsvc", "registry.example.com/shop/newsvc:0.1.0")]))
    new = copy.deepcopy(old)
    new["metadata"]["labels"]["tier"] = "gold"
    add(
        "store-unavailable-label-only",
        review("UPDATE", new, old=old, uid="c0000036-0000-4000-8000-000000000036", field_manager="kubectl-label"),
        {
            "description": "Nothing controlled changes: no store needed",
            "name": "newsvc",
            "row": None,
            "store_available": False,
        },
        {},
    )
    return out


def main() -> None:
    for path in HERE.glob("*.json"):
        path.unlink()
    for name, (doc, expected) in cases().items():
        (HERE / f"{name}.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        (HERE / f"{name}.expected.json").write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.write(f"wrote {len(cases())} cases to {HERE}\n")


if __name__ == "__main__":
    main()
