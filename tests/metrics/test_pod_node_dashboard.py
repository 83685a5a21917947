"""The pod curves and the node board: the same figures from the ORM store, ClickHouse 18.16 and chdb;
the API around them; the demo's figures."""

from __future__ import annotations

import datetime
import io

import pytest
from django.core.management import call_command

from apps.control.models import Cluster, Microservice
from apps.metrics import pod_node_dashboard
from apps.metrics.clickhouse import ClickHouseDoor
from apps.metrics.models import NodePeak, PodPeak
from apps.metrics.pod_node_store import ClickHousePodNodeStore, NodePeakRow, OrmPodNodeStore, PodPeakRow
from apps.metrics.store import ClickHouseStore
from tests.factories import MicroserviceFactory

pytestmark = pytest.mark.django_db
D1, D2, D3 = datetime.date(2026, 3, 1), datetime.date(2026, 3, 2), datetime.date(2026, 3, 3)
START = datetime.datetime(2026, 3, 1, 2, 0, tzinfo=datetime.UTC)


def pod(day, name, cpu, mem, *, deployment="cart", cluster="prod") -> PodPeakRow:
    return PodPeakRow(
        cluster=cluster,
        day=day,
        namespace="shop",
        deployment=deployment,
        pod=name,
        window_start=START,
        window_end=START + datetime.timedelta(minutes=90),
        p95_cpu_cores=cpu,
        p95_mem_mib=mem,
        quantile=0.95,
        step_seconds=30,
        collected_at=START + datetime.timedelta(hours=2),
    )


def node(day, name, cpu, mem, req, alloc, *, cluster="prod") -> NodePeakRow:
    return NodePeakRow(
        cluster=cluster,
        day=day,
        node=name,
        window_start=START,
        window_end=START + datetime.timedelta(minutes=90),
        p95_cpu_cores=cpu,
        p95_mem_mib=mem,
        request_cpu_m=req[0],
        request_mem_mib=req[1],
        allocatable_cpu_m=alloc[0],
        allocatable_mem_mib=alloc[1],
        quantile=0.95,
        step_seconds=30,
        collected_at=START + datetime.timedelta(hours=2),
    )


PODS = {
    D1: [
        pod(D1, "cart-a-1", 0.5, 300.0),
        pod(D1, "cart-a-2", 0.25, 280.5),
        pod(D1, "web-x", 9.0, 9.0, deployment="web"),
    ],
    D2: [pod(D2, "cart-a-1", 0.75, None), pod(D2, "cart-b-1", 0.123456, 310.125)],
    D3: [pod(D3, "cart-b-1", 0.2, 305.0)],
}
NODES = {
    D1: [node(D1, "n1", 3.0, 8192.0, (3000, 8192), (4000, 16384))],
    D2: [
        node(D2, "n1", 1.0, 4096.0, (2000, 4096), (4000, 16384)),
        node(D2, "n2", 6.0, 1024.0, (7000, 2048), (8000, 32768)),
        node(D2, "n3", 0.5, 2048.0, (500, 1024), (2000, 8192)),
        node(D2, "n4", 0.1, None, (None, None), (None, None)),  # no allocatable: shown, not ranked
    ],
    D3: [node(D3, "other", 1.0, 1.0, (1, 1), (1, 1), cluster="stage")],
}


def _open(request, kind):
    if kind == "orm":
        yield OrmPodNodeStore()
        return
    if kind == "chdb":
        executor = request.getfixturevalue("chdb_executor")
    else:
        executor = ClickHouseDoor.from_url(request.getfixturevalue("clickhouse_url"))
    ClickHouseStore(executor).ensure_schema()
    yield ClickHousePodNodeStore(executor)
    if kind != "chdb":
        executor.close()


@pytest.fixture(params=["clickhouse-18.16", "chdb", "orm"])
def store(request):
    yield from _open(request, request.param)


