"""A real HTTP proxy in front of Prometheus that counts, slows down or drops queries (tests of chunked collection).

``proxy = PrometheusProxy(upstream_url)`` serves on loopback (``proxy.url``) and forwards every
``POST /api/v1/query`` to ``upstream_url``. ``proxy.count[time]`` counts the queries forwarded per
evaluation time (one per day's window end), ``proxy.dropped[time]`` the ones dropped.
``proxy.drop(time, times=n)``: the next ``n`` queries at ``time`` get their connection closed without
an answer (a real transport error for the client). ``proxy.delay = s``: every forwarded query first
waits ``s`` seconds, so a run lasts long enough to kill its worker in the middle of it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import httpx


class PrometheusProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.count: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.delay = 0.0
        self._drops: Counter[str] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = parse_qs(body.decode()).get("time", [""])[0]
                with proxy._lock:
                    drop = proxy._drops[at] > 0
                    if drop:
                        proxy._drops[at] -= 1
                        proxy.dropped[at] += 1
                    else:
                        proxy.count[at] += 1
                if drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                time.sleep(proxy.delay)
                upstream = httpx.post(
                    proxy.upstream + self.path,
                    content=body,
                    headers={"Content-Type": self.headers.get("Content-Type", "")},
                    timeout=60,
                )
                self.send_response(upstream.status_code)
                self.send_header("Content-Type", upstream.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def drop(self, at: str, *, times: int) -> None:
        with self._lock:
            self._drops[at] += times

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
