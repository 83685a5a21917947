"""Each pod's command run as the pod runs it: image entrypoint, pod environment, read-only root."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.manifests import (
    DEPLOY,
    TEST_SECRETS,
    collect_static_as_the_image_build_does,
    generated,
    one,
    secret_values,
)
from tests.servers import REPO, require_binary
from tests.servers.postgres import drop_database, new_database

# --- the pods' commands, run as the pods run them ----------------------------------------------------
#
# Each command below is a container's own `args`, started through the image's entrypoint in a
# sandbox shaped like the pod: a private mount namespace whose root file system is read-only, a
# fresh writable /tmp (the emptyDir) and the pod's files (TLS Secret, var folder) under /srv. A write
# anywhere else fails, as it would with readOnlyRootFilesystem. The user is not switched to the
# pods' 10001: the development interpreter may live under root's home, which that user cannot reach
# (the image installs Python where it can); runAsNonRoot and runAsUser are checked statically above.

# The checkout ($2) is put back at its own path, read-only, after the fresh /tmp is mounted: it may
# itself live under /tmp (CI clones anywhere), and the virtualenv's scripts name it in their shebangs.
POD_SANDBOX = (
    'mount --bind "$1" /srv && mount --bind "$2" /mnt && mount -o remount,ro,bind / '
    '&& mount -t tmpfs -o size=64m,mode=1777 tmpfs /tmp && mkdir -p "$2" && mount --bind /mnt "$2" '
    '&& mount -o remount,ro,bind "$2" && shift 2 && exec "$@"'
)


def _in_pod(command: list[str], pod_dir: Path) -> list[str]:
    return [require_binary("unshare"), "--mount", "--propagation", "private", "sh", "-c", POD_SANDBOX, "sh"] + [
        str(pod_dir),
        str(REPO),
        str(DEPLOY / "entrypoint.sh"),
        *command,
    ]


@pytest.fixture
def pod_dir(tmp_path) -> Path:
    """What the pod sees under /srv: an existing var folder (the image's /app/var) and TLS files."""
    directory = tmp_path / "pod"
    (directory / "var").mkdir(parents=True)
    (directory / "tls").mkdir()
    (directory / "metrics").mkdir()
    directory.chmod(0o755)
    return directory


def _pod_env(objects: list[dict[str, Any]], container: dict[str, Any], **overrides: str) -> dict[str, str]:
    """The environment a container gets: ConfigMap, Secret, its own env; then the test's overrides."""
    from django.conf import settings

    env = dict(generated(objects, "ConfigMap", "kubedoor-config")["data"])
    env.update(secret_values(generated(objects, "Secret", "kubedoor-secrets")))
    env.update({e["name"]: e["value"] for e in container.get("env", [])})
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "PYTHONDONTWRITEBYTECODE": "1",  # as in the image
            "PYTHONUNBUFFERED": "1",
            "KUBEDOOR_VAR_DIR": "/srv/var",  # the image's /app/var
            "CLICKHOUSE_URL": "",
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        }
    )
    env.update(overrides)
    return env


