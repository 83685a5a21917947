"""The control-table refresh of DESIGN §5.4, from hand-written archive rows in the ORM store."""

from __future__ import annotations

import datetime

import pytest

from apps.audit.models import AuditEvent
from apps.audit.services import Actor
from apps.control import services as control_services
from apps.control.models import Microservice
from apps.metrics.refresh import control_table_refresh
from apps.metrics.store import OrmStore, PeakRow
from tests.factories import ClusterFactory, MicroserviceFactory

UTC = datetime.UTC
TODAY = datetime.date(2026, 3, 10)
D = [TODAY - datetime.timedelta(days=n) for n in range(12)]  # D[0] today, D[1] yesterday, ...
SYSTEM = Actor.system("collector", source="task")


def peak(day, deployment, container=None, *, namespace="shop", cpu=0.1, mem=100.0, pods=2, limits=(1000, 1024), **kw):
    return PeakRow(
        cluster="prod",
        day=day,
        namespace=namespace,
        deployment=deployment,
        container=container or deployment,
        window_start=datetime.datetime.combine(day, datetime.time(2, 0), UTC),
        window_end=datetime.datetime.combine(day, datetime.time(3, 30), UTC),
        pod_count=pods,
        p95_cpu_cores=cpu,
        p95_cpu_pct=None if limits[0] is None else round(cpu * 100000 / limits[0], 3),
        p95_mem_mib=mem,
        p95_mem_pct=None if limits[1] is None else round(mem * 100 / limits[1], 3),
        request_cpu_m=kw.get("request_cpu_m", 100),
        request_mem_mib=kw.get("request_mem_mib", 128),
        limit_cpu_m=limits[0],
        limit_mem_mib=limits[1],
        quantile=0.95,
        aggregation="avg",
        step_seconds=30,
        collected_at=datetime.datetime(2026, 3, 10, 4, tzinfo=UTC),
    )


def load(store, rows):
    by_day: dict = {}
    for row in rows:
        by_day.setdefault(row.day, []).append(row)
    for day, day_rows in by_day.items():
        store.day_replace(cluster="prod", day=day, rows=day_rows)


@pytest.fixture
def prod(db):
    # The rules of §5.4 alone: one day of data is enough and no change clamp; the safety feedback of
    # issue 11 (minimum days, clamp, OOM, throttling) is tested in test_recommendation_refresh.py.
    return ClusterFactory(name="prod", lookback_days=10, min_days=1, max_change_pct=100)


@pytest.fixture
def store(db):
    return OrmStore()


def refresh(cluster, store):
    return control_table_refresh(cluster=cluster, store=store, today=TODAY, actor=SYSTEM)


def test_service_mode_takes_each_services_busiest_day(prod, store):
    load(
        store,
        [
            peak(D[1], "cart", cpu=0.5, pods=2),  # load 1.0
            peak(D[2], "cart", cpu=0.3, pods=4),  # load 1.2 <- cart's busiest
            peak(D[1], "web", cpu=0.9, pods=2),  # load 1.8 <- web's busiest
            peak(D[2], "web", cpu=0.1, pods=2),
        ],
    )
    refresh(prod, store)
    cart = Microservice.objects.get(name="cart")
    web = Microservice.objects.get(name="web")
    assert (cart.source_day, cart.request_cpu_m, cart.replicas_measured) == (D[2], 300, 4)
    assert (web.source_day, web.request_cpu_m, web.replicas_measured) == (D[1], 900, 2)


def test_cluster_mode_takes_the_clusters_busiest_day_for_everyone(prod, store):
    prod.peak_day_mode = "cluster"
    prod.save()
    load(
        store,
        [
            peak(D[1], "cart", cpu=0.5, pods=2),
            peak(D[2], "cart", cpu=0.3, pods=4),
            peak(D[1], "web", cpu=0.9, pods=2),  # D[1] total 2.8 vs D[2] total 1.4
            peak(D[2], "web", cpu=0.1, pods=2),
            peak(D[3], "late", cpu=0.2, pods=1),  # not seen on the cluster's day: its own busiest day
        ],
    )
    result = refresh(prod, store)
    assert result.cluster_source_day == D[1]
    assert Microservice.objects.get(name="cart").source_day == D[1]
    assert Microservice.objects.get(name="cart").request_cpu_m == 500
    assert Microservice.objects.get(name="late").source_day == D[3]


def test_headroom_and_floors_from_the_cluster_and_per_service_overrides(prod, store):
    prod.cpu_headroom, prod.mem_headroom, prod.min_cpu_m, prod.min_mem_mib = 0.2, 0.1, 50, 64
    prod.save()
    MicroserviceFactory(
        cluster=prod, name="tuned", cpu_headroom=0.5, min_mem_mib=300, request_cpu_m=1, request_mem_mib=1
    )
    load(
        store,
        [
            peak(D[1], "cart", cpu=0.25, mem=200.0),
            peak(D[1], "tiny", cpu=0.001, mem=10.0),
            peak(D[1], "tuned", cpu=0.25, mem=200.0),
        ],
    )
    refresh(prod, store)
    cart = Microservice.objects.get(name="cart")
    assert (cart.request_cpu_m, cart.request_mem_mib) == (300, 220)  # ceil(250 × 1.2), ceil(200 × 1.1)
    tiny = Microservice.objects.get(name="tiny")
    assert (tiny.request_cpu_m, tiny.request_mem_mib) == (50, 64)  # the floors
    tuned = Microservice.objects.get(name="tuned")
    assert (tuned.request_cpu_m, tuned.request_mem_mib) == (375, 300)  # its own headroom and floor


