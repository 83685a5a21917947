"""The daily-peak store: one interface, two implementations (DESIGN §4.3).

``OrmStore`` keeps the rows in the default database (the ``DailyPeak`` model); ``ClickHouseStore``
runs the SQL constants of ``apps.metrics.clickhouse`` through an executor (the ClickHouse door in
production; the tests also run it on chdb, a current ClickHouse, with the same SQL). Both pass the
same contract tests (tests/metrics/test_store.py).

Contract: ``day_replace`` makes the rows of (cluster, day) exactly the given rows — re-collecting a
day never duplicates, also after the peak window changed; other days and clusters are untouched.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from django.conf import settings
from django.db import transaction

from apps.metrics import clickhouse as ch
from apps.metrics.models import DailyPeak
from apps.metrics.pod_node_store import pod_node_ddl

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PeakRow:
    """One daily-peak row as both stores read and write it."""

    cluster: str
    day: datetime.date
    namespace: str
    deployment: str
    container: str
    window_start: datetime.datetime
    window_end: datetime.datetime
    pod_count: int | None
    p95_cpu_cores: float | None
    p95_cpu_pct: float | None
    p95_mem_mib: float | None
    p95_mem_pct: float | None
    request_cpu_m: int | None
    request_mem_mib: int | None
    limit_cpu_m: int | None
    limit_mem_mib: int | None
    quantile: float
    aggregation: str
    step_seconds: int
    collected_at: datetime.datetime
    oom_kills: int | None = None
    throttled_pct: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class StatRow(NamedTuple):
    """The columns the control-table refresh needs (no timestamps: cheaper to read in bulk)."""

    day: datetime.date
    namespace: str
    deployment: str
    container: str
    pod_count: int | None
    p95_cpu_cores: float | None
    p95_cpu_pct: float | None
    p95_mem_mib: float | None
    p95_mem_pct: float | None
    limit_cpu_m: int | None
    limit_mem_mib: int | None
    oom_kills: int | None = None
    throttled_pct: float | None = None


STAT_FIELDS = StatRow._fields
PEAK_FIELDS = tuple(field.name for field in dataclasses.fields(PeakRow))
assert PEAK_FIELDS == ch.DAILY_PEAKS_COLUMNS, "the ClickHouse columns and PeakRow must stay in step"


class PeakStore(Protocol):
    name: str

    def ensure_schema(self) -> None: ...

    def day_replace(self, *, cluster: str, day: datetime.date, rows: Sequence[PeakRow]) -> int: ...

    def rows(
        self,
        *,
        cluster: str,
        day_from: datetime.date,
        day_to: datetime.date,
        namespace: str = "",
        deployment: str = "",
        limit: int | None = None,
        offset: int = 0,
    ) -> list[PeakRow]: ...

    def count(
        self, *, cluster: str, day_from: datetime.date, day_to: datetime.date, namespace: str = "", deployment: str = ""
    ) -> int: ...

    def days(self, *, cluster: str) -> dict[datetime.date, int]: ...

    def stats(self, *, cluster: str, day_from: datetime.date, day_to: datetime.date) -> list[StatRow]: ...


# --- ORM ----------------------------------------------------------------------------------------


class OrmStore:
    """Daily peaks in the default database."""

    name = "orm"

    def ensure_schema(self) -> None:
        """The table is made by Django migrations."""

    def day_replace(self, *, cluster: str, day: datetime.date, rows: Sequence[PeakRow]) -> int:
        _check_rows(cluster=cluster, day=day, rows=rows)
        with transaction.atomic():
            DailyPeak.objects.filter(cluster=cluster, day=day).delete()
            DailyPeak.objects.bulk_create([DailyPeak(**row.as_dict()) for row in rows], batch_size=2000)
        return len(rows)

    def _filtered(
        self, *, cluster: str, day_from: datetime.date, day_to: datetime.date, namespace: str, deployment: str
    ):
        qs = DailyPeak.objects.filter(cluster=cluster, day__gte=day_from, day__lte=day_to)
        if namespace:
            qs = qs.filter(namespace=namespace)
        if deployment:
            qs = qs.filter(deployment=deployment)
        return qs

    def rows(
        self,
        *,
        cluster: str,
        day_from: datetime.date,
        day_to: datetime.date,
        namespace: str = "",
        deployment: str = "",
        limit: int | None = None,
        offset: int = 0,
    ) -> list[PeakRow]:
        qs = self._filtered(
            cluster=cluster, day_from=day_from, day_to=day_to, namespace=namespace, deployment=deployment
        ).order_by("day", "namespace", "deployment", "container")
        qs = qs[offset : offset + limit] if limit is not None else qs[offset:]
        return [PeakRow(**values) for values in qs.values(*PEAK_FIELDS)]

    def count(
        self, *, cluster: str, day_from: datetime.date, day_to: datetime.date, namespace: str = "", deployment: str = ""
    ) -> int:
        return self._filtered(
            cluster=cluster, day_from=day_from, day_to=day_to, namespace=namespace, deployment=deployment
        ).count()

    def days(self, *, cluster: str) -> dict[datetime.date, int]:
        from django.db.models import Count

        qs = DailyPeak.objects.filter(cluster=cluster).values("day").annotate(n=Count("id")).order_by("day")
        return {item["day"]: item["n"] for item in qs}

    def stats(self, *, cluster: str, day_from: datetime.date, day_to: datetime.date) -> list[StatRow]:
        qs = DailyPeak.objects.filter(cluster=cluster, day__gte=day_from, day__lte=day_to).order_by(
            "day", "namespace", "deployment", "container"
        )
        return [StatRow._make(values) for values in qs.values_list(*STAT_FIELDS)]


# --- ClickHouse ---------------------------------------------------------------------------------


class ClickHouseExecutor(Protocol):
    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]: ...

    def insert(self, sql: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> int: ...

    def server_version(self) -> tuple[int, ...]: ...


MAX_ROWS = 10_000_000


class ClickHouseStore:
    """Daily peaks in ClickHouse, through the SQL constants of ``apps.metrics.clickhouse``.

    Replacing a day deletes its rows with ``ALTER TABLE … DELETE`` (a mutation; 18.16 runs them
    asynchronously and has no ``mutations_sync``), waits until the mutation is done, then inserts.
    The delete is skipped when the day has no rows yet, so a first backfill is insert-only.
    """

    name = "clickhouse"

    def __init__(self, executor: ClickHouseExecutor, *, mutation_timeout: float = ch.MUTATION_WAIT_SECONDS) -> None:
        self.executor = executor
        self.mutation_timeout = mutation_timeout

    def ensure_schema(self) -> None:
        """Create the tables, or add the columns a daily-peak table made by an older release lacks."""
        version = self.executor.server_version()
        self.executor.execute(ch.daily_peaks_ddl(server_version=version))
        present = {
            name for (name,) in self.executor.execute(ch.DAILY_PEAKS_TABLE_COLUMNS_SQL, {"table": ch.PEAKS_TABLE})
        }
        for column, sql in ch.DAILY_PEAKS_ADDED_COLUMNS.items():
            if column not in present:
                self.executor.execute(sql)
        for ddl in pod_node_ddl(server_version=version):  # the pod and node figures live beside the peaks
            self.executor.execute(ddl)

    def _wait_for_mutations(self) -> None:
        deadline = time.monotonic() + self.mutation_timeout
        delay = 0.01
        while True:
            (pending,) = self.executor.execute(ch.MUTATIONS_PENDING_SQL, {"table": ch.PEAKS_TABLE})[0]
            if int(pending) == 0:
                return
            if time.monotonic() > deadline:
                raise ch.ClickHouseError(
                    f"ClickHouse: the delete of old rows is still running after {self.mutation_timeout} s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def day_replace(self, *, cluster: str, day: datetime.date, rows: Sequence[PeakRow]) -> int:
        _check_rows(cluster=cluster, day=day, rows=rows)
        params = {"cluster": cluster, "day": day}
        (existing,) = self.executor.execute(ch.DAILY_PEAKS_DAY_COUNT_SQL, params)[0]
        if int(existing):
            self.executor.execute(ch.DAILY_PEAKS_DAY_DELETE_SQL, params)
            self._wait_for_mutations()
        return self.executor.insert(
            ch.DAILY_PEAKS_INSERT_SQL, ch.DAILY_PEAKS_COLUMNS, [_ch_values(row) for row in rows]
        )

    def _params(
        self, *, cluster: str, day_from: datetime.date, day_to: datetime.date, namespace: str, deployment: str
    ) -> dict[str, Any]:
        return {
            "cluster": cluster,
            "day_from": day_from,
            "day_to": day_to,
            "namespace": namespace or "",
            "deployment": deployment or "",
        }

    def rows(
        self,
        *,
        cluster: str,
        day_from: datetime.date,
        day_to: datetime.date,
        namespace: str = "",
        deployment: str = "",
        limit: int | None = None,
        offset: int = 0,
    ) -> list[PeakRow]:
        params = self._params(
            cluster=cluster, day_from=day_from, day_to=day_to, namespace=namespace, deployment=deployment
        )
        params.update(limit=MAX_ROWS if limit is None else int(limit), offset=int(offset))
        return [_row_from_tuple(values) for values in self.executor.execute(ch.DAILY_PEAKS_SELECT_SQL, params)]

    def count(
        self, *, cluster: str, day_from: datetime.date, day_to: datetime.date, namespace: str = "", deployment: str = ""
    ) -> int:
        params = self._params(
            cluster=cluster, day_from=day_from, day_to=day_to, namespace=namespace, deployment=deployment
        )
        return int(self.executor.execute(ch.DAILY_PEAKS_SELECT_COUNT_SQL, params)[0][0])

    def stats(self, *, cluster: str, day_from: datetime.date, day_to: datetime.date) -> list[StatRow]:
        params = {"cluster": cluster, "day_from": day_from, "day_to": day_to}
        return [_stat_from_tuple(values) for values in self.executor.execute(ch.DAILY_PEAKS_STATS_SQL, params)]

    def days(self, *, cluster: str) -> dict[datetime.date, int]:
        return {
            _as_date(day): int(n) for day, n in self.executor.execute(ch.DAILY_PEAKS_DAYS_SQL, {"cluster": cluster})
        }


def _check_rows(*, cluster: str, day: datetime.date, rows: Sequence[PeakRow]) -> None:
    for row in rows:
        if row.cluster != cluster or row.day != day:
            raise ValueError(
                f"row {row.namespace}/{row.deployment} belongs to {row.cluster} {row.day}, not {cluster} {day}"
            )


def _utc(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC).replace(microsecond=0)


def _ch_values(row: PeakRow) -> dict[str, Any]:
    values = row.as_dict()
    for key in ("window_start", "window_end", "collected_at"):
        values[key] = _utc(values[key])
    return values


def _as_date(value: Any) -> datetime.date:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    return datetime.date.fromisoformat(str(value))


def _as_datetime(value: Any) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return _utc(value)
    return datetime.datetime.fromisoformat(str(value)).replace(tzinfo=datetime.UTC)


def _row_from_tuple(values: Sequence[Any]) -> PeakRow:
    data = dict(zip(PEAK_FIELDS, values, strict=True))
    data["day"] = _as_date(data["day"])
    for key in ("window_start", "window_end", "collected_at"):
        data[key] = _as_datetime(data[key])
    for key in (
        "pod_count",
        "request_cpu_m",
        "request_mem_mib",
        "limit_cpu_m",
        "limit_mem_mib",
        "step_seconds",
        "oom_kills",
    ):
        if data[key] is not None:
            data[key] = int(data[key])
    for key in ("p95_cpu_cores", "p95_cpu_pct", "p95_mem_mib", "p95_mem_pct", "quantile", "throttled_pct"):
        if data[key] is not None:
            data[key] = float(data[key])
    return PeakRow(**data)


def _stat_from_tuple(values: Sequence[Any]) -> StatRow:
    day, namespace, deployment, container, pods, cpu, cpu_pct, mem, mem_pct, lim_cpu, lim_mem, ooms, throttled = values
    return StatRow(
        _as_date(day),
        namespace,
        deployment,
        container,
        None if pods is None else int(pods),
        None if cpu is None else float(cpu),
        None if cpu_pct is None else float(cpu_pct),
        None if mem is None else float(mem),
        None if mem_pct is None else float(mem_pct),
        None if lim_cpu is None else int(lim_cpu),
        None if lim_mem is None else int(lim_mem),
        None if ooms is None else int(ooms),
        None if throttled is None else float(throttled),
    )


def peak_store() -> PeakStore:
    """The configured store: ClickHouse when ``CLICKHOUSE_URL`` is set, else the default database."""
    if getattr(settings, "KUBEDOOR_PEAK_STORE", "orm") == "clickhouse":
        return ClickHouseStore(ch.ClickHouseDoor.default())
    return OrmStore()
