"""The audit trail: one event per write, in the change's transaction, and append-only."""

import datetime
import decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.models import AuditEvent, NotificationChannel, NotificationDelivery
from apps.audit.services import (
    AUDIT_COLUMNS,
    Actor,
    AuditDraft,
    JsonText,
    audit_event_record,
    audit_events_record,
)
from apps.control import services
from apps.control.models import Microservice

pytestmark = pytest.mark.django_db


def test_event_records_who_what_and_when(admin_user):
    # when
    event = audit_event_record(
        actor=Actor(user=admin_user, name="admin1", source="api", request_id="req-1", remote_addr="10.1.2.3"),
        action="microservice.scale",
        cluster="prod",
        namespace="shop",
        name="cart",
        before={"replicas": 2},
        after={"replicas": 5},
        message="scale shop/cart 2 → 5",
    )
    # then
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor == admin_user
    assert (stored.actor_name, stored.source, stored.action) == ("admin1", "api", "microservice.scale")
    assert (stored.cluster, stored.namespace, stored.name) == ("prod", "shop", "cart")
    assert (stored.before, stored.after, stored.result) == ({"replicas": 2}, {"replicas": 5}, "ok")
    assert (stored.request_id, stored.remote_addr) == ("req-1", "10.1.2.3")
    assert str(stored) == "microservice.scale prod/shop/cart by admin1"


def test_events_cannot_be_changed_or_deleted_through_the_model():
    event = audit_event_record(actor=Actor.system(), action="cluster.create", cluster="prod")
    event.message = "tampered"
    with pytest.raises(TypeError, match="append-only"):
        event.save()
    with pytest.raises(TypeError, match="append-only"):
        event.delete()
    with pytest.raises(TypeError, match="append-only"):
        AuditEvent.objects.filter(pk=event.pk).update(message="tampered")
    with pytest.raises(TypeError, match="append-only"):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get().message == ""


def test_a_failed_change_leaves_no_event(service, admin_user):
    # when the change fails validation inside the service
    with pytest.raises(Exception, match="limit"):
        services.microservice_update(
            actor=Actor(user=admin_user, name="admin1", source="api"), microservice=service, data={"limit_cpu_m": 1}
        )
    # then neither the change nor an event exists
    service.refresh_from_db()
    assert service.limit_cpu_m == 1000
    assert AuditEvent.objects.count() == 0


def test_change_and_event_share_one_transaction(service, admin_user):
    # given a change whose surrounding transaction is rolled back
    def change_then_fail() -> None:
        with transaction.atomic():
            services.microservice_update(
                actor=Actor(user=admin_user, name="admin1", source="api"),
                microservice=service,
                data={"replicas_specified": 7},
            )
            assert AuditEvent.objects.count() == 1
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        change_then_fail()
    # then both are gone
    assert Microservice.objects.get(pk=service.pk).replicas_specified is None
    assert AuditEvent.objects.count() == 0


def test_api_lists_events_with_filters_and_cannot_write(viewer_api, service, admin_user, operator):
    # given
    admin = Actor(user=admin_user, name="admin1", source="api")
    services.microservice_update(actor=admin, microservice=service, data={"replicas_specified": 3})
    services.microservice_update(
        actor=Actor(user=operator, name="operator1", source="admin"), microservice=service, data={"limit_cpu_m": 1200}
    )
    audit_event_record(actor=Actor.system(), action="collection.run", cluster="staging")
    url = "/api/v1/audit-events/"

    def actions(query: str) -> list[str]:
        response = viewer_api.get(url + query)
        assert response.status_code == 200
        return [row["action"] + ":" + row["actor_name"] for row in response.json()["results"]]

    # then
    assert actions("?cluster=prod") == ["microservice.update:operator1", "microservice.update:admin1"]
    assert actions("?actor=admin1") == ["microservice.update:admin1"]
    assert actions("?action=collection.run") == ["collection.run:system"]
    first = AuditEvent.objects.order_by("at").first()
    assert actions(f"?until={first.at.isoformat().replace('+00:00', 'Z')}") == []
    assert len(actions(f"?since={first.at.isoformat().replace('+00:00', 'Z')}")) == 3
    assert viewer_api.get(url + "?since=yesterday").status_code == 400

    event_id = AuditEvent.objects.first().pk
    for method in ("post", "put", "patch", "delete"):
        response = getattr(viewer_api, method)(f"{url}{event_id}/" if method != "post" else url, {}, format="json")
        assert response.status_code == 403, method  # no role holds add/change/delete on events
    assert AuditEvent.objects.count() == 3


