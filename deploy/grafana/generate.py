"""Writes kubedoor-dashboard.json: the Grafana dashboard of the ClickHouse daily-peak archive.

    python deploy/grafana/generate.py            # rewrite the JSON
    python deploy/grafana/generate.py --check    # exit 1 when the JSON is out of date

The panels show what the admin Dashboard shows (totals, top-10 boards, namespace shares, per-service
daily curves, the node board) with the very SQL the application runs (``apps.metrics.dashboard``), its named
parameters replaced by Grafana variables: ``${cluster:sqlstring}``, ``${namespace:sqlstring}``,
``${service:sqlstring}``, and the dashboard's time range as days (``$from``/``$to``, Unix seconds).

The data source is the ClickHouse plugin that talks HTTP (``vertamedia-clickhouse-datasource``, by
Altinity), which also reaches old servers such as ClickHouse 18.16; on import Grafana asks for it
(``DS_CLICKHOUSE``). tests/metrics/test_dashboard_grafana.py runs every panel's SQL on a real server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGET = HERE / "kubedoor-dashboard.json"
sys.path.insert(0, str(HERE.parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubedoor_site.settings")

PLUGIN = "vertamedia-clickhouse-datasource"
DATASOURCE = {"type": PLUGIN, "uid": "${DS_CLICKHOUSE}"}
DAY_FROM = "toDate(toDateTime($from))"
DAY_TO = "toDate(toDateTime($to))"
PARAMETERS = {
    "%(cluster)s": "${cluster:sqlstring}",
    "%(namespace)s": "${namespace:sqlstring}",
    "%(deployment)s": "${service:sqlstring}",
    "%(day_from)s": DAY_FROM,
    "%(day_to)s": DAY_TO,
    # The excluded-days calendar lives in KubeDoor's database, not in ClickHouse: Grafana's panels
    # choose source days over every day (the KubeDoor dashboard leaves the calendar's days out).
    "%(excluded)s": "['']",
}

BOARD_TITLES = {
    "load": ("Top 10 load (P95 cores × pods)", "none", 3),
    "cpu_pct": ("Top 10 P95 CPU % of limit", "percent", 1),
    "memory": ("Top 10 memory (P95 MiB × pods)", "mbytes", 0),
    "mem_pct": ("Top 10 P95 memory % of limit", "percent", 1),
    "pods": ("Top 10 pods", "none", 0),
}


def grafana_sql(sql: str) -> str:
    """The application's SQL with its named parameters turned into Grafana variables."""
    for parameter, variable in PARAMETERS.items():
        sql = sql.replace(parameter, variable)
    if "%(" in sql:
        raise ValueError(f"unmapped parameter in {sql[:80]!r}")
    return sql.strip()


def node_board_sql(node_day_sql: str) -> str:
    """The node board of the admin Dashboard: each node's used and requested CPU and memory against its
    allocatable, most loaded first (the application's ``NODE_DAY_SQL``; Grafana shows 2 decimals)."""
    return grafana_sql(
        f"""
SELECT node,
       p95_cpu_cores AS `P95 CPU used (cores)`,
       request_cpu_m / 1000 AS `CPU requested (cores)`,
       allocatable_cpu_m / 1000 AS `CPU allocatable (cores)`,
       100 * p95_cpu_cores * 1000 / nullIf(allocatable_cpu_m, 0) AS `CPU used %`,
       100 * request_cpu_m / nullIf(allocatable_cpu_m, 0) AS `CPU requested %`,
       p95_mem_mib AS `P95 memory used (MiB)`,
       request_mem_mib AS `memory requested (MiB)`,
       allocatable_mem_mib AS `memory allocatable (MiB)`,
       100 * p95_mem_mib / nullIf(allocatable_mem_mib, 0) AS `memory used %`,
       100 * request_mem_mib / nullIf(allocatable_mem_mib, 0) AS `memory requested %`
FROM ({node_day_sql})
ORDER BY `CPU used %` DESC, node"""
    )


def target(sql: str, *, fmt: str = "table", ref: str = "A") -> dict[str, Any]:
    return {"refId": ref, "datasource": DATASOURCE, "rawQuery": True, "format": fmt, "query": sql}