@pytest.fixture(params=["clickhouse-18.16", "chdb"])
def clickhouse_store(request):
    """The ClickHouse stores only: Grafana reads ClickHouse."""
    yield from _open(request, request.param)


def load(store):
    for day, rows in PODS.items():
        store.pods_replace(cluster="prod", day=day, rows=rows)
    for day, rows in NODES.items():
        cluster = rows[0].cluster
        store.nodes_replace(cluster=cluster, day=day, rows=rows)


def test_pod_curves_give_each_pod_its_days(store):
    load(store)
    curves = pod_node_dashboard.pod_curves(
        cluster="prod", namespace="shop", deployment="cart", day_from=D1, day_to=D3, store=store
    )
    assert pod_node_dashboard.MAX_POD_CURVES == 20
    assert (curves.days, curves.pods_total) == ([D1, D2, D3], 3)
    assert [(c.pod, [(p.day, p.cpu_cores, p.mem_mib) for p in c.points]) for c in curves.pods] == [
        ("cart-a-1", [(D1, 0.5, 300.0), (D2, 0.75, None)]),
        ("cart-a-2", [(D1, 0.25, 280.5)]),
        ("cart-b-1", [(D2, 0.1235, 310.12), (D3, 0.2, 305.0)]),
    ]
    narrower = pod_node_dashboard.pod_curves(
        cluster="prod", namespace="shop", deployment="cart", day_from=D3, day_to=D3, store=store
    )
    assert [(c.pod, len(c.points)) for c in narrower.pods] == [("cart-b-1", 1)]


def test_pod_curves_keep_the_busiest_pods(store, monkeypatch):
    load(store)
    monkeypatch.setattr(pod_node_dashboard, "MAX_POD_CURVES", 2)
    curves = pod_node_dashboard.pod_curves(
        cluster="prod", namespace="shop", deployment="cart", day_from=D1, day_to=D3, store=store
    )
    # highest P95 CPU on any day: cart-a-1 (0.75), cart-a-2 (0.25), then cart-b-1 (0.2) is left out
    assert (curves.pods_total, [c.pod for c in curves.pods]) == (3, ["cart-a-1", "cart-a-2"])


def test_the_node_board_shows_the_ranges_last_day(store):
    load(store)
    board = pod_node_dashboard.node_board(cluster="prod", day_from=D1, day_to=D3, store=store)
    assert board.day == D2  # D3 has figures of another cluster only
    n1, n2, n3, n4 = board.nodes
    assert n1 == pod_node_dashboard.NodeFigures(
        node="n1",
        cpu_used_cores=1.0,
        cpu_request_cores=2.0,
        cpu_allocatable_cores=4.0,
        cpu_used_pct=25.0,
        cpu_request_pct=50.0,
        mem_used_mib=4096.0,
        mem_request_mib=4096.0,
        mem_allocatable_mib=16384.0,
        mem_used_pct=25.0,
        mem_request_pct=25.0,
    )
    assert (n2.cpu_used_pct, n2.cpu_request_pct, n2.mem_used_pct, n2.mem_request_pct) == (75.0, 87.5, 3.12, 6.25)
    assert (n3.cpu_used_pct, n3.mem_used_pct) == (25.0, 25.0)
    assert (n4.node, n4.cpu_used_pct, n4.mem_used_mib, n4.cpu_allocatable_cores) == ("n4", None, None, None)
    # n1 and n3 tie on CPU and memory: by name
    assert [n.node for n in board.most_loaded] == ["n2", "n1", "n3"]
    assert [n.node for n in board.least_loaded] == ["n1", "n3", "n2"]
    assert board.spread == pod_node_dashboard.NodeSpread(
        cpu_min_pct=25.0,
        cpu_max_pct=75.0,
        cpu_spread_pct=50.0,
        mem_min_pct=3.12,
        mem_max_pct=25.0,
        mem_spread_pct=21.88,
    )
    first = pod_node_dashboard.node_board(cluster="prod", day_from=D1, day_to=D1, store=store)
    assert (first.day, [n.cpu_used_pct for n in first.nodes]) == (D1, [75.0])
    assert first.spread.cpu_spread_pct == 0.0


