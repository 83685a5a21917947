"""Dashboard aggregates: exact figures on the real ClickHouse 18.16 server, on chdb (a current
ClickHouse, same SQL) and with the ORM on PostgreSQL, and the backends agree on random data."""

from __future__ import annotations

import datetime
import random

import pytest

from apps.audit.services import Actor
from apps.control import excluded_days
from apps.metrics import dashboard
from apps.metrics.clickhouse import ClickHouseDoor
from apps.metrics.dashboard import ClickHouseDashboard, OrmDashboard, as_payload
from apps.metrics.store import ClickHouseStore, OrmStore, PeakRow
from tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db
UTC = datetime.UTC

D0 = datetime.date(2026, 2, 28)  # outside the range (and another month: another partition)
D1 = datetime.date(2026, 3, 1)
D2 = datetime.date(2026, 3, 2)
D3 = datetime.date(2026, 3, 3)


def peak(day, namespace, deployment, container, *, cluster="prod", **values) -> PeakRow:
    base = {
        "pod_count": None,
        "p95_cpu_cores": None,
        "p95_cpu_pct": None,
        "p95_mem_mib": None,
        "p95_mem_pct": None,
        "request_cpu_m": None,
        "request_mem_mib": None,
        "limit_cpu_m": None,
        "limit_mem_mib": None,
    }
    base.update(values)
    return PeakRow(
        cluster=cluster,
        day=day,
        namespace=namespace,
        deployment=deployment,
        container=container,
        window_start=datetime.datetime.combine(day, datetime.time(2, 0), UTC),
        window_end=datetime.datetime.combine(day, datetime.time(3, 30), UTC),
        quantile=0.95,
        aggregation="avg",
        step_seconds=30,
        collected_at=datetime.datetime(2026, 3, 4, 4, 0, tzinfo=UTC),
        **base,
    )


def res(pods, cpu, mem, req_cpu, req_mem, lim_cpu, lim_mem) -> dict:
    return {
        "pod_count": pods,
        "p95_cpu_cores": cpu,
        "p95_mem_mib": mem,
        "request_cpu_m": req_cpu,
        "request_mem_mib": req_mem,
        "limit_cpu_m": lim_cpu,
        "limit_mem_mib": lim_mem,
    }


SCENARIO = {
    D0: [peak(D0, "shop", "cart", "cart", **res(10, 5.0, 4000.0, 200, 256, 1000, 512))],
    D1: [
        # cart: two containers; load 0.375 × 3 = 1.125
        peak(D1, "shop", "cart", "cart", **res(3, 0.25, 300.0, 200, 256, 1000, 512)),
        peak(D1, "shop", "cart", "istio-proxy", **res(3, 0.125, 64.0, 100, 64, 500, 128)),
        # web: load 1.0 × 2 = 2.0, tied with D3: the later day wins
        peak(D1, "shop", "web", "web", **res(2, 1.0, 1024.0, 500, 512, 2000, 2048)),
        # api: pods unknown, so its load is unknown
        peak(D1, "pay", "api", "api", **res(None, 0.5, 128.0, 250, 512, None, 1024)),
    ],
    D2: [
        # cart's source day: load 0.625 × 4 = 2.5; the sidecar has no CPU limit, so no CPU limit
        peak(D2, "shop", "cart", "cart", **res(4, 0.5, 400.0, 200, 256, 1000, 512)),
        peak(D2, "shop", "cart", "istio-proxy", **res(4, 0.125, 64.0, 100, 64, None, 128)),
        # api: CPU unknown; no day has a load, so the latest day is its source
        peak(D2, "pay", "api", "api", **res(2, None, 256.0, 250, 512, None, 1024)),
        peak(D2, "shop", "cart", "cart", cluster="stage", **res(50, 9.0, 9000.0, 1, 1, 1, 1)),
    ],
    D3: [
        peak(D3, "shop", "web", "web", **res(1, 2.0, 512.0, 500, 512, 2000, 2048)),
        peak(D3, "pay", "ledger", "ledger", **res(5, 0.25, 128.0, 100, 128, 500, 256)),
    ],
}

EXPECTED_TOTALS = {
    "services": 4,
    "pods": 12,
    "cpu_request_cores": 2.7,
    "cpu_used_cores": 5.75,
    "cpu_limit_cores": 4.5,
    "mem_request_gib": 3.375,
    "mem_used_gib": 3.4375,
    "mem_limit_gib": 7.75,
}

