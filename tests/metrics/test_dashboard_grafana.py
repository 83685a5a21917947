"""deploy/grafana/kubedoor-dashboard.json: every panel's and variable's SQL runs on the real ClickHouse
18.16 server (and on chdb) against the schema the project's DDL creates, and gives the API's figures."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from apps.metrics.clickhouse import ClickHouseDoor
from apps.metrics.store import ClickHouseStore
from tests.metrics.test_dashboard import EXPECTED_TOTALS, SCENARIO, load

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parents[2]
DASHBOARD_JSON = REPO / "deploy/grafana/kubedoor-dashboard.json"
# 2026-03-01 00:00 and 2026-03-03 23:59 UTC, as Grafana's $from/$to (Unix seconds)
FROM, TO = 1772323200, 1772582399
VARIABLES = {"cluster": "prod", "namespace": "shop", "service": "cart"}


def substitute(sql: str) -> str:
    """What Grafana sends: ``${name:sqlstring}`` quoted with '' escaping, ``$from``/``$to`` as seconds."""

    def quote(match: re.Match) -> str:
        return "'" + VARIABLES[match.group(1)].replace("'", "''") + "'"

    sql = re.sub(r"\$\{(\w+):sqlstring\}", quote, sql)
    sql = sql.replace("$from", str(FROM)).replace("$to", str(TO))
    assert "$" not in sql, sql
    return sql


@pytest.fixture(scope="module")
def board() -> dict:
    return json.loads(DASHBOARD_JSON.read_text())


def queries(board: dict) -> list[tuple[str, str]]:
    found = [(panel["title"], t["query"]) for panel in board["panels"] for t in panel.get("targets", [])]
    found += [("variable " + v["name"], v["query"]) for v in board["templating"]["list"]]
    return found


def test_the_json_is_what_the_generator_writes():
    result = subprocess.run(
        [sys.executable, str(REPO / "deploy/grafana/generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_the_dashboard_has_the_panels_and_variables(board):
    titles = [p["title"] for p in board["panels"] if p["type"] != "row"]
    assert titles == [
        "Cluster totals",
        "Top 10 load (P95 cores × pods)",
        "Top 10 P95 CPU % of limit",
        "Top 10 memory (P95 MiB × pods)",
        "Top 10 P95 memory % of limit",
        "Top 10 pods",
        "Namespaces and their share of the cluster",
        "P95 CPU used by namespace",
        "CPU per pod (cores): P95 against request and limit",
        "Memory per pod (MiB): P95 against request and limit",
        "Pods",
        "Nodes: requested vs used vs allocatable",
    ]
    assert [v["name"] for v in board["templating"]["list"]] == ["cluster", "namespace", "service"]
    assert board["__inputs"][0]["pluginId"] == "vertamedia-clickhouse-datasource"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["type"] == "row" or panel["targets"], panel["title"]


@pytest.fixture(params=["clickhouse-18.16", "chdb"])
def archive(request):
    """An executor over a database with the project's schema and the dashboard test scenario."""
    if request.param == "chdb":
        executor = request.getfixturevalue("chdb_executor")
        store = ClickHouseStore(executor)
        store.ensure_schema()
        load(store, SCENARIO)
        yield executor
        return
    door = ClickHouseDoor.from_url(request.getfixturevalue("clickhouse_url"))
    store = ClickHouseStore(door)
    store.ensure_schema()
    load(store, SCENARIO)
    yield door
    door.close()


def test_every_query_runs_and_gives_the_apis_figures(board, archive):
    results = {}
    for title, sql in queries(board):
        results[title] = archive.execute(substitute(sql))  # raises on any SQL the server refuses
    # the variables list what the archive holds
    assert results["variable cluster"] == [("prod",), ("stage",)]
    assert results["variable namespace"] == [("pay",), ("shop",)]
    assert results["variable service"] == [("cart",), ("web",)]
    # totals: the same figures as the API (units converted in SQL)
    (totals,) = results["Cluster totals"]
    assert totals[:3] == (2, EXPECTED_TOTALS["services"], EXPECTED_TOTALS["pods"])
    assert [round(float(v), 4) for v in totals[3:]] == [
        EXPECTED_TOTALS[key]
        for key in (
            "cpu_request_cores",
            "cpu_used_cores",
            "cpu_limit_cores",
            "mem_request_gib",
            "mem_used_gib",
            "mem_limit_gib",
        )
    ]
    assert [(s, float(v)) for s, v in results["Top 10 load (P95 cores × pods)"]] == [
        ("shop/cart (2026-03-02)", 2.5),
        ("shop/web (2026-03-03)", 2.0),
        ("pay/ledger (2026-03-03)", 1.25),
    ]
    assert [s for s, _ in results["Top 10 P95 CPU % of limit"]] == ["shop/web (2026-03-03)", "pay/ledger (2026-03-03)"]
    assert [int(v) for _, v in results["Top 10 pods"]] == [5, 4, 2, 1]
    shares = results["Namespaces and their share of the cluster"]
    assert [(row[0], row[1], row[2], float(row[3]), float(row[4])) for row in shares] == [
        ("pay", 2, 7, 50.0, 58.33),
        ("shop", 2, 5, 50.0, 41.67),
    ]
    assert [(ns, float(v)) for ns, v in results["P95 CPU used by namespace"]] == [("pay", 1.25), ("shop", 4.5)]
    # curves of shop/cart: one point per day with data in the range (D0 is outside it)
    cpu = results["CPU per pod (cores): P95 against request and limit"]
    assert [(int(t) // 1000, float(c)) for t, c, *_ in cpu] == [
        (int(datetime.datetime(2026, 3, 1, tzinfo=datetime.UTC).timestamp()), 0.375),
        (int(datetime.datetime(2026, 3, 2, tzinfo=datetime.UTC).timestamp()), 0.625),
    ]
    assert [row[3] for row in cpu] == [1.5, None]  # no CPU limit on 03-02 (the sidecar had none)
    assert [int(p) for _, p in results["Pods"]] == [3, 4]
