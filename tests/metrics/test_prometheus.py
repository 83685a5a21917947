"""The Prometheus door against a real loopback HTTP server that records what it receives."""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from apps.metrics.prometheus import PrometheusClient, PrometheusQueryError, PrometheusUnavailable
from tests.servers import free_port

AT = datetime.datetime(2026, 3, 1, 3, 30, tzinfo=datetime.UTC)
VECTOR = {
    "status": "success",
    "data": {
        "resultType": "vector",
        "result": [
            {"metric": {"namespace": "shop", "deployment": "cart"}, "value": [1772335800, "0.25"]},
            {"metric": {"namespace": "shop", "deployment": "web"}, "value": [1772335800, "NaN"]},
        ],
    },
}


class Recorder:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.replies: list[tuple[int, object]] = []

    def next_reply(self) -> tuple[int, object]:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


@pytest.fixture
def server():
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length).decode()
            recorder.requests.append(
                {"path": self.path, "form": parse_qs(body), "authorization": self.headers.get("Authorization")}
            )
            status, reply = recorder.next_reply()
            data = json.dumps(reply).encode() if not isinstance(reply, bytes) else reply
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    recorder.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield recorder
    httpd.shutdown()
    httpd.server_close()


def test_instant_query_posts_the_expression_and_time_and_drops_nan(server):
    server.replies = [(200, VECTOR)]
    with PrometheusClient(server.url) as client:
        samples = client.query("up", at=AT)
    assert [(s.labels, s.value) for s in samples] == [({"namespace": "shop", "deployment": "cart"}, 0.25)]
    assert server.requests == [
        {"path": "/api/v1/query", "form": {"query": ["up"], "time": ["1772335800.000"]}, "authorization": None}
    ]


def test_basic_auth_is_taken_from_the_url(server):
    server.replies = [(200, VECTOR)]
    url = server.url.replace("http://", "http://reader:s%40cret@")
    with PrometheusClient(url) as client:
        client.query("up", at=AT)
        assert "s@cret" not in client.base_url
    assert server.requests[0]["authorization"] == "Basic " + base64.b64encode(b"reader:s@cret").decode()


def test_a_bearer_token_is_sent(server):
    server.replies = [(200, VECTOR)]
    with PrometheusClient(server.url, token="tok-123") as client:
        client.query("up", at=AT)
    assert server.requests[0]["authorization"] == "Bearer tok-123"


def test_5xx_is_retried_a_bounded_number_of_times(server):
    server.replies = [(503, {"status": "error", "error": "overloaded"})]
    with PrometheusClient(server.url, retries=2, backoff=0.01) as client, pytest.raises(PrometheusUnavailable) as err:
        client.query("up", at=AT)
    assert len(server.requests) == 3
    assert "answered 503: overloaded" in str(err.value)


def test_a_5xx_then_success_returns_the_result(server):
    server.replies = [(502, {"status": "error", "error": "bad gateway"}), (200, VECTOR)]
    with PrometheusClient(server.url, retries=2, backoff=0.01) as client:
        samples = client.query("up", at=AT)
    assert len(server.requests) == 2
    assert samples[0].value == 0.25


def test_a_4xx_fails_at_once_with_prometheus_message(server):
    server.replies = [(400, {"status": "error", "errorType": "bad_data", "error": "1:3: parse error: unexpected"})]
    with PrometheusClient(server.url, retries=2, backoff=0.01) as client, pytest.raises(PrometheusQueryError) as err:
        client.query("up{", at=AT)
    assert len(server.requests) == 1
    assert "refused the query (400): 1:3: parse error: unexpected" in str(err.value)


def test_an_unreachable_server_is_a_clear_error_after_retries():
    url = f"http://127.0.0.1:{free_port()}"
    with PrometheusClient(url, retries=1, backoff=0.01) as client, pytest.raises(PrometheusUnavailable) as err:
        client.query("up", at=AT)
    assert str(err.value).startswith(f"Prometheus {url} is unreachable (ConnectError")


def test_a_body_that_is_not_json_is_refused(server):
    server.replies = [(200, b"<html>login</html>")]
    with PrometheusClient(server.url) as client, pytest.raises(PrometheusQueryError, match="not JSON"):
        client.query("up", at=AT)


def test_timeouts_are_explicit(server):
    with PrometheusClient(server.url, timeout=1.5) as client:
        timeout = client._client.timeout
    assert (timeout.connect, timeout.read) == (1.5, 1.5)


def test_a_query_that_times_out_is_not_sent_again(server):
    import time as _time

    class Slow(Recorder):
        def next_reply(self):
            _time.sleep(0.5)
            return (200, VECTOR)

    slow = Slow()
    slow.url = server.url
    server.replies = [(200, VECTOR)]
    server.next_reply = slow.next_reply
    with PrometheusClient(server.url, timeout=0.2, retries=2, backoff=0.01) as client:
        with pytest.raises(PrometheusUnavailable, match="did not answer within 0.2 s"):
            client.query("up", at=AT)
    _time.sleep(0.6)
    assert len(server.requests) == 1


def test_a_client_made_on_a_task_thread_parses_no_python_source():
    # CPython 3.11 builds ASTs with one recursion counter per interpreter: two threads parsing at once
    # raised "SystemError: AST constructor recursion depth mismatch" in a collection chunk whose first
    # httpx client imported httpcore and anyio (anyio parses its own source at import) while Celery
    # formatted a retry's traceback (3.11 parses each line's carets) on another thread. Django's setup
    # now imports the transport on the main thread; the first client on a thread parses nothing.
    code = """
import builtins, os, ast, threading
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubedoor_site.settings")
import django
django.setup()
from apps.metrics.prometheus import PrometheusClient
parsed = []
compile_ = builtins.compile
def compile(source, filename, mode, flags=0, *args, **kwargs):
    if flags & ast.PyCF_ONLY_AST:
        parsed.append(filename)
    return compile_(source, filename, mode, flags, *args, **kwargs)
builtins.compile = compile
def make():
    PrometheusClient("http://127.0.0.1:9", token="").close()
thread = threading.Thread(target=make)
thread.start()
thread.join()
print(parsed)
ast.parse("1")  # the hook sees a parse
print(parsed)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    on_thread, after = result.stdout.strip().splitlines()
    assert on_thread == "[]"
    assert after == "['<unknown>']"