def test_limits_are_copied_only_when_the_row_is_created(prod, store):
    MicroserviceFactory(cluster=prod, name="old", limit_cpu_m=4000, limit_mem_mib=8192)
    load(store, [peak(D[1], "old", limits=(500, 512)), peak(D[1], "new", limits=(700, 900))])
    refresh(prod, store)
    assert Microservice.objects.filter(name="old").values_list("limit_cpu_m", "limit_mem_mib").get() == (4000, 8192)
    assert Microservice.objects.filter(name="new").values_list("limit_cpu_m", "limit_mem_mib").get() == (700, 900)


def test_a_request_above_the_limit_is_capped_and_flagged(prod, store):
    MicroserviceFactory(cluster=prod, name="cart", limit_cpu_m=200, limit_mem_mib=4096)
    load(store, [peak(D[1], "cart", cpu=0.5, mem=300.0)])
    refresh(prod, store)
    cart = Microservice.objects.get(name="cart")
    assert (cart.request_cpu_m, cart.request_mem_mib, cart.request_capped) == (200, 300, True)
    # when the usage drops below the limit the flag clears
    load(store, [peak(D[1], "cart", cpu=0.1, mem=300.0)])
    refresh(prod, store)
    cart.refresh_from_db()
    assert (cart.request_cpu_m, cart.request_capped) == (100, False)


def test_manual_fields_survive_a_refresh(prod, store, admin_user):
    cart = MicroserviceFactory(
        cluster=prod, name="cart", replicas_specified=7, replicas_recommended=5, replicas_mode="ignore"
    )
    admin = Actor(user=admin_user, name=admin_user.username, source="admin")
    control_services.microservice_update(
        actor=admin, microservice=cart, data={"container": "app", "request_cpu_m": 333, "limit_mem_mib": 2048}
    )
    load(store, [peak(D[1], "cart", "app", cpu=0.5, mem=400.0, pods=3), peak(D[1], "cart", "sidecar", cpu=0.9)])
    # when
    refresh(prod, store)
    # then
    cart.refresh_from_db()
    # the recommendation is the refresh's own (issue 11): none for a row whose replicas an HPA decides
    assert (cart.replicas_specified, cart.replicas_recommended, cart.replicas_mode) == (7, None, "ignore")
    assert cart.explanation["reasons"][-2:] == [
        {"code": "replicas_hpa", "params": {}},
        {"code": "request_cpu_by_hand", "params": {"request_cpu_m": 333}},
    ]
    assert cart.container == "app"  # set by hand: statistics come from "app", not the busier sidecar
    assert cart.request_cpu_m == 333  # edited by hand
    assert cart.request_mem_mib == 400  # never edited by hand: refreshed
    assert (cart.limit_cpu_m, cart.limit_mem_mib) == (1000, 2048)
    assert (cart.replicas_measured, cart.p95_cpu_cores, cart.source_day) == (3, 0.5, D[1])


def test_a_request_cleared_by_hand_goes_back_to_collection(prod, store, admin_user):
    cart = MicroserviceFactory(cluster=prod, name="cart")
    admin = Actor(user=admin_user, name=admin_user.username, source="api")
    control_services.microservice_update(actor=admin, microservice=cart, data={"request_cpu_m": 333})
    control_services.microservice_update(actor=admin, microservice=cart, data={"request_cpu_m": None})
    load(store, [peak(D[1], "cart", cpu=0.5)])
    refresh(prod, store)
    assert Microservice.objects.get(name="cart").request_cpu_m == 500


def test_new_deployments_are_registered_and_audited(prod, store):
    load(
        store,
        [
            peak(D[1], "cart"),
            peak(D[1], "pay", "main", namespace="pay", cpu=0.4),
            peak(D[1], "pay", "log", namespace="pay", cpu=0.1),
        ],
    )
    result = refresh(prod, store)
    assert (result.added, result.updated, result.vanished) == (2, 0, 0)
    pay = Microservice.objects.get(name="pay")
    assert (pay.container, pay.request_cpu_m, pay.replicas_initial, pay.is_present) == ("main", 400, 2, True)
    events = AuditEvent.objects.filter(action="microservice.discovered").order_by("namespace")
    assert [(e.namespace, e.name, e.message, e.actor_name) for e in events] == [
        ("pay", "pay", "new service found", "collector"),
        ("shop", "cart", "new service found", "collector"),
    ]


