"""The control table's measured side: measurements and imports applied in bulk, what a person set kept (§5.4)."""

from __future__ import annotations

import datetime
import importlib

import pytest
from django.apps import apps as django_apps
from django.db import connection

from apps.audit.models import AuditEvent, NotificationChannel, NotificationDelivery
from apps.audit.services import Actor, audit_event_record
from apps.control import services
from apps.control.measurements import (
    DISCOVERY_NOTIFY_LIMIT,
    MicroserviceImported,
    MicroserviceMeasurement,
    MicroserviceSettings,
    microservice_settings_list,
    microservices_import_apply,
    microservices_measurements_apply,
)
from apps.control.models import Microservice
from tests.factories import ClusterFactory, MicroserviceFactory

DAY = datetime.date(2026, 3, 9)
COLLECTOR = Actor.system("collector", source="task")


@pytest.fixture
def prod(db):
    return ClusterFactory(name="prod")


def measured(name: str, *, namespace: str = "shop", **fields) -> MicroserviceMeasurement:
    values = {
        "source_day": DAY,
        "container": name,
        "replicas_measured": 3,
        "p95_cpu_cores": 0.5,
        "p95_mem_mib": 400.0,
        "p95_cpu_pct": 50.0,
        "p95_mem_pct": 39.063,
        "request_cpu_m": 500,
        "request_mem_mib": 400,
        "limit_cpu_m": 1000,
        "limit_mem_mib": 1024,
    }
    return MicroserviceMeasurement(namespace=namespace, name=name, **(values | fields))


def apply(cluster, *measurements):
    return microservices_measurements_apply(cluster=cluster, measurements=list(measurements), actor=COLLECTOR)


def test_a_measured_deployment_without_a_row_gets_one_with_the_observed_limits(prod):
    # when
    applied = apply(prod, measured("cart", limit_cpu_m=800, hpa_name="cart-hpa"))
    # then
    assert (applied.added, applied.updated, applied.vanished, applied.unchanged, applied.unmanaged) == (1, 0, 0, 0, [])
    cart = Microservice.objects.get(name="cart")
    assert (cart.container, cart.replicas_measured, cart.replicas_initial, cart.source_day) == ("", 3, 3, DAY)
    assert (cart.request_cpu_m, cart.request_mem_mib, cart.limit_cpu_m, cart.limit_mem_mib) == (500, 400, 800, 1024)
    assert (cart.hpa_name, cart.is_present, cart.updated_by) == ("cart-hpa", True, "collector")
    event = AuditEvent.objects.get()
    assert (event.action, event.namespace, event.name, event.message, event.before) == (
        "microservice.discovered",
        "shop",
        "cart",
        "new service found",
        None,
    )
    assert event.after == {
        "container": "",
        "replicas_measured": 3,
        "request_cpu_m": 500,
        "request_mem_mib": 400,
        "limit_cpu_m": 800,
        "limit_mem_mib": 1024,
        "source_day": "2026-03-09",
    }


def test_a_refresh_keeps_what_a_person_set(prod, admin_user):
    # given a row with specified and recommended pods, a mode, a container, overrides and limits set,
    # and a CPU request an admin set by hand
    cart = MicroserviceFactory(
        cluster=prod,
        name="cart",
        container="app",
        replicas_specified=7,
        replicas_recommended=5,
        replicas_mode="ignore",
        cpu_headroom=0.5,
        min_mem_mib=300,
    )
    admin = Actor(user=admin_user, name=admin_user.username, source="admin")
    services.microservice_update(actor=admin, microservice=cart, data={"request_cpu_m": 333})
    # when a measurement of another (chosen) container with other limits arrives (the recommended pods are
    # the refresh's own since issue 11: this one recommends the same 5)
    applied = apply(
        prod,
        measured(
            "cart",
            container="sidecar",
            is_container_chosen=True,
            limit_cpu_m=1,
            limit_mem_mib=2,
            replicas_recommended=5,
        ),
    )
    # then only the measured fields and the request not set by hand change
    cart.refresh_from_db()
    assert (cart.replicas_specified, cart.replicas_recommended, cart.replicas_mode, cart.container) == (
        7,
        5,
        "ignore",
        "app",
    )
    assert (cart.cpu_headroom, cart.min_mem_mib, cart.limit_cpu_m, cart.limit_mem_mib) == (0.5, 300, 1000, 1024)
    assert (cart.request_cpu_m, cart.request_mem_mib, cart.replicas_measured, cart.source_day) == (333, 400, 3, DAY)
    assert (applied.updated, applied.unchanged) == (1, 0)
    event = AuditEvent.objects.get(action="microservice.refresh")
    assert event.before == {
        "replicas_measured": 2,
        "p95_cpu_pct": None,
        "p95_mem_pct": None,
        "p95_cpu_cores": None,
        "p95_mem_mib": None,
        "request_mem_mib": 256,
        "source_day": None,
    }
    assert event.after == {
        "replicas_measured": 3,
        "p95_cpu_pct": 50.0,
        "p95_mem_pct": 39.063,
        "p95_cpu_cores": 0.5,
        "p95_mem_mib": 400.0,
        "request_mem_mib": 400,
        "source_day": "2026-03-09",
    }
    assert (event.actor_name, event.source, event.cluster) == ("collector", "task", "prod")