def build() -> dict[str, Any]:
    import django

    django.setup()
    from apps.metrics import dashboard as d
    from apps.metrics import pod_node_store as pn

    totals = grafana_sql(
        f"""
SELECT namespaces AS `namespaces`, services AS `services`, pods_total AS `pods`,
       req_cpu_m_total / 1000 AS `CPU request (cores)`,
       cpu_cores_total AS `P95 CPU used (cores)`,
       lim_cpu_m_total / 1000 AS `CPU limit (cores)`,
       req_mem_mib_total / 1024 AS `memory request (GiB)`,
       mem_mib_total / 1024 AS `P95 memory used (GiB)`,
       lim_mem_mib_total / 1024 AS `memory limit (GiB)`
FROM ({d.DASHBOARD_TOTALS_SQL})"""
    )
    shares = grafana_sql(
        f"""
SELECT namespace, services, pods_total AS pods,
       round(100 * services / t_services, 2) AS `services %`,
       round(100 * pods_total / t_pods, 2) AS `pods %`,
       req_cpu_m_total / 1000 AS `CPU request (cores)`,
       round(100 * req_cpu_m_total / t_req_cpu_m, 2) AS `CPU request %`,
       cpu_cores_total AS `P95 CPU used (cores)`,
       round(100 * cpu_cores_total / t_cpu_cores, 2) AS `P95 CPU used %`,
       lim_cpu_m_total / 1000 AS `CPU limit (cores)`,
       round(100 * lim_cpu_m_total / t_lim_cpu_m, 2) AS `CPU limit %`,
       req_mem_mib_total / 1024 AS `memory request (GiB)`,
       round(100 * req_mem_mib_total / t_req_mem_mib, 2) AS `memory request %`,
       mem_mib_total / 1024 AS `P95 memory used (GiB)`,
       round(100 * mem_mib_total / t_mem_mib, 2) AS `P95 memory used %`,
       lim_mem_mib_total / 1024 AS `memory limit (GiB)`,
       round(100 * lim_mem_mib_total / t_lim_mem_mib, 2) AS `memory limit %`
FROM ({d.DASHBOARD_NAMESPACES_SQL}) AS per_namespace
CROSS JOIN (
    SELECT services AS t_services, pods_total AS t_pods, req_cpu_m_total AS t_req_cpu_m,
           cpu_cores_total AS t_cpu_cores, lim_cpu_m_total AS t_lim_cpu_m, req_mem_mib_total AS t_req_mem_mib,
           mem_mib_total AS t_mem_mib, lim_mem_mib_total AS t_lim_mem_mib
    FROM ({d.DASHBOARD_TOTALS_SQL})
) AS cluster_totals
ORDER BY namespace"""
    )
    cpu_by_namespace = grafana_sql(
        f"SELECT namespace, cpu_cores_total AS `P95 CPU used (cores)`\nFROM ({d.DASHBOARD_NAMESPACES_SQL})"
    )

    def curves(columns: str) -> str:
        return grafana_sql(
            f"SELECT toUInt64(toDateTime(day)) * 1000 AS t, {columns}\nFROM ({d.DASHBOARD_CURVES_SQL})\nORDER BY t"
        )

    panels: list[dict[str, Any]] = []
    next_id = iter(range(1, 100))

    def add(panel: dict[str, Any], x: int, y: int, w: int, h: int) -> None:
        panel.update(id=next(next_id), datasource=DATASOURCE, gridPos={"x": x, "y": y, "w": w, "h": h})
        panels.append(panel)

    def row(title: str, y: int) -> None:
        panels.append(
            {
                "id": next(next_id),
                "type": "row",
                "title": title,
                "collapsed": False,
                "panels": [],
                "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
            }
        )

    row("Totals (each service on its source day: its busiest day in the range)", 0)
    add(
        {
            "type": "stat",
            "title": "Cluster totals",
            "targets": [target(totals)],
            "options": {
                "reduceOptions": {"values": False, "calcs": ["lastNotNull"], "fields": ""},
                "textMode": "value_and_name",
                "colorMode": "none",
                "graphMode": "none",
            },
            "fieldConfig": {"defaults": {"decimals": 2}, "overrides": []},
        },
        0,
        1,
        24,
        5,
    )
    row("Top 10", 6)
    for index, board in enumerate(d.BOARDS):
        title, unit, decimals = BOARD_TITLES[board]
        sql = grafana_sql(
            "SELECT concat(namespace, '/', deployment, ' (', toString(source_day), ')') AS service, value\n"
            f"FROM ({d.DASHBOARD_BOARD_SQL[board]})\nORDER BY value DESC, namespace, deployment"
        )
        add(
            {
                "type": "bargauge",
                "title": title,
                "targets": [target(sql)],
                "options": {
                    "orientation": "horizontal",
                    "displayMode": "basic",
                    "showUnfilled": True,
                    "reduceOptions": {"values": True, "calcs": [], "fields": "/^value$/"},
                },
                "fieldConfig": {
                    "defaults": {"unit": unit, "decimals": decimals, "displayName": "${__data.fields.service}"},
                    "overrides": [],
                },
            },
            (index % 3) * 8,
            7 + (index // 3) * 9,
            8,
            9,
        )
    row("Namespaces", 25)
    add(
        {
            "type": "table",
            "title": "Namespaces and their share of the cluster",
            "targets": [target(shares)],
            "options": {"showHeader": True, "sortBy": [{"displayName": "P95 CPU used (cores)", "desc": True}]},
            "fieldConfig": {"defaults": {"decimals": 2}, "overrides": []},
        },
        0,
        26,
        16,
        10,
    )
    add(
        {
            "type": "piechart",
            "title": "P95 CPU used by namespace",
            "targets": [target(cpu_by_namespace)],
            "options": {
                "reduceOptions": {"values": True, "calcs": [], "fields": "/P95 CPU used/"},
                "pieType": "donut",
                "legend": {"displayMode": "table", "placement": "right", "values": ["percent"]},
            },
            "fieldConfig": {"defaults": {"displayName": "${__data.fields.namespace}"}, "overrides": []},
        },
        16,
        26,
        8,
        10,
    )
    row("Daily curves of $namespace/$service (per pod)", 36)
    add(
        {
            "type": "timeseries",
            "title": "CPU per pod (cores): P95 against request and limit",
            "targets": [
                target(
                    curves("d_cpu_cores AS `P95 CPU`, d_req_cpu_m / 1000 AS `request`, d_lim_cpu_m / 1000 AS `limit`"),
                    fmt="time_series",
                )
            ],
            "fieldConfig": {
                "defaults": {"unit": "none", "decimals": 3, "custom": {"showPoints": "always"}},
                "overrides": [],
            },
        },
        0,
        37,
        12,
        9,
    )
    add(
        {
            "type": "timeseries",
            "title": "Memory per pod (MiB): P95 against request and limit",
            "targets": [
                target(
                    curves("d_mem_mib AS `P95 memory`, d_req_mem_mib AS `request`, d_lim_mem_mib AS `limit`"),
                    fmt="time_series",
                )
            ],
            "fieldConfig": {"defaults": {"unit": "mbytes", "custom": {"showPoints": "always"}}, "overrides": []},
        },
        12,
        37,
        12,
        9,
    )
    add(
        {
            "type": "timeseries",
            "title": "Pods",
            "targets": [target(curves("d_pods AS `pods`"), fmt="time_series")],
            "fieldConfig": {
                "defaults": {"unit": "none", "decimals": 0, "custom": {"showPoints": "always"}},
                "overrides": [],
            },
        },
        0,
        46,
        24,
        7,
    )

    row("Nodes (the range's last day with node figures)", 53)
    add(
        {
            "type": "table",
            "title": "Nodes: requested vs used vs allocatable",
            "targets": [target(node_board_sql(pn.NODE_DAY_SQL))],
            "options": {"showHeader": True, "sortBy": [{"displayName": "CPU used %", "desc": True}]},
            "fieldConfig": {"defaults": {"decimals": 2}, "overrides": []},
        },
        0,
        54,
        24,
        10,
    )

    def variable(name: str, label: str, sql: str) -> dict[str, Any]:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DATASOURCE,
            "query": sql,
            "definition": sql,
            "refresh": 2,
            "sort": 1,
            "multi": False,
            "includeAll": False,
            "current": {},
            "options": [],
        }

    return {
        "__inputs": [
            {
                "name": "DS_CLICKHOUSE",
                "label": "ClickHouse",
                "description": "the ClickHouse holding KubeDoor's daily peaks (CLICKHOUSE_URL)",
                "type": "datasource",
                "pluginId": PLUGIN,
                "pluginName": "Altinity plugin for ClickHouse",
            }
        ],
        "__requires": [
            {"type": "datasource", "id": PLUGIN, "name": "Altinity plugin for ClickHouse", "version": "3.0.0"}
        ],
        "title": "KubeDoor — daily peaks",
        "uid": "kubedoor-daily-peaks",
        "description": "Totals, top-10 services, namespace shares, per-service daily curves from KubeDoor's archive.",
        "tags": ["kubedoor", "kubernetes", "capacity"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-30d", "to": "now"},
        "templating": {
            "list": [
                variable("cluster", "cluster", "SELECT DISTINCT cluster FROM kubedoor_daily_peaks ORDER BY cluster"),
                variable(
                    "namespace",
                    "namespace",
                    "SELECT DISTINCT namespace FROM kubedoor_daily_peaks WHERE cluster = ${cluster:sqlstring} "
                    "ORDER BY namespace",
                ),
                variable(
                    "service",
                    "microservice",
                    "SELECT DISTINCT deployment FROM kubedoor_daily_peaks WHERE cluster = ${cluster:sqlstring} "
                    "AND namespace = ${namespace:sqlstring} ORDER BY deployment",
                ),
            ]
        },
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the committed JSON differs")
    args = parser.parse_args()
    text = render()
    if args.check:
        if TARGET.read_text() != text:
            sys.stderr.write(f"{TARGET} is out of date: run python deploy/grafana/generate.py\n")
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