def _run_in_pod(command: list[str], env: dict[str, str], pod_dir: Path, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(
        _in_pod(command, pod_dir), env=env, cwd=REPO, capture_output=True, text=True, check=False, **kwargs
    )


def _start_in_pod(command: list[str], env: dict[str, str], pod_dir: Path, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(_in_pod(command, pod_dir), env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def _loopback(args: list[str], port: int) -> list[str]:
    return [f"--bind=127.0.0.1:{port}" if a.startswith("--bind=") else a for a in args]


def _wait_for_line(log: Path, text: str, process: subprocess.Popen, timeout: float = 120) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        assert process.poll() is None, f"exited with {process.returncode} before {text!r}:\n{log.read_text()}"
        time.sleep(0.1)
    pytest.fail(f"no {text!r} after {timeout} s:\n{log.read_text()}")


def _probe(container: dict[str, Any], probe: str) -> tuple[str, dict[str, str]]:
    get = container[probe]["httpGet"]
    return get["path"], {h["name"]: h["value"] for h in get.get("httpHeaders", [])}


def _until_ready(client: Any, container: dict[str, Any], process: subprocess.Popen, timeout: float = 240) -> None:
    """Probe readiness as the kubelet does, again and again, until it answers (a slow first start is fine)."""
    import time

    import httpx

    path, headers = _probe(container, "readinessProbe")
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"the server exited with {process.returncode}"
        try:
            if client.get(path, headers=headers).status_code == 200:
                return
        except httpx.TimeoutException:
            pass
        assert time.monotonic() < deadline, f"not ready after {timeout} s"
        time.sleep(0.5)


@pytest.fixture
def scratch_database_url():
    """An empty PostgreSQL database of its own on the test server, dropped afterwards."""
    name, url = new_database("kd_deploy")
    yield url
    drop_database(name)


@pytest.fixture(scope="module")
def migrated_database_url(production, tmp_path_factory):
    """A database migrated by the production migration Job's own command, run as the Job's pod."""
    name, url = new_database("kd_deploy")
    try:
        job = one(production, "Job", "kubedoor-migrate")
        (container,) = job["spec"]["template"]["spec"]["containers"]
        pod = tmp_path_factory.mktemp("job") / "pod"
        (pod / "var").mkdir(parents=True)
        result = _run_in_pod(container["args"], _pod_env(production, container, DATABASE_URL=url), pod, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Applying control.0001_initial... OK" in result.stdout
        assert "Read-only file system" not in result.stdout + result.stderr
        yield url
    finally:
        drop_database(name)


def test_pod_sandbox_has_a_read_only_root_and_a_writable_tmp(pod_dir):
    script = (
        'touch /tmp/ok && echo tmp-writable; touch "$0/probe" 2>/dev/null || echo root-read-only; '
        "touch /srv/var/probe 2>/dev/null && echo var-writable"
    )
    result = _run_in_pod(["sh", "-c", script, str(REPO)], {"PATH": "/usr/bin:/bin"}, pod_dir, timeout=30)
    assert result.returncode == 0, result.stderr
    # /srv/var stands for the image's /app/var, which is read-only in the pod: nothing may need to
    # write there, and the tests' processes get a writable one only because it is a separate mount.
    assert result.stdout.split() == ["tmp-writable", "root-read-only", "var-writable"]
    assert not (REPO / "probe").exists()


def test_pods_wait_for_the_migration_job_on_a_new_database(base, scratch_database_url, pod_dir, tmp_path):
    # given: the web pod's init container and the Job's script, each in its pod
    (init,) = one(base, "Deployment", "kubedoor-web")["spec"]["template"]["spec"]["initContainers"]
    (job,) = one(base, "Job", "kubedoor-migrate")["spec"]["template"]["spec"]["containers"]
    secrets = {**TEST_SECRETS, "DATABASE_URL": scratch_database_url, "CLICKHOUSE_URL": ""}
    init_env = _pod_env(base, init, **secrets)
    log = tmp_path / "init.log"
    waiting = _start_in_pod(init["args"], init_env, pod_dir, log)
    try:
        # when the database is empty, the init container keeps waiting
        _wait_for_line(log, "waiting for migrations", waiting)
        assert waiting.poll() is None
        # when the Job has run
        job_env = _pod_env(base, job, **secrets)
        migrated = _run_in_pod(job["args"], job_env, pod_dir, timeout=300)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        assert "Applying control.0001_initial... OK" in migrated.stdout
        # then the init container finishes by itself and the pod's main container may start
        assert waiting.wait(timeout=120) == 0, log.read_text()
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait(timeout=10)


def test_migration_job_creates_the_clickhouse_archive_when_configured(
    production, scratch_database_url, clickhouse_url, pod_dir, django_db_blocker
):
    from urllib.parse import urlparse

    from apps.metrics.clickhouse import PEAKS_TABLE, ClickHouseDoor
    from apps.metrics.pod_node_store import NODE_TABLE, POD_TABLE

    # given: the production Job's pod, with CLICKHOUSE_URL pointing at a real (Debian 18.16) server
    (job,) = one(production, "Job", "kubedoor-migrate")["spec"]["template"]["spec"]["containers"]
    env = _pod_env(production, job, DATABASE_URL=scratch_database_url, CLICKHOUSE_URL=clickhouse_url)
    # when
    result = _run_in_pod(job["args"], env, pod_dir, timeout=300)
    # then: PostgreSQL is migrated, and then the archive table exists in ClickHouse
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Applying control.0001_initial... OK" in result.stdout
    assert f"{PEAKS_TABLE} ready on ClickHouse" in result.stdout
    database = urlparse(clickhouse_url).path.strip("/")
    with django_db_blocker.unblock():
        door = ClickHouseDoor.from_url(clickhouse_url)
        try:
            tables = door.execute(
                "SELECT name FROM system.tables WHERE database = %(database)s", {"database": database}
            )
        finally:
            door.close()
    assert sorted(tables) == sorted([(PEAKS_TABLE,), (POD_TABLE,), (NODE_TABLE,)])


def test_web_pod_answers_its_probes(production, migrated_database_url, pod_dir, tmp_path):
    import httpx

    from tests.servers import free_port, stop_process, wait_for_port

    (container,) = one(production, "Deployment", "kubedoor-web")["spec"]["template"]["spec"]["containers"]
    # the image's /app/var, with the static files its build collected
    built = collect_static_as_the_image_build_does(pod_dir / "var")
    assert built.returncode == 0, built.stderr
    port = free_port()
    env = _pod_env(production, container, DATABASE_URL=migrated_database_url)
    process = _start_in_pod(_loopback(container["args"], port), env, pod_dir, tmp_path / "web.log")
    try:
        wait_for_port(port, process=process, timeout=120)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            _until_ready(http, container, process)
            for probe in ("readinessProbe", "livenessProbe"):
                path, headers = _probe(container, probe)
                response = http.get(path, headers=headers)
                assert response.status_code == 200, (probe, response.text)
                assert response.json()["status"] == "ok"
            # Without the probe's Host header (the kubelet would send the pod IP) Django refuses it.
            assert http.get("/readyz", headers={"Host": "10.1.2.3:8000"}).status_code == 400
            # The admin login page renders from the migrated database, with its assets served by
            # WhiteNoise from the read-only image folder.
            public = {"Host": "kubedoor.example.com"}
            assert http.get("/admin/login/", headers=public).status_code == 200
            stylesheet = http.get("/static/admin/css/base.css", headers=public)
            assert stylesheet.status_code == 200
            assert stylesheet.headers["content-type"].startswith("text/css")
    finally:
        stop_process(process)
    output = (tmp_path / "web.log").read_text()
    assert process.returncode == 0, output
    assert "Read-only file system" not in output


def test_webhook_pod_serves_tls_from_the_mounted_files(production, migrated_database_url, pod_dir, tmp_path):
    import ssl

    import httpx
    import trustme

    from tests.servers import free_port, stop_process, wait_for_port

    webhook = one(production, "Deployment", "kubedoor-webhook")
    (container,) = webhook["spec"]["template"]["spec"]["containers"]
    serving = one(production, "Certificate", "kubedoor-webhook-tls")
    # given: files like the ones cert-manager writes into the Secret, for the Certificate's DNS names
    ca = trustme.CA()
    certificate = ca.issue_cert(*serving["spec"]["dnsNames"], "localhost")
    env_files = {e["name"]: e["value"] for e in container["env"]}
    cert_name = Path(env_files["KUBEDOOR_WEBHOOK_TLS_CERT"]).name
    key_name = Path(env_files["KUBEDOOR_WEBHOOK_TLS_KEY"]).name
    certificate.cert_chain_pems[0].write_to_path(str(pod_dir / "tls" / cert_name))
    certificate.private_key_pem.write_to_path(str(pod_dir / "tls" / key_name))
    port = free_port()
    env = _pod_env(
        production,
        container,
        DATABASE_URL=migrated_database_url,
        # the Secret's mount path, at the sandbox's /srv
        KUBEDOOR_WEBHOOK_TLS_CERT=f"/srv/tls/{cert_name}",
        KUBEDOOR_WEBHOOK_TLS_KEY=f"/srv/tls/{key_name}",
        # the metrics emptyDir, likewise
        PROMETHEUS_MULTIPROC_DIR="/srv/metrics",
        KUBEDOOR_WEBHOOK_BIND=f"127.0.0.1:{port}",
    )
    # (the address comes from KUBEDOOR_WEBHOOK_BIND, moved to a loopback port above)
    assert not any(arg.startswith("--bind") for arg in container["args"])
    process = _start_in_pod(container["args"], env, pod_dir, tmp_path / "webhook.log")
    try:
        wait_for_port(port, process=process, timeout=120)
        context = ssl.create_default_context()
        ca.configure_trust(context)
        # when the kubelet probes over HTTPS, as the probes say
        with httpx.Client(base_url=f"https://localhost:{port}", verify=context, timeout=30) as https:
            _until_ready(https, container, process)
            for probe in ("readinessProbe", "livenessProbe"):
                assert container[probe]["httpGet"]["scheme"] == "HTTPS"
                path, headers = _probe(container, probe)
                response = https.get(path, headers=headers)
                assert response.status_code == 200, (probe, response.text)
                assert response.json()["status"] == "ok"
            # ... and Prometheus can scrape the webhook where the pod's annotations say
            annotations = webhook["spec"]["template"]["metadata"]["annotations"]
            assert (annotations["prometheus.io/scheme"], annotations["prometheus.io/port"]) == ("https", "8443")
            metrics = https.get(annotations["prometheus.io/path"])
            assert metrics.status_code == 200
            assert "kubedoor_webhook_snapshot_age_seconds" in metrics.text
        assert list((pod_dir / "metrics").iterdir()), "the workers keep their counters in the metrics folder"
        # then plain HTTP on the same port gets no answer from the webhook
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http, pytest.raises(httpx.HTTPError):
            http.get("/healthz")
    finally:
        stop_process(process)
    output = (tmp_path / "webhook.log").read_text()
    assert process.returncode == 0, output
    assert "Read-only file system" not in output
    assert "Traceback" not in output, output


def _periodic_task_names(database_url: str) -> list[str]:
    import psycopg

    with psycopg.connect(database_url, connect_timeout=10) as connection:
        rows = connection.execute("SELECT name FROM django_celery_beat_periodictask ORDER BY name").fetchall()
    return [name for (name,) in rows]


def test_worker_pod_starts(production, migrated_database_url, pod_dir, tmp_path):
    from tests.servers import stop_process

    (container,) = one(production, "Deployment", "kubedoor-worker")["spec"]["template"]["spec"]["containers"]
    env = _pod_env(production, container, DATABASE_URL=migrated_database_url)
    log = tmp_path / "worker.log"
    # A queue of its own, so the worker never takes a message another test left on the shared broker.
    queue = f"kubedoor-deploy-test-{uuid.uuid4().hex[:8]}"
    process = _start_in_pod([*container["args"], f"--queues={queue}"], env, pod_dir, log)
    try:
        _wait_for_line(log, " ready.", process, timeout=120)
        assert "concurrency: 2 (prefork)" in log.read_text()
    finally:
        stop_process(process, timeout=60)
    output = log.read_text()
    assert "Read-only file system" not in output
    assert "Traceback" not in output, output


def test_beat_pod_schedules_from_the_database(production, migrated_database_url, pod_dir, tmp_path):
    import time

    from tests.servers import stop_process

    (container,) = one(production, "Deployment", "kubedoor-beat")["spec"]["template"]["spec"]["containers"]
    env = _pod_env(production, container, DATABASE_URL=migrated_database_url)
    log = tmp_path / "beat.log"
    process = _start_in_pod(container["args"], env, pod_dir, log)
    try:
        _wait_for_line(log, "beat: Starting...", process, timeout=120)
        assert ". scheduler -> django_celery_beat.schedulers.DatabaseScheduler" in log.read_text()
        # The DatabaseScheduler installs Celery's default entry in PostgreSQL once it has started;
        # stopping it before that would interrupt its first transaction.
        deadline = time.monotonic() + 120
        while "celery.backend_cleanup" not in _periodic_task_names(migrated_database_url):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    finally:
        stop_process(process, timeout=60)
    output = log.read_text()
    assert "Read-only file system" not in output
    assert "Traceback" not in output, output
