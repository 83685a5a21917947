"""The one writer of django-celery-beat entries: a ``PeriodicTask`` on a crontab or at one time, for any app.

A caller names its entry and the task it runs (by the task's registered name, so no app imports
another app's tasks), says when, and ``periodic_task_sync`` creates, updates or, with
``schedule=None``, deletes the entry so beat does exactly that. Call it inside the transaction of
the change it follows. Crontab rows are shared between entries (get-or-create, as beat's admin
does); a clocked row belongs to one entry and goes when the entry moves to another time or is
deleted. This module imports no app (checked by tests/test_architecture.py).
"""

from __future__ import annotations

import datetime
import json
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django_celery_beat.models import ClockedSchedule, CrontabSchedule, PeriodicTask


@dataclass(frozen=True)
class Crontab:
    """Every time the five cron fields match, as wall-clock time in ``time_zone`` (so it follows daylight saving)."""

    minute: str
    hour: str
    day_of_month: str = "*"
    month_of_year: str = "*"
    day_of_week: str = "*"
    time_zone: str = "UTC"


@dataclass(frozen=True)
class Clocked:
    """Once, at ``at`` (aware). A clocked entry is one-off: beat disables it after it has fired."""

    at: datetime.datetime


def periodic_task_sync(
    *,
    name: str,
    task: str,
    schedule: Crontab | Clocked | None,
    kwargs: Mapping[str, Any] | None = None,
    enabled: bool = True,
    description: str = "",
) -> PeriodicTask | None:
    """Make the entry ``name`` run ``task`` with ``kwargs`` on ``schedule``; ``None`` deletes it.

    ``one_off`` follows the schedule (beat accepts a clocked entry only as one-off). Enabling a
    one-off entry re-arms it: its last run is forgotten so it fires again at its time.
    Returns the saved entry, or ``None`` when it was deleted.
    """
    if schedule is None:
        periodic_tasks_delete(names=[name])
        return None
    entry = PeriodicTask.objects.select_related("clocked").filter(name=name).first() or PeriodicTask(name=name)
    old_clocked = entry.clocked
    if isinstance(schedule, Clocked):
        if old_clocked is not None and old_clocked.clocked_time == schedule.at:
            entry.clocked = old_clocked
        else:
            entry.clocked = ClockedSchedule.objects.create(clocked_time=schedule.at)
        entry.crontab = None
        entry.one_off = True
    else:
        entry.crontab, _created = CrontabSchedule.objects.get_or_create(
            minute=schedule.minute,
            hour=schedule.hour,
            day_of_month=schedule.day_of_month,
            month_of_year=schedule.month_of_year,
            day_of_week=schedule.day_of_week,
            timezone=zoneinfo.ZoneInfo(schedule.time_zone),
        )
        entry.clocked = None
        entry.one_off = False
    entry.task = task
    entry.interval = None
    entry.solar = None
    entry.kwargs = json.dumps(dict(kwargs or {}))
    entry.enabled = enabled
    entry.description = description
    if enabled and entry.one_off:
        entry.last_run_at = None
    entry.save()
    if old_clocked is not None and old_clocked != entry.clocked:
        _clocked_orphans_delete([old_clocked.pk])
    return entry


def periodic_task_disable(*, name: str) -> None:
    """Mark a one-off entry that has fired as disabled, as beat itself does after firing it.

    A plain UPDATE: beat is not told of the change (it disabled the entry already, or will find
    the operation done if it fires it again).
    """
    PeriodicTask.objects.filter(name=name).update(enabled=False)


def periodic_tasks_delete(*, names: Iterable[str]) -> None:
    """Delete the named entries (missing ones are ignored) and the clocked rows only they used."""
    entries = PeriodicTask.objects.filter(name__in=list(names))
    clocked_ids = [pk for pk in entries.values_list("clocked_id", flat=True) if pk is not None]
    entries.delete()
    _clocked_orphans_delete(clocked_ids)


def _clocked_orphans_delete(clocked_ids: list[int]) -> None:
    if clocked_ids:
        ClockedSchedule.objects.filter(pk__in=clocked_ids, periodictask__isnull=True).delete()
