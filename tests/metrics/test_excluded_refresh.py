"""Excluded days in the refresh (issue 11 §4): real Prometheus history whose busiest day is an incident.

The generated history (tests/services/prometheus.py) peaks on its second day (factor 2.0, the
"incident"); the others run at 1.0 and 1.25. Expected values come from the generator's formulas.
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

ACTOR = Actor.system("tester", source="system")
OPERATOR = Actor.system("operator1", source="api")


def rows_of(cluster):
    return {(s.namespace, s.name): s for s in Microservice.objects.filter(cluster=cluster)}


def test_an_excluded_incident_day_moves_the_source_day_and_the_requests(prom, prom_cluster, now, orm_store):
    # given: three days collected; the incident day (factor 2.0) is every service's busiest
    run = services.collection_start(cluster=prom_cluster, days=4, actor=ACTOR, concurrency=4, enqueue=False)
    run = services.collection_run(run_id=run.pk, now=now, store=orm_store)
    assert run.state == "done", run.errors
    first, incident, last = prom.days
    cart = rows_of(prom_cluster)[("shop", "cart")]
    assert (cart.source_day, cart.request_cpu_m, cart.request_mem_mib) == (incident, 880, 512)
    archived = DailyPeak.objects.filter(cluster="prod", day=incident).count()
    # when: the incident is entered in the calendar and the control table refreshed
    entry = excluded_days.excluded_day_create(actor=OPERATOR, cluster=prom_cluster, start=incident, reason="incident")
    today = last + datetime.timedelta(days=1)
    result = control_table_refresh(cluster=prom_cluster, store=orm_store, today=today, actor=ACTOR)
    # then: the next busiest day (factor 1.25) is the source, the requests follow it
    rows = rows_of(prom_cluster)
    cart = rows[("shop", "cart")]
    # 0.40 cores × 1.25 × mean pod multiplier 1.1 = 0.55; 300 MiB × 1.25 × 1.1 = 412.5 → 413 (under 512)
    assert (cart.source_day, cart.p95_cpu_cores, cart.request_cpu_m, cart.request_mem_mib) == (last, 0.55, 550, 413)
    assert cart.request_capped is False
    search = rows[("shop", "search")]  # 0.6 × 1.25 × 1.2 = 0.9 cores; 700 × 1.25 × 1.2 = 1050 MiB > 1024
    assert (search.source_day, search.request_cpu_m, search.request_mem_mib, search.request_capped) == (
        last,
        900,
        1024,
        True,
    )
    web = rows[("shop", "web")]  # 0.12 × 1.25 = 0.15 cores; 150 × 1.25 = 187.5 → 188 MiB
    assert (web.source_day, web.request_cpu_m, web.request_mem_mib) == (last, 150, 188)
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
    # then: the first day (factor 1.0) is left: 0.44 cores, 330 MiB
    cart = rows_of(prom_cluster)[("shop", "cart")]
    assert (cart.source_day, cart.request_cpu_m, cart.request_mem_mib) == (first, 440, 330)


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
