"""The admission audit writer: bulk-loaded rows equal what audit_event_record writes; subscribed
events still notify; dry runs never do."""

from __future__ import annotations

import datetime

from django.utils import timezone

from apps.audit.models import AuditEvent, NotificationChannel, NotificationDelivery
from apps.audit.services import Actor, audit_event_record
from apps.webhook.audit_writer import AuditWriter

EVENT = {
    "action": "admission.patch",
    "cluster": "prod",
    "namespace": "shop",
    "name": "cart",
    "before": {"replicas": 2, "containers": {"cart": {"requests": {"cpu": None}}}},
    "after": {"replicas": 3, "containers": {"cart": {"requests": {"cpu": "250m"}}}},
    "result": "ok",
    "message": "UPDATE Deployment by alice (uid u-1): kubedoor: spec.replicas 2 -> 3 (control table)",
}
FIELDS = ["actor_id", "actor_name", "source", "action", "cluster", "namespace", "name", "before", "after", "result",
          "message", "request_id", "remote_addr"]  # fmt: skip


def test_bulk_loaded_rows_equal_audit_event_record(db):
    # given the same event written both ways
    reference = audit_event_record(actor=Actor.system("webhook", source="webhook"), **EVENT)
    writer = AuditWriter(autostart=False)
    at = timezone.now() - datetime.timedelta(seconds=3)
    writer.submit(**EVENT, at=at)
    # when
    assert writer.drain() == 1
    # then every column matches, and the time is the decision's, not the write's
    loaded = AuditEvent.objects.exclude(pk=reference.pk).get()
    assert {f: getattr(loaded, f) for f in FIELDS} == {f: getattr(reference, f) for f in FIELDS}
    assert loaded.at == at


def test_events_a_channel_wants_are_notified_and_dry_runs_are_not(db):
    # given a channel subscribed to admission decisions
    channel = NotificationChannel.objects.create(
        name="ops", kind="slack", target="http://127.0.0.1:9/hook", actions=["admission.*"], results=[]
    )
    writer = AuditWriter(autostart=False)
    writer.submit(**EVENT)
    writer.submit(**(EVENT | {"name": "dry", "result": "dry_run"}))
    writer.submit(**(EVENT | {"name": "other", "action": "admission.audit"}))
    # when
    assert writer.drain() == 3
    # then
    assert AuditEvent.objects.count() == 3
    notified = NotificationDelivery.objects.filter(channel=channel).values_list("event__name", flat=True)
    assert sorted(notified) == ["cart", "other"]
