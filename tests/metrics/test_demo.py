"""``kubedoor_demo`` writes 30 plausible days of daily peaks (issue 11 §7) and refreshes the control table."""

from __future__ import annotations

import datetime
import io

import pytest
from django.core.management import call_command

from apps.control.models import Cluster, ExcludedDay, Microservice
from apps.metrics import demo
from apps.metrics.dashboard import waste
from apps.metrics.models import DailyPeak
from apps.metrics.selectors import cluster_today
from apps.metrics.store import PEAK_FIELDS

pytestmark = pytest.mark.django_db


def run() -> str:
    out = io.StringIO()
    call_command("kubedoor_demo", stdout=out)
    return out.getvalue()


def snapshot() -> list[tuple]:
    return list(
        DailyPeak.objects.order_by("day", "namespace", "deployment").values_list(
            "day", "namespace", "deployment", "pod_count", "p95_cpu_cores", "p95_mem_mib", "request_cpu_m"
        )
    )


def test_the_demo_writes_30_days_with_a_rhythm_an_incident_an_oom_service_and_an_hpa():
    # when
    first = run()
    # then
    cluster = Cluster.objects.get(name="demo")
    last_day = cluster_today(cluster) - datetime.timedelta(days=1)
    incident = last_day - datetime.timedelta(days=demo.INCIDENT_DAYS_AGO)
    days = sorted(set(DailyPeak.objects.filter(cluster="demo").values_list("day", flat=True)))
    assert days == [last_day - datetime.timedelta(days=n) for n in range(29, -1, -1)]
    assert DailyPeak.objects.filter(cluster="demo").count() == 50 * 30
    assert f"50 microservices added, 1500 daily peaks over 30 days, {incident} excluded (incident)" in first
    # the incident is in the calendar with its reason, and no control row takes it as its source day
    excluded = ExcludedDay.objects.get(cluster=cluster)
    assert (excluded.start, excluded.end, excluded.reason) == (incident, incident, demo.INCIDENT_REASON)
    rows = Microservice.objects.filter(cluster=cluster)
    assert rows.filter(source_day=incident).count() == 0
    assert rows.filter(source_day__isnull=True).count() == 0
    # the incident is the busiest day of every service in the archive
    cart = {p.day: p.p95_cpu_cores for p in DailyPeak.objects.filter(cluster="demo", deployment="cart")}
    assert max(cart, key=cart.get) == incident
    # weekly rhythm: the Sundays are quieter than the weekdays
    sundays = [cpu for day, cpu in cart.items() if day.weekday() == 6]
    weekdays = [cpu for day, cpu in cart.items() if day.weekday() < 5 and day != incident]
    assert max(sundays) < min(weekdays)
    # the HPA-managed service: marked, its pods follow the load
    web = Microservice.objects.get(cluster=cluster, namespace="shop", name="web")
    assert web.hpa_name == "web"
    pods = set(DailyPeak.objects.filter(cluster="demo", deployment="web").values_list("pod_count", flat=True))
    assert len(pods) > 2
    assert min(pods) >= 3
    assert max(pods) <= 12
    # the OOM service runs its memory close to the limit; its kills go to the archive where it has the column
    ledger = DailyPeak.objects.filter(cluster="demo", namespace="payments", deployment="ledger")
    assert min(ledger.values_list("p95_mem_pct", flat=True)) > 80
    kills = [demo.oom_kills_for(namespace="payments", name="ledger", day=day, last_day=last_day) for day in days]
    # one kill 1, 5, 9, … 29 days before the last day (8 days), three on the incident day
    assert (sum(kills), kills[-1 - demo.INCIDENT_DAYS_AGO]) == (8 + 3, 3)
    if "oom_kills" in PEAK_FIELDS:
        assert sorted(ledger.values_list("oom_kills", flat=True)) == sorted(kills)
    # every figure stays within the limits
    for peak in DailyPeak.objects.filter(cluster="demo"):
        assert 0 < peak.p95_cpu_pct <= 100
        assert 0 < peak.p95_mem_pct <= 100
        assert peak.request_cpu_m <= peak.limit_cpu_m
        assert peak.request_mem_mib <= peak.limit_mem_mib
    # the waste board has services, money and a trend with the incident marked
    summary = waste.waste_summary(cluster=cluster, day_from=days[0], day_to=last_day)
    assert len(summary.top) == 10
    assert summary.totals.monthly_cost is not None
    assert summary.totals.monthly_cost > 0
    assert [p.day for p in summary.trend if p.is_excluded] == [incident]


def test_running_the_demo_again_changes_nothing():
    run()
    before = snapshot()
    rows = list(Microservice.objects.order_by("id").values())
    # when
    second = run()
    # then
    assert "0 microservices added" in second
    assert snapshot() == before
    assert list(Microservice.objects.order_by("id").values("id", "source_day", "request_cpu_m")) == [
        {"id": r["id"], "source_day": r["source_day"], "request_cpu_m": r["request_cpu_m"]} for r in rows
    ]
    assert ExcludedDay.objects.count() == 1
