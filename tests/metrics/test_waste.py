"""Waste and money (issue 11 §5): exact figures on ClickHouse 18.16, chdb and the ORM store, the same on each.

Expected values are written from the formulas of ``apps.metrics.dashboard.waste``; prices are 0.04 per
CPU core-hour and 0.005 per memory GiB-hour, 730 hours a month.
"""

from __future__ import annotations

import datetime
import random

import pytest

from apps.audit.services import Actor
from apps.control import excluded_days
from apps.metrics.clickhouse import ClickHouseDoor
from apps.metrics.dashboard import ClickHouseDashboard, OrmDashboard, as_payload
from apps.metrics.dashboard import waste as w
from apps.metrics.store import ClickHouseStore, OrmStore
from tests.factories import ClusterFactory
from tests.metrics import test_dashboard
from tests.metrics.test_dashboard import D0, D1, D2, D3, load, peak

pytestmark = pytest.mark.django_db
stores = test_dashboard.stores  # (peak store, dashboard backend) on ClickHouse 18.16, chdb and the ORM
CPU, MEM = 0.04, 0.005


def rows(namespace, deployment, container, day, pods, cpu, req_cpu, mem, req_mem):
    return peak(
        day,
        namespace,
        deployment,
        container,
        pod_count=pods,
        p95_cpu_cores=cpu,
        request_cpu_m=req_cpu,
        p95_mem_mib=mem,
        request_mem_mib=req_mem,
        limit_cpu_m=2000,
        limit_mem_mib=1024,
    )


SCENARIO = {
    D0: [rows("pay", "api", "api", D0, 10, 5.0, 10000, 100.0, 4096)],  # outside the range
    D1: [
        rows("shop", "cart", "cart", D1, 3, 0.3, 500, 200.0, 512),
        rows("shop", "cart", "sidecar", D1, 3, 0.05, 100, 40.0, 64),
    ],
    D2: [  # cart's busiest day: 0.6 cores × 4 pods
        rows("shop", "cart", "cart", D2, 4, 0.5, 500, 400.0, 512),
        rows("shop", "cart", "sidecar", D2, 4, 0.1, 100, 50.0, 64),
        rows("pay", "api", "api", D2, 2, 0.3, None, 300.0, 256),  # no CPU request; memory above its request
    ],
    D3: [
        rows("shop", "cart", "cart", D3, 3, 0.2, 500, 150.0, 512),
        rows("shop", "cart", "sidecar", D3, 3, 0.02, 100, 30.0, 64),
        rows("shop", "web", "web", D3, 2, 0.1, 1000, 100.0, 128),
    ],
}


def money(cores, gib):
    return round((cores * CPU + gib * MEM) * 730, 2)


def service(
    namespace,
    deployment,
    day,
    pods,
    cpu_req,
    cpu_used,
    cpu_waste,
    cpu_pct,
    mem_req,
    mem_used,
    mem_waste,
    mem_pct,
    score,
):
    return {
        "namespace": namespace,
        "deployment": deployment,
        "source_day": day.isoformat(),
        "pods": pods,
        "cpu_request_cores": cpu_req,
        "cpu_used_cores": cpu_used,
        "cpu_waste_cores": cpu_waste,
        "cpu_waste_pct": cpu_pct,
        "mem_request_gib": round(mem_req / 1024, 4),
        "mem_used_gib": round(mem_used / 1024, 4),
        "mem_waste_gib": round(mem_waste / 1024, 4),
        "mem_waste_pct": mem_pct,
        "monthly_cost": money(cpu_waste, mem_waste / 1024),
        "score": score,
    }


# cart on D2: 600 m requested, 0.6 cores used → no CPU waste; 576 − 450 = 126 MiB × 4 pods wasted (21.875 %)
CART = service("shop", "cart", D2, 4, 2.4, 2.4, 0.0, 0.0, 2304, 1800, 504, 21.88, 11)
# web on D3: (1.0 − 0.1) × 2 = 1.8 cores (90 %); (128 − 100) × 2 = 56 MiB (21.875 %); score (90 + 21.875) / 2 → 56
WEB = service("shop", "web", D3, 2, 2.0, 0.2, 1.8, 90.0, 256, 200, 56, 21.88, 56)
# api on D2: no CPU request (no CPU figure); memory used above the request → 0 wasted, 0 %
API = service("pay", "api", D2, 2, 0.0, 0.6, 0.0, None, 512, 600, 0, 0.0, 0)


