"""The database itself refuses to rewrite the trail; only the purge command removes old events."""

import datetime

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from apps.audit.models import AuditEvent, NotificationChannel, NotificationDelivery
from apps.audit.services import Actor, AuditDraft, audit_events_record

pytestmark = pytest.mark.django_db

UTC = datetime.UTC


def _plant(*moments: datetime.datetime) -> list[int]:
    audit_events_record(
        drafts=[
            AuditDraft(action="microservice.scale", actor_name="alice", source="api", name=f"svc-{i}", at=moment)
            for i, moment in enumerate(moments)
        ]
    )
    return list(AuditEvent.objects.order_by("id").values_list("id", flat=True))


def test_postgresql_refuses_a_raw_update_and_delete_of_an_audit_event():
    assert connection.vendor == "postgresql"
    (event_id,) = _plant(datetime.datetime(2026, 1, 5, 8, tzinfo=UTC))
    table = AuditEvent._meta.db_table
    for statement in (
        f"UPDATE {table} SET message = 'tampered' WHERE id = %s",
        f"DELETE FROM {table} WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="audit events are append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(statement, [event_id])
    stored = AuditEvent.objects.get(pk=event_id)
    assert (stored.message, stored.name) == ("", "svc-0")


def test_the_purge_setting_lets_deletes_through_but_never_updates():
    (event_id,) = _plant(datetime.datetime(2026, 1, 5, 8, tzinfo=UTC))
    table = AuditEvent._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SAVEPOINT before_update")
        cursor.execute("SET LOCAL kubedoor.audit_purge = 'on'")
        with pytest.raises(DatabaseError, match="append-only: UPDATE"):
            cursor.execute(f"UPDATE {table} SET message = 'tampered' WHERE id = %s", [event_id])
        cursor.execute("ROLLBACK TO SAVEPOINT before_update")
    # the setting ended with its transaction: a later DELETE is refused again
    with pytest.raises(DatabaseError, match="append-only: DELETE"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE id = %s", [event_id])
    assert AuditEvent.objects.filter(pk=event_id).exists()


def test_deleting_a_user_leaves_their_events_untouched(admin_user):
    from apps.audit.services import audit_event_record

    event = audit_event_record(actor=Actor(user=admin_user, name="admin1", source="api"), action="cluster.create")
    admin_user.delete()
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.actor_id, stored.actor_name) == (event.actor_id, "admin1")


def test_purge_removes_the_events_before_the_date_says_what_and_is_audited(capsys):
    # given: two events before 2026-02-01 (UTC), one at that instant, one after; a delivery of an old one
    old1, old2, edge, new = _plant(
        datetime.datetime(2026, 1, 5, 8, 0, tzinfo=UTC),
        datetime.datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC),
        datetime.datetime(2026, 2, 1, 0, 0, tzinfo=UTC),
        datetime.datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
    )
    channel = NotificationChannel.objects.create(name="ops", kind="webhook", target="http://127.0.0.1:9/hook")
    NotificationDelivery.objects.create(event_id=old1, channel=channel, state="sent")
    NotificationDelivery.objects.create(event_id=new, channel=channel, state="sent")
    # when: a dry run first
    call_command("kubedoor_audit_purge", "--before", "2026-02-01", "--dry-run")
    out = capsys.readouterr().out
    dry = AuditEvent.objects.get(action="audit.purge")
    assert out == (
        "Would remove 2 audit events before 2026-02-01T00:00:00+00:00 from 2026-01-05T08:00:00+00:00 to "
        f"2026-01-31T23:59:59+00:00, 1 notification deliveries; recorded as audit event {dry.pk}.\n"
    )
    assert set(AuditEvent.objects.exclude(pk=dry.pk).values_list("id", flat=True)) == {old1, old2, edge, new}
    assert (dry.result, dry.actor_name, dry.source) == ("dry_run", "kubedoor_audit_purge", "system")
    # when: the purge itself
    call_command("kubedoor_audit_purge", "--before", "2026-02-01")
    out = capsys.readouterr().out
    # then
    purge = AuditEvent.objects.filter(action="audit.purge").latest("id")
    assert out == (
        "Removed 2 audit events before 2026-02-01T00:00:00+00:00 from 2026-01-05T08:00:00+00:00 to "
        f"2026-01-31T23:59:59+00:00, 1 notification deliveries; recorded as audit event {purge.pk}.\n"
    )
    assert set(AuditEvent.objects.values_list("id", flat=True)) == {edge, new, dry.pk, purge.pk}
    assert list(NotificationDelivery.objects.values_list("event_id", flat=True)) == [new]
    assert purge.result == "ok"
    assert purge.after == {
        "before": "2026-02-01T00:00:00+00:00",
        "count": 2,
        "first_at": "2026-01-05T08:00:00+00:00",
        "last_at": "2026-01-31T23:59:59+00:00",
        "deliveries": 1,
    }
    # the purge's setting ended with its transaction
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [edge])


def test_purge_rejects_a_date_it_cannot_read():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--before 'last week'"):
        call_command("kubedoor_audit_purge", "--before", "last week")
    assert not AuditEvent.objects.exists()
