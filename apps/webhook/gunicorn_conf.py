"""gunicorn settings of the webhook process: ``gunicorn -c python:apps.webhook.gunicorn_conf apps.webhook.wsgi``.

TLS is on when ``KUBEDOOR_WEBHOOK_TLS_CERT`` and ``KUBEDOOR_WEBHOOK_TLS_KEY`` name files: the
certificate and key are read again, without a restart, after they change on disk (cert-manager
renewing the Secret), checked at most once per second. Without them the process serves plain HTTP
(``make run``). Command-line flags such as ``--bind`` override these values.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("kubedoor.webhook.tls")

bind = [os.environ.get("KUBEDOOR_WEBHOOK_BIND", "0.0.0.0:8443")]
workers = int(os.environ.get("KUBEDOOR_WEBHOOK_WORKERS", "2"))
# gthread's worker, with new connections waiting on its poller, not in its pool (apps/webhook/worker.py).
worker_class = os.environ.get("KUBEDOOR_WEBHOOK_WORKER_CLASS", "apps.webhook.worker.PollerWorker")
threads = int(os.environ.get("KUBEDOOR_WEBHOOK_THREADS", "1"))  # CPU-bound: processes, not threads, add throughput
keepalive = int(os.environ.get("KUBEDOOR_WEBHOOK_KEEPALIVE", "75"))  # the API server keeps connections open
# Each worker binds its own SO_REUSEPORT socket (the master holds none) and the kernel spreads new
# connections over them. With one shared socket, the worker that wakes first may accept every
# connection a client opens at once; the API server keeps its connections for minutes, so one worker
# then serves everything while the other idles (measured: 5 runs of 12 at 16 connections, half the
# throughput). A worker that is (re)starting binds before it has loaded Django: connections the kernel
# hands it wait for the load (about a second) instead of going to its sibling.
reuse_port = True
backlog = 2048
timeout = 30
graceful_timeout = 10
accesslog = os.environ.get("KUBEDOOR_WEBHOOK_ACCESS_LOG") or None
wsgi_app = "apps.webhook.wsgi:application"
# No runtime control socket: several gunicorn processes on one host would share its default path.
control_socket_disable = True

_cert = os.environ.get("KUBEDOOR_WEBHOOK_TLS_CERT", "")
_key = os.environ.get("KUBEDOOR_WEBHOOK_TLS_KEY", "")
if _cert and _key:
    certfile = _cert
    keyfile = _key


class ReloadingContext:
    """Hands gunicorn an SSLContext, rebuilt when the certificate or key file changes.

    gunicorn asks for the context on every new connection, so this caches it and looks at the files'
    modification time and size at most every ``interval`` seconds. A half-written pair that does not
    load keeps the previous context until the files are whole again.
    """

    def __init__(self, *, interval: float = 1.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._signature: tuple[Any, ...] | None = None
        self._checked = 0.0

    @staticmethod
    def _stat(conf: Any) -> tuple[Any, ...]:
        signature: list[Any] = []
        for path in (conf.certfile, conf.keyfile):
            info = os.stat(path)
            signature += [path, info.st_mtime_ns, info.st_size, info.st_ino]
        return tuple(signature)

    def __call__(self, conf: Any, factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        now = time.monotonic()
        if self._context is not None and now - self._checked < self.interval:
            return self._context
        with self._lock:
            self._checked = now
            try:
                signature = self._stat(conf)
            except OSError as exc:
                if self._context is None:
                    raise
                logger.warning("webhook TLS files unreadable, keeping the loaded certificate: %s", exc)
                return self._context
            if signature != self._signature or self._context is None:
                try:
                    context = factory()
                except (OSError, ssl.SSLError) as exc:
                    if self._context is None:
                        raise
                    logger.warning("webhook TLS files changed but do not load yet, keeping the old ones: %s", exc)
                    return self._context
                context.minimum_version = ssl.TLSVersion.TLSv1_2
                if self._context is not None:
                    logger.info("webhook TLS certificate reloaded from %s", conf.certfile)
                self._context, self._signature = context, signature
            return self._context


_reloading_context = ReloadingContext()


def ssl_context(conf: Any, default_ssl_context_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    return _reloading_context(conf, default_ssl_context_factory)


def post_fork(server: Any, worker: Any) -> None:
    """With ``reuse_port`` the master listens on nothing (its "Listening at" is empty): each worker says."""
    if reuse_port:
        server.log.info("worker %s listening at %s", worker.pid, ", ".join(str(s) for s in worker.sockets))