EXPECTED_NAMESPACES = [
    {
        "namespace": "pay",
        "totals": {
            "services": 2,
            "pods": 7,
            "cpu_request_cores": 1.0,
            "cpu_used_cores": 1.25,
            "cpu_limit_cores": 2.5,
            "mem_request_gib": 1.625,
            "mem_used_gib": 1.125,
            "mem_limit_gib": 3.25,
        },
        "shares": {
            "services": 50.0,
            "pods": 58.33,
            "cpu_request_cores": 37.04,
            "cpu_used_cores": 21.74,
            "cpu_limit_cores": 55.56,
            "mem_request_gib": 48.15,
            "mem_used_gib": 32.73,
            "mem_limit_gib": 41.94,
        },
    },
    {
        "namespace": "shop",
        "totals": {
            "services": 2,
            "pods": 5,
            "cpu_request_cores": 1.7,
            "cpu_used_cores": 4.5,
            "cpu_limit_cores": 2.0,
            "mem_request_gib": 1.75,
            "mem_used_gib": 2.3125,
            "mem_limit_gib": 4.5,
        },
        "shares": {
            "services": 50.0,
            "pods": 41.67,
            "cpu_request_cores": 62.96,
            "cpu_used_cores": 78.26,
            "cpu_limit_cores": 44.44,
            "mem_request_gib": 51.85,
            "mem_used_gib": 67.27,
            "mem_limit_gib": 58.06,
        },
    },
]


def entry(namespace, deployment, day, value):
    return {"namespace": namespace, "deployment": deployment, "source_day": day.isoformat(), "value": value}


EXPECTED_TOP = {
    "load": [entry("shop", "cart", D2, 2.5), entry("shop", "web", D3, 2.0), entry("pay", "ledger", D3, 1.25)],
    "cpu_pct": [entry("shop", "web", D3, 100.0), entry("pay", "ledger", D3, 50.0)],
    "memory": [
        entry("shop", "cart", D2, 1856.0),
        entry("pay", "ledger", D3, 640.0),
        entry("pay", "api", D2, 512.0),
        entry("shop", "web", D3, 512.0),
    ],
    "mem_pct": [
        entry("shop", "cart", D2, 72.5),
        entry("pay", "ledger", D3, 50.0),
        entry("pay", "api", D2, 25.0),
        entry("shop", "web", D3, 25.0),
    ],
    "pods": [
        entry("pay", "ledger", D3, 5),
        entry("shop", "cart", D2, 4),
        entry("pay", "api", D2, 2),
        entry("shop", "web", D3, 1),
    ],
}


@pytest.fixture(params=["clickhouse-18.16", "chdb", "orm"])
def stores(request):
    """(peak store to write through, dashboard backend to read with) on one database."""
    if request.param == "orm":
        yield OrmStore(), OrmDashboard()
        return
    if request.param == "chdb":
        executor = request.getfixturevalue("chdb_executor")
        store = ClickHouseStore(executor)
        store.ensure_schema()
        yield store, ClickHouseDashboard(executor)
        return
    door = ClickHouseDoor.from_url(request.getfixturevalue("clickhouse_url"))
    store = ClickHouseStore(door)
    store.ensure_schema()
    yield store, ClickHouseDashboard(door)
    door.close()


def load(store, scenario) -> None:
    for day, rows in scenario.items():
        for cluster in sorted({row.cluster for row in rows}):
            store.day_replace(cluster=cluster, day=day, rows=[row for row in rows if row.cluster == cluster])


def test_summary_sums_each_services_source_day(stores):
    # given
    store, backend = stores
    load(store, SCENARIO)
    # when
    summary = dashboard.dashboard_summary(cluster="prod", day_from=D1, day_to=D3, backend=backend)
    # then
    payload = as_payload(summary)
    assert payload["cluster"] == "prod"
    assert payload["day_from"] == "2026-03-01"
    assert payload["day_to"] == "2026-03-03"
    assert payload["namespaces"] == 2
    assert payload["totals"] == EXPECTED_TOTALS
    assert payload["namespace_rows"] == EXPECTED_NAMESPACES
    assert payload["top"] == EXPECTED_TOP


def test_summary_of_a_narrower_range_picks_source_days_inside_it(stores):
    store, backend = stores
    load(store, SCENARIO)
    # when: only D1 — cart's D1 is now its source day (with its CPU limit), web's D1 too
    summary = dashboard.dashboard_summary(cluster="prod", day_from=D1, day_to=D1, backend=backend)
    # then
    assert summary.namespaces == 2
    assert as_payload(summary.top["load"]) == [entry("shop", "web", D1, 2.0), entry("shop", "cart", D1, 1.125)]
    assert as_payload(summary.top["cpu_pct"]) == [entry("shop", "web", D1, 50.0), entry("shop", "cart", D1, 25.0)]
    assert as_payload(summary.top["pods"]) == [entry("shop", "cart", D1, 3), entry("shop", "web", D1, 2)]
    assert summary.totals.pods == 5  # api's pods are unknown: they count as none
    assert summary.totals.cpu_limit_cores == 8.5  # 1.5 × 3 + 2.0 × 2; api has no CPU limit
    assert summary.totals.services == 3


