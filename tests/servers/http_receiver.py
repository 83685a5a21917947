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
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.servers import LoopbackHTTPServer


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
        self._http = LoopbackHTTPServer(self._serve, name="http-receiver")
        self.url = ""

    def start(self) -> HttpReceiver:
        self.url = self._http.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._http.stop()

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
