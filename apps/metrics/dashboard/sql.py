"""The dashboard's ClickHouse SQL and the backend that runs it through the ClickHouse door.

Every statement is a module-level constant with named parameters (``%(cluster)s`` …), built at
import time from the blocks below; values are never formatted into SQL. The same SQL runs on
Debian's ClickHouse 18.16 and on a current ClickHouse (tests run both). ``DASHBOARD_SUMMARY_SQL``
is what the API runs: one pass over the archive (the per-service source days are computed once),
then per-namespace sums, the cluster totals over those, and each board's ten biggest from per-namespace
candidate lists (``groupArrayIf`` → ``arraySort`` → ``arraySlice``). The smaller constants
(``DASHBOARD_TOTALS_SQL``, ``DASHBOARD_NAMESPACES_SQL``, ``DASHBOARD_BOARD_SQL``) give the same figures
one panel at a time; the Grafana dashboard (deploy/grafana/) is generated from them.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection
from typing import Any

from apps.metrics.dashboard.results import (
    BOARDS,
    TOP_N,
    DataSpan,
    RawCurve,
    RawSummary,
    RawTotals,
    RawWasteSource,
    RawWasteTrend,
    as_date,
)

# Inner columns carry a ``d_`` prefix: ClickHouse substitutes aliases everywhere, so an outer alias
# named like an inner column would refer to itself.

_SERVICE_DAYS_SQL = """
SELECT namespace, deployment, day,
       max(pod_count) AS d_pods,
       sum(p95_cpu_cores) AS d_cpu_cores,
       sum(p95_mem_mib) AS d_mem_mib,
       sum(request_cpu_m) AS d_req_cpu_m,
       sum(request_mem_mib) AS d_req_mem_mib,
       if(count() = count(limit_cpu_m), sum(limit_cpu_m), NULL) AS d_lim_cpu_m,
       if(count() = count(limit_mem_mib), sum(limit_mem_mib), NULL) AS d_lim_mem_mib
FROM kubedoor_daily_peaks
WHERE cluster = %(cluster)s AND day >= %(day_from)s AND day <= %(day_to)s
GROUP BY namespace, deployment, day
"""

# The days a source day may be: every service-day but those of the cluster's excluded-days calendar.
# ``%(excluded)s`` is an array of ISO dates that always holds "" (an empty array literal has no element
# type on 18.16).
_CANDIDATE_DAYS_SQL = _SERVICE_DAYS_SQL.replace("\nGROUP BY", "\n  AND NOT has(%(excluded)s, toString(day))\nGROUP BY")
assert _CANDIDATE_DAYS_SQL != _SERVICE_DAYS_SQL

# One row per service: its source day's figures. argMax keeps the whole tuple of the best day (a
# Nullable argument alone would make argMax skip the days where it is null).
_SOURCES_SQL = (
    """
SELECT namespace, deployment,
       argMax(tuple(day, d_pods, d_cpu_cores, d_mem_mib, d_req_cpu_m, d_req_mem_mib, d_lim_cpu_m, d_lim_mem_mib),
              tuple(ifNull(d_cpu_cores * d_pods, -1.), day)) AS src,
       tupleElement(src, 1) AS source_day,
       tupleElement(src, 2) AS pods,
       tupleElement(src, 3) AS cpu_cores,
       tupleElement(src, 4) AS mem_mib,
       tupleElement(src, 5) AS req_cpu_m,
       tupleElement(src, 6) AS req_mem_mib,
       nullIf(tupleElement(src, 7), 0) AS lim_cpu_m,
       nullIf(tupleElement(src, 8), 0) AS lim_mem_mib
FROM ("""
    + _CANDIDATE_DAYS_SQL
    + """)
