"""Real services for the test suite: each module starts one on loopback and stops it afterwards.

A service that cannot start fails the tests that need it; nothing here skips.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "test-output"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_binary(path: str) -> str:
    """The absolute path of a program the test needs; a missing one fails the test (never skips)."""
    found = shutil.which(path)
    if found is None:
        pytest.fail(f"{path} is not installed: run `make test`, which installs it (scripts/system-deps.sh test)")
    return found


def wait_for_port(port: int, *, process: subprocess.Popen | None = None, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def start_http_server(
    argv: list[str], *, port: int, log_path: Path, ready: Callable[[str], bool], name: str, timeout: float = 30.0
) -> tuple[subprocess.Popen, str]:
    """Start a server process (output to ``log_path``) and wait until ``ready(url)`` says it serves."""
    import httpx

    log = log_path.open("w")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port, process=process, timeout=timeout)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready(url):
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_process(process)
    raise TimeoutError(f"{name} did not become ready")


def stop_process(process: subprocess.Popen, *, timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


class LoopbackHTTPServer:
    """A threaded HTTP/1.1 server on a free loopback port that hands every request to ``serve``.

    The shared plumbing of the suite's recording servers (Kubernetes stand-in, chat receiver):
    one send per answer, no Nagle stalls, and ``stop`` also cuts kept-alive connections, which
    their handler threads would otherwise go on serving.
    """

    METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

    def __init__(self, serve: Callable[[BaseHTTPRequestHandler], None], *, name: str) -> None:
        self._serve = serve
        self._name = name
        self._connections: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    def start(self) -> str:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16  # one send per answer: no Nagle / delayed-ACK stalls
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                owner._connections.add(self.connection)

            def finish(self) -> None:
                owner._connections.discard(self.connection)
                super().finish()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
                return

        for method in self.METHODS:
            setattr(Handler, f"do_{method}", lambda handler: owner._serve(handler))
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, name=self._name, daemon=True).start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for connection in list(self._connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
