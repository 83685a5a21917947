"""The Kubernetes manifests in deploy/ (DESIGN §12), rendered with `kubectl kustomize` as an install does.

Both the base and the production overlay are rendered; every object is validated against the
Kubernetes 1.30 schemas (``kubernetes-validate``, strict: unknown fields fail) and the cert-manager
objects against tests/deploy/cert_manager_schema.py. The container image (deploy/Dockerfile) is not
built here (no container engine on the test machines); its consistency with the manifests is checked.
RBAC is checked against the code in test_rbac.py; the pods' commands are run in test_pods.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.cert_manager_schema import SCHEMAS
from tests.deploy.manifests import (
    DEPLOY,
    K8S_VERSION,
    NAMESPACE,
    PLACEHOLDER,
    PRODUCTION_IMAGE,
    TEST_SECRETS,
    WORKLOADS,
    collect_static_as_the_image_build_does,
    containers_of,
    cpu_millis,
    env_file_keys,
    generated,
    kustomize,
    mebibytes,
    one,
    secret_values,
    workloads_of,
)
from tests.servers import REPO, require_binary

# --- schema validation ---------------------------------------------------------------------------


def test_every_rendered_object_validates_against_kubernetes_1_30(rendered):
    kinds = Counter(o["kind"] for o in rendered)
    assert kinds == {
        "Namespace": 1,
        "ServiceAccount": 1,
        "ClusterRole": 1,
        "ClusterRoleBinding": 1,
        "ConfigMap": 1,
        "Secret": 1,
        "Service": 2,
        "Deployment": 4,
        "PodDisruptionBudget": 1,
        "Job": 1,
        "Issuer": 2,
        "Certificate": 2,
    }
    for obj in rendered:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["apiVersion"] == "cert-manager.io/v1":
            jsonschema.validate(obj, SCHEMAS[obj["kind"]])
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} is not valid for Kubernetes {K8S_VERSION}: {exc.caught}")


def test_schema_validation_rejects_broken_objects(base):
    # given: the web Deployment with an unknown field, and the serving Certificate without secretName
    web = json.loads(json.dumps(one(base, "Deployment", "kubedoor-web")))
    web["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    certificate = json.loads(json.dumps(one(base, "Certificate", "kubedoor-webhook-tls")))
    del certificate["spec"]["secretName"]
    issuer = json.loads(json.dumps(one(base, "Issuer", "kubedoor-ca")))
    issuer["spec"]["selfSigned"] = {}
    # then: each is refused, so the validation above is not vacuous
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, K8S_VERSION, strict=True)
    with pytest.raises(jsonschema.ValidationError, match="'secretName' is a required property"):
        jsonschema.validate(certificate, SCHEMAS["Certificate"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(issuer, SCHEMAS["Issuer"])


# --- namespace, names, labels ---------------------------------------------------------------------


def test_namespace_is_ignored_by_kubedoors_own_webhook(rendered):
    namespace = one(rendered, "Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["kubedoor-ignore"] == "true"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for obj in rendered:
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kubedoor"


def test_services_route_to_the_named_container_ports(rendered):
    deployments = {o["metadata"]["name"]: o for o in rendered if o["kind"] == "Deployment"}
    expected = {"kubedoor-web": (80, 8000, "kubedoor-web"), "kubedoor-webhook": (443, 8443, "kubedoor-webhook")}
    services = {o["metadata"]["name"]: o for o in rendered if o["kind"] == "Service"}
    assert set(services) == set(expected)
    for name, (port, container_port, deployment_name) in expected.items():
        service = services[name]
        (service_port,) = service["spec"]["ports"]
        assert service_port["port"] == port
        selected = [
            d["metadata"]["name"]
            for d in deployments.values()
            if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert selected == [deployment_name]
        (container,) = deployments[deployment_name]["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports[service_port["targetPort"]] == container_port


# --- workloads ------------------------------------------------------------------------------------


def test_webhook_runs_two_replicas_with_a_disruption_budget(rendered):
    webhook = one(rendered, "Deployment", "kubedoor-webhook")
    assert webhook["spec"]["replicas"] == 2
    assert webhook["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pdb = one(rendered, "PodDisruptionBudget", "kubedoor-webhook")
    assert pdb["spec"]["minAvailable"] == 1
    pod_labels = webhook["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    others = [
        d["metadata"]["name"]
        for d in rendered
        if d["kind"] == "Deployment"
        and d["metadata"]["name"] != "kubedoor-webhook"
        and pdb["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert others == []
    pod = webhook["spec"]["template"]["spec"]
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    assert anti["labelSelector"]["matchLabels"] == pdb["spec"]["selector"]["matchLabels"]
    assert sorted(c["topologyKey"] for c in pod["topologySpreadConstraints"]) == [
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    ]


def test_webhook_serves_tls_from_the_cert_manager_secret(rendered):
    webhook = one(rendered, "Deployment", "kubedoor-webhook")
    pod = webhook["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["KUBEDOOR_PROCESS"] == "webhook"
    # apps/webhook/gunicorn_conf.py reads the TLS files from the env (served over TLS: see the
    # test below that starts this very command).
    assert container["args"][:3] == [
        "gunicorn",
        "--config=python:apps.webhook.gunicorn_conf",
        "apps.webhook.wsgi:application",
    ]
    assert env["KUBEDOOR_WEBHOOK_BIND"] == "0.0.0.0:8443"
    assert [p["containerPort"] for p in container["ports"]] == [8443]
    # The files the env names are in the volume made from the serving Certificate's Secret.
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tls"]
    assert mount["readOnly"] is True
    assert env["KUBEDOOR_WEBHOOK_TLS_CERT"] == f"{mount['mountPath']}/tls.crt"
    assert env["KUBEDOOR_WEBHOOK_TLS_KEY"] == f"{mount['mountPath']}/tls.key"
    (volume,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    serving = one(rendered, "Certificate", "kubedoor-webhook-tls")
    assert volume["secret"]["secretName"] == serving["spec"]["secretName"]
    # Group-readable through fsGroup only (0440).
    assert volume["secret"]["defaultMode"] == 0o440
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]
    readiness = container["readinessProbe"]["httpGet"]
    assert (readiness["scheme"], readiness["path"], readiness["port"]) == ("HTTPS", "/readyz", "https")
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["automountServiceAccountToken"] is False


def test_args_reference_only_variables_defined_in_the_container_env(rendered):
    # Kubernetes expands $(NAME) in args only from the container's own variables.
    for name, workload in workloads_of(rendered).items():
        for container in containers_of(workload):
            defined = {e["name"] for e in container.get("env", [])}
            for reference in re.findall(r"\$\(([A-Z0-9_]+)\)", " ".join(container["args"])):
                assert reference in defined, f"{name}: $({reference}) is not in env"


def test_web_runs_gunicorn_with_health_probes(rendered):
    web = one(rendered, "Deployment", "kubedoor-web")
    (container,) = web["spec"]["template"]["spec"]["containers"]
    assert container["args"][:2] == ["gunicorn", "kubedoor_site.wsgi:application"]
    assert "--bind=0.0.0.0:8000" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # Probes name a host that KUBEDOOR_ALLOWED_HOSTS lists, or Django would answer 400.
    config = generated(rendered, "ConfigMap", "kubedoor-config")
    allowed = config["data"]["KUBEDOOR_ALLOWED_HOSTS"].split(",")
    for workload in ("kubedoor-web", "kubedoor-webhook"):
        (probed,) = one(rendered, "Deployment", workload)["spec"]["template"]["spec"]["containers"]
        for probe in ("readinessProbe", "livenessProbe"):
            (host,) = [h["value"] for h in probed[probe]["httpGet"]["httpHeaders"] if h["name"] == "Host"]
            assert host in allowed
    assert "kubedoor-webhook.kubedoor.svc" in allowed


def test_worker_and_beat_run_celery_and_beat_is_a_singleton(rendered):
    worker = one(rendered, "Deployment", "kubedoor-worker")
    (worker_container,) = worker["spec"]["template"]["spec"]["containers"]
    assert worker_container["args"][:3] == ["celery", "--app=kubedoor_site", "worker"]
    beat = one(rendered, "Deployment", "kubedoor-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    (beat_container,) = beat["spec"]["template"]["spec"]["containers"]
    assert beat_container["args"][:3] == ["celery", "--app=kubedoor_site", "beat"]
    assert "--scheduler=django_celery_beat.schedulers:DatabaseScheduler" in beat_container["args"]


def test_every_container_has_resources_and_runs_unprivileged(rendered):
    workloads = workloads_of(rendered)
    assert set(workloads) == WORKLOADS
    for name, workload in workloads.items():
        pod = workload["spec"]["template"]["spec"]
        pod_security = pod["securityContext"]
        assert pod_security["runAsNonRoot"] is True, name
        assert pod_security["runAsUser"] == 10001, name
        assert pod_security["runAsGroup"] == 10001, name
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in containers_of(workload):
            where = f"{name}/{container['name']}"
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            assert "privileged" not in security, where
            resources = container["resources"]
            assert set(resources) == {"requests", "limits"}, where
            assert set(resources["requests"]) == {"cpu", "memory"}, where
            assert set(resources["limits"]) == {"cpu", "memory"}, where
            assert cpu_millis(resources["requests"]["cpu"]) <= cpu_millis(resources["limits"]["cpu"]), where
            assert mebibytes(resources["requests"]["memory"]) <= mebibytes(resources["limits"]["memory"]), where
            # A read-only root file system needs a writable /tmp.
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            (tmp,) = [v for v in pod["volumes"] if v["name"] == mounts["/tmp"]]
            assert "emptyDir" in tmp, where


def test_only_web_and_worker_carry_the_kubernetes_identity(rendered):
    workloads = workloads_of(rendered)
    for name, workload in workloads.items():
        pod = workload["spec"]["template"]["spec"]
        if name in {"kubedoor-web", "kubedoor-worker"}:
            assert pod["serviceAccountName"] == "kubedoor", name
            assert "automountServiceAccountToken" not in pod, name
        else:
            assert "serviceAccountName" not in pod, name
            assert pod["automountServiceAccountToken"] is False, name
    account = one(rendered, "ServiceAccount", "kubedoor")
    binding = one(rendered, "ClusterRoleBinding", "kubedoor")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kubedoor"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kubedoor", "namespace": NAMESPACE}]
    assert account["metadata"]["namespace"] == NAMESPACE


def test_migration_job_migrates_postgresql_then_clickhouse_when_configured(rendered, tmp_path):
    job = one(rendered, "Job", "kubedoor-migrate")
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][:2] == ["sh", "-c"]
    script = container["args"][2]
    # Run the Job's script with a `python` that records its arguments and fails when told to.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    fake = bin_dir / "python"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n[ "$*" != "$FAIL_ON" ]\n')
    fake.chmod(0o755)

    def run(**env: str) -> tuple[int, list[str]]:
        log.write_text("")
        full_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAIL_ON": "", **env}
        result = subprocess.run(["sh", "-c", script], env=full_env, capture_output=True, timeout=30, check=False)
        return result.returncode, log.read_text().splitlines()

    assert run(CLICKHOUSE_URL="") == (0, ["manage.py migrate --noinput"])
    assert run(CLICKHOUSE_URL="clickhouse://ch:9000/kubedoor") == (
        0,
        ["manage.py migrate --noinput", "manage.py clickhouse_migrate"],
    )
    # A failed migrate stops the Job before ClickHouse is touched, and the Job's pod fails.
    assert run(CLICKHOUSE_URL="clickhouse://ch:9000/kubedoor", FAIL_ON="manage.py migrate --noinput") == (
        1,
        ["manage.py migrate --noinput"],
    )


# --- settings -------------------------------------------------------------------------------------


# Set per container, not in the ConfigMap: which process this is, and the webhook process's own
# variables (its gunicorn settings, mounted TLS files and metrics folder).
WEBHOOK_CONTAINER_SETTINGS = {"PROMETHEUS_MULTIPROC_DIR"}


def _webhook_process_settings() -> set[str]:
    """Variables the webhook's gunicorn configuration reads (it runs before Django's settings)."""
    source = (REPO / "apps" / "webhook" / "gunicorn_conf.py").read_text()
    return set(re.findall(r'os\.environ\.get\(\s*"([A-Z][A-Z0-9_]*)"', source)) | WEBHOOK_CONTAINER_SETTINGS


class _RecordingEnv(dict):
    """A mapping that remembers every key read, so a settings builder tells which variables it uses."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def _settings_read_by_the_code() -> set[str]:
    """Environment variables the settings module reads, and those of the LDAP and OIDC settings builders."""
    from kubedoor_site.ldap_config import ldap_settings

    settings_source = (REPO / "kubedoor_site" / "settings.py").read_text()
    names = set(re.findall(r'\benv\.\w+\(\s*"([A-Z][A-Z0-9_]*)"', settings_source))
    # With every LDAP variable set, the builder takes every branch and reads each variable it knows.
    ldap_env = _RecordingEnv(
        {
            "AUTH_LDAP_SERVER_URI": "ldap://ldap.example.test",
            "AUTH_LDAP_USER_SEARCH_BASE": "ou=people,dc=example,dc=test",
            "AUTH_LDAP_GROUP_SEARCH_BASE": "ou=groups,dc=example,dc=test",
            "AUTH_LDAP_VIEWER_GROUP_DN": "cn=viewers,ou=groups,dc=example,dc=test",
            "AUTH_LDAP_OPERATOR_GROUP_DN": "cn=operators,ou=groups,dc=example,dc=test",
            "AUTH_LDAP_ADMIN_GROUP_DN": "cn=admins,ou=groups,dc=example,dc=test",
        }
    )
    ldap_settings(ldap_env, base_backends=[])
    assert "AUTH_LDAP_BIND_PASSWORD" in ldap_env.read
    # The same for the OpenID Connect settings builder.
    from kubedoor_site.oidc_config import REQUIRED, oidc_settings

    oidc_env = _RecordingEnv(
        {"OIDC_RP_CLIENT_ID": "kubedoor", "OIDC_GROUP_ROLES": "ops:admin", **dict.fromkeys(REQUIRED, "x")}
    )
    oidc_settings(oidc_env, backends=[])
    assert "OIDC_RP_CLIENT_SECRET" in oidc_env.read
    return names | ldap_env.read | oidc_env.read


