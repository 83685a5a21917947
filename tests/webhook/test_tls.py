"""The webhook process under gunicorn: HTTPS with a generated certificate, reloaded when it changes.

Two workers, as deployed: each binds its own SO_REUSEPORT socket and loads the certificate itself.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import trustme
from django.db import connection

from tests.factories import ClusterFactory, MicroserviceFactory
from tests.servers import OUTPUT, REPO, free_port, stop_process, wait_for_port
from tests.webhook.conftest import load_case


def _write_pair(cert: trustme.LeafCert, cert_path: Path, key_path: Path) -> None:
    """Replace the files the way a Secret volume update does: whole files swapped in by rename."""
    for blob, path in ((cert.cert_chain_pems[0], cert_path), (cert.private_key_pem, key_path)):
        tmp = path.with_suffix(".tmp")
        blob.write_to_path(str(tmp))
        os.replace(tmp, path)


def _client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def tls_webhook(transactional_db, tmp_path):
    """gunicorn with the webhook's own config, serving TLS from files, against the test database."""
    ca = trustme.CA()
    cert_path, key_path = tmp_path / "tls.crt", tmp_path / "tls.key"
    _write_pair(ca.issue_cert("127.0.0.1", "localhost"), cert_path, key_path)
    cluster = ClusterFactory(name="prod", admission_mode="enforce")
    MicroserviceFactory(cluster=cluster, namespace="shop", name="cart", replicas_specified=3)
    db = connection.settings_dict
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "KUBEDOOR_WEBHOOK_TLS_CERT": str(cert_path),
        "KUBEDOOR_WEBHOOK_TLS_KEY": str(key_path),
        "KUBEDOOR_WEBHOOK_WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    OUTPUT.mkdir(exist_ok=True)
    log = (OUTPUT / "webhook-tls.log").open("w")
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", "python:apps.webhook.gunicorn_conf"]
    process = subprocess.Popen(
        [*gunicorn, "--bind", f"127.0.0.1:{port}", "apps.webhook.wsgi:application"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, process=process)
        # Each worker binds its socket before it loads Django (gunicorn_conf.py), so on a loaded machine
        # a first connection can wait several seconds. Wait until new connections, which the kernel
        # spreads over both workers, are answered: the tests' 5 s timeouts then time the webhook, not
        # its start-up.
        for _ in range(8):
            httpx.get(f"https://127.0.0.1:{port}/healthz", verify=_client_context(ca), timeout=60)
        yield {"port": port, "ca": ca, "cert": cert_path, "key": key_path}
    finally:
        stop_process(process)
        log.close()


def test_webhook_answers_reviews_over_https(tls_webhook):
    # given the API server's view: TLS verified against the CA it got in caBundle
    base = f"https://127.0.0.1:{tls_webhook['port']}"
    review = load_case("scale-kubectl")[0]
    with httpx.Client(verify=_client_context(tls_webhook["ca"]), timeout=10) as client:
        # when
        ready = client.get(f"{base}/readyz")
        answer = client.post(f"{base}/mutate/prod", json=review)
        second = client.post(f"{base}/mutate/prod", json=review)  # same connection (keep-alive)
        metrics = client.get(f"{base}/metrics")
    # then
    assert ready.status_code == 200
    assert ready.json()["snapshot"] == "loaded"
    assert answer.status_code == 200
    assert answer.json()["response"]["warnings"] == ["kubedoor: spec.replicas 5 -> 3 (control table)"]
    assert second.json() == answer.json()
    assert 'kubedoor_webhook_admissions_total{decision="patch"} 2.0' in metrics.text


def test_webhook_refuses_plain_http(tls_webhook):
    base = f"https://127.0.0.1:{tls_webhook['port']}/healthz"
    assert httpx.get(base, verify=_client_context(tls_webhook["ca"]), timeout=5).json() == {"status": "ok"}
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{tls_webhook['port']}/healthz", timeout=5)


def test_webhook_reloads_a_renewed_certificate(tls_webhook):
    # given a renewed certificate from a new CA written over the old files
    base = f"https://127.0.0.1:{tls_webhook['port']}/healthz"
    old_ca, new_ca = tls_webhook["ca"], trustme.CA()
    assert httpx.get(base, verify=_client_context(old_ca), timeout=5).status_code == 200
    _write_pair(new_ca.issue_cert("127.0.0.1"), tls_webhook["cert"], tls_webhook["key"])
    # when new connections arrive (the process checks the files at most once per second)
    deadline = time.monotonic() + 20
    while True:
        try:
            response = httpx.get(base, verify=_client_context(new_ca), timeout=5)
            break
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    # then the new certificate is served without a restart, and the old CA no longer verifies it, on
    # every worker (new connections spread over both; each checks the files at most once a second)
    assert response.status_code == 200
    time.sleep(1.1)
    for _ in range(8):
        with pytest.raises(httpx.ConnectError):
            httpx.get(base, verify=_client_context(old_ca), timeout=5)
        assert httpx.get(base, verify=_client_context(new_ca), timeout=5).status_code == 200
