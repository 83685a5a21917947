"""The webhook process's gunicorn workers (apps/webhook/worker.py), under gunicorn with the webhook's config.

One worker process serves tests/webhook/worker_app.py, which answers which thread served the request:
the config's default (``PollerWorker``) and the opt-in ``InlineWorker``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.servers import OUTPUT, REPO, free_port, stop_process, wait_for_port

REQUEST = b"GET / HTTP/1.1\r\nHost: webhook.test\r\n\r\n"
INLINE = "apps.webhook.worker.InlineWorker"


@contextmanager
def gunicorn(*, worker_class: str = "", threads: int = 1) -> Iterator[int]:
    """gunicorn with the webhook's config and one worker; ``worker_class`` empty: the config's default."""
    OUTPUT.mkdir(exist_ok=True)
    port = free_port()
    env = os.environ | {
        "KUBEDOOR_WEBHOOK_THREADS": str(threads),
        "KUBEDOOR_WEBHOOK_TLS_CERT": "",
        "KUBEDOOR_WEBHOOK_TLS_KEY": "",
        "KUBEDOOR_WEBHOOK_WORKER_CLASS": worker_class,
    }
    if not worker_class:
        del env["KUBEDOOR_WEBHOOK_WORKER_CLASS"]
    args = [sys.executable, "-m", "gunicorn", "-c", "python:apps.webhook.gunicorn_conf"]
    args += ["--bind", f"127.0.0.1:{port}", "--workers", "1", "tests.webhook.worker_app:application"]
    with (OUTPUT / f"worker-test-{os.getpid()}-{port}.log").open("w") as log:
        process = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process=process)
        yield port
    finally:
        stop_process(process)


def responses(sock: socket.socket, count: int) -> list[dict]:
    """Read ``count`` HTTP responses (each with Content-Length) off one connection; their JSON bodies."""
    data, bodies = b"", list[dict]()
    while len(bodies) < count:
        head, separator, rest = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
            None,
        )
        if separator and length is not None and len(rest) >= length:
            assert head.startswith(b"HTTP/1.1 200 "), head
            bodies.append(json.loads(rest[:length]))
            data = rest[length:]
            continue
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return bodies


@pytest.fixture(scope="module", params=["default", "inline"])
def served(request) -> Iterator[tuple[str, int]]:
    """(kind, port): the config's worker, then the opt-in InlineWorker."""
    with gunicorn(worker_class=INLINE if request.param == "inline" else "") as port:
        yield request.param, port


def test_requests_are_answered_in_the_pool_or_on_the_main_loop(served):
    kind, port = served
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        answers = []
        for _ in range(20):  # one connection kept alive, as the API server keeps it
            sock.sendall(REQUEST)
            answers += responses(sock, 1)
    assert len(answers) == 20
    assert {answer["main_thread"] for answer in answers} == {kind == "inline"}
    assert len({answer["pid"] for answer in answers}) == 1


def test_a_connection_that_sends_nothing_holds_no_other_up(served):
    """A new connection waits on the poller for its first bytes. gthread's one pool thread waited up
    to 5 s for them first, and answered no other connection meanwhile: on gthread this test fails."""
    _, port = served
    with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
        with socket.create_connection(("127.0.0.1", port), timeout=2.5) as busy:
            busy.sendall(REQUEST)
            assert len(responses(busy, 1)) == 1
        idle.sendall(REQUEST)
        assert len(responses(idle, 1)) == 1


def test_pipelined_requests_are_all_answered(served):
    """Requests already buffered behind the one answered come back through the worker's queue, not a
    recursion per request (1 500 of them would pass Python's recursion limit)."""
    _, port = served
    count = 1500
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(REQUEST * count)
        assert len(responses(sock, count)) == count


def test_with_more_than_one_thread_the_inline_worker_answers_in_the_pool():
    with (
        gunicorn(worker_class=INLINE, threads=2) as port,
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        sock.sendall(REQUEST)
        assert responses(sock, 1)[0]["main_thread"] is False
