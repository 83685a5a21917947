"""Collection against a real Prometheus loaded with generated history; expectations from the generator."""

from __future__ import annotations

import datetime

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import Actor
from apps.control.models import Microservice
from apps.metrics import services
from apps.metrics.models import CollectionRun, DailyPeak
from tests.services import free_port
from tests.services.history import (
    expected_cpu_cores,
    expected_cpu_pct,
    expected_mem_mib,
    expected_mem_pct,
)

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


def collect(cluster, *, days, now, store, concurrency=4):
    run = services.collection_start(cluster=cluster, days=days, actor=ACTOR, concurrency=concurrency, enqueue=False)
    return services.collection_run(run_id=run.pk, now=now, store=store)


def test_collected_rows_match_the_generators_formulas(prom, prom_cluster, now, orm_store):
    # when
    run = collect(prom_cluster, days=4, now=now, store=orm_store)
    # then
    assert run.state == "done", run.errors
    assert run.skipped_days == [(prom.days[-1] + datetime.timedelta(days=1)).isoformat()]
    assert run.days_collected == [day.isoformat() for day in prom.days]
    assert (run.progress_done, run.progress_total) == (33, 33)  # 3 days × 11 statistics
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
                start, end = history.window_bounds(day)
                assert (row.window_start, row.window_end) == (start, end)
                assert row.pod_count == dep.pods
                assert row.p95_cpu_cores == pytest.approx(expected_cpu_cores(history, dep, container, day), abs=2e-6)
                assert row.p95_mem_mib == pytest.approx(expected_mem_mib(history, dep, container, day), abs=2e-3)
                if container.limit_cpu_m is None:
                    assert (row.p95_cpu_pct, row.p95_mem_pct, row.limit_cpu_m, row.limit_mem_mib) == (None,) * 4
                else:
                    assert row.p95_cpu_pct == pytest.approx(expected_cpu_pct(history, dep, container, day), abs=2e-3)
                    assert row.p95_mem_pct == pytest.approx(expected_mem_pct(history, dep, container, day), abs=2e-3)
                    assert (row.limit_cpu_m, row.limit_mem_mib) == (container.limit_cpu_m, container.limit_mem_mib)
                assert (row.request_cpu_m, row.request_mem_mib) == (container.request_cpu_m, container.request_mem_mib)
                assert (row.quantile, row.aggregation, row.step_seconds) == (0.95, "avg", 30)


def test_the_busier_day_is_clearly_higher(prom, prom_cluster, now, orm_store):
    collect(prom_cluster, days=4, now=now, store=orm_store)
    cart = {r.day: r.p95_cpu_cores for r in DailyPeak.objects.filter(deployment="cart", container="cart")}
    # 0.40 cores at peak × mean pod multiplier 1.1 × the day's factor 1.0 / 2.0 / 1.25
    assert cart == {prom.days[0]: 0.44, prom.days[1]: 0.88, prom.days[2]: 0.55}


def test_max_aggregation_and_another_quantile_change_the_statistic(prom, prom_cluster, now, orm_store):
    # given: the maximum over pods instead of the average
    prom_cluster.peak_aggregation = "max"
    prom_cluster.save()
    # when
    collect(prom_cluster, days=2, now=now, store=orm_store)
    # then: search has 5 pods with multipliers 1.0..1.4
    row = DailyPeak.objects.get(day=prom.days[-1], deployment="search")
    assert row.p95_cpu_cores == pytest.approx(0.6 * 1.25 * 1.4, abs=2e-6)
    assert row.aggregation == "max"


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
    cart = rows[("shop", "cart")]
    busiest = prom.days[1]
    assert cart.source_day == busiest
    assert cart.container == ""  # the container named like the Deployment
    assert (cart.replicas_measured, cart.replicas_initial) == (3, 3)
    assert (cart.p95_cpu_cores, cart.p95_mem_mib, cart.p95_cpu_pct) == (0.88, 660.0, 88.0)
    assert (cart.limit_cpu_m, cart.limit_mem_mib) == (1000, 512)
    # 880 m fits under the 1000 m limit; 660 MiB does not fit under 512 MiB: capped and flagged
    assert (cart.request_cpu_m, cart.request_mem_mib, cart.request_capped) == (880, 512, True)
    api = rows[("pay", "api")]
    assert (api.request_cpu_m, api.request_mem_mib, api.limit_cpu_m, api.limit_mem_mib) == (630, 672, None, None)
    assert (api.p95_cpu_pct, api.request_capped) == (None, False)
    web = rows[("shop", "web")]
    assert (web.request_cpu_m, web.request_mem_mib, web.request_capped) == (240, 256, True)
    batch = rows[("ops", "batch")]
    assert batch.container == "worker"  # neither is named like the Deployment: the busiest is written
    assert (batch.request_cpu_m, batch.p95_cpu_cores, batch.replicas_measured) == (600, 0.6, 1)
    legacy = rows[("ops", "legacy")]  # mapped by pod name: 0.02 × 1.15 × 2 cores, 33 × 1.15 × 2 MiB
    assert (legacy.request_cpu_m, legacy.request_mem_mib, legacy.limit_mem_mib, legacy.replicas_measured) == (
        46,
        64,
        64,
        4,
    )
    assert legacy.p95_mem_mib == 75.9
    consumer = rows[("pay", "queue-consumer")]  # pods named worker-a / worker-b, mapped by owner
    assert (consumer.container, consumer.request_cpu_m, consumer.replicas_measured) == ("", 189, 2)
    search = rows[("shop", "search")]  # rolled out during the window: still 5 pods, same statistic
    assert (search.replicas_measured, search.request_cpu_m, search.request_mem_mib) == (5, 1440, 1024)
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
    assert CollectionRun.objects.get(pk=run.pk).queries["p95_cpu_cores"].endswith("[3600s:30s])")


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
    assert "refused the query (400)" in run.errors[0]
    assert "parse error" in run.errors[0]
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
    assert [(r.container, r.p95_cpu_cores, r.pod_count) for r in cart] == [("cart", 0.88, 3), ("istio-proxy", 0.11, 3)]
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