def test_every_setting_is_provided_exactly_once(rendered):
    # given: every variable .env.example documents and every one the code reads
    documented = set(env_file_keys(REPO / ".env.example"))
    read = _settings_read_by_the_code()
    config = set(generated(rendered, "ConfigMap", "kubedoor-config")["data"])
    secret = set(generated(rendered, "Secret", "kubedoor-secrets")["data"])
    # then: each is in the ConfigMap or the Secret (never both), or set per container; nothing else is
    webhook_process = _webhook_process_settings()
    assert {"KUBEDOOR_WEBHOOK_BIND", "KUBEDOOR_WEBHOOK_TLS_CERT", "PROMETHEUS_MULTIPROC_DIR"} <= webhook_process
    assert config & secret == set()
    assert config | secret == (documented | read) - webhook_process - {"KUBEDOOR_PROCESS"}
    assert {"KUBEDOOR_PROCESS"} <= read
    # Secrets are exactly the credentials; everything else is plain configuration.
    assert secret == {
        "KUBEDOOR_SECRET_KEY",
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "CLICKHOUSE_URL",
        "AUTH_LDAP_BIND_PASSWORD",
        "OIDC_RP_CLIENT_SECRET",
        "KUBEDOOR_ADMIN_PASSWORD",
    }
    processes = {}
    for name, workload in workloads_of(rendered).items():
        for container in containers_of(workload):
            refs = [next(iter(source.values()))["name"] for source in container["envFrom"]]
            assert refs == [
                generated(rendered, "ConfigMap", "kubedoor-config")["metadata"]["name"],
                generated(rendered, "Secret", "kubedoor-secrets")["metadata"]["name"],
            ], name
            env = {e["name"]: e["value"] for e in container.get("env", [])}
            processes[container["name"]] = env.get("KUBEDOOR_PROCESS")
            if name != "kubedoor-webhook":
                assert set(env) <= {"KUBEDOOR_PROCESS"}, name
    assert processes == {
        "wait-for-migrations": None,  # manage.py only, as the web process
        "web": "web",
        "worker": "worker",
        "beat": "beat",
        "webhook": "webhook",
        "migrate": "migrate",
    }
    (webhook,) = one(rendered, "Deployment", "kubedoor-webhook")["spec"]["template"]["spec"]["containers"]
    assert {e["name"] for e in webhook["env"]} == {"KUBEDOOR_PROCESS"} | webhook_process