def test_an_excluded_day_is_never_a_source_day_of_the_summary(stores):
    store, backend = stores
    load(store, SCENARIO)
    cluster = ClusterFactory(name="prod")
    excluded_days.excluded_day_create(actor=Actor.system(), cluster=cluster, start=D2, reason="load test")
    # when
    summary = as_payload(dashboard.dashboard_summary(cluster="prod", day_from=D1, day_to=D3, backend=backend))
    # then: cart falls back from D2 (2.5) to D1 (1.125); api's only other day is D1 (pods unknown)
    assert summary["excluded_days"] == ["2026-03-02"]
    assert summary["top"]["load"] == [
        entry("shop", "web", D3, 2.0),
        entry("pay", "ledger", D3, 1.25),
        entry("shop", "cart", D1, 1.125),
    ]
    assert summary["top"]["pods"] == [
        entry("pay", "ledger", D3, 5),
        entry("shop", "cart", D1, 3),
        entry("shop", "web", D3, 1),
    ]
    assert summary["totals"]["services"] == 4
    assert summary["totals"]["pods"] == 9
    assert summary["totals"]["cpu_limit_cores"] == 9.0  # cart 1.5 × 3 on D1 (both limits known) + web 2 + ledger 2.5


def test_an_empty_cluster_gives_zeros_and_empty_boards(stores):
    store, backend = stores
    load(store, SCENARIO)
    # when
    summary = dashboard.dashboard_summary(cluster="nowhere", day_from=D1, day_to=D3, backend=backend)
    span = dashboard.dashboard_data_span(cluster="nowhere", backend=backend)
    # then
    assert summary.namespaces == 0
    assert as_payload(summary.totals) == dict.fromkeys(EXPECTED_TOTALS, 0) | {
        key: 0.0 for key in EXPECTED_TOTALS if key not in ("services", "pods")
    }
    assert summary.namespace_rows == []
    assert summary.top == {board: [] for board in dashboard.BOARDS}
    assert span == dashboard.DataSpan(rows=0, first_day=None, last_day=None)


def test_data_span_names_the_first_and_last_day(stores):
    store, backend = stores
    load(store, SCENARIO)
    assert dashboard.dashboard_data_span(cluster="prod", backend=backend) == dashboard.DataSpan(
        rows=10, first_day=D0, last_day=D3
    )


def test_curves_give_one_point_per_day_with_data(stores):
    store, backend = stores
    load(store, SCENARIO)
    # when
    points = dashboard.dashboard_curves(
        cluster="prod", namespace="shop", deployment="cart", day_from=D0, day_to=D3, backend=backend
    )
    # then
    assert as_payload(points) == [
        {
            "day": "2026-02-28",
            "pods": 10,
            "cpu_cores": 5.0,
            "cpu_request_cores": 0.2,
            "cpu_limit_cores": 1.0,
            "mem_mib": 4000.0,
            "mem_request_mib": 256.0,
            "mem_limit_mib": 512.0,
        },
        {
            "day": "2026-03-01",
            "pods": 3,
            "cpu_cores": 0.375,
            "cpu_request_cores": 0.3,
            "cpu_limit_cores": 1.5,
            "mem_mib": 364.0,
            "mem_request_mib": 320.0,
            "mem_limit_mib": 640.0,
        },
        {
            "day": "2026-03-02",
            "pods": 4,
            "cpu_cores": 0.625,
            "cpu_request_cores": 0.3,
            "cpu_limit_cores": None,
            "mem_mib": 464.0,
            "mem_request_mib": 320.0,
            "mem_limit_mib": 640.0,
        },
    ]


def test_curves_of_an_unmeasured_service_and_known_services(stores):
    store, backend = stores
    load(store, SCENARIO)
    # then
    api = dashboard.dashboard_curves(
        cluster="prod", namespace="pay", deployment="api", day_from=D1, day_to=D2, backend=backend
    )
    assert [(p.day, p.pods, p.cpu_cores, p.cpu_limit_cores) for p in api] == [
        (D1, None, 0.5, None),
        (D2, 2, None, None),
    ]
    assert (
        dashboard.dashboard_curves(
            cluster="prod", namespace="shop", deployment="cart", day_from=D3, day_to=D3, backend=backend
        )
        == []
    )
    assert dashboard.dashboard_service_known(cluster="prod", namespace="shop", deployment="cart", backend=backend)
    assert not dashboard.dashboard_service_known(cluster="prod", namespace="shop", deployment="nope", backend=backend)
    assert not dashboard.dashboard_service_known(cluster="stage", namespace="pay", deployment="api", backend=backend)