def test_admins_cannot_write_events_through_the_api_either(admin_api):
    event = audit_event_record(actor=Actor.system(), action="cluster.create", cluster="prod")
    assert admin_api.delete(f"/api/v1/audit-events/{event.pk}/").status_code == 403
    assert admin_api.patch(f"/api/v1/audit-events/{event.pk}/", {"action": "x"}, format="json").status_code == 403
    assert AuditEvent.objects.get().action == "cluster.create"


# --- the bulk record ----------------------------------------------------------------------------

COLUMNS = ["actor_id", "actor_name", "source", "action", "cluster", "namespace", "name", "before", "after", "result",
           "message", "request_id", "remote_addr"]  # fmt: skip


def test_the_draft_declares_every_column_writers_fill():
    stored = {field.attname for field in AuditEvent._meta.concrete_fields if not field.primary_key}
    assert set(AUDIT_COLUMNS) == stored
    assert len(AUDIT_COLUMNS) == len(stored)


@pytest.mark.parametrize("vendor", ["postgresql", "other"])
def test_bulk_recorded_rows_equal_single_recorded_ones(admin_user, monkeypatch, vendor):
    # given the same event, with values JSON has no type for, written one way and the other
    actor = Actor(user=admin_user, name="admin1", source="api", request_id="req-1", remote_addr="10.1.2.3")
    event = {
        "action": "microservice.refresh",
        "cluster": "prod",
        "namespace": "shop",
        "name": "cart",
        "before": {"source_day": datetime.date(2026, 3, 9), "share": decimal.Decimal("0.25")},
        "after": {"source_day": datetime.date(2026, 3, 10), "share": None},
        "message": "refresh",
    }
    reference = audit_event_record(actor=actor, **event)
    at = timezone.now() - datetime.timedelta(minutes=5)
    if vendor != "postgresql":
        monkeypatch.setattr(connection, "vendor", vendor)  # Django's bulk_create, on this database
    # when
    written = audit_events_record(
        drafts=[AuditDraft.by(actor, **event, at=at), AuditDraft.by(actor, **event, notify=False)]
    )
    # then
    assert written == 2
    first, second = AuditEvent.objects.exclude(pk=reference.pk).order_by("id")
    for loaded in (first, second):
        assert {f: getattr(loaded, f) for f in COLUMNS} == {f: getattr(reference, f) for f in COLUMNS}
    assert first.before == {"source_day": "2026-03-09", "share": "0.25"}
    assert first.at == at
    assert second.at > at


def test_bulk_record_takes_json_text_as_it_is():
    audit_events_record(
        drafts=[AuditDraft(action="admission.patch", actor_name="webhook", source="webhook", after=JsonText('{"a":1}'))]
    )
    assert AuditEvent.objects.get().after == {"a": 1}


def test_bulk_record_notifies_the_drafts_a_channel_wants_and_no_others(db):
    # given a channel subscribed to changes of control rows
    channel = NotificationChannel.objects.create(
        name="ops", kind="slack", target="http://127.0.0.1:9/hook", actions=["microservice.*"]
    )
    system = Actor.system()
    drafts = [
        AuditDraft.by(system, action="microservice.scale", name="wanted"),
        AuditDraft.by(system, action="microservice.scale", name="quiet", notify=False),
        AuditDraft.by(system, action="microservice.scale", name="dry", result="dry_run"),
        AuditDraft.by(system, action="cluster.create", name="unwanted"),
    ]
    # when
    audit_events_record(drafts=drafts)
    # then all are written, only the first is notified
    assert AuditEvent.objects.count() == 4
    delivery = NotificationDelivery.objects.get()
    assert (delivery.channel, delivery.event.name) == (channel, "wanted")


def test_bulk_record_of_nothing_writes_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert audit_events_record(drafts=[]) == 0
