"""A background writer for admission audit events, so the request path never touches the database.

The view queues one event per patch, denial or store error; a daemon thread writes them in small
batches, one transaction per batch. When the database is down it retries with a growing pause and,
after ``retries`` failures, drops the batch (counted in ``kubedoor_webhook_audit_dropped_total``).
A full queue drops new events the same way instead of slowing admission down.
"""

from __future__ import annotations

import datetime
import logging
import os
import queue
import threading
import time
from typing import Any, NamedTuple

import orjson
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections, transaction
from django.utils import timezone

from apps.audit.models import AuditSource
from apps.audit.services import Actor, AuditDraft, JsonText, audit_events_record, audit_json_text
from apps.webhook import metrics
from apps.webhook.admission import ACTION_DENY

logger = logging.getLogger(__name__)

WEBHOOK_ACTOR = Actor.system("webhook", source=AuditSource.WEBHOOK)
BATCH = 500
BATCH_WINDOW = 0.25  # seconds an event may wait for others before its batch is written
COPY_PAUSE_EVERY = 100  # rows: the request threads take the GIL between chunks of a batch's COPY


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
            None if before is None else json_text(before),
            None if after is None else json_text(after),
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
        """Write one batch in one transaction, through ``audit_events_record``.

        It bulk-loads the events no channel subscribes to — nearly all of them (COPY on PostgreSQL,
        ~30 µs an event, where one event with its notifications costs two queries, ~2 ms here, more
        than deciding the review itself) — and writes the others one by one with their notifications.

        Denials are notified with coalescing: a controller retrying a denied Deployment can send the
        same denial many times a second, so repeats of one Deployment within
        ``KUBEDOOR_NOTIFY_REPEAT_WINDOW_SECONDS`` are all written but notified once, plus one summary
        (``AuditDraft.notify_coalesce_seconds``; the window lives in the database, so it holds across
        workers and replicas).
        """
        window = settings.KUBEDOOR_NOTIFY_REPEAT_WINDOW_SECONDS
        with transaction.atomic():
            audit_events_record(drafts=[_draft(event, window) for event in batch], pause_every=COPY_PAUSE_EVERY)

    def drain(self) -> int:
        """Write everything queued, in the calling thread; returns the number of events written."""
        written = 0
        while batch := self._take(block=False):
            self._write(batch)
            written += len(batch)
        return written

    def ensure_started(self) -> None:
        """Start the writer thread in this process (again after a fork), as ``SnapshotHolder.ensure_started``:
        a running thread answers without a system call; a forked child's copy is never alive."""
        thread = self._thread
        if not self.autostart or (thread is not None and thread.is_alive()):
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


def json_text(value: Any) -> str:
    """``audit_json_text(value)`` as the database stores it, written by orjson where that is the same value.

    The request thread encodes before/after once per patch: orjson takes ≈ 0.2 µs where Django's
    encoder takes ≈ 3 (bench/webhook/cpu.py). The texts differ only in form (orjson writes non-ASCII
    characters as they are, Django's encoder escapes them), and ``before``/``after`` are stored as
    ``jsonb``, which keeps the value, not the text. Where the values could differ — a float that is NaN
    or infinite, which orjson writes as ``null`` and Django's encoder as ``NaN``; an integer beyond 64
    bits, or anything but JSON's own types (dates, decimals, subclasses, which orjson is told to refuse
    here) — Django's encoder writes the text, as before. A decision's before/after hold only the
    review's strings, numbers and nulls.
    """
    try:
        text = _orjson_dumps(value, option=_ORJSON_JSON_TYPES_ONLY)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return audit_json_text(value)
    if b"null" in text:  # None in the value (common, and the same text either way) or a NaN/infinity
        return audit_json_text(value)
    return text.decode()


_orjson_dumps = orjson.dumps
_ORJSON_JSON_TYPES_ONLY = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
)


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


def _draft(event: QueuedEvent, window: float) -> AuditDraft:
    """What the view decided, as the webhook's audit event (its time is the decision's, not the write's)."""
    return AuditDraft(
        action=event.action,
        actor_name=WEBHOOK_ACTOR.name,
        source=WEBHOOK_ACTOR.source,
        cluster=event.cluster,
        namespace=event.namespace,
        name=event.name,
        before=None if event.before is None else JsonText(event.before),
        after=None if event.after is None else JsonText(event.after),
        result=event.result,
        message=event.message,
        at=event.at,
        notify_coalesce_seconds=window if event.action == ACTION_DENY else None,
    )


writer = AuditWriter()
