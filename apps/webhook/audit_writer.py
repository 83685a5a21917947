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

from apps.audit.models import AuditEvent, AuditSource
from apps.audit.services import (
    Actor,
    AuditDraft,
    JsonText,
    audit_channels_enabled,
    audit_channels_wanting,
    audit_copy_line,
    audit_copy_lines,
    audit_events_record,
    audit_json_text,
    audit_text_fit,
)
from apps.webhook import metrics
from apps.webhook.admission import ACTION_DENY

logger = logging.getLogger(__name__)

WEBHOOK_ACTOR = Actor.system("webhook", source=AuditSource.WEBHOOK)
BATCH = 500
BATCH_WINDOW = 0.25  # seconds an event may wait for others before its batch is written
SLOW_BATCH_SECONDS = 1.0  # a batch's write that took this long is logged
COPY_CHUNK = 20  # events PostgreSQL gets at a time while a batch is written at pace (``audit_copy_lines``)
COPY_PAUSE = 0.003  # seconds between two of them


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
        self._last_slow_log = -1e9

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
        collector does not track: a queue filled while the database is down costs no GC time. It
        carries its COPY line too (``audit_copy_line``), made here with a few C-level string
        operations, so that the writer's thread, which shares the GIL with this one, turns a batch
        into one COPY without touching each event. Texts from the review are fitted to their columns
        first: one value PostgreSQL refuses would fail the batch's transaction, every event with it.
        """
        at = at or timezone.now()
        cluster = audit_text_fit(cluster, "cluster")
        namespace = audit_text_fit(namespace, "namespace")
        name = audit_text_fit(name, "name")
        message = audit_text_fit(message, "message")
        before_text = None if before is None else JsonText(json_text(before))
        after_text = None if after is None else JsonText(json_text(after))
        line = audit_copy_line(
            at=at,
            action=action,
            actor_name=WEBHOOK_ACTOR.name,
            source=WEBHOOK_ACTOR.source,
            cluster=cluster,
            namespace=namespace,
            name=name,
            before=before_text,
            after=after_text,
            result=result,
            message=message,
        )
        event = QueuedEvent(at, action, cluster, namespace, name, before_text, after_text, result, message, line)
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
    def _write(batch: list[QueuedEvent], *, paced: bool = False) -> None:
        """Write one batch in one transaction.

        On PostgreSQL the events no channel subscribes to — nearly all of them — are one COPY of the
        lines ``submit`` made (``audit_copy_lines``): the writer's thread holds the GIL for a join, not
        for a row per event, so the request threads are not held up while a batch is written. The
        others, and every event elsewhere, are written through ``audit_events_record``, one by one
        with their notifications where a channel wants them.

        ``paced``: the COPY goes out ``COPY_CHUNK`` events at a time, ``COPY_PAUSE`` seconds apart, so
        that the database's work on the batch comes in short slices, not one burst that preempts a
        worker sharing its core (bench/README.md, sixth session). The writer paces a batch only while
        it keeps up (``_run``).

        Denials are notified with coalescing: a controller retrying a denied Deployment can send the
        same denial many times a second, so repeats of one Deployment within
        ``KUBEDOOR_NOTIFY_REPEAT_WINDOW_SECONDS`` are all written but notified once, plus one summary
        (``AuditDraft.notify_coalesce_seconds``; the window lives in the database, so it holds across
        workers and replicas).
        """
        window = settings.KUBEDOOR_NOTIFY_REPEAT_WINDOW_SECONDS
        with transaction.atomic():
            if connections[AuditEvent.objects.db].vendor != "postgresql":
                audit_events_record(drafts=[_draft(event, window) for event in batch])
                return
            channels = audit_channels_enabled()
            wanted = audit_channels_wanting({(event.action, event.result) for event in batch}, channels)
            if wanted:
                announced = [_draft(event, window) for event in batch if (event.action, event.result) in wanted]
                batch = [event for event in batch if (event.action, event.result) not in wanted]
            if batch:
                audit_copy_lines([event.line for event in batch], chunk=COPY_CHUNK if paced else 0, pause=COPY_PAUSE)
            if wanted:
                audit_events_record(drafts=announced, enabled_channels=channels)

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
            queued = self.queue.qsize()
            metrics.audit_batch_observe(queued=queued)
            paced = queued < BATCH  # behind: the next batch is full already, write this one at once
            for attempt in range(self.retries):
                try:
                    started = time.monotonic()
                    self._write(batch, paced=paced)
                    self._written(len(batch), time.monotonic() - started)
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

    def _written(self, count: int, seconds: float) -> None:
        """Count a batch's write time, and warn (once per 10 s) when one took long enough that the
        queue may fill: at a busy webhook's rate the queue holds a few seconds of events."""
        queued = self.queue.qsize()
        metrics.audit_batch_observe(queued=queued, seconds=seconds)
        now = time.monotonic()
        if seconds >= SLOW_BATCH_SECONDS and now - self._last_slow_log >= 10:
            self._last_slow_log = now
            logger.warning(
                "admission audit batch of %d events took %.1f s; %d queued (at most %d, then events are dropped)",
                count,
                seconds,
                queued,
                self.queue.maxsize,
            )


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
        return _storable(audit_json_text(value), value)
    if b"null" in text:  # None in the value (common, and the same text either way) or a NaN/infinity
        return _storable(audit_json_text(value), value)
    return _storable(text.decode(), value)


def _storable(text: str, value: Any) -> str:
    """``text``, unless it holds a NUL character, which ``jsonb`` refuses (and with it the batch's transaction):
    then the text of ``value`` with each NUL replaced by U+FFFD. A review's strings can hold one."""
    if "\\u0000" not in text:
        return text
    return audit_json_text(_without_nul(value))


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(item) for item in value]
    return value


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
    before: JsonText | None
    after: JsonText | None
    result: str
    message: str
    line: str  # the event as COPY writes it (``audit_copy_line``)


def _draft(event: QueuedEvent, window: float) -> AuditDraft:
    """What the view decided, as the webhook's audit event (its time is the decision's, not the write's)."""
    return AuditDraft(
        action=event.action,
        actor_name=WEBHOOK_ACTOR.name,
        source=WEBHOOK_ACTOR.source,
        cluster=event.cluster,
        namespace=event.namespace,
        name=event.name,
        before=event.before,
        after=event.after,
        result=event.result,
        message=event.message,
        at=event.at,
        notify_coalesce_seconds=window if event.action == ACTION_DENY else None,
    )


writer = AuditWriter()
