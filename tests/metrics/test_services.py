"""Collection against a real Prometheus and a real VictoriaMetrics loaded with the same generated history.

Every expected statistic is computed from the generated samples (tests/servers/history_stats.py,
with each backend's evaluation rules), never read back from a backend.
"""

from __future__ import annotations

import datetime
import math
import statistics

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import Actor
from apps.control.models import Microservice
from apps.metrics import promql, services
from apps.metrics.models import CollectionRun, DailyPeak
from apps.metrics.prometheus import PrometheusClient
from tests.factories import ClusterFactory
from tests.servers import free_port
from tests.servers.history import History
from tests.servers.history_stats import ContainerStats, DaySamples, container_stats, quantile

ACTOR = Actor.system("tester", source="system")
COLLECTED = {
    ("shop", "cart", "cart"),
    ("shop", "cart", "istio-proxy"),
    ("shop", "web", "web"),
    ("shop", "search", "search"),
    ("pay", "api", "api"),
    ("pay", "queue-consumer", "consumer"),
    ("ops", "legacy", "legacy"),
    ("ops", "batch", "worker"),
    ("ops", "batch", "log-shipper"),
}


_SAMPLES: dict[tuple[int, datetime.date], DaySamples] = {}


def _samples(history: History, day: datetime.date) -> DaySamples:
    """The day's generated samples, parsed once per session."""
    key = (id(history), day)
    if key not in _SAMPLES:
        _SAMPLES[key] = DaySamples(history, day)
    return _SAMPLES[key]


def expected(prom, deployment: str, container: str, day: datetime.date, **options) -> ContainerStats:
    """What the backend must store for (deployment, container) on ``day``, from the generated samples."""
    dep = next(d for d in prom.prod.deployments if d.name == deployment)
    return container_stats(_samples(prom.prod, day), dep, container, backend=prom.backend, **options)


def request_from(p95: float, scale: float, floor: int) -> int:
    """DESIGN §5.4 without headroom: max(ceil(P95 rounded as stored × scale), floor)."""
    return max(math.ceil(round(p95 * scale, 6)), floor)


def collect(cluster, *, days, now, store, concurrency=4):
    run = services.collection_start(cluster=cluster, days=days, actor=ACTOR, concurrency=concurrency, enqueue=False)
    return services.collection_run(run_id=run.pk, now=now, store=store)


def test_collected_rows_match_the_generated_samples(prom, prom_cluster, now, orm_store):
    # when
    run = collect(prom_cluster, days=4, now=now, store=orm_store)
    # then
    assert run.state == "done", run.errors
    assert run.skipped_days == [(prom.days[-1] + datetime.timedelta(days=1)).isoformat()]
    assert run.days_collected == [day.isoformat() for day in prom.days]
    per_day = len(promql.day_queries(promql.QuerySettings(backend=prom.backend)))
    assert (run.progress_done, run.progress_total) == (3 * per_day, 3 * per_day)
    assert run.rows_written == 27
    history = prom.prod
    for day in prom.days:
        rows = {(r.namespace, r.deployment, r.container): r for r in DailyPeak.objects.filter(cluster="prod", day=day)}
        assert set(rows) == COLLECTED  # kube-system excluded; the "stage" series filtered out
        for dep in history.deployments:
            for container in dep.containers:
                key = (dep.namespace, dep.name, container.name)
                if key not in COLLECTED:
                    continue
                row = rows[key]
                stats = expected(prom, dep.name, container.name, day)
                start, end = history.window_bounds(day)
                assert (row.window_start, row.window_end) == (start, end)
                assert row.pod_count == stats.pod_count == dep.pods  # the surge pod and the rollout's overlap aside
                assert row.p95_cpu_cores == pytest.approx(stats.p95_cpu_cores, abs=2e-6), key
                assert row.p95_mem_mib == pytest.approx(stats.p95_mem_mib, abs=2e-3), key
                if container.limit_cpu_m is None:
                    assert (row.p95_cpu_pct, row.p95_mem_pct, row.limit_cpu_m, row.limit_mem_mib) == (None,) * 4
                else:
                    assert row.p95_cpu_pct == pytest.approx(stats.p95_cpu_pct, abs=2e-3), key
                    assert row.p95_mem_pct == pytest.approx(stats.p95_mem_pct, abs=2e-3), key
                    assert (row.limit_cpu_m, row.limit_mem_mib) == (stats.limit_cpu_m, stats.limit_mem_mib)
                assert (row.request_cpu_m, row.request_mem_mib) == (container.request_cpu_m, container.request_mem_mib)
                assert (row.quantile, row.aggregation, row.step_seconds) == (0.95, "avg", 30)


