"""Reads of scheduled operations."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.control.models import Microservice, ScheduledOperation


def targets_ordered(operation: ScheduledOperation) -> list[Microservice]:
    """The targets in the order they were given (the order of the many-to-many rows)."""
    through = ScheduledOperation.targets.through
    ids = list(
        through.objects.filter(scheduledoperation=operation).order_by("id").values_list("microservice_id", flat=True)
    )
    by_id = {
        microservice.pk: microservice
        for microservice in Microservice.objects.select_related("cluster").filter(pk__in=ids)
    }
    return [by_id[pk] for pk in ids if pk in by_id]


def operation_list() -> QuerySet[ScheduledOperation]:
    """Scheduled operations, newest first."""
    rows = ScheduledOperation.objects.select_related("cluster").prefetch_related("targets")
    return rows.order_by("-created_at", "-id")
