"""Per-pod and per-node daily figures, kept beside the Deployment rows in the same store.

The ORM implementation uses the ``PodPeak`` and ``NodePeak`` models; the ClickHouse one the tables
``kubedoor_pod_peaks`` and ``kubedoor_node_peaks``, created with the daily-peak table (by
``ClickHouseStore.ensure_schema``, so ``manage.py clickhouse_migrate`` makes all three) with the
same 400-day TTL where the server has table TTLs. Which one is used follows the daily-peak store a
collection writes to (:func:`pod_node_store_for`). Contract as for the daily peaks: replacing a day
makes that (cluster, day) exactly the given rows.

The SQL is module-level constants with named parameters, run through the ClickHouse door (or
chdb in the tests); ``NODE_DAY_SQL`` is also the Grafana node panel's query (deploy/grafana/).
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from django.db import transaction

from apps.metrics import clickhouse as ch
from apps.metrics.models import NodePeak, PodPeak

POD_TABLE = "kubedoor_pod_peaks"
NODE_TABLE = "kubedoor_node_peaks"


@dataclasses.dataclass(frozen=True)
class PodPeakRow:
    """One pod's day (``PodPeak``)."""

    cluster: str
    day: datetime.date
    namespace: str
    deployment: str
    pod: str
    window_start: datetime.datetime
    window_end: datetime.datetime
    p95_cpu_cores: float | None
    p95_mem_mib: float | None
    quantile: float
    step_seconds: int
    collected_at: datetime.datetime


@dataclasses.dataclass(frozen=True)
class NodePeakRow:
    """One node's day (``NodePeak``)."""

    cluster: str
    day: datetime.date
    node: str
    window_start: datetime.datetime
    window_end: datetime.datetime
    p95_cpu_cores: float | None
    p95_mem_mib: float | None
    request_cpu_m: int | None
    request_mem_mib: int | None
    allocatable_cpu_m: int | None
    allocatable_mem_mib: int | None
    quantile: float
    step_seconds: int
    collected_at: datetime.datetime


POD_COLUMNS = tuple(field.name for field in dataclasses.fields(PodPeakRow))
NODE_COLUMNS = tuple(field.name for field in dataclasses.fields(NodePeakRow))
_DATETIMES = ("window_start", "window_end", "collected_at")

# ``{ttl}`` is either empty or ``clickhouse.DAILY_PEAKS_TTL_CLAUSE``: a constant, never a value.
POD_PEAKS_CREATE_SQL = """
CREATE TABLE IF NOT EXISTS kubedoor_pod_peaks (
    cluster String,
    day Date,
    namespace String,
    deployment String,
    pod String,
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    p95_cpu_cores Nullable(Float64),
    p95_mem_mib Nullable(Float64),
    quantile Float64,
    step_seconds UInt32,
    collected_at DateTime('UTC')
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (cluster, namespace, deployment, day, pod)
{ttl}
"""

NODE_PEAKS_CREATE_SQL = """
CREATE TABLE IF NOT EXISTS kubedoor_node_peaks (
    cluster String,
    day Date,
    node String,
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    p95_cpu_cores Nullable(Float64),
    p95_mem_mib Nullable(Float64),
    request_cpu_m Nullable(UInt32),
    request_mem_mib Nullable(UInt32),
    allocatable_cpu_m Nullable(UInt32),
    allocatable_mem_mib Nullable(UInt32),
    quantile Float64,
    step_seconds UInt32,
    collected_at DateTime('UTC')
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (cluster, day, node)
{ttl}
"""

POD_PEAKS_INSERT_SQL = "INSERT INTO kubedoor_pod_peaks (" + ", ".join(POD_COLUMNS) + ") VALUES"
NODE_PEAKS_INSERT_SQL = "INSERT INTO kubedoor_node_peaks (" + ", ".join(NODE_COLUMNS) + ") VALUES"

POD_PEAKS_DAY_COUNT_SQL = "SELECT count() FROM kubedoor_pod_peaks WHERE cluster = %(cluster)s AND day = %(day)s"
NODE_PEAKS_DAY_COUNT_SQL = "SELECT count() FROM kubedoor_node_peaks WHERE cluster = %(cluster)s AND day = %(day)s"
POD_PEAKS_DAY_DELETE_SQL = "ALTER TABLE kubedoor_pod_peaks DELETE WHERE cluster = %(cluster)s AND day = %(day)s"
NODE_PEAKS_DAY_DELETE_SQL = "ALTER TABLE kubedoor_node_peaks DELETE WHERE cluster = %(cluster)s AND day = %(day)s"

# One service's pods over a day range (the pod curves).
POD_CURVES_SQL = (
    "SELECT "
    + ", ".join(POD_COLUMNS)
    + """
FROM kubedoor_pod_peaks
WHERE cluster = %(cluster)s AND namespace = %(namespace)s AND deployment = %(deployment)s
  AND day >= %(day_from)s AND day <= %(day_to)s
ORDER BY pod, day
"""
)