def test_boards_keep_the_ten_biggest(stores):
    store, backend = stores
    rows = [
        peak(D1, f"ns-{i % 3}", f"svc-{i:02d}", "main", **res(i + 1, 0.5, 100.0, 100, 100, 1000, 1000))
        for i in range(12)
    ]
    load(store, {D1: rows})
    # when
    summary = dashboard.dashboard_summary(cluster="prod", day_from=D1, day_to=D1, backend=backend)
    # then
    assert [e.deployment for e in summary.top["pods"]] == [f"svc-{i:02d}" for i in range(11, 1, -1)]
    assert [e.value for e in summary.top["load"]] == [6.0, 5.5, 5.0, 4.5, 4.0, 3.5, 3.0, 2.5, 2.0, 1.5]
    # equal CPU %: ties go by namespace, then deployment
    assert [(e.namespace, e.deployment) for e in summary.top["cpu_pct"]][:5] == [
        ("ns-0", "svc-00"),
        ("ns-0", "svc-03"),
        ("ns-0", "svc-06"),
        ("ns-0", "svc-09"),
        ("ns-1", "svc-01"),
    ]
    assert len(summary.top["cpu_pct"]) == 10
    assert summary.totals.services == 12
    assert summary.totals.pods == sum(range(1, 13))


def random_scenario(seed: int) -> dict[datetime.date, list[PeakRow]]:
    """40 services × 20 days, one or two containers, some values missing; eighths keep sums exact."""
    rng = random.Random(seed)
    days = [D1 + datetime.timedelta(days=i) for i in range(20)]
    scenario: dict[datetime.date, list[PeakRow]] = {day: [] for day in days}

    def maybe(value):
        return None if rng.random() < 0.1 else value

    for i in range(40):
        namespace, deployment = f"ns-{i % 6}", f"svc-{i:02d}"
        containers = [deployment] if i % 3 else [deployment, "sidecar"]
        for day in rng.sample(days, rng.randint(1, 20)):
            pods = maybe(rng.randint(1, 12))
            for container in containers:
                scenario[day].append(
                    peak(
                        day,
                        namespace,
                        deployment,
                        container,
                        **res(
                            pods,
                            maybe(rng.randint(0, 64) / 8),
                            maybe(rng.randint(1, 4096) / 8),
                            maybe(rng.choice([100, 250, 500])),
                            maybe(rng.choice([128, 256, 512])),
                            maybe(rng.choice([1000, 2000, 4000])),
                            maybe(rng.choice([1024, 2048, 4096])),
                        ),
                    )
                )
    return scenario


def test_clickhouse_server_chdb_and_orm_agree_on_random_data(clickhouse_url, chdb_executor):
    # given: the same rows in the three databases
    scenario = random_scenario(seed=2026)
    door = ClickHouseDoor.from_url(clickhouse_url)
    ch_store, chdb_store = ClickHouseStore(door), ClickHouseStore(chdb_executor)
    ch_store.ensure_schema()
    chdb_store.ensure_schema()
    backends = {"clickhouse-18.16": ClickHouseDashboard(door), "chdb": ClickHouseDashboard(chdb_executor)}
    backends["orm"] = OrmDashboard()
    for store in (ch_store, chdb_store, OrmStore()):
        load(store, scenario)
    day_to = D1 + datetime.timedelta(days=19)
    try:
        # when
        results = {
            name: (
                as_payload(dashboard.dashboard_summary(cluster="prod", day_from=D1, day_to=day_to, backend=backend)),
                as_payload(
                    dashboard.dashboard_curves(
                        cluster="prod",
                        namespace="ns-0",
                        deployment="svc-00",
                        day_from=D1,
                        day_to=day_to,
                        backend=backend,
                    )
                ),
            )
            for name, backend in backends.items()
        }
    finally:
        door.close()
    # then
    orm_summary, orm_curves = results["orm"]
    assert orm_summary["totals"]["services"] == 40
    assert len(orm_summary["namespace_rows"]) == 6
    assert all(len(orm_summary["top"][board]) == 10 for board in dashboard.BOARDS)
    assert len(orm_curves) > 0
    assert results["clickhouse-18.16"] == results["orm"]
    assert results["chdb"] == results["orm"]


def test_the_configured_store_picks_the_backend(settings, clickhouse_url, monkeypatch):
    settings.KUBEDOOR_PEAK_STORE = "orm"
    assert isinstance(dashboard.dashboard_store(), OrmDashboard)
    # with CLICKHOUSE_URL the "clickhouse" alias exists; here the door is made from the scratch URL
    door = ClickHouseDoor.from_url(clickhouse_url)
    monkeypatch.setattr(ClickHouseDoor, "default", classmethod(lambda cls: door))
    settings.KUBEDOOR_PEAK_STORE = "clickhouse"
    backend = dashboard.dashboard_store()
    assert isinstance(backend, ClickHouseDashboard)
    assert backend.executor is door
    door.close()