def test_settings_module_reads_the_production_configuration(production, tmp_path):
    # given: the environment a production pod gets from the ConfigMap and the Secret
    env = dict(generated(production, "ConfigMap", "kubedoor-config")["data"])
    env.update(secret_values(generated(production, "Secret", "kubedoor-secrets")))
    env["KUBEDOOR_VAR_DIR"] = str(tmp_path / "var")  # /app/var exists only in the image
    env["PATH"] = os.environ["PATH"]
    env["DJANGO_SETTINGS_MODULE"] = "kubedoor_site.settings"
    probe = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "db = s.DATABASES['default']; "
        "print(json.dumps({'hosts': s.ALLOWED_HOSTS, 'csrf': s.CSRF_TRUSTED_ORIGINS, 'debug': s.DEBUG, "
        "'secure': s.SESSION_COOKIE_SECURE, 'proxy': s.SECURE_PROXY_SSL_HEADER, 'key': s.SECRET_KEY, "
        "'db': [db['ENGINE'], db['HOST'], db['NAME']], 'broker': s.CELERY_BROKER_URL, "
        "'beat': s.CELERY_BEAT_SCHEDULER, 'service': s.KUBEDOOR_WEBHOOK_SERVICE, "
        "'inject': s.KUBEDOOR_WEBHOOK_CA_INJECT_FROM, 'clickhouse': s.CLICKHOUSE_URL, "
        "'ldap': s.AUTH_LDAP_SERVER_URI}))"
    )
    # when
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    # then
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "hosts": [
            "kubedoor.example.com",
            "localhost",
            "kubedoor-web",
            "kubedoor-web.kubedoor.svc",
            "kubedoor-webhook.kubedoor.svc",
        ],
        "csrf": ["https://kubedoor.example.com"],
        "debug": False,
        "secure": True,
        "proxy": ["HTTP_X_FORWARDED_PROTO", "https"],
        "key": TEST_SECRETS["KUBEDOOR_SECRET_KEY"],
        "db": ["django.db.backends.postgresql", "db.example.test", "kubedoor"],
        "broker": TEST_SECRETS["CELERY_BROKER_URL"],
        "beat": "django_celery_beat.schedulers:DatabaseScheduler",
        "service": "kubedoor/kubedoor-webhook",
        "inject": "kubedoor/kubedoor-webhook-tls",
        "clickhouse": TEST_SECRETS["CLICKHOUSE_URL"],
        "ldap": "",
    }
    # The secret key came from the Secret: nothing was generated into the var folder.
    assert not (tmp_path / "var" / "secret_key").exists()