def test_a_pod_named_like_another_deployment_counts_for_its_owner(prom, prom_cluster, now, orm_store):
    # given: on "stage", cart-canary owns a pod named like cart's pods (cart-<hash>-<suffix>)
    stage = prom_cluster
    stage.name, stage.prometheus_label_value = "stage", "stage"
    stage.save()
    # when
    run = collect(stage, days=4, now=now, store=orm_store)
    # then: each Deployment has its own pods' figures, as the owners say, not as the names suggest
    assert run.state == "done", run.errors
    for day in prom.days:
        rows = {r.deployment: r for r in DailyPeak.objects.filter(cluster="stage", day=day)}
        assert set(rows) == {"cart", "cart-canary"}
        for dep in prom.stage.deployments:
            stats = container_stats(_samples(prom.stage, day), dep, "cart", backend=prom.backend)
            row = rows[dep.name]
            assert row.pod_count == stats.pod_count == 1, dep.name
            assert row.p95_cpu_cores == pytest.approx(stats.p95_cpu_cores, abs=2e-6), dep.name
            assert row.p95_mem_mib == pytest.approx(stats.p95_mem_mib, abs=2e-3), dep.name
            assert row.p95_cpu_pct == pytest.approx(stats.p95_cpu_pct, abs=2e-3), dep.name
            assert (row.request_cpu_m, row.limit_cpu_m) == (stats.request_cpu_m, stats.limit_cpu_m), dep.name
        assert rows["cart"].p95_cpu_cores > 5 * rows["cart-canary"].p95_cpu_cores


def test_the_history_tells_the_p95_from_the_p80_the_maximum_and_the_mean(prom):
    # A query computing the wrong statistic must give a different number: on every collected container
    # and day, P95, P80, maximum and mean of the per-step aggregate are at least 2 % apart.
    for day in prom.days:
        for namespace, deployment, container in COLLECTED:
            stats = expected(prom, deployment, container, day)
            for steps in (stats.cpu_steps, stats.mem_steps):
                figures = sorted([quantile(0.95, steps), quantile(0.8, steps), max(steps), statistics.mean(steps)])
                assert all(high > low * 1.02 for low, high in zip(figures, figures[1:], strict=False)), (
                    namespace,
                    deployment,
                    container,
                    figures,
                )


def test_the_percentage_of_limit_is_per_pod_where_the_pods_limits_differ(prom, prom_cluster, now, orm_store):
    # given: the search rollout raises the CPU limit from 2000 m to 2500 m (the peak is before it)
    collect(prom_cluster, days=4, now=now, store=orm_store)
    day = prom.days[1]
    row = DailyPeak.objects.get(day=day, deployment="search")
    stats = expected(prom, "search", "search", day)
    # then: each pod's usage over its own limit, not the P95 over the highest limit
    assert row.limit_cpu_m == 2500
    assert row.p95_cpu_pct == pytest.approx(stats.p95_cpu_pct, abs=2e-3)
    assert row.p95_cpu_pct == pytest.approx(stats.p95_cpu_cores * 1000 / 2000 * 100, abs=2e-3)
    assert row.p95_cpu_pct != pytest.approx(stats.p95_cpu_cores * 1000 / 2500 * 100, abs=1)
    # the memory limit did not change: that percentage is the P95 over the shared limit
    assert row.p95_mem_pct == pytest.approx(stats.p95_mem_mib / 1024 * 100, abs=2e-3)


