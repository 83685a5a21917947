"""The one door to ClickHouse: django-clickhouse-backend's connection and the SQL the project runs.

Every statement is a module-level constant with named parameters (``%(name)s``); values are never
formatted into SQL. The SQL must run on Debian's ClickHouse 18.16 (no DateTime64, no
LowCardinality, no TTL, no FINAL on plain MergeTree) and on a current ClickHouse alike, so it
sticks to plain types, ``Nullable``, ``MergeTree`` and ``ALTER TABLE … DELETE``; the 400-day TTL is
added only when the server supports it (19.6 and later).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from clickhouse_backend.backend.base import DatabaseWrapper
from clickhouse_driver import errors as driver_errors
from django.db import connections

from apps.metrics.clickhouse_url import clickhouse_database

logger = logging.getLogger(__name__)

MUTATION_WAIT_SECONDS = 60.0
TTL_MIN_VERSION = (19, 6)

PEAKS_TABLE = "kubedoor_daily_peaks"

DAILY_PEAKS_COLUMNS = (
    "cluster",
    "day",
    "namespace",
    "deployment",
    "container",
    "window_start",
    "window_end",
    "pod_count",
    "p95_cpu_cores",
    "p95_cpu_pct",
    "p95_mem_mib",
    "p95_mem_pct",
    "request_cpu_m",
    "request_mem_mib",
    "limit_cpu_m",
    "limit_mem_mib",
    "quantile",
    "aggregation",
    "step_seconds",
    "collected_at",
    "oom_kills",
    "throttled_pct",
)

# Partitioned by month, ordered for the per-service lookups of the refresh and the dashboard.
# ``{ttl}`` is either empty or the TTL clause below: a constant, never a value.
DAILY_PEAKS_CREATE_SQL = """
CREATE TABLE IF NOT EXISTS kubedoor_daily_peaks (
    cluster String,
    day Date,
    namespace String,
    deployment String,
    container String,
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    pod_count Nullable(UInt32),
    p95_cpu_cores Nullable(Float64),
    p95_cpu_pct Nullable(Float64),
    p95_mem_mib Nullable(Float64),
    p95_mem_pct Nullable(Float64),
    request_cpu_m Nullable(UInt32),
    request_mem_mib Nullable(UInt32),
    limit_cpu_m Nullable(UInt32),
    limit_mem_mib Nullable(UInt32),
    quantile Float64,
    aggregation String,
    step_seconds UInt32,
    collected_at DateTime('UTC'),
    oom_kills Nullable(UInt32),
    throttled_pct Nullable(Float64)
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (cluster, namespace, deployment, day, container)
{ttl}
"""
DAILY_PEAKS_TTL_CLAUSE = "TTL day + toIntervalDay(400)"

DAILY_PEAKS_INSERT_SQL = "INSERT INTO kubedoor_daily_peaks (" + ", ".join(DAILY_PEAKS_COLUMNS) + ") VALUES"

DAILY_PEAKS_DAY_COUNT_SQL = """
SELECT count() FROM kubedoor_daily_peaks WHERE cluster = %(cluster)s AND day = %(day)s
"""

DAILY_PEAKS_DAY_DELETE_SQL = """
ALTER TABLE kubedoor_daily_peaks DELETE WHERE cluster = %(cluster)s AND day = %(day)s
"""

MUTATIONS_PENDING_SQL = """
SELECT count() FROM system.mutations
WHERE database = currentDatabase() AND table = %(table)s AND is_done = 0
"""

# Optional filters are passed as '' (no filter) so the statement stays one constant.
DAILY_PEAKS_SELECT_SQL = (
    "SELECT "
    + ", ".join(DAILY_PEAKS_COLUMNS)
    + """
FROM kubedoor_daily_peaks
WHERE cluster = %(cluster)s
  AND day >= %(day_from)s AND day <= %(day_to)s
  AND (%(namespace)s = '' OR namespace = %(namespace)s)
  AND (%(deployment)s = '' OR deployment = %(deployment)s)
ORDER BY day, namespace, deployment, container
LIMIT %(limit)s OFFSET %(offset)s
"""
)

DAILY_PEAKS_SELECT_COUNT_SQL = """
SELECT count()
FROM kubedoor_daily_peaks
WHERE cluster = %(cluster)s
  AND day >= %(day_from)s AND day <= %(day_to)s
  AND (%(namespace)s = '' OR namespace = %(namespace)s)
  AND (%(deployment)s = '' OR deployment = %(deployment)s)
"""

# The refresh's read: only what §5.4 needs, no timestamps.
DAILY_PEAKS_STATS_SQL = """
SELECT day, namespace, deployment, container, pod_count, p95_cpu_cores, p95_cpu_pct, p95_mem_mib, p95_mem_pct,
       limit_cpu_m, limit_mem_mib, oom_kills, throttled_pct
FROM kubedoor_daily_peaks
WHERE cluster = %(cluster)s AND day >= %(day_from)s AND day <= %(day_to)s
ORDER BY day, namespace, deployment, container
"""

DAILY_PEAKS_DAYS_SQL = """
SELECT day, count() FROM kubedoor_daily_peaks WHERE cluster = %(cluster)s GROUP BY day ORDER BY day
"""

SERVER_VERSION_SQL = "SELECT version()"

# Columns added after the table's first release, each with the ALTER that adds it to an older table
# (``ensure_schema`` reads the table's columns first: 18.16 has no ``ADD COLUMN IF NOT EXISTS``).
DAILY_PEAKS_TABLE_COLUMNS_SQL = """
SELECT name FROM system.columns WHERE database = currentDatabase() AND table = %(table)s
"""
DAILY_PEAKS_ADDED_COLUMNS = {
    "oom_kills": "ALTER TABLE kubedoor_daily_peaks ADD COLUMN oom_kills Nullable(UInt32)",
    "throttled_pct": "ALTER TABLE kubedoor_daily_peaks ADD COLUMN throttled_pct Nullable(Float64)",
}

# KubeDoor 0.2's tables, read by the import command. 0.2 wrote -1 for "not set" and never
# deduplicated its control table, so the latest row per Deployment (by ``update``) wins.
KUBEDOOR_RES_CONTROL_SQL = """
SELECT namespace, deployment,
       argMax(pod_count_init, update), argMax(pod_count, update), argMax(pod_count_manual, update),
       argMax(pod_count_ai, update), argMax(p95_pod_cpu_pct, update), argMax(p95_pod_mem_pct, update),
       argMax(request_cpu_m, update), argMax(request_mem_mb, update),
       argMax(limit_cpu_m, update), argMax(limit_mem_mb, update)
FROM k8s_res_control
WHERE env IN (%(env)s, '')
GROUP BY namespace, deployment
ORDER BY namespace, deployment
"""
KUBEDOOR_RESOURCES_SQL = """
SELECT toDate(date) AS day, namespace, deployment,
       max(pod_count), max(p95_pod_load), max(p95_pod_cpu_pct), max(p95_pod_wss_mb), max(p95_pod_wss_pct),
       max(request_pod_cpu_m), max(request_pod_mem_mb), max(limit_pod_cpu_m), max(limit_pod_mem_mb), max(date)
FROM k8s_resources
WHERE env IN (%(env)s, '')
GROUP BY day, namespace, deployment
ORDER BY day, namespace, deployment
"""
# KubeDoor 1.x's per-cluster settings (``k8s_agent_status``; 1.3 added the last two columns): which
# columns this server has, then the row of one env. The column list is read first so an older 1.x
# table (or a 0.2 database, which has none) is told apart from a query error.
KUBEDOOR_AGENT_STATUS_COLUMNS_SQL = """
SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'k8s_agent_status'
"""
KUBEDOOR_AGENT_STATUS_SQL = """
SELECT {columns} FROM k8s_agent_status WHERE env = %(env)s LIMIT 1
"""


class ClickHouseError(Exception):
    """ClickHouse could not be reached or refused a statement; the message says which."""


def clickhouse_settings(url: str) -> dict[str, Any]:
    """The Django database settings for a ClickHouse URL (see ``clickhouse_url``)."""
    try:
        return clickhouse_database(url)
    except ValueError as exc:
        raise ClickHouseError(str(exc)) from exc


class ClickHouseDoor:
    """Runs the constants above through a django-clickhouse-backend connection.

    ``ClickHouseDoor.default()`` uses the ``clickhouse`` database alias (``CLICKHOUSE_URL``);
    ``from_url`` makes a separate connection (the import command, and the tests' scratch databases,
    which never go through Django's test-database setup).
    """

    def __init__(self, connection: Any, *, owned: bool = False) -> None:
        self._connection = connection
        self._owned = owned

    @classmethod
    def default(cls) -> ClickHouseDoor:
        return cls(connections["clickhouse"])

    @classmethod
    def from_url(cls, url: str) -> ClickHouseDoor:
        parts = urlsplit(url)
        alias = f"clickhouse-{parts.hostname}-{parts.port}-{parts.path.lstrip('/')}"
        return cls(DatabaseWrapper(clickhouse_settings(url), alias=alias), owned=True)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
        try:
            with self._connection.cursor() as cursor:
                cursor.execute(sql, params or None)
                return list(cursor.fetchall()) if cursor.description else []
        except (driver_errors.Error, OSError, EOFError) as exc:
            raise ClickHouseError(f"ClickHouse: {_first_line(exc)}") from exc
        except Exception as exc:  # django wraps driver errors in its own DatabaseError classes
            if exc.__class__.__module__.startswith(("django.db", "clickhouse")):
                raise ClickHouseError(f"ClickHouse: {_first_line(exc)}") from exc
            raise

    def insert(self, sql: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> int:
        if not rows:
            return 0
        try:
            with self._connection.cursor() as cursor:
                cursor.executemany(sql, [tuple(row[col] for col in columns) for row in rows])
        except (driver_errors.Error, OSError, EOFError) as exc:
            raise ClickHouseError(f"ClickHouse insert: {_first_line(exc)}") from exc
        except Exception as exc:
            if exc.__class__.__module__.startswith(("django.db", "clickhouse")):
                raise ClickHouseError(f"ClickHouse insert: {_first_line(exc)}") from exc
            raise
        return len(rows)

    def server_version(self) -> tuple[int, ...]:
        (version,) = self.execute(SERVER_VERSION_SQL)[0]
        return tuple(int(part) for part in str(version).split(".")[:2])

    def close(self) -> None:
        if self._owned:
            self._connection.close()


def _first_line(exc: BaseException) -> str:
    """The code and the server's message (clickhouse-driver puts them on two lines), without the stack."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return exc.__class__.__name__
    return " ".join(lines[:2])[:500]


def daily_peaks_ddl(*, server_version: tuple[int, ...]) -> str:
    """The CREATE TABLE statement for this server (with the TTL where supported)."""
    ttl = DAILY_PEAKS_TTL_CLAUSE if tuple(server_version) >= TTL_MIN_VERSION else ""
    return DAILY_PEAKS_CREATE_SQL.format(ttl=ttl)