GROUP BY namespace, deployment
"""
)

_AGGREGATES = """
       count() AS services,
       sum(ifNull(pods, 0)) AS pods_total,
       sum(ifNull(req_cpu_m * pods, 0)) AS req_cpu_m_total,
       sum(ifNull(cpu_cores * pods, 0.)) AS cpu_cores_total,
       sum(ifNull(lim_cpu_m * pods, 0)) AS lim_cpu_m_total,
       sum(ifNull(req_mem_mib * pods, 0)) AS req_mem_mib_total,
       sum(ifNull(mem_mib * pods, 0.)) AS mem_mib_total,
       sum(ifNull(lim_mem_mib * pods, 0)) AS lim_mem_mib_total
"""

DASHBOARD_TOTALS_SQL = "SELECT uniqExact(namespace) AS namespaces," + _AGGREGATES + "FROM (" + _SOURCES_SQL + ")"

DASHBOARD_NAMESPACES_SQL = (
    "SELECT namespace," + _AGGREGATES + "FROM (" + _SOURCES_SQL + ")\nGROUP BY namespace\nORDER BY namespace"
)


def _board_sql(board: str, value: str, known: str) -> str:
    # ``board`` and the expressions are constants of this module, never input.
    return (
        f"SELECT '{board}' AS board, namespace, deployment, source_day, toFloat64({value}) AS value\n"
        f"FROM ({_SOURCES_SQL})\nWHERE {known}\nORDER BY value DESC, namespace, deployment\nLIMIT {TOP_N}"
    )


_BOARD_VALUES = {
    # board: (value, when the value is known) — over the columns of _SOURCES_SQL
    "load": ("ifNull(cpu_cores * pods, 0.)", "isNotNull(cpu_cores) AND isNotNull(pods)"),
    "cpu_pct": ("ifNull(cpu_cores * 100000. / lim_cpu_m, 0.)", "isNotNull(cpu_cores) AND isNotNull(lim_cpu_m)"),
    "memory": ("ifNull(mem_mib * pods, 0.)", "isNotNull(mem_mib) AND isNotNull(pods)"),
    "mem_pct": ("ifNull(mem_mib * 100. / lim_mem_mib, 0.)", "isNotNull(mem_mib) AND isNotNull(lim_mem_mib)"),
    "pods": ("ifNull(pods, 0)", "isNotNull(pods)"),
}
assert tuple(_BOARD_VALUES) == BOARDS

# One statement per board (a Grafana panel each) …
DASHBOARD_BOARD_SQL = {board: _board_sql(board, value, known) for board, (value, known) in _BOARD_VALUES.items()}
# … and all five in one statement.
DASHBOARD_TOP_SQL = "\nUNION ALL\n".join("SELECT * FROM (" + sql + ")" for sql in DASHBOARD_BOARD_SQL.values())

DASHBOARD_CURVES_SQL = """
SELECT day,
       max(pod_count) AS d_pods,
       sum(p95_cpu_cores) AS d_cpu_cores,
       sum(request_cpu_m) AS d_req_cpu_m,
       if(count() = count(limit_cpu_m), sum(limit_cpu_m), NULL) AS d_lim_cpu_m,
       sum(p95_mem_mib) AS d_mem_mib,
       sum(request_mem_mib) AS d_req_mem_mib,
       if(count() = count(limit_mem_mib), sum(limit_mem_mib), NULL) AS d_lim_mem_mib
FROM kubedoor_daily_peaks
WHERE cluster = %(cluster)s AND namespace = %(namespace)s AND deployment = %(deployment)s
  AND day >= %(day_from)s AND day <= %(day_to)s
GROUP BY day
ORDER BY day
"""

DASHBOARD_SERVICE_ROWS_SQL = """
SELECT count() FROM kubedoor_daily_peaks
WHERE cluster = %(cluster)s AND namespace = %(namespace)s AND deployment = %(deployment)s
"""

DASHBOARD_DATA_SPAN_SQL = """
SELECT count(), min(day), max(day) FROM kubedoor_daily_peaks WHERE cluster = %(cluster)s
"""


# Biggest first, then namespace, then deployment (entries are (value, namespace, deployment, day)).
_TOP = "arraySlice(arraySort(e -> tuple(-e.1, e.2, e.3), {array}), 1, " + str(TOP_N) + ")"

DASHBOARD_SUMMARY_SQL = (
    """
