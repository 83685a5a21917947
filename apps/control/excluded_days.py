"""The calendar of excluded days (issue 11 §4): writes with their audit event, and the reads refresh needs.

A day in an excluded range is never a source day of the control table: the refresh
(``apps.metrics.refresh``) leaves it out of the source-day choice, as does the waste board. The
archive keeps the day and the charts show it, marked. Every change is audited with its reason.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from apps.audit.services import Actor, audit_event_record
from apps.control.models import Cluster, ExcludedDay
from kubedoor_site.exceptions import editable_fields_check

EDITABLE_FIELDS = ("start", "end", "reason")


def excluded_day_snapshot(excluded: ExcludedDay) -> dict[str, Any]:
    """The audited state of a calendar entry."""
    return {
        "start": excluded.start.isoformat(),
        "end": excluded.end.isoformat(),
        "reason": excluded.reason,
        "created_by": excluded.created_by,
    }


def _label(excluded: ExcludedDay) -> str:
    return str(excluded)


@transaction.atomic
def excluded_day_create(
    *, actor: Actor, cluster: Cluster, start: datetime.date, end: datetime.date | None = None, reason: str
) -> ExcludedDay:
    """Add a day (``end`` empty) or a range of days to the cluster's calendar."""
    excluded = ExcludedDay(cluster=cluster, start=start, end=end or start, reason=reason, created_by=actor.name)
    excluded.full_clean()
    excluded.save()
    audit_event_record(
        actor=actor,
        action="excluded_day.create",
        cluster=cluster.name,
        name=_label(excluded),
        after=excluded_day_snapshot(excluded),
        message=excluded.reason,
    )
    return excluded


@transaction.atomic
def excluded_day_update(*, actor: Actor, excluded: ExcludedDay, data: Mapping[str, Any]) -> ExcludedDay:
    """Change the days or the reason; only what really changes is audited."""
    editable_fields_check(data, EDITABLE_FIELDS)
    excluded = ExcludedDay.objects.select_for_update().select_related("cluster").get(pk=excluded.pk)
    before = excluded_day_snapshot(excluded)
    for field, value in data.items():
        setattr(excluded, field, value)
    if excluded.end is None:
        excluded.end = excluded.start
    excluded.full_clean()
    excluded.save()
    after = excluded_day_snapshot(excluded)
    keys = [key for key in after if before[key] != after[key]]
    if keys:
        audit_event_record(
            actor=actor,
            action="excluded_day.update",
            cluster=excluded.cluster.name,
            name=_label(excluded),
            before={key: before[key] for key in keys},
            after={key: after[key] for key in keys},
            message=excluded.reason,
        )
    return excluded


@transaction.atomic
def excluded_day_delete(*, actor: Actor, excluded: ExcludedDay) -> None:
    before = excluded_day_snapshot(excluded)
    cluster, label = excluded.cluster.name, _label(excluded)
    excluded.delete()
    audit_event_record(
        actor=actor, action="excluded_day.delete", cluster=cluster, name=label, before=before, message=before["reason"]
    )


# --- reads ------------------------------------------------------------------------------------


def excluded_day_list(*, cluster: Cluster | str) -> QuerySet[ExcludedDay]:
    rows = ExcludedDay.objects.select_related("cluster")
    if isinstance(cluster, Cluster):
        return rows.filter(cluster=cluster)
    return rows.filter(cluster__name=cluster)


def excluded_day_reasons(
    *, cluster: Cluster | str, day_from: datetime.date, day_to: datetime.date
) -> dict[datetime.date, str]:
    """Every excluded date of the cluster within [day_from, day_to], with its reason (the latest entry's)."""
    reasons: dict[datetime.date, str] = {}
    entries = (
        excluded_day_list(cluster=cluster).filter(start__lte=day_to, end__gte=day_from).order_by("created_at", "id")
    )
    for excluded in entries:
        reasons.update((day, excluded.reason) for day in excluded.days() if day_from <= day <= day_to)
    return dict(sorted(reasons.items()))


def excluded_dates(*, cluster: Cluster | str, day_from: datetime.date, day_to: datetime.date) -> set[datetime.date]:
    """Every excluded date of the cluster within [day_from, day_to]."""
    return set(excluded_day_reasons(cluster=cluster, day_from=day_from, day_to=day_to))