def test_derived_percentages_equal_the_per_pod_query(prom, prom_cluster, now, orm_store):
    # given: the collected rows, whose percentages were derived from the P95 where the pods share a limit
    collect(prom_cluster, days=4, now=now, store=orm_store)
    day = prom.days[1]
    start, end = prom.prod.window_bounds(day)
    settings = promql.QuerySettings(
        label_key="k8s_cluster",
        label_value="prod",
        excluded_namespaces=tuple(prom_cluster.excluded_namespaces),
        window_seconds=int((end - start).total_seconds()),
        backend=prom.backend,
    )
    # when: the per-pod query of every Deployment, as collected before the derivation
    with PrometheusClient(prom.url) as client:
        for kind, field in (("cpu", "p95_cpu_pct"), ("mem", "p95_mem_pct")):
            exact = {
                (s.labels["namespace"], s.labels["deployment"], s.labels["container"]): s.value
                for s in client.query(promql.usage_pct_query(settings, kind), at=end)
            }
            # then
            rows = {
                (r.namespace, r.deployment, r.container): getattr(r, field) for r in DailyPeak.objects.filter(day=day)
            }
            assert set(exact) == {key for key, value in rows.items() if value is not None}
            for key, value in exact.items():
                assert rows[key] == pytest.approx(value, abs=1e-3), (field, key)


def test_prometheus_and_victoriametrics_give_the_same_control_table(
    db, prometheus_server, victoriametrics_server, orm_store
):
    # given: two clusters reading the same generated history, one from each backend
    day = prometheus_server.days[-1] + datetime.timedelta(days=1)
    now = datetime.datetime.combine(day, datetime.time(9, 0), datetime.UTC)
    tables = {}
    for server in (prometheus_server, victoriametrics_server):
        cluster = ClusterFactory(
            name=f"prod-{server.backend}",
            prometheus_url=server.url,
            prometheus_label_key="k8s_cluster",
            prometheus_label_value="prod",
            time_zone="Asia/Shanghai",
            peak_start=datetime.time(10, 0),
            peak_end=datetime.time(11, 30),
            metrics_backend=server.backend,
        )
        # when
        run = collect(cluster, days=4, now=now, store=orm_store)
        assert run.state == "done", run.errors
        tables[server.backend] = {(m.namespace, m.name): m for m in Microservice.objects.filter(cluster=cluster)}
    # then: exact pod counts and limits, requests within ±1 %
    prometheus, victoriametrics = tables["prometheus"], tables["victoriametrics"]
    assert set(prometheus) == set(victoriametrics)
    assert len(prometheus) == 7
    for key, row in prometheus.items():
        other = victoriametrics[key]
        assert (other.replicas_measured, other.source_day, other.container) == (
            row.replicas_measured,
            row.source_day,
            row.container,
        )
        assert (other.limit_cpu_m, other.limit_mem_mib) == (row.limit_cpu_m, row.limit_mem_mib)
        assert other.request_cpu_m == pytest.approx(row.request_cpu_m, rel=0.01), key
        assert other.request_mem_mib == pytest.approx(row.request_mem_mib, rel=0.01), key


def test_the_busier_day_is_clearly_higher(prom, prom_cluster, now, orm_store):
    collect(prom_cluster, days=4, now=now, store=orm_store)
    cart = {r.day: r.p95_cpu_cores for r in DailyPeak.objects.filter(deployment="cart", container="cart")}
    # the day factors 1.0 / 2.0 / 1.25 scale every sample, so the P95 too
    first = expected(prom, "cart", "cart", prom.days[0]).p95_cpu_cores
    assert cart == {
        prom.days[0]: pytest.approx(first, abs=2e-6),
        prom.days[1]: pytest.approx(first * 2.0, abs=2e-6),
        prom.days[2]: pytest.approx(first * 1.25, abs=2e-6),
    }
    for day in prom.days:
        assert cart[day] == pytest.approx(expected(prom, "cart", "cart", day).p95_cpu_cores, abs=2e-6)


def test_max_aggregation_and_another_quantile_change_the_statistic(prom, prom_cluster, now, orm_store):
    # given: the maximum over pods instead of the average
    prom_cluster.peak_aggregation = "max"
    prom_cluster.save()
    # when
    collect(prom_cluster, days=2, now=now, store=orm_store)
    # then: search has 5 pods with multipliers 1.0..1.4: the P95 of the busiest pod, not of the average
    day = prom.days[-1]
    row = DailyPeak.objects.get(day=day, deployment="search")
    busiest = expected(prom, "search", "search", day, aggregation="max")
    average = expected(prom, "search", "search", day)
    assert row.p95_cpu_cores == pytest.approx(busiest.p95_cpu_cores, abs=2e-6)
    assert row.p95_cpu_cores == pytest.approx(average.p95_cpu_cores * 1.4 / 1.2, abs=2e-6)
    assert row.p95_cpu_pct == pytest.approx(busiest.p95_cpu_pct, abs=2e-3)
    assert row.aggregation == "max"