SELECT count() AS namespaces,
       sum(services), sum(pods_total), sum(req_cpu_m_total), sum(cpu_cores_total), sum(lim_cpu_m_total),
       sum(req_mem_mib_total), sum(mem_mib_total), sum(lim_mem_mib_total),
       arraySort(r -> r.1, groupArray(tuple(namespace, services, pods_total, req_cpu_m_total, cpu_cores_total,
                                            lim_cpu_m_total, req_mem_mib_total, mem_mib_total, lim_mem_mib_total))),
"""
    + ",\n".join(f"       {_TOP.format(array=f'groupArrayArray(top_{board})')}" for board in BOARDS)
    + """
FROM (
    SELECT namespace,"""
    + _AGGREGATES
    + ",\n"
    + ",\n".join(
        "       "
        + _TOP.format(array=f"groupArrayIf(tuple(toFloat64({value}), namespace, deployment, source_day), {known})")
        + f" AS top_{board}"
        for board, (value, known) in _BOARD_VALUES.items()
    )
    + "\n    FROM ("
    + _SOURCES_SQL
    + """)
    GROUP BY namespace
)
"""
)


# Waste (issue 11 §5). ``%(excluded)s`` as in ``_CANDIDATE_DAYS_SQL``: those days are never a source day.
WASTE_SOURCES_SQL = """
SELECT namespace, deployment,
       argMax(tuple(day, d_pods, d_cpu_cores, d_req_cpu_m, d_mem_mib, d_req_mem_mib),
              tuple(ifNull(d_cpu_cores * d_pods, -1.), day)) AS src,
       tupleElement(src, 1), tupleElement(src, 2), tupleElement(src, 3),
       tupleElement(src, 4), tupleElement(src, 5), tupleElement(src, 6)
FROM (
    SELECT namespace, deployment, day,
           max(pod_count) AS d_pods,
           sum(p95_cpu_cores) AS d_cpu_cores,
           sum(request_cpu_m) AS d_req_cpu_m,
           sum(p95_mem_mib) AS d_mem_mib,
           sum(request_mem_mib) AS d_req_mem_mib
    FROM kubedoor_daily_peaks
    WHERE cluster = %(cluster)s AND day >= %(day_from)s AND day <= %(day_to)s
      AND NOT has(%(excluded)s, toString(day))
    GROUP BY namespace, deployment, day
)
GROUP BY namespace, deployment
ORDER BY namespace, deployment
"""

WASTE_TREND_SQL = (
    """
SELECT day,
       sum(ifNull(greatest(d_req_cpu_m * 0.001 - d_cpu_cores, 0.) * d_pods, 0.)) AS cpu_waste_cores,
       sum(ifNull(greatest(toFloat64(d_req_mem_mib) - d_mem_mib, 0.) * d_pods, 0.)) AS mem_waste_mib
FROM ("""
    + _SERVICE_DAYS_SQL
    + """)