def test_an_empty_range_gives_an_empty_board(store):
    load(store)
    board = pod_node_dashboard.node_board(cluster="prod", day_from=D3, day_to=D3, store=store)
    assert (board.day, board.nodes, board.most_loaded, board.least_loaded) == (None, [], [], [])
    assert board.spread == pod_node_dashboard.NodeSpread(None, None, None, None, None, None)


# --- API --------------------------------------------------------------------------------------------


@pytest.fixture
def loaded(cluster):
    load(OrmPodNodeStore())
    MicroserviceFactory(cluster=cluster, namespace="shop", name="cart")
    return cluster


def test_the_pods_endpoint(viewer_api, loaded):
    response = viewer_api.get(
        "/api/v1/dashboard/pods",
        {"cluster": "prod", "namespace": "shop", "deployment": "cart", "day_from": D1, "day_to": D3},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["days"], body["pods_total"]) == (["2026-03-01", "2026-03-02", "2026-03-03"], 3)
    assert body["pods"][0] == {
        "pod": "cart-a-1",
        "points": [
            {"day": "2026-03-01", "cpu_cores": 0.5, "mem_mib": 300.0},
            {"day": "2026-03-02", "cpu_cores": 0.75, "mem_mib": None},
        ],
    }


def test_the_pods_endpoint_names_an_unknown_service(viewer_api, loaded):
    response = viewer_api.get("/api/v1/dashboard/pods", {"cluster": "prod", "namespace": "shop", "deployment": "nope"})
    assert response.status_code == 404
    assert response.json()["detail"] == "No microservice shop/nope in this cluster."


def test_the_nodes_endpoint(viewer_api, loaded):
    response = viewer_api.get("/api/v1/dashboard/nodes", {"cluster": "prod", "day_from": D1, "day_to": D3})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["day"], [n["node"] for n in body["nodes"]]) == ("2026-03-02", ["n1", "n2", "n3", "n4"])
    assert [n["node"] for n in body["most_loaded"]] == ["n2", "n1", "n3"]
    assert body["spread"]["cpu_spread_pct"] == 50.0
    assert body["nodes"][1]["cpu_request_cores"] == 7.0


def test_the_endpoints_need_the_viewer_role(nobody, loaded):
    from tests.conftest import _token_client

    client = _token_client(nobody)
    assert client.get("/api/v1/dashboard/nodes", {"cluster": "prod"}).status_code == 403
    assert (
        client.get("/api/v1/dashboard/pods", {"cluster": "prod", "namespace": "shop", "deployment": "cart"}).status_code
        == 403
    )


def test_a_bad_range_is_a_400_naming_the_field(viewer_api, loaded):
    response = viewer_api.get("/api/v1/dashboard/nodes", {"cluster": "prod", "day_from": D3, "day_to": D1})
    assert response.status_code == 400
    assert "day_from" in response.json()["errors"]
    assert viewer_api.get("/api/v1/dashboard/nodes", {"cluster": "nope"}).status_code == 400


# --- demo --------------------------------------------------------------------------------------------


def test_the_demo_writes_pod_and_node_figures_idempotently():
    call_command("kubedoor_demo", stdout=io.StringIO())
    out = io.StringIO()
    call_command("kubedoor_demo", stdout=out)
    cluster = Cluster.objects.get(name="demo")
    pods = sum(max(1, s.replicas_measured or 1) for s in Microservice.objects.filter(cluster=cluster))
    assert PodPeak.objects.filter(cluster="demo").count() == pods * 30
    nodes = NodePeak.objects.filter(cluster="demo").values_list("node", flat=True).distinct().count()
    assert nodes >= 3
    assert NodePeak.objects.filter(cluster="demo").count() == nodes * 30
    assert f"{pods * 30} pod and {nodes * 30} node figures written" in out.getvalue()
    # a node's figures are the sums of its pods' requests; the cluster is requested below its allocatable
    requested = sum(s.request_cpu_m * max(1, s.replicas_measured) for s in Microservice.objects.filter(cluster=cluster))
    day = NodePeak.objects.filter(cluster="demo").latest("day").day
    on_day = NodePeak.objects.filter(cluster="demo", day=day)
    assert sum(n.request_cpu_m for n in on_day) == requested
    assert requested < sum(n.allocatable_cpu_m for n in on_day)
    assert all(n.request_cpu_m < n.allocatable_cpu_m for n in on_day)  # no node overcommitted
    board = pod_node_dashboard.node_board(cluster="demo", day_from=day, day_to=day)
    assert board.spread.cpu_spread_pct > 0