def test_another_quantile_changes_the_statistic(prom, prom_cluster, now, orm_store):
    # given: the 80th percentile instead of the 95th
    prom_cluster.peak_quantile = 0.8
    prom_cluster.save()
    # when
    collect(prom_cluster, days=2, now=now, store=orm_store)
    # then
    day = prom.days[-1]
    row = DailyPeak.objects.get(day=day, deployment="cart", container="cart")
    stats = expected(prom, "cart", "cart", day, quantile_q=0.8)
    assert row.p95_cpu_cores == pytest.approx(stats.p95_cpu_cores, abs=2e-6)
    assert row.p95_mem_mib == pytest.approx(stats.p95_mem_mib, abs=2e-3)
    assert row.p95_mem_pct == pytest.approx(stats.p95_mem_mib / 512 * 100, abs=2e-3)
    assert row.p95_cpu_cores < expected(prom, "cart", "cart", day).p95_cpu_cores * 0.9
    assert row.quantile == 0.8


def test_the_first_collection_registers_the_control_rows(prom, prom_cluster, now, orm_store):
    run = collect(prom_cluster, days=4, now=now, store=orm_store)
    assert (run.services_added, run.services_updated, run.services_vanished) == (7, 0, 0)
    rows = {(s.namespace, s.name): s for s in Microservice.objects.filter(cluster=prom_cluster)}
    assert set(rows) == {
        ("shop", "cart"),
        ("shop", "web"),
        ("shop", "search"),
        ("pay", "api"),
        ("pay", "queue-consumer"),
        ("ops", "legacy"),
        ("ops", "batch"),
    }
    busiest = prom.days[1]  # day factor 2.0: every service's busiest day

    def derived(name, container):
        """The source day's statistics and the requests DESIGN §5.4 derives from them (no headroom)."""
        stats = expected(prom, name, container, busiest)
        cpu = request_from(round(stats.p95_cpu_cores, 6), 1000, 10)
        mem = request_from(round(stats.p95_mem_mib, 3), 1, 16)
        return stats, cpu, mem

    cart = rows[("shop", "cart")]
    stats, cpu, mem = derived("cart", "cart")
    assert cart.source_day == busiest
    assert cart.container == ""  # the container named like the Deployment
    assert (cart.replicas_measured, cart.replicas_initial) == (3, 3)  # the surge pod is not counted: the minimum
    assert cart.p95_cpu_cores == pytest.approx(stats.p95_cpu_cores, abs=2e-6)
    assert cart.p95_mem_mib == pytest.approx(stats.p95_mem_mib, abs=2e-3)
    assert cart.p95_cpu_pct == pytest.approx(stats.p95_cpu_cores * 1000 / 1000 * 100, abs=2e-3)
    assert (cart.limit_cpu_m, cart.limit_mem_mib) == (1000, 512)
    # the CPU request fits under the 1000 m limit; the memory one does not fit under 512 MiB: capped and flagged
    assert cpu < 1000
    assert mem > 512
    assert (cart.request_cpu_m, cart.request_mem_mib, cart.request_capped) == (cpu, 512, True)
    api = rows[("pay", "api")]
    stats, cpu, mem = derived("api", "api")
    assert (api.request_cpu_m, api.request_mem_mib, api.limit_cpu_m, api.limit_mem_mib) == (cpu, mem, None, None)
    assert (api.p95_cpu_pct, api.request_capped) == (None, False)
    web = rows[("shop", "web")]
    stats, cpu, mem = derived("web", "web")
    assert cpu < 500
    assert mem > 256
    assert (web.request_cpu_m, web.request_mem_mib, web.request_capped) == (cpu, 256, True)
    batch = rows[("ops", "batch")]
    stats, cpu, mem = derived("batch", "worker")
    assert batch.container == "worker"  # neither is named like the Deployment: the busiest is written
    assert (batch.request_cpu_m, batch.replicas_measured) == (cpu, 1)
    assert batch.p95_cpu_cores == pytest.approx(stats.p95_cpu_cores, abs=2e-6)
    legacy = rows[("ops", "legacy")]  # mapped by pod name
    stats, cpu, mem = derived("legacy", "legacy")
    assert (legacy.request_cpu_m, legacy.request_mem_mib, legacy.limit_mem_mib, legacy.replicas_measured) == (
        cpu,
        64,
        64,
        4,
    )
    assert mem > 64
    assert legacy.p95_mem_mib == pytest.approx(stats.p95_mem_mib, abs=2e-3)
    consumer = rows[("pay", "queue-consumer")]  # pods named worker-a / worker-b, mapped by owner
    stats, cpu, mem = derived("queue-consumer", "consumer")
    assert (consumer.container, consumer.request_cpu_m, consumer.replicas_measured) == ("", cpu, 2)
    search = rows[("shop", "search")]  # rolled out during the window: still 5 pods, same statistic
    stats, cpu, mem = derived("search", "search")
    assert mem > 1024
    assert (search.replicas_measured, search.request_cpu_m, search.request_mem_mib) == (5, cpu, 1024)
    assert search.limit_cpu_m == 2500  # the highest limit seen in the window
    assert AuditEvent.objects.filter(action="microservice.discovered", cluster="prod").count() == 7
    summary = AuditEvent.objects.get(action="collection.run", cluster="prod")
    assert (summary.after["added"], summary.after["run"]) == (7, run.pk)