def test_a_chosen_container_fills_only_an_empty_one(prod):
    MicroserviceFactory(cluster=prod, name="pay")
    apply(prod, measured("pay", container="main", is_container_chosen=True), measured("web", container="web"))
    assert dict(Microservice.objects.values_list("name", "container")) == {"pay": "main", "web": ""}


def test_the_capped_flag_speaks_of_the_requests_the_refresh_wrote(prod, admin_user):
    # given CPU set by hand on one row, nothing by hand on the other
    hand = MicroserviceFactory(cluster=prod, name="hand")
    services.microservice_update(
        actor=Actor(user=admin_user, name="admin1", source="api"), microservice=hand, data={"request_cpu_m": 100}
    )
    MicroserviceFactory(cluster=prod, name="auto")
    # when both measurements were capped on CPU only
    apply(
        prod,
        measured("auto", request_cpu_m=1000, request_cpu_capped=True),
        measured("hand", request_cpu_m=1000, request_cpu_capped=True),
    )
    # then
    rows = {row.name: (row.request_cpu_m, row.request_capped) for row in Microservice.objects.all()}
    assert rows == {"auto": (1000, True), "hand": (100, False)}


def test_a_measurement_without_statistics_keeps_the_measured_fields(prod):
    # given a row whose set container was not seen on the source day
    MicroserviceFactory(cluster=prod, name="cart", container="app", is_present=False, hpa_name="old")
    # when
    applied = apply(prod, MicroserviceMeasurement(namespace="shop", name="cart", hpa_name="new"))
    # then only presence and the HPA mark follow
    cart = Microservice.objects.get()
    assert (cart.is_present, cart.hpa_name, cart.replicas_measured, cart.request_cpu_m, cart.source_day) == (
        True,
        "new",
        2,
        250,
        None,
    )
    assert applied.updated == 1
    event = AuditEvent.objects.get()
    assert (event.before, event.after) == (
        {"is_present": False, "hpa_name": "old"},
        {"is_present": True, "hpa_name": "new"},
    )


def test_unknown_hpas_keep_the_mark_and_an_unchanged_row_is_not_written(prod):
    MicroserviceFactory(cluster=prod, name="cart", hpa_name="cart-hpa")
    apply(prod, measured("cart"))
    stamp = Microservice.objects.get().updated_at
    events = AuditEvent.objects.count()
    # when the same measurement arrives again
    applied = apply(prod, measured("cart"))
    # then
    assert (applied.updated, applied.unchanged) == (0, 1)
    assert Microservice.objects.values_list("hpa_name", "updated_at").get() == ("cart-hpa", stamp)
    assert AuditEvent.objects.count() == events


def test_rows_no_measurement_names_are_marked_vanished_once(prod):
    MicroserviceFactory(cluster=prod, name="gone")
    MicroserviceFactory(cluster=prod, name="away", is_present=False)
    applied = apply(prod, measured("cart"))
    assert (applied.added, applied.vanished) == (1, 1)
    assert dict(Microservice.objects.values_list("name", "is_present")) == {"gone": False, "away": False, "cart": True}
    event = AuditEvent.objects.get(action="microservice.vanished")
    assert (event.name, event.before, event.after) == ("gone", {"is_present": True}, {"is_present": False})
    assert apply(prod, measured("cart")).vanished == 0


def test_without_auto_registration_new_deployments_are_listed_not_added(prod):
    prod.auto_register_new = False
    prod.save()
    applied = apply(prod, measured("cart"), measured("web", namespace="front"))
    assert applied.unmanaged == ["shop/cart", "front/web"]
    assert not Microservice.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.fixture
def subscribed(db):
    return NotificationChannel.objects.create(
        name="ops", kind="slack", target="http://127.0.0.1:9/s", actions=["microservice.*"]
    )