GROUP BY day
ORDER BY day
"""
)


def _dates(days: Collection[datetime.date]) -> list[str]:
    """The ``%(excluded)s`` parameter: ISO dates, always with "" so the array has a type."""
    return ["", *sorted(day.isoformat() for day in days)]


# A scoped user's namespaces only (issue 13 §2): the same statements with one more condition, so the
# unscoped statements (and their tests) stay as they are. ``%(namespaces)s`` is never empty ('' first).
_CLUSTER_DAYS = "WHERE cluster = %(cluster)s AND day >= %(day_from)s AND day <= %(day_to)s"
_CLUSTER_DAYS_SCOPED = _CLUSTER_DAYS + " AND has(%(namespaces)s, namespace)"


def _scoped(sql: str) -> str:
    assert _CLUSTER_DAYS in sql
    return sql.replace(_CLUSTER_DAYS, _CLUSTER_DAYS_SCOPED)


def _namespaces_param(namespaces: Collection[str]) -> list[str]:
    return ["", *sorted(namespaces)]


class ClickHouseDashboard:
    """The aggregates in ClickHouse, through the door (or any executor with the same ``execute``)."""

    name = "clickhouse"

    def __init__(self, executor: Any) -> None:
        self.executor = executor

    def _range_execute(
        self,
        sql: str,
        *,
        cluster: str,
        day_from: datetime.date,
        day_to: datetime.date,
        excluded: Collection[datetime.date] | None = None,
        only_namespaces: Collection[str] | None = None,
    ) -> Any:
        """Run a statement over a cluster's day range: with ``%(excluded)s`` when ``excluded`` is given, and
        narrowed to ``only_namespaces`` (a scoped user's) when they are given."""
        params: dict[str, Any] = {"cluster": cluster, "day_from": day_from, "day_to": day_to}
        if excluded is not None:
            params["excluded"] = _dates(excluded)
        if only_namespaces is not None:
            sql, params["namespaces"] = _scoped(sql), _namespaces_param(only_namespaces)
        return self.executor.execute(sql, params)

    def raw_summary(
        self,
        *,
        cluster: str,
        day_from: datetime.date,
        day_to: datetime.date,
        excluded: Collection[datetime.date] = (),
        only_namespaces: Collection[str] | None = None,
    ) -> RawSummary:
        (row,) = self._range_execute(
            DASHBOARD_SUMMARY_SQL,
            cluster=cluster,
            day_from=day_from,
            day_to=day_to,
            excluded=excluded,
            only_namespaces=only_namespaces,
        )
        namespaces, *totals = row[:9]
        namespace_rows: list[tuple[str, RawTotals]] = [(entry[0], list(entry[1:])) for entry in row[9]]
        top = [
            (board, namespace, deployment, as_date(day), value)
            for board, entries in zip(BOARDS, row[10:], strict=True)
            for value, namespace, deployment, day in entries
        ]
        return RawSummary(namespaces=int(namespaces), totals=totals, namespace_rows=namespace_rows, top=top)

    def raw_curves(
        self, *, cluster: str, namespace: str, deployment: str, day_from: datetime.date, day_to: datetime.date
    ) -> list[RawCurve]:
        params = {
            "cluster": cluster,
            "namespace": namespace,
            "deployment": deployment,
            "day_from": day_from,
            "day_to": day_to,
        }
        return self.executor.execute(DASHBOARD_CURVES_SQL, params)

    def raw_waste_sources(
        self,
        *,
        cluster: str,
        day_from: datetime.date,
        day_to: datetime.date,
        excluded: Collection[datetime.date],
        only_namespaces: Collection[str] | None = None,
    ) -> list[RawWasteSource]:
        rows = self._range_execute(
            WASTE_SOURCES_SQL,
            cluster=cluster,
            day_from=day_from,
            day_to=day_to,
            excluded=excluded,
            only_namespaces=only_namespaces,
        )
        return [(ns, dep, *rest) for ns, dep, _src, *rest in rows]

    def raw_waste_trend(
        self,
        *,
        cluster: str,
        day_from: datetime.date,
        day_to: datetime.date,
        only_namespaces: Collection[str] | None = None,
    ) -> list[RawWasteTrend]:
        return self._range_execute(
            WASTE_TREND_SQL, cluster=cluster, day_from=day_from, day_to=day_to, only_namespaces=only_namespaces
        )

    def service_row_count(self, *, cluster: str, namespace: str, deployment: str) -> int:
        params = {"cluster": cluster, "namespace": namespace, "deployment": deployment}
        return int(self.executor.execute(DASHBOARD_SERVICE_ROWS_SQL, params)[0][0])

    def data_span(self, *, cluster: str) -> DataSpan:
        rows, first, last = self.executor.execute(DASHBOARD_DATA_SPAN_SQL, {"cluster": cluster})[0]
        if not int(rows):
            return DataSpan(rows=0, first_day=None, last_day=None)
        return DataSpan(rows=int(rows), first_day=as_date(first), last_day=as_date(last))
