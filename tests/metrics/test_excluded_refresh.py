"""Excluded days in the refresh (issue 11 §4): real Prometheus history whose busiest day is an incident.

The generated history (tests/servers/prometheus.py) peaks on its second day (factor 2.0, the
"incident"); the others run at 1.0 and 1.25. Expected values come from the generated samples.
"""

from __future__ import annotations

import datetime

import pytest

from apps.audit.models import AuditEvent
from apps.audit.services import Actor
from apps.control import excluded_days
from apps.control.models import Microservice
from apps.metrics import services
from apps.metrics.models import DailyPeak
from apps.metrics.refresh import control_table_refresh
from apps.metrics.store import OrmStore
from tests.factories import ClusterFactory
from tests.metrics.test_refresh import TODAY, peak
from tests.metrics.test_refresh import D as DAYS
from tests.metrics.test_services import expected, request_from

ACTOR = Actor.system("tester", source="system")
OPERATOR = Actor.system("operator1", source="api")


def rows_of(cluster):
    return {(s.namespace, s.name): s for s in Microservice.objects.filter(cluster=cluster)}


def wanted(prom, row, container: str, day: datetime.date) -> tuple[float, int, int, bool]:
    """The row's figures if ``day`` is its source day: P95 CPU, the CPU and memory requests, capped?

    From the generated samples (tests/servers/history_stats.py) and DESIGN §5.4 without headroom,
    each request capped at the row's limit.
    """
    stats = expected(prom, row.name, container, day)
    cpu = request_from(round(stats.p95_cpu_cores, 6), 1000, 10)
    mem = request_from(round(stats.p95_mem_mib, 3), 1, 16)
    capped = row.limit_mem_mib is not None and mem > row.limit_mem_mib
    if row.limit_cpu_m is not None and cpu > row.limit_cpu_m:
        cpu, capped = row.limit_cpu_m, True
    return stats.p95_cpu_cores, cpu, min(mem, row.limit_mem_mib) if row.limit_mem_mib else mem, capped


def test_an_excluded_incident_day_moves_the_source_day_and_the_requests(prom, prom_cluster, now, orm_store):
    # given: three days collected; the incident day (factor 2.0) is every service's busiest. One day of
    # data is enough and no day-to-day clamp (issue 11's refresh rules, off here: this is the source day's test)
    prom_cluster.min_days, prom_cluster.max_change_pct = 1, 100
    prom_cluster.save(update_fields=["min_days", "max_change_pct"])
    run = services.collection_start(cluster=prom_cluster, days=4, actor=ACTOR, concurrency=4, enqueue=False)
    run = services.collection_run(run_id=run.pk, now=now, store=orm_store)
    assert run.state == "done", run.errors
    first, incident, last = prom.days
    cart = rows_of(prom_cluster)[("shop", "cart")]
    _, cpu, mem, capped = wanted(prom, cart, "cart", incident)
    assert (cart.source_day, cart.request_cpu_m, cart.request_mem_mib, capped) == (incident, cpu, mem, True)
    archived = DailyPeak.objects.filter(cluster="prod", day=incident).count()
    # when: the incident is entered in the calendar and the control table refreshed
    entry = excluded_days.excluded_day_create(actor=OPERATOR, cluster=prom_cluster, start=incident, reason="incident")
    today = last + datetime.timedelta(days=1)
    result = control_table_refresh(cluster=prom_cluster, store=orm_store, today=today, actor=ACTOR)
    # then: the next busiest day (factor 1.25) is the source, the requests follow it
    rows = rows_of(prom_cluster)
    for (namespace, name), container in {
        ("shop", "cart"): "cart",
        ("shop", "search"): "search",
        ("shop", "web"): "web",
    }.items():
        row = rows[(namespace, name)]
        p95, cpu, mem, capped = wanted(prom, row, container, last)
        assert (row.source_day, row.request_cpu_m, row.request_mem_mib, row.request_capped) == (
            last,
            cpu,
            mem,
            capped,
        ), name
        assert row.p95_cpu_cores == pytest.approx(p95, abs=2e-6), name
    assert rows[("shop", "cart")].request_cpu_m < cart.request_cpu_m  # a quieter day than the incident
    assert {row.source_day for row in rows.values()} == {last}
    assert result.updated == 7
    assert result.excluded_days == [incident]
    summary = AuditEvent.objects.filter(action="collection.run", cluster="prod").order_by("-id").first()
    assert summary.after["excluded_days"] == 1
    # the archive keeps the excluded day
    assert DailyPeak.objects.filter(cluster="prod", day=incident).count() == archived == 9
    # when: the calendar widens over the last day too
    excluded_days.excluded_day_update(actor=OPERATOR, excluded=entry, data={"end": last})
    control_table_refresh(cluster=prom_cluster, store=orm_store, today=today, actor=ACTOR)
    # then: the first day (factor 1.0) is left
    cart = rows_of(prom_cluster)[("shop", "cart")]
    _, cpu, mem, _ = wanted(prom, cart, "cart", first)
    assert (cart.source_day, cart.request_cpu_m, cart.request_mem_mib) == (first, cpu, mem)


@pytest.fixture
def prod(db):
    # min_days and max_change_pct (issue 11) off: these tests check the source-day choice alone
    return ClusterFactory(name="prod", lookback_days=10, peak_day_mode="cluster", min_days=1, max_change_pct=100)


def test_cluster_mode_skips_excluded_days_and_a_service_seen_only_then_keeps_its_row(prod):
    # given: D[2] is the cluster's busiest day; "promo" ran only on D[2]
    store = OrmStore()
    rows = [
        peak(DAYS[1], "cart", cpu=0.2),
        peak(DAYS[2], "cart", cpu=0.5),
        peak(DAYS[3], "cart", cpu=0.3),
        peak(DAYS[1], "web", cpu=0.1),
        peak(DAYS[2], "web", cpu=0.4),
        peak(DAYS[3], "web", cpu=0.05),
        peak(DAYS[2], "promo", cpu=0.9),
    ]
    for day in (DAYS[1], DAYS[2], DAYS[3]):
        store.day_replace(cluster="prod", day=day, rows=[row for row in rows if row.day == day])
    control_table_refresh(cluster=prod, store=store, today=TODAY, actor=ACTOR)
    promo_before = Microservice.objects.get(cluster=prod, name="promo")
    assert (promo_before.source_day, promo_before.request_cpu_m) == (DAYS[2], 900)
    # when
    excluded_days.excluded_day_create(actor=OPERATOR, cluster=prod, start=DAYS[2], reason="promotion")
    result = control_table_refresh(cluster=prod, store=store, today=TODAY, actor=ACTOR)
    # then: the busiest remaining day is D[3]: (0.3 + 0.05) × 2 pods = 0.7 > (0.2 + 0.1) × 2 = 0.6 on D[1]
    assert result.cluster_source_day == DAYS[3]
    rows_now = {s.name: s for s in Microservice.objects.filter(cluster=prod)}
    assert (rows_now["cart"].source_day, rows_now["cart"].request_cpu_m) == (DAYS[3], 300)
    assert (rows_now["web"].source_day, rows_now["web"].request_cpu_m) == (DAYS[3], 50)
    # promo was seen only on the excluded day: still present, its measured fields as they were
    promo = rows_now["promo"]
    assert (promo.is_present, promo.source_day, promo.request_cpu_m) == (True, DAYS[2], 900)