# The nodes of the last day of the range that has node figures (the node board).
NODE_DAY_SQL = """
SELECT day, node, p95_cpu_cores, p95_mem_mib, request_cpu_m, request_mem_mib, allocatable_cpu_m, allocatable_mem_mib
FROM kubedoor_node_peaks
WHERE cluster = %(cluster)s
  AND day = (SELECT max(day) FROM kubedoor_node_peaks
             WHERE cluster = %(cluster)s AND day >= %(day_from)s AND day <= %(day_to)s)
ORDER BY node
"""

# The node board's columns, in NODE_DAY_SQL's order.
NodeDayRow = tuple[datetime.date, str, float | None, float | None, int | None, int | None, int | None, int | None]
NODE_DAY_SQL_COLUMNS = (
    "p95_cpu_cores",
    "p95_mem_mib",
    "request_cpu_m",
    "request_mem_mib",
    "allocatable_cpu_m",
    "allocatable_mem_mib",
)


def pod_node_ddl(*, server_version: tuple[int, ...]) -> list[str]:
    """The CREATE TABLE statements for this server (with the daily peaks' TTL where supported)."""
    ttl = ch.DAILY_PEAKS_TTL_CLAUSE if tuple(server_version) >= ch.TTL_MIN_VERSION else ""
    return [POD_PEAKS_CREATE_SQL.format(ttl=ttl), NODE_PEAKS_CREATE_SQL.format(ttl=ttl)]


class PodNodeStore(Protocol):
    name: str

    def pods_replace(self, *, cluster: str, day: datetime.date, rows: Sequence[PodPeakRow]) -> int: ...

    def nodes_replace(self, *, cluster: str, day: datetime.date, rows: Sequence[NodePeakRow]) -> int: ...

    def pod_rows(
        self, *, cluster: str, namespace: str, deployment: str, day_from: datetime.date, day_to: datetime.date
    ) -> list[PodPeakRow]: ...

    def node_day(self, *, cluster: str, day_from: datetime.date, day_to: datetime.date) -> list[NodeDayRow]: ...


def _check_day(*, cluster: str, day: datetime.date, rows: Sequence[PodPeakRow | NodePeakRow]) -> None:
    for row in rows:
        if row.cluster != cluster or row.day != day:
            raise ValueError(f"a {type(row).__name__} of {row.cluster} {row.day} is not of {cluster} {day}")


# --- ORM ----------------------------------------------------------------------------------------


class OrmPodNodeStore:
    """Pod and node figures in the default database."""

    name = "orm"

    def pods_replace(self, *, cluster: str, day: datetime.date, rows: Sequence[PodPeakRow]) -> int:
        _check_day(cluster=cluster, day=day, rows=rows)
        with transaction.atomic():
            PodPeak.objects.filter(cluster=cluster, day=day).delete()
            PodPeak.objects.bulk_create([PodPeak(**dataclasses.asdict(row)) for row in rows], batch_size=2000)
        return len(rows)

    def nodes_replace(self, *, cluster: str, day: datetime.date, rows: Sequence[NodePeakRow]) -> int:
        _check_day(cluster=cluster, day=day, rows=rows)
        with transaction.atomic():
            NodePeak.objects.filter(cluster=cluster, day=day).delete()
            NodePeak.objects.bulk_create([NodePeak(**dataclasses.asdict(row)) for row in rows], batch_size=2000)
        return len(rows)

    def pod_rows(
        self, *, cluster: str, namespace: str, deployment: str, day_from: datetime.date, day_to: datetime.date
    ) -> list[PodPeakRow]:
        qs = PodPeak.objects.filter(
            cluster=cluster, namespace=namespace, deployment=deployment, day__gte=day_from, day__lte=day_to
        ).order_by("pod", "day")
        return [PodPeakRow(**values) for values in qs.values(*POD_COLUMNS)]

    def node_day(self, *, cluster: str, day_from: datetime.date, day_to: datetime.date) -> list[NodeDayRow]:
        in_range = NodePeak.objects.filter(cluster=cluster, day__gte=day_from, day__lte=day_to)
        last = in_range.order_by("-day").values_list("day", flat=True).first()
        if last is None:
            return []
        columns = ("day", "node", *NODE_DAY_SQL_COLUMNS)
        return [tuple(values) for values in in_range.filter(day=last).order_by("node").values_list(*columns)]  # type: ignore[misc]


# --- ClickHouse ---------------------------------------------------------------------------------