def test_waste_per_service_namespace_cluster_and_day(stores):
    # given
    store, backend = stores
    load(store, SCENARIO)
    cluster = ClusterFactory(name="prod", price_cpu_core_hour=CPU, price_mem_gib_hour=MEM)
    # when
    summary = as_payload(w.waste_summary(cluster=cluster, day_from=D1, day_to=D3, backend=backend))
    # then
    assert summary["services"] == [API, CART, WEB]
    assert summary["top"] == [WEB, CART, API]  # most money first
    assert summary["totals"] == {
        "services": 3,
        "cpu_request_cores": 4.4,
        "cpu_waste_cores": 1.8,
        "cpu_waste_pct": 40.91,  # 1.8 / 4.4
        "mem_request_gib": 3.0,  # (2304 + 256 + 512) MiB
        "mem_waste_gib": round(560 / 1024, 4),
        "mem_waste_pct": 18.23,  # 560 / 3072
        "monthly_cost": money(1.8, 560 / 1024),
    }
    assert summary["totals"]["monthly_cost"] == 54.56
    assert [n["namespace"] for n in summary["namespaces"]] == ["pay", "shop"]
    shop = summary["namespaces"][1]["totals"]
    assert (shop["services"], shop["cpu_request_cores"], shop["cpu_waste_cores"], shop["mem_request_gib"]) == (
        2,
        4.4,
        1.8,
        2.5,
    )
    assert summary["trend"] == [
        # D1: cart (0.6 − 0.35) × 3 cores, (576 − 240) × 3 MiB
        {"day": "2026-03-01", "cpu_waste_cores": 0.75, "mem_waste_gib": round(1008 / 1024, 4),
         "monthly_cost": money(0.75, 1008 / 1024), "is_excluded": False},
        # D2: cart 126 × 4 MiB; api wastes nothing
        {"day": "2026-03-02", "cpu_waste_cores": 0.0, "mem_waste_gib": round(504 / 1024, 4),
         "monthly_cost": money(0, 504 / 1024), "is_excluded": False},
        # D3: cart (0.6 − 0.22) × 3 + web 1.8 cores; cart (576 − 180) × 3 + web 56 MiB
        {"day": "2026-03-03", "cpu_waste_cores": 2.94, "mem_waste_gib": round(1244 / 1024, 4),
         "monthly_cost": money(2.94, 1244 / 1024), "is_excluded": False},
    ]  # fmt: skip
    assert (summary["hours_per_month"], summary["excluded_days"]) == (730, [])


def test_an_excluded_day_is_never_the_source_day_but_stays_in_the_trend(stores):
    store, backend = stores
    load(store, SCENARIO)
    cluster = ClusterFactory(name="prod", price_cpu_core_hour=CPU, price_mem_gib_hour=MEM)
    excluded_days.excluded_day_create(actor=Actor.system(), cluster=cluster, start=D2, reason="incident")
    # when
    summary = as_payload(w.waste_summary(cluster=cluster, day_from=D1, day_to=D3, backend=backend))
    # then: cart falls back to D1 (1.05 load > 0.66 on D3); api ran only on D2: no source day in range
    cart = service("shop", "cart", D1, 3, 1.8, 1.05, 0.75, 41.67, 1728, 720, 1008, 58.33, 50)
    assert summary["services"] == [cart, WEB]
    assert summary["excluded_days"] == ["2026-03-02"]
    assert [(p["day"], p["is_excluded"]) for p in summary["trend"]] == [
        ("2026-03-01", False),
        ("2026-03-02", True),
        ("2026-03-03", False),
    ]


def test_without_prices_no_money_and_the_top_ranks_by_cores(stores):
    store, backend = stores
    load(store, SCENARIO)
    cluster = ClusterFactory(name="prod")
    summary = w.waste_summary(cluster=cluster, day_from=D1, day_to=D3, backend=backend)
    assert summary.totals.monthly_cost is None
    assert {s.monthly_cost for s in summary.services} == {None}
    assert {p.monthly_cost for p in summary.trend} == {None}
    assert [(s.deployment, s.cpu_waste_cores, s.mem_waste_gib) for s in summary.top] == [
        ("web", 1.8, round(56 / 1024, 4)),
        ("cart", 0.0, round(504 / 1024, 4)),
        ("api", 0.0, 0.0),
    ]


@pytest.mark.parametrize(
    ("cpu_pct", "mem_pct", "score"),
    [(None, None, None), (90.0, None, 90), (None, 12.5, 13), (0.0, 0.0, 0), (100.0, 100.0, 100), (40.0, 41.0, 41)],
)
def test_the_waste_score_is_the_mean_of_the_known_percentages_rounded_half_up(cpu_pct, mem_pct, score):
    assert w.waste_score(cpu_waste_pct=cpu_pct, mem_waste_pct=mem_pct) == score


