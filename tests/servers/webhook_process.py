"""The real webhook process (gunicorn + apps/webhook/wsgi.py) on loopback, against the test database.

``webhook_process`` (session scope) starts ``python -m gunicorn -c python:apps.webhook.gunicorn_conf
apps.webhook.wsgi`` once, plain HTTP, one worker, with its control snapshot checked every 0.1 s
(``KUBEDOOR_WEBHOOK_SNAPSHOT_CHECK_SECONDS``); it is stopped at the end of the session. It yields a
:class:`WebhookProcess`: ``.url``, ``.readyz()``, and ``.wait_fresh()``, which blocks until the
process's snapshot has re-read the database after the call, so a test that committed its rows
(``transactional_db``) can act as kubectl right after.

``admitting_cluster`` (function scope, ``transactional_db`` with serialized rollback) is the
``Cluster`` ``prod`` on the Kubernetes stand-in, admission still off, with ``KUBEDOOR_WEBHOOK_URL``
set to ``https://kubedoor-webhook.test`` (so a registration carries ``clientConfig.url``) and every
webhook the stand-in holds routed to the webhook process. At teardown it waits until the process has written
the audit events of the reviews it answered, so none lands after the test database is flushed.

The webhook fixture in tests/webhook/conftest.py has the same name and shadows this one there (it
only switches the URL map in-process); use this one from other test folders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers import OUTPUT, REPO, free_port, stop_process
from tests.servers.celery_worker import _database_url
from tests.servers.k8s_standin import AdmissionCall, K8sStandin, standin_cluster

WEBHOOK_URL = "https://kubedoor-webhook.test"
SNAPSHOT_CHECK_SECONDS = "0.1"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class WebhookProcess:
    url: str
    process: subprocess.Popen
    log_path: Path

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with _NO_PROXY.open(self.url + path, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def readyz(self) -> dict[str, Any]:
        return self.get("/readyz")[1]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_fresh(self, timeout: float = 10.0) -> None:
        """Block until the snapshot was checked against the database after this call began."""
        since = time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            checked = self.readyz().get("snapshot_checked_at")
            if checked is not None and checked >= since:
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"the webhook process exited ({self.process.returncode}):\n{self.log()}")
            time.sleep(0.02)
        raise TimeoutError(f"the webhook's snapshot was not re-checked within {timeout} s:\n{self.log()}")

    def wait_audit_events(self, count: int, timeout: float = 10.0) -> None:
        """Block until the process has written at least ``count`` admission audit events."""
        from apps.audit.models import AuditEvent, AuditSource

        deadline = time.monotonic() + timeout
        while AuditEvent.objects.filter(source=AuditSource.WEBHOOK).count() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} admission audit events after {timeout} s:\n{self.log()}")
            time.sleep(0.02)


def _wait_healthy(webhook: WebhookProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if webhook.process.poll() is not None:
            raise RuntimeError(f"the webhook process exited ({webhook.process.returncode}):\n{webhook.log()}")
        try:
            if webhook.get("/healthz")[0] == 200 and webhook.get("/readyz")[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"the webhook process did not answer /healthz within {timeout} s:\n{webhook.log()}")


@pytest.fixture(scope="session")
def webhook_process(django_db_setup, django_db_blocker) -> Iterator[WebhookProcess]:
    """The real webhook process for the whole session, on the test database."""
    OUTPUT.mkdir(exist_ok=True)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "DATABASE_URL": _database_url(),
        "DJANGO_SETTINGS_MODULE": "kubedoor_site.settings",
        "KUBEDOOR_WEBHOOK_SNAPSHOT_CHECK_SECONDS": SNAPSHOT_CHECK_SECONDS,
        "KUBEDOOR_WEBHOOK_TLS_CERT": "",
        "KUBEDOOR_WEBHOOK_TLS_KEY": "",
        "KUBEDOOR_WEBHOOK_ACCESS_LOG": "-",
    }
    log_path = OUTPUT / f"webhook-process-{os.getpid()}.log"
    args = [sys.executable, "-m", "gunicorn", "-c", "python:apps.webhook.gunicorn_conf"]
    args += ["--bind", f"127.0.0.1:{port}", "--workers", "1", "apps.webhook.wsgi"]
    with log_path.open("w") as log:
        process = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    webhook = WebhookProcess(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    try:
        _wait_healthy(webhook)
        yield webhook
    finally:
        stop_process(process)


def _audited(call: AdmissionCall) -> bool:
    """Whether the webhook queued an audit event for this answer, as apps/webhook/services.py does:
    patches, denials, store errors, and audit-mode findings that enforce would have patched or denied
    (a would-be patch says "old -> new"; other audit-mode warnings are not audited)."""
    from apps.webhook.admission import AUDIT_DENY_PREFIX, AUDIT_PREFIX

    response = (call.response or {}).get("response") or {}
    warnings = [w for w in response.get("warnings") or [] if isinstance(w, str)]
    return bool(
        response.get("patch")
        or response.get("allowed") is False
        or any("control table unavailable" in w or w.startswith(AUDIT_DENY_PREFIX) for w in warnings)
        or any(w.startswith(AUDIT_PREFIX) and " -> " in w for w in warnings)
    )


@pytest.fixture
def admitting_cluster(
    transactional_db, django_db_serialized_rollback, k8s_standin: K8sStandin, webhook_process: WebhookProcess, settings
) -> Iterator[Any]:
    """Cluster ``prod`` on the stand-in (admission off), whose webhooks reach the webhook process.

    Serialized rollback, like the other end-to-end tests: the flush after the test does not recreate
    content types under new ids, which would break the next serialized test's restore.
    """
    settings.KUBEDOOR_WEBHOOK_URL = WEBHOOK_URL
    settings.KUBEDOOR_WEBHOOK_CA_BUNDLE = ""
    settings.KUBEDOOR_WEBHOOK_CA_INJECT_FROM = ""
    k8s_standin.route_webhooks(to=webhook_process.url)
    yield standin_cluster(k8s_standin, name="prod")
    answered = [c for c in k8s_standin.admission_calls if c.target.startswith(webhook_process.url)]
    webhook_process.wait_audit_events(sum(1 for call in answered if _audited(call)))
