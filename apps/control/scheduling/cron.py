"""Time zones, cron expressions and the next run time of a scheduled operation (pure)."""

from __future__ import annotations

import datetime
import zoneinfo

from croniter import croniter
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from apps.control.models import ScheduleKind


def time_zone_get(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone ``name``; ``ValidationError`` on ``time_zone`` for an unknown one."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError({"time_zone": _("Unknown time zone %(tz)s.") % {"tz": name}}) from exc


def cron_fields(expression: str) -> list[str]:
    """The five fields of a standard cron expression; ``ValidationError`` on ``cron`` otherwise."""
    fields = expression.split()
    if len(fields) != 5 or not croniter.is_valid(" ".join(fields)):
        raise ValidationError(
            {"cron": _("Enter a valid cron expression with five fields: minute hour day-of-month month day-of-week.")}
        )
    return fields


def next_run_compute(
    *, schedule: str, run_at: datetime.datetime | None, cron: str, time_zone: str, after: datetime.datetime
) -> datetime.datetime | None:
    """When the operation runs next after ``after`` (UTC), or ``None`` (``now``, or a past ``once``).

    Cron times are wall-clock times in ``time_zone``, so the UTC instant follows daylight saving.
    """
    if schedule == ScheduleKind.ONCE:
        return run_at if run_at is not None and run_at > after else None
    if schedule == ScheduleKind.CRON:
        tz = time_zone_get(time_zone)
        following = croniter(" ".join(cron_fields(cron)), after.astimezone(tz)).get_next(datetime.datetime)
        return following.astimezone(datetime.UTC)
    return None
