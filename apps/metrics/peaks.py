"""Pure rules of collection and refresh: windows, days, source-day choice, requests from statistics."""

from __future__ import annotations

import dataclasses
import datetime
import math
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, TypeVar

# Statistics carry float noise (0.88 × 1000 = 880.0000000000006); round before ceil so 880 stays 880.
CEIL_DIGITS = 6
NOISE_DIGITS = 9  # a figure's digits beyond these are the backend's summing order, not data


@dataclasses.dataclass(frozen=True)
class Window:
    day: datetime.date
    start: datetime.datetime  # aware, UTC
    end: datetime.datetime

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())


def peak_window(*, day: datetime.date, start: datetime.time, end: datetime.time, time_zone: str) -> Window:
    """The day's peak window in the cluster's time zone, as UTC instants (DST-aware)."""
    tz = zoneinfo.ZoneInfo(time_zone)
    local_start = datetime.datetime.combine(day, start, tz)
    local_end = datetime.datetime.combine(day, end, tz)
    return Window(day=day, start=local_start.astimezone(datetime.UTC), end=local_end.astimezone(datetime.UTC))


def local_today(*, now: datetime.datetime, time_zone: str) -> datetime.date:
    return now.astimezone(zoneinfo.ZoneInfo(time_zone)).date()


def collection_windows(
    *, days: int, now: datetime.datetime, start: datetime.time, end: datetime.time, time_zone: str
) -> tuple[list[Window], list[datetime.date]]:
    """The last ``days`` days up to today (oldest first), and the days skipped because their window has not ended."""
    today = local_today(now=now, time_zone=time_zone)
    windows: list[Window] = []
    skipped: list[datetime.date] = []
    for offset in range(days - 1, -1, -1):
        day = today - datetime.timedelta(days=offset)
        window = peak_window(day=day, start=start, end=end, time_zone=time_zone)
        if window.end > now:
            skipped.append(day)
        else:
            windows.append(window)
    return windows, skipped


def ceil_clean(value: float) -> int:
    return math.ceil(round(value, CEIL_DIGITS))


def round_clean(value: float, digits: int | None = None) -> float | int:
    """``round`` of a figure the backend computed. The backend sums series in no fixed order, so a value
    on a tie (160.9375) comes back a few ulps either side of it: that noise is rounded away first, so
    the same history always gives the same stored figure."""
    return round(round(value, NOISE_DIGITS), digits)


def request_from_peak(
    *,
    p95_cpu_cores: float | None,
    p95_mem_mib: float | None,
    cpu_headroom: float,
    mem_headroom: float,
    min_cpu_m: int,
    min_mem_mib: int,
) -> tuple[int | None, int | None]:
    """DESIGN §5.4: ``max(ceil(p95 × (1 + headroom)), floor)`` for CPU (m) and memory (MiB); None when unmeasured."""
    cpu = None if p95_cpu_cores is None else max(ceil_clean(p95_cpu_cores * 1000 * (1 + cpu_headroom)), min_cpu_m)
    mem = None if p95_mem_mib is None else max(ceil_clean(p95_mem_mib * (1 + mem_headroom)), min_mem_mib)
    return cpu, mem


def cap_at_limit(request: int | None, limit: int | None) -> tuple[int | None, bool]:
    """A request above the limit is lowered to it; the flag says it happened."""
    if request is not None and limit is not None and request > limit:
        return limit, True
    return request, False


class PeakLike(Protocol):
    """What the choices below read of a row; read-only, so a ``StatRow`` (a named tuple) is one."""

    @property
    def day(self) -> datetime.date: ...
    @property
    def namespace(self) -> str: ...
    @property
    def deployment(self) -> str: ...
    @property
    def container(self) -> str: ...
    @property
    def pod_count(self) -> int | None: ...
    @property
    def p95_cpu_cores(self) -> float | None: ...


def _load(rows: Iterable[PeakLike]) -> float:
    """Σ over containers of P95 CPU × pods: the service's load on a day."""
    total = 0.0
    for row in rows:
        if row.p95_cpu_cores is not None and row.pod_count:
            total += row.p95_cpu_cores * row.pod_count
    return total


Row = TypeVar("Row", bound=PeakLike)


def group_by_service(rows: Iterable[Row]) -> dict[tuple[str, str], dict[datetime.date, list[Row]]]:
    """(namespace, deployment) → day → container rows."""
    services: dict[tuple[str, str], dict[datetime.date, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        services[(row.namespace, row.deployment)][row.day].append(row)
    return services


def service_source_day(days: Mapping[datetime.date, Sequence[PeakLike]]) -> datetime.date:
    """``service`` mode: the day with the highest P95 CPU × pod count; ties go to the latest day."""
    return max(days, key=lambda day: (_load(days[day]), day))


def cluster_source_day(rows: Iterable[PeakLike]) -> datetime.date | None:
    """``cluster`` mode (KubeDoor 0.2): the single day with the highest Σ(pods × P95 CPU) over the cluster."""
    per_day: dict[datetime.date, float] = defaultdict(float)
    for row in rows:
        per_day[row.day] += _load([row])
    if not per_day:
        return None
    return max(per_day, key=lambda day: (per_day[day], day))