def test_discoveries_are_notified_up_to_the_limit_and_refreshes_never(prod, subscribed):
    # given a row that will change and two new Deployments
    MicroserviceFactory(cluster=prod, name="cart")
    # when
    apply(prod, measured("cart"), measured("pay"), measured("web"))
    # then the discoveries are notified, the refresh of "cart" is written but not notified
    notified = NotificationDelivery.objects.values_list("event__action", "event__name")
    assert sorted(notified) == [("microservice.discovered", "pay"), ("microservice.discovered", "web")]
    assert AuditEvent.objects.filter(action="microservice.refresh").count() == 1
    # and the bulk-written refresh precedes the discoveries
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == [
        "microservice.refresh",
        "microservice.discovered",
        "microservice.discovered",
    ]


def test_a_big_discovery_is_recorded_without_notifications(prod, subscribed):
    apply(prod, *(measured(f"svc-{i:03d}") for i in range(DISCOVERY_NOTIFY_LIMIT + 1)))
    assert AuditEvent.objects.filter(action="microservice.discovered").count() == DISCOVERY_NOTIFY_LIMIT + 1
    assert not NotificationDelivery.objects.exists()


def test_elsewhere_than_postgresql_the_rows_are_written_by_bulk_update(prod, monkeypatch):
    # given
    MicroserviceFactory(cluster=prod, name="cart")
    MicroserviceFactory(cluster=prod, name="gone")
    monkeypatch.setattr(connection, "vendor", "sqlite")  # Django's generic path, on this database
    # when
    applied = apply(prod, measured("cart"))
    # then
    assert (applied.updated, applied.vanished) == (1, 1)
    rows = Microservice.objects.values_list("name", "request_cpu_m", "p95_cpu_cores", "source_day", "is_present")
    assert sorted(rows) == [("cart", 500, 0.5, DAY, True), ("gone", 250, None, None, False)]
    assert set(Microservice.objects.values_list("updated_by", flat=True)) == {"collector"}


def test_settings_list_gives_what_a_measurement_is_computed_with(prod):
    MicroserviceFactory(
        cluster=prod,
        name="cart",
        container="app",
        cpu_headroom=0.2,
        min_cpu_m=50,
        target_cpu_pct=60,
        allow_scale_up=True,
    )
    MicroserviceFactory(name="other-cluster")
    assert microservice_settings_list(cluster=prod) == {
        ("shop", "cart"): MicroserviceSettings(
            container="app",
            cpu_headroom=0.2,
            mem_headroom=None,
            min_cpu_m=50,
            min_mem_mib=None,
            limit_cpu_m=1000,
            limit_mem_mib=1024,
            target_cpu_pct=60.0,
            target_mem_pct=None,
            min_replicas=None,
            allow_single_replica=None,
            allow_scale_up=True,
            request_cpu_m=250,
            request_mem_mib=256,
            hpa_name="",
            replicas_mode="enforce",
        )
    }


# --- requests set by hand ---------------------------------------------------------------------


def flags(name: str) -> tuple[bool, bool]:
    return Microservice.objects.values_list("request_cpu_m_by_hand", "request_mem_mib_by_hand").get(name=name)


def test_a_person_setting_a_request_marks_it_and_clearing_it_unmarks_it(prod, admin_user):
    cart = MicroserviceFactory(cluster=prod, name="cart")
    admin = Actor(user=admin_user, name="admin1", source="admin")
    services.microservice_update(actor=admin, microservice=cart, data={"request_mem_mib": 512})
    assert flags("cart") == (False, True)
    services.microservice_update(actor=admin, microservice=cart, data={"request_cpu_m": 300, "request_mem_mib": None})
    assert flags("cart") == (True, False)
    # an unchanged value is no edit: the mark stays as it is
    services.microservice_update(actor=admin, microservice=cart, data={"request_cpu_m": 300, "replicas_specified": 4})
    assert flags("cart") == (True, False)


def test_only_people_set_requests_by_hand(prod, admin_user):
    cart = MicroserviceFactory(cluster=prod, name="cart")
    scheduler = Actor.system("scheduler", source="task", on_behalf_of=admin_user)
    services.microservice_update(actor=scheduler, microservice=cart, data={"request_cpu_m": 300})
    assert flags("cart") == (False, False)
    services.microservice_create(
        actor=Actor(user=admin_user, name="admin1", source="api"),
        cluster=prod,
        namespace="shop",
        name="web",
        request_cpu_m=200,
    )
    assert flags("web") == (True, False)
    services.microservice_create(actor=Actor.system(), cluster=prod, namespace="shop", name="job", request_cpu_m=200)
    assert flags("job") == (False, False)


def test_the_flags_stay_out_of_the_audited_snapshot(prod, admin_user):
    services.microservice_create(
        actor=Actor(user=admin_user, name="admin1", source="api"),
        cluster=prod,
        namespace="shop",
        name="web",
        request_cpu_m=200,
    )
    after = AuditEvent.objects.get(action="microservice.create").after
    assert "request_cpu_m_by_hand" not in after
    assert after["request_cpu_m"] == 200


