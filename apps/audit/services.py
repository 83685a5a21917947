"""Writing the audit trail."""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, transaction
from django.db.models import Count, Field, ForeignObjectRel, Max, Min
from django.http import HttpRequest
from django.utils import timezone
from psycopg.copy import LibpqWriter

from apps.audit.models import AuditEvent, AuditResult, AuditSource, NotificationChannel, NotificationDelivery
from apps.audit.queue import notification_deliver_enqueue, notification_repeats_summarize_enqueue

logger = logging.getLogger(__name__)


def client_address(request: Any) -> str | None:
    """The address a request came from: ``REMOTE_ADDR``, or behind a proxy (``KUBEDOOR_BEHIND_PROXY``) the
    right-most ``X-Forwarded-For`` entry — the one the proxy itself appended, which the client cannot forge.

    Also django-axes' ``AXES_CLIENT_IP_CALLABLE``, so lockouts and the audit log name the same address.
    """
    meta = request.META
    if getattr(settings, "KUBEDOOR_BEHIND_PROXY", False):
        forwarded = [part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if forwarded:
            try:
                return str(ipaddress.ip_address(forwarded[-1]))
            except ValueError:
                logger.warning("X-Forwarded-For ends with %r, not an address: using REMOTE_ADDR", forwarded[-1])
    return meta.get("REMOTE_ADDR") or None


@dataclass(frozen=True)
class Actor:
    """Who acts, from where: a user, or a named system actor (``system``, ``webhook``, ``scheduler``)."""

    user: User | None  # the project's user model (AUTH_USER_MODEL is not swapped)
    name: str
    source: str
    request_id: str = ""
    remote_addr: str | None = None

    @classmethod
    def from_request(cls, request: HttpRequest, *, source: str) -> Actor:
        user = getattr(request, "user", None)
        if user is None or isinstance(user, AnonymousUser) or not user.is_authenticated:
            user = None
        return cls(
            user=user,
            name=user.get_username() if user is not None else "anonymous",
            source=source,
            request_id=getattr(request, "request_id", ""),
            remote_addr=client_address(request),
        )

    @classmethod
    def for_admin(cls, request: HttpRequest) -> Actor:
        """The user behind an admin page's request."""
        return cls.from_request(request, source=AuditSource.ADMIN)

    @classmethod
    def for_api(cls, request: Any) -> Actor:
        """The user behind an API request (DRF's ``Request``, which reads through to Django's)."""
        return cls.from_request(request, source=AuditSource.API)

    @classmethod
    def system(cls, name: str = "system", *, source: str = AuditSource.SYSTEM, on_behalf_of: Any = None) -> Actor:
        """A system actor; ``on_behalf_of`` (a user) is recorded as the event's user when given."""
        return cls(user=on_behalf_of, name=name, source=source)


# --- the cluster's time zone, for the words of a notification ----------------------------------------

ClusterTimeZoneResolver = Callable[[str], "str | None"]
_cluster_time_zone_resolvers: list[ClusterTimeZoneResolver] = []


def cluster_time_zone_resolver_set(resolver: ClusterTimeZoneResolver) -> None:
    """Let the app that owns clusters tell the audit app a cluster's time zone (the audit app imports no
    other app); ``apps.control`` registers its selector when it is ready."""
    _cluster_time_zone_resolvers[:] = [resolver]


def cluster_time_zone_get(*, cluster: str) -> str:
    """The time zone a cluster's events are told in: the cluster's own, else ``settings.TIME_ZONE``."""
    for resolver in _cluster_time_zone_resolvers:
        if cluster and (zone := resolver(cluster)):
            return zone
    return settings.TIME_ZONE


# --- the one way events are written ---------------------------------------------------------------

_json_encode = DjangoJSONEncoder(separators=(",", ":")).encode  # one encoder, shared by every writer


class JsonText(str):
    """A ``before``/``after`` already encoded by ``audit_json_text``: stored as it is, not encoded again.

    The webhook's audit queue holds its events as JSON text (strings cost the garbage collector
    nothing while the database is down); wrapping the text says so to ``audit_events_record``.
    """

    __slots__ = ()


def audit_json_text(value: Any) -> str:
    """The JSON text a ``before``/``after`` value is stored as: dates, decimals and UUIDs as Django encodes them."""
    return value if isinstance(value, JsonText) else _json_encode(value)


def audit_json(value: Any) -> Any:
    """The value a ``before``/``after`` reads back as (``value`` through ``audit_json_text``); ``None`` stays null."""
    if value is None:
        return None
    return json.loads(audit_json_text(value))


class AuditDraft(NamedTuple):
    """One event to append: the columns of ``AuditEvent`` every writer fills (``AUDIT_COLUMNS`` is read from
    here, not listed again), plus how subscribed channels hear of it.

    ``before``/``after`` are JSON-able values (or ``JsonText``); ``at`` ``None`` is the time of writing.
    ``notify`` False writes the event without notifying anyone (the per-row events of a refresh or an
    import); ``notify_coalesce_seconds`` notifies repeats of the action on the same object within that
    many seconds once, then one summary (``notifications_queue``).

    An immutable named tuple rather than a frozen dataclass: the webhook's writer makes one per admission
    decision, and a frozen dataclass of these 16 fields takes ~7 µs to build, a named tuple ~2 µs.
    """

    action: str
    actor_name: str
    source: str
    cluster: str = ""
    namespace: str = ""
    name: str = ""
    before: Any = None
    after: Any = None
    result: str = AuditResult.OK
    message: str = ""
    at: datetime.datetime | None = None
    actor_id: int | None = None
    request_id: str = ""
    remote_addr: str | None = None
    notify: bool = True
    notify_coalesce_seconds: float | None = None

    @classmethod
    def by(cls, actor: Actor, *, action: str, **fields: Any) -> AuditDraft:
        """A draft of ``action`` done by ``actor``; ``fields`` are the other fields of the draft."""
        return cls(
            action=action,
            actor_name=actor.name,
            source=actor.source,
            actor_id=None if actor.user is None else actor.user.pk,
            request_id=actor.request_id,
            remote_addr=actor.remote_addr,
            **fields,
        )


# Every field of a draft but the last two (how it is announced) is a column of AuditEvent (its attname).
AUDIT_NOT_STORED = ("notify", "notify_coalesce_seconds")
AUDIT_COLUMNS: tuple[str, ...] = AuditDraft._fields[: -len(AUDIT_NOT_STORED)]
if AuditDraft._fields[len(AUDIT_COLUMNS) :] != AUDIT_NOT_STORED:
    raise ImportError("AuditDraft must end with the fields that are not stored")
_AT, _BEFORE, _AFTER = (AUDIT_COLUMNS.index(name) for name in ("at", "before", "after"))


def _draft_columns(draft: AuditDraft) -> tuple[Any, ...]:
    return draft[: len(AUDIT_COLUMNS)]


def audit_event_record(
    *,
    actor: Actor,
    action: str,
    cluster: str = "",
    namespace: str = "",
    name: str = "",
    before: Any = None,
    after: Any = None,
    result: str = AuditResult.OK,
    message: str = "",
    notify_coalesce_seconds: float | None = None,
) -> AuditEvent:
    """Append one event. Call it inside the transaction of the change it records.

    ``notify_coalesce_seconds``: repeats of this action on the same object within that many seconds
    are recorded but notified once, then summed up in one follow-up (``notifications_queue``).
    """
    draft = AuditDraft.by(
        actor,
        action=action,
        cluster=cluster,
        namespace=namespace,
        name=name,
        before=before,
        after=after,
        result=result,
        message=message,
        notify_coalesce_seconds=notify_coalesce_seconds,
    )
    return _event_record(draft)


LOGIN_SUCCEEDED = "login.succeeded"
LOGIN_FAILED = "login.failed"


def login_record(
    *,
    request: Any,
    backend: str,
    username: str,
    user: User | None = None,
    reason: str = "",
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Record a login: ``user`` when it succeeded, else a failure with the ``username`` tried and why.

    ``details``: what the backend adds to the record (e.g. the roles and groups an SSO login mapped).

    ``backend`` names how (``local``, ``ldap``, ``oidc``, ``token`` …): any login flow calls this — the
    admin and LDAP through Django's login signals (``apps.accounts.logins``), the API token endpoint,
    and an SSO callback. The event never holds a password: only the user name, the backend, the source
    address and, for a failure, the reason. Requests under ``/api/`` are the API's; others the admin's.
    """
    source = AuditSource.API if getattr(request, "path", "").startswith("/api/") else AuditSource.ADMIN
    actor = Actor(
        user=user,
        name=(user.get_username() if user is not None else username or "anonymous")[:150],
        source=source,
        request_id=getattr(request, "request_id", ""),
        remote_addr=client_address(request),
    )
    after: dict[str, Any] = {"backend": backend, **(details or {})}
    if reason:
        after["reason"] = reason
    return audit_event_record(
        actor=actor,
        action=LOGIN_SUCCEEDED if user is not None else LOGIN_FAILED,
        name=actor.name,
        after=after,
        result=AuditResult.OK if user is not None else AuditResult.DENIED,
    )


def audit_events_record(
    *, drafts: Iterable[AuditDraft], enabled_channels: list[NotificationChannel] | None = None
) -> int:
    """Append many events; returns how many. Call it inside the transaction of the changes they record.

    A draft that some enabled channel wants (``notify``, not a dry run) is written as
    ``audit_event_record`` writes one, with its notifications; the others — nearly all of them —
    in bulk, first: COPY on PostgreSQL (tens of µs an event, where an ORM insert plus the channel
    query costs ~2 ms), ``bulk_create`` elsewhere. Either way the stored rows are the same.
    ``enabled_channels``: ``audit_channels_enabled()`` when the caller has read it already.
    """
    drafts = list(drafts)
    notifying = {(d.action, d.result) for d in drafts if d.notify and d.result != AuditResult.DRY_RUN}
    if enabled_channels is None:
        enabled_channels = audit_channels_enabled() if notifying else []
    wanted = audit_channels_wanting(notifying, enabled_channels)
    announced: list[AuditDraft] = []
    plain: list[AuditDraft] = []
    for draft in drafts:
        (announced if draft.notify and (draft.action, draft.result) in wanted else plain).append(draft)
    if plain:
        _events_bulk_insert(plain)
    for draft in announced:
        _event_record(draft, enabled_channels=enabled_channels)
    return len(drafts)


def audit_channels_enabled() -> list[NotificationChannel]:
    """The enabled notification channels (one query), for ``audit_channels_wanting``."""
    return list(NotificationChannel.objects.filter(enabled=True))


def audit_channels_wanting(
    pairs: Iterable[tuple[str, str]], channels: Iterable[NotificationChannel]
) -> set[tuple[str, str]]:
    """The (action, result) pairs among ``pairs`` that one of ``channels`` is notified of (never a dry run:
    ``NotificationChannel.wants``). Their events go through ``audit_events_record`` with notifications;
    the others may be bulk-loaded silently."""
    channels = list(channels)
    return {pair for pair in set(pairs) if any(channel.wants(action=pair[0], result=pair[1]) for channel in channels)}


def _event_record(draft: AuditDraft, *, enabled_channels: list[NotificationChannel] | None = None) -> AuditEvent:
    coalesce = bool(draft.notify_coalesce_seconds) and draft.result != AuditResult.DRY_RUN
    if coalesce:
        _coalesce_lock()  # before the INSERT, so event ids follow the order of the coalescing decisions
    values = dict(zip(AUDIT_COLUMNS, _draft_columns(draft), strict=True))
    values["before"], values["after"] = audit_json(draft.before), audit_json(draft.after)
    if draft.at is None:
        del values["at"]  # the model's default: now
    event = AuditEvent.objects.create(**values)
    logger.debug(
        "audit %s %s/%s/%s by %s: %s",
        draft.action,
        draft.cluster,
        draft.namespace,
        draft.name,
        draft.actor_name,
        draft.result,
    )
    if draft.notify and draft.result != AuditResult.DRY_RUN:
        notifications_queue(
            event=event,
            coalesce_seconds=draft.notify_coalesce_seconds if coalesce else None,
            enabled_channels=enabled_channels,
        )
    return event


def _column(field: Field[Any, Any] | ForeignObjectRel) -> str:
    """The database column of one of the model's own fields (a concrete field always has one)."""
    assert isinstance(field, Field), field
    assert field.column is not None, field
    return field.column


def audit_copy_line(
    *,
    at: datetime.datetime,
    action: str,
    actor_name: str,
    source: str,
    cluster: str,
    namespace: str,
    name: str,
    before: JsonText | None,
    after: JsonText | None,
    result: str,
    message: str,
) -> str:
    """One event without user, request id or address, as a line of COPY's text format for ``audit_copy_lines``.

    A writer that makes many events on a busy thread (the webhook's request threads) builds each line
    where the event happens, with a few C-level string operations, so that writing a batch is one join
    and one COPY, not a draft, a row and a dumper per value on the writer's thread. The texts must fit
    their columns (``audit_text_fit``); ``before``/``after`` are ``audit_json_text``'s. The line's fields
    follow ``AUDIT_COLUMNS``; a test compares its row with ``audit_event_record``'s, column by column.
    """
    texts: tuple[str, ...] = (
        action,
        actor_name,
        source,
        cluster,
        namespace,
        name,
        before or "",
        after or "",
        result,
        message,
    )
    probe = "".join(texts)  # one scan of all the texts for each character to escape; escapes are rare
    if "\\" in probe or "\t" in probe or "\n" in probe or "\r" in probe:
        texts = tuple(_copy_field(text) for text in texts)
    return "\t".join(
        (
            *texts[:6],
            "\\N" if before is None else texts[6],
            "\\N" if after is None else texts[7],
            *texts[8:],
            at.isoformat(),
            "\\N",  # actor_id
            "",  # request_id
            "\\N\n",  # remote_addr, and the end of the line
        )
    )


def audit_copy_lines(lines: Sequence[str], *, chunk: int = 0, pause: float = 0.0) -> None:
    """Append the events of ``audit_copy_line``'s lines, in one COPY (PostgreSQL only). Call it inside the
    transaction of the changes they record; the lines' events notify nobody (``audit_events_record``
    writes those that some channel wants).

    With ``chunk``, the lines go to the server ``chunk`` at a time, each sent at once and followed by
    ``pause`` seconds. PostgreSQL parses, stores and indexes a COPY's rows as they arrive, so its work on
    the batch comes in slices of ``chunk`` rows rather than in one burst: ≈ 15 µs a row on a small
    machine makes a 350-row COPY a 5 ms burst, and a database backend that wakes up with that much work
    preempts whatever runs on its core — on a node it shares with the webhook, a worker in the middle
    of a review. One transaction either way: what a batch costs per transaction is paid once."""
    connection = connections[AuditEvent.objects.db]
    if connection.vendor != "postgresql":
        raise ValueError("COPY lines are PostgreSQL's; use audit_events_record")
    size = chunk or len(lines) or 1
    with connection.cursor() as cursor:
        raw = cursor.cursor
        # flush_threshold=1: each chunk is sent before ``write`` returns, not kept in libpq's buffer
        writer = LibpqWriter(raw, flush_threshold=1) if chunk else None
        with raw.copy(_copy_statement(connection), writer=writer) as copy:
            for start in range(0, len(lines), size):
                if start:
                    time.sleep(pause)
                copy.write("".join(lines[start : start + size]))


def audit_text_fit(value: str, column: str) -> str:
    """``value`` as column ``column`` of ``AuditEvent`` can hold it: NUL characters (which PostgreSQL's text
    refuses) replaced by U+FFFD, and cut to the column's length with an ellipsis.

    For texts that come from outside (an admission review's names and user): one refused value would
    fail its whole batch's transaction, and with it every other event of the batch."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    limit = _TEXT_LIMITS.get(column)
    if limit is not None and len(value) > limit:
        value = value[: limit - 1] + "…"
    return value


_TEXT_LIMITS: dict[str, int] = {
    field.name: limit for field in AuditEvent._meta.concrete_fields if (limit := getattr(field, "max_length", None))
}


def _copy_field(value: str) -> str:
    """A text in COPY's text format: backslash, tab, newline and carriage return escaped."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_statement(connection: Any) -> str:
    meta = AuditEvent._meta
    quote = connection.ops.quote_name
    columns = ", ".join(quote(_column(meta.get_field(name))) for name in AUDIT_COLUMNS)
    return f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN"  # names from the model, values streamed


def _events_bulk_insert(drafts: list[AuditDraft]) -> None:
    """Insert only (the trail stays append-only), the column list from ``AUDIT_COLUMNS``."""
    now = timezone.now()
    connection = connections[AuditEvent.objects.db]
    if connection.vendor != "postgresql":
        events = []
        for draft in drafts:
            values = dict(zip(AUDIT_COLUMNS, _draft_columns(draft), strict=True))
            values["at"] = draft.at or now
            values["before"], values["after"] = audit_json(draft.before), audit_json(draft.after)
            events.append(AuditEvent(**values))
        AuditEvent.objects.bulk_create(events, batch_size=1000)
        return
    with connection.cursor() as cursor, cursor.cursor.copy(_copy_statement(connection)) as copy:
        for draft in drafts:
            row = list(_draft_columns(draft))
            if row[_AT] is None:
                row[_AT] = now
            for column in (_BEFORE, _AFTER):
                if row[column] is not None:
                    row[column] = audit_json_text(row[column])
            copy.write_row(row)


def notifications_queue(
    *,
    event: AuditEvent,
    coalesce_seconds: float | None = None,
    enabled_channels: Iterable[NotificationChannel] | None = None,
) -> list[NotificationDelivery]:
    """Create a pending delivery per subscribed channel and send each after the transaction commits.

    Dry runs are never notified. A delivery that finally fails is recorded on its
    ``NotificationDelivery`` row; it never fails the change that caused it.

    With ``coalesce_seconds`` (admission denials: a controller retrying a denied Deployment sends
    the same denial again and again), a channel that was notified of the same action on the same
    object less than that many seconds ago, by a delivery no summary has closed yet, gets nothing
    now: the event is written but not sent. When such a window opens,
    ``notification_repeats_summarize_task`` is queued to run as it closes and sends one summary
    ("N more denials of ns/name in the last minute") of the events it held back.

    The state lives in the database, not in a process: each decision takes one PostgreSQL advisory
    lock (held to the end of the transaction), so webhook workers and replicas writing events of
    the same object one after another see each other's deliveries, and event ids follow the order
    of the decisions. SQLite serializes writers by itself. Not Django's cache: without Redis it is
    per process (LocMemCache), while every worker and replica shares the database.
    """
    if enabled_channels is None:  # else the caller has read them already (``audit_events_record``)
        enabled_channels = NotificationChannel.objects.filter(enabled=True)
    channels = [channel for channel in enabled_channels if channel.wants(action=event.action, result=event.result)]
    if coalesce_seconds and channels:
        held = _channels_in_open_window(event=event, channels=channels, seconds=coalesce_seconds)
        channels = [channel for channel in channels if channel.pk not in held]
    deliveries = [NotificationDelivery.objects.create(event=event, channel=channel) for channel in channels]
    for delivery in deliveries:
        transaction.on_commit(partial(_enqueue_delivery, delivery.pk))
        if coalesce_seconds:
            transaction.on_commit(partial(_enqueue_repeats_summary, delivery.pk, coalesce_seconds))
    return deliveries


# PostgreSQL advisory lock key of notification coalescing ("KD" and 1); transaction-scoped, re-entrant.
COALESCE_LOCK_SQL = "SELECT pg_advisory_xact_lock(%(key)s)"
COALESCE_LOCK_KEY = 0x4B44_0001


def _coalesce_lock() -> None:
    connection = connections[AuditEvent.objects.db]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(COALESCE_LOCK_SQL, {"key": COALESCE_LOCK_KEY})


def _same_object(event: AuditEvent, prefix: str = "") -> dict[str, str]:
    return {
        f"{prefix}action": event.action,
        f"{prefix}cluster": event.cluster,
        f"{prefix}namespace": event.namespace,
        f"{prefix}name": event.name,
    }


def _channels_in_open_window(*, event: AuditEvent, channels: list[NotificationChannel], seconds: float) -> set[int]:
    """Channels with a window open on ``event``'s action and object: notified of it less than
    ``seconds`` ago (the window's first delivery) and no summary sent since."""
    same = NotificationDelivery.objects.filter(**_same_object(event, "event__"), channel__in=channels).exclude(
        event=event
    )
    since = timezone.now() - datetime.timedelta(seconds=seconds)
    firsts = dict(
        same.filter(repeats=0, created_at__gte=since)
        .values("channel_id")
        .annotate(first=Max("event_id"))
        .values_list("channel_id", "first")
    )
    if not firsts:
        return set()
    summaries = same.filter(repeats__gt=0, event_id__gt=min(firsts.values())).values_list("channel_id", "event_id")
    closed = {channel for channel, event_id in summaries if event_id > firsts.get(channel, event_id)}
    return set(firsts) - closed


def notification_repeats_summarize(*, first_delivery_id: int) -> NotificationDelivery | None:
    """The summary of a coalescing window opened by ``first_delivery_id``, when it held events back.

    Counts the events of the same action and object after the window's first one and before the
    next first one (the next window) that the channel wants; attaches one delivery with that count
    to the last of them and queues it. Idempotent: a window gets at most one summary. Run when the
    window has closed (the task is queued with that countdown); run earlier, it closes the window
    early, so the next event is notified again rather than lost.
    """
    first = NotificationDelivery.objects.select_related("event", "channel").filter(pk=first_delivery_id).first()
    if first is None or first.repeats or not first.channel.enabled:
        return None
    channel, event = first.channel, first.event
    with transaction.atomic():
        _coalesce_lock()
        later = NotificationDelivery.objects.filter(
            **_same_object(event, "event__"), channel=channel, event_id__gt=event.pk
        )
        bound = later.filter(repeats=0).aggregate(next=Min("event_id"))["next"]
        if bound is not None:
            later = later.filter(event_id__lt=bound)
        if later.filter(repeats__gt=0).exists():
            return None  # summed up already (a redelivered task)
        held = AuditEvent.objects.filter(**_same_object(event), pk__gt=event.pk).exclude(result=AuditResult.DRY_RUN)
        if bound is not None:
            held = held.filter(pk__lt=bound)
        if channel.results:
            held = held.filter(result__in=channel.results)
        counted = held.aggregate(n=Count("id"), last=Max("id"))
        if not counted["n"]:
            return None
        summary = NotificationDelivery.objects.create(event_id=counted["last"], channel=channel, repeats=counted["n"])
        transaction.on_commit(partial(_enqueue_delivery, summary.pk))
    logger.info(
        "notification summary for %s: %d more %s of %s/%s",
        channel.name,
        counted["n"],
        event.action,
        event.namespace,
        event.name,
    )
    return summary


def _enqueue_delivery(delivery_id: int) -> None:
    try:
        notification_deliver_enqueue(delivery_id=delivery_id)
    except Exception:  # noqa: BLE001 - a broker outage must not fail the request that caused the event
        logger.exception("cannot queue notification delivery %s", delivery_id)


def _enqueue_repeats_summary(first_delivery_id: int, seconds: float) -> None:
    try:
        notification_repeats_summarize_enqueue(first_delivery_id=first_delivery_id, countdown=seconds)
    except Exception:  # noqa: BLE001 - as above: the event is written, only its summary is lost
        logger.exception("cannot queue the notification summary after delivery %s", first_delivery_id)
