"""Reads of the metrics app: collection runs and the daily-peak archive (whichever store holds it)."""

from __future__ import annotations

import datetime
from typing import Any

from django.db.models import QuerySet

from apps.metrics.models import CollectionRun
from apps.metrics.store import PeakRow, PeakStore, peak_store


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
    """A lazily counted, lazily sliced list of archive rows, so Django's and DRF's paginators can page it."""

    def __init__(self, *, store: PeakStore, **filters: Any) -> None:
        self.store = store
        self.filters = filters
        self._count: int | None = None

    def count(self) -> int:
        if self._count is None:
            self._count = self.store.count(**self.filters)
        return self._count

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice | int) -> list[PeakRow] | PeakRow:
        if isinstance(index, int):
            rows = self.store.rows(**self.filters, limit=1, offset=index)
            if not rows:
                raise IndexError(index)
            return rows[0]
        start = index.start or 0
        stop = index.stop if index.stop is not None else self.count()
        return self.store.rows(**self.filters, limit=max(0, stop - start), offset=start)


def peak_list(
    *,
    cluster: str,
    day_from: datetime.date,
    day_to: datetime.date,
    namespace: str = "",
    deployment: str = "",
    store: PeakStore | None = None,
) -> PeakPage:
    return PeakPage(
        store=store or peak_store(),
        cluster=cluster,
        day_from=day_from,
        day_to=day_to,
        namespace=namespace,
        deployment=deployment,
    )