class ClickHouseExecutor(Protocol):
    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]: ...

    def insert(self, sql: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> int: ...


class ClickHousePodNodeStore:
    """Pod and node figures in ClickHouse; a day is replaced like the daily peaks' (delete, wait, insert)."""

    name = "clickhouse"

    def __init__(self, executor: ClickHouseExecutor, *, mutation_timeout: float = ch.MUTATION_WAIT_SECONDS) -> None:
        self.executor = executor
        self.mutation_timeout = mutation_timeout

    def _wait_for_mutations(self, table: str) -> None:
        deadline = time.monotonic() + self.mutation_timeout
        delay = 0.01
        while True:
            (pending,) = self.executor.execute(ch.MUTATIONS_PENDING_SQL, {"table": table})[0]
            if int(pending) == 0:
                return
            if time.monotonic() > deadline:
                raise ch.ClickHouseError(
                    f"ClickHouse: the delete of old rows of {table} is still running after {self.mutation_timeout} s"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _replace(
        self,
        *,
        table: str,
        count_sql: str,
        delete_sql: str,
        insert_sql: str,
        columns: Sequence[str],
        cluster: str,
        day: datetime.date,
        rows: Sequence[PodPeakRow | NodePeakRow],
    ) -> int:
        _check_day(cluster=cluster, day=day, rows=rows)
        params = {"cluster": cluster, "day": day}
        (existing,) = self.executor.execute(count_sql, params)[0]
        if int(existing):
            self.executor.execute(delete_sql, params)
            self._wait_for_mutations(table)
        return self.executor.insert(insert_sql, columns, [_ch_values(row) for row in rows])

    def pods_replace(self, *, cluster: str, day: datetime.date, rows: Sequence[PodPeakRow]) -> int:
        return self._replace(
            table=POD_TABLE,
            count_sql=POD_PEAKS_DAY_COUNT_SQL,
            delete_sql=POD_PEAKS_DAY_DELETE_SQL,
            insert_sql=POD_PEAKS_INSERT_SQL,
            columns=POD_COLUMNS,
            cluster=cluster,
            day=day,
            rows=rows,
        )

    def nodes_replace(self, *, cluster: str, day: datetime.date, rows: Sequence[NodePeakRow]) -> int:
        return self._replace(
            table=NODE_TABLE,
            count_sql=NODE_PEAKS_DAY_COUNT_SQL,
            delete_sql=NODE_PEAKS_DAY_DELETE_SQL,
            insert_sql=NODE_PEAKS_INSERT_SQL,
            columns=NODE_COLUMNS,
            cluster=cluster,
            day=day,
            rows=rows,
        )

    def pod_rows(
        self, *, cluster: str, namespace: str, deployment: str, day_from: datetime.date, day_to: datetime.date
    ) -> list[PodPeakRow]:
        params = {
            "cluster": cluster,
            "namespace": namespace,
            "deployment": deployment,
            "day_from": day_from,
            "day_to": day_to,
        }
        return [_pod_from_tuple(values) for values in self.executor.execute(POD_CURVES_SQL, params)]

    def node_day(self, *, cluster: str, day_from: datetime.date, day_to: datetime.date) -> list[NodeDayRow]:
        params = {"cluster": cluster, "day_from": day_from, "day_to": day_to}
        return [_node_day_from_tuple(values) for values in self.executor.execute(NODE_DAY_SQL, params)]


def _utc(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC).replace(microsecond=0)


def _ch_values(row: PodPeakRow | NodePeakRow) -> dict[str, Any]:
    values = dataclasses.asdict(row)
    for key in _DATETIMES:
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


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _pod_from_tuple(values: Sequence[Any]) -> PodPeakRow:
    data = dict(zip(POD_COLUMNS, values, strict=True))
    data["day"] = _as_date(data["day"])
    for key in _DATETIMES:
        data[key] = _as_datetime(data[key])
    for key in ("p95_cpu_cores", "p95_mem_mib", "quantile"):
        data[key] = _float(data[key])
    data["step_seconds"] = int(data["step_seconds"])
    return PodPeakRow(**data)


def _node_day_from_tuple(values: Sequence[Any]) -> NodeDayRow:
    day, node, cpu, mem, req_cpu, req_mem, alloc_cpu, alloc_mem = values
    return (
        _as_date(day),
        str(node),
        _float(cpu),
        _float(mem),
        _int(req_cpu),
        _int(req_mem),
        _int(alloc_cpu),
        _int(alloc_mem),
    )


def pod_node_store_for(store: Any) -> PodNodeStore:
    """The pod and node store beside a daily-peak store: the same ClickHouse executor, or the ORM."""
    if getattr(store, "name", "") == "clickhouse":
        return ClickHousePodNodeStore(store.executor)
    return OrmPodNodeStore()


def pod_node_store() -> PodNodeStore:
    """The configured store (``CLICKHOUSE_URL`` set: ClickHouse, else the default database)."""
    from django.conf import settings

    if getattr(settings, "KUBEDOOR_PEAK_STORE", "orm") == "clickhouse":
        return ClickHousePodNodeStore(ch.ClickHouseDoor.default())
    return OrmPodNodeStore()
