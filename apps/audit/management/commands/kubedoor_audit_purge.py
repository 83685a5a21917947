"""``manage.py kubedoor_audit_purge --before DATE [--dry-run]``: the audit trail's retention purge."""

from __future__ import annotations

import datetime
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_date, parse_datetime

from apps.audit.retention import audit_events_purge
from apps.audit.services import Actor


def _moment(value: str) -> datetime.datetime:
    """A date (midnight in the project's time zone) or an ISO date-time (naive: the project's time zone)."""
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"--before {value!r}: give a date (2026-01-31) or an ISO date-time")
        moment = datetime.datetime.combine(day, datetime.time())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(settings.TIME_ZONE))
    return moment


class Command(BaseCommand):
    help = "Remove audit events older than a date (and their notification deliveries); the purge is audited."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--before", required=True, help="remove events before this date or ISO date-time")
        parser.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        before = _moment(options["before"])
        result = audit_events_purge(
            actor=Actor.system("kubedoor_audit_purge"), before=before, dry_run=options["dry_run"]
        )
        verb = "Would remove" if result.dry_run else "Removed"
        if result.count:
            span = f"from {result.first_at.isoformat()} to {result.last_at.isoformat()}"  # type: ignore[union-attr]
        else:
            span = "(none)"
        self.stdout.write(
            f"{verb} {result.count} audit events before {before.isoformat()} {span}, "
            f"{result.deliveries} notification deliveries; recorded as audit event {result.event_id}."
        )