def test_the_migration_takes_the_flags_from_the_audit_trail_as_the_refresh_did(prod):
    # given rows and the audit trail the refresh used to read (hand_set_requests)
    for name in ("set", "cleared", "system", "created", "untouched"):
        MicroserviceFactory(cluster=prod, name=name)
    MicroserviceFactory(cluster=ClusterFactory(name="staging"), name="set")
    admin, api = Actor.system("admin1", source="admin"), Actor.system("bot", source="api")

    def event(actor, action, name, after, cluster="prod"):
        audit_event_record(actor=actor, action=action, cluster=cluster, namespace="shop", name=name, after=after)

    event(admin, "microservice.update", "set", {"request_cpu_m": 300})
    event(api, "microservice.update", "set", {"request_mem_mib": 600})
    event(admin, "microservice.update", "cleared", {"request_cpu_m": 300})
    event(api, "microservice.update", "cleared", {"request_cpu_m": None})
    event(COLLECTOR, "microservice.update", "system", {"request_cpu_m": 300})
    event(admin, "microservice.refresh", "system", {"request_mem_mib": 300})
    event(api, "microservice.create", "created", {"request_cpu_m": None, "request_mem_mib": 128})
    event(admin, "microservice.update", "untouched", {"replicas_specified": 3})
    event(admin, "microservice.update", "untouched", None)
    # when
    migration = importlib.import_module("apps.control.migrations.0009_microservice_requests_by_hand")
    migration.requests_by_hand_from_audit(django_apps, None)
    # then
    marks = {
        (cluster, name): (cpu, mem)
        for cluster, name, cpu, mem in Microservice.objects.values_list(
            "cluster__name", "name", "request_cpu_m_by_hand", "request_mem_mib_by_hand"
        )
    }
    assert marks == {
        ("prod", "set"): (True, True),
        ("prod", "cleared"): (False, False),
        ("prod", "system"): (False, False),
        ("prod", "created"): (False, True),
        ("prod", "untouched"): (False, False),
        ("staging", "set"): (False, False),
    }


# --- import -----------------------------------------------------------------------------------


def imported(name: str, **fields) -> MicroserviceImported:
    values = {
        "replicas_initial": 3,
        "replicas_measured": 4,
        "replicas_specified": 6,
        "replicas_recommended": 5,
        "p95_cpu_pct": 42.5,
        "p95_mem_pct": 61.25,
        "request_cpu_m": 300,
        "request_mem_mib": 600,
        "limit_cpu_m": 1000,
        "limit_mem_mib": 1024,
    }
    return MicroserviceImported(namespace="shop", name=name, **(values | fields))


def test_an_import_adopts_0_2_values_and_audits_only_what_changed(prod, subscribed):
    # given one of the two rows exists already
    MicroserviceFactory(cluster=prod, name="api", replicas_measured=9, limit_cpu_m=1000, limit_mem_mib=1024)
    actor = Actor.system("import_kubedoor")
    # when
    applied = microservices_import_apply(
        cluster=prod, rows=[imported("cart"), imported("api", replicas_specified=0, limit_mem_mib=None)], actor=actor
    )
    # then
    assert (applied.created, applied.updated, applied.unchanged) == (1, 1, 0)
    api = Microservice.objects.get(name="api")
    assert (
        api.replicas_measured,
        api.replicas_specified,
        api.replicas_recommended,
        api.limit_mem_mib,
        api.updated_by,
    ) == (
        4,
        0,
        5,
        None,
        "import_kubedoor",
    )
    events = {event.name: event for event in AuditEvent.objects.filter(action="microservice.import")}
    assert events["cart"].before is None
    assert events["cart"].after == {field: getattr(imported("cart"), field) for field in events["cart"].after}
    assert len(events["cart"].after) == 10
    assert events["api"].before == {
        "replicas_initial": 2,
        "replicas_measured": 9,
        "replicas_specified": None,
        "replicas_recommended": None,
        "p95_cpu_pct": None,
        "p95_mem_pct": None,
        "request_cpu_m": 250,
        "request_mem_mib": 256,
        "limit_mem_mib": 1024,
    }
    assert events["api"].after["replicas_specified"] == 0
    assert not NotificationDelivery.objects.exists()
    # when imported again: nothing written
    again = microservices_import_apply(
        cluster=prod, rows=[imported("cart"), imported("api", replicas_specified=0, limit_mem_mib=None)], actor=actor
    )
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert AuditEvent.objects.count() == 2
