"""A real HTTP receiver on loopback that captures what is POSTed to it (chat webhooks, callbacks).

Fixture ``http_receiver`` (function scope) yields a started :class:`HttpReceiver`:

``receiver.url``
    ``http://127.0.0.1:<port>``; any path is accepted (``receiver.url + "/hook"``).
``receiver.received``
    every request, in order, as :class:`Captured` (``method``, ``path``, ``query``, ``headers`` with
    lower-case names, ``body`` — parsed JSON, or the raw text —, ``at``).
``receiver.behave(status=200, body=None, delay=0.0, times=None)``
    how to answer next: ``status`` and JSON ``body`` (default ``{"errcode": 0}``); ``delay`` seconds
    before answering (a hang when above the caller's timeout); ``times`` limits how many requests
    the behaviour applies to, after which the previous one applies again.
``receiver.wait_for(count, timeout=10.0)``
    block until ``count`` requests arrived (for deliveries made by a worker process); returns them.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass(frozen=True)
class Captured:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class _Behaviour:
    status: int
    body: Any
    delay: float
    times: int | None


@dataclass
class HttpReceiver:
    received: list[Captured] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        self._behaviours: list[_Behaviour] = [_Behaviour(200, {"errcode": 0}, 0.0, None)]
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[Any] = set()
        self.url = ""

    def start(self) -> HttpReceiver:
        receiver = owner = self

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

            def _handle(self) -> None:
                receiver._serve(self)

            do_GET = do_POST = do_PUT = _handle  # noqa: N815

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, name="http-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        # Kept-alive connections would go on being served by their handler threads: cut them.
        for connection in list(self._connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def behave(self, *, status: int = 200, body: Any = None, delay: float = 0.0, times: int | None = None) -> None:
        with self._lock:
            self._behaviours.append(_Behaviour(status, {"errcode": 0} if body is None else body, delay, times))

    def wait_for(self, count: int, *, timeout: float = 10.0) -> list[Captured]:
        with self._lock:
            self._lock.wait_for(lambda: len(self.received) >= count, timeout=timeout)
            return list(self.received)

    def _current(self) -> _Behaviour:
        while True:
            behaviour = self._behaviours[-1]
            if behaviour.times is None:
                return behaviour
            if behaviour.times > 0:
                behaviour.times -= 1
                return behaviour
            self._behaviours.pop()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self._lock:
            self.received.append(
                Captured(
                    method=handler.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in handler.headers.items()},
                    body=body,
                    at=time.time(),
                )
            )
            behaviour = self._current()
            self._lock.notify_all()
        if behaviour.delay:
            self._stopping.wait(behaviour.delay)
        payload = json.dumps(behaviour.body).encode()
        try:
            handler.send_response(behaviour.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the sender gave up (a timeout test)


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()