def test_rerunning_does_not_duplicate(prom, prom_cluster, now, orm_store):
    collect(prom_cluster, days=4, now=now, store=orm_store)
    before = list(Microservice.objects.order_by("id").values())
    # when
    run = collect(prom_cluster, days=4, now=now, store=orm_store)
    # then
    assert DailyPeak.objects.count() == 27
    assert Microservice.objects.count() == 7
    assert (run.services_added, run.services_updated, run.services_vanished) == (0, 0, 0)
    assert list(Microservice.objects.order_by("id").values()) == before
    assert AuditEvent.objects.filter(action="microservice.refresh").count() == 0


def test_a_changed_window_replaces_the_day(prom, prom_cluster, now, orm_store):
    collect(prom_cluster, days=4, now=now, store=orm_store)
    # when: the window shrinks to 10:00-11:00 and the last day is collected again
    prom_cluster.peak_end = datetime.time(11, 0)
    prom_cluster.save()
    run = collect(prom_cluster, days=2, now=now, store=orm_store)
    # then
    assert run.state == "done"
    day = prom.days[-1]
    rows = DailyPeak.objects.filter(day=day)
    assert rows.count() == 9
    assert {r.window_end for r in rows} == {prom.prod.window_bounds(day)[0] + datetime.timedelta(hours=1)}
    assert DailyPeak.objects.filter(day=prom.days[0]).first().window_end == prom.prod.window_bounds(prom.days[0])[1]
    assert DailyPeak.objects.count() == 27
    queries = CollectionRun.objects.get(pk=run.pk).queries
    assert {name for name, text in queries.items() if "[3600s:30s])" in text} == {
        *(["usage"] if prom.backend == "victoriametrics" else ["p95_cpu_cores", "p95_mem_mib", "pod_count"]),
        "p95_cpu_pct",
        "p95_mem_pct",
    }


def test_a_second_start_while_collecting_is_refused(prom_cluster):
    first = services.collection_start(cluster=prom_cluster, days=2, actor=ACTOR, enqueue=False)
    with pytest.raises(ValidationError, match=f"already collecting \\(run #{first.pk}"):
        services.collection_start(cluster=prom_cluster, days=2, actor=ACTOR, enqueue=False)
    assert CollectionRun.objects.count() == 1