def test_with_auto_register_off_new_deployments_are_listed_not_added(prod, store):
    prod.auto_register_new = False
    prod.save()
    load(store, [peak(D[1], "cart"), peak(D[1], "web")])
    result = refresh(prod, store)
    assert result.unmanaged == ["shop/cart", "shop/web"]
    assert Microservice.objects.count() == 0
    assert not AuditEvent.objects.filter(action="microservice.discovered").exists()
    summary = AuditEvent.objects.get(action="collection.run")
    assert (summary.after["unmanaged"], summary.after["unmanaged_names"]) == (2, ["shop/cart", "shop/web"])


def test_vanished_deployments_are_marked_not_present_never_deleted(prod, store):
    MicroserviceFactory(cluster=prod, name="gone")
    MicroserviceFactory(cluster=prod, name="old-data")
    load(store, [peak(D[1], "cart"), peak(D[11], "old-data")])  # D[11] is outside the 10-day lookback
    result = refresh(prod, store)
    assert result.vanished == 2
    assert set(Microservice.objects.filter(is_present=False).values_list("name", flat=True)) == {"gone", "old-data"}
    assert Microservice.objects.count() == 3
    assert AuditEvent.objects.filter(action="microservice.vanished").count() == 2
    # seen again: present again
    load(store, [peak(D[0], "gone")])
    refresh(prod, store)
    assert Microservice.objects.get(name="gone").is_present is True


def test_one_summary_plus_one_event_per_changed_row(prod, store):
    MicroserviceFactory(cluster=prod, name="same", request_cpu_m=100, request_mem_mib=100, replicas_measured=2)
    MicroserviceFactory(cluster=prod, name="moved", request_cpu_m=100, request_mem_mib=100, replicas_measured=2)
    load(store, [peak(D[1], "same", cpu=0.1, mem=100.0), peak(D[1], "moved", cpu=0.2, mem=100.0)])
    refresh(prod, store)  # the first refresh fills the measured fields of both
    events_before = AuditEvent.objects.count()
    load(store, [peak(D[1], "same", cpu=0.1, mem=100.0), peak(D[1], "moved", cpu=0.3, mem=100.0)])
    # when
    result = refresh(prod, store)
    # then
    assert (result.updated, result.unchanged) == (1, 1)
    new_events = list(AuditEvent.objects.order_by("id")[events_before:])
    assert [(e.action, e.name) for e in new_events] == [("microservice.refresh", "moved"), ("collection.run", "")]
    assert new_events[0].before == {"p95_cpu_cores": 0.2, "p95_cpu_pct": 20.0, "request_cpu_m": 200}
    assert new_events[0].after == {"p95_cpu_cores": 0.3, "p95_cpu_pct": 30.0, "request_cpu_m": 300}
    assert new_events[1].after["updated"] == 1


def test_rows_of_namespaces_no_longer_controlled_are_ignored(prod, store):
    prod.excluded_namespaces = ["kube-system", "batch"]
    prod.save()
    load(store, [peak(D[1], "cart"), peak(D[1], "job", namespace="batch")])
    refresh(prod, store)
    assert list(Microservice.objects.values_list("namespace", "name")) == [("shop", "cart")]


def test_a_big_first_collection_records_every_discovery(prod, store):
    load(store, [peak(D[1], f"svc-{i:03d}") for i in range(60)])
    result = refresh(prod, store)
    assert result.added == 60
    events = AuditEvent.objects.filter(action="microservice.discovered")
    assert events.count() == 60
    first = events.get(name="svc-000")
    assert (first.message, first.after["request_cpu_m"], first.after["source_day"]) == (
        "new service found",
        100,
        D[1].isoformat(),
    )


def test_hpa_marks_follow_the_hpas_read_and_stay_when_they_could_not_be_read(prod, store):
    # given: two services, one of them scaled by an HPA
    load(store, [peak(D[1], "api"), peak(D[1], "cart")])
    targets = {("shop", "api"): "api-hpa"}

    # when
    result = control_table_refresh(cluster=prod, store=store, today=TODAY, actor=SYSTEM, hpa_targets=targets)

    # then
    marks = dict(Microservice.objects.values_list("name", "hpa_name"))
    assert marks == {"api": "api-hpa", "cart": ""}
    assert AuditEvent.objects.get(action="collection.run").after["hpa_managed"] == 1
    assert result.added == 2

    # when: the HPAs cannot be read (None), the marks stay; when the HPA is gone, the mark goes (audited)
    refresh(prod, store)
    assert dict(Microservice.objects.values_list("name", "hpa_name")) == marks
    control_table_refresh(cluster=prod, store=store, today=TODAY, actor=SYSTEM, hpa_targets={})
    assert dict(Microservice.objects.values_list("name", "hpa_name")) == {"api": "", "cart": ""}
    event = AuditEvent.objects.get(action="microservice.refresh", name="api")
    # without its HPA the service gets recommended pods: ceil(2 × 10 % / 70 %) = 1, kept at 2 (it ran 2)
    assert (event.before, event.after) == (
        {"hpa_name": "api-hpa", "replicas_recommended": None},
        {"hpa_name": "", "replicas_recommended": 2},
    )
