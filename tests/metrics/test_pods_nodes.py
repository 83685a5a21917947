"""Per-pod and per-node daily figures collected from each metrics backend into both stores.

The collection tests run against the real Prometheus and VictoriaMetrics in turn (the parametrized
``prom`` of tests/metrics/conftest.py, both loaded with the same fleet history). Expected values are
each backend's evaluation replayed on the generated samples (tests/servers/history_pods_nodes.py with
history_stats' rules), and the history is shaped so that the 95th percentile, the
80th, the maximum and the mean all differ by far more than the tolerance: a query computing any
other statistic fails.
"""

from __future__ import annotations

import datetime

import pytest

from apps.audit.services import Actor
from apps.metrics import pod_node_promql, services
from apps.metrics.clickhouse import ClickHouseDoor
from apps.metrics.models import DailyPeak, NodePeak, PodPeak
from apps.metrics.pod_node_store import ClickHousePodNodeStore, OrmPodNodeStore
from apps.metrics.promql import QuerySettings
from apps.metrics.store import ClickHouseStore
from tests.factories import ClusterFactory
from tests.servers.history_pods_nodes import NODES, expected_node_figures, expected_pod_figures
from tests.servers.prometheus import CLUSTER_LABEL, TIME_ZONE

ACTOR = Actor.system("tester", source="system")
CPU_TOLERANCE = 1.5e-6  # stored with 6 decimals
MEM_TOLERANCE = 1.5e-3  # stored with 3 decimals


@pytest.fixture
def fleet_cluster(db, prom):
    return ClusterFactory(
        name="fleet",
        prometheus_url=prom.url,
        prometheus_label_key=CLUSTER_LABEL,
        prometheus_label_value="fleet",
        time_zone=TIME_ZONE,
        peak_start=datetime.time(10, 0),
        peak_end=datetime.time(11, 30),
        metrics_backend=prom.backend,
    )


def collect(cluster, *, now, store, days=4):
    run = services.collection_start(cluster=cluster, days=days, actor=ACTOR, enqueue=False)
    return services.collection_run(run_id=run.pk, now=now, store=store)


def assert_distinct(figures, tolerance):
    """The shape tells the statistics apart: P95 is neither P80, nor the maximum, nor the mean."""
    assert abs(figures.p95 - figures.p80) > 100 * tolerance
    assert abs(figures.maximum - figures.p95) > 100 * tolerance
    assert abs(figures.p95 - figures.mean) > 100 * tolerance


def assert_pods(prom, rows_by_day):
    for day in prom.days:
        expected = expected_pod_figures(prom.fleet, day, backend=prom.backend)
        rows = {(r.namespace, r.deployment, r.pod): r for r in rows_by_day(day)}
        assert set(rows) == set(expected)  # kube-system's daemon pods are not the cluster's pods
        assert len(rows) == 6
        for key, (cpu, mem) in expected.items():
            assert_distinct(cpu, CPU_TOLERANCE)
            assert_distinct(mem, MEM_TOLERANCE)
            row = rows[key]
            assert row.p95_cpu_cores == pytest.approx(cpu.p95, abs=CPU_TOLERANCE), key
            assert row.p95_mem_mib == pytest.approx(mem.p95, abs=MEM_TOLERANCE), key
            assert (row.quantile, row.step_seconds) == (0.95, 30)
            assert (row.window_start, row.window_end) == prom.fleet.window_bounds(day)


def assert_nodes(prom, rows_by_day):
    for day in prom.days:
        expected = expected_node_figures(prom.fleet, day, backend=prom.backend)
        rows = {r.node: r for r in rows_by_day(day)}
        assert set(rows) == set(NODES)
        for node, figures in expected.items():
            assert_distinct(figures.cpu, CPU_TOLERANCE)
            assert_distinct(figures.mem, MEM_TOLERANCE)
            row = rows[node]
            assert row.p95_cpu_cores == pytest.approx(figures.cpu.p95, abs=CPU_TOLERANCE), node
            assert row.p95_mem_mib == pytest.approx(figures.mem.p95, abs=MEM_TOLERANCE), node
            assert (row.request_cpu_m, row.request_mem_mib) == (figures.request_cpu_m, figures.request_mem_mib)
            assert (row.allocatable_cpu_m, row.allocatable_mem_mib) == (
                figures.allocatable_cpu_m,
                figures.allocatable_mem_mib,
            )


