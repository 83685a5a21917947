"""Reads of scheduled operations."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apps.accounts.scopes import scope_filter, user_scopes
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


def operation_list(*, user: Any = None) -> QuerySet[ScheduledOperation]:
    """Scheduled operations, newest first; with ``user``, only those whose every target is in their scopes."""
    rows = operation_scope_filter(
        user, ScheduledOperation.objects.select_related("cluster").prefetch_related("targets")
    )
    return rows.order_by("-created_at", "-id")


def operation_scope_filter(user: Any, rows: QuerySet[ScheduledOperation]) -> QuerySet[ScheduledOperation]:
    """The operations a (scoped) user may see: on their clusters, with no target outside their scopes."""
    if user_scopes(user) is None:
        return rows
    visible = scope_filter(user, Microservice.objects.all()).values("pk")
    return scope_filter(user, rows, namespace=None).exclude(targets__in=Microservice.objects.exclude(pk__in=visible))
