"""A background writer for admission audit events, so the request path never touches the database.

The view queues one event per patch, denial or store error; a daemon thread writes them in small
batches, one transaction per batch. When the database is down it retries with a growing pause and,
after ``retries`` failures, drops the batch (counted in ``kubedoor_webhook_audit_dropped_total``).
A full queue drops new events the same way instead of slowing admission down.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any

from django.db import DatabaseError, close_old_connections, connections, transaction

from apps.audit.models import AuditEvent, AuditSource, NotificationChannel
from apps.audit.services import Actor, notifications_queue
from apps.webhook import metrics

logger = logging.getLogger(__name__)

WEBHOOK_ACTOR = Actor.system("webhook", source=AuditSource.WEBHOOK)
BATCH = 200


class AuditWriter:
    def __init__(self, *, maxsize: int = 10_000, retries: int = 5, autostart: bool = True) -> None:
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=maxsize)
        self.retries = retries
        self.autostart = autostart
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._last_drop_log = -1e9

    def submit(self, **event: Any) -> bool:
        """Queue one ``audit_event_record`` call (without the actor); False when it had to be dropped."""
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            metrics.audit_dropped_inc()
            now = time.monotonic()
            if now - self._last_drop_log >= 10:  # one line per 10 s, not one per event
                self._last_drop_log = now
                logger.error(
                    "admission audit queue full (%d); dropping events, e.g. %s %s/%s",
                    self.queue.maxsize,
                    event.get("action"),
                    event.get("namespace"),
                    event.get("name"),
                )
            return False
        self.ensure_started()
        return True

    def _take(self, *, block: bool) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        try:
            batch.append(self.queue.get(timeout=0.5) if block else self.queue.get_nowait())
            while len(batch) < BATCH:
                batch.append(self.queue.get_nowait())
        except queue.Empty:
            pass
        return batch

    @staticmethod
    def _write(batch: list[dict[str, Any]]) -> None:
        """One INSERT for the whole batch, then the notifications of the events a channel wants.

        ``audit_event_record`` costs two queries per event (~2 ms); at admission rates that is more
        than the webhook itself, so the batch is inserted at once with the same fields it would set.
        Notifications still go through ``notifications_queue``, only for events some enabled channel
        subscribes to (one query per batch to know).
        """
        events = [
            AuditEvent(
                actor=WEBHOOK_ACTOR.user,
                actor_name=WEBHOOK_ACTOR.name,
                source=WEBHOOK_ACTOR.source,
                action=event["action"],
                cluster=event.get("cluster", ""),
                namespace=event.get("namespace", ""),
                name=event.get("name", ""),
                before=event.get("before"),
                after=event.get("after"),
                result=event.get("result", "ok"),
                message=event.get("message", ""),
            )
            for event in batch
        ]
        with transaction.atomic():
            AuditEvent.objects.bulk_create(events)
            channels = list(NotificationChannel.objects.filter(enabled=True))
            for event in events:
                if any(channel.wants(action=event.action, result=event.result) for channel in channels):
                    notifications_queue(event=event)

    def drain(self) -> int:
        """Write everything queued, in the calling thread; returns the number of events written."""
        written = 0
        while batch := self._take(block=False):
            self._write(batch)
            written += len(batch)
        return written

    def ensure_started(self) -> None:
        if not self.autostart or (self._pid == os.getpid() and self._thread is not None and self._thread.is_alive()):
            return
        with self._start_lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            self._pid = os.getpid()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="kubedoor-audit-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None
        self._pid = None

    def _run(self) -> None:
        while not self._stop.is_set() or not self.queue.empty():
            batch = self._take(block=True)
            if not batch:
                continue
            for attempt in range(self.retries):
                try:
                    self._write(batch)
                    break
                except DatabaseError as exc:
                    close_old_connections()
                    logger.warning("admission audit write failed (attempt %d): %s", attempt + 1, exc)
                    self._stop.wait(min(0.5 * 2**attempt, 10))
                except Exception:
                    logger.exception("admission audit write failed; dropping %d events", len(batch))
                    metrics.audit_dropped_inc(len(batch))
                    break
            else:
                metrics.audit_dropped_inc(len(batch))
                logger.error("database unreachable; dropped %d admission audit events", len(batch))
        connections.close_all()  # this thread's connections


writer = AuditWriter()
