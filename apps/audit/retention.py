"""Retention: the one way audit events leave the trail (``manage.py kubedoor_audit_purge``).

On PostgreSQL the trigger of migration 0004 refuses every DELETE of an audit event unless the
transaction has set ``kubedoor.audit_purge`` to ``on``; ``audit_events_purge`` sets it with
``SET LOCAL`` (it ends with the transaction) and turns it off again before it records the purge
itself. Nothing else in the project sets it.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from django.db import connections, transaction
from django.db.models import Count, Max, Min

from apps.audit.models import AuditEvent, AuditResult, NotificationDelivery
from apps.audit.services import Actor, audit_event_record

logger = logging.getLogger(__name__)

PURGE_ON_SQL = "SET LOCAL kubedoor.audit_purge = 'on'"
PURGE_OFF_SQL = "SET LOCAL kubedoor.audit_purge = 'off'"


@dataclass(frozen=True)
class PurgeResult:
    """What a purge removed (or, in a dry run, would remove): how many events, from when to when."""

    before: datetime.datetime
    count: int
    first_at: datetime.datetime | None
    last_at: datetime.datetime | None
    deliveries: int
    dry_run: bool
    event_id: int


def audit_events_purge(*, actor: Actor, before: datetime.datetime, dry_run: bool = False) -> PurgeResult:
    """Remove the events older than ``before`` (and their notification deliveries); record the purge.

    The purge is itself an audit event (``audit.purge``, result ``dry_run`` for a dry run) holding the
    count and the time range removed; it is written after the removal, so it is never removed itself.
    """
    db = AuditEvent.objects.db
    with transaction.atomic(using=db):
        doomed = AuditEvent.objects.filter(at__lt=before)
        summary = doomed.aggregate(count=Count("id"), first=Min("at"), last=Max("at"))
        deliveries = NotificationDelivery.objects.filter(event__at__lt=before)
        delivery_count = deliveries.count()
        if not dry_run and summary["count"]:
            connection = connections[db]
            table = connection.ops.quote_name(AuditEvent._meta.db_table)
            at_column = connection.ops.quote_name("at")  # AuditEvent.at's column
            with connection.cursor() as cursor:
                deliveries.delete()
                if connection.vendor == "postgresql":
                    cursor.execute(PURGE_ON_SQL)
                # Raw SQL: the model's manager refuses deletes; names come from the model.
                cursor.execute(f"DELETE FROM {table} WHERE {at_column} < %s", [before])
                if connection.vendor == "postgresql":
                    cursor.execute(PURGE_OFF_SQL)
        after = {
            "before": before.isoformat(),
            "count": summary["count"],
            "first_at": summary["first"].isoformat() if summary["first"] else None,
            "last_at": summary["last"].isoformat() if summary["last"] else None,
            "deliveries": delivery_count,
        }
        event = audit_event_record(
            actor=actor,
            action="audit.purge",
            after=after,
            result=AuditResult.DRY_RUN if dry_run else AuditResult.OK,
            message=f"{'would remove' if dry_run else 'removed'} {summary['count']} events before {before.isoformat()}",
        )
    logger.info("audit purge before %s: %s events%s", before.isoformat(), summary["count"], " (dry)" if dry_run else "")
    return PurgeResult(
        before=before,
        count=summary["count"],
        first_at=summary["first"],
        last_at=summary["last"],
        deliveries=delivery_count,
        dry_run=dry_run,
        event_id=event.pk,
    )
