"""Reads of the metrics app: collection runs, the daily-peak archive (whichever store holds it) and
the day range every archive reader asks for."""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from apps.accounts.scopes import scope_namespaces
from apps.metrics.models import CollectionRun
from apps.metrics.store import PeakRow, PeakStore, peak_store

if TYPE_CHECKING:
    from apps.control.models import Cluster

MAX_RANGE_DAYS = 400


@dataclass(frozen=True)
class DayRange:
    """The archive days ``day_from`` … ``day_to``, both included, in the cluster's calendar."""

    day_from: datetime.date
    day_to: datetime.date


def cluster_today(cluster: Cluster) -> datetime.date:
    """Today in the cluster's time zone: the days of the archive are the cluster's days."""
    zone: datetime.tzinfo
    try:
        zone = zoneinfo.ZoneInfo(cluster.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = datetime.UTC
    return datetime.datetime.now(zone).date()


def day_range_get(
    *,
    cluster: Cluster,
    day_from: datetime.date | None = None,
    day_to: datetime.date | None = None,
    default_days: int | None = None,
    max_days: int = MAX_RANGE_DAYS,
) -> DayRange:
    """The day range asked for, its missing ends filled in: the one rule of the dashboard and the archive.

    ``day_to`` defaults to today in the cluster's time zone; ``day_from`` to ``default_days`` days
    ending on ``day_to`` (``None``: the cluster's lookback, the days its control table is derived
    from). Raises ``ValidationError`` naming ``day_from`` when the range ends before it starts or
    spans ``max_days`` days or more.
    """
    day_to = day_to or cluster_today(cluster)
    days = default_days if default_days is not None else max(1, cluster.lookback_days)
    day_from = day_from or day_to - datetime.timedelta(days=days - 1)
    if day_from > day_to:
        raise ValidationError({"day_from": _("The range must start before it ends.")})
    if (day_to - day_from).days >= max_days:
        raise ValidationError({"day_from": _("Ask for at most %(days)s days at a time.") % {"days": max_days}})
    return DayRange(day_from=day_from, day_to=day_to)


def collection_run_list(*, cluster: str | None = None, state: str | None = None) -> QuerySet[CollectionRun]:
    qs = CollectionRun.objects.select_related("cluster")
    if cluster:
        qs = qs.filter(cluster__name=cluster)
    if state:
        qs = qs.filter(state=state)
    return qs


def collection_run_get(*, pk: int) -> CollectionRun:
    return CollectionRun.objects.select_related("cluster").get(pk=pk)


class PeakPage:
    """A lazily counted, lazily sliced list of archive rows, so Django's and DRF's paginators can page it.

    ``namespaces`` (a scoped user's namespaces of the cluster) reads the store once per namespace, in
    namespace order, and pages over them as one list; ``None`` = the store's own filters only.
    """

    def __init__(self, *, store: PeakStore, namespaces: Collection[str] | None = None, **filters: Any) -> None:
        self.store = store
        self.filters = filters
        if namespaces is None:
            self.parts = [filters]
        else:
            self.parts = [{**filters, "namespace": namespace} for namespace in sorted(namespaces)]
        self._counts: list[int] | None = None

    def _part_counts(self) -> list[int]:
        if self._counts is None:
            self._counts = [self.store.count(**part) for part in self.parts]
        return self._counts

    def count(self) -> int:
        return sum(self._part_counts())

    def __len__(self) -> int:
        return self.count()

    def _rows(self, start: int, stop: int) -> list[PeakRow]:
        rows: list[PeakRow] = []
        offset = 0
        for part, count in zip(self.parts, self._part_counts(), strict=True):
            lo, hi = max(start - offset, 0), min(stop - offset, count)
            if lo < hi:
                rows += self.store.rows(**part, limit=hi - lo, offset=lo)
            offset += count
            if offset >= stop:
                break
        return rows

    def __getitem__(self, index: slice | int) -> list[PeakRow] | PeakRow:
        if isinstance(index, int):
            if len(self.parts) == 1:
                rows = self.store.rows(**self.parts[0], limit=1, offset=index)
            else:
                rows = self._rows(index, index + 1)
            if not rows:
                raise IndexError(index)
            return rows[0]
        start = index.start or 0
        if len(self.parts) == 1:
            stop = index.stop if index.stop is not None else self.count()
            return self.store.rows(**self.parts[0], limit=max(0, stop - start), offset=start)
        stop = index.stop if index.stop is not None else self.count()
        return self._rows(start, stop)


def peak_list(
    *,
    cluster: str,
    day_from: datetime.date,
    day_to: datetime.date,
    namespace: str = "",
    deployment: str = "",
    store: PeakStore | None = None,
    user: Any = None,
) -> PeakPage:
    """The archive rows of ``cluster``; with ``user``, only their scopes' namespaces (none outside them)."""
    namespaces = scope_namespaces(user, cluster=cluster)
    if namespaces is not None and namespace:
        namespaces = namespaces & {namespace}
    return PeakPage(
        store=store or peak_store(),
        namespaces=namespaces,
        cluster=cluster,
        day_from=day_from,
        day_to=day_to,
        namespace=namespace,
        deployment=deployment,
    )