def test_pod_and_node_figures_in_the_orm_store_are_the_backends_p95(prom, fleet_cluster, now, orm_store):
    # when
    run = collect(fleet_cluster, now=now, store=orm_store)
    # then
    assert run.state == "done", run.errors
    assert_pods(prom, lambda day: PodPeak.objects.filter(cluster="fleet", day=day))
    assert_nodes(prom, lambda day: NodePeak.objects.filter(cluster="fleet", day=day))
    # node-c: worker 1 and the surge pod (500 m, 768 MiB each) overlap, plus the daemon pod (100 m, 64 MiB)
    node_c = NodePeak.objects.get(cluster="fleet", day=prom.days[0], node="node-c")
    assert (node_c.request_cpu_m, node_c.request_mem_mib, node_c.allocatable_cpu_m) == (1100, 1600, 2000)
    # the other clusters' series stay out
    assert not PodPeak.objects.filter(cluster="fleet", pod__startswith="cart-").exists()


def test_pod_and_node_figures_in_clickhouse_are_the_backends_p95(prom, fleet_cluster, now, clickhouse_url):
    door = ClickHouseDoor.from_url(clickhouse_url)
    store = ClickHouseStore(door)
    store.ensure_schema()
    pod_nodes = ClickHousePodNodeStore(door)
    try:
        # when: collected twice (the second replaces each day)
        collect(fleet_cluster, now=now, store=store)
        run = collect(fleet_cluster, now=now, store=store)
        # then
        assert run.state == "done", run.errors
        assert_pods(
            prom,
            lambda day: (
                pod_nodes.pod_rows(cluster="fleet", namespace="web", deployment="front", day_from=day, day_to=day)
                + pod_nodes.pod_rows(cluster="fleet", namespace="web", deployment="worker", day_from=day, day_to=day)
            ),
        )
        assert_nodes(prom, lambda day: node_rows(pod_nodes, day))
        (count,) = door.execute("SELECT count() FROM kubedoor_pod_peaks")[0]
        assert int(count) == 6 * len(prom.days)
        assert not PodPeak.objects.exists()  # nothing went to the ORM store
    finally:
        door.close()


def node_rows(pod_nodes, day):
    from types import SimpleNamespace

    names = ("day", "node", "p95_cpu_cores", "p95_mem_mib", "request_cpu_m", "request_mem_mib")
    names += ("allocatable_cpu_m", "allocatable_mem_mib")
    return [
        SimpleNamespace(**dict(zip(names, row, strict=True)))
        for row in pod_nodes.node_day(cluster="fleet", day_from=day, day_to=day)
    ]


def test_a_day_is_replaced_not_duplicated(prom, fleet_cluster, now, orm_store):
    collect(fleet_cluster, now=now, store=orm_store)
    collect(fleet_cluster, now=now, store=orm_store, days=2)
    assert PodPeak.objects.filter(cluster="fleet").count() == 6 * len(prom.days)
    assert NodePeak.objects.filter(cluster="fleet").count() == 3 * len(prom.days)


def test_a_cluster_can_leave_pods_and_nodes_out(prom, fleet_cluster, now, orm_store):
    first = collect(fleet_cluster, now=now, store=orm_store, days=2)
    kept = (PodPeak.objects.filter(cluster="fleet").count(), NodePeak.objects.filter(cluster="fleet").count())
    fleet_cluster.collect_pods_nodes = False
    fleet_cluster.save()
    # when: every day again, without the pod and node queries
    run = collect(fleet_cluster, now=now, store=orm_store)
    # then: the Deployments' days are all there; the pod and node figures are those of the first run
    assert run.state == "done", run.errors
    assert DailyPeak.objects.filter(cluster="fleet").values("day").distinct().count() == len(prom.days)
    assert len(first.days_collected) < len(prom.days)
    assert kept == (6 * len(first.days_collected), 3 * len(first.days_collected))
    assert (PodPeak.objects.filter(cluster="fleet").count(), NodePeak.objects.filter(cluster="fleet").count()) == kept


def test_the_queries_follow_the_cluster_settings():
    settings = QuerySettings(
        label_key="k8s_cluster", label_value="fleet", excluded_namespaces=("kube-system",), quantile=0.9
    )
    queries = pod_node_promql.day_queries(settings)
    assert list(queries) == list(pod_node_promql.STATISTICS)
    assert queries["pod_cpu_cores"].startswith("quantile_over_time(0.9, (sum by (namespace, pod) (rate(")
    assert 'namespace!~"kube\\\\-system"' in queries["pod_cpu_cores"]
    for name in ("node_cpu_cores", "node_mem_mib", "node_requests", "node_allocatable"):
        assert "namespace!~" not in queries[name], name  # nodes count every namespace
        assert 'k8s_cluster="fleet"' in queries[name]
    assert queries["node_requests"].endswith("[5400s:30s])")


def test_the_store_follows_the_daily_peak_store(clickhouse_url):
    from apps.metrics.pod_node_store import pod_node_store_for

    door = ClickHouseDoor.from_url(clickhouse_url)
    try:
        assert isinstance(pod_node_store_for(ClickHouseStore(door)), ClickHousePodNodeStore)
        assert isinstance(pod_node_store_for(OrmPodNodeStore()), OrmPodNodeStore)
    finally:
        door.close()
