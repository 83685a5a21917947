"""Coalesced notifications: repeats of one action on one object within a window notify once, then
one summary of the repeats held back; every event is still written."""

from __future__ import annotations

import datetime

import pytest

from apps.audit import services
from apps.audit.delivery import notification_delivery_attempt
from apps.audit.models import AuditEvent, NotificationChannel, NotificationDelivery
from apps.audit.services import Actor, audit_event_record, notification_repeats_summarize

WEBHOOK = Actor.system("webhook", source="webhook")


def deny(name: str = "cart", *, result: str = "denied") -> AuditEvent:
    return audit_event_record(
        actor=WEBHOOK,
        action="admission.deny",
        cluster="prod",
        namespace="shop",
        name=name,
        result=result,
        message=f"CREATE Deployment by alice (uid u-{name}): not in the control table",
        notify_coalesce_seconds=60,
    )


@pytest.fixture
def queued(monkeypatch) -> list[tuple]:
    """What would go to the broker after each commit (the tests run inside one transaction)."""
    calls: list[tuple] = []
    monkeypatch.setattr(services, "_enqueue_delivery", lambda *args: calls.append(("deliver", *args)))
    monkeypatch.setattr(services, "_enqueue_repeats_summary", lambda *args: calls.append(("summary", *args)))
    return calls


@pytest.fixture
def channel(db) -> NotificationChannel:
    return NotificationChannel.objects.create(
        name="ops", kind="slack", target="http://127.0.0.1:9/s", actions=["admission.deny"]
    )


def _age(delivery: NotificationDelivery, seconds: float) -> None:
    NotificationDelivery.objects.filter(pk=delivery.pk).update(
        created_at=delivery.created_at - datetime.timedelta(seconds=seconds)
    )


def test_repeats_within_the_window_are_written_but_not_delivered(channel, queued, django_capture_on_commit_callbacks):
    # when
    with django_capture_on_commit_callbacks(execute=True):
        first = deny()
        deny(), deny()
    # then
    assert AuditEvent.objects.count() == 3
    delivery = NotificationDelivery.objects.get()
    assert (delivery.event_id, delivery.repeats) == (first.pk, 0)
    assert queued == [("deliver", delivery.pk), ("summary", delivery.pk, 60)]


def test_the_summary_counts_the_repeats_held_back_once(channel, queued, django_capture_on_commit_callbacks):
    # given a window with two repeats, a dry run and another Deployment's denial in between
    with django_capture_on_commit_callbacks(execute=True):
        first = deny()
        deny()
        deny(result="dry_run")
        deny("other")
        last = deny()
    head = NotificationDelivery.objects.get(event=first)
    # when the window closes (twice: a redelivered task)
    with django_capture_on_commit_callbacks(execute=True):
        summary = notification_repeats_summarize(first_delivery_id=head.pk)
        again = notification_repeats_summarize(first_delivery_id=head.pk)
    # then one summary of the two real repeats, attached to the last of them
    assert (summary.event_id, summary.channel_id, summary.repeats) == (last.pk, channel.pk, 2)
    assert again is None
    assert NotificationDelivery.objects.filter(repeats__gt=0).count() == 1
    assert queued[-1] == ("deliver", summary.pk)


def test_nothing_held_back_means_no_summary(channel, queued):
    first = deny()
    deny("other")
    assert notification_repeats_summarize(first_delivery_id=NotificationDelivery.objects.get(event=first).pk) is None
    assert NotificationDelivery.objects.filter(repeats__gt=0).count() == 0


def test_after_the_window_the_next_denial_is_notified_again(channel, queued):
    # given a window opened more than 60 s ago with one repeat in it
    first = deny()
    held = deny()
    head = NotificationDelivery.objects.get(event=first)
    _age(head, 61)
    # when the same Deployment is denied again
    again = deny()
    # then it opens a new window, and the first window's summary stops before it
    assert list(NotificationDelivery.objects.filter(repeats=0).values_list("event_id", flat=True).order_by("id")) == [
        first.pk,
        again.pk,
    ]
    summary = notification_repeats_summarize(first_delivery_id=head.pk)
    assert (summary.event_id, summary.repeats) == (held.pk, 1)


def test_a_summary_closes_its_window(channel, queued):
    first = deny()
    deny()
    notification_repeats_summarize(first_delivery_id=NotificationDelivery.objects.get(event=first).pk)
    after = deny()
    assert NotificationDelivery.objects.filter(event=after, repeats=0).count() == 1


def test_each_channel_has_its_own_window(channel, queued):
    first = deny()
    late = NotificationChannel.objects.create(
        name="late", kind="slack", target="http://127.0.0.1:9/l", actions=["admission.*"]
    )
    second = deny()
    assert set(NotificationDelivery.objects.values_list("event_id", "channel_id")) == {
        (first.pk, channel.pk),
        (second.pk, late.pk),
    }


def test_without_coalescing_every_event_is_delivered(channel, queued):
    for _ in range(3):
        audit_event_record(actor=WEBHOOK, action="admission.deny", namespace="shop", name="cart", result="denied")
    assert NotificationDelivery.objects.filter(repeats=0).count() == 3


def test_summary_payload(channel, queued, http_receiver):
    # given a Slack channel and a window with three repeats
    NotificationChannel.objects.filter(pk=channel.pk).update(target=http_receiver.url + "/s")
    first = deny()
    deny(), deny()
    last = deny()
    summary = notification_repeats_summarize(first_delivery_id=NotificationDelivery.objects.get(event=first).pk)
    # when
    assert notification_delivery_attempt(delivery_id=summary.pk, final=True).value == "sent"
    # then
    [got] = http_receiver.received
    assert got.body == {
        "text": "\n".join(
            [
                "*KubeDoor admission.deny prod/shop/cart: 3 more*",
                "• 3 more denials of shop/cart in the last minute",
                "• result: ⛔ denied",
                "• by: webhook (webhook)",
                f"• at: {last.at.isoformat(timespec='seconds')} (the last one)",
                "• message: CREATE Deployment by alice (uid u-cart): not in the control table",
            ]
        )
    }