def test_a_prometheus_that_is_down_fails_the_run_and_keeps_earlier_data(prom, prom_cluster, now, orm_store):
    collect(prom_cluster, days=4, now=now, store=orm_store)
    peaks_before = list(DailyPeak.objects.order_by("id").values())
    rows_before = list(Microservice.objects.order_by("id").values())
    prom_cluster.prometheus_url = f"http://127.0.0.1:{free_port()}"
    prom_cluster.save()
    # when
    run = collect(prom_cluster, days=4, now=now, store=orm_store)
    # then
    assert run.state == "failed"
    assert len(run.errors) == 1
    assert "is unreachable" in run.errors[0]
    assert (run.progress_done, run.days_collected) == (0, [])
    assert list(DailyPeak.objects.order_by("id").values()) == peaks_before
    assert list(Microservice.objects.order_by("id").values()) == rows_before
    failed = AuditEvent.objects.get(action="collection.run", result="error")
    assert "is unreachable" in failed.message


def test_a_query_prometheus_refuses_fails_the_run_with_its_message(prom, prom_cluster, now, orm_store):
    collect(prom_cluster, days=4, now=now, store=orm_store)
    peaks_before = list(DailyPeak.objects.order_by("id").values())
    prom_cluster.prometheus_label_key = "not-a-label"  # a label name PromQL cannot parse
    prom_cluster.save()
    # when
    run = collect(prom_cluster, days=4, now=now, store=orm_store)
    # then
    assert run.state == "failed"
    if prom.backend == "prometheus":
        assert "refused the query (400): invalid parameter" in run.errors[0]
        assert "parse error" in run.errors[0]
    else:  # its reason, without the query it repeats
        assert 'refused the query (422): labelFilterExpr: unexpected token "-"' in run.errors[0]
    assert list(DailyPeak.objects.order_by("id").values()) == peaks_before


def test_a_cluster_without_prometheus_cannot_start(prom_cluster):
    prom_cluster.prometheus_url = ""
    prom_cluster.save()
    with pytest.raises(ValidationError, match="has no Prometheus URL"):
        services.collection_start(cluster=prom_cluster, days=2, actor=ACTOR, enqueue=False)
    assert CollectionRun.objects.count() == 0


@pytest.mark.parametrize("days", [0, 401])
def test_days_out_of_range_are_refused(prom_cluster, days):
    with pytest.raises(ValidationError):
        services.collection_start(cluster=prom_cluster, days=days, actor=ACTOR, enqueue=False)
    assert CollectionRun.objects.count() == 0


def test_collection_into_real_clickhouse(prom, prom_cluster, now, clickhouse_url):
    from apps.metrics.clickhouse import ClickHouseDoor
    from apps.metrics.store import ClickHouseStore

    door = ClickHouseDoor.from_url(clickhouse_url)
    store = ClickHouseStore(door)
    store.ensure_schema()
    collect(prom_cluster, days=4, now=now, store=store)
    run = collect(prom_cluster, days=4, now=now, store=store)
    assert run.state == "done"
    assert store.days(cluster="prod") == dict.fromkeys(prom.days, 9)
    cart = store.rows(cluster="prod", day_from=prom.days[1], day_to=prom.days[1], deployment="cart")
    day = prom.days[1]
    assert [(r.container, r.pod_count) for r in cart] == [("cart", 3), ("istio-proxy", 3)]
    assert [r.p95_cpu_cores for r in cart] == [
        pytest.approx(expected(prom, "cart", "cart", day).p95_cpu_cores, abs=2e-6),
        pytest.approx(expected(prom, "cart", "istio-proxy", day).p95_cpu_cores, abs=2e-6),
    ]
    assert Microservice.objects.get(name="cart").request_capped is True
    door.close()


def test_an_abandoned_run_does_not_block_the_cluster_forever(prom_cluster):
    # given: a run whose worker died hours ago
    stale = services.collection_start(cluster=prom_cluster, days=2, actor=ACTOR, enqueue=False)
    CollectionRun.objects.filter(pk=stale.pk).update(
        state="running", created_at=timezone.now() - datetime.timedelta(hours=7)
    )
    # when
    fresh = services.collection_start(cluster=prom_cluster, days=2, actor=ACTOR, enqueue=False)
    # then
    stale.refresh_from_db()
    assert (stale.state, stale.errors) == ("failed", ["Abandoned: no progress for 6 hours."])
    assert fresh.state == "queued"