def test_monthly_cost_counts_each_price_that_is_set():
    assert w.monthly_cost(cpu_cores=2.0, mem_gib=4.0, price_cpu=None, price_mem=None) is None
    assert w.monthly_cost(cpu_cores=2.0, mem_gib=4.0, price_cpu=0.05, price_mem=None) == 73.0  # 2 × 0.05 × 730
    assert w.monthly_cost(cpu_cores=2.0, mem_gib=4.0, price_cpu=None, price_mem=0.01) == 29.2  # 4 × 0.01 × 730


def random_scenario(seed: int) -> dict[datetime.date, list]:
    """40 services × 20 days, one or two containers, some values missing; eighths keep sums exact."""
    rng = random.Random(seed)
    days = [D1 + datetime.timedelta(days=i) for i in range(20)]
    scenario: dict[datetime.date, list] = {day: [] for day in days}

    def maybe(value):
        return None if rng.random() < 0.1 else value

    for i in range(40):
        namespace, deployment = f"ns-{i % 6}", f"svc-{i:02d}"
        containers = [deployment] if i % 3 else [deployment, "sidecar"]
        for day in rng.sample(days, rng.randint(1, 20)):
            pods = maybe(rng.randint(1, 12))
            for container in containers:
                scenario[day].append(
                    rows(
                        namespace,
                        deployment,
                        container,
                        day,
                        pods,
                        maybe(rng.randint(0, 16) / 8),
                        maybe(rng.choice([250, 500, 1000, 2000])),
                        maybe(rng.randint(1, 8192) / 8),
                        maybe(rng.choice([256, 512, 1024])),
                    )
                )
    return scenario


def test_clickhouse_server_chdb_and_orm_agree_on_random_waste(clickhouse_url, chdb_executor):
    # given: the same random rows in the three databases, one day excluded
    scenario = random_scenario(seed=11)
    door = ClickHouseDoor.from_url(clickhouse_url)
    ch_store, chdb_store = ClickHouseStore(door), ClickHouseStore(chdb_executor)
    ch_store.ensure_schema()
    chdb_store.ensure_schema()
    for store in (ch_store, chdb_store, OrmStore()):
        load(store, scenario)
    cluster = ClusterFactory(name="prod", price_cpu_core_hour=0.031, price_mem_gib_hour=0.0042)
    excluded_days.excluded_day_create(
        actor=Actor.system(), cluster=cluster, start=D1 + datetime.timedelta(days=3), reason="x"
    )
    backends = {
        "clickhouse-18.16": ClickHouseDashboard(door),
        "chdb": ClickHouseDashboard(chdb_executor),
        "orm": OrmDashboard(),
    }
    day_to = D1 + datetime.timedelta(days=19)
    try:
        # when
        results = {
            name: as_payload(w.waste_summary(cluster=cluster, day_from=D1, day_to=day_to, backend=backend))
            for name, backend in backends.items()
        }
    finally:
        door.close()
    # then
    orm = results["orm"]
    assert orm["totals"]["services"] == 40
    assert orm["totals"]["cpu_waste_cores"] > 0
    assert len(orm["top"]) == 10
    assert len(orm["trend"]) == 20
    assert sum(p["is_excluded"] for p in orm["trend"]) == 1
    assert results["clickhouse-18.16"] == orm
    assert results["chdb"] == orm


def test_the_api_returns_the_figures_with_filters_and_order(viewer_api):
    load(OrmStore(), SCENARIO)
    ClusterFactory(name="prod", price_cpu_core_hour=CPU, price_mem_gib_hour=MEM)
    url = "/api/v1/dashboard/waste?cluster=prod&day_from=2026-03-01&day_to=2026-03-03"
    # when
    everything = viewer_api.get(url)
    shop_by_score = viewer_api.get(url + "&namespace=shop&ordering=-score")
    wasteful = viewer_api.get(url + "&min_score=50")
    bad = viewer_api.get(url + "&ordering=name&min_score=101")
    # then
    assert everything.status_code == 200
    body = everything.json()
    assert body["services"] == [API, CART, WEB]
    assert body["totals"]["monthly_cost"] == 54.56
    assert (body["price_cpu_core_hour"], body["price_mem_gib_hour"], body["hours_per_month"]) == (CPU, MEM, 730)
    assert [s["deployment"] for s in shop_by_score.json()["services"]] == ["web", "cart"]
    assert [s["deployment"] for s in wasteful.json()["services"]] == ["web"]
    assert wasteful.json()["top"] == [WEB, CART, API]  # the filters narrow the list only
    assert bad.status_code == 400
    assert sorted(bad.json()["errors"]) == ["min_score", "ordering"]


def test_reading_the_waste_needs_the_archive_permission(nobody):
    from rest_framework.test import APIClient

    ClusterFactory(name="prod")
    client = APIClient()
    client.force_authenticate(nobody)
    assert client.get("/api/v1/dashboard/waste?cluster=prod").status_code == 403