# --- secrets --------------------------------------------------------------------------------------


def test_base_secret_holds_only_placeholders(base):
    values = secret_values(generated(base, "Secret", "kubedoor-secrets"))
    assert values, "the base Secret template lists the secret settings"
    for key, value in values.items():
        assert value == "" or PLACEHOLDER in value, f"{key} carries a value that is not a placeholder"
    for key in ("KUBEDOOR_SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL"):
        assert PLACEHOLDER in values[key], key
    # No other object carries secret material.
    assert [o["metadata"]["name"] for o in base if o["kind"] == "Secret"] == [
        generated(base, "Secret", "kubedoor-secrets")["metadata"]["name"]
    ]


def test_production_secret_comes_only_from_the_users_secret_env(production):
    values = secret_values(generated(production, "Secret", "kubedoor-secrets"))
    assert values == TEST_SECRETS
    assert not any(PLACEHOLDER in value for value in values.values())


def test_production_overlay_does_not_render_without_secret_env(tmp_path):
    tree = tmp_path / "deploy"
    shutil.copytree(DEPLOY, tree, ignore=shutil.ignore_patterns("secret.env"))
    result = kustomize(tree / "overlays" / "production")
    assert result.returncode != 0
    assert "secret.env" in result.stderr
    assert result.stdout == ""