# --- Grafana ---------------------------------------------------------------------------------------


def test_the_grafana_node_panel_gives_the_boards_figures(clickhouse_store):
    import json
    from pathlib import Path

    from tests.metrics.test_dashboard_grafana import substitute

    store = clickhouse_store
    load(store)
    board = json.loads((Path(__file__).resolve().parents[2] / "deploy/grafana/kubedoor-dashboard.json").read_text())
    (panel,) = [p for p in board["panels"] if p["title"] == "Nodes: requested vs used vs allocatable"]
    # Grafana's range 2026-03-01 … 2026-03-03 (as in test_dashboard_grafana)
    rows = store.executor.execute(substitute(panel["targets"][0]["query"]))
    expected = pod_node_dashboard.node_board(cluster="prod", day_from=D1, day_to=D3, store=store)
    by_node = {n.node: n for n in expected.nodes}
    assert [row[0] for row in rows] == ["n2", "n1", "n3", "n4"]  # most loaded first; no allocatable last
    for node_name, *figures in rows:
        n = by_node[node_name]
        # Grafana shows 2 decimals, the API rounds to 2 (3.125 % may show as 3.12 or 3.13)
        assert [None if v is None else float(v) for v in figures] == pytest.approx(
            [
                n.cpu_used_cores,
                n.cpu_request_cores,
                n.cpu_allocatable_cores,
                n.cpu_used_pct,
                n.cpu_request_pct,
                n.mem_used_mib,
                n.mem_request_mib,
                n.mem_allocatable_mib,
                n.mem_used_pct,
                n.mem_request_pct,
            ],
            abs=0.0051,
        ), node_name


# --- schema ------------------------------------------------------------------------------------------


def test_the_tables_keep_the_daily_peaks_ttl_where_the_server_has_one():
    from apps.metrics.clickhouse import DAILY_PEAKS_TTL_CLAUSE
    from apps.metrics.pod_node_store import pod_node_ddl

    old = pod_node_ddl(server_version=(18, 16))
    new = pod_node_ddl(server_version=(26, 1))
    assert [("kubedoor_pod_peaks" in sql, "kubedoor_node_peaks" in sql) for sql in new] == [
        (True, False),
        (False, True),
    ]
    assert all("TTL" not in sql for sql in old)
    assert all(sql.rstrip().endswith(DAILY_PEAKS_TTL_CLAUSE) for sql in new)


def test_clickhouse_migrate_creates_the_pod_and_node_tables(clickhouse_url, chdb_executor):
    call_command("clickhouse_migrate", clickhouse_url=clickhouse_url, stdout=io.StringIO())
    door = ClickHouseDoor.from_url(clickhouse_url)
    try:
        tables = {name for (name,) in door.execute("SHOW TABLES")}
        assert {"kubedoor_daily_peaks", "kubedoor_pod_peaks", "kubedoor_node_peaks"} <= tables
    finally:
        door.close()
    # a current ClickHouse (chdb) gets the TTL
    ClickHouseStore(chdb_executor).ensure_schema()
    (ddl,) = chdb_executor.execute("SHOW CREATE TABLE kubedoor_node_peaks")[0]
    assert "TTL day + toIntervalDay(400)" in ddl
