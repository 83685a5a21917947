"""A background writer for admission audit events, so the request path never touches the database.

The view queues one event per patch, denial or store error; a daemon thread writes them in small
batches, one transaction per batch. When the database is down it retries with a growing pause and,
after ``retries`` failures, drops the batch (counted in ``kubedoor_webhook_audit_dropped_total``).
A full queue drops new events the same way instead of slowing admission down.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import queue
import threading
import time
from typing import Any, NamedTuple

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, close_old_connections, connections, transaction
from django.utils import timezone

from apps.audit.models import AuditEvent, AuditSource, NotificationChannel
from apps.audit.services import Actor, audit_event_record
from apps.webhook import metrics
from apps.webhook.admission import ACTION_DENY

logger = logging.getLogger(__name__)

WEBHOOK_ACTOR = Actor.system("webhook", source=AuditSource.WEBHOOK)
BATCH = 500
BATCH_WINDOW = 0.25  # seconds an event may wait for others before its batch is written


class AuditWriter:
    def __init__(self, *, maxsize: int = 10_000, retries: int = 5, autostart: bool = True) -> None:
        self.queue: queue.Queue[QueuedEvent] = queue.Queue(maxsize=maxsize)
        self.retries = retries
        self.autostart = autostart
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._last_drop_log = -1e9

    def submit(
        self,
        *,
        action: str,
        cluster: str = "",
        namespace: str = "",
        name: str = "",
        before: Any = None,
        after: Any = None,
        result: str = "ok",
        message: str = "",
        at: datetime.datetime | None = None,
    ) -> bool:
        """Queue one event (the arguments of ``audit_event_record``); False when it had to be dropped.

        The event is queued as a tuple of strings (before/after already JSON), which the garbage
        collector does not track: a queue filled while the database is down costs no GC time.
        """
        event = QueuedEvent(
            at or timezone.now(),
            action,
            cluster,
            namespace,
            name,
            None if before is None else _dumps(before),
            None if after is None else _dumps(after),
            result,
            message,
        )
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
                    action,
                    namespace,
                    name,
                )
            return False
        self.ensure_started()
        return True

    def _take(self, *, block: bool) -> list[QueuedEvent]:
        """Up to ``BATCH`` events. Blocking, it waits for a first event, then sleeps ``BATCH_WINDOW``
        seconds and takes what arrived meanwhile, so a busy webhook commits a few large transactions
        rather than many small ones. It sleeps on its stop event, not in ``queue.get``: a review's
        ``put`` then wakes no thread (waking the writer for every event took ~7 % of a busy worker's
        samples under py-spy, as much as parsing the review, in thread wake-ups and GIL hand-offs)."""
        batch: list[QueuedEvent] = []
        try:
            if block:
                batch.append(self.queue.get(timeout=0.5))
                if self.queue.qsize() < BATCH:  # behind already: no pause
                    self._stop.wait(BATCH_WINDOW)
            while len(batch) < BATCH:
                batch.append(self.queue.get_nowait())
        except queue.Empty:
            pass
        return batch

    @staticmethod
    def _write(batch: list[QueuedEvent]) -> None:
        """Write one batch in one transaction.

        Events some enabled notification channel subscribes to go through ``audit_event_record``,
        which also queues their notifications. The others — nearly all of them — are bulk-loaded:
        ``audit_event_record`` costs two queries per event (~2 ms here), more than deciding the review
        itself, so at admission rates PostgreSQL gets them by COPY (~30 µs an event) and other
        databases by one multi-row INSERT, with exactly the fields ``audit_event_record`` would set.

        Denials are notified with coalescing: a controller retrying a denied Deployment can send the
        same denial many times a second, so repeats of one Deployment within
        ``KUBEDOOR_NOTIFY_REPEAT_WINDOW_SECONDS`` are all written but notified once, plus one summary
        (``audit_event_record(notify_coalesce_seconds=...)``; the window lives in the database, so
        it holds across workers and replicas).
        """
        window = settings.KUBEDOOR_NOTIFY_REPEAT_WINDOW_SECONDS
        with transaction.atomic():
            channels = list(NotificationChannel.objects.filter(enabled=True))
            plain: list[QueuedEvent] = []
            for event in batch:
                if any(channel.wants(action=event.action, result=event.result) for channel in channels):
                    audit_event_record(
                        actor=WEBHOOK_ACTOR,
                        action=event.action,
                        cluster=event.cluster,
                        namespace=event.namespace,
                        name=event.name,
                        before=_loads(event.before),
                        after=_loads(event.after),
                        result=event.result,
                        message=event.message,
                        notify_coalesce_seconds=window if event.action == ACTION_DENY else None,
                    )
                else:
                    plain.append(event)
            if plain:
                _bulk_load(plain)

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


class QueuedEvent(NamedTuple):
    at: datetime.datetime
    action: str
    cluster: str
    namespace: str
    name: str
    before: str | None  # JSON text
    after: str | None
    result: str
    message: str


_dumps = DjangoJSONEncoder(separators=(",", ":")).encode  # one encoder, not one per event


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _row(event: QueuedEvent) -> tuple[Any, ...]:
    """The values of COPY_FIELDS for one event: what ``audit_event_record`` would store."""
    return (
        event.at,
        WEBHOOK_ACTOR.name,
        WEBHOOK_ACTOR.source,
        event.action,
        event.cluster,
        event.namespace,
        event.name,
        event.before,
        event.after,
        event.result,
        event.message,
        "",
    )


COPY_FIELDS = (
    "at",
    "actor_name",
    "source",
    "action",
    "cluster",
    "namespace",
    "name",
    "before",
    "after",
    "result",
    "message",
    "request_id",
)


def _bulk_load(batch: list[QueuedEvent]) -> None:
    connection = connections[AuditEvent.objects.db]
    if connection.vendor != "postgresql":
        AuditEvent.objects.bulk_create(
            AuditEvent(
                **(
                    dict(zip(COPY_FIELDS, _row(e), strict=True))
                    | {"before": _loads(e.before), "after": _loads(e.after)}
                )
            )
            for e in batch
        )
        return
    meta = AuditEvent._meta
    columns = ", ".join(connection.ops.quote_name(meta.get_field(name).column) for name in COPY_FIELDS)
    statement = f"COPY {connection.ops.quote_name(meta.db_table)} ({columns}) FROM STDIN"  # names from the model
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
        for index, event in enumerate(batch):
            if index % 100 == 99:
                time.sleep(0)  # let request threads take the GIL between chunks
            copy.write_row(_row(event))


writer = AuditWriter()
