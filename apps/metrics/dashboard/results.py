"""What the dashboard backends return (raw sums) and what the dashboard shows (shaped results)."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Collection, Sequence
from typing import Any, Protocol

BOARDS = ("load", "cpu_pct", "memory", "mem_pct", "pods")
TOP_N = 10
TOTAL_FIELDS = (
    "services",
    "pods",
    "cpu_request_cores",
    "cpu_used_cores",
    "cpu_limit_cores",
    "mem_request_gib",
    "mem_used_gib",
    "mem_limit_gib",
)


@dataclasses.dataclass(frozen=True)
class Totals:
    """Cluster-wide (or one namespace's) sums over the services' source days."""

    services: int
    pods: int
    cpu_request_cores: float
    cpu_used_cores: float
    cpu_limit_cores: float
    mem_request_gib: float
    mem_used_gib: float
    mem_limit_gib: float


@dataclasses.dataclass(frozen=True)
class TopEntry:
    namespace: str
    deployment: str
    source_day: datetime.date
    value: float


@dataclasses.dataclass(frozen=True)
class NamespaceRow:
    namespace: str
    totals: Totals
    shares: dict[str, float]  # field of Totals -> % of the cluster total (0 when the total is 0)


@dataclasses.dataclass(frozen=True)
class Summary:
    cluster: str
    day_from: datetime.date
    day_to: datetime.date
    namespaces: int
    totals: Totals
    top: dict[str, list[TopEntry]]
    namespace_rows: list[NamespaceRow]
    excluded_days: list[datetime.date] = dataclasses.field(default_factory=list)  # never a source day


@dataclasses.dataclass(frozen=True)
class CurvePoint:
    """One service-day; CPU in cores per pod, memory in MiB per pod (null = not measured)."""

    day: datetime.date
    pods: int | None
    cpu_cores: float | None
    cpu_request_cores: float | None
    cpu_limit_cores: float | None
    mem_mib: float | None
    mem_request_mib: float | None
    mem_limit_mib: float | None


@dataclasses.dataclass(frozen=True)
class DataSpan:
    """Which days of a cluster the archive holds (``rows`` = 0: nothing collected yet)."""

    rows: int
    first_day: datetime.date | None
    last_day: datetime.date | None


# Raw sums in per-pod units × pods: services, pods, Σ request CPU m, Σ P95 CPU cores, Σ limit CPU m,
# Σ request memory MiB, Σ P95 memory MiB, Σ limit memory MiB.
RawTotals = Sequence[Any]
# day, pods, P95 CPU cores, request CPU m, limit CPU m, P95 memory MiB, request MiB, limit MiB (per pod)
RawCurve = Sequence[Any]


# namespace, deployment, source day, pods, P95 CPU cores, request CPU m, P95 memory MiB, request MiB (per pod)
RawWasteSource = Sequence[Any]
# day, Σ wasted CPU cores, Σ wasted memory MiB (each service-day floored at 0 before the sum)
RawWasteTrend = Sequence[Any]


@dataclasses.dataclass(frozen=True)
class RawSummary:
    """Everything one summary needs, as a backend computes it in one statement."""

    namespaces: int
    totals: RawTotals
    namespace_rows: list[tuple[str, RawTotals]]
    top: list[tuple[str, str, str, Any, float]]  # (board, namespace, deployment, source day, value), ≤ TOP_N each


class DashboardBackend(Protocol):
    name: str

    def raw_summary(
        self,
        *,
        cluster: str,
        day_from: datetime.date,
        day_to: datetime.date,
        excluded: Collection[datetime.date] = (),
        only_namespaces: Collection[str] | None = None,
    ) -> RawSummary: ...

    def raw_curves(
        self, *, cluster: str, namespace: str, deployment: str, day_from: datetime.date, day_to: datetime.date
    ) -> list[RawCurve]: ...

    def service_row_count(self, *, cluster: str, namespace: str, deployment: str) -> int: ...

    def raw_waste_sources(
        self,
        *,
        cluster: str,
        day_from: datetime.date,
        day_to: datetime.date,
        excluded: Collection[datetime.date],
        only_namespaces: Collection[str] | None = None,
    ) -> list[RawWasteSource]: ...

    def raw_waste_trend(
        self,
        *,
        cluster: str,
        day_from: datetime.date,
        day_to: datetime.date,
        only_namespaces: Collection[str] | None = None,
    ) -> list[RawWasteTrend]: ...

    def data_span(self, *, cluster: str) -> DataSpan: ...


def as_date(value: Any) -> datetime.date:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    return datetime.date.fromisoformat(str(value))
