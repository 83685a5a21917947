"""The webhook process's gunicorn workers: gthread's, with new connections waiting on the poller.

``PollerWorker`` (the default, ``KUBEDOOR_WEBHOOK_WORKER_CLASS``) is gthread's worker, except that a new
connection waits on the worker's poller for its first bytes instead of in a pool thread. gthread's pool
thread waits up to 5 s for a new connection's first request before handing a silent connection back to the
poller; with the webhook's one thread per worker, a client that connects and sends nothing (a port scan, a
TCP probe that holds the connection) held that worker's reviews up for those 5 s. Now it holds nothing:
gthread already puts such "deferred" connections on the poller, this worker does so from the start.

``InlineWorker`` (opt-in: ``apps.webhook.worker.InlineWorker``) also answers each request on the thread
that polled it, so a worker has no pool thread at all. With one thread, gthread's pool only hands every
request from the main loop to its thread and back through a pipe, trading the GIL each way: ≈ 5 context
switches and ≈ 120 µs of CPU per review under load. Without them a review costs ≈ 25 % less CPU and a
worker answers ≈ 30 % more reviews/s. But where the worker shares short cores with other busy processes,
its tail is longer: its slowest reviews took 260–370 ms where gthread's took 50–65 ms in the same runs, and
in one run its 99th percentile at 64 connections with the database unreachable was twice gthread's
(bench/README.md, seventh session). So it is not the default; it suits webhook pods with CPU of their own
(requests equal to limits).

Requests of one worker are answered one after another, as with gthread's one thread. A client that stalls
in the middle of a request holds its worker, as it held the pool's one thread; since that also stops the
worker's heartbeat, the arbiter replaces the worker after gunicorn's ``timeout`` instead of leaving it
stuck. With more than one thread (``KUBEDOOR_WEBHOOK_THREADS``), or with HTTP/2 offered (its connections
are served until they close), it answers in the pool like ``PollerWorker``.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from typing import Any

from gunicorn.workers.gthread import _DEFER, TConn, ThreadWorker


class PollerWorker(ThreadWorker):
    def enqueue_req(self, conn: TConn) -> None:
        """A connection with nothing read yet (a new one) goes to the poller until it is readable, as
        gthread's pool thread would hand it back after waiting; any other is answered (``answer``)."""
        if not conn.initialized and not conn.data_ready:
            self.finish_request(conn, _done(_DEFER))
        else:
            self.answer(conn)

    def answer(self, conn: TConn) -> None:
        super().enqueue_req(conn)  # gthread's: the request goes to the pool


class InlineWorker(PollerWorker):
    def init_process(self) -> None:
        self.inline = self.cfg.threads == 1 and "h2" not in self.cfg.http_protocols
        self._ready: deque[TConn] = deque()
        self._answering = False
        super().init_process()

    def answer(self, conn: TConn) -> None:
        """Answer ``conn``'s request now, then put the connection back as gthread's pool would have.

        A request that arrives while another is answered (gthread's ``finish_request`` sends a
        connection with a pipelined request straight back to ``enqueue_req``) waits in ``_ready``: one
        loop, not a recursion per pipelined request.
        """
        if not self.inline:
            super().answer(conn)
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
