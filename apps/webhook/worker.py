"""The webhook process's gunicorn worker: gthread's, answering each request on its main loop.

A review is one CPU-bound call of ≈ 100 µs, and the webhook runs one thread per worker (processes, not
threads, add throughput under the GIL). With one thread, gthread's pool adds nothing but hand-offs: for
every request its main loop wakes the pool's thread, which answers and wakes the main loop back through a
pipe to put the connection back on the poller, and the two trade the GIL each way. Under load that was
≈ 5 context switches and ≈ 120 µs of CPU per review, a quarter of the webhook's (bench/README.md, seventh
session). This worker answers a request on the thread that polled it, so a worker has no pool thread at
all; everything else is gthread's: the poller, keep-alive, TLS, graceful stop, ``max_requests``, the
access log.

What changes for a client is only what already held with one thread: requests of one worker are answered
one after another. A new connection waits on the poller for its first bytes (gthread's "deferred"
connection), so one that connects and sends nothing holds nothing up; gthread's one pool thread waited up to
5 s for such a connection's first bytes before handing it back, and the worker answered nothing meanwhile
(tests/webhook/test_worker.py fails on gthread for that reason too). A client that stalls in the middle of
a request holds its worker, as it held the pool's one thread before; since that now also stops the
worker's heartbeat, the arbiter replaces the worker after gunicorn's ``timeout`` instead of leaving it
stuck.

With more than one thread (``KUBEDOOR_WEBHOOK_THREADS``), or with HTTP/2 offered (its connections are
served until they close), the worker is gthread unchanged.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from typing import Any

from gunicorn.workers.gthread import _DEFER, TConn, ThreadWorker


class InlineWorker(ThreadWorker):
    def init_process(self) -> None:
        self.inline = self.cfg.threads == 1 and "h2" not in self.cfg.http_protocols
        self._ready: deque[TConn] = deque()
        self._answering = False
        super().init_process()

    def enqueue_req(self, conn: TConn) -> None:
        """Answer ``conn``'s request now, then put the connection back as gthread's pool would have.

        A request that arrives while another is answered (gthread's ``finish_request`` sends a
        connection with a pipelined request straight back here) waits in ``_ready``: one loop, not a
        recursion per pipelined request.
        """
        if not self.inline:
            super().enqueue_req(conn)
            return
        if not conn.initialized and not conn.data_ready:  # nothing read yet: wait on the poller, not here
            self.finish_request(conn, _done(_DEFER))
            return
        self._ready.append(conn)
        if self._answering:
            return
        self._answering = True
        try:
            while self._ready:
                ready = self._ready.popleft()
                self.finish_request(ready, _done(self.handle(ready)))
        finally:
            self._answering = False


def _done(value: Any) -> Future[Any]:
    """A completed future, the form in which gthread's ``finish_request`` takes a request's outcome."""
    future: Future[Any] = Future()
    future.set_result(value)
    return future