def test_no_secret_env_is_tracked_by_git():
    git = require_binary("git")
    tracked = subprocess.run(
        [git, "ls-files", "deploy"], cwd=REPO, capture_output=True, text=True, timeout=30, check=True
    ).stdout.split()
    assert "deploy/base/secret.env.example" in tracked
    assert [path for path in tracked if path.endswith("secret.env")] == []
    ignored = subprocess.run(
        [git, "check-ignore", "-q", "deploy/overlays/production/secret.env"], cwd=REPO, timeout=30, check=False
    )
    assert ignored.returncode == 0, "deploy/overlays/production/secret.env must be ignored by git"


def test_entrypoint_refuses_placeholders_and_runs_the_command(tmp_path):
    entrypoint = DEPLOY / "entrypoint.sh"
    marker = tmp_path / "ran"
    command = ["sh", "-c", f'echo "$0" > {marker}; exit 3', "started"]
    base_env = {"PATH": "/usr/bin:/bin", **TEST_SECRETS}
    # given a placeholder left in the database URL: refused, the command never runs
    refused = subprocess.run(
        [str(entrypoint), *command],
        env={**base_env, "DATABASE_URL": "postgres://kubedoor:CHANGE-ME@db:5432/kubedoor"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode == 78
    assert "DATABASE_URL still holds the CHANGE-ME placeholder" in refused.stderr
    assert not marker.exists()
    # given real values: the command replaces the shell (exit code and arguments pass through)
    accepted = subprocess.run(
        [str(entrypoint), *command], env=base_env, capture_output=True, text=True, timeout=30, check=False
    )
    assert accepted.returncode == 3
    assert marker.read_text() == "started\n"


# --- production overlay ---------------------------------------------------------------------------


def test_production_overlay_sets_image_replicas_and_resources(production):
    workloads = workloads_of(production)
    for name, workload in workloads.items():
        for container in containers_of(workload):
            assert container["image"] == PRODUCTION_IMAGE, name
    assert workloads["kubedoor-webhook"]["spec"]["replicas"] == 2
    assert workloads["kubedoor-beat"]["spec"]["replicas"] == 1
    # Every workload's resources are set explicitly by the overlay's patch.
    patches = list(yaml.safe_load_all((DEPLOY / "overlays" / "production" / "resources.yaml").read_text()))
    assert {p["metadata"]["name"] for p in patches} == WORKLOADS
    for patch in patches:
        (patched,) = patch["spec"]["template"]["spec"]["containers"]
        (container,) = workloads[patch["metadata"]["name"]]["spec"]["template"]["spec"]["containers"]
        assert container["name"] == patched["name"]
        assert container["resources"] == patched["resources"]


# --- the image the manifests assume ---------------------------------------------------------------


def test_dockerfile_matches_the_manifests(base):
    # The image is not built in the tests (no container engine here); what the manifests rely on is.
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", dockerfile, flags=re.M)
    assert stages == ["python:3.11-slim-bookworm", "python:3.11-slim-bookworm"]
    assert "libldap2-dev libsasl2-dev" in dockerfile
    assert "pip install -r /tmp/requirements.txt" in dockerfile
    assert "collectstatic --noinput" in dockerfile
    assert re.search(r"^\s+MALLOC_ARENA_MAX=2$", dockerfile, flags=re.M)  # bench/collect measures with it
    assert re.search(r"^USER 10001:10001$", dockerfile, flags=re.M)
    assert 'ENTRYPOINT ["/usr/local/bin/kubedoor-entrypoint"]' in dockerfile
    assert "install -m 0755 deploy/entrypoint.sh /usr/local/bin/kubedoor-entrypoint" in dockerfile
    var_dir = re.search(r"KUBEDOOR_VAR_DIR=(\S+)", dockerfile).group(1)
    assert generated(base, "ConfigMap", "kubedoor-config")["data"]["KUBEDOOR_VAR_DIR"] == var_dir
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".env", "var", ".venv", "deploy/overlays/*/secret.env"} <= set(ignore)


def test_image_build_collects_static_files_and_leaves_no_secret_behind(tmp_path):
    # when: the Dockerfile's collectstatic step runs as written
    var = tmp_path / "var"
    result = collect_static_as_the_image_build_does(var)
    # then: the admin's assets are there (with WhiteNoise's compressed copies) ...
    assert result.returncode == 0, result.stderr
    assert (var / "static" / "admin" / "css" / "base.css").is_file()
    assert (var / "static" / "admin" / "css" / "base.css.gz").is_file()
    # ... and nothing else: no generated secret key, no SQLite file, no broker folder in the image
    assert sorted(path.name for path in var.iterdir()) == ["static"]


@pytest.mark.parametrize(
    "module", ["kubedoor_site.wsgi", "kubedoor_site.celery", "apps.webhook.wsgi", "apps.webhook.gunicorn_conf"]
)
def test_modules_the_manifests_run_exist(module):
    # gunicorn and celery targets of the web, webhook, worker and beat Deployments.
    from importlib.util import find_spec

    assert find_spec(module) is not None, f"{module} is run by deploy/base but does not exist"


@pytest.mark.parametrize("command", ["migrate", "collectstatic", "clickhouse_migrate", "kubedoor_admin"])
def test_management_commands_the_deployment_uses_exist(command):
    # The migration Job, the Dockerfile and the deploy guide's first login.
    from django.core.management import get_commands

    assert command in get_commands(), f"manage.py {command} is used by deploy/ but does not exist"
